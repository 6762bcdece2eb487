//! Running totals per group: a model that counts, sums and takes the
//! minimum or maximum of a view's rows per customer starts from the night
//! before and adds what the new exports bring, instead of grouping every row
//! of the history again.
//!
//! A model declares it in its header,
//! `-- incremental: per <key>, … by <view>.<timestamp>[; windows <n>, … days]`:
//! it is one `GROUP BY` of its keys over `<view>` alone, ending with
//! `ORDER BY` those keys, and every other column is a `count` or an integer
//! `sum` (added up), a `min` or a `max`. Only the windows may make a row's
//! part depend on the run date: a row counts differently on two nights only
//! when its day (`<timestamp>`'s UTC day) is n days before one of them and
//! not the other. On the night of D, from the latest earlier night N whose
//! partition the lake still vouches for (as for the daily models, see
//! [`super::incremental`]), the model's rows are N's rows plus, per group:
//! - the model over the rows exported after N;
//! - the model over the rows exported by N but dated after it (they enter
//!   the view on their day);
//! - for the rows whose day crosses a window between N and D, the model as
//!   of D minus the model as of N.
//!
//! A night after which a record of the view's table was exported again (a
//! replaced copy leaves the view, and a minimum cannot be taken back), or
//! whose crossing rows would leave a sum with no rows where the full
//! computation gives NULL, computes every row. The result is the bytes the
//! full computation writes (tested over generated and hand-made nights).
//!
//! `customer_order_totals` grouped all 27.7M orders by customer every night
//! at a million customers; a night now reads its own export and the three
//! days that leave the 30-, 90- and 365-day windows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{Expr, LogicalPlan, col, lit};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use tracing::info;

use super::incremental::{
    Built, Night, carried_night, column_type, day_start, lake_source, run_on_cut, within_days,
};
use super::lineage::ModelLineage;
use super::models::{Materialized, Model};
use crate::utc_dates::epoch_day;
use crate::{Error, Result};

/// A model's `-- incremental: per …` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    /// The GROUP BY columns, as the model outputs them.
    pub keys: Vec<String>,
    /// The one table the model reads, a staging view.
    pub view: String,
    /// The view's column whose UTC day the windows count from.
    pub timestamp: String,
    /// Days before the run date at which a row's part changes.
    pub windows: Vec<u32>,
}

impl Totals {
    /// Parses `per <key>, … by <view>.<timestamp>[; windows <n>, … days]`
    /// and checks it against the rest of the header.
    pub fn parse(
        value: &str,
        materialized: Materialized,
        columns: &[(String, String)],
        references: &BTreeSet<String>,
    ) -> std::result::Result<Self, String> {
        let shape =
            "write `per <key column>, … by <view>.<timestamp column>[; windows <days>, … days]`";
        let rest = value.strip_prefix("per ").ok_or(shape)?;
        let (main, windows) = match rest.split_once(';') {
            Some((m, w)) => (m, Some(w.trim())),
            None => (rest, None),
        };
        let (keys, source) = main.split_once(" by ").ok_or(shape)?;
        let keys: Vec<String> = keys.split(',').map(|k| k.trim().to_string()).collect();
        let (view, timestamp) = super::incremental::carried_header(
            &keys,
            source,
            shape,
            materialized,
            columns,
            references,
        )?;
        let windows = match windows {
            None => Vec::new(),
            Some(w) => w
                .strip_prefix("windows ")
                .and_then(|w| w.strip_suffix(" days"))
                .ok_or(shape)?
                .split(',')
                .map(|n| {
                    n.trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("`{}` is not a number of days", n.trim()))
                })
                .collect::<std::result::Result<Vec<_>, _>>()?,
        };
        Ok(Totals {
            keys,
            view,
            timestamp,
            windows,
        })
    }
}

/// How a column of two nights' rows of one group combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fold {
    Key,
    Add,
    Min,
    Max,
}

/// The model's columns with their folds, and its ORDER BY as (column,
/// ascending, nulls first).
#[derive(Debug)]
struct Shape {
    folds: Vec<(String, Fold)>,
    order: Vec<(String, bool, bool)>,
}

/// Reads the folds off the model's plan: ORDER BY over a projection of a
/// GROUP BY's keys and aggregates.
fn shape(model: &Model, spec: &Totals, plan: &LogicalPlan) -> Result<Shape> {
    let wrong = |what: String| Error::Model {
        model: model.name.clone(),
        reason: format!(
            "a model carried as running totals (`-- incremental: per …`) must be one GROUP BY of its keys ending with ORDER BY them, every other column a count, an integer sum, a min or a max: {what}"
        ),
    };
    let LogicalPlan::Sort(sort) = plan else {
        return Err(wrong("it does not end with ORDER BY".into()));
    };
    let LogicalPlan::Projection(projection) = sort.input.as_ref() else {
        return Err(wrong("its ORDER BY is not over its SELECT list".into()));
    };
    let LogicalPlan::Aggregate(aggregate) = projection.input.as_ref() else {
        return Err(wrong("its SELECT is not over a GROUP BY".into()));
    };
    let groups = aggregate.group_expr.len();
    let mut folds = Vec::new();
    for (expr, field) in projection.expr.iter().zip(projection.schema.fields()) {
        let name = field.name().clone();
        let Expr::Column(c) = expr.clone().unalias_nested().data else {
            return Err(wrong(format!(
                "`{name}` is computed from aggregates: {expr}"
            )));
        };
        let i = aggregate.schema.index_of_column(&c)?;
        let fold = if i < groups {
            Fold::Key
        } else {
            match aggregate.aggr_expr[i - groups]
                .clone()
                .unalias_nested()
                .data
            {
                Expr::AggregateFunction(f)
                    if !f.params.distinct && f.params.order_by.is_empty() =>
                {
                    match f.func.name() {
                        "count" | "sum" if field.data_type() == &DataType::Int64 => Fold::Add,
                        "min" => Fold::Min,
                        "max" => Fold::Max,
                        other => {
                            return Err(wrong(format!(
                                "`{name}` is {other}() of {}",
                                field.data_type()
                            )));
                        }
                    }
                }
                _ => return Err(wrong(format!("`{name}` is not a plain aggregate"))),
            }
        };
        folds.push((name, fold));
    }
    let keys: BTreeSet<&String> = folds
        .iter()
        .filter(|(_, f)| *f == Fold::Key)
        .map(|(c, _)| c)
        .collect();
    if keys != spec.keys.iter().collect() || keys.len() != groups {
        return Err(wrong(format!(
            "it groups by [{}], the header names [{}]",
            keys.iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            spec.keys.join(", ")
        )));
    }
    let mut order = Vec::new();
    for s in &sort.expr {
        match &s.expr {
            Expr::Column(c) if keys.contains(&c.name) => {
                order.push((c.name.clone(), s.asc, s.nulls_first));
            }
            other => return Err(wrong(format!("it orders by `{other}`, not a key"))),
        }
    }
    if order.len() != keys.len() {
        return Err(wrong("its ORDER BY leaves out a key".into()));
    }
    Ok(Shape { folds, order })
}

/// Builds `model` as of the night's date: from an earlier night's rows when
/// one is current (and `transform.incremental` allows it), else from `full`,
/// the model's query as planned in the session.
pub async fn build(
    night: &mut Night<'_>,
    known: &BTreeMap<String, ModelLineage>,
    model: &Model,
    spec: &Totals,
    full: DataFrame,
) -> Result<Built> {
    let schema: SchemaRef = Arc::new(full.schema().as_arrow().clone());
    let shape = shape(model, spec, full.logical_plan())?;
    let carried = if night.ctx.cfg.transform_incremental {
        carried_night(night, model, &schema).await?
    } else {
        None
    };
    if let Some((earlier, rows)) = carried
        && let Some((rows, days)) =
            update(night, known, model, spec, &shape, &schema, earlier, rows).await?
    {
        info!(
            model = %model.name,
            from = %earlier,
            days,
            "running totals: carried the earlier night's rows"
        );
        return Ok(Built {
            rows,
            carried: Some((earlier, days)),
        });
    }
    let batches = full.collect().await?;
    Ok(Built {
        rows: concat_batches(&schema, &batches)?,
        carried: None,
    })
}

/// The night's rows from `earlier`'s, and the days whose rows were read;
/// `None` when they must be computed in full.
#[allow(clippy::too_many_arguments)]
async fn update(
    night: &Night<'_>,
    known: &BTreeMap<String, ModelLineage>,
    model: &Model,
    spec: &Totals,
    shape: &Shape,
    schema: &SchemaRef,
    earlier: NaiveDate,
    carried: Vec<RecordBatch>,
) -> Result<Option<(RecordBatch, usize)>> {
    let (session, date) = (night.session, night.date);
    let (table, _) = lake_source(model, &spec.view, &spec.timestamp, known)?;
    let partition = partition_column(model, spec, &table, known)?;
    if replaced_since(session, &table, earlier).await? {
        info!(
            model = %model.name,
            table,
            "running totals: a record was exported again since the earlier night; computing every row"
        );
        return Ok(None);
    }
    let ts_type = column_type(session, &spec.view, &spec.timestamp).await?;
    let dt_type = column_type(session, &spec.view, &partition).await?;
    let (n, d) = (epoch_day(earlier), epoch_day(date));
    let night_partition = lit(day_start(&dt_type, n)?);
    let exported_by_then = col(partition.as_str()).lt_eq(night_partition.clone());
    let sql = model.sql.as_str();
    let exported = run_on_cut(
        session,
        sql,
        &spec.view,
        col(partition.as_str()).gt(night_partition),
        None,
    )
    .await?;
    let later_days: BTreeSet<i32> = (n + 1..=d).collect();
    let entering = run_on_cut(
        session,
        sql,
        &spec.view,
        exported_by_then
            .clone()
            .and(within_days(&spec.timestamp, &ts_type, &later_days)?),
        None,
    )
    .await?;
    let mut crossing = BTreeSet::new();
    for &w in &spec.windows {
        let w = w as i32;
        crossing.extend(n - w + 1..=d - w);
    }
    let (mut now, mut then) = (Vec::new(), Vec::new());
    if !crossing.is_empty() {
        let filter = exported_by_then.and(within_days(&spec.timestamp, &ts_type, &crossing)?);
        now = run_on_cut(session, sql, &spec.view, filter.clone(), None).await?;
        then = run_on_cut(session, sql, &spec.view, filter, Some(earlier)).await?;
    }
    let merger = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
    for (name, rows) in [
        ("carried", carried),
        ("exported", exported),
        ("entering", entering),
        ("crossing_now", now),
        ("crossing_then", then),
    ] {
        let rows = rows
            .iter()
            .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        merger.register_table(
            name,
            Arc::new(MemTable::try_new(schema.clone(), vec![rows])?),
        )?;
    }
    if let Some(column) = sum_emptied(&merger, shape).await? {
        info!(
            model = %model.name,
            column,
            "running totals: a window's rows would leave a sum over no rows; computing every row"
        );
        return Ok(None);
    }
    let merged = merger.sql(&merge_sql(shape)).await?.collect().await?;
    let merged = match merged.first() {
        Some(first) => concat_batches(&first.schema(), &merged)?,
        None => RecordBatch::new_empty(schema.clone()),
    };
    let rows = RecordBatch::try_new(schema.clone(), merged.columns().to_vec())?;
    Ok(Some((rows, later_days.len() + crossing.len())))
}

/// The view's column that passes through `table`'s partition date `dt`.
fn partition_column(
    model: &Model,
    spec: &Totals,
    table: &str,
    known: &BTreeMap<String, ModelLineage>,
) -> Result<String> {
    let dt = (table.to_string(), "dt".to_string());
    known
        .get(&spec.view)
        .and_then(|l| {
            l.outputs
                .iter()
                .find(|(_, s)| s.len() == 1 && s.contains(&dt))
        })
        .map(|(c, _)| c.clone())
        .ok_or_else(|| Error::Model {
            model: model.name.clone(),
            reason: format!(
                "running totals need `{}` to pass through {table}.dt, the partition its rows were exported in",
                spec.view
            ),
        })
}

/// Whether a record of `table` was exported again after `night` (its older
/// copy left the view: a sum could take it back, a minimum cannot).
async fn replaced_since(session: &SessionContext, table: &str, night: NaiveDate) -> Result<bool> {
    let sql = format!(
        "SELECT count(*) AS n FROM superseded WHERE table_name = '{}' AND superseded_on > DATE '{night}'",
        table.replace('\'', "''")
    );
    counts_any(session, &sql).await
}

/// Whether the count `sql` returns is above zero.
async fn counts_any(session: &SessionContext, sql: &str) -> Result<bool> {
    let batches = session.sql(sql).await?.collect().await?;
    Ok(batches.iter().any(|b| {
        b.column(0)
            .as_primitive_opt::<Int64Type>()
            .is_some_and(|n| n.values().iter().any(|&n| n > 0))
    }))
}

fn quoted(column: &str) -> String {
    format!("\"{}\"", column.replace('"', "\"\""))
}

/// A sum the crossing rows had a value for as of the earlier night and none
/// as of this one (`sum() FILTER` over a window it left): the carried sum
/// minus theirs would be 0 where the full computation gives NULL.
async fn sum_emptied(merger: &SessionContext, shape: &Shape) -> Result<Option<String>> {
    let on: Vec<String> = shape
        .folds
        .iter()
        .filter(|(_, f)| *f == Fold::Key)
        .map(|(c, _)| format!("(t.{0} IS NOT DISTINCT FROM w.{0})", quoted(c)))
        .collect();
    for (c, _) in shape.folds.iter().filter(|(_, f)| *f == Fold::Add) {
        let sql = format!(
            "SELECT count(*) AS n FROM crossing_then AS t JOIN crossing_now AS w ON {} WHERE t.{1} IS NOT NULL AND w.{1} IS NULL",
            on.join(" AND "),
            quoted(c)
        );
        if counts_any(merger, &sql).await? {
            return Ok(Some(c.clone()));
        }
    }
    Ok(None)
}

/// Per group: the carried rows, the new ones and the crossing rows as of
/// this night, minus the crossing rows as of the earlier night.
fn merge_sql(shape: &Shape) -> String {
    let mut select = Vec::new();
    let mut negated = Vec::new();
    let mut keys = Vec::new();
    for (c, fold) in &shape.folds {
        let q = quoted(c);
        select.push(match fold {
            Fold::Key => q.clone(),
            Fold::Add => format!("sum({q}) AS {q}"),
            Fold::Min => format!("min({q}) AS {q}"),
            Fold::Max => format!("max({q}) AS {q}"),
        });
        negated.push(match fold {
            Fold::Add => format!("-{q} AS {q}"),
            _ => q.clone(),
        });
        if *fold == Fold::Key {
            keys.push(q);
        }
    }
    let order: Vec<String> = shape
        .order
        .iter()
        .map(|(c, asc, nulls_first)| {
            format!(
                "{} {} NULLS {}",
                quoted(c),
                if *asc { "ASC" } else { "DESC" },
                if *nulls_first { "FIRST" } else { "LAST" }
            )
        })
        .collect();
    format!(
        "SELECT {} FROM (\
         SELECT * FROM carried UNION ALL SELECT * FROM exported UNION ALL \
         SELECT * FROM entering UNION ALL SELECT * FROM crossing_now UNION ALL \
         SELECT {} FROM crossing_then) AS parts GROUP BY {} ORDER BY {}",
        select.join(", "),
        negated.join(", "),
        keys.join(", "),
        order.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::transform::models::test_header::{columns as cols, refs};

    #[test]
    fn the_header_line_names_keys_view_timestamp_and_windows() {
        let spec = Totals::parse(
            "per customer_key, currency by stg_orders.ordered_at; windows 30, 90, 365 days",
            Materialized::Table,
            &cols(&["customer_key", "currency", "n"]),
            &refs(&["stg_orders"]),
        )
        .expect("parses");
        assert_eq!(
            spec,
            Totals {
                keys: vec!["customer_key".into(), "currency".into()],
                view: "stg_orders".into(),
                timestamp: "ordered_at".into(),
                windows: vec![30, 90, 365],
            }
        );
        let without = Totals::parse(
            "per k by v.t",
            Materialized::Table,
            &cols(&["k"]),
            &refs(&["v"]),
        )
        .expect("no windows");
        assert!(without.windows.is_empty());
        for (line, why) in [
            ("per k by v.t; windows 0 days", "is not a number"),
            ("per k by v.t; windows 30", "write `per"),
            ("per k by v", "write `per"),
            ("per missing by v.t", "no `-- column missing:`"),
            ("per k by other.t", "reads only the view"),
        ] {
            let err = Totals::parse(line, Materialized::Table, &cols(&["k"]), &refs(&["v"]))
                .expect_err(line);
            assert!(err.contains(why), "{line}: {err}");
        }
        let err = Totals::parse(
            "per k by v.t",
            Materialized::View,
            &cols(&["k"]),
            &refs(&["v"]),
        )
        .expect_err("a view");
        assert!(err.contains("materialized: table"), "{err}");
    }

    async fn plan_shape(sql: &str) -> Result<Shape> {
        let session = SessionContext::new();
        session
            .sql("CREATE TABLE v (k BIGINT, c VARCHAR, t TIMESTAMP, x DOUBLE) AS VALUES (1, 'a', TIMESTAMP '2025-01-01 00:00:00', 1.5)")
            .await?
            .collect()
            .await?;
        let model = Model {
            name: "m".into(),
            sql: sql.into(),
            materialized: Materialized::Table,
            purpose: String::new(),
            grain: String::new(),
            columns: Vec::new(),
            tests: Vec::new(),
            references: refs(&["v"]),
            incremental: None,
            totals: None,
            incremental_tests: None,
        };
        let spec = Totals {
            keys: vec!["k".into(), "c".into()],
            view: "v".into(),
            timestamp: "t".into(),
            windows: vec![],
        };
        let df = session.sql(sql).await?;
        shape(&model, &spec, df.logical_plan())
    }

    #[tokio::test]
    async fn counts_and_integer_sums_add_up_and_minimums_and_maximums_fold() {
        let shape = plan_shape(
            "SELECT k, c, count(*) FILTER (WHERE x > 1) AS n, sum(CAST(x AS BIGINT)) AS s, \
             min(t) AS first, max(t) AS last FROM v GROUP BY k, c ORDER BY c DESC, k",
        )
        .await
        .expect("shape");
        assert_eq!(
            shape.folds,
            vec![
                ("k".to_string(), Fold::Key),
                ("c".to_string(), Fold::Key),
                ("n".to_string(), Fold::Add),
                ("s".to_string(), Fold::Add),
                ("first".to_string(), Fold::Min),
                ("last".to_string(), Fold::Max),
            ]
        );
        assert_eq!(shape.order[0].0, "c");
        assert!(!shape.order[0].1, "descending");
        assert_eq!(shape.order[1].0, "k");
    }

    #[tokio::test]
    async fn what_cannot_be_carried_is_refused_with_the_reason() {
        for (sql, why) in [
            (
                "SELECT k, c, sum(x) AS s FROM v GROUP BY k, c ORDER BY k, c",
                "`s` is sum() of Float64",
            ),
            (
                "SELECT k, c, avg(x) AS a FROM v GROUP BY k, c ORDER BY k, c",
                "`a` is avg()",
            ),
            (
                "SELECT k, c, count(*) + 1 AS n FROM v GROUP BY k, c ORDER BY k, c",
                "`n` is computed from aggregates",
            ),
            (
                "SELECT k, c, count(DISTINCT x) AS n FROM v GROUP BY k, c ORDER BY k, c",
                "`n` is not a plain aggregate",
            ),
            (
                "SELECT k, c, count(*) AS n FROM v GROUP BY k, c",
                "does not end with ORDER BY",
            ),
            (
                "SELECT k, c, count(*) AS n FROM v GROUP BY k, c ORDER BY k",
                "leaves out a key",
            ),
            (
                "SELECT k, c, count(*) AS n FROM v GROUP BY k, c ORDER BY k, c, n",
                "orders by",
            ),
            (
                "SELECT k, max(c) AS c, count(*) AS n FROM v GROUP BY k ORDER BY k",
                "it groups by [k]",
            ),
        ] {
            let err = plan_shape(sql).await.expect_err(sql).to_string();
            assert!(err.contains(why), "{sql}: {err}");
        }
    }
}
