//! The earlier night's `feedback_scored` file (or another one-file mart
//! whose first two columns are a source and an id, as `empathy_contacts`),
//! row group by row group: what a carried-over night copies as it is and
//! what it decodes to merge.
//!
//! A night that starts from an earlier one writes that night's rows again,
//! less the few a later export replaced, with the new messages merged in by
//! message id. Decoding and encoding again 4.7M rows that did not change was
//! a quarter of the voice job's CPU at a million customers; a row group
//! whose messages none of tonight's rows falls between or replaces is
//! copied instead (`ParquetSink::append_group`), its statistics and page
//! index with it.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use chrono::NaiveDate;
use datafusion::arrow::record_batch::RecordBatch;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowSchemaConverter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::async_reader::MetadataFetch;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::statistics::Statistics;

use crate::parquet_io::{FileWindow, group_range};
use crate::storage::{Storage, partition_dir, partition_file};
use crate::{Error, Result};

/// The one Parquet file of an earlier night's partition, with its footer.
pub struct BaseFile {
    store: Arc<dyn ObjectStore>,
    path: Path,
    metadata: ArrowReaderMetadata,
}

/// Reads the footer and page index from the store, range by range.
struct Fetch<'a> {
    store: &'a dyn ObjectStore,
    path: &'a Path,
}

impl MetadataFetch for Fetch<'_> {
    fn fetch(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(self.path, range)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        }
        .boxed()
    }
}

/// The messages a row group holds, from its statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpan {
    /// The one source of every row (`feedback_scored.source`).
    pub source: String,
    /// The least and greatest message id.
    pub first: String,
    pub last: String,
    pub rows: usize,
}

impl BaseFile {
    /// `base`'s partition of `marts/<table>` when it is one file written
    /// with `schema`'s columns; `None` sends the night down the decoding
    /// path, which reads any partition the session can.
    pub async fn open(
        storage: &Storage,
        table: &str,
        base: NaiveDate,
        schema: &datafusion::arrow::datatypes::Schema,
    ) -> Result<Option<BaseFile>> {
        let path = partition_file("marts", table, base);
        let listed = storage.list(&partition_dir("marts", table, base)).await?;
        let files: Vec<_> = listed
            .iter()
            .filter(|m| m.location.extension() == Some("parquet"))
            .collect();
        let [file] = files.as_slice() else {
            return Ok(None);
        };
        if file.location != path {
            return Ok(None);
        }
        let store = storage.store();
        let fetch = Fetch {
            store: store.as_ref(),
            path: &path,
        };
        let label =
            |e: parquet::errors::ParquetError| Error::input(storage.display(&path), e.to_string());
        let footer = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Optional)
            .load_and_finish(fetch, file.size)
            .await
            .map_err(label)?;
        let wanted = ArrowSchemaConverter::new().convert(schema)?;
        if footer.file_metadata().schema_descr().root_schema() != wanted.root_schema() {
            return Ok(None);
        }
        // A copied group takes its page index along. Without its offset
        // index, tonight's file would have one for some groups only, and a
        // reader that requires it (DataFusion may) would refuse the file.
        if footer.offset_index().is_none() {
            return Ok(None);
        }
        // A copied group keeps its codec: from a file written under another
        // `compression`, tonight's file would mix the two, and its bytes
        // would differ from those of a night that encodes every row.
        // the codec, not its level: a footer does not keep zstd's level
        let codec = std::mem::discriminant(&storage.codec().parquet());
        let columns = || footer.row_groups().iter().flat_map(|g| g.columns());
        if columns().any(|c| std::mem::discriminant(&c.compression()) != codec) {
            return Ok(None);
        }
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let metadata = ArrowReaderMetadata::try_new(Arc::new(footer), options).map_err(label)?;
        Ok(Some(BaseFile {
            store,
            path,
            metadata,
        }))
    }

    pub fn metadata(&self) -> &Arc<ParquetMetaData> {
        self.metadata.metadata()
    }

    pub fn groups(&self) -> usize {
        self.metadata().num_row_groups()
    }

    /// What group `g` holds, when its statistics say it exactly and it is
    /// of one source.
    pub fn span(&self, g: usize) -> Option<GroupSpan> {
        let rg = self.metadata().row_group(g);
        let (source_min, source_max) = exact_strings(rg.column(0).statistics()?)?;
        let (first, last) = exact_strings(rg.column(1).statistics()?)?;
        (source_min == source_max).then(|| GroupSpan {
            source: source_min,
            first,
            last,
            rows: usize::try_from(rg.num_rows()).unwrap_or(0),
        })
    }

    /// Group `g`'s bytes, as the window of the file a copy reads.
    pub async fn window(&self, g: usize) -> Result<FileWindow> {
        let range = group_range(self.metadata(), g);
        let bytes = self.store.get_range(&self.path, range.clone()).await?;
        Ok(FileWindow {
            start: range.start,
            bytes,
        })
    }

    /// Group `g`'s rows, decoded.
    pub async fn rows(&self, g: usize) -> Result<Vec<RecordBatch>> {
        let window = self.window(g).await?;
        let reader =
            ParquetRecordBatchReaderBuilder::new_with_metadata(window, self.metadata.clone())
                .with_row_groups(vec![g])
                .build()?;
        Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
    }
}

/// A string column's minimum and maximum, when both are exact (not
/// truncated) and known.
fn exact_strings(s: &Statistics) -> Option<(String, String)> {
    let Statistics::ByteArray(s) = s else {
        return None;
    };
    if !(s.min_is_exact() && s.max_is_exact()) {
        return None;
    }
    let text =
        |b: &parquet::data_type::ByteArray| std::str::from_utf8(b.data()).ok().map(str::to_string);
    Some((text(s.min_opt()?)?, text(s.max_opt()?)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet_io::ParquetSink;
    use datafusion::arrow::array::{
        ArrayRef, BooleanArray, StringArray, TimestampMicrosecondArray, new_null_array,
    };
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use parquet::file::properties::{EnabledStatistics, WriterProperties};

    async fn write(storage: &Storage, date: NaiveDate, batch: &RecordBatch, p: WriterProperties) {
        let path = partition_file("marts", "feedback_scored", date);
        let mut sink = ParquetSink::create_in(storage, path, batch.schema(), p).expect("sink");
        sink.write(batch).await.expect("write");
        sink.finish().await.expect("finish");
    }

    /// Three messages of one survey under `schema`'s columns: every
    /// required column filled, the others empty.
    fn rows(schema: &datafusion::arrow::datatypes::SchemaRef) -> RecordBatch {
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match (f.name().as_str(), f.data_type()) {
                    ("source", _) => Arc::new(StringArray::from(vec!["survey"; 3])),
                    ("message_id", _) => Arc::new(StringArray::from(vec!["a", "b", "c"])),
                    ("at", t) => datafusion::arrow::compute::cast(
                        &(Arc::new(TimestampMicrosecondArray::from(vec![1, 2, 3])) as ArrayRef),
                        t,
                    )
                    .expect("a time"),
                    ("scored", DataType::Boolean) => Arc::new(BooleanArray::from(vec![false; 3])),
                    (_, DataType::Utf8) if !f.is_nullable() => {
                        Arc::new(StringArray::from(vec!["x"; 3]))
                    }
                    (_, t) => new_null_array(t, 3),
                }
            })
            .collect();
        RecordBatch::try_new(schema.clone(), columns).expect("rows")
    }

    /// Only a one-file partition of the mart's columns with an offset index,
    /// compressed as the root's files are, is copied from; any other goes
    /// down the decoding path (`None`).
    #[tokio::test]
    async fn only_a_file_of_the_marts_columns_with_an_offset_index_is_copied_from() {
        let storage = Storage::open("memory://").expect("store");
        let schema = super::super::messages::schema();
        let day = |d| NaiveDate::from_ymd_opt(2026, 3, d).expect("date");
        let page = || {
            WriterProperties::builder()
                .set_compression(storage.codec().parquet())
                .build()
        };

        write(&storage, day(1), &rows(&schema), page()).await;
        let file = BaseFile::open(&storage, "feedback_scored", day(1), &schema)
            .await
            .expect("opened")
            .expect("copied from");
        assert_eq!(file.groups(), 1);
        assert_eq!(
            file.span(0),
            Some(GroupSpan {
                source: "survey".into(),
                first: "a".into(),
                last: "c".into(),
                rows: 3,
            })
        );
        assert_eq!(file.rows(0).await.expect("rows"), vec![rows(&schema)]);

        let no_offset_index = WriterProperties::builder()
            .set_compression(storage.codec().parquet())
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_offset_index_disabled(true)
            .build();
        write(&storage, day(2), &rows(&schema), no_offset_index).await;
        let other = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| Field::new(f.name(), DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        write(&storage, day(3), &rows(&other), page()).await;
        let uncompressed = crate::parquet_io::writer_properties(crate::parquet_io::Codec::None);
        write(&storage, day(5), &rows(&schema), uncompressed).await;
        for (d, why) in [
            (2, "no offset index"),
            (3, "other columns"),
            (4, "no partition"),
            (5, "another codec"),
        ] {
            assert!(
                BaseFile::open(&storage, "feedback_scored", day(d), &schema)
                    .await
                    .expect("opened")
                    .is_none(),
                "{why}"
            );
        }
    }
}
