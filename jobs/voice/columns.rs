//! Typed access to the columns of query results, whatever physical type
//! DataFusion chose (`Utf8View` or `Utf8`, `Int32` or `Int64`, …): each
//! column is cast once to the type the voice job works with.

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use crate::{Error, Result};

/// The timestamp type of every attune table: microseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn column(batch: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("voice: query result has no column `{name}`")))?;
    if col.data_type() == to {
        return Ok(col.clone());
    }
    Ok(cast(col, to)?)
}

fn downcast<T: Clone + 'static>(a: &ArrayRef, name: &str) -> Result<T> {
    a.as_any()
        .downcast_ref::<T>()
        .cloned()
        .ok_or_else(|| Error::Internal(format!("voice: column `{name}` has an unexpected type")))
}

/// A string column.
pub fn strings(batch: &RecordBatch, name: &str) -> Result<StringArray> {
    downcast(&column(batch, name, &DataType::Utf8)?, name)
}

/// An integer column.
pub fn ints(batch: &RecordBatch, name: &str) -> Result<Int64Array> {
    downcast(&column(batch, name, &DataType::Int64)?, name)
}

/// A float column.
pub fn floats(batch: &RecordBatch, name: &str) -> Result<Float64Array> {
    downcast(&column(batch, name, &DataType::Float64)?, name)
}

/// A boolean column.
pub fn bools(batch: &RecordBatch, name: &str) -> Result<BooleanArray> {
    downcast(&column(batch, name, &DataType::Boolean)?, name)
}

/// A date column.
pub fn dates(batch: &RecordBatch, name: &str) -> Result<Date32Array> {
    downcast(&column(batch, name, &DataType::Date32)?, name)
}

/// A timestamp column, as microseconds since the epoch, UTC.
pub fn timestamps(batch: &RecordBatch, name: &str) -> Result<TimestampMicrosecondArray> {
    downcast(&column(batch, name, &timestamp_type())?, name)
}

/// The value at `i`, or `None` when null.
pub fn opt_str(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

/// The value at `i`, or `None` when null.
pub fn opt_i64(a: &Int64Array, i: usize) -> Option<i64> {
    a.is_valid(i).then(|| a.value(i))
}

/// The value at `i`, or `None` when null.
pub fn opt_f64(a: &Float64Array, i: usize) -> Option<f64> {
    a.is_valid(i).then(|| a.value(i))
}
