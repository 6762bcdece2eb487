//! Column-level lineage of SQL models, from DataFusion's logical plans.
//!
//! For every output column of a model: the lake columns its value is
//! computed from; and for the model as a whole: every lake column it reads
//! anywhere (filters, joins, grouping, ordering). Models that read other
//! models resolve through them down to the lake, so the privacy job can
//! tell which kept columns no model ever uses.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};

use crate::Result;

/// A lake column: (table, column).
pub type Source = (String, String);

/// Lineage of one model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelLineage {
    /// Output columns in order, each with the lake columns it derives from.
    pub outputs: Vec<(String, BTreeSet<Source>)>,
    /// Every lake column the model reads, for any purpose.
    pub used: BTreeSet<Source>,
    /// The lake columns that decide which rows there are or how they are
    /// ordered (filters, joins, grouping, ordering, de-duplication),
    /// whether or not they are also outputs.
    pub logic: BTreeSet<Source>,
    /// The output columns whose value calls `run_date()`, directly or
    /// through a model the model reads: a row's value there may differ
    /// from night to night with no new export.
    pub dated: BTreeSet<String>,
}

/// Stands for `run_date()` among a column's sources while the plan is
/// walked; taken out before the lineage is returned (it is no lake column).
fn run_date_source() -> Source {
    (String::new(), "run_date()".to_string())
}

/// Computes a model's lineage from its (unoptimized) logical plan. `known`
/// holds the lineage of models already run; `lake` the lake table names.
pub fn model_lineage(
    plan: &LogicalPlan,
    known: &BTreeMap<String, ModelLineage>,
    lake: &BTreeSet<String>,
) -> Result<ModelLineage> {
    let mut w = Walker {
        known,
        lake,
        used: BTreeSet::new(),
        logic: BTreeSet::new(),
    };
    let per_field = w.node(plan)?;
    let run_date = run_date_source();
    let mut dated = BTreeSet::new();
    let outputs: Vec<(String, BTreeSet<Source>)> = plan
        .schema()
        .fields()
        .iter()
        .zip(per_field)
        .map(|(f, mut s)| {
            if s.remove(&run_date) {
                dated.insert(f.name().clone());
            }
            (f.name().clone(), s)
        })
        .collect();
    let mut used = w.used;
    for (_, s) in &outputs {
        used.extend(s.iter().cloned());
    }
    used.remove(&run_date);
    let mut logic = w.logic;
    logic.remove(&run_date);
    Ok(ModelLineage {
        outputs,
        used,
        logic,
        dated,
    })
}

struct Walker<'a> {
    known: &'a BTreeMap<String, ModelLineage>,
    lake: &'a BTreeSet<String>,
    used: BTreeSet<Source>,
    logic: BTreeSet<Source>,
}

type Sets = Vec<BTreeSet<Source>>;

impl Walker<'_> {
    fn node(&mut self, plan: &LogicalPlan) -> Result<Sets> {
        let width = plan.schema().fields().len();
        if let LogicalPlan::TableScan(scan) = plan {
            let table = scan.table_name.table().to_lowercase();
            let names = scan
                .projected_schema
                .fields()
                .iter()
                .map(|f| f.name().clone());
            return Ok(if self.lake.contains(&table) {
                names
                    .map(|n| BTreeSet::from([(table.clone(), n)]))
                    .collect()
            } else if let Some(m) = self.known.get(&table) {
                names
                    .map(|n| {
                        let mut s: BTreeSet<Source> = m
                            .outputs
                            .iter()
                            .find(|(o, _)| *o == n)
                            .map(|(_, s)| s.clone())
                            .unwrap_or_default();
                        if m.dated.contains(&n) {
                            s.insert(run_date_source());
                        }
                        s
                    })
                    .collect()
            } else {
                vec![BTreeSet::new(); width] // constants such as run_date()
            });
        }
        let inputs = plan.inputs();
        let mut lin = Vec::with_capacity(inputs.len());
        for i in &inputs {
            lin.push(self.node(i)?);
        }
        // Projections and window or aggregate functions define values (their
        // sources are outputs, or logic where a filter later reads them);
        // every other expression decides which rows there are.
        let defines_values = match plan {
            LogicalPlan::Projection(_) | LogicalPlan::Window(_) => plan.expressions().len(),
            LogicalPlan::Aggregate(a) => a.aggr_expr.len(),
            _ => 0,
        };
        let exprs = plan.expressions();
        let shaping = match plan {
            LogicalPlan::Aggregate(a) => a.group_expr.len(),
            _ => exprs.len() - defines_values,
        };
        for (i, e) in exprs.iter().enumerate() {
            let s = self.expr(e, &inputs, &lin)?;
            if i < shaping {
                self.logic.extend(s.iter().cloned());
            }
            self.used.extend(s);
        }
        let out: Sets = match plan {
            LogicalPlan::Projection(p) => p
                .expr
                .iter()
                .map(|e| self.expr(e, &inputs, &lin))
                .collect::<Result<_>>()?,
            LogicalPlan::Aggregate(a) => a
                .group_expr
                .iter()
                .chain(&a.aggr_expr)
                .map(|e| self.expr(e, &inputs, &lin))
                .collect::<Result<_>>()?,
            LogicalPlan::Window(w) => {
                let mut v = lin[0].clone();
                for e in &w.window_expr {
                    v.push(self.expr(e, &inputs, &lin)?);
                }
                v
            }
            LogicalPlan::Join(_) if lin.len() == 2 => {
                let (l, r) = (&lin[0], &lin[1]);
                if width == l.len() + r.len() {
                    l.iter().chain(r.iter()).cloned().collect()
                } else if width == l.len() {
                    l.clone()
                } else {
                    r.clone()
                }
            }
            LogicalPlan::Union(_) => (0..width)
                .map(|i| {
                    lin.iter()
                        .filter_map(|l| l.get(i))
                        .flat_map(|s| s.iter().cloned())
                        .collect()
                })
                .collect(),
            _ if lin.len() == 1 && lin[0].len() == width => lin[0].clone(),
            _ => Vec::new(),
        };
        if out.len() == width {
            return Ok(out);
        }
        // A node this walker does not know: every output may depend on every
        // input (over-approximation keeps "unused column" checks honest).
        let all: BTreeSet<Source> = lin
            .iter()
            .flatten()
            .flat_map(|s| s.iter().cloned())
            .collect();
        Ok(vec![all; width])
    }

    fn expr(
        &mut self,
        e: &Expr,
        inputs: &[&LogicalPlan],
        lin: &[Sets],
    ) -> Result<BTreeSet<Source>> {
        let mut out = BTreeSet::new();
        for col in e.column_refs() {
            for (i, input) in inputs.iter().enumerate() {
                if let Ok(idx) = input.schema().index_of_column(col) {
                    if let Some(s) = lin[i].get(idx) {
                        out.extend(s.iter().cloned());
                    }
                    break;
                }
            }
        }
        let mut subqueries = Vec::new();
        e.apply(|x| {
            match x {
                Expr::ScalarFunction(f) if f.name() == "run_date" => {
                    out.insert(run_date_source());
                }
                Expr::ScalarSubquery(s) => subqueries.push(s.subquery.clone()),
                Expr::InSubquery(s) => subqueries.push(s.subquery.subquery.clone()),
                Expr::Exists(s) => subqueries.push(s.subquery.subquery.clone()),
                _ => {}
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        for plan in subqueries {
            for s in self.node(&plan)? {
                out.extend(s);
            }
            // A correlated subquery (NOT EXISTS … WHERE s.key = o.key) reads
            // the outer query's columns: they are used even though no output
            // derives from them.
            for col in outer_references(&plan)? {
                for (i, input) in inputs.iter().enumerate() {
                    if let Ok(idx) = input.schema().index_of_column(&col) {
                        if let Some(s) = lin[i].get(idx) {
                            out.extend(s.iter().cloned());
                        }
                        break;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Columns of enclosing queries that a subquery plan refers to.
fn outer_references(plan: &LogicalPlan) -> Result<Vec<datafusion::common::Column>> {
    let mut cols = Vec::new();
    plan.apply(|p| {
        for e in p.expressions() {
            e.apply(|x| {
                if let Expr::OuterReferenceColumn(_, c) = x {
                    cols.push(c.clone());
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(cols)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn lineage_of(sql: &str) -> ModelLineage {
        let ctx = SessionContext::new();
        let orders = Schema::new(vec![
            Field::new("order_id", DataType::Utf8, false),
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("total_amount", DataType::Float64, true),
            Field::new("discount_amount", DataType::Float64, true),
            Field::new("channel", DataType::Utf8, true),
            Field::new("refunded", DataType::Boolean, true),
        ]);
        let tickets = Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("handled_by", DataType::Utf8, true),
        ]);
        for (name, schema) in [("orders", orders), ("tickets", tickets)] {
            let t = MemTable::try_new(Arc::new(schema), vec![vec![]]).expect("table");
            ctx.register_table(name, Arc::new(t)).expect("register");
        }
        let plan = ctx.sql(sql).await.expect("plans").logical_plan().clone();
        let lake = ["orders".to_string(), "tickets".to_string()].into();
        model_lineage(&plan, &BTreeMap::new(), &lake).expect("lineage")
    }

    fn src(t: &str, c: &str) -> Source {
        (t.to_string(), c.to_string())
    }

    #[tokio::test]
    async fn outputs_trace_to_lake_columns_through_aggregates_joins_and_ctes() {
        let l = lineage_of(
            "WITH o AS (SELECT customer_id, total_amount - discount_amount AS net FROM orders WHERE NOT refunded) \
             SELECT o.customer_id, SUM(o.net) AS spend, COUNT(t.handled_by) AS tickets \
             FROM o LEFT JOIN tickets t ON t.customer_id = o.customer_id GROUP BY o.customer_id ORDER BY o.customer_id",
        )
        .await;
        let by_name: BTreeMap<_, _> = l.outputs.iter().cloned().collect();
        assert_eq!(
            by_name["customer_id"],
            BTreeSet::from([src("orders", "customer_id")])
        );
        assert_eq!(
            by_name["spend"],
            BTreeSet::from([
                src("orders", "total_amount"),
                src("orders", "discount_amount")
            ])
        );
        assert_eq!(
            by_name["tickets"],
            BTreeSet::from([src("tickets", "handled_by")])
        );
        assert!(
            l.used.contains(&src("orders", "refunded")),
            "filter columns are used"
        );
        assert!(
            l.used.contains(&src("tickets", "customer_id")),
            "join keys are used"
        );
        assert!(
            !l.used.contains(&src("orders", "channel")),
            "an unread column is not used"
        );
        assert_eq!(
            l.logic,
            BTreeSet::from([
                src("orders", "refunded"),
                src("orders", "customer_id"),
                src("tickets", "customer_id")
            ]),
            "filter, join and grouping columns shape rows; customer_id is also an output"
        );
    }

    #[tokio::test]
    async fn outer_columns_read_by_a_correlated_subquery_are_used() {
        let l = lineage_of(
            "SELECT o.customer_id FROM orders o WHERE NOT EXISTS \
             (SELECT 1 FROM tickets t WHERE t.customer_id = o.order_id AND t.handled_by = o.channel)",
        )
        .await;
        for used in [
            src("orders", "order_id"),
            src("orders", "channel"),
            src("tickets", "customer_id"),
            src("tickets", "handled_by"),
        ] {
            assert!(l.used.contains(&used), "{used:?} is read by the subquery");
        }
        assert!(!l.used.contains(&src("orders", "total_amount")));
    }

    /// A view as of the run date (`stg_tickets`' shape): its filter on
    /// `run_date()` decides which rows there are, but only the masked
    /// column's value changes with the date; a model over the view inherits
    /// that, through a projection and an aggregate.
    #[tokio::test]
    async fn columns_computed_from_the_run_date_are_dated_through_models() {
        let ctx = SessionContext::new();
        ctx.register_udf(crate::transform::run_date_udf(
            chrono::NaiveDate::from_ymd_opt(2025, 3, 1).expect("date"),
        ));
        let orders = Schema::new(vec![
            Field::new("order_id", DataType::Utf8, false),
            Field::new("ordered_at", DataType::Date32, false),
            Field::new("refunded_at", DataType::Date32, true),
        ]);
        let t = MemTable::try_new(Arc::new(orders), vec![vec![]]).expect("table");
        ctx.register_table("orders", Arc::new(t)).expect("register");
        let lake = ["orders".to_string()].into();
        let view_sql = "SELECT order_id, ordered_at, \
             CASE WHEN refunded_at <= run_date() THEN refunded_at END AS refunded_at \
             FROM orders WHERE ordered_at <= run_date()";
        let view = ctx.sql(view_sql).await.expect("plans");
        let v = model_lineage(view.logical_plan(), &BTreeMap::new(), &lake).expect("lineage");
        assert_eq!(v.dated, BTreeSet::from(["refunded_at".to_string()]));
        let by_name: BTreeMap<_, _> = v.outputs.iter().cloned().collect();
        assert_eq!(
            by_name["refunded_at"],
            BTreeSet::from([src("orders", "refunded_at")]),
            "run_date() is no lake column"
        );
        assert!(v.used.iter().chain(&v.logic).all(|(t, _)| t == "orders"));
        ctx.register_table("v", view.into_view()).expect("view");
        let known = BTreeMap::from([("v".to_string(), v)]);
        let plan = ctx
            .sql("SELECT order_id, max(refunded_at) AS refunded, max(ordered_at) AS ordered FROM v GROUP BY order_id")
            .await
            .expect("plans");
        let m = model_lineage(plan.logical_plan(), &known, &lake).expect("lineage");
        assert_eq!(m.dated, BTreeSet::from(["refunded".to_string()]));
    }

    #[tokio::test]
    async fn subqueries_and_windows_count() {
        let l = lineage_of(
            "SELECT order_id, row_number() OVER (PARTITION BY channel ORDER BY total_amount) AS rn FROM orders \
             WHERE customer_id IN (SELECT customer_id FROM tickets WHERE handled_by = 'bot')",
        )
        .await;
        let by_name: BTreeMap<_, _> = l.outputs.iter().cloned().collect();
        assert_eq!(
            by_name["rn"],
            BTreeSet::from([src("orders", "channel"), src("orders", "total_amount")])
        );
        assert!(l.used.contains(&src("tickets", "handled_by")));
        assert!(
            l.logic.contains(&src("tickets", "handled_by")),
            "a subquery's filter"
        );
        assert!(
            !l.logic.contains(&src("orders", "total_amount")),
            "a window's ordering defines a value, not the rows"
        );
    }
}
