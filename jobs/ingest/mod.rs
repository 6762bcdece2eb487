//! Ingest: landing exports → a clean, minimized, pseudonymous lake.
//!
//! Reads `landing/<table>/<date>/` (CSV, CSV.gz, NDJSON), validates each row
//! against its contract, and writes `lake/<table>/dt=<date>/part-0.parquet`
//! plus `quarantine/<table>/dt=<date>/part-0.parquet` (rejected rows with
//! file, line, column, reason and the raw row). Minimization happens here, at
//! the door: undeclared columns and direct PII are never read into memory
//! past the parser, identifiers become HMAC pseudonyms, free text is
//! redacted, quasi-identifiers are generalized, and rows of customers who
//! declined analytics or asked to be forgotten (`attune forget`, the
//! erasure list in `control/erasure/`) are excluded.
//!
//! Every row is accounted for, per table and date:
//! read = written + quarantined + consent-excluded + erased + duplicates.
//!
//! # Order
//! Customers of every date go first, in date order, because they carry the
//! consent decisions the other tables are filtered by: their files are read
//! for the decisions on the workers ahead of the list, which takes them in
//! date order, and each day's rows are written with the list as that day
//! left it. Then every other (table, date) partition runs in parallel, on
//! `ingest.threads` workers in all.
//! Last, customers who consented before and withdrew in this run lose their
//! earlier rows in lake and marts ([`crate::privacy::withdrawal`]).

pub mod consent;
pub mod pseudonym;
pub mod redact;
pub mod rekey;
pub mod source;
pub mod validate;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{ArrayRef, Int64Builder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use object_store::path::Path;
use serde::Serialize;
use tracing::{debug, info, instrument, warn};

use self::consent::{ConsentList, OptedOut};
use self::pseudonym::{PassThrough, Pseudonym, Pseudonymizer, key_fingerprint};
use self::redact::Redactor;
use self::source::{FileReport, Format, RowSink};
use self::validate::{BatchSize, Fields, Reject, RowValidator};
use crate::context::JobContext;
use crate::nightly::progress::{self, TableBar};
use crate::parquet_io::{ParquetSink, writer_properties_without};
use crate::schema::Contract;
use crate::storage::{Storage, landing_dir, partition_file};
use crate::{Error, Result};

/// Counts of one landing file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileOutcome {
    #[serde(flatten)]
    pub report: FileReport,
    pub rows_written: u64,
    pub quarantined: u64,
    pub consent_excluded: u64,
    /// Rows of customers on the erasure list (any row, valid or not).
    pub erased: u64,
    pub duplicates: u64,
    pub quarantine_reasons: BTreeMap<String, u64>,
}

/// Counts of one (table, date) partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionOutcome {
    pub table: String,
    pub date: NaiveDate,
    pub files: Vec<FileOutcome>,
    pub rows_read: u64,
    pub rows_written: u64,
    pub quarantined: u64,
    pub consent_excluded: u64,
    pub erased: u64,
    pub duplicates: u64,
    pub seconds: f64,
}

impl PartitionOutcome {
    /// The accounting invariant: nothing is lost.
    pub fn balanced(&self) -> bool {
        self.rows_read
            == self.rows_written
                + self.quarantined
                + self.consent_excluded
                + self.erased
                + self.duplicates
    }
}

/// Counts of one table over all dates of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableTotals {
    pub table: String,
    pub partitions: u64,
    pub files: u64,
    pub empty_files: u64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub quarantined: u64,
    pub consent_excluded: u64,
    pub erased: u64,
    pub duplicates: u64,
    pub quarantine_reasons: BTreeMap<String, u64>,
    pub undeclared_columns: BTreeSet<String>,
    /// Seconds its partitions took, summed: they run in parallel, so the
    /// tables' seconds add up to more than the job's.
    pub seconds: f64,
}

impl TableTotals {
    /// The table's line under ingest's spinner once its files are read:
    /// where every row went, the counts the manifest records.
    pub fn progress_summary(&self) -> String {
        let n = crate::privacy::checks::thousands;
        let mut parts = vec![format!("{} to the lake", n(self.rows_written))];
        for (count, what) in [
            (self.quarantined, "quarantined"),
            (self.consent_excluded, "without consent"),
            (self.erased, "erased"),
            (self.duplicates, "duplicates"),
        ] {
            if count > 0 {
                parts.push(format!("{} {what}", n(count)));
            }
        }
        let rows = if self.rows_read == 1 { "row" } else { "rows" };
        format!("{} {rows}: {}", n(self.rows_read), parts.join(", "))
    }
}

/// What an ingest run did.
#[derive(Debug, Clone, Serialize)]
pub struct IngestOutcome {
    pub dates: Vec<NaiveDate>,
    pub tables: Vec<TableTotals>,
    pub partitions: Vec<PartitionOutcome>,
    /// Customers on the consent exclusion list after the run.
    pub opted_out_customers: u64,
    /// Earlier rows of customers who withdrew consent in this run, removed.
    pub withdrawals: crate::privacy::withdrawal::Withdrawals,
    /// Distinct identifiers pseudonymized (HMACs computed), summed over workers.
    pub pseudonyms_computed: u64,
    pub warnings: Vec<String>,
}

impl IngestOutcome {
    /// What a run manifest records of it (`details` of the ingest job).
    pub fn manifest_details(&self) -> serde_json::Value {
        serde_json::json!({
            "tables": self.tables,
            "opted_out_customers": self.opted_out_customers,
            "withdrawals": self.withdrawals,
            "pseudonyms_computed": self.pseudonyms_computed,
        })
    }

    /// Rows read and written over all tables.
    pub fn rows(&self) -> (u64, u64) {
        self.tables
            .iter()
            .fold((0, 0), |(r, w), t| (r + t.rows_read, w + t.rows_written))
    }
}

/// [`run`] as a run of its own (`attune ingest`): recorded in
/// `runs/<run_id>.json` like a nightly, with the accounting per table and
/// its durations, failed or not. Returns the outcome and the manifest's path.
pub async fn run_recorded(ctx: &JobContext, dates: &[NaiveDate]) -> Result<(IngestOutcome, Path)> {
    // as a nightly does: a day under another key would not join the lake
    // (nor the consent and erasure lists), and its manifest would then
    // vouch for the new key
    crate::nightly::refuse_a_new_key(ctx).await?;
    let timer = crate::manifest::JobTimer::start("ingest");
    let mut manifest = crate::manifest::RunManifest::start(ctx, "ingest", dates);
    manifest.save(&ctx.storage).await?;
    let result = run(ctx, dates).await;
    manifest.finished_at = Some(crate::manifest::now_rfc3339());
    match result {
        Ok(o) => {
            let (rows_in, rows_out) = o.rows();
            let details = o.manifest_details();
            manifest
                .jobs
                .push(timer.finish(rows_in, rows_out, o.warnings.clone(), details));
            manifest.status = "ok".into();
            let path = manifest.save(&ctx.storage).await?;
            Ok((o, path))
        }
        Err(e) => {
            manifest.jobs.push(timer.fail(&e));
            manifest.status = "failed".into();
            if let Err(saved) = manifest.save(&ctx.storage).await {
                warn!(error = %saved, "could not record the failed ingest run");
            }
            Err(e)
        }
    }
}

/// A landing file to read.
#[derive(Debug, Clone)]
struct LandingFile {
    path: Path,
    label: String,
    format: Format,
    gz: bool,
}

#[derive(Debug, Clone)]
struct PartitionJob {
    contract: Arc<Contract>,
    date: NaiveDate,
    files: Vec<LandingFile>,
    /// The table's progress bar, which counts the bytes its files are read.
    bar: Option<TableBar>,
}

/// The most rows a partition's duplicate set is sized for up front: a
/// day's orders at a million customers (63K) and more, not a first export
/// of every customer (a million), whose size the next day's few hundred
/// changed customers would inherit.
const ROWS_HINT_MAX: usize = 1 << 17;

struct Shared {
    storage: Storage,
    handle: tokio::runtime::Handle,
    redactor: Arc<Redactor>,
    /// Pseudonyms on the erasure list: their rows never enter the lake.
    erased: Arc<HashSet<Pseudonym>>,
    /// Customers erased or opted out under the key before a key change,
    /// while the lake is re-ingested with that key given (`rekey`).
    earlier_key: Option<rekey::EarlierKey>,
    pool: Mutex<Vec<Pseudonymizer>>,
    /// The pseudonyms of every customer the consent phase met, shared by
    /// the workers after it (see [`Pseudonymizer::share`]).
    known: std::sync::OnceLock<pseudonym::Known>,
    /// HMACs computed by pseudonymizers given back.
    computed: AtomicU64,
    key: crate::config::Key,
    delimiter: u8,
    batch_rows: usize,
    /// What each table's partitions so far showed (see [`TableSizes`]).
    sizes: Mutex<HashMap<String, TableSizes>>,
}

/// What a table's partitions so far showed, so the next one's duplicate
/// set and Arrow builders start at about the size they will need instead
/// of growing from empty.
#[derive(Debug, Clone, Default)]
struct TableSizes {
    /// Rows of the partition ingested last.
    rows: usize,
    /// The table's largest batch so far (see [`BatchSize`]).
    batch: BatchSize,
}

impl Shared {
    /// What `table`'s partitions so far showed (nothing before the first).
    fn sizes(&self, table: &str) -> TableSizes {
        let sizes = self.sizes.lock().expect("no panics while held");
        sizes.get(table).cloned().unwrap_or_default()
    }

    fn saw_partition(&self, table: &str, sizes: TableSizes) {
        let mut all = self.sizes.lock().expect("no panics while held");
        all.insert(table.to_string(), sizes);
    }

    fn take_pseudonymizer(&self) -> Pseudonymizer {
        let pooled = self
            .pool
            .lock()
            .expect("pool lock is never poisoned: no panics while held")
            .pop();
        pooled.unwrap_or_else(|| match self.known.get() {
            Some(known) => Pseudonymizer::with_known(&self.key, known.clone()),
            None => Pseudonymizer::new(&self.key),
        })
    }

    /// Pools `p` for the next partition; once the pseudonyms are shared,
    /// only one that looks them up (another's cache is dropped).
    fn give_back(&self, mut p: Pseudonymizer) {
        self.computed
            .fetch_add(p.take_computed(), Ordering::Relaxed);
        if self.known.get().is_some_and(|known| !p.knows(known)) {
            return;
        }
        self.pool
            .lock()
            .expect("pool lock is never poisoned: no panics while held")
            .push(p);
    }

    /// Shares the pseudonyms the pooled pseudonymizers computed with every
    /// worker from now on, and empties the pool.
    fn share_pseudonyms(&self) {
        let pooled = std::mem::take(
            &mut *self
                .pool
                .lock()
                .expect("pool lock is never poisoned: no panics while held"),
        );
        if let Some(known) = Pseudonymizer::share(pooled) {
            let _ = self.known.set(known);
        }
    }
}

/// Ingests every configured table for each of `dates`.
#[instrument(skip_all, fields(job = "ingest", run_id = %ctx.run_id))]
pub async fn run(ctx: &JobContext, dates: &[NaiveDate]) -> Result<IngestOutcome> {
    let storage = &ctx.storage;
    crate::lake_listings::thaw(storage);
    let mut warnings = Vec::new();
    let mut jobs = Vec::new();
    let mut missing = Vec::new();
    let mut bytes: HashMap<String, u64> = HashMap::new();
    let mut dirs = Vec::new();
    for date in dates {
        for table in &ctx.cfg.ingest.tables {
            dirs.push((*date, table, landing_dir(table, *date)));
        }
    }
    let listings = list_landing(storage, &dirs, dates.len()).await?;
    for ((date, table, dir), listed) in dirs.into_iter().zip(listings) {
        let contract = ctx.contracts.get(table)?;
        if listed.is_empty() {
            missing.push(storage.display(&dir));
            continue;
        }
        let mut files = Vec::new();
        for meta in listed {
            let name = meta.location.filename().unwrap_or_default().to_string();
            match source::detect(&name) {
                Some((format, gz)) => {
                    *bytes.entry(table.clone()).or_default() += meta.size;
                    files.push(LandingFile {
                        label: meta.location.to_string(),
                        path: meta.location,
                        format,
                        gz,
                    })
                }
                None => warnings.push(format!(
                    "{}: not .csv, .tsv, .ndjson or .jsonl (each optionally .gz); skipped",
                    meta.location
                )),
            }
        }
        jobs.push(PartitionJob {
            contract,
            date,
            files,
            bar: None,
        });
    }
    if !missing.is_empty() {
        let more = if missing.len() > 1 {
            format!(" (and {} more)", missing.len() - 1)
        } else {
            String::new()
        };
        return Err(Error::MissingInput {
            what: format!("no landing files in {}{more}", missing[0]),
            hint: "Export the day's data there, or remove the table from [ingest] tables in attune.toml.".into(),
        });
    }

    // one bar per table, in the contract order, for the bytes of its files
    let mut names: Vec<&String> = bytes.keys().collect();
    names.sort_by_key(|t| table_rank(t));
    let bars: HashMap<String, TableBar> = names
        .into_iter()
        .map(|t| (t.clone(), progress::table_bar(t, bytes[t])))
        .collect();
    for job in &mut jobs {
        job.bar = bars.get(&job.contract.table).cloned();
    }

    let shared = Arc::new(Shared {
        storage: storage.clone(),
        handle: tokio::runtime::Handle::current(),
        redactor: Arc::new(Redactor::new()),
        erased: Arc::new(crate::privacy::erasure::erased_pseudonyms(storage).await?),
        earlier_key: rekey::EarlierKey::load(
            storage,
            ctx.key()?,
            ctx.previous_key.as_ref(),
            &ctx.cfg.previous_key_env,
        )
        .await?,
        pool: Mutex::new(Vec::new()),
        known: std::sync::OnceLock::new(),
        computed: AtomicU64::new(0),
        key: ctx.key()?.clone(),
        delimiter: ctx.cfg.ingest.delimiter,
        batch_rows: ctx.cfg.ingest.batch_rows,
        sizes: Mutex::new(HashMap::new()),
    });

    // Phase 1: consent decisions, in date order; each customers partition
    // is then written filtered by the list its own decisions updated. Up to
    // `threads` partitions are read or written at once: the next dates'
    // decisions are read while the earlier dates' rows are written (the
    // two passes, one after the other, kept one core of two busy for 5.5 to
    // 6.5 s of a 40 to 50 s ingest at a million customers; 4.2 s this way). While the lake is re-keyed,
    // one at a time: each read needs the list as it stood before it, and
    // each write finds earlier-key entries the next date's carry moves.
    let mut list = ConsentList::load(storage).await?;
    let (customer_jobs, other_jobs): (Vec<_>, Vec<_>) = jobs
        .into_iter()
        .partition(|j| j.contract.table == "customers");
    let mut partitions = Vec::new();
    let before = list.clone();
    // customers listed under the key before a key change, listed anew under
    // this one (only while the lake is re-ingested with that key given)
    let mut carried: HashSet<Pseudonym> = HashSet::new();
    let threads = ctx.cfg.ingest.threads.max(1);
    let slots = if shared.earlier_key.is_some() {
        1
    } else {
        threads
    };
    let joined = |e: tokio::task::JoinError| crate::nightly::panics::joined("an ingest worker")(e);
    let mut reads = std::collections::VecDeque::new();
    let mut writing: futures::stream::FuturesUnordered<
        tokio::task::JoinHandle<Result<PartitionOutcome>>,
    > = futures::stream::FuturesUnordered::new();
    let mut customer_jobs = customer_jobs.into_iter().peekable();
    loop {
        while reads.len() + writing.len() < slots
            && let Some(job) = customer_jobs.next()
        {
            let sh = shared.clone();
            let first = job.clone();
            let listed = shared
                .earlier_key
                .as_ref()
                .map(|_| Arc::new(list.pseudonyms.clone()));
            let read = tokio::task::spawn_blocking(move || read_customers(&sh, &first, listed));
            reads.push_back((job, read));
        }
        let Some((job, read)) = reads.pop_front() else {
            if customer_jobs.peek().is_none() {
                // the last writes go on beside phase 2
                break;
            }
            let written = (writing.next().await).expect("with no read running, every slot writes");
            partitions.push(written.map_err(joined)??);
            continue;
        };
        let pass = read.await.map_err(joined)??;
        // an entry of the earlier key moves to the new pseudonym before the
        // day's decisions apply, so a later "yes" still undoes it
        if let Some(earlier) = &shared.earlier_key {
            earlier.carry_opted_out(&mut list, &mut carried);
        }
        for (p, d) in pass.decisions {
            list.apply(p, d);
        }
        if reads.len() + writing.len() >= slots
            && let Some(written) = writing.next().await
        {
            partitions.push(written.map_err(joined)??);
        }
        let sh = shared.clone();
        let opted_out = Arc::new(list.pseudonyms.clone());
        let latest = Some(pass.latest);
        writing.push(tokio::task::spawn_blocking(move || {
            ingest_partition(&sh, &job, opted_out, latest)
        }));
    }

    // Phase 2: everything else, in parallel, after the customers' writes
    // still running. Their pseudonyms were all computed in the reads just
    // done: shared, they are not computed again by every worker.
    shared.share_pseudonyms();
    let opted_out = Arc::new(list.pseudonyms.clone());
    for job in other_jobs {
        if writing.len() >= threads
            && let Some(written) = writing.next().await
        {
            partitions.push(written.map_err(joined)??);
        }
        let sh = shared.clone();
        let set = opted_out.clone();
        writing.push(tokio::task::spawn_blocking(move || {
            ingest_partition(&sh, &job, set, None)
        }));
    }
    while let Some(written) = writing.next().await {
        partitions.push(written.map_err(joined)??);
    }
    partitions.sort_by_key(|p| (p.date, table_rank(&p.table)));

    // Every partition is in. Customers of the earlier key's lists met in
    // them were kept out; rows of theirs stored under this key before (a
    // re-ingest without the earlier key, the marts built from it) go now.
    if let Some(earlier) = &shared.earlier_key {
        use crate::privacy::scan;
        earlier.carry_opted_out(&mut list, &mut carried);
        let erased: HashSet<Pseudonym> = earlier.erased_met().into_iter().collect();
        // erased: off the consent list too, as `attune forget` does
        list.remove_all(&erased);
        let declined: HashSet<Pseudonym> = carried
            .iter()
            .filter(|p| list.pseudonyms.contains(*p))
            .copied()
            .collect();
        // Only a run under this key before (one without the earlier key)
        // can have stored them: otherwise every file under this key is this
        // run's own, written without them.
        if earlier.key_used_before() && !(erased.is_empty() && declined.is_empty()) {
            scan::clear_unscanned(storage).await?;
            let files = |area: &'static str| async move {
                crate::privacy::scan::table_files(storage, area, scan::Partitions::All).await
            };
            let mut all = files("lake").await?;
            all.extend(files("marts").await?);
            let gone: HashSet<Pseudonym> = erased.union(&declined).copied().collect();
            let threads = ctx.cfg.ingest.threads;
            let mut removed =
                crate::privacy::forget::remove_rows(storage, all, &gone, &shared.key, threads)
                    .await?;
            // quarantine keeps a declined customer's raw lines, as for
            // every withdrawal, but not an erased one's
            let q = crate::privacy::forget::remove_rows(
                storage,
                files("quarantine").await?,
                &erased,
                &shared.key,
                threads,
            )
            .await?;
            removed.files_rewritten += q.files_rewritten;
            removed.rows_removed.extend(q.rows_removed);
            if removed.files_rewritten > 0 {
                warnings.push(format!(
                    "{} of customers erased or opted out under the earlier key (id {}), stored under this key before, removed ({} files rewritten)",
                    crate::privacy::checks::plural(
                        removed.rows_removed.values().sum(),
                        "row",
                        "rows"
                    ),
                    earlier.previous_id(),
                    removed.files_rewritten
                ));
            }
        }
        if !declined.is_empty() {
            warnings.push(format!(
                "{} who declined analytics under the earlier key (id {}) met in these exports and kept out; listed under this key with the same withdrawal",
                crate::privacy::checks::plural(declined.len() as u64, "customer", "customers"),
                earlier.previous_id()
            ));
        }
    }

    // Phase 3: customers who consented before and withdrew now leave lake
    // and marts; the list is saved after, so a crash repeats the removal.
    let newly: HashSet<Pseudonym> = list
        .pseudonyms
        .difference(&before.pseudonyms)
        .filter(|p| !carried.contains(*p))
        .copied()
        .collect();
    let withdrawals = crate::privacy::withdrawal::remove_withdrawn(
        storage,
        &shared.key,
        &newly,
        ctx.cfg.ingest.threads,
    )
    .await?;
    if withdrawals.customers > 0 {
        warnings.push(format!(
            "{} who consented before withdrew: {} removed from lake and marts ({} files rewritten)",
            crate::privacy::checks::plural(withdrawals.customers, "customer", "customers"),
            crate::privacy::checks::plural(withdrawals.rows(), "earlier row", "earlier rows"),
            withdrawals.files_rewritten
        ));
    }
    if list != before {
        list.save(storage).await?;
    }

    for date in dates {
        let of_date: Vec<&PartitionOutcome> =
            partitions.iter().filter(|p| p.date == *date).collect();
        write_audit(storage, ctx, *date, &of_date).await?;
    }
    // Last, once the consent list and the audit are saved: from here on the
    // erasure list of this key recognizes the customers erased under the
    // earlier one that these exports hold (privacy check 10 stops warning).
    if let Some(earlier) = &shared.earlier_key
        && let Some(record) = earlier.carry_over(storage, &shared.key).await?
    {
        warnings.push(format!(
            "{} erased under the earlier key (id {}) met in these exports and kept out; carried over to this key's erasure list as request {}{}",
            crate::privacy::checks::plural(record.pseudonyms.len() as u64, "customer", "customers"),
            earlier.previous_id(),
            record.request_id,
            match earlier.erased_not_met() {
                0 => String::new(),
                n => format!(
                    "; {} not in these exports, recognized only with the earlier key if exported again",
                    crate::privacy::checks::plural(n as u64, "other", "others")
                ),
            }
        ));
    }

    let mut tables: Vec<TableTotals> = Vec::new();
    for p in &partitions {
        let t = match tables.iter_mut().find(|t| t.table == p.table) {
            Some(t) => t,
            None => {
                tables.push(TableTotals {
                    table: p.table.clone(),
                    ..TableTotals::default()
                });
                tables.last_mut().expect("just pushed")
            }
        };
        t.partitions += 1;
        t.rows_read += p.rows_read;
        t.rows_written += p.rows_written;
        t.quarantined += p.quarantined;
        t.consent_excluded += p.consent_excluded;
        t.erased += p.erased;
        t.duplicates += p.duplicates;
        t.seconds += p.seconds;
        for f in &p.files {
            t.files += 1;
            t.empty_files += u64::from(f.report.empty);
            t.undeclared_columns
                .extend(f.report.undeclared.iter().cloned());
            for (k, v) in &f.quarantine_reasons {
                *t.quarantine_reasons.entry(k.clone()).or_default() += v;
            }
            if f.report.empty {
                warnings.push(format!("{}: empty file", f.report.file));
            }
        }
    }
    tables.sort_by_key(|t| table_rank(&t.table));
    for t in &tables {
        if let Some(bar) = bars.get(&t.table) {
            bar.finish(t.progress_summary());
        }
    }
    let pseudonyms_computed = shared.computed.load(Ordering::Relaxed);
    let outcome = IngestOutcome {
        dates: dates.to_vec(),
        tables,
        partitions,
        opted_out_customers: list.pseudonyms.len() as u64,
        withdrawals,
        pseudonyms_computed,
        warnings,
    };
    let (read, written) = outcome.rows();
    for t in outcome.tables.iter().filter(|t| t.quarantined > 0) {
        warn!(table = %t.table, quarantined = t.quarantined, "rows quarantined (see quarantine/)");
    }
    info!(
        dates = dates.len(),
        rows_read = read,
        rows_written = written,
        "ingested"
    );
    Ok(outcome)
}

/// Runs over more dates than this list each table's landing folder whole.
const DATES_LISTED_ONE_BY_ONE: usize = 7;

/// The files of each partition folder in `dirs` (date, table, folder), in
/// that order. A run over many dates lists each table's landing folder
/// once and sorts its files into their dates: folder by folder, one after
/// another, the 6,570 folders of two years of nine tables took a second
/// of a backfill's start on one core. A run over a few dates (a nightly)
/// lists only their folders, not the tables' whole history.
async fn list_landing(
    storage: &Storage,
    dirs: &[(NaiveDate, &String, Path)],
    dates: usize,
) -> Result<Vec<Vec<object_store::ObjectMeta>>> {
    if dates <= DATES_LISTED_ONE_BY_ONE {
        let folders: Vec<Path> = dirs.iter().map(|(_, _, d)| d.clone()).collect();
        return storage.list_many(&folders).await;
    }
    let tables: BTreeSet<&String> = dirs.iter().map(|(_, t, _)| *t).collect();
    let folders: Vec<Path> = (tables.iter())
        .map(|t| Path::from(format!("landing/{t}")))
        .collect();
    let mut by_folder: HashMap<String, Vec<object_store::ObjectMeta>> = HashMap::new();
    for meta in storage.list_many(&folders).await?.into_iter().flatten() {
        // landing/<table>/<date>/<file>, or deeper: what listing the
        // date's folder finds
        let parts: Vec<_> = meta.location.parts().collect();
        if parts.len() > 3 {
            let folder = (parts[..3].iter().map(|p| p.as_ref()))
                .collect::<Vec<_>>()
                .join("/");
            by_folder.entry(folder).or_default().push(meta);
        }
    }
    Ok(dirs
        .iter()
        .map(|(_, _, d)| by_folder.get(d.as_ref()).cloned().unwrap_or_default())
        .collect())
}

fn table_rank(table: &str) -> usize {
    crate::schema::TABLES
        .iter()
        .position(|t| *t == table)
        .unwrap_or(usize::MAX)
}

/// Test hook: `ATTUNE_FAULT=ingest-abort-after-batches=N` aborts the process
/// (like `kill -9`) after N lake batches, to prove crashes leave no half state.
fn fault_after_batches() -> Option<u64> {
    static LIMIT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("ATTUNE_FAULT")
            .ok()?
            .strip_prefix("ingest-abort-after-batches=")?
            .parse()
            .ok()
    })
}
static BATCHES_WRITTEN: AtomicU64 = AtomicU64::new(0);

/// Reads one landing file into `sink`; `counted`: its bytes go on the
/// table's progress bar (the rows pass of a customers partition, not the
/// consent pass before it, so the bar ends at the files' size).
fn read_landing_file(
    sh: &Shared,
    f: &LandingFile,
    job: &PartitionJob,
    sink: &mut dyn RowSink,
    counted: bool,
) -> Result<FileReport> {
    let contract = &job.contract;
    let mut input = sh.storage.open_read(&sh.handle, &f.path)?;
    if let Some(bar) = job.bar.as_ref().filter(|_| counted) {
        input = bar.reader(input);
    }
    source::read(
        input,
        f.format,
        f.gz,
        &f.label,
        sh.delimiter,
        contract,
        sink,
    )
}

/// What the first read of a customers partition finds (see
/// [`consent::DecisionSink`]).
#[derive(Default)]
struct CustomersPass {
    decisions: consent::ByCustomer<consent::Decision>,
    /// The (file, line) of each customer's one row the partition keeps.
    latest: consent::ByCustomer<(usize, u64)>,
}

/// Reads a customers partition for its consent decisions and each
/// customer's latest row, before its rows are written.
/// `listed`: the consent list before the partition's decisions, while the
/// lake is re-ingested with the key before a key change given.
fn read_customers(
    sh: &Shared,
    job: &PartitionJob,
    listed: Option<Arc<OptedOut>>,
) -> Result<CustomersPass> {
    let contract = &job.contract;
    let Some(customer_col) = contract.customer_column() else {
        return Ok(CustomersPass::default());
    };
    let consent_col = contract.column_index("consent_analytics");
    let mut sink = consent::DecisionSink {
        validator: RowValidator::new(
            contract.clone(),
            sh.take_pseudonymizer(),
            sh.redactor.clone(),
            i64::from(job.date.year()),
        ),
        erased: &sh.erased,
        earlier_key: sh.earlier_key.as_ref().map(|e| e.recognizer()),
        listed,
        customer_col,
        consent_col,
        at_col: contract.column_index("consent_updated_at"),
        decisions: Default::default(),
        file: 0,
        latest: Default::default(),
        day: crate::value::summary::epoch_day(job.date),
    };
    for (i, f) in job.files.iter().enumerate() {
        sink.file = i;
        read_landing_file(sh, f, job, &mut sink, false)?;
    }
    sh.give_back(sink.validator.pseudonymizer);
    Ok(CustomersPass {
        decisions: sink.decisions,
        latest: (sink.latest.into_iter())
            .map(|(p, (_, file, line))| (p, (file, line)))
            .collect(),
    })
}

/// `latest`: for a customers partition, the one row per customer it keeps.
fn ingest_partition(
    sh: &Shared,
    job: &PartitionJob,
    opted_out: Arc<OptedOut>,
    latest: Option<consent::ByCustomer<(usize, u64)>>,
) -> Result<PartitionOutcome> {
    let started = Instant::now();
    let contract = &job.contract;
    let table = &contract.table;
    let lake_path = partition_file("lake", table, job.date);
    let quarantine_path = partition_file("quarantine", table, job.date);
    let sizes = sh.sizes(table);
    let validator = RowValidator::new(
        contract.clone(),
        sh.take_pseudonymizer(),
        sh.redactor.clone(),
        i64::from(job.date.year()),
    )
    .starting_at(sizes.batch);
    // each worker writes its own partitions, on its own thread
    let lake = ParquetSink::create_in(
        &sh.storage,
        lake_path,
        validator.schema(),
        writer_properties_without(
            sh.storage.codec(),
            &contract.distinct_columns(),
            &contract.unranged_columns(),
        ),
    )?
    .threads(1);
    let quarantine =
        ParquetSink::create(&sh.storage, quarantine_path, quarantine_schema())?.threads(1);
    let mut sink = PartitionSink {
        customer_col: contract.customer_column(),
        pk: contract.primary_key.clone(),
        validator,
        lake,
        quarantine,
        q: QuarantineBuilder::default(),
        // sized as the table's last partition was, at most ROWS_HINT_MAX:
        // grown from empty, its rehashing was 1.3% of a backfill's CPU
        seen: HashSet::with_capacity_and_hasher(sizes.rows.min(ROWS_HINT_MAX), Default::default()),
        key: Vec::with_capacity(64),
        opted_out,
        latest,
        file_index: 0,
        sh,
        earlier_key: sh.earlier_key.as_ref().map(|e| e.recognizer()),
        file: FileOutcome::default(),
    };
    let mut files = Vec::new();
    for (i, f) in job.files.iter().enumerate() {
        sink.file_index = i;
        sink.file = FileOutcome {
            report: FileReport {
                file: f.label.clone(),
                ..FileReport::default()
            },
            ..FileOutcome::default()
        };
        let report = read_landing_file(sh, f, job, &mut sink, true)?;
        let mut done = std::mem::take(&mut sink.file);
        done.report = report;
        files.push(done);
    }
    let PartitionSink {
        mut validator,
        mut lake,
        mut quarantine,
        mut q,
        ..
    } = sink;
    if validator.pending() > 0 {
        let batch = validator.take_batch()?;
        sh.handle.block_on(lake.write(&batch))?;
    }
    if q.len > 0 {
        sh.handle.block_on(quarantine.write(&q.take()?))?;
    }
    let rows_written = sh.handle.block_on(lake.finish())?;
    sh.handle.block_on(quarantine.finish())?;
    let sum = |f: fn(&FileOutcome) -> u64| files.iter().map(f).sum::<u64>();
    sh.saw_partition(
        table,
        TableSizes {
            rows: usize::try_from(sum(|f| f.report.rows)).unwrap_or(0),
            batch: validator.batch_size(),
        },
    );
    sh.give_back(validator.pseudonymizer);
    let outcome = PartitionOutcome {
        table: table.clone(),
        date: job.date,
        rows_read: sum(|f| f.report.rows),
        rows_written,
        quarantined: sum(|f| f.quarantined),
        consent_excluded: sum(|f| f.consent_excluded),
        erased: sum(|f| f.erased),
        duplicates: sum(|f| f.duplicates),
        files,
        seconds: started.elapsed().as_secs_f64(),
    };
    if !outcome.balanced()
        || rows_written != outcome.files.iter().map(|f| f.rows_written).sum::<u64>()
    {
        return Err(Error::Internal(format!(
            "row accounting of {table} {} does not balance: {outcome:?}",
            job.date
        )));
    }
    debug!(
        table = %table,
        date = %job.date,
        rows_in = outcome.rows_read,
        rows_out = outcome.rows_written,
        quarantined = outcome.quarantined,
        "partition ingested"
    );
    Ok(outcome)
}

struct PartitionSink<'a> {
    validator: RowValidator,
    lake: ParquetSink,
    quarantine: ParquetSink,
    q: QuarantineBuilder,
    seen: HashSet<u128, BuildHasherDefault<PassThrough>>,
    /// The row's primary key, fingerprinted for `seen`: one buffer for all
    /// rows instead of an allocation and a free per row (re-ingesting 184
    /// days, three alternated pairs: 16.1–17.0 user CPU-seconds against
    /// 16.5–17.2, the same lake bytes).
    key: Vec<u8>,
    /// Customers who declined analytics, as of this partition.
    opted_out: Arc<OptedOut>,
    /// Customers partition: the (file, line) of the one row kept per customer.
    latest: Option<consent::ByCustomer<(usize, u64)>>,
    /// The file being read (its index in the partition).
    file_index: usize,
    customer_col: Option<usize>,
    pk: Vec<usize>,
    sh: &'a Shared,
    /// Customers erased or opted out under the key before a key change (`rekey`).
    earlier_key: Option<rekey::Recognizer<'a>>,
    file: FileOutcome,
}

impl PartitionSink<'_> {
    /// Whether the row's customer was erased (`consent`: opted out) under
    /// the key before a key change; only while the lake is re-ingested with
    /// that key given.
    fn before_key_change(&mut self, fields: &Fields<'_>, consent: bool) -> bool {
        let Some(recognizer) = self.earlier_key.as_mut() else {
            return false;
        };
        let Some(raw) = self.customer_col.and_then(|cc| fields[cc]) else {
            return false;
        };
        let raw = pseudonym::trim_id(raw);
        if raw.is_empty() {
            return false;
        }
        let now = self.validator.pseudonymizer.pseudonym(raw);
        if consent {
            recognizer.opted_out(raw, now, &self.opted_out)
        } else {
            recognizer.erased(raw, now)
        }
    }

    fn flush_if_full(&mut self) -> Result<()> {
        if self.validator.pending() >= self.sh.batch_rows {
            let batch = self.validator.take_batch()?;
            self.sh.handle.block_on(self.lake.write(&batch))?;
            let n = BATCHES_WRITTEN.fetch_add(1, Ordering::SeqCst) + 1;
            if fault_after_batches().is_some_and(|limit| n >= limit) {
                std::process::abort();
            }
        }
        if self.q.len >= self.sh.batch_rows {
            let batch = self.q.take()?;
            self.sh.handle.block_on(self.quarantine.write(&batch))?;
        }
        Ok(())
    }

    /// Whether the row's customer declined analytics.
    fn excluded_for_consent(&self) -> bool {
        let Some(cc) = self.customer_col else {
            return false;
        };
        // anonymous rows (reviews, sessions) have no consent to check
        (self.validator.pseudonym_of(cc)).is_some_and(|p| self.opted_out.contains(p))
    }
}

/// Whether a row's customer, by the raw identifier in its customer column
/// (trimmed, as validation would), is in `listed`. Erased customers are
/// looked up before validation, so not even a malformed row of theirs
/// reaches quarantine with their raw identifier in it; customers who
/// declined, for rows that fail validation only (a valid row is checked by
/// its validated pseudonym, without a second lookup).
fn raw_customer_in<S: std::hash::BuildHasher>(
    pseudonymizer: &mut Pseudonymizer,
    customer_col: Option<usize>,
    fields: &Fields<'_>,
    listed: &HashSet<Pseudonym, S>,
) -> bool {
    if listed.is_empty() {
        return false;
    }
    let Some(raw) = customer_col.and_then(|cc| fields[cc]) else {
        return false;
    };
    if pseudonym::trim_id(raw).is_empty() {
        return false;
    }
    // The same pseudonymizer (and cache) validation uses: no extra HMAC.
    listed.contains(&pseudonymizer.pseudonym(raw))
}

impl RowSink for PartitionSink<'_> {
    fn ahead<'r>(&mut self, field: &dyn Fn(usize) -> Option<&'r [u8]>) {
        self.validator.prefetch(field);
    }

    fn row(&mut self, line: u64, fields: &Fields<'_>, raw: &dyn Fn() -> String) -> Result<()> {
        let (p, cc) = (&mut self.validator.pseudonymizer, self.customer_col);
        if raw_customer_in(p, cc, fields, &self.sh.erased) || self.before_key_change(fields, false)
        {
            self.file.erased += 1;
            return Ok(());
        }
        if let Err(reject) = self.validator.check(fields) {
            // quarantine keeps the raw line: not one of a customer who
            // declined (only rows that fail are looked up here, so a valid
            // row costs no second lookup)
            let (p, cc) = (&mut self.validator.pseudonymizer, self.customer_col);
            if raw_customer_in(p, cc, fields, &self.opted_out)
                || self.before_key_change(fields, true)
            {
                self.file.consent_excluded += 1;
                return Ok(());
            }
            return self.reject(line, reject, raw);
        }
        if self.excluded_for_consent() || self.before_key_change(fields, true) {
            self.file.consent_excluded += 1;
            return Ok(());
        }
        // customers: the latest row per customer wins, the others are duplicates
        if let (Some(latest), Some(cc)) = (&self.latest, self.customer_col)
            && let Some(p) = self.validator.pseudonym_of(cc)
            && latest.get(p) != Some(&(self.file_index, line))
        {
            self.file.duplicates += 1;
            return Ok(());
        }
        self.key.clear();
        for &i in &self.pk {
            self.key
                .extend_from_slice(pseudonym::trim_id(fields[i].unwrap_or_default()));
            self.key.push(0x1f);
        }
        // First occurrence wins (customers: their latest row, above): files
        // are read in name order, rows in line order, so the choice is the
        // same on every run.
        if !self.seen.insert(key_fingerprint(&self.key)) {
            self.file.duplicates += 1;
            return Ok(());
        }
        self.validator.append(fields);
        self.file.rows_written += 1;
        self.flush_if_full()
    }

    fn reject(&mut self, line: u64, reject: Reject, raw: &dyn Fn() -> String) -> Result<()> {
        self.file.quarantined += 1;
        *self
            .file
            .quarantine_reasons
            .entry(reject.reason.code().to_string())
            .or_default() += 1;
        self.q.push(&self.file.report.file, line, &reject, &raw());
        self.flush_if_full()
    }
}

/// Schema of `quarantine/<table>`.
pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source_file", DataType::Utf8, false),
        Field::new("line", DataType::Int64, false),
        Field::new("column", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("raw_line", DataType::Utf8, false),
    ]))
}

#[derive(Default)]
struct QuarantineBuilder {
    source_file: StringBuilder,
    line: Int64Builder,
    column: StringBuilder,
    reason: StringBuilder,
    detail: StringBuilder,
    raw_line: StringBuilder,
    len: usize,
}

impl QuarantineBuilder {
    fn push(&mut self, file: &str, line: u64, reject: &Reject, raw: &str) {
        self.source_file.append_value(file);
        self.line
            .append_value(i64::try_from(line).unwrap_or(i64::MAX));
        self.column.append_option(reject.column.as_deref());
        self.reason.append_value(reject.reason.code());
        self.detail.append_value(&reject.detail);
        self.raw_line.append_value(raw);
        self.len += 1;
    }

    fn take(&mut self) -> Result<RecordBatch> {
        self.len = 0;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.source_file.finish()),
            Arc::new(self.line.finish()),
            Arc::new(self.column.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.detail.finish()),
            Arc::new(self.raw_line.finish()),
        ];
        Ok(RecordBatch::try_new(quarantine_schema(), cols)?)
    }
}

/// What each column of `lake/ingest_audit` holds (`attune tables --docs`).
pub const AUDIT_DOCS: [(&str, &str); 5] = [
    (
        "table_name",
        "the canonical table the export was loaded into",
    ),
    (
        "source_file",
        "the export file, relative to landing/<table>/<date>/",
    ),
    (
        "column_name",
        "the export's column the row is about; NULL on rows about the whole file",
    ),
    (
        "outcome",
        "rows_read, rows_written, consent_excluded, erased, duplicate or quarantined:<reason> for the file; for a column, its handling (keep, pseudonymize, generalize, redact, drop) or undeclared_dropped",
    ),
    (
        "rows",
        "rows of the file with that outcome (for a column: the rows read)",
    ),
];

/// Schema of `lake/ingest_audit`: what arrived and what became of it, per file.
pub fn audit_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("table_name", DataType::Utf8, false),
        Field::new("source_file", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, true),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, false),
    ]))
}

async fn write_audit(
    storage: &Storage,
    ctx: &JobContext,
    date: NaiveDate,
    partitions: &[&PartitionOutcome],
) -> Result<()> {
    let (mut t, mut f, mut c, mut o, mut n) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
    );
    let mut push = |table: &str, file: &str, column: Option<&str>, outcome: &str, rows: u64| {
        t.append_value(table);
        f.append_value(file);
        c.append_option(column);
        o.append_value(outcome);
        n.append_value(i64::try_from(rows).unwrap_or(i64::MAX));
    };
    for p in partitions {
        let contract = ctx.contracts.get(&p.table)?;
        for file in &p.files {
            let name = &file.report.file;
            push(&p.table, name, None, "rows_read", file.report.rows);
            push(&p.table, name, None, "rows_written", file.rows_written);
            push(
                &p.table,
                name,
                None,
                "consent_excluded",
                file.consent_excluded,
            );
            push(&p.table, name, None, "erased", file.erased);
            push(&p.table, name, None, "duplicate", file.duplicates);
            for (reason, k) in &file.quarantine_reasons {
                push(&p.table, name, None, &format!("quarantined:{reason}"), *k);
            }
            for col in &file.report.columns {
                let outcome = match contract.column_index(col) {
                    Some(i) => contract.columns[i].handling.as_str(),
                    None => "undeclared_dropped",
                };
                push(&p.table, name, Some(col), outcome, file.report.rows);
            }
            for col in &file.report.undeclared {
                if !file.report.columns.contains(col) {
                    push(
                        &p.table,
                        name,
                        Some(col),
                        "undeclared_dropped",
                        file.report.rows,
                    );
                }
            }
        }
    }
    let batch = RecordBatch::try_new(
        audit_schema(),
        vec![
            Arc::new(t.finish()) as ArrayRef,
            Arc::new(f.finish()),
            Arc::new(c.finish()),
            Arc::new(o.finish()),
            Arc::new(n.finish()),
        ],
    )?;
    // a few rows a file: encoded on this thread, not on threads started for them
    let mut sink = ParquetSink::create(
        storage,
        partition_file("lake", "ingest_audit", date),
        audit_schema(),
    )?
    .threads(1);
    sink.write(&batch).await?;
    sink.finish().await?;
    Ok(())
}
