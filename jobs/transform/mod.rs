//! Transform: the SQL models of `sql/` run on DataFusion over the lake.
//!
//! Reads every `lake/<table>` (hive `dt` partitions up to the run date are
//! the model's business: each model cuts at `run_date()`), runs
//! the models in dependency order, writes each `materialized: table` model
//! to `marts/<model>/dt=<date>/part-0.parquet` atomically, runs its data
//! tests, and writes the column lineage of every model to `marts/lineage`.

pub mod checks;
pub mod incremental;
pub mod incremental_tests;
pub mod lineage;
pub mod models;
pub mod provenance;
pub mod superseded;
pub mod totals;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use futures::StreamExt;
use object_store::path::Path;
use serde::Serialize;
use tracing::{Instrument, debug, info, instrument, warn};

use self::lineage::ModelLineage;
use self::models::{Materialized, Model};
use crate::catalog;
use crate::context::JobContext;
use crate::parquet_io::{ParquetSink, write_batches};
use crate::storage::partition_file;
use crate::{Error, Result};

/// What one model produced.
#[derive(Debug, Clone, Serialize)]
pub struct ModelOutcome {
    pub model: String,
    pub materialized: String,
    pub rows: u64,
    pub data_tests: usize,
    /// Building the model plus running its data tests (which run while
    /// the models after it build, so these overlap).
    pub seconds: f64,
    /// An incremental model: the earlier night whose rows it carried, and
    /// the days it computed again (absent when it computed every day).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carried_from: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_computed: Option<usize>,
    /// A view with incremental tests: the earlier night since which its
    /// tests read only the new rows (absent when they read every row).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tested_since: Option<NaiveDate>,
}

/// What the transform produced.
#[derive(Debug, Clone, Serialize)]
pub struct TransformOutcome {
    pub date: NaiveDate,
    pub models: Vec<ModelOutcome>,
    pub lineage_rows: u64,
    /// Per lake table: keys exported more than once, and copies replaced.
    pub superseded: BTreeMap<String, superseded::SupersededCounts>,
}

impl TransformOutcome {
    /// Rows written to marts.
    pub fn rows_out(&self) -> u64 {
        self.models
            .iter()
            .filter(|m| m.materialized == "table")
            .map(|m| m.rows)
            .sum()
    }
}

/// Runs every model as of `date`.
#[instrument(skip_all, fields(job = "transform", run_id = %ctx.run_id))]
pub async fn run(ctx: &JobContext, date: NaiveDate) -> Result<TransformOutcome> {
    // Left by a run that was killed: the lock says no run is using it, and
    // no privacy tool looks inside `_` folders, so it goes now.
    clear_staging(&ctx.storage).await?;
    let staging = staging_dir(&ctx.run_id);
    let built = build(ctx, date, &staging).await;
    // Whatever happened, nothing stays staged: on success it was moved into
    // place, on failure it is dropped and the date's marts stay as they were.
    if let Err(e) = ctx.storage.delete_prefix(&staging).await {
        warn!(error = %e, "could not remove the transform's staging folder");
    }
    built
}

/// Removes whatever a killed transform left staged (runs hold the data
/// root's lock, so no transform is using it).
pub async fn clear_staging(storage: &crate::storage::Storage) -> Result<()> {
    storage.delete_prefix(&Path::from("marts/_staging")).await?;
    Ok(())
}

/// Where a run stages its tables until every model and test has passed:
/// outside every table's folder (the catalog skips `_…`), so no reader
/// lists a staged file.
fn staging_dir(run_id: &str) -> Path {
    Path::from(format!("marts/_staging/{run_id}"))
}

/// Builds every model into `staging`, runs their data tests, then moves
/// each table into `marts/<model>/dt=<date>/` and publishes `superseded`:
/// a failing model or test leaves every mart of the date as it was, not
/// the first half new and a table that failed its tests in place.
async fn build(ctx: &JobContext, date: NaiveDate, staging: &Path) -> Result<TransformOutcome> {
    let storage = &ctx.storage;
    let loaded = models::load(ctx.cfg.models_dir.as_deref())?;
    let earlier = earlier_superseded(ctx, &loaded, date).await?;
    let (session, lake, replaced, superseded_counts) =
        lake_session(ctx, date, Listing::Find(earlier)).await?;
    let ordered = models::order(loaded, &lake)?;
    let inputs = provenance::digest(ctx, &ordered, date).await?;
    let mut staged: Vec<(String, Path)> = Vec::new();

    let mut known: BTreeMap<String, ModelLineage> = BTreeMap::new();
    let mut outcomes = Vec::new();
    let mut tests = PendingTests::default();
    let mut night = incremental::Night {
        ctx,
        session: &session,
        models: &ordered,
        date,
        digests: BTreeMap::new(),
    };
    for (i, model) in ordered.iter().enumerate() {
        crate::nightly::progress::step(&format!("{} ({} of {})", model.name, i + 1, ordered.len()));
        let started = Instant::now();
        let built = async {
            let built =
                build_model(&mut night, model, staging, &mut known, &lake, &mut staged).await?;
            let since = incremental_tests::since(&mut night, &known, model).await?;
            Ok::<_, Error>((built, since))
        }
        .await;
        let ((rows, carried), since) = match built {
            Ok(built) => built,
            // an earlier model's failing test stops the run first, as it did
            // when the tests ran before the next model was built
            Err(e) => return Err(tests.finish(&mut outcomes).await.err().unwrap_or(e)),
        };
        let tested_since = since.as_ref().map(|(night, _)| *night);
        tests.spawn(
            outcomes.len(),
            &session,
            model,
            rows,
            since.map(|(_, rows)| rows),
        );
        outcomes.push(ModelOutcome {
            model: model.name.clone(),
            materialized: model.materialized.as_str().into(),
            rows,
            data_tests: 0,
            seconds: started.elapsed().as_secs_f64(),
            carried_from: carried.map(|(night, _)| night),
            days_computed: carried.map(|(_, days)| days),
            tested_since,
        });
    }
    tests.finish(&mut outcomes).await?;
    // Every model built and passed its tests: into place, one atomic
    // rename per table (a copy where the store has no rename).
    for (name, file) in &staged {
        provenance::forget(ctx, name, date).await?;
        storage
            .rename(file, &partition_file("marts", name, date))
            .await?;
        provenance::record(ctx, name, date, &inputs).await?;
    }
    provenance::forget(ctx, "superseded", date).await?;
    crate::mart::publish(
        storage,
        "superseded",
        date,
        superseded::schema(),
        std::slice::from_ref(&replaced),
    )
    .await?;
    provenance::record(ctx, "superseded", date, &inputs).await?;
    // the views whose tests passed, so that a later night tests their new
    // rows only
    incremental_tests::record_passed(ctx, &ordered, date, &inputs).await?;
    let lineage_rows = write_lineage(ctx, date, &ordered, &known).await?;
    Ok(TransformOutcome {
        date,
        models: outcomes,
        lineage_rows,
        superseded: superseded_counts,
    })
}

/// Builds one model: a view or in-memory table registered in `session`, or
/// a table written to `staging` (listed in `staged`) and registered from
/// there. Returns its rows (0 for a view) and, for a carried model, the
/// night it carried and the days it computed again.
async fn build_model(
    night: &mut incremental::Night<'_>,
    model: &Model,
    staging: &Path,
    known: &mut BTreeMap<String, ModelLineage>,
    lake: &BTreeSet<String>,
    staged: &mut Vec<(String, Path)>,
) -> Result<(u64, Option<(NaiveDate, usize)>)> {
    let (ctx, session) = (night.ctx, night.session);
    let storage = &ctx.storage;
    let failed = |reason: String| Error::Model {
        model: model.name.clone(),
        reason: with_memory_hint(reason, ctx.cfg.transform_memory_limit),
    };
    let df = session
        .sql(&model.sql)
        .await
        .map_err(|e| failed(e.to_string()))?;
    check_documented_columns(model, df.schema().as_arrow())?;
    known.insert(
        model.name.clone(),
        lineage::model_lineage(df.logical_plan(), known, lake)?,
    );
    let mut carried = None;
    let rows = match model.materialized {
        Materialized::View => {
            session.register_table(model.name.as_str(), df.into_view())?;
            0
        }
        Materialized::Memory => {
            crate::catalog::register_in_memory(session, &model.name, df)
                .await
                .map_err(|e| failed(e.to_string()))?;
            0
        }
        Materialized::Table => {
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let dir = Path::from(format!("{staging}/{}", model.name));
            let mut sink =
                ParquetSink::create(storage, dir.clone().join("part-0.parquet"), schema)?;
            let carried_over = if let Some(spec) = &model.incremental {
                Some(incremental::build(night, known, model, spec, df.clone()).await)
            } else if let Some(spec) = &model.totals {
                Some(totals::build(night, known, model, spec, df.clone()).await)
            } else {
                None
            };
            if let Some(built) = carried_over {
                let built = built.map_err(|e| match e {
                    e @ Error::Model { .. } => e,
                    e => failed(e.to_string()),
                })?;
                sink.write(&built.rows).await?;
                carried = built.carried;
            } else {
                let task = Arc::new(df.task_ctx());
                let plan = df
                    .create_physical_plan()
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                let mut stream = datafusion::physical_plan::execute_stream(plan.clone(), task)
                    .map_err(|e| failed(e.to_string()))?;
                while let Some(batch) = stream.next().await {
                    sink.write(&batch.map_err(|e| failed(e.to_string()))?)
                        .await?;
                }
                // the plan with its measured rows, times and memory: what
                // `EXPLAIN ANALYZE` prints, for finding a slow model at scale
                debug!(
                    model = %model.name,
                    "plan with metrics:\n{}",
                    DisplayableExecutionPlan::with_metrics(plan.as_ref()).indent(true)
                );
            }
            let rows = sink.finish().await?;
            register_dir(session, ctx, &model.name, &dir).await?;
            staged.push((model.name.clone(), dir.clone().join("part-0.parquet")));
            rows
        }
    };
    Ok((rows, carried))
}

/// The data tests of the models built so far, each running while the
/// models after it build: most of a staging view's time is its tests over
/// every row of the history, and one model at a time left a core idle for
/// a third of the transform. A failing test still fails the run before
/// anything moves into place.
#[derive(Default)]
struct PendingTests(Vec<(usize, Tested)>);

/// A model's tests under way: how many it has, and the seconds they took.
type Tested = tokio::task::JoinHandle<Result<(usize, f64)>>;

impl PendingTests {
    /// Starts the tests of `model`, whose outcome is `outcomes[at]`, on
    /// `only` when given (the rows an incremental view's tests must read),
    /// else on every row.
    fn spawn(
        &mut self,
        at: usize,
        session: &datafusion::prelude::SessionContext,
        model: &Model,
        rows: u64,
        only: Option<datafusion::prelude::DataFrame>,
    ) {
        let (session, model) = (session.clone(), model.clone());
        let task = tokio::spawn(
            async move {
                let started = Instant::now();
                let data_tests = match only {
                    None => checks::run(&session, &model).await?,
                    Some(rows) => {
                        // a name of its own: the models building meanwhile
                        // read the view itself
                        let name = format!("attune_new_rows_of_{}", model.name);
                        session.register_table(name.as_str(), rows.into_view())?;
                        let tested = checks::run_on(&session, &model, &name).await;
                        session.deregister_table(name.as_str())?;
                        tested?
                    }
                };
                info!(model = %model.name, rows, data_tests, "model built");
                Ok((data_tests, started.elapsed().as_secs_f64()))
            }
            .in_current_span(),
        );
        self.0.push((at, task));
    }

    /// Waits for every test in model order; the first failure is the
    /// error, and the tests after it are stopped.
    async fn finish(&mut self, outcomes: &mut [ModelOutcome]) -> Result<()> {
        let mut pending = std::mem::take(&mut self.0).into_iter();
        while let Some((at, task)) = pending.next() {
            let tested = task
                .await
                .map_err(crate::nightly::panics::joined("a model's data tests"))
                .and_then(|r| r);
            match tested {
                Ok((n, seconds)) => {
                    outcomes[at].data_tests = n;
                    outcomes[at].seconds += seconds;
                }
                Err(e) => {
                    pending.for_each(|(_, task)| task.abort());
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

impl Drop for PendingTests {
    /// A transform that stops early stops its tests: the staging folder
    /// they read is about to go.
    fn drop(&mut self) {
        self.0.iter().for_each(|(_, task)| task.abort());
    }
}

/// `run_date()`: the date the models run as of, a constant the optimizer
/// folds into every expression. A one-row `run_context` table joined to the
/// lake did the same job in portable SQL, but DataFusion kept it as a
/// nested-loop join that buffered every order of every day in memory (22 GB
/// at a million customers) and could not prune partitions by date. DuckDB
/// and Spark get the same function with a one-line macro (see README).
pub fn run_date_udf(date: NaiveDate) -> ScalarUDF {
    date_constant_udf("run_date", date)
}

/// A zero-argument SQL function `name()` returning `date`.
pub fn date_constant_udf(name: &str, date: NaiveDate) -> ScalarUDF {
    let days = (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")).num_days() as i32;
    create_udf(
        name,
        Vec::new(),
        DataType::Date32,
        Volatility::Immutable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Date32(Some(days))))
        }),
    )
}

/// Where a session's `superseded` list comes from.
enum Listing {
    /// A published list, cut to the date.
    Published(RecordBatch),
    /// Listed from the lake, from an earlier night's list when there is one.
    Find(Option<(NaiveDate, Vec<superseded::Replaced>)>),
}

/// The list of the latest earlier night whose lake partitions are as they
/// were (its record, like the models', holds the digest of the lake up to
/// that night), to list only what was exported since.
async fn earlier_superseded(
    ctx: &JobContext,
    models: &[Model],
    date: NaiveDate,
) -> Result<Option<(NaiveDate, Vec<superseded::Replaced>)>> {
    let Some(night) = provenance::latest_recorded_before(&ctx.storage, "superseded", date).await?
    else {
        return Ok(None);
    };
    let Some(batches) = provenance::reuse(ctx, models, "superseded", night).await? else {
        return Ok(None);
    };
    let mut list = Vec::new();
    for b in &batches {
        let Some(rows) = superseded::from_batch(b)? else {
            return Ok(None);
        };
        list.extend(rows);
    }
    Ok(Some((night, list)))
}

/// A session over the lake as of `date`: every lake table, `run_date()`,
/// and `superseded` (the copies a later export replaced, which the staging
/// views leave out), from `listing`. Also returns the lake's tables, the
/// superseded rows and, when listed, their counts per table.
async fn lake_session(
    ctx: &JobContext,
    date: NaiveDate,
    listing: Listing,
) -> Result<(
    datafusion::prelude::SessionContext,
    BTreeSet<String>,
    RecordBatch,
    BTreeMap<String, superseded::SupersededCounts>,
)> {
    let storage = &ctx.storage;
    let session = catalog::new_model_session(storage, ctx.cfg.transform_memory_limit);
    let mut lake = BTreeSet::new();
    for t in catalog::list_tables(storage, "lake").await? {
        catalog::register_ref(&session, storage, &t).await?;
        lake.insert(t.name);
    }
    let present: Vec<&str> = lake.iter().map(String::as_str).collect();
    let absent = catalog::register_absent_lake_tables(&session, &present)?;
    lake.extend(absent);
    session.register_udf(run_date_udf(date));
    let (replaced, counts) = match listing {
        Listing::Published(r) => (r, BTreeMap::new()),
        Listing::Find(earlier) => {
            let started = Instant::now();
            let since = earlier
                .as_ref()
                .map(|(night, list)| (*night, list.as_slice()));
            let (found, counts) =
                superseded::find(&session, &ctx.contracts, &lake, date, since).await?;
            info!(
                replaced = found.len(),
                since = ?since.map(|(night, _)| night),
                seconds = started.elapsed().as_secs_f64(),
                "superseded copies listed"
            );
            (superseded::to_batch(&found)?, counts)
        }
    };
    session.register_table("superseded", superseded::table(&replaced)?)?;
    Ok((session, lake, replaced, counts))
}

/// The superseded list as of `date`, cut from the list the transform
/// published for `published` (a later or the same day); `None` when that
/// partition is missing, was written before lists carried `superseded_on`,
/// or no longer matches the lake (a day ingested again since the transform
/// ran may have brought a new copy of a record, which the list would not
/// leave out). Listing every key of every table takes seconds at scale:
/// jobs after the transform read its list instead of listing again.
pub async fn published_superseded(
    ctx: &JobContext,
    published: NaiveDate,
    date: NaiveDate,
) -> Result<Option<RecordBatch>> {
    if date > published {
        return Ok(None);
    }
    let path = partition_file("marts", "superseded", published);
    if ctx.storage.head_opt(&path).await?.is_none() {
        return Ok(None);
    }
    let all = models::load(ctx.cfg.models_dir.as_deref())?;
    if !provenance::is_current(ctx, &all, "superseded", published).await? {
        return Ok(None);
    }
    let batches = crate::parquet_io::read_batches(&ctx.storage, &path).await?;
    superseded::as_of(&batches, date)
}

/// A session as of `date`: every lake table, `run_date()`, `superseded`,
/// and every model registered as a view, so nothing is computed or written
/// until queried. For jobs that need a model as of another date than the
/// run date (the churn model's features as of its cut-off). `superseded` is
/// cut from the list the transform published for `published` when there is
/// one (see [`published_superseded`]), else listed from the lake.
pub async fn session_as_of(
    ctx: &JobContext,
    date: NaiveDate,
    published: NaiveDate,
) -> Result<datafusion::prelude::SessionContext> {
    models_as_of(ctx, date, published, None).await
}

/// [`session_as_of`], with the tables `held_for` reads (see
/// [`model_as_of`]) computed and held in memory instead of registered as
/// views.
async fn models_as_of(
    ctx: &JobContext,
    date: NaiveDate,
    published: NaiveDate,
    held_for: Option<&str>,
) -> Result<datafusion::prelude::SessionContext> {
    let listing = match published_superseded(ctx, published, date).await? {
        Some(list) => Listing::Published(list),
        None => Listing::Find(None),
    };
    let (session, lake, _, _) = lake_session(ctx, date, listing).await?;
    let ordered = models::order(models::load(ctx.cfg.models_dir.as_deref())?, &lake)?;
    let held = held_for.map_or_else(BTreeSet::new, |m| tables_read_by(&ordered, m));
    // in order: a view's plan takes in the tables it reads as they are
    // registered when it is, so each held table is in place before them
    for model in &ordered {
        let failed = |e: datafusion::error::DataFusionError| Error::Model {
            model: model.name.clone(),
            reason: e.to_string(),
        };
        let df = session.sql(&model.sql).await.map_err(failed)?;
        if !held.contains(model.name.as_str()) {
            session.register_table(model.name.as_str(), df.into_view())?;
            continue;
        }
        let df = match df.logical_plan() {
            // in no order: what reads the table groups and joins it
            datafusion::logical_expr::LogicalPlan::Sort(sort) if sort.fetch.is_none() => {
                session
                    .execute_logical_plan(sort.input.as_ref().clone())
                    .await?
            }
            _ => df,
        };
        let schema = Arc::new(df.schema().as_arrow().clone());
        let rows = df.collect().await.map_err(failed)?;
        let table = datafusion::datasource::MemTable::try_new(schema, vec![rows])?;
        session.register_table(model.name.as_str(), Arc::new(table))?;
    }
    Ok(session)
}

/// The rows of one model as of `date`, computed in memory, not written
/// (`published` as in [`session_as_of`]), and the session they were
/// computed in, where [`data_tests_in`] runs the model's data tests on them
/// without listing the lake and planning the models again.
///
/// Computed on every core: the model must not add up DOUBLE columns (the
/// order in which partial sums meet varies between runs, and with it the
/// last bits), which is why customer_features sums money in whole cents.
///
/// The tables the model reads are computed first, each once, as the
/// transform builds them before the models that read them: as views they
/// would be inlined wherever they are read, and customer_features reads
/// `customer_order_totals` three times (its order columns, and its main
/// currency in two places).
pub async fn model_as_of(
    ctx: &JobContext,
    model: &str,
    date: NaiveDate,
    published: NaiveDate,
) -> Result<(Vec<RecordBatch>, datafusion::prelude::SessionContext)> {
    let session = models_as_of(ctx, date, published, Some(model)).await?;
    let df = session.table(model).await?;
    let task = Arc::new(df.task_ctx());
    let plan = df.create_physical_plan().await?;
    let rows = datafusion::physical_plan::collect(plan.clone(), task).await?;
    // as the transform logs its models' plans: for finding a slow one
    debug!(
        model,
        %date,
        "plan with metrics:\n{}",
        DisplayableExecutionPlan::with_metrics(plan.as_ref()).indent(true)
    );
    Ok((rows, session))
}

/// The models materialized as tables that `model` reads, directly or
/// through views.
fn tables_read_by<'a>(ordered: &'a [Model], model: &str) -> BTreeSet<&'a str> {
    let mut needed: BTreeSet<&str> = BTreeSet::new();
    let mut todo = vec![model];
    while let Some(name) = todo.pop() {
        let Some(m) = ordered.iter().find(|m| m.name == name) else {
            continue;
        };
        for r in &m.references {
            if needed.insert(r.as_str()) {
                todo.push(r.as_str());
            }
        }
    }
    ordered
        .iter()
        .filter(|m| {
            m.name != model
                && m.materialized == Materialized::Table
                && needed.contains(m.name.as_str())
        })
        .map(|m| m.name.as_str())
        .collect()
}

/// Runs the data tests of `model` on `rows`, the model as of the date of
/// `session` (see [`model_as_of`]), as the transform of that day would
/// before publishing them: `rows` take the model's place in the session.
/// `Err` only when the tests could not run; a failing test is
/// `Ok(Some(reason))`, naming the column and the number of rows, never a value.
pub async fn data_tests_in(
    session: &datafusion::prelude::SessionContext,
    model: &Model,
    rows: &[RecordBatch],
) -> Result<Option<String>> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    session.deregister_table(model.name.as_str())?;
    let table = datafusion::datasource::MemTable::try_new(first.schema(), vec![rows.to_vec()])?;
    session.register_table(model.name.as_str(), Arc::new(table))?;
    match checks::run(session, model).await {
        Ok(_) => Ok(None),
        Err(e @ Error::DataTest { .. }) => Ok(Some(e.to_string())),
        Err(e) => Err(e),
    }
}

/// DataFusion's "Resources exhausted" names the operator and pool, not the
/// setting that sizes the pool.
fn with_memory_hint(reason: String, limit: usize) -> String {
    if reason.contains("Resources exhausted") {
        format!(
            "{reason}; the models may hold {} MiB: raise transform.memory_limit_mb in attune.toml",
            limit >> 20
        )
    } else {
        reason
    }
}

/// The header must document exactly the columns the SELECT returns: the
/// analyst docs are generated from it, so drift would be a lie in the docs.
fn check_documented_columns(model: &Model, schema: &Schema) -> Result<()> {
    let returned: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let documented: Vec<&str> = model.columns.iter().map(|(c, _)| c.as_str()).collect();
    if returned != documented {
        return Err(Error::Model {
            model: model.name.clone(),
            reason: format!(
                "the header documents columns [{}] but the SELECT returns [{}]; keep one `-- column` line per output column, in order",
                documented.join(", "),
                returned.join(", ")
            ),
        });
    }
    Ok(())
}

/// Registers the partition just written, so later models and the data tests
/// read exactly what was published.
async fn register_dir(
    session: &datafusion::prelude::SessionContext,
    ctx: &JobContext,
    model: &str,
    dir: &Path,
) -> Result<()> {
    let url = ListingTableUrl::parse(format!("{}{dir}/", ctx.storage.url()))?;
    let options = ListingOptions::new(Arc::new(crate::catalog::parquet_format()))
        .with_file_extension(".parquet");
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .infer_schema(&session.state())
        .await?;
    let table = crate::catalog::with_statistics_cache(session, ListingTable::try_new(config)?);
    session.register_table(model, Arc::new(table))?;
    Ok(())
}

/// Schema of `marts/lineage`.
pub fn lineage_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("output_column", DataType::Utf8, true),
        Field::new("source_table", DataType::Utf8, false),
        Field::new("source_column", DataType::Utf8, false),
        Field::new("usage", DataType::Utf8, false),
    ]))
}

async fn write_lineage(
    ctx: &JobContext,
    date: NaiveDate,
    models: &[Model],
    known: &BTreeMap<String, ModelLineage>,
) -> Result<u64> {
    let (mut m, mut o, mut t, mut c, mut u) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut rows = 0u64;
    for model in models {
        let Some(l) = known.get(&model.name) else {
            continue;
        };
        for (col, sources) in &l.outputs {
            for (table, column) in sources {
                m.append_value(&model.name);
                o.append_value(col);
                t.append_value(table);
                c.append_value(column);
                u.append_value("output");
                rows += 1;
            }
        }
        // Logic rows: every column that shapes the rows, outputs included
        // (a de-duplication key is often also selected), so a reader can
        // tell "passed through" from "decides which rows exist".
        for (table, column) in &l.logic {
            m.append_value(&model.name);
            o.append_null();
            t.append_value(table);
            c.append_value(column);
            u.append_value("logic");
            rows += 1;
        }
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(m.finish()),
        Arc::new(o.finish()),
        Arc::new(t.finish()),
        Arc::new(c.finish()),
        Arc::new(u.finish()),
    ];
    let batch = RecordBatch::try_new(lineage_schema(), cols)?;
    write_batches(
        &ctx.storage,
        &partition_file("marts", "lineage", date),
        lineage_schema(),
        &[batch],
    )
    .await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, materialized: &str, sql: &str) -> Model {
        let text = format!(
            "-- model: {name}\n-- materialized: {materialized}\n-- purpose: test\n-- grain: one row\n-- column x: x\n{sql}"
        );
        models::parse_model(name, &text).expect("model")
    }

    /// A table read through a view is held, as is one read directly; a
    /// table read by nothing the model reads, a view, and the model itself
    /// are not.
    #[test]
    fn the_tables_a_model_reads_through_its_views_are_held() {
        let ordered = [
            model("t", "table", "SELECT x FROM orders"),
            model("u", "table", "SELECT x FROM orders"),
            model("w", "table", "SELECT x FROM orders"),
            model("v", "view", "SELECT x FROM t"),
            model("m", "table", "SELECT v.x FROM v JOIN w ON v.x = w.x"),
        ];
        let held: Vec<&str> = tables_read_by(&ordered, "m").into_iter().collect();
        assert_eq!(held, ["t", "w"]);
        assert!(tables_read_by(&ordered, "v").contains("t"));
        assert!(tables_read_by(&ordered, "t").is_empty());
    }

    /// The churn model's features as of its cut-off: both running totals
    /// (customer_order_totals, read for the order columns and, twice, for
    /// the main currency) are held; orders_daily, which it no longer reads,
    /// would be computed in full (its distinct customers per day) if it were.
    #[test]
    fn customer_features_holds_the_running_totals_only() {
        let all = models::load(None).expect("the shipped models");
        let held: Vec<&str> = tables_read_by(&all, "customer_features")
            .into_iter()
            .collect();
        assert_eq!(held, ["customer_order_totals", "customer_web_totals"]);
    }
}
