//! Data tests declared in model headers (dbt-style), run on each model's
//! result. A failure names the model, column, test and the number of
//! offending rows — never the offending values, which may be personal.

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::Schema;
use datafusion::prelude::SessionContext;

use super::models::{DataTest, Model};
use crate::{Error, Result};

/// Whether the model's schema already guarantees the test: a column DataFusion
/// types as non-nullable cannot hold a null, because Arrow refuses a batch
/// with a null in a non-nullable field. Staging models pass the lake's
/// required columns through; skipping those scans took the `stg_orders`
/// tests from 2.3 to 1.9 CPU-seconds at a million customers.
fn proven_by_schema(schema: &Schema, column: &str, test: &DataTest) -> bool {
    matches!(test, DataTest::NotNull)
        && schema
            .field_with_name(column)
            .is_ok_and(|field| !field.is_nullable())
}

/// A condition true for rows that break a row-level test, or `None` for
/// tests that need their own query (unique, relationships).
fn offending_condition(column: &str, test: &DataTest) -> Option<String> {
    match test {
        DataTest::NotNull => Some(format!("{column} IS NULL")),
        DataTest::Range { min, max } => {
            let mut conds = Vec::new();
            if let Some(lo) = min {
                conds.push(format!("{column} < {lo}"));
            }
            if let Some(hi) = max {
                conds.push(format!("{column} > {hi}"));
            }
            Some(if conds.is_empty() {
                "FALSE".into()
            } else {
                conds.join(" OR ")
            })
        }
        DataTest::AcceptedValues(values) => {
            let list: Vec<String> = values
                .iter()
                .map(|v| format!("'{}'", v.replace('\'', "''")))
                .collect();
            Some(format!(
                "{column} IS NOT NULL AND {column} NOT IN ({})",
                list.join(", ")
            ))
        }
        DataTest::Unique | DataTest::Relationships { .. } => None,
    }
}

/// The SQL that counts rows breaking a set-level test.
/// Short generated statements, not models: the model SQL stays in `sql/`.
fn offending_rows_sql(table: &str, column: &str, test: &DataTest) -> String {
    match test {
        DataTest::Unique => format!(
            "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM (SELECT COUNT(*) AS n FROM {table} WHERE {column} IS NOT NULL GROUP BY {column} HAVING COUNT(*) > 1) d"
        ),
        DataTest::Relationships {
            table: other,
            column: key,
        } => format!(
            "SELECT COUNT(*) FROM {table} m LEFT JOIN (SELECT DISTINCT {key} AS k FROM {other}) r ON m.{column} = r.k WHERE m.{column} IS NOT NULL AND r.k IS NULL"
        ),
        other => format!(
            "SELECT COUNT(*) FROM {table} WHERE {}",
            offending_condition(column, other).unwrap_or_else(|| "FALSE".into())
        ),
    }
}

/// Runs every test of `model` (registered in `ctx` under its name). Row-level
/// tests share one scan: a view is re-computed by every query on it.
pub async fn run(ctx: &SessionContext, model: &Model) -> Result<usize> {
    let schema = ctx
        .table(model.name.as_str())
        .await?
        .schema()
        .as_arrow()
        .clone();
    let row_level: Vec<(&String, &DataTest, String)> = model
        .tests
        .iter()
        .filter(|(c, t)| !proven_by_schema(&schema, c, t))
        .filter_map(|(c, t)| offending_condition(c, t).map(|cond| (c, t, cond)))
        .collect();
    if !row_level.is_empty() {
        let sums: Vec<String> = row_level
            .iter()
            .map(|(_, _, cond)| {
                format!("CAST(COALESCE(SUM(CASE WHEN {cond} THEN 1 ELSE 0 END), 0) AS BIGINT)")
            })
            .collect();
        let batches = ctx
            .sql(&format!("SELECT {} FROM {}", sums.join(", "), model.name))
            .await?
            .collect()
            .await?;
        let batch = batches.first().ok_or_else(|| {
            Error::Internal(format!("data tests of {} returned nothing", model.name))
        })?;
        for (i, (column, test, _)) in row_level.iter().enumerate() {
            let n = batch
                .column(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .map_or(0, |a| a.value(0));
            fail_if_any(model, column, test, n)?;
        }
    }
    for (column, test) in model
        .tests
        .iter()
        .filter(|(c, t)| offending_condition(c, t).is_none())
    {
        let batches = ctx
            .sql(&offending_rows_sql(&model.name, column, test))
            .await?
            .collect()
            .await?;
        let n = batches
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .map(|a| a.value(0))
            })
            .ok_or_else(|| {
                Error::Internal(format!(
                    "data test on {}.{column} returned no count",
                    model.name
                ))
            })?;
        fail_if_any(model, column, test, n)?;
    }
    Ok(model.tests.len())
}

fn fail_if_any(model: &Model, column: &str, test: &DataTest, n: i64) -> Result<()> {
    if n > 0 {
        return Err(Error::DataTest {
            model: model.name.clone(),
            column: column.to_string(),
            test: test.name().to_string(),
            rows: u64::try_from(n).unwrap_or(0),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::arrow::record_batch::RecordBatch;

    use super::*;
    use crate::transform::models::parse_model;

    async fn ctx_with(values: Vec<Option<i64>>, keys: Vec<&str>) -> SessionContext {
        let ctx = SessionContext::new();
        let batch = RecordBatch::try_from_iter(vec![
            ("x", Arc::new(Int64Array::from(values)) as ArrayRef),
            ("k", Arc::new(StringArray::from(keys)) as ArrayRef),
        ])
        .expect("batch");
        ctx.register_batch("m", batch).expect("register");
        let parent = RecordBatch::try_from_iter(vec![(
            "k",
            Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
        )])
        .expect("batch");
        ctx.register_batch("parent", parent).expect("register");
        ctx
    }

    fn model(tests: &str) -> Model {
        parse_model("m", &format!("-- model: m\n-- materialized: table\n-- purpose: p\n-- grain: g\n-- column x: d\n-- column k: d\n{tests}\nSELECT 1 AS x, 'a' AS k")).expect("parses")
    }

    #[tokio::test]
    async fn failing_tests_report_counts_not_values() {
        let ctx = ctx_with(
            vec![Some(1), None, Some(7), Some(7)],
            vec!["a", "b", "c", "c"],
        )
        .await;
        let cases = [
            ("-- test x: not_null", "m.x not_null: 1 offending rows"),
            ("-- test x: range 0 5", "m.x range: 2 offending rows"),
            (
                "-- test k: accepted_values a b",
                "m.k accepted_values: 2 offending rows",
            ),
            ("-- test k: unique", "m.k unique: 2 offending rows"),
            (
                "-- test k: relationships parent.k",
                "m.k relationships: 2 offending rows",
            ),
        ];
        for (test, want) in cases {
            let err = run(&ctx, &model(test)).await.expect_err(test).to_string();
            assert!(err.contains(want), "{err} should contain {want}");
            assert!(
                !err.contains("'c'") && !err.contains(" 7"),
                "no values in {err}"
            );
        }
        assert_eq!(
            run(&ctx, &model("-- test x: range 1 *\n-- test k: not_null"))
                .await
                .expect("passes"),
            2
        );
    }

    #[tokio::test]
    async fn a_not_null_test_on_a_non_nullable_column_reads_no_rows() {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(vec!["not a number"])) as ArrayRef],
        )
        .expect("batch");
        ctx.register_batch("strict", batch).expect("register");
        // every scan of this view fails, so a test that passes read no rows
        let view = ctx
            .sql("SELECT CAST(k AS BIGINT) AS x, k FROM strict")
            .await
            .expect("plans");
        assert!(
            !view
                .schema()
                .field_with_name(None, "x")
                .expect("x")
                .is_nullable()
        );
        ctx.register_table("m", view.into_view()).expect("register");
        assert_eq!(
            run(&ctx, &model("-- test x: not_null\n-- test k: not_null"))
                .await
                .expect("proven by the schema"),
            2
        );
        let err = run(&ctx, &model("-- test x: range 0 *"))
            .await
            .expect_err("a range test scans, and the scan fails")
            .to_string();
        assert!(err.contains("Cast"), "{err}");
    }
}
