//! `CAST(ts AS DATE)` of a UTC timestamp, computed by integer division.
//!
//! Arrow casts a zoned timestamp to a date one value at a time through
//! chrono and the zone's offset rules: a fifth of the lifetime-value
//! summary's CPU at a million customers, and the same in every model that
//! takes the day of an order or a session. In UTC, the zone of every lake
//! timestamp, the day is `floor(ts / day)`. The SQL models keep the portable
//! `CAST(... AS DATE)` (DuckDB, Spark and Ballista read them as written);
//! attune's own sessions add [`UtcDates`], which swaps in [`UtcDate`] where
//! the argument is a UTC timestamp in micro- or nanoseconds (the units whose
//! day number always fits a Date32, so the function cannot overflow).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Array};
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, TimeUnit, TimestampMicrosecondType, TimestampNanosecondType,
};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::ExprSchemable;
use datafusion::logical_expr::expr::Cast;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::prelude::SessionContext;

const MICROS_PER_DAY: i64 = 86_400_000_000;
const NANOS_PER_DAY: i64 = MICROS_PER_DAY * 1000;

/// Adds the rewrite to a session.
pub fn install(ctx: &SessionContext) {
    ctx.add_optimizer_rule(Arc::new(UtcDates));
}

/// Whether a timestamp's zone is UTC under one of the names Arrow accepts.
fn is_utc(tz: &str) -> bool {
    matches!(tz, "UTC" | "Etc/UTC" | "+00:00" | "Z")
}

/// The optimizer rule: `CAST(x AS DATE)` → `utc_date(x)` when `x` is a UTC
/// timestamp in µs or ns. Output names are kept, so the plan's schema does
/// not change.
#[derive(Debug, Default)]
pub struct UtcDates;

impl OptimizerRule for UtcDates {
    fn name(&self) -> &str {
        "attune_utc_dates"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        // A scan's pushed-down filters are evaluated against the file, where
        // a cast costs nothing extra; the rule needs an input to type against.
        if plan.inputs().is_empty() {
            return Ok(Transformed::no(plan));
        }
        let schema = merge_schema(&plan.inputs());
        let names = NamePreserver::new(&plan);
        plan.map_expressions(|expr| {
            let name = names.save(&expr);
            let rewritten = expr.transform_up(|e| to_utc_date(e, &schema))?;
            Ok(Transformed::new_transformed(
                name.restore(rewritten.data),
                rewritten.transformed,
            ))
        })
    }
}

fn to_utc_date(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::Cast(Cast { expr: inner, field }) = &expr else {
        return Ok(Transformed::no(expr));
    };
    if field.data_type() != &DataType::Date32 {
        return Ok(Transformed::no(expr));
    }
    let fast = matches!(
        inner.get_type(schema),
        Ok(DataType::Timestamp(TimeUnit::Microsecond | TimeUnit::Nanosecond, Some(tz))) if is_utc(&tz)
    );
    if !fast {
        return Ok(Transformed::no(expr));
    }
    Ok(Transformed::yes(udf().call(vec![inner.as_ref().clone()])))
}

/// `utc_date(ts)`: the UTC calendar day of a UTC timestamp (µs or ns).
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(UtcDate::default())
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UtcDate {
    signature: Signature,
}

impl Default for UtcDate {
    fn default() -> Self {
        UtcDate {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

/// Units per day of a timestamp type the function takes.
fn per_day(t: &DataType) -> Result<i64> {
    match t {
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if is_utc(tz) => Ok(MICROS_PER_DAY),
        DataType::Timestamp(TimeUnit::Nanosecond, Some(tz)) if is_utc(tz) => Ok(NANOS_PER_DAY),
        other => Err(DataFusionError::Plan(format!(
            "utc_date takes a UTC timestamp in microseconds or nanoseconds, not {other}"
        ))),
    }
}

impl ScalarUDFImpl for UtcDate {
    fn name(&self) -> &str {
        "utc_date"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        per_day(&arg_types[0])?;
        Ok(DataType::Date32)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        per_day(args.arg_fields[0].data_type())?;
        Ok(Arc::new(Field::new(
            self.name(),
            DataType::Date32,
            args.arg_fields[0].is_nullable(),
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let day = |v: i64, per: i64| v.div_euclid(per) as i32;
        match &args.args[0] {
            ColumnarValue::Array(a) => {
                let per = per_day(a.data_type())?;
                let days: Date32Array = if per == MICROS_PER_DAY {
                    a.as_primitive::<TimestampMicrosecondType>()
                        .unary(|v| day(v, per))
                } else {
                    a.as_primitive::<TimestampNanosecondType>()
                        .unary(|v| day(v, per))
                };
                Ok(ColumnarValue::Array(Arc::new(days) as ArrayRef))
            }
            ColumnarValue::Scalar(s) => {
                let per = per_day(&s.data_type())?;
                let v = match s {
                    ScalarValue::TimestampMicrosecond(v, _)
                    | ScalarValue::TimestampNanosecond(v, _) => *v,
                    _ => None,
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Date32(
                    v.map(|v| day(v, per)),
                )))
            }
        }
    }

    // The day never decreases as the timestamp grows: sorted input stays sorted.
    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        Ok(inputs[0].sort_properties)
    }

    fn preserves_lex_ordering(&self, _inputs: &[ExprProperties]) -> Result<bool> {
        Ok(true)
    }
}

/// Days since 1970-01-01 (Arrow's Date32).
pub fn epoch_day(d: chrono::NaiveDate) -> i32 {
    use chrono::Datelike;
    d.num_days_from_ce() - 719_163
}

/// The date of an Arrow Date32 value.
pub fn from_epoch_day(days: i32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163).unwrap_or(chrono::NaiveDate::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::Schema;
    use datafusion::datasource::MemTable;

    /// Instants around midnight, before 1970 (negative values must floor, not
    /// truncate toward zero), from year 0 to 9999, and NULL.
    fn instants() -> Vec<Option<i64>> {
        let mut v = vec![None, Some(0), Some(-1)];
        for day in [-719_528i64, -25_567, -1, 0, 1, 20_000, 2_932_896] {
            for off in [-1, 0, 1, MICROS_PER_DAY / 2, MICROS_PER_DAY - 1] {
                v.push(
                    day.checked_mul(MICROS_PER_DAY)
                        .and_then(|d| d.checked_add(off)),
                );
            }
        }
        v
    }

    async fn session_with(rule: bool) -> SessionContext {
        let ctx = SessionContext::new();
        if rule {
            install(&ctx);
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        let at = instants();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..at.len() as i64)),
                Arc::new(TimestampMicrosecondArray::from(at).with_timezone("UTC")),
            ],
        )
        .unwrap();
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
        )
        .unwrap();
        ctx
    }

    async fn rows(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
        ctx.sql(sql).await.unwrap().collect().await.unwrap()
    }

    async fn plan(ctx: &SessionContext, sql: &str) -> String {
        let plan = rows(ctx, &format!("EXPLAIN {sql}")).await;
        datafusion::arrow::util::pretty::pretty_format_batches(&plan)
            .unwrap()
            .to_string()
    }

    // Reference: Arrow's own cast (through chrono), in a session without the rule.
    #[tokio::test]
    async fn the_rewritten_cast_gives_arrows_days() {
        let sql = "SELECT n, CAST(at AS DATE) AS d FROM t ORDER BY n";
        let expected = rows(&session_with(false).await, sql).await;
        let fast = session_with(true).await;
        let text = plan(&fast, sql).await;
        assert!(text.contains("utc_date"), "the rule did not fire:\n{text}");
        let got = rows(&fast, sql).await;
        assert_eq!(got, expected);
        assert_eq!(
            got[0].schema(),
            expected[0].schema(),
            "names and nullability kept"
        );
    }

    #[tokio::test]
    async fn other_zones_and_types_keep_arrows_cast() {
        let ctx = session_with(true).await;
        for sql in [
            "SELECT CAST(arrow_cast(at, 'Timestamp(Microsecond, Some(\"+05:00\"))') AS DATE) FROM t",
            "SELECT CAST(arrow_cast(at, 'Timestamp(Second, Some(\"UTC\"))') AS DATE) FROM t",
            "SELECT CAST(n AS DATE) FROM t",
        ] {
            let text = plan(&ctx, sql).await;
            assert!(!text.contains("utc_date"), "{sql} was rewritten:\n{text}");
        }
    }

    #[tokio::test]
    async fn days_in_group_by_and_filters_are_rewritten_and_named_as_written() {
        let sql = "SELECT CAST(at AS DATE), count(*) AS n FROM t \
                   WHERE CAST(at AS DATE) >= DATE '1970-01-01' GROUP BY CAST(at AS DATE) ORDER BY 1";
        let fast = session_with(true).await;
        assert!(plan(&fast, sql).await.contains("utc_date"));
        assert_eq!(
            rows(&fast, sql).await,
            rows(&session_with(false).await, sql).await
        );
    }
}
