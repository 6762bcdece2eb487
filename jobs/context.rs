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
    pub key: Key,
    pub run_id: String,
}

impl JobContext {
    /// Opens the data root and loads the contracts; `demo` selects the public demo key.
    pub fn open(cfg: ValidConfig, demo: bool) -> Result<JobContext> {
        let key = cfg.pseudonymization_key(demo)?;
        let storage = Storage::open(&cfg.root)?;
        let contracts = Contracts::builtin()?;
        Ok(JobContext {
            cfg: Arc::new(cfg),
            storage,
            contracts,
            key,
            run_id: crate::manifest::new_run_id(),
        })
    }
}
