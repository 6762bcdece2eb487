//! Privacy: does the business keep only what it needs, and nothing it must not?
//!
//! `attune privacy --date D` runs ten checks ([`checks::CHECKS`]) and writes
//! one row per finding to `marts/privacy_checks/dt=D/` (check, status
//! `pass`/`warn`/`fail`, table and column concerned, a count, what was found
//! and what to do). It reads `lake/ingest_audit` (what arrived and what
//! ingest did with it), `marts/lineage` (which columns the SQL models read),
//! every string value of every lake partition and of the run date's marts
//! but its own (one scan with ingest's PII detectors, the landing
//! identifiers, and the consent and erasure lists), the partitions on disk
//! (its own of the run date left out: a re-run would see one more), the attribute
//! combinations of `marts/customer_attributes`, and the marts that feed the
//! report. Nothing it writes or logs holds a value from those tables: only
//! table and column names and counts.
//!
//! Also here: [`retention`] (`attune retention`) and [`forget`]
//! (`attune forget`, the right to erasure, with the list in [`erasure`] that
//! ingest consults).
//!
//! # Registries
//! Check 2 needs the lake columns each Rust job reads and check 8 the
//! feature list of each model; both are one line per job in
//! [`rust_job_reads`] and [`model_feature_lists`]. Check 9 needs the marts
//! that feed the report: [`RELEASED_TABLES`].

pub mod checks;
pub mod current_records;
pub mod erasure;
pub mod forget;
pub mod landing;
pub mod retention;
pub mod scan;
pub mod scan_cache;
pub mod withdrawal;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use object_store::path::Path;
use serde::Serialize;
use tracing::{info, instrument, warn};

use self::checks::features::Lineage;
use self::checks::inventory::ArrivedColumn;
use self::checks::k_anonymity::Class;
use self::checks::leaks::{LeakFacts, RawIdSource};
use self::checks::released::{ReleasedTable, ReportUse, TableCells};
use self::checks::unused::{ModelInfo, Usage};
use self::checks::{Finding, Status};
use self::scan::{Needles, Partitions};
use crate::config::FailOn;
use crate::context::JobContext;
use crate::ingest::consent::ConsentList;
use crate::storage::partition_file;
use crate::transform::models::Materialized;
use crate::{Error, Result, catalog, mart};

/// Lake columns this job reads directly (check 2 counts every job's reads).
/// The leak scan reads every string column too, but to look for what must
/// not be there, not to use it.
pub const LAKE_COLUMNS_READ: &[(&str, &str)] = &[
    ("ingest_audit", "table_name"),
    ("ingest_audit", "column_name"),
    ("ingest_audit", "outcome"),
    ("ingest_audit", "rows"),
];

/// Each Rust job's declared lake reads: one line per job that declares
/// `LAKE_COLUMNS_READ` in its module. Add yours here.
const JOB_READS: &[(&str, &[(&str, &str)])] = &[
    ("privacy", LAKE_COLUMNS_READ),
    ("transform", crate::transform::superseded::LAKE_COLUMNS_READ),
    ("voice", crate::voice::LAKE_COLUMNS_READ),
    ("segment", crate::segment::LAKE_COLUMNS_READ),
    ("value", crate::value::LAKE_COLUMNS_READ),
    ("roi", crate::roi::LAKE_COLUMNS_READ),
    ("empathy", crate::empathy::LAKE_COLUMNS_READ),
    ("fairness", crate::fairness::LAKE_COLUMNS_READ),
    ("report", crate::report::LAKE_COLUMNS_READ),
];

/// (job, lake table, column) for every lake column a Rust job reads directly.
pub fn rust_job_reads() -> Vec<(&'static str, &'static str, &'static str)> {
    JOB_READS
        .iter()
        .flat_map(|(job, reads)| reads.iter().map(move |(t, c)| (*job, *t, *c)))
        .collect()
}

/// Feature lists of the models attune fits: one line per model. Add yours here.
const FEATURE_LISTS: &[(&str, &[&str])] = &[
    ("segment", crate::segment::features::FEATURES),
    // The churn model takes every numeric column of customer_features, which
    // the sensitive-features check covers as a table.
];

/// (model, features) of every model attune fits.
pub fn model_feature_lists() -> Vec<(&'static str, &'static [&'static str])> {
    FEATURE_LISTS.to_vec()
}

/// The marts model features are taken from (check 8 checks their lineage).
pub const FEATURE_TABLES: &[&str] = &["customer_features"];

/// The marts that feed the report, with the column that counts the people
/// (answers, tickets) behind each row. One line per table; tables not yet
/// written on a date are skipped.
pub const RELEASED_TABLES: &[ReleasedTable] = &[
    ReleasedTable {
        table: "nps_daily",
        count_columns: &["responses"],
        report_use: ReportUse::Aggregated,
        people_rows: None,
    },
    ReleasedTable {
        table: "csat_daily",
        count_columns: &["responses"],
        report_use: ReportUse::Aggregated,
        people_rows: None,
    },
    ReleasedTable {
        table: "service_levels",
        count_columns: &["tickets"],
        report_use: ReportUse::Aggregated,
        people_rows: None,
    },
    ReleasedTable {
        table: "segment_profiles",
        count_columns: &["customers"],
        report_use: ReportUse::AsIs,
        people_rows: None,
    },
    ReleasedTable {
        table: "fairness_audit",
        count_columns: &["n"],
        report_use: ReportUse::AsIs,
        people_rows: Some("decision <> 'counterfactual_probe'"),
    },
    ReleasedTable {
        table: "empathy_index",
        // suppressed by customers, not contacts: 15 contacts of 2 people is small
        count_columns: &["customers"],
        report_use: ReportUse::AsIs,
        people_rows: None,
    },
    ReleasedTable {
        table: "initiative_roi",
        count_columns: &["treated_n", "control_n"],
        report_use: ReportUse::AsIs,
        // a row whose estimate was suppressed shows the arm sizes only
        people_rows: Some("effect IS NOT NULL"),
    },
    ReleasedTable {
        table: "churn_rates",
        count_columns: &["customers"],
        report_use: ReportUse::AsIs,
        people_rows: None,
    },
    ReleasedTable {
        table: "voice_scores",
        count_columns: &["n"],
        report_use: ReportUse::AsIs,
        people_rows: None,
    },
    ReleasedTable {
        table: "voice_closed_loop",
        count_columns: &["n"],
        report_use: ReportUse::AsIs,
        people_rows: None,
    },
    ReleasedTable {
        table: "voice_themes",
        count_columns: &["messages"],
        report_use: ReportUse::AsIs,
        people_rows: None,
    },
];

/// One check's result, for the report and the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckStatus {
    pub id: u8,
    pub name: String,
    pub title: String,
    pub status: Status,
}

/// What the report shows: a score and the checks that need attention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrivacySummary {
    /// 0–100: a passing check counts 1, a warning ½, a failure 0.
    pub score: u32,
    pub checks: Vec<CheckStatus>,
    /// Names of the checks at `fail`.
    pub failing: Vec<String>,
    /// Names of the checks at `warn`.
    pub warning: Vec<String>,
}

impl PrivacySummary {
    /// The summary of a set of findings.
    pub fn of(findings: &[Finding]) -> PrivacySummary {
        let statuses = checks::statuses(findings);
        let points: u32 = statuses
            .iter()
            .map(|(_, s)| match s {
                Status::Pass => 2,
                Status::Warn => 1,
                Status::Fail => 0,
            })
            .sum();
        let n = statuses.len() as u32;
        let named = |want: Status| {
            statuses
                .iter()
                .filter(|(_, s)| *s == want)
                .map(|(c, _)| c.name.to_string())
                .collect()
        };
        PrivacySummary {
            // Rounded half up: (100 * points / 2n), integer arithmetic.
            score: (100 * points + n) / (2 * n),
            checks: statuses
                .iter()
                .map(|(c, s)| CheckStatus {
                    id: c.id,
                    name: c.name.into(),
                    title: c.title.into(),
                    status: *s,
                })
                .collect(),
            failing: named(Status::Fail),
            warning: named(Status::Warn),
        }
    }
}

/// What the privacy job did.
#[derive(Debug, Clone, Serialize)]
pub struct PrivacyOutcome {
    pub date: NaiveDate,
    /// Rows scanned (every lake partition and the run date's marts).
    pub rows_in: u64,
    /// Rows written to `marts/privacy_checks`.
    pub rows_out: u64,
    pub warnings: Vec<String>,
    pub summary: PrivacySummary,
    /// Findings at `warn` and at `fail`.
    pub warn_findings: usize,
    pub fail_findings: usize,
    pub fail_on: FailOn,
    pub seconds_scanning: f64,
    /// When the lake's scan began (RFC 3339): in a nightly, beside the
    /// transform or after it (`nightly::early`), else at the job's turn.
    pub lake_scan_started_at: String,
    /// Which lake files the scan read, and which it counted as the last
    /// night's scan did.
    pub lake_scan: scan_cache::CacheUse,
}

impl PrivacyOutcome {
    /// Findings at or above the configured gate (`privacy.fail_on`).
    pub fn gate_findings(&self) -> usize {
        match self.fail_on {
            FailOn::Never => 0,
            FailOn::Warn => self.warn_findings + self.fail_findings,
            FailOn::Fail => self.fail_findings,
        }
    }

    /// `Err(Error::AuditGate)` when findings reach `privacy.fail_on`. Call it
    /// after everything else of the run is written (nightly: at the end).
    pub fn gate(&self) -> Result<()> {
        match self.gate_findings() {
            0 => Ok(()),
            findings => Err(Error::AuditGate {
                job: "privacy".into(),
                findings,
            }),
        }
    }
}

/// Whether `area/table` is the job's own output, `marts/privacy_checks`.
fn is_own_output(area: &str, table: &str) -> bool {
    area == "marts" && table == "privacy_checks"
}

/// The part of the privacy job's scan that reads no mart: what the leak
/// checks look for (the landing identifiers, the consent and erasure lists)
/// and what every lake partition holds. The jobs between ingest and
/// privacy write marts only, so a nightly runs this beside them and the
/// privacy job scans the run date's marts at its turn (see
/// [`run_after`]).
pub struct LakeScan {
    raw: Option<RawIdsRead>,
    consent: ConsentList,
    requests: Vec<erasure::ErasureRequest>,
    erased: std::collections::HashSet<crate::ingest::pseudonym::Pseudonym>,
    /// With the lake's record keys only: the marts' come from the lineage
    /// the transform writes.
    needles: Needles,
    facts: scan::ScanFacts,
    started_at: String,
    cache: scan_cache::CacheUse,
    seconds: f64,
    /// The run date's mart files [`scan_marts_early`] scanned, each with
    /// its counts: those still listed alike at the privacy job's turn are
    /// not read again.
    marts_early: Vec<(scan::TableFile, scan::ScanFacts)>,
}

/// Scans every lake partition for what the leak checks look for.
#[instrument(skip_all, fields(job = "privacy", run_id = %ctx.run_id))]
pub async fn scan_lake(ctx: &JobContext, date: NaiveDate) -> Result<LakeScan> {
    let storage = &ctx.storage;
    let started = std::time::Instant::now();
    let started_at = crate::manifest::now_rfc3339();
    let raw = landing_ids(ctx, date).await?;
    let consent = ConsentList::load(storage).await?;
    let requests = erasure::load_requests(storage).await?;
    let mut erased = std::collections::HashSet::new();
    for r in &requests {
        erased.extend(r.pseudonym_set()?);
    }
    let needles = Arc::new(Needles::new(
        raw.as_ref()
            .map(|r| r.fingerprints.iter().copied().collect())
            .unwrap_or_default(),
        raw.as_ref().map(|r| r.shape.clone()).unwrap_or_default(),
        consent.pseudonyms.clone(),
        erased.iter().copied().collect(),
        record_keys(ctx, None),
    ));
    crate::nightly::progress::step("scanning every string of the lake");
    let files = scan::table_files(storage, "lake", Partitions::All).await?;
    let (facts, cache) = scan_cache::scan_lake(
        storage,
        files,
        needles.clone(),
        ctx.cfg.ingest.threads,
        date,
    )
    .await?;
    let needles = Arc::into_inner(needles)
        .ok_or_else(|| Error::Internal("the lake scan kept its needles".into()))?;
    let seconds = started.elapsed().as_secs_f64();
    info!(
        files = facts.files,
        rows = facts.rows,
        seconds,
        "scanned the lake"
    );
    Ok(LakeScan {
        raw,
        consent,
        requests,
        erased,
        needles,
        facts,
        started_at,
        cache,
        seconds,
        marts_early: Vec::new(),
    })
}

/// Scans the run date's mart files as they are now, beside the last jobs
/// before privacy: a nightly calls it once only the audit is left to run,
/// whose cores the audit does not keep busy. Files written or rewritten
/// afterwards are scanned at the privacy job's turn ([`run_after`]).
#[instrument(skip_all, fields(job = "privacy", run_id = %ctx.run_id))]
pub async fn scan_marts_early(
    ctx: &JobContext,
    date: NaiveDate,
    mut lake: LakeScan,
) -> Result<LakeScan> {
    let started = std::time::Instant::now();
    let storage = &ctx.storage;
    let session = catalog::new_session(storage);
    let lineage = if catalog::list_tables(storage, "marts")
        .await?
        .iter()
        .any(|t| t.name == "lineage")
    {
        catalog::register(&session, storage, "marts", "lineage", "lineage").await?;
        load_lineage(&session, date).await?
    } else {
        None
    };
    lake.needles.record_keys = record_keys(ctx, lineage.as_ref().map(|l| &l.lineage));
    let needles = Arc::new(std::mem::take(&mut lake.needles));
    let files = mart_files(storage, date).await?;
    let scanned = scan::scan_each(storage, files, needles.clone(), ctx.cfg.ingest.threads).await?;
    lake.needles = Arc::into_inner(needles)
        .ok_or_else(|| Error::Internal("the marts scan kept its needles".into()))?;
    info!(
        files = scanned.len(),
        seconds = started.elapsed().as_secs_f64(),
        "scanned the marts written so far"
    );
    lake.marts_early = scanned;
    Ok(lake)
}

/// The run date's mart files the checks judge: every one but the job's own
/// output. Its findings of an earlier run for the date (names and counts,
/// never values) are not input, or a re-run would differ.
async fn mart_files(
    storage: &crate::storage::Storage,
    date: NaiveDate,
) -> Result<Vec<scan::TableFile>> {
    let mut files = scan::table_files(storage, "marts", Partitions::Of(date)).await?;
    files.retain(|f| !is_own_output(&f.area, &f.table));
    Ok(files)
}

/// Runs every check as of `date` and writes `marts/privacy_checks`.
pub async fn run(ctx: &JobContext, date: NaiveDate) -> Result<PrivacyOutcome> {
    run_after(ctx, date, None).await
}

/// [`run`], with the lake scanned already when `lake` is given (by
/// [`scan_lake`] for the same date, over the lake as it is now).
#[instrument(skip_all, fields(job = "privacy", run_id = %ctx.run_id))]
pub async fn run_after(
    ctx: &JobContext,
    date: NaiveDate,
    lake: Option<LakeScan>,
) -> Result<PrivacyOutcome> {
    let storage = &ctx.storage;
    let cfg = &ctx.cfg;
    let (session, tables) = catalog::session_with_all(storage).await?;
    let has = |area: &str, name: &str| tables.iter().any(|t| t.area == area && t.name == name);
    let mut warnings = Vec::new();

    let audit = if has("lake", "ingest_audit") {
        load_audit(&session).await?
    } else {
        warnings.push("no lake/ingest_audit: run ingest before the privacy checks".into());
        Audit::default()
    };
    let lineage = if has("marts", "lineage") {
        load_lineage(&session, date).await?
    } else {
        None
    };

    // One pass over every string value of lake and marts.
    let lake = match lake {
        Some(lake) => lake,
        None => scan_lake(ctx, date).await?,
    };
    let started = std::time::Instant::now();
    let LakeScan {
        raw,
        consent,
        requests,
        erased,
        mut needles,
        facts: mut scanned,
        started_at: lake_scan_started_at,
        cache: lake_scan,
        seconds: lake_seconds,
        marts_early,
    } = lake;
    needles.record_keys = record_keys(ctx, lineage.as_ref().map(|l| &l.lineage));
    crate::nightly::progress::step("scanning every string of the marts");
    // a file scanned early counts as it was then when it is listed alike
    // now; one written, rewritten or removed since is not
    let mut early: HashMap<Path, (scan::TableFile, scan::ScanFacts)> = marts_early
        .into_iter()
        .map(|(f, facts)| (f.path.clone(), (f, facts)))
        .collect();
    let mut files = Vec::new();
    for f in mart_files(storage, date).await? {
        match early.remove(&f.path) {
            Some((e, facts))
                if (e.size, e.modified, &e.e_tag) == (f.size, f.modified, &f.e_tag) =>
            {
                scanned.merge(facts)
            }
            _ => files.push(f),
        }
    }
    let marts = scan::scan_leaks(storage, files, Arc::new(needles), cfg.ingest.threads).await?;
    scanned.merge(marts);
    let seconds_scanning = lake_seconds + started.elapsed().as_secs_f64();
    info!(
        files = scanned.files,
        rows = scanned.rows,
        seconds = seconds_scanning,
        "scanned lake and marts"
    );

    crate::nightly::progress::step("retention, k-anonymity and released tables");
    let partitions = retention::list_partitions(storage).await?;
    let classes = if has("marts", "customer_attributes") {
        Some(load_classes(&session, date).await?)
    } else {
        None
    };
    let mut released = Vec::new();
    for t in RELEASED_TABLES {
        let cells = if has("marts", t.table) {
            released_cells(&session, t, date, cfg.min_group_size).await?
        } else {
            TableCells::Absent
        };
        released.push((*t, cells));
    }

    let rows_in = scanned.rows;
    let leak = LeakFacts {
        scan: scanned,
        raw_ids: raw.as_ref().map(|r| RawIdSource {
            identifiers: r.fingerprints.len() as u64,
            files: r.files,
            customer_export_days: r.customer_days,
        }),
        opted_out_customers: consent.len() as u64,
        consent_excluded: audit.counter("consent_excluded"),
        erased_customers: erased.len() as u64,
        erased_at_ingest: audit.counter("erased"),
        pending_erasures: requests
            .iter()
            .filter(|r| r.status == erasure::RequestStatus::Pending)
            .map(|r| r.request_id.clone())
            .collect(),
        uncarried_erasures: erasure::uncarried(
            &requests,
            crate::nightly::last_ingest_key(storage)
                .await?
                .map(|(_, key_id)| key_id)
                .as_deref(),
        )?,
        date: date.to_string(),
    };
    let models: Vec<ModelInfo> = crate::transform::models::load(cfg.models_dir.as_deref())?
        .into_iter()
        .map(|m| ModelInfo {
            table: m.materialized == Materialized::Table,
            name: m.name,
            references: m.references,
        })
        .collect();
    let usage = Usage {
        sql: lineage
            .as_ref()
            .map(|l| checks::unused::used_by_sql(&models, &l.lineage)),
        rust: rust_job_reads()
            .into_iter()
            .map(|(j, t, c)| (j.to_string(), t.to_string(), c.to_string()))
            .collect(),
    };
    let sensitive = checks::features::sensitive_columns(&ctx.contracts);
    let mut findings = Vec::new();
    findings.extend(checks::inventory::check(&audit.arrived, &ctx.contracts));
    findings.extend(checks::unused::check(
        &ctx.contracts,
        &usage,
        &audit.counter("rows_written"),
    ));
    findings.extend(checks::leaks::pii_scan(&leak));
    findings.extend(checks::leaks::pseudonymization(&leak));
    findings.extend(checks::leaks::consent(&leak));
    // Its own partition of the date: absent on a first run, there on a
    // re-run, so left out; its earlier ones are checked like every mart's.
    let mut by_table = retention::by_table(&partitions);
    by_table.retain(|(area, table), dates| {
        if is_own_output(area, table) {
            dates.retain(|d| *d != date);
        }
        !dates.is_empty()
    });
    findings.extend(checks::retention::check(
        &by_table,
        date,
        cfg.retention_days,
        cfg.retention_enabled,
        retention::last_completed_cutoff(storage).await?,
    ));
    findings.extend(checks::k_anonymity::check(
        classes.as_deref(),
        cfg.min_group_size,
    ));
    findings.extend(checks::features::check(
        &sensitive,
        &model_feature_lists(),
        FEATURE_TABLES,
        lineage.as_ref().map(|l| &l.lineage),
    ));
    findings.extend(checks::released::check(&released, cfg.min_group_size));
    findings.extend(checks::leaks::erasure(&leak));
    checks::sort(&mut findings);

    let batch = findings_batch(&findings)?;
    let rows_out = mart::publish(
        storage,
        "privacy_checks",
        date,
        batch.schema(),
        std::slice::from_ref(&batch),
    )
    .await?;
    let summary = PrivacySummary::of(&findings);
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    let outcome = PrivacyOutcome {
        date,
        rows_in,
        rows_out,
        warnings,
        warn_findings: count(Status::Warn),
        fail_findings: count(Status::Fail),
        summary,
        fail_on: cfg.privacy_fail_on,
        seconds_scanning,
        lake_scan_started_at,
        lake_scan,
    };
    if outcome.fail_findings > 0 {
        warn!(
            failing = ?outcome.summary.failing,
            findings = outcome.fail_findings,
            "privacy checks failed: personal data where it must not be (see marts/privacy_checks)"
        );
    }
    info!(
        score = outcome.summary.score,
        findings = findings.len(),
        failing = outcome.summary.failing.len(),
        "privacy checks written"
    );
    Ok(outcome)
}

/// The summary of the checks written for `date`, for the report; `None`
/// when the privacy job has not run for that date.
pub async fn load_summary(
    storage: &crate::storage::Storage,
    date: NaiveDate,
) -> Result<Option<PrivacySummary>> {
    let path = partition_file("marts", "privacy_checks", date);
    if storage.get_opt(&path).await?.is_none() {
        return Ok(None);
    }
    let mut findings = Vec::new();
    for b in crate::parquet_io::read_batches(storage, &path).await? {
        let ids = column::<Int32Array>(&b, "check_id")?;
        let statuses = column::<StringArray>(&b, "status")?;
        for i in 0..b.num_rows() {
            let status = match statuses.value(i) {
                "pass" => Status::Pass,
                "warn" => Status::Warn,
                "fail" => Status::Fail,
                other => {
                    return Err(Error::input(
                        path.to_string(),
                        format!("unknown status `{other}`"),
                    ));
                }
            };
            let id = u8::try_from(ids.value(i))
                .ok()
                .filter(|id| (1..=checks::CHECKS.len() as u8).contains(id))
                .ok_or_else(|| Error::input(path.to_string(), "check_id out of range"))?;
            findings.push(Finding::new(id, status, 0, ""));
        }
    }
    Ok(Some(PrivacySummary::of(&findings)))
}

fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> Result<&'a T> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| Error::Internal(format!("column `{name}` missing or of another type")))
}

/// Schema of `marts/privacy_checks` (documented in schemas/marts/privacy_checks.toml).
pub fn checks_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("check_id", DataType::Int32, false),
        Field::new("check_name", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("area", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, true),
        Field::new("column_name", DataType::Utf8, true),
        Field::new("count", DataType::Int64, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("advice", DataType::Utf8, false),
    ]))
}

fn findings_batch(findings: &[Finding]) -> Result<RecordBatch> {
    let strings = |f: &dyn Fn(&Finding) -> Option<String>| -> ArrayRef {
        Arc::new(findings.iter().map(f).collect::<StringArray>())
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            findings
                .iter()
                .map(|f| i32::from(f.check_id))
                .collect::<Int32Array>(),
        ),
        strings(&|f| Some(checks::def(f.check_id).name.into())),
        strings(&|f| Some(checks::def(f.check_id).title.into())),
        strings(&|f| Some(f.status.as_str().into())),
        strings(&|f| f.area.clone()),
        strings(&|f| f.table.clone()),
        strings(&|f| f.column.clone()),
        Arc::new(
            findings
                .iter()
                .map(|f| i64::try_from(f.count).unwrap_or(i64::MAX))
                .collect::<Int64Array>(),
        ),
        strings(&|f| Some(f.detail.clone())),
        strings(&|f| Some(f.advice.clone())),
    ];
    Ok(RecordBatch::try_new(checks_schema(), columns)?)
}

/// Runs a short query and returns its batches.
async fn query(session: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(session.sql(sql).await?.collect().await?)
}

/// Column `i` of a query result as strings (cast when needed).
fn strings_at(b: &RecordBatch, i: usize) -> Result<Vec<Option<String>>> {
    let a = cast(b.column(i), &DataType::Utf8)?;
    let s = a.as_string::<i32>();
    Ok((0..s.len())
        .map(|j| s.is_valid(j).then(|| s.value(j).to_string()))
        .collect())
}

/// Column `i` of a query result as integers (cast when needed).
fn ints_at(b: &RecordBatch, i: usize) -> Result<Vec<Option<i64>>> {
    let a = cast(b.column(i), &DataType::Int64)?;
    let v = a.as_primitive::<Int64Type>();
    Ok((0..v.len())
        .map(|j| v.is_valid(j).then(|| v.value(j)))
        .collect())
}

/// `lake/ingest_audit` summed over every date.
#[derive(Debug, Default)]
struct Audit {
    arrived: Vec<ArrivedColumn>,
    /// (table, counter outcome) → rows.
    counters: BTreeMap<(String, String), u64>,
}

impl Audit {
    /// Table → rows for one counter (`rows_written`, `consent_excluded`, `erased`…).
    fn counter(&self, outcome: &str) -> BTreeMap<String, u64> {
        self.counters
            .iter()
            .filter(|((_, o), _)| o == outcome)
            .map(|((t, _), n)| (t.clone(), *n))
            .collect()
    }
}

async fn load_audit(session: &SessionContext) -> Result<Audit> {
    // `rows` is quoted: it is a keyword in window frames.
    let batches = query(
        session,
        "SELECT table_name, column_name, outcome, SUM(\"rows\") AS n, COUNT(*) AS files \
         FROM ingest_audit GROUP BY table_name, column_name, outcome \
         ORDER BY table_name, column_name, outcome",
    )
    .await?;
    let mut audit = Audit::default();
    for b in &batches {
        let (t, c, o, n, files) = (
            strings_at(b, 0)?,
            strings_at(b, 1)?,
            strings_at(b, 2)?,
            ints_at(b, 3)?,
            ints_at(b, 4)?,
        );
        for i in 0..b.num_rows() {
            let (Some(table), Some(outcome)) = (t[i].clone(), o[i].clone()) else {
                continue;
            };
            let rows = n[i].and_then(|x| u64::try_from(x).ok()).unwrap_or(0);
            match c[i].clone() {
                Some(column) => audit.arrived.push(ArrivedColumn {
                    table,
                    column,
                    outcome,
                    rows,
                    files: files[i].and_then(|x| u64::try_from(x).ok()).unwrap_or(0),
                }),
                None => {
                    audit.counters.insert((table, outcome), rows);
                }
            }
        }
    }
    Ok(audit)
}

/// Lineage of the run date.
struct LineageFacts {
    lineage: Lineage,
}

async fn load_lineage(session: &SessionContext, date: NaiveDate) -> Result<Option<LineageFacts>> {
    let batches = query(
        session,
        &format!(
            "SELECT model, output_column, source_table, source_column, usage \
             FROM lineage WHERE dt = DATE '{date}'"
        ),
    )
    .await?;
    let mut facts = LineageFacts {
        lineage: Lineage::default(),
    };
    let mut rows = 0;
    for b in &batches {
        let (m, o, t, c, u) = (
            strings_at(b, 0)?,
            strings_at(b, 1)?,
            strings_at(b, 2)?,
            strings_at(b, 3)?,
            strings_at(b, 4)?,
        );
        for i in 0..b.num_rows() {
            let (Some(model), Some(table), Some(column)) =
                (m[i].clone(), t[i].clone(), c[i].clone())
            else {
                continue;
            };
            rows += 1;
            let source = (table, column);
            match (u[i].as_deref(), o[i].clone()) {
                (Some("output"), Some(out)) => {
                    facts
                        .lineage
                        .outputs
                        .entry((model, out))
                        .or_default()
                        .insert(source);
                }
                _ => {
                    facts.lineage.logic.entry(model).or_default().insert(source);
                }
            }
        }
    }
    Ok((rows > 0).then_some(facts))
}

async fn load_classes(session: &SessionContext, date: NaiveDate) -> Result<Vec<Class>> {
    let batches = query(
        session,
        &format!(
            "SELECT age_band, gender, language, region, postal_prefix, COUNT(*) AS customers \
             FROM customer_attributes WHERE dt = DATE '{date}' \
             GROUP BY age_band, gender, language, region, postal_prefix"
        ),
    )
    .await?;
    let mut out = Vec::new();
    for b in &batches {
        let (a, g, l, r, p, n) = (
            strings_at(b, 0)?,
            strings_at(b, 1)?,
            strings_at(b, 2)?,
            strings_at(b, 3)?,
            strings_at(b, 4)?,
            ints_at(b, 5)?,
        );
        for i in 0..b.num_rows() {
            out.push(Class {
                age_band: a[i].clone(),
                gender: g[i].clone(),
                language: l[i].clone(),
                region: r[i].clone(),
                postal_prefix: p[i].clone(),
                customers: n[i].and_then(|x| u64::try_from(x).ok()).unwrap_or(0),
            });
        }
    }
    out.sort();
    Ok(out)
}

async fn released_cells(
    session: &SessionContext,
    t: &ReleasedTable,
    date: NaiveDate,
    k: usize,
) -> Result<TableCells> {
    let schema = session.table(t.table).await?.schema().as_arrow().clone();
    if (t.count_columns.iter()).any(|c| schema.field_with_name(c).is_err()) {
        return Ok(TableCells::NoCountColumn);
    }
    // A row the writing job marked suppressed is not released.
    let not_suppressed = match schema.field_with_name("suppressed") {
        Ok(f) if f.data_type() == &DataType::Boolean => " AND NOT COALESCE(suppressed, FALSE)",
        _ => "",
    };
    let c = match t.count_columns {
        [one] => one.to_string(),
        several => format!("LEAST({})", several.join(", ")),
    };
    let present: Vec<String> = (t.count_columns.iter())
        .map(|c| format!("{c} IS NOT NULL"))
        .collect();
    let present = present.join(" AND ");
    let people = t
        .people_rows
        .map(|p| format!(" AND ({p})"))
        .unwrap_or_default();
    let batches = query(
        session,
        &format!(
            "SELECT COUNT(*), SUM(CASE WHEN {c} < {k} THEN 1 ELSE 0 END), MIN({c}) \
             FROM {} WHERE dt = DATE '{date}' AND {present}{not_suppressed}{people}",
            t.table
        ),
    )
    .await?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(TableCells::Absent);
    };
    let cells = ints_at(b, 0)?[0].unwrap_or(0);
    if cells == 0 {
        return Ok(TableCells::Absent);
    }
    Ok(TableCells::Scanned {
        cells: u64::try_from(cells).unwrap_or(0),
        small: ints_at(b, 1)?[0]
            .and_then(|x| u64::try_from(x).ok())
            .unwrap_or(0),
        min: ints_at(b, 2)?[0].and_then(|x| u64::try_from(x).ok()),
    })
}

/// Record-key columns (see [`Needles::record_keys`]): the primary-key columns
/// of plain class in the lake (`order_id`, `ticket_id`, …, not the
/// pseudonymized `customer_id`), and mart columns computed only from them.
fn record_keys(
    ctx: &JobContext,
    lineage: Option<&Lineage>,
) -> std::collections::HashSet<scan::ColumnKey> {
    let mut lake: BTreeSet<(String, String)> = BTreeSet::new();
    for c in ctx.contracts.iter() {
        for &i in &c.primary_key {
            let col = &c.columns[i];
            if col.privacy == crate::schema::Privacy::Plain && col.is_kept() {
                lake.insert((c.table.clone(), col.output.clone()));
            }
        }
    }
    let mut out: std::collections::HashSet<scan::ColumnKey> = lake
        .iter()
        .map(|(t, c)| ("lake".to_string(), t.clone(), c.clone()))
        .collect();
    if let Some(l) = lineage {
        for ((model, column), sources) in &l.outputs {
            if !sources.is_empty() && sources.iter().all(|s| lake.contains(s)) {
                out.insert(("marts".to_string(), model.clone(), column.clone()));
            }
        }
    }
    out
}

/// The raw identifiers check 4 looks for: every customers export present
/// (each customer arrives there when they sign up) and every export of the
/// run date. `None` when there is none.
async fn landing_ids(ctx: &JobContext, date: NaiveDate) -> Result<Option<RawIdsRead>> {
    let storage = &ctx.storage;
    let mut files = Vec::new();
    let customers = ctx.contracts.get("customers")?;
    let days = landing::landing_dates(storage, "customers").await?;
    for d in &days {
        files.extend(landing::files_of(storage, &customers, *d).await?);
    }
    for contract in ctx.contracts.iter() {
        if contract.table != "customers" {
            files.extend(landing::files_of(storage, &contract, date).await?);
        }
    }
    let ids = landing::raw_ids(
        storage,
        files,
        ctx.cfg.ingest.delimiter,
        ctx.cfg.ingest.threads,
    )
    .await?;
    if ids.fingerprints.is_empty() {
        return Ok(None);
    }
    Ok(Some(RawIdsRead {
        fingerprints: ids.fingerprints,
        shape: ids.shape,
        files: ids.files,
        customer_days: days.len() as u64,
    }))
}

struct RawIdsRead {
    fingerprints: std::collections::HashSet<u128>,
    shape: scan::IdShape,
    files: u64,
    customer_days: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unused-column check trusts the jobs' declarations: every lake
    /// column a job says it reads must be one the lake keeps (a typo would
    /// hide a column nobody reads). `ingest_audit` is attune's own table.
    #[test]
    fn every_declared_read_is_a_column_the_lake_keeps() {
        let contracts = crate::schema::Contracts::builtin().expect("contracts");
        for (job, table, column) in rust_job_reads() {
            if table == "ingest_audit" {
                continue;
            }
            let c = contracts
                .get(table)
                .unwrap_or_else(|e| panic!("{job}: {table}: {e}"));
            assert!(
                c.columns.iter().any(|x| x.output == column && x.is_kept()),
                "{job} reads {table}.{column}, which schemas/{table}.toml does not keep"
            );
        }
    }

    /// Each released table's count columns are columns it really has, as
    /// documented (schemas/marts/ for job marts, the header of sql/ for
    /// models): a name that drifts leaves check 9 "not evaluated" for ever.
    #[test]
    fn released_tables_count_with_columns_they_have() {
        let models = crate::transform::models::load(None).expect("models");
        for t in RELEASED_TABLES {
            let columns: Vec<String> = match crate::mart::doc(t.table) {
                Ok(doc) => doc.columns.into_iter().map(|(c, _)| c).collect(),
                Err(_) => (models.iter())
                    .find(|m| m.name == t.table)
                    .unwrap_or_else(|| panic!("{} is neither a job mart nor a model", t.table))
                    .columns
                    .iter()
                    .map(|(c, _)| c.clone())
                    .collect(),
            };
            for c in t.count_columns {
                assert!(
                    columns.iter().any(|have| have == c),
                    "{} has no column {c}: {columns:?}",
                    t.table
                );
            }
        }
    }

    #[test]
    fn the_score_counts_a_pass_as_one_and_a_warning_as_half() {
        let mut f: Vec<Finding> = (1..=10)
            .map(|id| Finding::new(id, Status::Pass, 0, ""))
            .collect();
        assert_eq!(PrivacySummary::of(&f).score, 100);
        f.push(Finding::new(2, Status::Warn, 1, ""));
        f.push(Finding::new(3, Status::Fail, 1, ""));
        f.push(Finding::new(3, Status::Warn, 1, ""));
        let s = PrivacySummary::of(&f);
        assert_eq!(s.score, 85, "(8 + 0.5 + 0) / 10");
        assert_eq!(s.failing, vec!["pii_scan"]);
        assert_eq!(s.warning, vec!["collected_but_unused"]);
        assert_eq!(s.checks.len(), 10);
    }

    #[test]
    fn the_gate_follows_fail_on() {
        let outcome = |fail_on, warns, fails| PrivacyOutcome {
            date: NaiveDate::from_ymd_opt(2025, 3, 1).expect("date"),
            rows_in: 0,
            rows_out: 0,
            warnings: vec![],
            summary: PrivacySummary::of(&[]),
            warn_findings: warns,
            fail_findings: fails,
            fail_on,
            seconds_scanning: 0.0,
            lake_scan_started_at: String::new(),
            lake_scan: scan_cache::CacheUse {
                reused: 0,
                scanned: 0,
                full_scan: None,
            },
        };
        let cases = [
            (FailOn::Fail, 3, 0, 0),
            (FailOn::Fail, 3, 2, 2),
            (FailOn::Warn, 3, 2, 5),
            (FailOn::Warn, 0, 0, 0),
            (FailOn::Never, 3, 2, 0),
        ];
        for (fail_on, warns, fails, want) in cases {
            let o = outcome(fail_on, warns, fails);
            assert_eq!(o.gate_findings(), want, "{fail_on:?} {warns} {fails}");
            match o.gate() {
                Ok(()) => assert_eq!(want, 0),
                Err(Error::AuditGate { job, findings }) => {
                    assert_eq!((job.as_str(), findings), ("privacy", want));
                }
                Err(other) => panic!("unexpected {other}"),
            }
        }
    }

    #[test]
    fn the_registries_list_what_exists() {
        assert!(
            rust_job_reads().contains(&("privacy", "ingest_audit", "outcome")),
            "the privacy job declares its own reads"
        );
        for (model, features) in model_feature_lists() {
            assert!(!features.is_empty(), "{model} registers an empty list");
        }
    }

    #[test]
    fn the_mart_schema_matches_its_documentation() {
        mart::doc("privacy_checks")
            .expect("schemas/marts/privacy_checks.toml")
            .check(&checks_schema())
            .expect("documented columns");
        let b = findings_batch(&[Finding::new(3, Status::Fail, 2, "two")
            .at("marts", "x")
            .column("y")])
        .expect("batch");
        assert_eq!(b.num_rows(), 1);
    }
}
