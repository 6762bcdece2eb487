//! Data tests declared in model headers (dbt-style), run on each model's
//! result. A failure names the model, column, test and the number of
//! offending rows — never the offending values, which may be personal.

use datafusion::arrow::array::Int64Array;
use datafusion::prelude::SessionContext;

use super::models::{DataTest, Model};
use crate::{Error, Result};

/// The SQL that counts rows breaking `test` on `column` of `table`.
/// Short generated statements, not models: the model SQL stays in `sql/`.
pub fn offending_rows_sql(table: &str, column: &str, test: &DataTest) -> String {
    match test {
        DataTest::NotNull => format!("SELECT COUNT(*) FROM {table} WHERE {column} IS NULL"),
        DataTest::Unique => format!(
            "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM (SELECT COUNT(*) AS n FROM {table} WHERE {column} IS NOT NULL GROUP BY {column} HAVING COUNT(*) > 1) d"
        ),
        DataTest::Range { min, max } => {
            let mut conds = Vec::new();
            if let Some(lo) = min {
                conds.push(format!("{column} < {lo}"));
            }
            if let Some(hi) = max {
                conds.push(format!("{column} > {hi}"));
            }
            if conds.is_empty() {
                conds.push("FALSE".into());
            }
            format!("SELECT COUNT(*) FROM {table} WHERE {}", conds.join(" OR "))
        }
        DataTest::AcceptedValues(values) => {
            let list: Vec<String> = values
                .iter()
                .map(|v| format!("'{}'", v.replace('\'', "''")))
                .collect();
            format!(
                "SELECT COUNT(*) FROM {table} WHERE {column} IS NOT NULL AND {column} NOT IN ({})",
                list.join(", ")
            )
        }
        DataTest::Relationships {
            table: other,
            column: key,
        } => format!(
            "SELECT COUNT(*) FROM {table} m LEFT JOIN (SELECT DISTINCT {key} AS k FROM {other}) r ON m.{column} = r.k WHERE m.{column} IS NOT NULL AND r.k IS NULL"
        ),
    }
}

/// Runs every test of `model` (registered in `ctx` under its name).
pub async fn run(ctx: &SessionContext, model: &Model) -> Result<usize> {
    for (column, test) in &model.tests {
        let sql = offending_rows_sql(&model.name, column, test);
        let batches = ctx.sql(&sql).await?.collect().await?;
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
        if n > 0 {
            return Err(Error::DataTest {
                model: model.name.clone(),
                column: column.clone(),
                test: test.name().to_string(),
                rows: u64::try_from(n).unwrap_or(0),
            });
        }
    }
    Ok(model.tests.len())
}
