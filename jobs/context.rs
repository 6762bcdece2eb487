//! What every job receives: checked config, the data root, the contracts,
//! the pseudonymization key and the run id.

use std::sync::Arc;

use crate::Result;
use crate::config::{Key, ValidConfig};
use crate::schema::Contracts;
use crate::storage::Storage;

/// Shared, read-only state of one run.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub cfg: Arc<ValidConfig>,
    pub storage: Storage,
    pub contracts: Contracts,
    /// The pseudonymization key; `None` for jobs that never see raw identifiers.
    pub key: Option<Key>,
    /// The key before a key change, while the lake is re-ingested under
    /// `key` (`ingest::rekey`); read only where `key` is from the environment.
    pub previous_key: Option<Key>,
    pub run_id: String,
}

/// Which pseudonymization key a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    /// From the environment; refuse to run without it.
    Required,
    /// The public demo key (`attune demo`).
    Demo,
    /// None: the command reads only pseudonymized data.
    NotNeeded,
}

impl JobContext {
    /// Opens the data root and loads the contracts.
    pub fn open(cfg: ValidConfig, keys: KeyMode) -> Result<JobContext> {
        let key = match keys {
            KeyMode::Required => Some(cfg.pseudonymization_key(false)?),
            KeyMode::Demo => Some(cfg.pseudonymization_key(true)?),
            KeyMode::NotNeeded => None,
        };
        let previous_key = match keys {
            KeyMode::Required => cfg.previous_key()?,
            KeyMode::Demo | KeyMode::NotNeeded => None,
        };
        let storage = Storage::configured(&cfg)?;
        let contracts = Contracts::builtin()?;
        Ok(JobContext {
            cfg: Arc::new(cfg),
            storage,
            contracts,
            key,
            previous_key,
            run_id: crate::manifest::new_run_id(),
        })
    }

    /// The key, for jobs that pseudonymize.
    pub fn key(&self) -> Result<&Key> {
        self.key.as_ref().ok_or_else(|| {
            crate::Error::Internal(
                "this job needs the pseudonymization key but was opened without it".into(),
            )
        })
    }
}
