//! `attune forget`: the right to erasure.
//!
//! For each customer number given, computes its pseudonym with the secret
//! key and removes every row of that customer from every partition of
//! lake, marts and quarantine, then records the request (see [`super::erasure`]):
//!
//! 1. scan: every Parquet file of lake, marts (all dates) and quarantine,
//!    counting the rows that belong to the customers: a string value equal
//!    to one of the pseudonyms (lake, marts), or, in quarantine, whose raw
//!    export line holds a token with one of those pseudonyms (quarantine
//!    keeps rejected rows as they arrived, raw identifier included);
//! 2. record: the request is saved as `pending` with that plan; from this
//!    moment the pseudonyms are on the erasure list and ingest keeps the
//!    customers out of every later export;
//! 3. rewrite: each affected file is written again without those rows,
//!    under the same path (an atomic replace: readers see the old file or
//!    the new one, never half of one; partitions with several files, such
//!    as `marts/model_metrics`, are rewritten file by file);
//! 4. the pseudonyms leave `control/consent/` (the erasure list supersedes
//!    it, so no Parquet file keeps them), and the request is saved as
//!    `done` with the rows removed per table.
//!
//! A crash at any point leaves every file old or new; the next
//! `attune forget` finds the pending request and completes it first, with
//! exact counts (files already rewritten count from the plan). The raw
//! customer numbers are never written or logged anywhere.
//!
//! Landing exports are never modified (they are the business's input): a
//! customer who asked to be forgotten stays in them until retention deletes
//! them, which is why ingest consults the erasure list.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{BooleanArray, RecordBatch};
use datafusion::arrow::compute::{filter_record_batch, not};
use futures::StreamExt;
use serde::Serialize;
use tracing::{info, instrument, warn};

use super::erasure::{self, ErasureRequest, RequestStatus};
use super::scan::{self, Partitions, StrCol, TableFile, as_pseudonym};
use crate::config::Key;
use crate::context::JobContext;
use crate::ingest::consent::ConsentList;
use crate::ingest::pseudonym::{Pseudonym, Pseudonymizer};
use crate::manifest::{JobTimer, RunManifest};
use crate::parquet_io::write_batches;
use crate::storage::Storage;
use crate::{Error, Result};

/// How to run forget.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForgetOptions {
    /// Count what would be removed; write nothing.
    pub dry_run: bool,
    /// Test hook: stop with an error (as a crash would) after this many
    /// files were rewritten.
    pub fail_after_files: Option<usize>,
}

/// What forget did (or, on a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForgetOutcome {
    /// Distinct customers in this request.
    pub customers: usize,
    pub dry_run: bool,
    /// The request recorded for these customers (`None` on a dry run).
    pub request_id: Option<String>,
    /// Interrupted requests completed before this one.
    pub resumed: Vec<String>,
    /// `<area>/<table>` → rows removed (would be, on a dry run), this run's
    /// requests together.
    pub rows_removed: BTreeMap<String, u64>,
    pub files_rewritten: u64,
    /// Whether some of the customers were taken off the consent list.
    pub consent_list_updated: bool,
    /// Rows of the files scanned.
    pub rows_in: u64,
    /// Rows removed.
    pub rows_out: u64,
    pub warnings: Vec<String>,
    pub manifest_path: Option<String>,
}

/// Reads customer numbers from a file: one per line; blank lines and lines
/// starting with `#` are skipped.
pub fn read_id_file(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// Forgets the customers `raw_ids` (their numbers as the exports carry them).
/// Takes no lock: `attune forget` holds the run lock.
#[instrument(skip_all, fields(job = "forget", run_id = %ctx.run_id))]
pub async fn run(
    ctx: &JobContext,
    raw_ids: &[String],
    opts: &ForgetOptions,
) -> Result<ForgetOutcome> {
    let key = ctx.key()?.clone();
    let pseudonyms = pseudonyms_of(&key, raw_ids)?;
    let storage = &ctx.storage;
    crate::lake_listings::thaw(storage);
    let threads = ctx.cfg.ingest.threads;
    let mut outcome = ForgetOutcome {
        customers: pseudonyms.len(),
        dry_run: opts.dry_run,
        ..ForgetOutcome::default()
    };
    if opts.dry_run {
        let found = find(storage, &pseudonyms, &key, threads).await?;
        outcome.rows_in = found.rows_scanned;
        outcome.rows_removed = by_table(&found.files);
        outcome.rows_out = outcome.rows_removed.values().sum();
        return Ok(outcome);
    }

    let timer = JobTimer::start("forget");
    let mut manifest = RunManifest::start(ctx, "forget", &[]);
    manifest.save(storage).await?;
    // What a killed transform staged and the value job's carried histories
    // hold pseudonyms, and no scan looks inside `_` folders: they go (under
    // the run lock no job uses them).
    scan::clear_unscanned(storage).await?;
    let mut budget = opts.fail_after_files;
    let mut ours: Option<ErasureRequest> = None;
    for mut pending in erasure::load_requests(storage)
        .await?
        .into_iter()
        .filter(|r| r.status == RequestStatus::Pending)
    {
        // Quarantine holds raw ids, which only the request's own key turns
        // into its pseudonyms: under another key the lake and marts are
        // cleaned, but the request stays pending until run with its key.
        let same_key = pending.key_id == key.id();
        if !same_key {
            outcome.warnings.push(format!(
                "erasure request {} was made with another key (id {}): its rows in lake and marts are removed, but its quarantine rows can only be matched with that key, so it stays pending; run `attune forget` with that ATTUNE_KEY to complete it",
                pending.request_id, pending.key_id
            ));
        }
        let set = pending.pseudonym_set()?;
        let found = find(storage, &set, &key, threads).await?;
        outcome.rows_in += found.rows_scanned;
        execute(
            ctx,
            &mut pending,
            &set,
            found,
            &mut budget,
            &mut outcome,
            same_key,
        )
        .await?;
        if set == pseudonyms {
            ours = Some(pending);
        } else {
            outcome.resumed.push(pending.request_id.clone());
        }
    }
    let request = match ours {
        Some(r) => r, // this very request was interrupted before: now complete
        None => {
            let found = find(storage, &pseudonyms, &key, threads).await?;
            outcome.rows_in += found.rows_scanned;
            let mut sorted: Vec<String> = pseudonyms.iter().map(hex).collect();
            sorted.sort();
            let now = chrono::Utc::now();
            let mut request = ErasureRequest {
                request_id: erasure::new_request_id(now, &sorted),
                requested_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                completed_at: None,
                status: RequestStatus::Pending,
                key_id: key.id(),
                pseudonyms: sorted,
                rows_removed: by_table(&found.files),
                files_rewritten: 0,
                consent_list_updated: false,
                plan: found
                    .files
                    .iter()
                    .map(|(f, n)| (f.path.to_string(), *n))
                    .collect(),
                carried_from_key: None,
            };
            // On record before the first row goes: from here on ingest keeps
            // these customers out, and a crash leaves a request to complete.
            request.save(storage).await?;
            execute(
                ctx,
                &mut request,
                &pseudonyms,
                found,
                &mut budget,
                &mut outcome,
                true,
            )
            .await?;
            request
        }
    };
    outcome.request_id = Some(request.request_id.clone());
    outcome.rows_out = outcome.rows_removed.values().sum();
    manifest.jobs.push(timer.finish(
        outcome.rows_in,
        outcome.rows_out,
        outcome.warnings.clone(),
        serde_json::to_value(&outcome).unwrap_or_default(),
    ));
    manifest.status = "ok".into();
    manifest.finished_at = Some(crate::manifest::now_rfc3339());
    let path = manifest.save(storage).await?;
    outcome.manifest_path = Some(storage.display(&path));
    info!(
        customers = outcome.customers,
        rows_removed = outcome.rows_out,
        files = outcome.files_rewritten,
        "customers forgotten"
    );
    Ok(outcome)
}

/// Rewrites the files `found` lists, updates the consent list and records
/// the request as done. Counts: a file still holding rows counts what it
/// holds now; a planned file that no longer does was rewritten by an
/// interrupted run and counts from the plan.
async fn execute(
    ctx: &JobContext,
    request: &mut ErasureRequest,
    set: &HashSet<Pseudonym>,
    found: Found,
    budget: &mut Option<usize>,
    outcome: &mut ForgetOutcome,
    complete: bool,
) -> Result<()> {
    let storage = &ctx.storage;
    let key = ctx.key()?;
    let mut per_file: BTreeMap<String, (TableFile, u64)> = BTreeMap::new();
    for (f, n) in found.files {
        per_file.insert(f.path.to_string(), (f, n));
    }
    let mut removed: BTreeMap<String, u64> = BTreeMap::new();
    for (path, n) in &request.plan {
        if !per_file.contains_key(path) {
            *removed.entry(table_of(path)).or_default() += n;
        }
    }
    for (f, n) in per_file.values() {
        if *budget == Some(0) {
            return Err(Error::Internal(
                "injected failure while rewriting (test hook)".into(),
            ));
        }
        let got = rewrite(storage, f, set, key).await?;
        if got != *n {
            warn!(table = %f.table, planned = n, removed = got, "rows changed between scan and rewrite");
        }
        *removed
            .entry(format!("{}/{}", f.area, f.table))
            .or_default() += got;
        request.files_rewritten += 1;
        outcome.files_rewritten += 1;
        if let Some(b) = budget.as_mut() {
            *b -= 1;
        }
    }
    let mut consent = ConsentList::load(storage).await?;
    let before = consent.len();
    consent.remove_all(set);
    if consent.len() != before {
        consent.save(storage).await?;
        request.consent_list_updated = true;
        outcome.consent_list_updated = true;
    }
    for (t, n) in &removed {
        *outcome.rows_removed.entry(t.clone()).or_default() += n;
    }
    // Incomplete, the plan stays: the run that completes the request counts
    // the rows removed now from it, as after a crash.
    if complete {
        request.rows_removed = removed;
        request.plan.clear();
        request.status = RequestStatus::Done;
        request.completed_at = Some(crate::manifest::now_rfc3339());
    }
    request.save(storage).await
}

/// `lake/orders/dt=…/part-0.parquet` → `lake/orders`.
fn table_of(path: &str) -> String {
    path.split('/').take(2).collect::<Vec<_>>().join("/")
}

fn hex(p: &Pseudonym) -> String {
    String::from_utf8_lossy(p).into_owned()
}

fn pseudonyms_of(key: &Key, raw_ids: &[String]) -> Result<HashSet<Pseudonym>> {
    if raw_ids.is_empty() {
        return Err(Error::Config(
            "no customer to forget: give --customer-id ID or --from-file FILE".into(),
        ));
    }
    let mut p = Pseudonymizer::new(key);
    let mut out = HashSet::new();
    for (i, id) in raw_ids.iter().enumerate() {
        if id.trim().is_empty() {
            return Err(Error::Config(format!(
                "customer id number {} is empty",
                i + 1
            )));
        }
        out.insert(p.pseudonym(id.as_bytes()));
    }
    Ok(out)
}

fn by_table(files: &[(TableFile, u64)]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (f, n) in files {
        *out.entry(format!("{}/{}", f.area, f.table)).or_default() += n;
    }
    out
}

/// Files holding rows of the customers, with how many.
struct Found {
    files: Vec<(TableFile, u64)>,
    rows_scanned: u64,
}

async fn find(
    storage: &Storage,
    set: &HashSet<Pseudonym>,
    key: &Key,
    threads: usize,
) -> Result<Found> {
    let mut files = Vec::new();
    for area in ["lake", "marts", "quarantine"] {
        files.extend(scan::table_files(storage, area, Partitions::All).await?);
    }
    find_in(storage, files, set, key, threads).await
}

/// Which of `files` hold rows of the customers, reading them `threads` at
/// a time.
async fn find_in(
    storage: &Storage,
    files: Vec<TableFile>,
    set: &HashSet<Pseudonym>,
    key: &Key,
    threads: usize,
) -> Result<Found> {
    let set = Arc::new(set.clone());
    let mut tasks = futures::stream::iter(files.into_iter().map(|f| {
        let (storage, set, key) = (storage.clone(), set.clone(), key.clone());
        async move {
            let bytes = storage.get_bytes(&f.path).await?;
            tokio::task::spawn_blocking(move || {
                let (rows, matched) = count_matches(&f, bytes, &set, &key)?;
                Ok::<_, Error>((f, rows, matched))
            })
            .await
            .map_err(crate::nightly::panics::joined("a forget scan worker"))?
        }
    }))
    .buffer_unordered(threads.max(1));
    let mut found = Found {
        files: Vec::new(),
        rows_scanned: 0,
    };
    while let Some(r) = tasks.next().await {
        let (f, rows, matched) = r?;
        found.rows_scanned += rows;
        if matched > 0 {
            found.files.push((f, matched));
        }
    }
    found.files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

fn count_matches(
    f: &TableFile,
    bytes: Bytes,
    set: &HashSet<Pseudonym>,
    key: &Key,
) -> Result<(u64, u64)> {
    let (_, batches) = scan::read_string_columns(bytes)
        .map_err(|e| Error::input(f.path.to_string(), e.to_string()))?;
    let mut m = Matcher::new(f, set, key);
    let (mut rows, mut matched) = (0u64, 0u64);
    for b in &batches {
        rows += b.num_rows() as u64;
        matched += m.rows(b).true_count() as u64;
    }
    Ok((rows, matched))
}

/// What [`remove_rows`] removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Removed {
    /// `<area>/<table>` → rows removed.
    pub rows_removed: BTreeMap<String, u64>,
    pub files_rewritten: u64,
    /// Rows of the files read.
    pub rows_scanned: u64,
}

/// Removes every row holding one of the pseudonyms from `files`, each file
/// replaced atomically: forget's scan and rewrite without its request
/// record, for a caller that can simply run again after a crash (ingest's
/// consent withdrawals, [`crate::privacy::withdrawal`]).
pub async fn remove_rows(
    storage: &Storage,
    files: Vec<TableFile>,
    set: &HashSet<Pseudonym>,
    key: &Key,
    threads: usize,
) -> Result<Removed> {
    let found = find_in(storage, files, set, key, threads).await?;
    let mut out = Removed {
        rows_scanned: found.rows_scanned,
        ..Removed::default()
    };
    for (f, _) in &found.files {
        let n = rewrite(storage, f, set, key).await?;
        *out.rows_removed
            .entry(format!("{}/{}", f.area, f.table))
            .or_default() += n;
        out.files_rewritten += 1;
    }
    Ok(out)
}

/// Rewrites one file without the customers' rows; returns rows removed.
async fn rewrite(
    storage: &Storage,
    f: &TableFile,
    set: &HashSet<Pseudonym>,
    key: &Key,
) -> Result<u64> {
    let bytes = storage.get_bytes(&f.path).await?;
    let (file, set, key) = (f.clone(), set.clone(), key.clone());
    let (schema, kept, removed) = tokio::task::spawn_blocking(move || {
        let (schema, batches) = scan::read_all(bytes)
            .map_err(|e| Error::input(file.path.to_string(), e.to_string()))?;
        let mut m = Matcher::new(&file, &set, &key);
        let mut kept: Vec<RecordBatch> = Vec::with_capacity(batches.len());
        let mut removed = 0u64;
        for b in &batches {
            let hit = m.rows(b);
            removed += hit.true_count() as u64;
            kept.push(filter_record_batch(b, &not(&hit)?)?);
        }
        Ok::<_, Error>((schema, kept, removed))
    })
    .await
    .map_err(crate::nightly::panics::joined("a forget rewrite worker"))??;
    write_batches(storage, &f.path, schema, &kept).await?;
    Ok(removed)
}

/// Decides which rows of a file belong to the customers.
struct Matcher<'a> {
    set: &'a HashSet<Pseudonym>,
    /// Quarantine only: pseudonymizes the tokens of raw export lines.
    raw: Option<Pseudonymizer>,
}

impl<'a> Matcher<'a> {
    fn new(f: &TableFile, set: &'a HashSet<Pseudonym>, key: &Key) -> Matcher<'a> {
        Matcher {
            set,
            raw: (f.area == "quarantine").then(|| Pseudonymizer::new(key)),
        }
    }

    /// True for every row with a value of one of the customers.
    fn rows(&mut self, b: &RecordBatch) -> BooleanArray {
        let cols: Vec<StrCol<'_>> = b
            .columns()
            .iter()
            .filter_map(|a| StrCol::of(a.as_ref()))
            .collect();
        (0..b.num_rows())
            .map(|i| Some(cols.iter().any(|c| c.get(i).is_some_and(|v| self.value(v)))))
            .collect()
    }

    fn value(&mut self, v: &str) -> bool {
        match &mut self.raw {
            None => as_pseudonym(v).is_some_and(|p| self.set.contains(&p)),
            Some(p) => tokens(v).any(|t| self.set.contains(&p.pseudonym(t.as_bytes()))),
        }
    }
}

/// Candidate identifiers in a raw export line (CSV or NDJSON): every field
/// between delimiters, and every piece between JSON punctuation, trimmed of
/// spaces and quotes. Overlapping on purpose: an id is found whichever way
/// its line was written.
fn tokens(line: &str) -> impl Iterator<Item = &str> {
    fn field(c: char) -> bool {
        matches!(c, ',' | ';' | '\t' | '|')
    }
    fn piece(c: char) -> bool {
        field(c) || matches!(c, '"' | '{' | '}' | '[' | ']' | ':')
    }
    fn trim(s: &str) -> &str {
        s.trim_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'')
    }
    line.split(field)
        .chain(line.split(piece))
        .map(trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_find_ids_in_csv_and_json_lines() {
        let csv: Vec<&str> = tokens("O2, CUST-1 ,\"2025-03-01 09:05:00\",twelve").collect();
        assert!(csv.contains(&"CUST-1"));
        assert!(csv.contains(&"2025-03-01 09:05:00"));
        let json: Vec<&str> =
            tokens(r#"{"ticket_id":"T2","customer_id":"C 1","satisfaction":"five"}"#).collect();
        assert!(json.contains(&"C 1"), "{json:?}");
        assert!(json.contains(&"T2"));
    }

    #[test]
    fn pseudonyms_need_at_least_one_non_empty_id() {
        let key = Key::new(b"a key of sufficient length".to_vec());
        assert!(pseudonyms_of(&key, &[]).is_err());
        assert!(pseudonyms_of(&key, &["C1".into(), " ".into()]).is_err());
        let set = pseudonyms_of(&key, &["C1".into(), " C1".into(), "C2".into()]).expect("ids");
        assert_eq!(set.len(), 2, "padding is the same customer");
    }

    #[test]
    fn id_files_skip_blanks_and_comments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ids.txt");
        std::fs::write(&path, "# erasure requests of March\nC1\n\n  C2  \n#C3\n").expect("write");
        assert_eq!(read_id_file(&path).expect("read"), vec!["C1", "C2"]);
        assert!(read_id_file(&dir.path().join("missing.txt")).is_err());
    }

    #[test]
    fn table_of_a_file_path() {
        assert_eq!(
            table_of("lake/orders/dt=2025-03-01/part-0.parquet"),
            "lake/orders"
        );
        assert_eq!(
            table_of("marts/model_metrics/dt=2025-03-01/value.parquet"),
            "marts/model_metrics"
        );
    }
}
