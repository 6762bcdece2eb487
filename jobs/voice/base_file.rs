//! The earlier night's `feedback_scored` file, row group by row group: what
//! a carried-over night copies as it is and what it decodes to merge.
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
    /// `base`'s partition when it is one file written with `schema`'s
    /// columns; `None` sends the night down the decoding path, which reads
    /// any partition the session can.
    pub async fn open(
        storage: &Storage,
        base: NaiveDate,
        schema: &datafusion::arrow::datatypes::Schema,
    ) -> Result<Option<BaseFile>> {
        let path = partition_file("marts", "feedback_scored", base);
        let listed = storage
            .list(&partition_dir("marts", "feedback_scored", base))
            .await?;
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
            .with_page_index_policy(PageIndexPolicy::Required)
            .load_and_finish(fetch, file.size)
            .await
            .map_err(label)?;
        let wanted = ArrowSchemaConverter::new().convert(schema)?;
        if footer.file_metadata().schema_descr().root_schema() != wanted.root_schema() {
            return Ok(None);
        }
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
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
