//! Incremental daily models: a model whose rows for a day come only from the
//! source rows of that day starts from the night before and computes again
//! only the days the new exports touch (dbt's incremental models, with the
//! carried rows proven current instead of assumed).
//!
//! A model declares it in its header,
//! `-- incremental: <date column> by <view>.<timestamp column>`: it reads only
//! `<view>`, and its `<date column>` is the UTC day of the view's
//! `<timestamp column>`. On the night of D it starts from the latest earlier
//! night N whose partition is recorded as computed from what the lake holds
//! up to N now (see [`super::provenance`]: a re-ingested, erased or expired
//! partition, a new release or changed SQL all fail that), and computes again:
//! - every day after N up to D (rows exported earlier but dated later enter
//!   the model on their day);
//! - the days of the rows in the lake partitions after N up to D;
//! - the days of the older copies those partitions replaced (a refund
//!   re-exported moves a day's sums).
//!
//! Every other day's rows are the night N's rows. The declaration is a
//! promise the SQL must keep: the view's row of a record may change with the
//! run date only by entering on its day. `service_levels` cannot make it,
//! since `stg_tickets` hides a reply or a resolution until its day, so an
//! old ticket's day changes on the night it is answered.
//!
//! `orders_daily` grouped all 27.7M orders every night at a million
//! customers (5.5–6.3 s in a slow hour); the days of one new export are a
//! few row groups, found by their statistics (0.16 s). The result is the
//! same bytes as the full computation (tests compare both over generated
//! and hand-made nights), and `transform.incremental = false` computes
//! every day.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Date32Type, SchemaRef, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TransformedResult};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, col, lit};
use datafusion::prelude::{DataFrame, SessionContext};
use tracing::info;

use super::lineage::ModelLineage;
use super::models::{Materialized, Model};
use super::provenance;
use crate::context::JobContext;
use crate::storage::partition_file;
use crate::utc_dates::epoch_day;
use crate::{Error, Result};

/// A model's `-- incremental:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incremental {
    /// The model's DATE column, its first ORDER BY key.
    pub date_column: String,
    /// The one table the model reads, a staging view.
    pub view: String,
    /// The view's column whose UTC day is `date_column`.
    pub timestamp: String,
}

impl Incremental {
    /// Parses `<date column> by <view>.<timestamp column>` and checks it
    /// against the rest of the header.
    pub fn parse(
        value: &str,
        materialized: Materialized,
        columns: &[(String, String)],
        references: &BTreeSet<String>,
    ) -> std::result::Result<Self, String> {
        let shape = "write `<date column> by <view>.<timestamp column>`";
        let (date_column, source) = value.split_once(" by ").ok_or(shape)?;
        let date_column = date_column.trim().to_string();
        let (view, timestamp) = carried_header(
            std::slice::from_ref(&date_column),
            source,
            shape,
            materialized,
            columns,
            references,
        )?;
        Ok(Incremental {
            date_column,
            view,
            timestamp,
        })
    }
}

/// Checks the part of a carried model's header its kinds share, `<named
/// columns> by <view>.<timestamp>`, and returns the view and the timestamp
/// column: every name one word, the model a table reading only that view,
/// and each named column documented by a `-- column` line.
pub(super) fn carried_header(
    named: &[String],
    source: &str,
    shape: &str,
    materialized: Materialized,
    columns: &[(String, String)],
    references: &BTreeSet<String>,
) -> std::result::Result<(String, String), String> {
    let (view, timestamp) = source.trim().split_once('.').ok_or(shape)?;
    let (view, timestamp) = (view.trim(), timestamp.trim());
    if named
        .iter()
        .map(String::as_str)
        .chain([view, timestamp])
        .any(|w| w.is_empty() || w.contains(char::is_whitespace))
    {
        return Err(shape.into());
    }
    if materialized != Materialized::Table {
        return Err("only a `materialized: table` model is carried from night to night".into());
    }
    if references.len() != 1 || !references.contains(view) {
        return Err(format!(
            "an incremental model reads only the view it names, `{view}`; this one reads [{}]",
            references.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if let Some(c) = named.iter().find(|c| !columns.iter().any(|(n, _)| n == *c)) {
        return Err(format!("`{c}` has no `-- column {c}:` line"));
    }
    Ok((view.to_string(), timestamp.to_string()))
}

/// What one incremental model was built from.
#[derive(Debug, Clone)]
pub struct Built {
    /// The model's rows, in one batch (so that the full and the incremental
    /// computation write the same bytes).
    pub rows: RecordBatch,
    /// The night whose rows were carried, and how many days were computed
    /// again; `None` when every day was computed.
    pub carried: Option<(NaiveDate, usize)>,
}

/// What the incremental models of one transform share.
pub struct Night<'a> {
    pub ctx: &'a JobContext,
    /// The transform's session: the lake, `superseded` and the models so far.
    pub session: &'a SessionContext,
    /// Every model (their SQL is part of each night's digest).
    pub models: &'a [Model],
    /// The run date.
    pub date: NaiveDate,
    /// Digests of the lake as of earlier nights, computed once per transform.
    pub digests: BTreeMap<NaiveDate, String>,
}

impl Night<'_> {
    /// The digest of the lake as of `earlier` now (see [`provenance`]),
    /// computed once per transform.
    pub async fn digest_of(&mut self, earlier: NaiveDate) -> Result<String> {
        if let Some(d) = self.digests.get(&earlier) {
            return Ok(d.clone());
        }
        let d = provenance::digest(self.ctx, self.models, earlier).await?;
        self.digests.insert(earlier, d.clone());
        Ok(d)
    }
}

/// Builds `model` as of the night's date: from an earlier night when one is
/// current (and `transform.incremental` allows it), else every day from
/// `full`, the model's query as planned in the session. `known` holds the
/// lineage of the models built so far (the view's among them).
pub async fn build(
    night: &mut Night<'_>,
    known: &BTreeMap<String, ModelLineage>,
    model: &Model,
    spec: &Incremental,
    full: DataFrame,
) -> Result<Built> {
    let (ctx, session) = (night.ctx, night.session);
    let schema: SchemaRef = Arc::new(full.schema().as_arrow().clone());
    let nulls_first = check_order(model, spec, full.logical_plan())?;
    let start = if ctx.cfg.transform_incremental {
        start(night, known, model, spec, &schema).await?
    } else {
        None
    };
    let Some(start) = start else {
        let batches = full.collect().await?;
        return Ok(Built {
            rows: concat_batches(&schema, &batches)?,
            carried: None,
        });
    };
    let fresh = compute_days(session, model, spec, &start.days).await?;
    let rows = merge(
        &schema,
        (&spec.date_column, nulls_first),
        &start.rows,
        &fresh,
        &start.days,
    )?;
    info!(
        model = %model.name,
        from = %start.night,
        days = start.days.len(),
        "incremental model: carried the earlier night's other days"
    );
    Ok(Built {
        rows,
        carried: Some((start.night, start.days.len())),
    })
}

/// The model's rows are merged by its date column alone, which gives the
/// full computation's order only if that order starts with the date.
/// Returns where that ORDER BY puts a NULL date.
fn check_order(model: &Model, spec: &Incremental, plan: &LogicalPlan) -> Result<bool> {
    let mut node = plan;
    loop {
        match node {
            LogicalPlan::Projection(p) => node = p.input.as_ref(),
            LogicalPlan::Sort(s) => {
                if let Some(Expr::Column(c)) = s.expr.first().map(|e| &e.expr)
                    && c.name == spec.date_column
                    && s.expr[0].asc
                {
                    return Ok(s.expr[0].nulls_first);
                }
                break;
            }
            _ => break,
        }
    }
    Err(Error::Model {
        model: model.name.clone(),
        reason: format!(
            "an incremental model must end with `ORDER BY {}, …` (ascending): the carried and the new days are merged by it",
            spec.date_column
        ),
    })
}

/// An earlier night's rows and the days to compute again.
struct Start {
    night: NaiveDate,
    rows: Vec<RecordBatch>,
    days: BTreeSet<i32>,
}

async fn start(
    night: &mut Night<'_>,
    known: &BTreeMap<String, ModelLineage>,
    model: &Model,
    spec: &Incremental,
    schema: &SchemaRef,
) -> Result<Option<Start>> {
    let Some((earlier, rows)) = carried_night(night, model, schema).await? else {
        return Ok(None);
    };
    let (table, column) = lake_source(model, &spec.view, &spec.timestamp, known)?;
    let Some(days) = days_to_compute(
        night.ctx,
        night.session,
        &table,
        &column,
        earlier,
        night.date,
    )
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(Start {
        night: earlier,
        rows,
        days,
    }))
}

/// The latest earlier night whose partition of `model` is recorded as
/// computed from what the lake holds up to that night now (the same
/// release and SQL too), and that partition's rows; `None` when there is no
/// such night or its columns are not `schema`'s.
pub(super) async fn carried_night(
    night: &mut Night<'_>,
    model: &Model,
    schema: &SchemaRef,
) -> Result<Option<(NaiveDate, Vec<RecordBatch>)>> {
    let (ctx, date) = (night.ctx, night.date);
    let storage = &ctx.storage;
    let Some(earlier) = provenance::latest_recorded_before(storage, &model.name, date).await?
    else {
        return Ok(None);
    };
    let Some(recorded) = provenance::recorded(storage, &model.name, earlier).await? else {
        return Ok(None);
    };
    let current = night.digest_of(earlier).await?;
    let path = partition_file("marts", &model.name, earlier);
    if recorded != current || storage.head_opt(&path).await?.is_none() {
        return Ok(None);
    }
    let rows = crate::parquet_io::read_batches(storage, &path).await?;
    let same_columns = rows.iter().all(|b| {
        let s = b.schema();
        s.fields().len() == schema.fields().len()
            && s.fields()
                .iter()
                .zip(schema.fields())
                .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type())
    });
    Ok(same_columns.then_some((earlier, rows)))
}

/// The lake table and column the view's column `timestamp` is read from.
pub(super) fn lake_source(
    model: &Model,
    view: &str,
    timestamp: &str,
    known: &BTreeMap<String, ModelLineage>,
) -> Result<(String, String)> {
    let sources = known.get(view).and_then(|l| {
        l.outputs
            .iter()
            .find(|(c, _)| c == timestamp)
            .map(|(_, s)| s)
    });
    match sources.map(|s| s.iter().collect::<Vec<_>>()).as_deref() {
        Some([(table, column)]) => Ok((table.clone(), column.clone())),
        other => Err(Error::Model {
            model: model.name.clone(),
            reason: format!(
                "`-- incremental:` names {view}.{timestamp}, which must be one lake column passed through; it is read from {}",
                match other {
                    None => "no column of the view".to_string(),
                    Some(s) => listed(s),
                }
            ),
        }),
    }
}

/// Lake columns as `[table.column, …]`, for messages.
pub(super) fn listed(sources: &[&super::lineage::Source]) -> String {
    let names: Vec<String> = sources.iter().map(|(t, c)| format!("{t}.{c}")).collect();
    format!("[{}]", names.join(", "))
}

/// The days (since 1970-01-01) whose rows may differ from the night's, or
/// `None` when a new row has no timestamp (its group is not a day).
async fn days_to_compute(
    ctx: &JobContext,
    session: &SessionContext,
    table: &str,
    column: &str,
    night: NaiveDate,
    date: NaiveDate,
) -> Result<Option<BTreeSet<i32>>> {
    let mut days: BTreeSet<i32> = (epoch_day(night) + 1..=epoch_day(date)).collect();
    let exported = format!(
        "SELECT DISTINCT CAST({column} AS DATE) FROM {table} WHERE dt > DATE '{night}' AND dt <= DATE '{date}'"
    );
    if !add_days(session, &exported, &mut days).await? {
        return Ok(None);
    }
    if let Some(key) = super::superseded::key_column(&ctx.contracts, table)? {
        let replaced_in = format!(
            "SELECT DISTINCT source_dt FROM superseded WHERE table_name = '{table}' AND superseded_on > DATE '{night}'"
        );
        let mut partitions = BTreeSet::new();
        add_days(session, &replaced_in, &mut partitions).await?;
        if !partitions.is_empty() {
            // literal partitions, so that only they are listed and read
            let list: Vec<String> = partitions
                .iter()
                .map(|d| format!("DATE '{}'", crate::utc_dates::from_epoch_day(*d)))
                .collect();
            let replaced = format!(
                "SELECT DISTINCT CAST(o.{column} AS DATE) FROM {table} AS o \
                 JOIN superseded AS s ON s.record_key = o.{key} AND s.source_dt = o.dt \
                 WHERE s.table_name = '{table}' AND s.superseded_on > DATE '{night}' AND o.dt IN ({})",
                list.join(", ")
            );
            if !add_days(session, &replaced, &mut days).await? {
                return Ok(None);
            }
        }
    }
    Ok(Some(days))
}

/// Adds the days a one-DATE-column query returns; false if one is NULL.
async fn add_days(session: &SessionContext, sql: &str, days: &mut BTreeSet<i32>) -> Result<bool> {
    for batch in session.sql(sql).await?.collect().await? {
        let values = batch
            .column(0)
            .as_primitive_opt::<Date32Type>()
            .ok_or_else(|| {
                Error::Config(format!("incremental model: `{sql}` did not return dates"))
            })?;
        if values.null_count() > 0 {
            return Ok(false);
        }
        days.extend(values.values().iter().copied());
    }
    Ok(true)
}

/// The model's rows for `days` only: its query over the view cut to those
/// days' timestamps, a filter the lake's row-group statistics answer.
async fn compute_days(
    session: &SessionContext,
    model: &Model,
    spec: &Incremental,
    days: &BTreeSet<i32>,
) -> Result<Vec<RecordBatch>> {
    let ts_type = column_type(session, &spec.view, &spec.timestamp).await?;
    let within = within_days(&spec.timestamp, &ts_type, days)?;
    run_on_cut(session, &model.sql, &spec.view, within, None).await
}

/// The type of `view`'s column `column`.
pub(super) async fn column_type(
    session: &SessionContext,
    view: &str,
    column: &str,
) -> Result<DataType> {
    Ok(session
        .table(view)
        .await?
        .schema()
        .field_with_unqualified_name(column)?
        .data_type()
        .clone())
}

/// `column` (of type `data_type`) falls on one of `days`; false for none.
pub(super) fn within_days(
    column: &str,
    data_type: &DataType,
    days: &BTreeSet<i32>,
) -> Result<Expr> {
    let mut within: Option<Expr> = None;
    for (first, last) in runs(days) {
        let cond = col(column)
            .gt_eq(lit(day_start(data_type, first)?))
            .and(col(column).lt(lit(day_start(data_type, last + 1)?)));
        within = Some(match within {
            None => cond,
            Some(w) => w.or(cond),
        });
    }
    Ok(within.unwrap_or(lit(false)))
}

/// Runs `sql` with `view` cut to the rows where `filter` holds, and with
/// `run_date()` at `as_of` when given (in `sql` itself: the session's views
/// keep the run date they were planned with).
///
/// Planned in a copy of the session's state, with the filter put above the
/// view where the plan reads it: the session's catalog and functions stay as
/// they are for the models building and the data tests running beside this
/// one.
pub(super) async fn run_on_cut(
    session: &SessionContext,
    sql: &str,
    view: &str,
    filter: Expr,
    as_of: Option<NaiveDate>,
) -> Result<Vec<RecordBatch>> {
    let mut state = session.state();
    if let Some(date) = as_of {
        state.register_udf(Arc::new(super::run_date_udf(date)))?;
    }
    let mut cuts = 0;
    let plan = state
        .create_logical_plan(sql)
        .await?
        .transform_up_with_subqueries(|node| {
            // the planner puts a view's own plan in place under its name; a
            // table in memory stays a scan
            let reads_view = match &node {
                LogicalPlan::SubqueryAlias(a) => a.alias.table() == view,
                LogicalPlan::TableScan(s) => s.table_name.table() == view,
                _ => false,
            };
            if !reads_view {
                return Ok(Transformed::no(node));
            }
            cuts += 1;
            let cut = LogicalPlanBuilder::from(node)
                .filter(filter.clone())?
                .build()?;
            Ok(Transformed::yes(cut))
        })
        .data()?;
    if cuts == 0 {
        return Err(Error::Internal(format!(
            "the plan of `{sql}` does not read `{view}`, which it was to read cut"
        )));
    }
    Ok(DataFrame::new(state, plan).collect().await?)
}

/// Consecutive days as (first, last) runs.
fn runs(days: &BTreeSet<i32>) -> Vec<(i32, i32)> {
    let mut out: Vec<(i32, i32)> = Vec::new();
    for &d in days {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == d => *last = d,
            _ => out.push((d, d)),
        }
    }
    out
}

/// Midnight UTC of `day` as a value of the timestamp's type.
pub(super) fn day_start(data_type: &DataType, day: i32) -> Result<ScalarValue> {
    let s = i64::from(day) * 86_400;
    Ok(match data_type {
        DataType::Timestamp(unit, tz) => match unit {
            TimeUnit::Second => ScalarValue::TimestampSecond(Some(s), tz.clone()),
            TimeUnit::Millisecond => ScalarValue::TimestampMillisecond(Some(s * 1_000), tz.clone()),
            TimeUnit::Microsecond => {
                ScalarValue::TimestampMicrosecond(Some(s * 1_000_000), tz.clone())
            }
            TimeUnit::Nanosecond => {
                ScalarValue::TimestampNanosecond(Some(s * 1_000_000_000), tz.clone())
            }
        },
        DataType::Date32 => ScalarValue::Date32(Some(day)),
        other => {
            return Err(Error::Config(format!(
                "incremental model: the timestamp column is {other}, not a timestamp or date"
            )));
        }
    })
}

/// The carried rows of every day not computed again, then the new rows,
/// stably sorted by the date column: each day's rows come whole from one
/// side, in the model's own order. `date` is the column and whether its
/// NULLs sort first.
fn merge(
    schema: &SchemaRef,
    (date_column, nulls_first): (&str, bool),
    carried: &[RecordBatch],
    fresh: &[RecordBatch],
    days: &BTreeSet<i32>,
) -> Result<RecordBatch> {
    let date_index = schema.index_of(date_column)?;
    let mut parts = Vec::new();
    for b in carried {
        let b = RecordBatch::try_new(schema.clone(), b.columns().to_vec())?;
        let dates = date_values(&b, date_index, date_column)?;
        let keep: BooleanArray = dates
            .iter()
            .map(|d| Some(d.is_none_or(|d| !days.contains(&d))))
            .collect();
        parts.push(filter_record_batch(&b, &keep)?);
    }
    for b in fresh {
        parts.push(RecordBatch::try_new(schema.clone(), b.columns().to_vec())?);
    }
    let all = concat_batches(schema, &parts)?;
    let dates = date_values(&all, date_index, date_column)?;
    let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
    // a NULL date where the model's ORDER BY puts it
    order.sort_by_key(|&i| {
        let i = i as usize;
        let value = dates.is_valid(i).then(|| dates.value(i));
        (value.is_none() != nulls_first, value)
    });
    Ok(take_record_batch(&all, &UInt32Array::from(order))?)
}

fn date_values<'a>(
    batch: &'a RecordBatch,
    index: usize,
    name: &str,
) -> Result<&'a datafusion::arrow::array::PrimitiveArray<Date32Type>> {
    batch
        .column(index)
        .as_primitive_opt::<Date32Type>()
        .ok_or_else(|| {
            Error::Config(format!(
                "incremental model: `{name}` must be a DATE column, not {}",
                batch.column(index).data_type()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Date32Array, Int64Array};
    use datafusion::arrow::datatypes::{Field, Int64Type, Schema};

    use crate::transform::models::test_header::refs;

    #[test]
    fn the_header_line_names_a_documented_date_and_the_one_view_read() {
        let cols = vec![("d".to_string(), "day".to_string())];
        let ok = Incremental::parse(
            "d by stg_x.at",
            Materialized::Table,
            &cols,
            &refs(&["stg_x"]),
        );
        assert_eq!(
            ok,
            Ok(Incremental {
                date_column: "d".into(),
                view: "stg_x".into(),
                timestamp: "at".into()
            })
        );
        let bad = [
            ("d stg_x.at", Materialized::Table, vec!["stg_x"], "write `"),
            ("d by stg_x", Materialized::Table, vec!["stg_x"], "write `"),
            (
                "d by stg_x.at",
                Materialized::View,
                vec!["stg_x"],
                "materialized: table",
            ),
            (
                "e by stg_x.at",
                Materialized::Table,
                vec!["stg_x"],
                "no `-- column e:`",
            ),
            (
                "d by stg_x.at",
                Materialized::Table,
                vec!["stg_x", "stg_y"],
                "reads [stg_x, stg_y]",
            ),
            (
                "d by stg_y.at",
                Materialized::Table,
                vec!["stg_x"],
                "names, `stg_y`",
            ),
        ];
        for (value, m, r, expected) in bad {
            let err = Incremental::parse(value, m, &cols, &refs(&r)).unwrap_err();
            assert!(err.contains(expected), "{value}: {err}");
        }
    }

    /// A session with `t` (x = 1..=1000) in memory and `v`, a view of it.
    fn cut_session(run_date: NaiveDate) -> SessionContext {
        let session = SessionContext::new();
        session.register_udf(crate::transform::run_date_udf(run_date));
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let x = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from((1..=1000).collect::<Vec<i64>>()))],
        )
        .unwrap();
        let t = datafusion::datasource::MemTable::try_new(schema, vec![vec![x]]).unwrap();
        session.register_table("t", Arc::new(t)).unwrap();
        futures::executor::block_on(async {
            let v = session.sql("SELECT x FROM t").await.unwrap().into_view();
            session.register_table("v", v).unwrap();
        });
        session
    }

    /// The first column's first value.
    fn first<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
        rows: &[RecordBatch],
    ) -> T::Native {
        rows[0].column(0).as_primitive::<T>().value(0)
    }

    async fn query(session: &SessionContext, sql: &str) -> Vec<RecordBatch> {
        session.sql(sql).await.unwrap().collect().await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cut_reads_fewer_rows_and_leaves_the_session_as_it_was_for_the_queries_beside_it() {
        let night = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let session = cut_session(night);
        let under_10 = col("x").lt(lit(10i64));
        // a view (planned in place under its name), in a CTE and in a
        // subquery; a table in memory (a scan)
        for (sql, view) in [
            ("SELECT count(*) FROM v", "v"),
            ("WITH c AS (SELECT x FROM v) SELECT count(*) FROM c", "v"),
            ("SELECT count(*) FROM t WHERE x IN (SELECT x FROM v)", "v"),
            ("SELECT count(*) FROM t", "t"),
        ] {
            let rows = run_on_cut(&session, sql, view, under_10.clone(), None)
                .await
                .unwrap();
            assert_eq!(first::<Int64Type>(&rows), 9, "{sql}");
        }
        let err = run_on_cut(
            &session,
            "SELECT count(*) FROM t",
            "v",
            under_10.clone(),
            None,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("does not read `v`"), "{err}");
        // `run_date()` of the SQL as of an earlier night; the session's stays
        let earlier = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let sql = "SELECT run_date() FROM v LIMIT 1";
        let rows = run_on_cut(&session, sql, "v", under_10.clone(), Some(earlier))
            .await
            .unwrap();
        assert_eq!(first::<Date32Type>(&rows), epoch_day(earlier));
        let rows = query(&session, "SELECT run_date()").await;
        assert_eq!(first::<Date32Type>(&rows), epoch_day(night));
        // queries of the view beside the cuts see every row, and find it: the
        // cut once swapped the view in the session's catalog, so a data test
        // planned meanwhile read the cut rows, or found no view at all
        let beside = {
            let session = session.clone();
            tokio::spawn(async move {
                for _ in 0..200 {
                    let rows = query(&session, "SELECT count(*) FROM v").await;
                    assert_eq!(first::<Int64Type>(&rows), 1000);
                }
            })
        };
        for _ in 0..50 {
            run_on_cut(
                &session,
                "SELECT count(*) FROM v",
                "v",
                under_10.clone(),
                Some(earlier),
            )
            .await
            .unwrap();
        }
        beside.await.unwrap();
    }

    #[test]
    fn consecutive_days_make_one_range() {
        let days: BTreeSet<i32> = [3, 4, 5, 9, 11, 12].into();
        assert_eq!(runs(&days), vec![(3, 5), (9, 9), (11, 12)]);
        assert!(runs(&BTreeSet::new()).is_empty());
    }

    #[test]
    fn a_day_starts_at_midnight_utc_in_the_columns_unit() {
        let micros = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(
            day_start(&micros, 1).unwrap(),
            ScalarValue::TimestampMicrosecond(Some(86_400_000_000), Some("UTC".into()))
        );
        assert_eq!(
            day_start(&DataType::Date32, 7).unwrap(),
            ScalarValue::Date32(Some(7))
        );
        assert!(day_start(&DataType::Utf8, 1).is_err());
    }

    #[test]
    fn the_days_computed_again_replace_theirs_and_the_rest_keep_their_order() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Date32, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let batch = |d: Vec<i32>, n: Vec<i64>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Date32Array::from(d)),
                    Arc::new(Int64Array::from(n)),
                ],
            )
            .unwrap()
        };
        // the night's rows: day 1 (two rows, in the model's order), day 2, day 3
        let carried = vec![
            batch(vec![1, 1, 2], vec![10, 11, 20]),
            batch(vec![3], vec![30]),
        ];
        // days 2 and 4 computed again; day 2 now has two rows
        let fresh = vec![batch(vec![2, 2, 4], vec![21, 22, 40])];
        let merged = merge(&schema, ("d", false), &carried, &fresh, &[2, 4].into()).unwrap();
        let n: Vec<i64> = merged
            .column(1)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(n, vec![10, 11, 21, 22, 30, 40]);
        // a NULL day (rows without a timestamp) stays where ORDER BY puts it
        let nullable: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Date32, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let with_null = RecordBatch::try_new(
            nullable.clone(),
            vec![
                Arc::new(Date32Array::from(vec![None, Some(1)])),
                Arc::new(Int64Array::from(vec![0, 10])),
            ],
        )
        .unwrap();
        for (nulls_first, expected) in [(true, vec![0, 10]), (false, vec![10, 0])] {
            let merged = merge(
                &nullable,
                ("d", nulls_first),
                std::slice::from_ref(&with_null),
                &[],
                &[5].into(),
            )
            .unwrap();
            let n = merged.column(1).as_primitive::<Int64Type>();
            assert_eq!(n.values().to_vec(), expected, "nulls first: {nulls_first}");
        }
        let other = Field::new("d", DataType::Utf8, false);
        let wrong: SchemaRef = Arc::new(Schema::new(vec![other]));
        let strings = RecordBatch::try_new(
            wrong.clone(),
            vec![Arc::new(datafusion::arrow::array::StringArray::from(vec![
                "x",
            ]))],
        )
        .unwrap();
        let err = merge(&wrong, ("d", false), &[strings], &[], &BTreeSet::new()).unwrap_err();
        assert!(err.to_string().contains("must be a DATE column"), "{err}");
    }
}
