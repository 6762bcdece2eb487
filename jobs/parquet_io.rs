//! Reading and writing the Parquet files of lake, quarantine and marts.
//!
//! One writer configuration for all of attune (zstd, statistics, no clock
//! values in the file), so every output is compact, prunable and
//! byte-identical for the same input.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;

use crate::storage::Storage;
use crate::{Error, Result};

/// Writer settings shared by every attune table.
pub fn writer_properties() -> WriterProperties {
    properties_builder().build()
}

/// [`writer_properties`] without dictionary encoding for `columns`: for
/// columns whose values rarely repeat within a file (ids, timestamps).
pub fn writer_properties_without_dictionary(columns: &[&str]) -> WriterProperties {
    columns
        .iter()
        .fold(properties_builder(), |b, c| {
            b.set_column_dictionary_enabled(ColumnPath::from(*c), false)
        })
        .build()
}

fn properties_builder() -> WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("level 1 is valid"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(1 << 20))
        .set_created_by(format!("attune {}", env!("CARGO_PKG_VERSION")))
}

/// Streams batches into one object; the object appears only on [`finish`](Self::finish).
pub struct ParquetSink {
    writer: AsyncArrowWriter<BufWriter>,
    rows: u64,
}

impl ParquetSink {
    /// Starts writing `path` in `store`.
    pub fn create(
        store: Arc<dyn ObjectStore>,
        path: Path,
        schema: SchemaRef,
    ) -> Result<ParquetSink> {
        ParquetSink::create_with(store, path, schema, writer_properties())
    }

    /// [`create`](Self::create) with other writer settings.
    pub fn create_with(
        store: Arc<dyn ObjectStore>,
        path: Path,
        schema: SchemaRef,
        properties: WriterProperties,
    ) -> Result<ParquetSink> {
        let buf = BufWriter::with_capacity(store, path, 8 << 20);
        let writer = AsyncArrowWriter::try_new(buf, schema, Some(properties))?;
        Ok(ParquetSink { writer, rows: 0 })
    }

    /// Appends a batch.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.writer.write(batch).await?;
        Ok(())
    }

    /// Completes the file and publishes it atomically. Returns rows written.
    pub async fn finish(self) -> Result<u64> {
        self.writer.close().await?;
        Ok(self.rows)
    }
}

/// Writes batches as one Parquet object, atomically.
pub async fn write_batches(
    storage: &Storage,
    path: &Path,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<u64> {
    let mut sink = ParquetSink::create(storage.store(), path.clone(), schema)?;
    for b in batches {
        sink.write(b).await?;
    }
    sink.finish().await
}

/// Reads a whole Parquet object (small tables: control lists, tests).
pub async fn read_batches(storage: &Storage, path: &Path) -> Result<Vec<RecordBatch>> {
    let bytes = storage.get_bytes(path).await?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    reader.collect::<Result<Vec<_>, _>>().map_err(Error::from)
}
