//! Records that a later export replaced: the one pass that lets the staging
//! views stream instead of sorting all history.
//!
//! An export may send a record again on a later day (a refund, a corrected
//! amount, a late rating); the latest export wins. Finding the losers exactly
//! needs every key up to the run date, but only once and only the key
//! column: each key is hashed to 64 bits and bucketed, the buckets are
//! sorted, and only keys whose hash occurs more than once are read again and
//! compared as strings. The result — (table_name, record_key, source_dt) of every
//! replaced record — is small, and the staging views anti-join it. A window
//! function over all history did the same with a sort of every column of
//! every row, several times per run (12 GB and minutes at a million
//! customers).
//!
//! `customers` has a rule of its own, ingest's consent rule: in export
//! order, a record replaces the current one unless both consent change
//! times are known and its own is earlier (a stale re-export does not undo
//! a withdrawal; without a time, the later export wins). It goes through the same pass, which reads that
//! column for the repeated keys only. As a window in its view
//! (`row_number()` per customer) DataFusion spent 2.9 s on a million
//! one-row partitions in every job that read the view.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::UInt32Array;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Date32Builder, RecordBatch, StringBuilder,
};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Int64Type, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::catalog::view::ViewTable;
use datafusion::common::DFSchema;
use datafusion::datasource::MemTable;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{EmptyRelation, LogicalPlan, LogicalPlanBuilder, col, lit};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use serde::Serialize;

use crate::schema::{Contract, Contracts};
use crate::{Error, Result};

/// Tables whose latest record is decided by a column, not by the export
/// alone: in export order a copy replaces the current one unless both
/// values are known and its own is earlier (see `Export::older_than`).
const LATEST_BY: [(&str, &str); 1] = [("customers", "consent_updated_at")];

/// The lake columns this pass reads besides keys and `dt` (for the privacy
/// job's inventory of what is used).
pub const LAKE_COLUMNS_READ: &[(&str, &str)] = &LATEST_BY;

/// One replaced record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Replaced {
    pub table: String,
    pub key: String,
    /// Days since 1970-01-01 of the partition holding the replaced copy.
    pub dt: i32,
    /// Days since 1970-01-01 of the next export of the key: the copy that
    /// replaced this one. As of an earlier day the copy was replaced only if
    /// that export had arrived, so one list serves every day up to its own.
    pub superseded_on: i32,
}

/// Per-table counts, for the transform outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SupersededCounts {
    /// Rows of the table up to the date.
    pub rows: u64,
    /// Rows this pass read: all of them, or after an earlier night's list
    /// those exported since and the older copies within their key range.
    pub rows_scanned: u64,
    pub keys_exported_more_than_once: u64,
    pub records_replaced: u64,
}

/// Schema of the `superseded` table the staging views read.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("table_name", DataType::Utf8, false),
        Field::new("record_key", DataType::Utf8, false),
        Field::new("source_dt", DataType::Date32, false),
        Field::new("superseded_on", DataType::Date32, false),
    ]))
}

/// Every record in lake partitions up to `date` that a later partition (also
/// up to `date`) exports again, for each table with a one-column key.
///
/// From `earlier`, the list as of an earlier night whose lake partitions are
/// unchanged, only the keys exported since are looked up: their copies are
/// all within the range of those keys, which the Parquet statistics of the
/// older partitions prune (keys a business numbers in order are all beyond
/// every older partition's range), and every other key's copies are as
/// they were. Listing every key took 2.9 s a night at a million customers.
pub async fn find(
    session: &SessionContext,
    contracts: &Contracts,
    lake: &std::collections::BTreeSet<String>,
    date: NaiveDate,
    earlier: Option<(NaiveDate, &[Replaced])>,
) -> Result<(Vec<Replaced>, BTreeMap<String, SupersededCounts>)> {
    // The tables one beside the other: each is a few small queries that
    // mostly wait on footers and listings (0.2-0.3 s a table, 2 s a night
    // at a million customers one after the other).
    let one = |contract| replaced_in(session, contract, lake, date, earlier);
    let mut tables = futures::stream::iter(contracts.iter().map(one)).buffered(4);
    let mut replaced = Vec::new();
    let mut counts = BTreeMap::new();
    while let Some(done) = tables.next().await {
        if let Some((table, found, c)) = done? {
            replaced.extend(found);
            counts.insert(table, c);
        }
    }
    replaced.sort();
    Ok((replaced, counts))
}

/// [`find`] for one table: its replaced records and counts, `None` for a
/// table without a one-column key or without lake partitions.
async fn replaced_in(
    session: &SessionContext,
    contract: Arc<Contract>,
    lake: &std::collections::BTreeSet<String>,
    date: NaiveDate,
    earlier: Option<(NaiveDate, &[Replaced])>,
) -> Result<Option<(String, Vec<Replaced>, SupersededCounts)>> {
    let table = contract.table.as_str();
    let Some((k, select)) = keys_select(&contract) else {
        return Ok(None);
    };
    if !lake.contains(table) {
        return Ok(None);
    }
    let (mut found, mut c) = match earlier {
        None => {
            let sql = format!("{select} WHERE dt <= DATE '{date}'");
            let (found, mut c) = table_replaced(session, table, &sql).await?;
            c.rows = c.rows_scanned;
            (found, c)
        }
        Some((base, list)) => {
            let known: Vec<Replaced> = list.iter().filter(|r| r.table == table).cloned().collect();
            let since = format!("dt > DATE '{base}' AND dt <= DATE '{date}'");
            let (found, mut c) = match key_range(
                session,
                &format!("SELECT min({k}), max({k}) FROM {table} WHERE {since}"),
            )
            .await?
            {
                None => (known, SupersededCounts::default()),
                Some((lo, hi)) => {
                    let sql = format!(
                        "{select} WHERE {since} UNION ALL {select} \
                             WHERE dt <= DATE '{base}' AND {k} >= {} AND {k} <= {}",
                        sql_string(&lo),
                        sql_string(&hi)
                    );
                    let (mut found, c) = table_replaced(session, table, &sql).await?;
                    found.extend(known);
                    (found, c)
                }
            };
            // answered from the Parquet footers, not a scan
            let count = format!("SELECT count(*) FROM {table} WHERE dt <= DATE '{date}'");
            c.rows = row_count(session, &count).await?;
            (found, c)
        }
    };
    found.sort();
    found.dedup();
    c.records_replaced = found.len() as u64;
    c.keys_exported_more_than_once =
        found.iter().map(|r| &r.key).collect::<HashSet<_>>().len() as u64;
    Ok(Some((table.to_string(), found, c)))
}

/// The key column and the `SELECT key, dt[, rank] FROM table` this pass
/// reads, for a table with a one-column text key; `None` for the others.
fn keys_select(contract: &Contract) -> Option<(&str, String)> {
    let table = contract.table.as_str();
    let [key_index] = contract.primary_key.as_slice() else {
        return None;
    };
    let key = &contract.columns[*key_index];
    if key.lake_type() != DataType::Utf8 {
        return None;
    }
    let k = key.output.as_str();
    let rank = LATEST_BY
        .iter()
        .find(|(t, _)| *t == table)
        .map(|(_, column)| format!(", {column}"))
        .unwrap_or_default();
    Some((k, format!("SELECT {k}, dt{rank} FROM {table}")))
}

/// The key column of `table` when the superseded pass lists its replaced
/// copies (a one-column text key), else `None`.
pub fn key_column(contracts: &Contracts, table: &str) -> Result<Option<String>> {
    let contract = contracts.get(table)?;
    Ok(keys_select(&contract).map(|(k, _)| k.to_string()))
}

/// Whether a column, not the export order alone, decides `table`'s latest
/// record (customers: the consent change time).
pub fn decided_by_column(table: &str) -> bool {
    LATEST_BY.iter().any(|(t, _)| *t == table)
}

/// Every copy of the lake table `contract` describes (registered under its
/// name in `session`) that another copy replaces, over all its partitions:
/// (key, days since 1970-01-01 of its partition). The copies the staging
/// views leave out, so retention keeps the same current record. `None`
/// when the table's key is not one text column.
pub async fn replaced_copies(
    session: &SessionContext,
    contract: &Contract,
) -> Result<Option<Vec<(String, i32)>>> {
    let Some((_, select)) = keys_select(contract) else {
        return Ok(None);
    };
    let (found, _) = table_replaced(session, &contract.table, &select).await?;
    Ok(Some(found.into_iter().map(|r| (r.key, r.dt)).collect()))
}

/// The smallest and largest key `sql` (`SELECT min(k), max(k) …`) returns;
/// `None` when there are no rows.
async fn key_range(session: &SessionContext, sql: &str) -> Result<Option<(String, String)>> {
    let batches = session.sql(sql).await?.collect().await?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let text = |i: usize| -> Result<Option<String>> {
        let c = datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8)?;
        let c = c.as_string::<i32>();
        Ok(c.is_valid(0).then(|| c.value(0).to_string()))
    };
    Ok(text(0)?.zip(text(1)?))
}

/// The one count `sql` returns.
async fn row_count(session: &SessionContext, sql: &str) -> Result<u64> {
    let batches = session.sql(sql).await?.collect().await?;
    let n = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| b.column(0).as_primitive::<Int64Type>().value(0))
        .unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `s` as an SQL string literal.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The replaced records of a list read back from `marts/superseded`; `None`
/// for a list written before lists carried `superseded_on`.
pub fn from_batch(batch: &RecordBatch) -> Result<Option<Vec<Replaced>>> {
    if batch.column_by_name("superseded_on").is_none() {
        return Ok(None);
    }
    let b = conformed(batch)?;
    let (t, k) = (
        b.column(0).as_string::<i32>(),
        b.column(1).as_string::<i32>(),
    );
    let (d, on) = (
        b.column(2).as_primitive::<Date32Type>(),
        b.column(3).as_primitive::<Date32Type>(),
    );
    Ok(Some(
        (0..b.num_rows())
            .map(|i| Replaced {
                table: t.value(i).to_string(),
                key: k.value(i).to_string(),
                dt: d.value(i),
                superseded_on: on.value(i),
            })
            .collect(),
    ))
}

/// The replaced records of one table from `sql`, which selects the key, `dt`
/// and, for a table of [`LATEST_BY`], the column whose latest value wins.
async fn table_replaced(
    session: &SessionContext,
    table: &str,
    sql: &str,
) -> Result<(Vec<Replaced>, SupersededCounts)> {
    // Pass 1: 64-bit hashes, bucketed by their top byte so each bucket sorts
    // in cache; each partition of the plan hashes on its own core, and the
    // buckets are gathered and sorted on every core (see repeated_hashes).
    let df = session.sql(sql).await?;
    let what = format!("hashing the keys of {table}");
    let parts = crate::catalog::fold_partitions(df, &what, hash_keys).await?;
    let rows: u64 = parts.iter().map(|(_, n)| n).sum();
    let buckets: Vec<Vec<Vec<u64>>> = parts.into_iter().map(|(b, _)| b).collect();
    let repeated =
        tokio::task::spawn_blocking(move || repeated_hashes(&buckets, crate::parallel::threads()))
            .await
            .map_err(crate::nightly::panics::joined(&what))?;
    let mut counts = SupersededCounts {
        rows_scanned: rows,
        ..SupersededCounts::default()
    };
    tracing::debug!(table, rows, repeated_hashes = repeated.len(), "keys hashed");
    if repeated.is_empty() {
        return Ok((Vec::new(), counts));
    }
    // Pass 2: exact keys, only for the (few) hashes seen more than once.
    let mut by_key: HashMap<String, Vec<Export>> = HashMap::new();
    let mut stream = session.sql(sql).await?.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let ranks = batch
            .columns()
            .get(2)
            .map(|c| datafusion::arrow::compute::cast(c, &DataType::Int64))
            .transpose()?;
        let ranks = ranks.as_ref().map(|c| c.as_primitive::<Int64Type>());
        for_each_key(&batch, |k, dt, row| {
            if repeated.contains(&hash64(k.as_bytes())) {
                let rank = ranks.and_then(|r| r.is_valid(row).then(|| r.value(row)));
                by_key
                    .entry(k.to_string())
                    .or_default()
                    .push(Export { rank, dt });
            }
        })?;
    }
    let mut out = Vec::new();
    for (key, mut copies) in by_key {
        if copies.len() < 2 {
            continue; // a hash collision, not a repeated key
        }
        copies.sort_unstable_by_key(|c| c.dt);
        if let Some(w) = copies.windows(2).find(|w| w[0].dt == w[1].dt) {
            return Err(Error::Model {
                model: format!("lake/{table}"),
                reason: format!(
                    "partition dt={} holds one key twice; ingest keeps one row per key and day, so the partition was changed outside attune: re-run `attune ingest --date {}`",
                    date_of(w[0].dt),
                    date_of(w[0].dt)
                ),
            });
        }
        counts.keys_exported_more_than_once += 1;
        // In export order, as ingest applies consent decisions: each copy
        // replaces the current one unless it is older (both ranks known and
        // lower), else it is replaced on its own day. A replaced copy never
        // returns, so one `superseded_on` per copy serves every earlier day.
        let mut current: Option<Export> = None;
        for c in copies {
            let (loser, on) = match current {
                None => {
                    current = Some(c);
                    continue;
                }
                Some(cur) if c.older_than(&cur) => (c, c.dt),
                Some(cur) => {
                    current = Some(c);
                    (cur, c.dt)
                }
            };
            out.push(Replaced {
                table: table.to_string(),
                key: key.clone(),
                dt: loser.dt,
                superseded_on: on,
            });
        }
    }
    out.sort();
    counts.records_replaced = out.len() as u64;
    Ok((out, counts))
}

/// One export of a repeated key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Export {
    rank: Option<i64>,
    dt: i32,
}

impl Export {
    /// Whether this copy's rank (the `LATEST_BY` time) is before the other's:
    /// only when both are known. Without a time the later export is the
    /// newer, as ingest's consent rule has it (`ingest::consent`), so a
    /// CRM that sent the time once and then exports it empty still has its
    /// later records read.
    fn older_than(&self, other: &Export) -> bool {
        matches!((self.rank, other.rank), (Some(a), Some(b)) if a < b)
    }
}

/// The hashes that occur more than once in `parts`, each partition's
/// hashes in 256 buckets by their top byte (see [`hash_keys`]). Equal
/// hashes share a bucket index, so each index is gathered from every
/// partition, sorted and scanned on its own, on `threads` threads: one
/// thread sorted the 27.7M order ids' hashes bucket after bucket at a
/// million customers, with the other core idle.
fn repeated_hashes(parts: &[Vec<Vec<u64>>], threads: usize) -> HashSet<u64> {
    let indices: Vec<usize> = (0..256).collect();
    let repeats = crate::parallel::map(&indices, threads, &|&b: &usize| {
        let len: usize = parts.iter().map(|p| p.get(b).map_or(0, Vec::len)).sum();
        let mut bucket: Vec<u64> = Vec::with_capacity(len);
        for p in parts {
            if let Some(hashes) = p.get(b) {
                bucket.extend_from_slice(hashes);
            }
        }
        bucket.sort_unstable();
        let mut repeats: Vec<u64> = Vec::new();
        for w in bucket.windows(2) {
            if w[0] == w[1] && repeats.last() != Some(&w[0]) {
                repeats.push(w[0]);
            }
        }
        repeats
    });
    repeats.into_iter().flatten().collect()
}

/// The 64-bit hashes of one partition's keys in 256 buckets, and its rows.
async fn hash_keys(
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
) -> Result<(Vec<Vec<u64>>, u64)> {
    let mut buckets: Vec<Vec<u64>> = vec![Vec::new(); 256];
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        for_each_key(&batch, |k, _, _| {
            let h = hash64(k.as_bytes());
            buckets[(h >> 56) as usize].push(h);
        })?;
    }
    Ok((buckets, rows))
}

/// Calls `f(key, dt, row)` for every row with a non-null key of a batch
/// whose first columns are the key and dt.
fn for_each_key(batch: &RecordBatch, mut f: impl FnMut(&str, i32, usize)) -> Result<()> {
    let dts = batch
        .column(1)
        .as_primitive_opt::<Date32Type>()
        .ok_or_else(|| Error::Internal("dt is not a DATE".into()))?;
    let keys: &ArrayRef = batch.column(0);
    macro_rules! each {
        ($arr:expr) => {{
            let arr = $arr;
            for i in 0..arr.len() {
                if arr.is_valid(i) {
                    f(arr.value(i), dts.value(i), i);
                }
            }
        }};
    }
    match keys.data_type() {
        DataType::Utf8 => each!(keys.as_string::<i32>()),
        DataType::LargeUtf8 => each!(keys.as_string::<i64>()),
        DataType::Utf8View => each!(keys.as_string_view()),
        other => {
            return Err(Error::Internal(format!(
                "key column has type {other}, not a string"
            )));
        }
    }
    Ok(())
}

/// A fast, well-mixed 64-bit hash (foldhash's quality variant, fixed seed).
/// Not collision-proof: collisions only cost an exact comparison in pass 2.
/// A hand-rolled multiply-rotate hash did this job until web-session ids
/// (`S` and ten digits) showed that its multiply only carried a difference
/// upwards: 1.4M of 9.5M ids shared a hash with another, and pass 2 then
/// compared them all as strings.
fn hash64(bytes: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x6174_7475_6e65_5f31).hash_one(bytes)
}

fn date_of(days: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid") + chrono::Duration::days(i64::from(days))
}

/// The replaced records as one batch of [`schema`].
pub fn to_batch(replaced: &[Replaced]) -> Result<RecordBatch> {
    let (mut t, mut k, mut d, mut on) = (
        StringBuilder::new(),
        StringBuilder::new(),
        Date32Builder::new(),
        Date32Builder::new(),
    );
    for r in replaced {
        t.append_value(&r.table);
        k.append_value(&r.key);
        d.append_value(r.dt);
        on.append_value(r.superseded_on);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(t.finish()),
        Arc::new(k.finish()),
        Arc::new(d.finish()) as Arc<Date32Array>,
        Arc::new(on.finish()) as Arc<Date32Array>,
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// The list as a table for the staging views' `NOT EXISTS`: a view over
/// one branch per lake table with replaced copies, each naming its table
/// as a constant. A view's `table_name = 'orders'` then rules out every
/// other branch when the query is planned, and a table none of whose
/// copies was replaced meets an empty relation the optimizer sees through,
/// so its view plans no join at all: an anti-join against an empty table
/// still reads and hashes every order id (about a CPU-second per scan of
/// 28 million orders), and tickets re-exported as they change would
/// otherwise cost every view that.
pub fn table(replaced: &RecordBatch) -> Result<Arc<dyn TableProvider>> {
    let names = replaced.column(0).as_string::<i32>();
    let mut rows_of: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for i in 0..replaced.num_rows() {
        rows_of.entry(names.value(i)).or_default().push(i as u32);
    }
    let mut branches = Vec::new();
    for (name, rows) in rows_of {
        let rows = take_record_batch(replaced, &UInt32Array::from(rows))?;
        let copies = MemTable::try_new(schema(), vec![vec![rows]])?;
        let branch = LogicalPlanBuilder::scan(
            format!("superseded_{name}"),
            provider_as_source(Arc::new(copies)),
            None,
        )?
        .project(vec![
            lit(name).alias("table_name"),
            col("record_key"),
            col("source_dt"),
            col("superseded_on"),
        ])?
        .build()?;
        branches.push(branch);
    }
    let mut branches = branches.into_iter();
    let plan = match branches.next() {
        None => LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: false,
            schema: Arc::new(DFSchema::try_from(schema())?),
        }),
        Some(first) => branches
            .try_fold(LogicalPlanBuilder::from(first), |all, branch| {
                all.union(branch)
            })?
            .build()?,
    };
    Ok(Arc::new(ViewTable::new(plan, None)))
}

/// Registers `superseded` in a job's session as the list the transform
/// published for `date`. The listing table of `marts/superseded` holds
/// every night's list, and a later night's would drop copies that were
/// still the latest as of `date`. Through [`table`], so an empty list plans
/// no join.
pub async fn register_published(
    session: &SessionContext,
    storage: &crate::storage::Storage,
    date: NaiveDate,
) -> Result<()> {
    let path = crate::storage::partition_file("marts", "superseded", date);
    if storage.head_opt(&path).await?.is_none() {
        return Err(Error::MissingInput {
            what: format!("marts/superseded for {date}"),
            hint: format!(
                "run `attune transform --date {date}` (or the nightly) first: it lists the copies a later export replaced"
            ),
        });
    }
    let list = read_back(&crate::parquet_io::read_batches(storage, &path).await?)?;
    // a session from catalog::session_with_all has the listing table
    session.deregister_table("superseded")?;
    session.register_table("superseded", table(&list)?)?;
    Ok(())
}

/// The list as of `as_of` from a list computed as of a later day: the copies
/// whose replacing export had arrived by `as_of`. Exact, because each copy
/// carries the day of the first export that beats it (for most tables the
/// next export; for customers possibly an earlier one): as of an earlier
/// day a copy is replaced exactly when that export had arrived.
/// `None` for a list without `superseded_on` (written before it existed).
pub fn as_of(list: &[RecordBatch], as_of: NaiveDate) -> Result<Option<RecordBatch>> {
    let day = (as_of - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")).num_days() as i32;
    let mut kept = Vec::new();
    for b in list {
        let Some(on) = b
            .column_by_name("superseded_on")
            .and_then(|c| c.as_primitive_opt::<Date32Type>())
        else {
            return Ok(None);
        };
        let keep: datafusion::arrow::array::BooleanArray =
            on.iter().map(|d| d.map(|d| d <= day)).collect();
        let b = datafusion::arrow::compute::filter_record_batch(b, &keep)?;
        kept.push(conformed(&b)?);
    }
    Ok(Some(datafusion::arrow::compute::concat_batches(
        &schema(),
        &kept,
    )?))
}

/// The list as read back from `marts/superseded`, in one batch of
/// [`schema`] (the Parquet reader's nullability and string types may differ).
pub fn read_back(list: &[RecordBatch]) -> Result<RecordBatch> {
    let batches = list.iter().map(conformed).collect::<Result<Vec<_>>>()?;
    Ok(datafusion::arrow::compute::concat_batches(
        &schema(),
        &batches,
    )?)
}

fn conformed(b: &RecordBatch) -> Result<RecordBatch> {
    let columns = schema()
        .fields()
        .iter()
        .map(|f| {
            let c = b.column_by_name(f.name()).ok_or_else(|| {
                Error::Internal(format!("marts/superseded has no column {}", f.name()))
            })?;
            Ok(datafusion::arrow::compute::cast(c, f.data_type())?)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new(schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::datasource::MemTable;

    /// The hashes found repeated on several threads are those one sort of
    /// every hash finds (the pass before it sorted on one): repeats within a
    /// partition and across partitions, triples, a partition without rows,
    /// for any number of threads.
    #[test]
    fn repeated_hashes_are_those_of_one_sort_of_every_hash() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(7);
        let mut parts: Vec<Vec<Vec<u64>>> = Vec::new();
        let mut all: Vec<u64> = Vec::new();
        for p in 0..5 {
            let mut buckets: Vec<Vec<u64>> = vec![Vec::new(); 256];
            // partition 3 read no rows
            let rows = if p == 3 { 0 } else { 20_000 };
            for _ in 0..rows {
                let h: u64 = if !all.is_empty() && rng.random_bool(0.05) {
                    all[rng.random_range(0..all.len())]
                } else {
                    rng.random()
                };
                buckets[(h >> 56) as usize].push(h);
                all.push(h);
            }
            parts.push(buckets);
        }
        all.sort_unstable();
        let want: HashSet<u64> = all
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        assert!(want.len() > 1000, "the input repeats: {}", want.len());
        for threads in [1, 2, 3, 8, 300] {
            assert_eq!(repeated_hashes(&parts, threads), want, "{threads} threads");
        }
        assert!(repeated_hashes(&[], 2).is_empty());
    }

    fn days(s: &str) -> i32 {
        (NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
            - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch"))
        .num_days() as i32
    }

    /// A job sees the run date's list, not every night's: a copy a later
    /// night found replaced was still the latest as of the run date.
    #[tokio::test]
    async fn a_job_reads_the_list_of_its_own_date() {
        let dir = tempfile::tempdir().expect("tmp");
        let storage =
            crate::storage::Storage::open(dir.path().to_str().expect("utf8")).expect("open");
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        let replaced = |on: &str| Replaced {
            table: "orders".into(),
            key: "O1".into(),
            dt: days("2025-03-01"),
            superseded_on: days(on),
        };
        for (night, list) in [
            ("2025-03-02", vec![]),
            ("2025-03-05", vec![replaced("2025-03-05")]),
        ] {
            crate::parquet_io::write_batches(
                &storage,
                &crate::storage::partition_file("marts", "superseded", day(night)),
                schema(),
                &[to_batch(&list).expect("batch")],
            )
            .await
            .expect("write");
        }
        let count = |ctx: SessionContext| async move {
            let b = ctx
                .sql("SELECT count(*) AS n FROM superseded WHERE table_name = 'orders'")
                .await
                .expect("sql")
                .collect()
                .await
                .expect("rows");
            b[0].column(0)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .value(0)
        };
        for (night, want) in [("2025-03-02", 0), ("2025-03-05", 1)] {
            let (ctx, _) = crate::catalog::session_with_all(&storage)
                .await
                .expect("session");
            assert_eq!(
                count(ctx.clone()).await,
                1,
                "the listing table has every night's"
            );
            register_published(&ctx, &storage, day(night))
                .await
                .expect("registered");
            assert_eq!(count(ctx).await, want, "{night}");
        }
        let (ctx, _) = crate::catalog::session_with_all(&storage)
            .await
            .expect("session");
        let err = register_published(&ctx, &storage, day("2025-03-03"))
            .await
            .expect_err("no list for that night");
        assert!(
            err.to_string().contains("marts/superseded for 2025-03-03"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("attune transform --date 2025-03-03"),
            "{err}"
        );
    }

    async fn session_with(rows: &[(&str, &str)]) -> SessionContext {
        let schema = Arc::new(Schema::new(vec![
            Field::new("order_id", DataType::Utf8, true),
            Field::new("dt", DataType::Date32, false),
        ]));
        let keys: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(
            rows.iter().map(|(k, _)| Some(*k)).collect::<Vec<_>>(),
        ));
        let dts: ArrayRef = Arc::new(Date32Array::from(
            rows.iter().map(|(_, d)| days(d)).collect::<Vec<_>>(),
        ));
        one_table("orders", schema, vec![keys, dts])
    }

    /// A session holding one in-memory table of one batch.
    fn one_table(name: &str, schema: SchemaRef, columns: Vec<ArrayRef>) -> SessionContext {
        let batch = RecordBatch::try_new(schema.clone(), columns).expect("batch");
        let ctx = SessionContext::new();
        ctx.register_table(
            name,
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).expect("mem")),
        )
        .expect("register");
        ctx
    }

    #[tokio::test]
    async fn the_latest_export_wins_and_only_as_of_the_run_date() {
        let ctx = session_with(&[
            ("A", "2025-03-01"),
            ("B", "2025-03-01"),
            ("A", "2025-03-02"),
            ("C", "2025-03-02"),
            ("A", "2025-03-05"),
            ("B", "2025-03-09"),
        ])
        .await;
        let sql = "SELECT order_id, dt FROM orders WHERE dt <= DATE '2025-03-05'";
        let (mut found, counts) = table_replaced(&ctx, "orders", sql).await.expect("runs");
        found.sort();
        let got: Vec<(String, i32, i32)> = found
            .into_iter()
            .map(|r| (r.key, r.dt, r.superseded_on))
            .collect();
        // B's re-export on 03-09 is after the run date: B on 03-01 still stands.
        assert_eq!(
            got,
            vec![
                ("A".to_string(), days("2025-03-01"), days("2025-03-02")),
                ("A".to_string(), days("2025-03-02"), days("2025-03-05"))
            ]
        );
        assert_eq!(counts.rows_scanned, 5);
        assert_eq!(counts.keys_exported_more_than_once, 1);
        assert_eq!(counts.records_replaced, 2);
    }

    #[tokio::test]
    async fn one_key_twice_in_a_day_is_an_error_naming_the_partition() {
        let ctx = session_with(&[("A", "2025-03-01"), ("A", "2025-03-01")]).await;
        let err = table_replaced(&ctx, "orders", "SELECT order_id, dt FROM orders")
            .await
            .expect_err("twice in one partition");
        let msg = err.to_string();
        assert!(
            msg.contains("lake/orders") && msg.contains("dt=2025-03-01"),
            "{msg}"
        );
        assert!(!msg.contains("\"A\""), "never the key value: {msg}");
    }

    /// The staging views' anti-join: gone from the plan when the list is
    /// empty, there (and dropping the replaced copy) when it is not.
    #[tokio::test]
    async fn a_table_without_replaced_copies_plans_no_join_and_one_with_them_drops_them() {
        let sql = "SELECT o.order_id FROM orders AS o WHERE NOT EXISTS (SELECT 1 FROM superseded AS s \
                   WHERE s.table_name = 'orders' AND s.record_key = o.order_id AND s.source_dt = o.dt) \
                   ORDER BY o.order_id";
        let rows = [
            ("A", "2025-03-01"),
            ("A", "2025-03-02"),
            ("B", "2025-03-01"),
        ];
        let copy = |table: &str, key: &str| Replaced {
            table: table.into(),
            key: key.into(),
            dt: days("2025-03-01"),
            superseded_on: days("2025-03-02"),
        };
        // (the list, whether the orders' view joins it, the orders it keeps)
        for (replaced, joins, expected) in [
            (vec![], false, vec!["A", "A", "B"]),
            (vec![copy("orders", "A")], true, vec!["A", "B"]),
            // another table's copies: nothing to drop, no join planned
            (
                vec![copy("tickets", "A"), copy("tickets", "B")],
                false,
                vec!["A", "A", "B"],
            ),
            // with copies of three tables, only the orders' count
            (
                vec![
                    copy("customers", "B"),
                    copy("orders", "A"),
                    copy("tickets", "B"),
                ],
                true,
                vec!["A", "B"],
            ),
        ] {
            let ctx = session_with(&rows).await;
            let list = to_batch(&replaced).expect("batch");
            ctx.register_table("superseded", table(&list).expect("table"))
                .expect("register");
            let plan = ctx.sql(&format!("EXPLAIN {sql}")).await.expect("plan");
            let text = datafusion::arrow::util::pretty::pretty_format_batches(
                &plan.collect().await.expect("explain"),
            )
            .expect("text")
            .to_string();
            assert_eq!(text.contains("Join"), joins, "{text}");
            let got = ctx
                .sql(sql)
                .await
                .expect("sql")
                .collect()
                .await
                .expect("rows");
            let ids: Vec<String> = got
                .iter()
                .flat_map(|b| {
                    let a = b.column(0).as_string::<i32>().clone();
                    (0..a.len()).map(move |i| a.value(i).to_string())
                })
                .collect();
            assert_eq!(ids, expected);
        }
    }

    /// Differential: the bucketed-hash pass against a plain map on random keys with many repeats.
    #[tokio::test]
    async fn agrees_with_a_plain_map_on_random_input() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut seen: HashSet<(String, i32)> = HashSet::new();
        for _ in 0..5000 {
            let k = format!("K{}", rng.random_range(0..1500));
            let d = rng.random_range(1..=28);
            let ds = format!("2025-02-{d:02}");
            if seen.insert((k.clone(), days(&ds))) {
                rows.push((k, ds));
            }
        }
        let refs: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let ctx = session_with(&refs).await;
        let (mut found, _) = table_replaced(&ctx, "orders", "SELECT order_id, dt FROM orders")
            .await
            .expect("runs");
        found.sort();
        let mut by_key: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (k, d) in &refs {
            by_key.entry(k).or_default().push(days(d));
        }
        let mut expected = Vec::new();
        for (k, mut ds) in by_key {
            ds.sort_unstable();
            for w in ds.windows(2) {
                expected.push(Replaced {
                    table: "orders".into(),
                    key: k.to_string(),
                    dt: w[0],
                    superseded_on: w[1],
                });
            }
        }
        expected.sort();
        assert_eq!(found, expected);
    }

    /// The list of a later day, cut to an earlier one, equals the list
    /// computed as of the earlier day, for every earlier day.
    #[tokio::test]
    async fn a_later_list_cut_to_an_earlier_day_equals_that_days_list() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let mut seen: HashSet<(String, u32)> = HashSet::new();
        let mut rows: Vec<(String, String)> = Vec::new();
        for _ in 0..3000 {
            let k = format!("K{}", rng.random_range(0..800));
            let d = rng.random_range(1..=28u32);
            if seen.insert((k.clone(), d)) {
                rows.push((k, format!("2025-02-{d:02}")));
            }
        }
        let refs: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let ctx = session_with(&refs).await;
        let list_as_of = |d: u32| {
            let ctx = &ctx;
            async move {
                let sql =
                    format!("SELECT order_id, dt FROM orders WHERE dt <= DATE '2025-02-{d:02}'");
                let (mut found, _) = table_replaced(ctx, "orders", &sql).await.expect("runs");
                found.sort();
                to_batch(&found).expect("batch")
            }
        };
        let latest = list_as_of(28).await;
        assert!(latest.num_rows() > 1000, "{} replaced", latest.num_rows());
        for d in [1, 2, 9, 15, 27, 28] {
            let day = NaiveDate::from_ymd_opt(2025, 2, d).expect("date");
            let cut = as_of(std::slice::from_ref(&latest), day)
                .expect("cuts")
                .expect("has superseded_on");
            assert_eq!(cut, list_as_of(d).await, "as of 2025-02-{d:02}");
        }
        // A list written before superseded_on existed cannot be cut.
        let old = latest.project(&[0, 1, 2]).expect("project");
        let day = NaiveDate::from_ymd_opt(2025, 2, 9).expect("date");
        assert!(as_of(&[old], day).expect("runs").is_none());
    }

    /// A customers table of (id, dt, consent_updated_at in seconds or NULL).
    async fn customers_with(rows: &[(&str, &str, Option<i64>)]) -> SessionContext {
        use datafusion::arrow::array::{StringArray, TimestampMicrosecondArray};
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("dt", DataType::Date32, false),
            Field::new(
                "consent_updated_at",
                DataType::Timestamp(
                    datafusion::arrow::datatypes::TimeUnit::Microsecond,
                    Some("UTC".into()),
                ),
                true,
            ),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Date32Array::from_iter_values(
                rows.iter().map(|r| days(r.1)),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(
                    rows.iter()
                        .map(|r| r.2.map(|s| s * 1_000_000))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
        ];
        one_table("customers", schema, columns)
    }

    const CUSTOMERS_SQL: &str = "SELECT customer_id, dt, consent_updated_at FROM customers";

    /// The customers rule, worked out by hand (the cases of
    /// tests/sql/stg_customers.slt, plus NULL consent times): in export
    /// order, a copy replaces the current one unless its consent time is
    /// known and before the current one's; without a time the later export
    /// wins, as in ingest's consent rule.
    #[tokio::test]
    async fn customers_keep_the_latest_consent_change() {
        let day = |d: &str| days(d) as i64 * 86_400;
        let ctx = customers_with(&[
            ("c1", "2025-03-01", Some(day("2025-03-01"))),
            ("c1", "2025-03-10", Some(day("2025-03-10"))),
            ("c4", "2025-03-02", Some(day("2025-03-02"))),
            ("c4", "2025-03-20", Some(day("2025-03-02"))),
            ("c5", "2025-03-15", Some(day("2025-03-15"))),
            ("c5", "2025-03-25", Some(day("2025-03-01"))),
            ("c7", "2025-03-01", None),
            ("c7", "2025-03-05", Some(day("2025-03-02"))),
            ("c7", "2025-03-09", None),
            ("c8", "2025-03-01", Some(day("2025-03-01"))),
        ])
        .await;
        let (mut found, counts) = table_replaced(&ctx, "customers", CUSTOMERS_SQL)
            .await
            .expect("runs");
        found.sort();
        let got: Vec<(&str, i32, i32)> = found
            .iter()
            .map(|r| (r.key.as_str(), r.dt, r.superseded_on))
            .collect();
        assert_eq!(
            got,
            vec![
                ("c1", days("2025-03-01"), days("2025-03-10")),
                ("c4", days("2025-03-02"), days("2025-03-20")),
                // a stale re-export loses to the record exported before it
                ("c5", days("2025-03-25"), days("2025-03-25")),
                // a time beats the undated copy before it, and an undated
                // later export beats the time (the CRM stopped sending it)
                ("c7", days("2025-03-01"), days("2025-03-05")),
                ("c7", days("2025-03-05"), days("2025-03-09")),
            ]
        );
        assert_eq!(counts.keys_exported_more_than_once, 4);
        assert_eq!(counts.records_replaced, 5);
    }

    /// Differential on random exports: for every cut-off day, the records up
    /// to it that [`as_of`] does not list are exactly one per customer, the
    /// one a plain fold in export order keeps (ingest's rule: replace the
    /// current copy unless both times are known and the new one's is
    /// earlier), so one list serves every earlier day under this rule too.
    #[tokio::test]
    async fn the_customers_rule_cuts_to_any_earlier_day() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(11);
        let mut rows: Vec<(String, String, Option<i64>)> = Vec::new();
        let mut seen: HashSet<(String, u32)> = HashSet::new();
        for _ in 0..3000 {
            let k = format!("C{}", rng.random_range(0..600));
            let d = rng.random_range(1..=28u32);
            let rank = (rng.random_range(0..5) > 0).then(|| rng.random_range(0..20i64));
            if seen.insert((k.clone(), d)) {
                rows.push((k, format!("2025-02-{d:02}"), rank));
            }
        }
        let refs: Vec<(&str, &str, Option<i64>)> = rows
            .iter()
            .map(|(k, d, r)| (k.as_str(), d.as_str(), *r))
            .collect();
        let ctx = customers_with(&refs).await;
        let (found, _) = table_replaced(&ctx, "customers", CUSTOMERS_SQL)
            .await
            .expect("runs");
        let list = to_batch(&found).expect("batch");
        for d in 1..=28u32 {
            let cut_day = NaiveDate::from_ymd_opt(2025, 2, d).expect("date");
            let cut = as_of(std::slice::from_ref(&list), cut_day)
                .expect("cut")
                .expect("has superseded_on");
            let keys = cut.column(1).as_string::<i32>();
            let dts = cut.column(2).as_primitive::<Date32Type>();
            let listed: HashSet<(String, i32)> = (0..cut.num_rows())
                .map(|i| (keys.value(i).to_string(), dts.value(i)))
                .collect();
            let mut kept: BTreeMap<String, i32> = BTreeMap::new();
            let mut copies: BTreeMap<String, Vec<(i32, Option<i64>)>> = BTreeMap::new();
            for (k, ds, rank) in &refs {
                let dt = days(ds);
                if dt > days(&format!("2025-02-{d:02}")) {
                    continue;
                }
                if !listed.contains(&(k.to_string(), dt)) {
                    assert!(kept.insert(k.to_string(), dt).is_none(), "{k} kept twice");
                }
                copies.entry(k.to_string()).or_default().push((dt, *rank));
            }
            let expected: BTreeMap<String, i32> = copies
                .into_iter()
                .map(|(k, mut v)| {
                    v.sort();
                    let mut cur = v[0];
                    for c in &v[1..] {
                        let older = matches!((c.1, cur.1), (Some(a), Some(b)) if a < b);
                        if !older {
                            cur = *c;
                        }
                    }
                    (k, cur.0)
                })
                .collect();
            assert_eq!(kept, expected, "as of 2025-02-{d:02}");
        }
    }

    #[test]
    fn hash_spreads_similar_keys() {
        let hs: HashSet<u64> = (0..100_000)
            .map(|i| hash64(format!("O{i:09}").as_bytes()))
            .collect();
        assert_eq!(hs.len(), 100_000);
        // Session ids of the generated web shop: one 8-byte word and three
        // bytes more, where the old hash collided 15% of the time.
        let sessions: HashSet<u64> = (2_000_000..3_000_000)
            .map(|i| hash64(format!("S{i:010}").as_bytes()))
            .collect();
        assert_eq!(sessions.len(), 1_000_000);
        let top: HashSet<u64> = (0..1000)
            .map(|i| hash64(format!("O{i:09}").as_bytes()) >> 56)
            .collect();
        assert!(
            top.len() > 200,
            "top bytes spread over buckets: {}",
            top.len()
        );
    }

    /// Listing only what was exported since an earlier night's list gives
    /// that night's list plus exactly what a full listing adds: orders
    /// re-exported across the nights (keys in order and out of it), one
    /// re-exported twice after the earlier night, and customers whose
    /// stale re-export (an earlier consent time) does not replace them.
    #[tokio::test]
    async fn a_list_from_an_earlier_nights_equals_a_full_listing() {
        let orders: &[(&str, &str)] = &[
            ("O1", "2025-03-01"),
            ("O2", "2025-03-01"),
            ("O3", "2025-03-02"),
            ("O1", "2025-03-03"),
            ("O4", "2025-03-03"),
            ("O2", "2025-03-05"),
            ("O5", "2025-03-05"),
            ("O3", "2025-03-06"),
            ("O3", "2025-03-07"),
            ("O6", "2025-03-07"),
        ];
        // (customer_id, dt, consent_updated_at as days)
        let customers: &[(&str, &str, Option<i64>)] = &[
            ("c9", "2025-03-01", Some(10)),
            ("c1", "2025-03-01", Some(10)),
            ("c5", "2025-03-02", None),
            ("c9", "2025-03-06", Some(5)),
            ("c1", "2025-03-06", Some(12)),
            ("c5", "2025-03-07", None),
        ];
        let ctx = SessionContext::new();
        let o_schema = Arc::new(Schema::new(vec![
            Field::new("order_id", DataType::Utf8, false),
            Field::new("dt", DataType::Date32, false),
        ]));
        let o = RecordBatch::try_new(
            o_schema.clone(),
            vec![
                Arc::new(datafusion::arrow::array::StringArray::from_iter_values(
                    orders.iter().map(|r| r.0),
                )),
                Arc::new(Date32Array::from_iter_values(
                    orders.iter().map(|r| days(r.1)),
                )),
            ],
        )
        .expect("orders");
        let c_schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("dt", DataType::Date32, false),
            Field::new("consent_updated_at", DataType::Int64, true),
        ]));
        let c = RecordBatch::try_new(
            c_schema.clone(),
            vec![
                Arc::new(datafusion::arrow::array::StringArray::from_iter_values(
                    customers.iter().map(|r| r.0),
                )),
                Arc::new(Date32Array::from_iter_values(
                    customers.iter().map(|r| days(r.1)),
                )),
                Arc::new(datafusion::arrow::array::Int64Array::from(
                    customers.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .expect("customers");
        for (name, schema, batch) in [("orders", o_schema, o), ("customers", c_schema, c)] {
            let table = MemTable::try_new(schema, vec![vec![batch]]).expect("mem");
            ctx.register_table(name, Arc::new(table)).expect("register");
        }
        let contracts = Contracts::builtin().expect("contracts");
        let lake: std::collections::BTreeSet<String> = ["orders", "customers"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        let (base, date) = (day("2025-03-04"), day("2025-03-07"));
        let (earlier, _) = find(&ctx, &contracts, &lake, base, None)
            .await
            .expect("base");
        let (full, full_counts) = find(&ctx, &contracts, &lake, date, None)
            .await
            .expect("full");
        let (since, counts) = find(&ctx, &contracts, &lake, date, Some((base, &earlier)))
            .await
            .expect("since");
        assert_eq!(since, full);
        let keys: Vec<(&str, &str)> = full
            .iter()
            .map(|r| (r.table.as_str(), r.key.as_str()))
            .collect();
        assert!(
            keys.contains(&("customers", "c1")),
            "a newer consent replaces"
        );
        assert!(
            keys.contains(&("customers", "c9")),
            "the stale copy is the one replaced"
        );
        assert_eq!(keys.iter().filter(|k| k.1 == "O3").count(), 2);
        for t in ["orders", "customers"] {
            assert_eq!(
                counts[t].records_replaced, full_counts[t].records_replaced,
                "{t}"
            );
            assert_eq!(
                counts[t].keys_exported_more_than_once, full_counts[t].keys_exported_more_than_once,
                "{t}"
            );
        }
        assert!(counts["orders"].rows_scanned < full_counts["orders"].rows_scanned);
        assert_eq!(counts["orders"].rows, full_counts["orders"].rows);
        assert_eq!(full_counts["orders"].rows, orders.len() as u64);
    }
}
