//! Mart rows as plain values: the report reads small aggregated marts, so
//! it turns each query result into rows of [`Cell`]s once and builds its
//! sections from those, whatever Arrow type a column was written with.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, BooleanArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use crate::storage::{Storage, partition_dir};
use crate::{Error, Result};

/// One value of a mart row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Num(f64),
    Text(String),
}

/// One row: column name → value.
#[derive(Debug, Clone, Default)]
pub struct Row(BTreeMap<String, Cell>);

impl Row {
    /// A text column; `None` when NULL or absent.
    pub fn text(&self, col: &str) -> Option<&str> {
        match self.0.get(col) {
            Some(Cell::Text(s)) => Some(s),
            _ => None,
        }
    }

    /// A text column, or "" when NULL.
    pub fn str(&self, col: &str) -> &str {
        self.text(col).unwrap_or("")
    }

    /// A numeric column; `None` when NULL, absent or not a finite number.
    pub fn num(&self, col: &str) -> Option<f64> {
        match self.0.get(col) {
            Some(Cell::Num(v)) if v.is_finite() => Some(*v),
            _ => None,
        }
    }

    /// A boolean column; `None` when NULL or absent.
    pub fn flag(&self, col: &str) -> Option<bool> {
        match self.0.get(col) {
            Some(Cell::Bool(b)) => Some(*b),
            _ => None,
        }
    }
}

/// Whether `marts/<table>/dt=<date>/` holds anything: the job behind it ran for the date.
pub async fn has_partition(storage: &Storage, table: &str, date: NaiveDate) -> Result<bool> {
    storage
        .exists_prefix(&partition_dir("marts", table, date))
        .await
}

/// Runs `sql` and returns its rows.
pub async fn rows(session: &SessionContext, sql: &str) -> Result<Vec<Row>> {
    let batches = session.sql(sql).await?.collect().await?;
    let mut out = Vec::new();
    for b in &batches {
        out.extend(batch_rows(b)?);
    }
    Ok(out)
}

/// Rows of one batch, every column cast to text, number or boolean.
fn batch_rows(batch: &RecordBatch) -> Result<Vec<Row>> {
    let schema = batch.schema();
    let mut rows: Vec<Row> = vec![Row::default(); batch.num_rows()];
    for (field, col) in schema.fields().iter().zip(batch.columns()) {
        let name = field.name().clone();
        let dt = col.data_type();
        if dt == &DataType::Boolean {
            let a = col
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| Error::Internal(format!("column {name} is not boolean")))?;
            for (i, row) in rows.iter_mut().enumerate() {
                let v = if a.is_valid(i) {
                    Cell::Bool(a.value(i))
                } else {
                    Cell::Null
                };
                row.0.insert(name.clone(), v);
            }
        } else if dt.is_numeric() {
            let c = cast(col, &DataType::Float64)?;
            let a = c
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| Error::Internal(format!("column {name} did not cast to f64")))?;
            for (i, row) in rows.iter_mut().enumerate() {
                let v = if a.is_valid(i) {
                    Cell::Num(a.value(i))
                } else {
                    Cell::Null
                };
                row.0.insert(name.clone(), v);
            }
        } else {
            let c = cast(col, &DataType::Utf8)?;
            let a = c
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| Error::Internal(format!("column {name} did not cast to text")))?;
            for (i, row) in rows.iter_mut().enumerate() {
                let v = if a.is_valid(i) {
                    Cell::Text(a.value(i).to_string())
                } else {
                    Cell::Null
                };
                row.0.insert(name.clone(), v);
            }
        }
    }
    Ok(rows)
}

/// The first column of `sql` as numbers, NULLs skipped (for distributions,
/// where a row per customer would be wasteful as [`Row`]s).
pub async fn floats(session: &SessionContext, sql: &str) -> Result<Vec<f64>> {
    let batches = session.sql(sql).await?.collect().await?;
    let mut out = Vec::new();
    for b in &batches {
        if b.num_columns() == 0 {
            continue;
        }
        let c = cast(b.column(0), &DataType::Float64)?;
        let a = c
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| Error::Internal("column did not cast to f64".into()))?;
        out.extend(a.iter().flatten().filter(|v| v.is_finite()));
    }
    Ok(out)
}
