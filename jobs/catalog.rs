//! The SQL view of a data root: every lake and mart table registered in a
//! DataFusion session as a hive-partitioned Parquet listing table with a
//! `dt` DATE column, exactly as DuckDB, pandas or Spark would read it.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::ObjectMeta;
use object_store::path::Path;

use crate::Result;
use crate::lake_listings::LakeListings;
use crate::storage::Storage;

/// Areas of the data root that hold tables.
pub const AREAS: [&str; 2] = ["lake", "marts"];

/// A table found in the data root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub area: String,
    pub name: String,
    /// Its `dt=…` folders that hold a Parquet file, sorted (never empty).
    pub partitions: Vec<String>,
}

/// A DataFusion session for attune: deterministic (one target partition per
/// core, but sorted output wherever order matters is the SQL's job).
pub fn new_session(storage: &Storage) -> SessionContext {
    session(storage, None, SessionConfig::new())
}

/// A session whose operators share a pool of `limit_bytes`: aggregates and
/// sorts spill to disk when the pool is full, so memory stays bounded as the
/// history grows; a hash join that cannot fit fails with DataFusion's
/// "Resources exhausted" message.
pub fn new_bounded_session(storage: &Storage, limit_bytes: usize) -> SessionContext {
    session(storage, Some(limit_bytes), SessionConfig::new())
}

/// Plan partitions of the SQL models' sessions (see [`new_model_session`]).
pub const MODEL_PARTITIONS: usize = 16;

/// A bounded session for the SQL models, whose heavy work is grouping tens
/// of millions of events by customer. DataFusion's default (one partition
/// per core, a partial aggregate in each) builds a table of every customer
/// per core, twelve accumulators wide for customer_features, and each row
/// lands on a different cache line of each. With [`MODEL_PARTITIONS`]
/// partitions and the partial aggregate skipped where it does not shrink
/// the rows (more than one group per ten rows after its probe), rows go
/// straight to the partition that owns their customer, whose tables are a
/// sixteenth as large. With `customer_key`, the transform at a million
/// customers went from 48–58 s to 33–39 s in alternating runs (README,
/// SQL models). DataFusion 55's `percentile_cont` cannot have its partial
/// aggregate skipped (its `convert_to_state` panics): models take
/// per-customer medians with `median()`.
pub fn new_model_session(storage: &Storage, limit_bytes: usize) -> SessionContext {
    session(storage, Some(limit_bytes), model_config())
}

/// A session with `config`'s settings besides attune's own (catalog,
/// functions, listings), its operators sharing a pool of `limit_bytes`.
pub fn new_configured_session(
    storage: &Storage,
    limit_bytes: usize,
    config: SessionConfig,
) -> SessionContext {
    session(storage, Some(limit_bytes), config)
}

/// Rows a partition's partial aggregate sees before DataFusion decides
/// whether it shrinks them (one batch; see [`new_model_session`]).
pub const PARTIAL_AGGREGATE_PROBE_ROWS: usize = 8192;

fn model_config() -> SessionConfig {
    let mut config = SessionConfig::new().with_target_partitions(MODEL_PARTITIONS);
    config
        .options_mut()
        .execution
        .skip_partial_aggregation_probe_ratio_threshold = 0.1;
    // Decided after one batch instead of DataFusion's 100,000 rows: with
    // sixteen partitions the 1.4M NPS and CSAT answers and 1.8M tickets that
    // customer_features groups by customer come to 90-110K rows a partition,
    // so the probe never (or only at the end) found what it was for, and
    // every answer went through a partial table that did not shrink it.
    config
        .options_mut()
        .execution
        .skip_partial_aggregation_probe_rows_threshold = PARTIAL_AGGREGATE_PROBE_ROWS;
    config
}

fn session(storage: &Storage, limit_bytes: Option<usize>, config: SessionConfig) -> SessionContext {
    let mut config = config
        .with_information_schema(true)
        .with_default_catalog_and_schema("attune", "public");
    // see parquet_format: the same for `read_parquet`/`register_parquet`
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    let ctx = match listings_runtime(storage, limit_bytes) {
        Ok(rt) => SessionContext::new_with_config_rt(config, rt),
        Err(e) => {
            tracing::warn!(error = %e, "DataFusion runtime with attune's listing cache failed to build; using the default");
            SessionContext::new_with_config(config)
        }
    };
    let (url, store) = storage.datafusion_store();
    ctx.register_object_store(url, store);
    install_functions(&ctx);
    ctx
}

/// attune's own SQL functions and rewrites, in every session and in the
/// models' `.slt` tests alike: `customer_key()` and the fast UTC day of a
/// timestamp (`run_date()` is per run: see `transform::run_date_udf`), and
/// a `count` whose grouped `COUNT(DISTINCT)` of a BIGINT sorts instead of
/// hashing (`distinct_count`).
pub fn install_functions(ctx: &SessionContext) {
    crate::utc_dates::install(ctx);
    ctx.register_udf(crate::customer_key::udf());
    ctx.register_udaf(crate::distinct_count::udaf());
}

/// How attune reads Parquet through DataFusion: strings as plain Utf8, not
/// Utf8View. A view array keeps every page it points into alive, so after
/// filters, aggregates and joins a million 32-character customer ids held
/// gigabytes of parquet pages (customer_features reached 24 GB at a
/// million customers).
pub fn parquet_format() -> ParquetFormat {
    ParquetFormat::default().with_force_view_types(false)
}

/// A DataFusion runtime that lists a mart's files on every scan and the
/// lake's once ([`LakeListings`]). DataFusion 55 caches listings per runtime
/// with no expiry: a job that rewrites a partition and reads it back in the
/// same session (a re-run for the same date after a late export, `--force`)
/// would read the new file with the old size and fail ("Src size is
/// incorrect", "Required field type_ is missing"). The lake files'
/// statistics and footers come from caches the process's sessions share
/// ([`crate::lake_footers`]). With `limit_bytes`, operators share a memory
/// pool of that size.
fn listings_runtime(
    storage: &Storage,
    limit_bytes: Option<usize>,
) -> datafusion::error::Result<Arc<datafusion::execution::runtime_env::RuntimeEnv>> {
    use datafusion::execution::cache::cache_manager::CacheManagerConfig;
    let listings = LakeListings::for_storage(storage)?;
    let limit = listings.cache_limit();
    let defaults = CacheManagerConfig::default();
    let statistics =
        crate::lake_footers::statistics_for(storage, defaults.file_statistics_cache_limit)?;
    let footers = crate::lake_footers::footers_for(storage, defaults.metadata_cache_limit)?;
    let caches = defaults
        .with_list_files_cache(Some(listings))
        .with_list_files_cache_limit(limit)
        .with_file_statistics_cache(Some(statistics))
        .with_file_metadata_cache(Some(footers));
    let mut builder =
        datafusion::execution::runtime_env::RuntimeEnvBuilder::new().with_cache_manager(caches);
    if let Some(limit) = limit_bytes {
        builder = builder.with_memory_limit(limit, 1.0);
    }
    builder.build_arc()
}

/// Runs a query with one task per partition of its plan, each folding its
/// own stream with `fold` (the scan and the fold of a partition on one
/// core, the partitions side by side), and returns the partial results in
/// partition order for the caller to combine. For folds over tens of
/// millions of rows, where one consumer of the merged stream would be the
/// bottleneck.
pub async fn fold_partitions<T, F, Fut>(
    df: datafusion::prelude::DataFrame,
    what: &str,
    fold: F,
) -> Result<Vec<T>>
where
    F: Fn(datafusion::physical_plan::SendableRecordBatchStream) -> Fut,
    Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    fold_partitions_in(df, usize::MAX, what, fold).await
}

/// [`fold_partitions`] with at most `folds` tasks: the plan's partitions
/// are dealt to them in turn, and each task folds its share as one stream
/// that takes a batch from whichever of its partitions has one ready (a
/// partition waiting for a read does not hold the fold up). Results come
/// in the order of the tasks. For folds that keep state per customer: the
/// model sessions plan sixteen partitions, and a fold of each met most of
/// the customers, so the per-customer work (a table of them, its sort, the
/// merge of the partial results) was done sixteen times over instead of
/// once per core.
pub async fn fold_partitions_in<T, F, Fut>(
    df: datafusion::prelude::DataFrame,
    folds: usize,
    what: &str,
    fold: F,
) -> Result<Vec<T>>
where
    F: Fn(datafusion::physical_plan::SendableRecordBatchStream) -> Fut,
    Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    use datafusion::physical_plan::SendableRecordBatchStream;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    let streams = df.execute_stream_partitioned().await?;
    let folds = folds.clamp(1, streams.len().max(1));
    let mut shares: Vec<Vec<SendableRecordBatchStream>> = (0..folds).map(|_| Vec::new()).collect();
    for (i, stream) in streams.into_iter().enumerate() {
        shares[i % folds].push(stream);
    }
    let tasks: Vec<_> = shares
        .into_iter()
        .filter(|share| !share.is_empty())
        .map(|mut share| {
            let stream: SendableRecordBatchStream = if share.len() == 1 {
                share.pop().expect("a share of one stream")
            } else {
                let schema = share[0].schema();
                Box::pin(RecordBatchStreamAdapter::new(
                    schema,
                    futures::stream::select_all(share),
                ))
            };
            tokio::spawn(fold(stream))
        })
        .collect();
    let mut parts = Vec::with_capacity(tasks.len());
    for task in tasks {
        parts.push(task.await.map_err(crate::nightly::panics::joined(what))??);
    }
    Ok(parts)
}

/// The table folders under `area`, sorted. Folders starting with `_` or
/// `.` (staging, provenance records) are internal, for the catalog and for
/// every tool that walks the root.
pub async fn table_names(storage: &Storage, area: &str) -> Result<Vec<String>> {
    Ok(storage
        .list_dirs(&Path::from(area))
        .await?
        .into_iter()
        .filter(|name| !name.starts_with('_') && !name.starts_with('.'))
        .collect())
}

/// Each table under `area` ([`table_names`]) with the listing of
/// `prefix(table)` (its folder, or one of its partitions), the tables
/// listed several at once (see [`Storage::list_many`]).
pub async fn table_listings(
    storage: &Storage,
    area: &str,
    prefix: impl Fn(&str) -> Path,
) -> Result<Vec<(String, Vec<ObjectMeta>)>> {
    let names = table_names(storage, area).await?;
    let prefixes: Vec<Path> = names.iter().map(|name| prefix(name)).collect();
    let listed = storage.list_many(&prefixes).await?;
    Ok(names.into_iter().zip(listed).collect())
}

/// Tables present under `area` (folders with at least one partition),
/// skipping internal folders.
pub async fn list_tables(storage: &Storage, area: &str) -> Result<Vec<TableRef>> {
    let mut out = Vec::new();
    let folders =
        table_listings(storage, area, |name| Path::from(format!("{area}/{name}"))).await?;
    for (name, listed) in folders {
        let partitions = partitions_of(&listed);
        if !partitions.is_empty() {
            out.push(TableRef {
                area: area.to_string(),
                name,
                partitions,
            });
        }
    }
    Ok(out)
}

/// The `dt=…` folders of a table that hold a Parquet file, sorted. A
/// folder left empty (a write that failed before its first file, a crash
/// during a table's first partition) is not a partition: counted as one,
/// it made DataFusion refuse the table ("No files found") and with it
/// every query of the root.
async fn stored_partitions(storage: &Storage, area: &str, table: &str) -> Result<Vec<String>> {
    let listed = storage.list(&Path::from(format!("{area}/{table}"))).await?;
    Ok(partitions_of(&listed))
}

/// The sorted `dt=…` folders holding a Parquet file among a table's files.
fn partitions_of(listed: &[ObjectMeta]) -> Vec<String> {
    let mut dts: Vec<String> = listed
        .iter()
        .filter(|m| m.location.extension() == Some("parquet"))
        .filter_map(|m| {
            m.location
                .parts()
                .map(|p| p.as_ref().to_string())
                .find(|p| p.starts_with("dt="))
        })
        .collect();
    dts.sort();
    dts.dedup();
    dts
}

/// Computes `df` once and registers its rows in memory as `name`, in the
/// partitions it ran in: a view is recomputed by every query that reads it.
/// A `MemTable`, not `DataFrame::cache`'s view of one, so that plans read
/// the table by name (as the transform's lineage expects).
pub async fn register_in_memory(
    session: &SessionContext,
    name: &str,
    df: datafusion::prelude::DataFrame,
) -> datafusion::error::Result<()> {
    let schema = Arc::new(df.schema().as_arrow().clone());
    let partitions = df.collect_partitioned().await?;
    session.deregister_table(name)?;
    session.register_table(
        name,
        Arc::new(datafusion::datasource::MemTable::try_new(
            schema, partitions,
        )?),
    )?;
    Ok(())
}

/// Registers one table of the data root under `name`.
pub async fn register(
    ctx: &SessionContext,
    storage: &Storage,
    area: &str,
    table: &str,
    name: &str,
) -> Result<()> {
    let newest = stored_partitions(storage, area, table).await?.pop();
    register_listed(ctx, storage, area, table, name, newest.as_deref()).await
}

/// Registers a table of [`list_tables`] under its own name, with the
/// partitions it listed.
pub async fn register_ref(ctx: &SessionContext, storage: &Storage, t: &TableRef) -> Result<()> {
    let newest = t.partitions.last().map(String::as_str);
    register_listed(ctx, storage, &t.area, &t.name, &t.name, newest).await
}

/// [`register`] with the table's newest partition folder already known.
async fn register_listed(
    ctx: &SessionContext,
    storage: &Storage,
    area: &str,
    table: &str,
    name: &str,
    newest: Option<&str>,
) -> Result<()> {
    let url = ListingTableUrl::parse(format!("{}{area}/{table}/", storage.url()))?;
    let options = ListingOptions::new(Arc::new(parquet_format()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![("dt".to_string(), DataType::Date32)]);
    // The newest partition's schema, not a merge of every file's footer:
    // reading two years of daily footers per table cost most of a second
    // per session. Partitions are written by the current code, so the
    // newest holds every column; an older one without a later column reads
    // it as NULL.
    let config = ListingTableConfig::new(url).with_listing_options(options.clone());
    let schema = match newest {
        Some(dt) => {
            let part = ListingTableUrl::parse(format!("{}{area}/{table}/{dt}/", storage.url()))?;
            options.infer_schema(&ctx.state(), &part).await.ok()
        }
        None => None,
    };
    let config = match schema {
        Some(schema) => config.with_schema(schema),
        None => config.infer_schema(&ctx.state()).await?,
    };
    let provider = with_statistics_cache(ctx, ListingTable::try_new(config)?);
    ctx.deregister_table(name)?;
    ctx.register_table(name, Arc::new(provider))?;
    Ok(())
}

/// `table` with the statistics cache of `ctx`'s runtime. DataFusion's own
/// registrations (`register_parquet`, `CREATE EXTERNAL TABLE`) set it; a
/// table built by hand has none, and every scan planned over it read each
/// file's footer and statistics again (7-8% of an incremental transform's
/// CPU at a million customers).
pub fn with_statistics_cache(ctx: &SessionContext, table: ListingTable) -> ListingTable {
    table.with_cache(ctx.runtime_env().cache_manager.get_file_statistic_cache())
}

/// Registers every lake and mart table in `ctx` under its own name, and
/// returns them.
pub async fn register_all(ctx: &SessionContext, storage: &Storage) -> Result<Vec<TableRef>> {
    let mut all = Vec::new();
    for area in AREAS {
        for t in list_tables(storage, area).await? {
            register_ref(ctx, storage, &t).await?;
            all.push(t);
        }
    }
    Ok(all)
}

/// A session with every lake and mart table registered under its own name
/// (and each lake table no export has brought yet, empty).
pub async fn session_with_all(storage: &Storage) -> Result<(SessionContext, Vec<TableRef>)> {
    let ctx = new_session(storage);
    let all = register_all(&ctx, storage).await?;
    let lake: Vec<&str> = all
        .iter()
        .filter(|t| t.area == "lake")
        .map(|t| t.name.as_str())
        .collect();
    register_absent_lake_tables(&ctx, &lake)?;
    Ok((ctx, all))
}

/// Registers an empty table, with its contract's lake columns and `dt`,
/// for every contracted lake table not in `present`. A business without a
/// review site or web analytics takes `reviews` or `web_sessions` off
/// `[ingest] tables`, as ingest advises when their exports are missing; the
/// models and jobs then see no reviews, instead of failing on a table that
/// does not exist. Returns the tables registered so. They are not listed
/// as tables of the root (`attune tables` shows what is stored).
pub fn register_absent_lake_tables(ctx: &SessionContext, present: &[&str]) -> Result<Vec<String>> {
    let mut added = Vec::new();
    for contract in crate::schema::Contracts::builtin()?.iter() {
        let table = contract.table.as_str();
        if present.contains(&table) {
            continue;
        }
        let mut fields: Vec<datafusion::arrow::datatypes::FieldRef> =
            contract.lake_schema().fields().iter().cloned().collect();
        fields.push(Arc::new(datafusion::arrow::datatypes::Field::new(
            "dt",
            DataType::Date32,
            false,
        )));
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
        let empty = datafusion::datasource::MemTable::try_new(schema, vec![vec![]])?;
        ctx.register_table(table, Arc::new(empty))?;
        added.push(table.to_string());
    }
    Ok(added)
}

/// Test helper: the integer columns of the first row `sql` returns.
#[cfg(test)]
pub(crate) async fn first_row_ints(ctx: &SessionContext, sql: &str) -> Vec<i64> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    let got = ctx
        .sql(sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    (0..got[0].num_columns())
        .map(|i| got[0].column(i).as_primitive::<Int64Type>().value(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet_io::write_batches;
    use crate::storage::partition_file;
    use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{Field, Int64Type, Schema};

    /// A session on a local root reads `file://` URLs through the store
    /// that maps files; on an object store, through that store.
    #[test]
    fn a_local_roots_files_are_read_by_mapping_them() {
        use datafusion::execution::object_store::ObjectStoreUrl;

        let dir = tempfile::tempdir().expect("tmp");
        let local = Storage::open(dir.path().to_str().expect("utf8")).expect("open");
        let ctx = session(&local, None, SessionConfig::new());
        let store = ctx
            .runtime_env()
            .object_store(ObjectStoreUrl::local_filesystem())
            .expect("a file:// store");
        assert!(store.to_string().starts_with("MappedFiles"), "{store}");

        let memory = Storage::open("memory://").expect("memory root");
        let ctx = session(&memory, None, SessionConfig::new());
        let store = ctx
            .runtime_env()
            .object_store(ObjectStoreUrl::parse("memory://").expect("url"))
            .expect("a memory:// store");
        assert!(!store.to_string().starts_with("MappedFiles"), "{store}");
    }

    /// The schema comes from the newest partition: a column added later is
    /// there, and reads as NULL in partitions written before it existed.
    #[tokio::test]
    async fn a_column_added_later_reads_as_null_in_older_partitions() {
        let dir = tempfile::tempdir().expect("tmp");
        let storage = Storage::open(dir.path().to_str().expect("utf8")).expect("open");
        let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2025, 3, d).expect("date");
        let old = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let new = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Int64, true),
        ]));
        let a = |v: i64| Arc::new(Int64Array::from(vec![v])) as _;
        let before = RecordBatch::try_new(old.clone(), vec![a(1)]).expect("batch");
        let after = RecordBatch::try_new(new.clone(), vec![a(2), a(20)]).expect("batch");
        write_batches(
            &storage,
            &partition_file("marts", "t", day(1)),
            old,
            &[before],
        )
        .await
        .expect("write");
        write_batches(
            &storage,
            &partition_file("marts", "t", day(2)),
            new,
            &[after],
        )
        .await
        .expect("write");
        let ctx = new_session(&storage);
        register(&ctx, &storage, "marts", "t", "t")
            .await
            .expect("register");
        let got = ctx
            .sql("SELECT a, b FROM t ORDER BY a")
            .await
            .expect("sql")
            .collect()
            .await
            .expect("rows");
        let b = got[0].column(1).as_primitive::<Int64Type>();
        assert_eq!(got[0].num_rows(), 2);
        assert!(b.is_null(0));
        assert_eq!(b.value(1), 20);
    }

    /// The model session skips the partial aggregate of a group-by with a
    /// group per few rows, and the per-customer aggregates the models use
    /// still add up: counts, sums, minima and `median`, which replaced
    /// `percentile_cont` for this reason.
    #[tokio::test]
    async fn model_sessions_skip_partial_aggregates_and_still_add_up() {
        use datafusion::arrow::array::{Float64Array, StringArray};
        use datafusion::datasource::MemTable;
        let dir = tempfile::tempdir().expect("tmp");
        let storage = Storage::open(dir.path().to_str().expect("utf8")).expect("open");
        // 60,000 customers with three events each (values i, i + 1, i + 5):
        // about 11,000 rows in each of the sixteen partitions, past the
        // session's probe of one batch and far short of DataFusion's own
        // 100,000, which never decided on the models' answers and tickets
        let ctx = session(&storage, Some(1 << 30), model_config());
        let customers = 60_000usize;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("v", DataType::Float64, false),
        ]));
        // in batches of 1,000 rows, so each partition gets several: the
        // decision applies to the batches after the probe
        let batches: Vec<RecordBatch> = [0.0, 1.0, 5.0]
            .iter()
            .flat_map(|offset| {
                (0..customers)
                    .step_by(1_000)
                    .map(move |start| (offset, start))
            })
            .map(|(offset, start)| {
                let range = start..start + 1_000;
                let ids: StringArray = range.clone().map(|i| Some(format!("{i:032x}"))).collect();
                let v: Float64Array = range.map(|i| i as f64 + offset).collect();
                RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(v)])
                    .expect("batch")
            })
            .collect();
        let table = MemTable::try_new(schema, vec![batches]).expect("table");
        ctx.register_table("events", Arc::new(table))
            .expect("register");
        let rows = |sql: String| {
            let ctx = ctx.clone();
            async move { first_row_ints(&ctx, &sql).await }
        };
        let per_customer = "SELECT customer_key(id) AS k, count(*) AS n, min(v) AS m, sum(v) AS total \
                            FROM events GROUP BY customer_key(id)";
        let sql = format!(
            "SELECT count(*), sum(CAST(n = 3 AS BIGINT)), sum(CAST(total = 3 * m + 6 AS BIGINT)) \
             FROM ({per_customer})"
        );
        let n = customers as i64;
        assert_eq!(
            rows(sql.clone()).await,
            [n, n, n],
            "groups, counts and sums"
        );
        let medians = "SELECT count(*), sum(CAST(med = m + 1 AS BIGINT)) FROM \
                       (SELECT min(v) AS m, median(v) AS med FROM events GROUP BY customer_key(id))";
        assert_eq!(rows(medians.into()).await, [n, n], "medians");
        let plan = ctx
            .sql(per_customer)
            .await
            .expect("sql")
            .create_physical_plan()
            .await
            .expect("plan");
        datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx())
            .await
            .expect("run");
        fn skipped(plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> usize {
            let own = plan
                .metrics()
                .and_then(|m| m.sum_by_name("skipped_aggregation_rows"))
                .map_or(0, |v| v.as_usize());
            own + plan.children().into_iter().map(skipped).sum::<usize>()
        }
        assert!(skipped(&plan) > 0, "the partial aggregate was not skipped");
    }

    /// Differential: folds over shares of the partitions against a fold per
    /// partition (what [`fold_partitions`] was): every row folded once, by
    /// the task its partition was dealt to, at most `folds` tasks, and with
    /// as many folds as partitions each partition's rows in their order.
    #[tokio::test]
    async fn folds_over_shares_of_the_partitions_see_every_row_once() {
        use datafusion::datasource::MemTable;
        use datafusion::physical_plan::SendableRecordBatchStream;
        use futures::StreamExt;

        async fn fold(mut stream: SendableRecordBatchStream) -> Result<Vec<i64>> {
            let mut seen = Vec::new();
            while let Some(b) = stream.next().await {
                seen.extend(b?.column(0).as_primitive::<Int64Type>().values().iter());
            }
            Ok(seen)
        }
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        // partition p: (p + 1) * 10 values in batches of seven
        let partitions: Vec<Vec<RecordBatch>> = (0..5i64)
            .map(|p| {
                let values: Vec<i64> = (0..(p + 1) * 10).map(|i| p * 1000 + i).collect();
                values
                    .chunks(7)
                    .map(|c| {
                        let column: Arc<dyn Array> = Arc::new(Int64Array::from(c.to_vec()));
                        RecordBatch::try_new(schema.clone(), vec![column]).expect("batch")
                    })
                    .collect()
            })
            .collect();
        // one target partition: the plan keeps the table's five as they are
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        let table = MemTable::try_new(schema, partitions).expect("table");
        ctx.register_table("t", Arc::new(table)).expect("register");
        let mut per_partition = Vec::new();
        for stream in ctx
            .table("t")
            .await
            .expect("table")
            .execute_stream_partitioned()
            .await
            .expect("streams")
        {
            per_partition.push(fold(stream).await.expect("fold"));
        }
        assert!(per_partition.len() > 1, "a plan of several partitions");
        for folds in [1, 2, 3, 4, 5, 9, usize::MAX] {
            let df = ctx.table("t").await.expect("table");
            let got = fold_partitions_in(df, folds, "a test fold", fold)
                .await
                .expect("folds");
            assert_eq!(got.len(), folds.min(per_partition.len()), "{folds} folds");
            for (j, share) in got.iter().enumerate() {
                let mut want: Vec<i64> = per_partition
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % got.len() == j)
                    .flat_map(|(_, rows)| rows.iter().copied())
                    .collect();
                let mut share = share.clone();
                want.sort_unstable();
                share.sort_unstable();
                assert_eq!(share, want, "{folds} folds, fold {j}");
            }
            if folds >= per_partition.len() {
                assert_eq!(got, per_partition, "{folds} folds");
            }
        }
        let df = ctx.table("t").await.expect("table");
        let old = fold_partitions(df, "a test fold", fold)
            .await
            .expect("folds");
        assert_eq!(old, per_partition);
    }
}
