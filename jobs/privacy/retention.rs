//! `attune retention`: deletes landing, lake, quarantine and mart partitions
//! older than `privacy.retention_days`.
//!
//! A partition is `landing/<table>/<YYYY-MM-DD>/` or
//! `<area>/<table>/dt=<YYYY-MM-DD>/`; it expires when its date is before the
//! run date minus `retention_days`. `control/` (consent and erasure lists),
//! `runs/` (manifests: counts only, and the proof of what retention deleted)
//! and `reports/` (aggregates an owner may want to compare over years) are
//! never touched.
//!
//! # Crash safety
//! The manifest (`runs/<run_id>.json`, command `retention`) is saved with
//! the full plan and status `running` before the first delete. A lake,
//! quarantine or mart partition is one file in attune's layout, so deleting
//! it is one atomic step; a partition of several files (a landing day,
//! `marts/model_metrics`) loses its files one by one, so an interrupted run
//! can leave part of it. Nothing reads those partitions any more (they are
//! older than every run date's window), and the next run lists what is left
//! and deletes it: retention is idempotent and a re-run completes the work.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaDataReader;
use serde::Serialize;
use tracing::{info, instrument};

use super::current_records::{Current, CurrentRecords, is_record_table};
use crate::context::JobContext;
use crate::manifest::{JobRecord, JobTimer, RunManifest, new_run_id};
use crate::storage::Storage;
use crate::{Error, Result};

/// Areas of the data root that hold dated partitions.
pub const AREAS: [&str; 4] = ["landing", "lake", "quarantine", "marts"];

/// A dated partition and its files.
#[derive(Debug, Clone)]
pub struct Partition {
    pub area: String,
    pub table: String,
    pub date: NaiveDate,
    /// `<area>/<table>/<folder>`.
    pub prefix: Path,
    pub files: Vec<ObjectMeta>,
}

/// Every dated partition with at least one file, sorted by (date, area, table).
/// One listing per table, several at once (see [`Storage::list_many`]), so
/// this costs tens of requests, not one per partition.
pub async fn list_partitions(storage: &Storage) -> Result<Vec<Partition>> {
    let mut tables = Vec::new();
    for area in AREAS {
        let folders = crate::catalog::table_listings(storage, area, |table| {
            Path::from(format!("{area}/{table}"))
        })
        .await?;
        tables.extend(
            folders
                .into_iter()
                .map(|(table, listed)| (area, table, listed)),
        );
    }
    let mut out = Vec::new();
    for (area, table, listed) in tables {
        let mut by_folder: BTreeMap<String, Vec<ObjectMeta>> = BTreeMap::new();
        for meta in listed {
            let parts: Vec<&str> = meta.location.as_ref().split('/').collect();
            if parts.len() >= 4 {
                by_folder
                    .entry(parts[2].to_string())
                    .or_default()
                    .push(meta);
            }
        }
        for (folder, files) in by_folder {
            let date = if area == "landing" {
                NaiveDate::parse_from_str(&folder, "%Y-%m-%d").ok()
            } else {
                folder
                    .strip_prefix("dt=")
                    .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            };
            if let Some(date) = date {
                out.push(Partition {
                    area: area.to_string(),
                    prefix: Path::from(format!("{area}/{table}/{folder}")),
                    table: table.clone(),
                    date,
                    files,
                });
            }
        }
    }
    out.sort_by(|a, b| (a.date, &a.area, &a.table).cmp(&(b.date, &b.area, &b.table)));
    Ok(out)
}

/// The oldest date kept on `date`: partitions before it expire.
pub fn cutoff(date: NaiveDate, retention_days: u32) -> NaiveDate {
    date - chrono::Duration::days(i64::from(retention_days))
}

/// An expired partition, as planned and recorded.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExpiredPartition {
    pub area: String,
    pub table: String,
    pub date: NaiveDate,
    pub path: String,
    pub files: u64,
    pub bytes: u64,
    /// Data rows (Parquet: from the footer; exports: as ingest counts
    /// them); `None` for a file attune cannot read.
    pub rows: Option<u64>,
    /// Rows kept because they are the current copy of their record (lake
    /// record tables only, see [`super::current_records`]); the partition stays
    /// with them alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_kept: Option<u64>,
}

/// How to run retention.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetentionOptions {
    /// List what would be deleted, delete nothing, write no manifest.
    pub dry_run: bool,
    /// Test hook: stop with an error (as a crash would) after this many
    /// partitions were deleted.
    pub fail_after_partitions: Option<usize>,
}

/// What retention did (or, on a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct RetentionOutcome {
    pub date: NaiveDate,
    pub retention_days: u32,
    /// Oldest date kept.
    pub cutoff: NaiveDate,
    pub dry_run: bool,
    pub partitions: Vec<ExpiredPartition>,
    pub files_deleted: u64,
    /// Rows in the expired partitions.
    pub rows_in: u64,
    /// Rows deleted (0 on a dry run).
    pub rows_out: u64,
    pub warnings: Vec<String>,
    /// `runs/<run_id>.json` of this retention run (not on a dry run).
    pub manifest_path: Option<String>,
}

/// Deletes every partition older than `retention_days` before `date`.
/// Takes no lock: `attune retention` and nightly hold the run lock.
#[instrument(skip_all, fields(job = "retention", run_id = %ctx.run_id))]
pub async fn run(
    ctx: &JobContext,
    date: NaiveDate,
    opts: &RetentionOptions,
) -> Result<RetentionOutcome> {
    let storage = &ctx.storage;
    crate::lake_listings::thaw(storage);
    let cutoff = cutoff(date, ctx.cfg.retention_days);
    let all = list_partitions(storage).await?;
    let expired: Vec<Partition> = all.iter().filter(|p| p.date < cutoff).cloned().collect();
    let mut planned = describe(ctx, &expired).await?;
    // Record tables keep their current rows: counted now, kept when run.
    let mut kept_rows = 0;
    for table in record_tables_expiring(&expired) {
        let mut walk = CurrentRecords::for_table(storage, &*ctx.contracts.get(&table)?).await?;
        for p in newest_first(&all, &table) {
            let current = walk.take(storage, p).await?;
            if p.date < cutoff
                && let Some(e) = planned.iter_mut().find(|e| e.path == p.prefix.as_ref())
            {
                e.rows_kept = Some(current.kept_rows());
                kept_rows += current.kept_rows();
            }
        }
    }
    let rows_in: u64 = planned.iter().filter_map(|p| p.rows).sum();
    let mut warnings = Vec::new();
    let unknown: Vec<&str> = (planned.iter())
        .filter(|p| p.rows.is_none())
        .map(|p| p.path.as_str())
        .collect();
    if !unknown.is_empty() {
        let more = match unknown.len() {
            n if n > 3 => format!(" and {} more", n - 3),
            _ => String::new(),
        };
        warnings.push(format!(
            "{} expired partition(s) hold files attune cannot count rows of (not Parquet, or not readable as the table's export): {}{more}; they are deleted all the same",
            unknown.len(),
            unknown[..unknown.len().min(3)].join(", ")
        ));
    }
    let mut outcome = RetentionOutcome {
        date,
        retention_days: ctx.cfg.retention_days,
        cutoff,
        dry_run: opts.dry_run,
        partitions: planned,
        files_deleted: 0,
        rows_in,
        rows_out: 0,
        warnings,
        manifest_path: None,
    };
    if opts.dry_run {
        return Ok(outcome);
    }

    // The plan is on record before anything is deleted.
    let timer = JobTimer::start("retention");
    let mut manifest = RunManifest::start(ctx, "retention", &[date]);
    // Its own run id: inside nightly, ctx.run_id names the nightly manifest.
    manifest.run_id = new_run_id();
    let mut running: JobRecord = JobTimer::start("retention").finish(
        rows_in,
        0,
        Vec::new(),
        serde_json::to_value(&outcome).unwrap_or_default(),
    );
    running.status = "running".into();
    manifest.jobs.push(running);
    let path = manifest.save(storage).await?;
    outcome.manifest_path = Some(storage.display(&path));

    let mut done = 0;
    let crash = |done: usize| {
        (opts.fail_after_partitions.is_some_and(|n| done >= n)).then(|| {
            Error::Internal(format!(
                "injected failure after {done} partitions (test hook)"
            ))
        })
    };
    for p in expired
        .iter()
        .filter(|p| !is_record_table(&p.area, &p.table))
    {
        if let Some(e) = crash(done) {
            return Err(e);
        }
        outcome.files_deleted += storage.delete_prefix(&p.prefix).await?;
        done += 1;
    }
    for table in record_tables_expiring(&expired) {
        let mut walk = CurrentRecords::for_table(storage, &*ctx.contracts.get(&table)?).await?;
        for p in newest_first(&all, &table) {
            let current = walk.take(storage, p).await?;
            if p.date >= cutoff {
                continue;
            }
            if let Some(e) = crash(done) {
                return Err(e);
            }
            outcome.files_deleted += keep_only(storage, p, current).await?;
            done += 1;
        }
    }
    outcome.rows_out = rows_in.saturating_sub(kept_rows);
    manifest.jobs = vec![timer.finish(
        outcome.rows_in,
        outcome.rows_out,
        outcome.warnings.clone(),
        serde_json::to_value(&outcome).unwrap_or_default(),
    )];
    manifest.status = "ok".into();
    manifest.finished_at = Some(crate::manifest::now_rfc3339());
    manifest.save(storage).await?;
    info!(
        partitions = outcome.partitions.len(),
        files = outcome.files_deleted,
        rows = outcome.rows_out,
        cutoff = %cutoff,
        "retention finished"
    );
    Ok(outcome)
}

/// Record tables (see [`super::current_records`]) with an expired lake partition.
fn record_tables_expiring(expired: &[Partition]) -> Vec<String> {
    let mut tables: Vec<String> = (expired.iter())
        .filter(|p| is_record_table(&p.area, &p.table))
        .map(|p| p.table.clone())
        .collect();
    tables.sort();
    tables.dedup();
    tables
}

/// The lake partitions of `table`, newest first.
fn newest_first<'a>(all: &'a [Partition], table: &str) -> Vec<&'a Partition> {
    let mut parts: Vec<&Partition> = (all.iter())
        .filter(|p| p.area == "lake" && p.table == table)
        .collect();
    parts.sort_by_key(|p| std::cmp::Reverse(p.date));
    parts
}

/// Replaces an expired record partition by its current rows (one file,
/// written before the others go), or deletes it when none is current.
/// Returns the files deleted.
async fn keep_only(storage: &Storage, p: &Partition, current: Current) -> Result<u64> {
    let (Some(schema), false) = (current.schema, current.kept.is_empty()) else {
        return storage.delete_prefix(&p.prefix).await;
    };
    let keep = Path::from(format!("{}/part-0.parquet", p.prefix));
    crate::parquet_io::write_batches(storage, &keep, schema, &current.kept).await?;
    let mut deleted = 0;
    for f in p.files.iter().filter(|f| f.location != keep) {
        storage.store().delete(&f.location).await?;
        deleted += 1;
    }
    Ok(deleted)
}

/// Run manifests looked through for the last retention run. With retention
/// on, every nightly writes one, so it is among the newest few; with it off,
/// this bounds what the privacy job reads each night to two months of runs.
const RECENT_RUNS: usize = 60;

/// The cut-off of the newest retention run that completed (on its own or
/// inside a nightly: each writes a `retention` manifest), among the newest
/// [`RECENT_RUNS`] runs; `None` when there is none. Partitions older than it
/// should be gone (check 6).
pub async fn last_completed_cutoff(storage: &Storage) -> Result<Option<NaiveDate>> {
    for id in crate::runs::ids(storage)
        .await?
        .into_iter()
        .take(RECENT_RUNS)
    {
        let Ok(m) = RunManifest::load(storage, &id).await else {
            continue; // a manifest being written, or from another version
        };
        if m.command != "retention" || m.status != "ok" {
            continue;
        }
        let cutoff = (m.jobs.first())
            .and_then(|j| j.details.get("cutoff"))
            .and_then(|c| c.as_str())
            .and_then(|c| c.parse::<NaiveDate>().ok());
        if cutoff.is_some() {
            return Ok(cutoff);
        }
    }
    Ok(None)
}

/// Counts files, bytes and rows of each expired partition.
async fn describe(ctx: &JobContext, expired: &[Partition]) -> Result<Vec<ExpiredPartition>> {
    let handle = tokio::runtime::Handle::current();
    let delimiter = ctx.cfg.ingest.delimiter;
    // collected first: a lazy map's closure borrows for a lifetime that
    // keeps the nightly from spawning this job as a task (rustc #102211)
    let counts: Vec<_> = expired
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (storage, handle) = (ctx.storage.clone(), handle.clone());
            let contract = ctx.contracts.get(&p.table).ok();
            let p = p.clone();
            async move {
                let mut rows = Some(0u64);
                for f in &p.files {
                    let n = if p.area == "landing" {
                        match &contract {
                            Some(c) => {
                                let (c, s, h, loc) = (
                                    c.clone(),
                                    storage.clone(),
                                    handle.clone(),
                                    f.location.clone(),
                                );
                                tokio::task::spawn_blocking(move || {
                                    super::landing::count_rows(&s, &h, &c, &loc, delimiter)
                                })
                                .await
                                .map_err(crate::nightly::panics::joined("a row counter"))??
                            }
                            None => None,
                        }
                    } else if f.location.extension() == Some("parquet") {
                        parquet_rows(&storage, f).await?
                    } else {
                        None
                    };
                    rows = rows.zip(n).map(|(a, b)| a + b);
                }
                Ok::<_, Error>((
                    i,
                    ExpiredPartition {
                        area: p.area.clone(),
                        table: p.table.clone(),
                        date: p.date,
                        path: p.prefix.to_string(),
                        files: p.files.len() as u64,
                        bytes: p.files.iter().map(|f| f.size).sum(),
                        rows,
                        rows_kept: None,
                    },
                ))
            }
        })
        .collect();
    let mut tasks = futures::stream::iter(counts).buffer_unordered(ctx.cfg.ingest.threads.max(1));
    let mut out = Vec::with_capacity(expired.len());
    while let Some(r) = tasks.next().await {
        out.push(r?);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, p)| p).collect())
}

/// Rows of a Parquet file, from its footer only (one or two range reads);
/// `None` when the file is not Parquet after all (empty, truncated, foreign):
/// it expires like any other file, and one bad file must not stop retention.
async fn parquet_rows(storage: &Storage, meta: &ObjectMeta) -> Result<Option<u64>> {
    let size = meta.size;
    if size == 0 {
        return Ok(None);
    }
    let mut tail = size.min(64 * 1024);
    loop {
        let bytes = storage
            .store()
            .get_range(&meta.location, size - tail..size)
            .await?;
        let mut reader = ParquetMetaDataReader::new();
        match reader.try_parse_sized(&bytes, size) {
            Ok(()) => {
                let rows = match reader.finish() {
                    Ok(m) => m.file_metadata().num_rows(),
                    Err(_) => return Ok(None),
                };
                return Ok(Some(u64::try_from(rows).unwrap_or(0)));
            }
            Err(ParquetError::NeedMoreData(n)) if (n as u64) > tail && (n as u64) <= size => {
                tail = n as u64;
            }
            Err(_) => return Ok(None),
        }
    }
}

/// Shared with check 6: partitions per (area, table).
pub fn by_table(partitions: &[Partition]) -> BTreeMap<(String, String), Vec<NaiveDate>> {
    let mut out: BTreeMap<(String, String), Vec<NaiveDate>> = BTreeMap::new();
    for p in partitions {
        out.entry((p.area.clone(), p.table.clone()))
            .or_default()
            .push(p.date);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_keeps_exactly_retention_days_before_the_run_date() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        assert_eq!(cutoff(d("2025-03-10"), 7), d("2025-03-03"));
        assert_eq!(cutoff(d("2025-03-01"), 1), d("2025-02-28"));
        // 2024 is a leap year: 730 days before 2026-01-01 is 2024-01-02.
        assert_eq!(cutoff(d("2026-01-01"), 730), d("2024-01-02"));
    }
}
