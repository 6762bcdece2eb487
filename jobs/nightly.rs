//! The nightly run: every job in order for one date or a range, one run per
//! data root at a time, with a manifest under `runs/`.
//!
//! Jobs are added here as they are built; each is also its own subcommand so
//! a step can be re-run alone.

use std::fs::File;
use std::path::PathBuf;

use chrono::NaiveDate;
use tracing::{error, info};

use crate::context::JobContext;
use crate::manifest::{JobTimer, RunManifest};
use crate::{Error, Result, ingest, transform};

/// The jobs of a nightly run, in order.
pub const JOBS: [&str; 2] = ["ingest", "transform"];

/// Which dates and jobs to run.
#[derive(Debug, Clone)]
pub struct NightlyParams {
    pub dates: Vec<NaiveDate>,
    /// Run only these jobs (all when empty).
    pub only: Vec<String>,
}

/// Outcome of a nightly run.
#[derive(Debug)]
pub struct NightlyOutcome {
    pub manifest: RunManifest,
    pub manifest_path: String,
    pub ingest: Option<ingest::IngestOutcome>,
    pub transform: Option<transform::TransformOutcome>,
}

/// Runs the nightly sequence. The manifest is written even when a job fails.
pub async fn run(ctx: &JobContext, params: &NightlyParams) -> Result<NightlyOutcome> {
    for j in &params.only {
        if !JOBS.contains(&j.as_str()) {
            return Err(Error::Config(format!(
                "unknown job `{j}` (jobs: {})",
                JOBS.join(", ")
            )));
        }
    }
    let _lock = RunLock::acquire(ctx)?;
    let mut manifest = RunManifest::start(ctx, "nightly", &params.dates);
    manifest.save(&ctx.storage).await?;
    let wanted = |job: &str| params.only.is_empty() || params.only.iter().any(|j| j == job);
    let mut ingest_outcome = None;
    let mut failure = None;
    if wanted("ingest") {
        let timer = JobTimer::start("ingest");
        match ingest::run(ctx, &params.dates).await {
            Ok(o) => {
                let (rows_in, rows_out) = o.rows();
                let details = serde_json::json!({
                    "tables": o.tables,
                    "opted_out_customers": o.opted_out_customers,
                    "pseudonyms_computed": o.pseudonyms_computed,
                });
                manifest
                    .jobs
                    .push(timer.finish(rows_in, rows_out, o.warnings.clone(), details));
                ingest_outcome = Some(o);
            }
            Err(e) => {
                error!(job = "ingest", error = %e, "job failed");
                manifest.jobs.push(timer.fail(&e));
                failure = Some(e);
            }
        }
    }
    // Models are snapshots as of a date: a range (backfill) ingests every day,
    // then models once, as of its last day.
    let last = *params
        .dates
        .last()
        .ok_or_else(|| Error::Config("no dates to run".into()))?;
    let mut transform_outcome = None;
    if failure.is_none() && wanted("transform") {
        let timer = JobTimer::start("transform");
        match transform::run(ctx, last).await {
            Ok(o) => {
                let details = serde_json::to_value(&o).unwrap_or_default();
                manifest
                    .jobs
                    .push(timer.finish(0, o.rows_out(), Vec::new(), details));
                transform_outcome = Some(o);
            }
            Err(e) => {
                error!(job = "transform", error = %e, "job failed");
                manifest.jobs.push(timer.fail(&e));
                failure = Some(e);
            }
        }
    }
    manifest.status = if failure.is_some() { "failed" } else { "ok" }.into();
    manifest.finished_at =
        Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let path = manifest.save(&ctx.storage).await?;
    info!(run_id = %manifest.run_id, status = %manifest.status, "nightly run finished");
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(NightlyOutcome {
        manifest_path: ctx.storage.display(&path),
        manifest,
        ingest: ingest_outcome,
        transform: transform_outcome,
    })
}

/// An exclusive lock on the data root, held for the whole run. It is an OS
/// file lock, so the kernel releases it when the process dies, however it
/// dies: a crashed run never blocks the next night.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock or fails at once with [`Error::Locked`].
    pub fn acquire(ctx: &JobContext) -> Result<RunLock> {
        // Object stores have no locks: a remote root is locked on this
        // machine, keyed by its URL (one scheduler host per root).
        let path = match ctx.storage.local_root() {
            Some(root) => root.join("runs").join(".lock"),
            None => {
                let id =
                    crate::ingest::pseudonym::fingerprint128(ctx.storage.url().as_str().as_bytes());
                std::env::temp_dir().join(format!("attune-{id:032x}.lock"))
            }
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked(format!(
                "another attune run holds {}; wait for it to finish (the lock is released when that process exits)",
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// Every date from `from` to `to`, inclusive.
pub fn date_range(from: NaiveDate, to: NaiveDate) -> Result<Vec<NaiveDate>> {
    if to < from {
        return Err(Error::Config(format!("--to {to} is before --from {from}")));
    }
    Ok(from.iter_days().take_while(|d| *d <= to).collect())
}
