//! Run manifests: `runs/<run_id>.json`, one per run, saying what ran, on
//! which inputs, with what result.
//!
//! A manifest holds counts, durations, paths and fingerprints only: never a
//! row value and never the key (only its public id).

use std::time::Instant;

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::context::JobContext;
use crate::storage::Storage;
use crate::{Error, Result};

/// One job's record in a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub job: String,
    /// `ok`, `failed` or `skipped`.
    pub status: String,
    pub started_at: String,
    pub seconds: f64,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Peak resident memory of the process when the job ended (Linux
    /// `VmHWM`). A process-wide high-water mark: it includes every job that
    /// ran before in the same process and never decreases, so a job's own
    /// peak is only visible where this number rises.
    pub peak_rss_bytes: Option<u64>,
    /// Peak resident memory of the process while this job ran, sampled
    /// every 20 ms (see [`crate::memory`]): it includes memory earlier jobs
    /// freed and the allocator keeps for reuse. `None` off Linux and in
    /// older manifests.
    #[serde(default)]
    pub job_peak_rss_bytes: Option<u64>,
    /// The most heap bytes in use while this job ran ([`crate::heap`]):
    /// the job's own memory, with what the process holds for every job
    /// (and, beside a concurrent job, that job's). `None` in older
    /// manifests.
    #[serde(default)]
    pub job_peak_in_use_bytes: Option<u64>,
    pub warnings: Vec<String>,
    pub error: Option<String>,
    /// Job-specific detail (per-table counts for ingest, …).
    pub details: serde_json::Value,
}

/// The manifest of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunManifest {
    pub run_id: String,
    pub attune_version: String,
    pub command: String,
    pub config_hash: String,
    pub key_id: Option<String>,
    pub demo_key: bool,
    pub dates: Vec<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `running`, `ok` or `failed`.
    pub status: String,
    pub jobs: Vec<JobRecord>,
}

impl RunManifest {
    /// A manifest for a run starting now.
    pub fn start(ctx: &JobContext, command: &str, dates: &[chrono::NaiveDate]) -> RunManifest {
        RunManifest {
            run_id: ctx.run_id.clone(),
            attune_version: env!("CARGO_PKG_VERSION").to_string(),
            command: command.to_string(),
            config_hash: config_hash(ctx),
            key_id: ctx.key.as_ref().map(|k| k.id()),
            demo_key: ctx.key.as_ref().is_some_and(|k| k.is_demo()),
            dates: dates.iter().map(|d| d.to_string()).collect(),
            started_at: now_rfc3339(),
            finished_at: None,
            status: "running".into(),
            jobs: Vec::new(),
        }
    }

    /// Where the manifest lives.
    pub fn path(&self) -> Path {
        Path::from(format!("runs/{}.json", self.run_id))
    }

    /// Writes (or rewrites) the manifest atomically.
    pub async fn save(&self, storage: &Storage) -> Result<Path> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Internal(format!("manifest to JSON: {e}")))?;
        let path = self.path();
        storage.put(&path, Bytes::from(json)).await?;
        Ok(path)
    }

    /// Reads a manifest.
    pub async fn load(storage: &Storage, run_id: &str) -> Result<RunManifest> {
        let bytes = storage
            .get_bytes(&Path::from(format!("runs/{run_id}.json")))
            .await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::input(format!("runs/{run_id}.json"), e.to_string()))
    }
}

/// Times a job and turns its result into a [`JobRecord`].
pub struct JobTimer {
    job: String,
    started_at: String,
    start: Instant,
    memory: crate::memory::Window,
    /// Empties the shared lake caches for a job that writes the lake.
    _lake_writes: Option<crate::lake_footers::LakeWrites>,
}

impl JobTimer {
    /// Starts timing `job`.
    pub fn start(job: &str) -> JobTimer {
        let (statistics, footers) = crate::lake_footers::shared_bytes();
        tracing::debug!(job, statistics, footers, "lake statistics and footers held");
        JobTimer {
            _lake_writes: crate::lake_footers::LakeWrites::begin(job),
            job: job.to_string(),
            started_at: now_rfc3339(),
            start: Instant::now(),
            memory: crate::memory::open_window(),
        }
    }

    /// The record of a finished job.
    pub fn finish(
        self,
        rows_in: u64,
        rows_out: u64,
        warnings: Vec<String>,
        details: serde_json::Value,
    ) -> JobRecord {
        JobRecord {
            job: self.job,
            status: "ok".into(),
            started_at: self.started_at,
            seconds: self.start.elapsed().as_secs_f64(),
            rows_in,
            rows_out,
            peak_rss_bytes: peak_rss_bytes(),
            job_peak_rss_bytes: self.memory.peak(),
            job_peak_in_use_bytes: Some(self.memory.peak_in_use()),
            warnings,
            error: None,
            details,
        }
    }

    /// The record of a failed job.
    pub fn fail(self, error: &Error) -> JobRecord {
        JobRecord {
            job: self.job,
            status: "failed".into(),
            started_at: self.started_at,
            seconds: self.start.elapsed().as_secs_f64(),
            rows_in: 0,
            rows_out: 0,
            peak_rss_bytes: peak_rss_bytes(),
            job_peak_rss_bytes: self.memory.peak(),
            job_peak_in_use_bytes: Some(self.memory.peak_in_use()),
            warnings: Vec::new(),
            error: Some(format!("{error:#}")),
            details: serde_json::Value::Null,
        }
    }
}

/// A new run id: UTC time (sortable) plus random hex (unique).
pub fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let nonce: u32 = rand::random();
    format!("{}-{nonce:08x}", now.format("%Y%m%dT%H%M%SZ"))
}

/// Now, as every record of a run writes times: RFC 3339, UTC, milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A short hash of the checked config, so a manifest or stamp can say which settings a run used.
pub fn config_hash(ctx: &JobContext) -> String {
    config_hash_of(&ctx.cfg)
}

/// [`config_hash`] of a config without a context (`attune doctor`).
pub fn config_hash_of(cfg: &crate::config::ValidConfig) -> String {
    // The worker count and how many jobs run at once change no output: a
    // retry on a machine with other cores must not look like a new config
    // and redo every job. The models
    // folder counts by its models' text (`nightly::stamps::setup_hash`),
    // which ingest does not read: moving it re-ingests nothing.
    let mut cfg = cfg.clone();
    cfg.ingest.threads = 0;
    cfg.parallel_jobs = 0;
    cfg.models_dir = None;
    let mut h = Sha256::new();
    h.update(format!("{cfg:?}").as_bytes());
    hex::encode(&h.finalize()[..8])
}

/// Peak resident set size of this process (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
