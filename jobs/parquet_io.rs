//! Reading and writing the Parquet files of lake, quarantine and marts.
//!
//! One writer configuration for all of attune (statistics, no clock values
//! in the file, the data root's [`Codec`]), so every output is prunable and
//! byte-identical for the same input. [`ParquetSink`] encodes a file's
//! columns on every core (the bytes `ArrowWriter` writes, tested).

use std::sync::Arc;

use bytes::{Buf, Bytes};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_writer::{
    ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::basic::{Compression, ZstdLevel};
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use tokio::io::AsyncWriteExt;

use crate::staged_file::StagedFile;
use crate::storage::Storage;
use crate::{Error, Result};

/// How the Parquet files of a data root are compressed (`compression` in
/// `attune.toml`; [`Storage::codec`]).
///
/// On a local disk the files are read from the page cache, and every
/// column chunk of a zstd file costs a decompression context (the parquet
/// crate makes a compressor and a decompressor for each chunk it reads,
/// and zstd asks the CPU for its features with six `cpuid` instructions
/// for the pair, each a trap to the hypervisor on a virtual machine: 3.5 µs
/// apiece on the benchmark's) before the decompression itself. The lake
/// is a file a day per table, so an incremental night at a million
/// customers read 57,000 column chunks. Uncompressed, the whole night
/// used about 3 CPU-seconds fewer (tests/bench/HISTORY.md, session 58)
/// for a lake of 2.9 GB instead of 1.0 GB. Over a network the bytes cost
/// more than the CPU, so an object store's default is zstd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Column chunks stored as encoded (dictionary, RLE, plain), not
    /// compressed further.
    None,
    /// zstd at level 1.
    Zstd,
}

impl Codec {
    /// The Parquet codec of the column chunks written.
    pub fn parquet(self) -> Compression {
        match self {
            Codec::None => Compression::UNCOMPRESSED,
            Codec::Zstd => Compression::ZSTD(ZstdLevel::try_new(1).expect("level 1 is valid")),
        }
    }
}

/// Writer settings shared by every attune table.
pub fn writer_properties(codec: Codec) -> WriterProperties {
    properties_builder(codec).build()
}

/// Writer settings of the files a command writes outside the data root
/// (`--out`): zstd, as such files are copied and shared.
pub fn export_properties() -> WriterProperties {
    writer_properties(Codec::Zstd)
}

/// [`writer_properties`] without dictionary encoding for `columns`: for
/// columns whose values rarely repeat within a file (ids, timestamps).
pub fn writer_properties_without_dictionary(codec: Codec, columns: &[&str]) -> WriterProperties {
    writer_properties_without(codec, columns, &[])
}

/// [`writer_properties_without_dictionary`] for `without_dictionary`, and
/// no minimum and maximum for `without_statistics`: columns whose values
/// span their whole range in every page (pseudonyms, free text), where a
/// range prunes nothing and finding it compares every value twice (the
/// comparisons were 3% of ingest's CPU in `perf`).
pub fn writer_properties_without(
    codec: Codec,
    without_dictionary: &[&str],
    without_statistics: &[&str],
) -> WriterProperties {
    let b = without_dictionary
        .iter()
        .fold(properties_builder(codec), |b, c| {
            b.set_column_dictionary_enabled(ColumnPath::from(*c), false)
        });
    without_statistics
        .iter()
        .fold(b, |b, c| {
            b.set_column_statistics_enabled(ColumnPath::from(*c), EnabledStatistics::None)
        })
        .build()
}

fn properties_builder(codec: Codec) -> WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_compression(codec.parquet())
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(1 << 20))
        .set_created_by(format!("attune {}", env!("CARGO_PKG_VERSION")))
}

/// Rows gathered before their columns are encoded, each column on the next
/// free core (the encoding of a mart of a million customers, zstd
/// included, was the one busy core at the end of the jobs that write them).
const ENCODE_ROWS: usize = 1 << 16;

/// Streams batches into one object; the object appears only on
/// [`finish`](Self::finish). The bytes are those `ArrowWriter` writes with
/// the same properties: the same row groups, each column encoded by its
/// own writer, on as many threads as [`threads`](Self::threads) gives.
pub struct ParquetSink {
    path: Path,
    /// The upload to an object store; none for a local root's file, which
    /// the file writer writes itself.
    out: Option<BufWriter>,
    file: SerializedFileWriter<Shared>,
    written: Shared,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    /// The column writers of the row group under way (none before its first
    /// rows are encoded).
    columns: Vec<ArrowColumnWriter>,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    /// Rows of the row group under way, encoded or pending.
    group_rows: usize,
    max_group_rows: usize,
    threads: usize,
    rows: u64,
}

/// Where the file writer's bytes go: gathered for an object store's
/// upload, or straight into a local root's file.
enum Written {
    Gathered(Vec<u8>),
    File(StagedFile),
}

/// The file writer's output, which the sink reaches too: to send what was
/// gathered, and to publish the file.
#[derive(Clone)]
struct Shared(Arc<std::sync::Mutex<Written>>);

impl Shared {
    fn new(written: Written) -> Shared {
        Shared(Arc::new(std::sync::Mutex::new(written)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Written> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bytes gathered and not yet sent (none for a local file).
    fn take(&self) -> Vec<u8> {
        match &mut *self.lock() {
            Written::Gathered(bytes) => std::mem::take(bytes),
            Written::File(_) => Vec::new(),
        }
    }
}

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut *self.lock() {
            Written::Gathered(bytes) => bytes.extend_from_slice(buf),
            Written::File(file) => file.write(buf).map_err(std::io::Error::other)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ParquetSink {
    /// Starts writing `path` in `storage`, compressed as its files are.
    pub fn create(storage: &Storage, path: Path, schema: SchemaRef) -> Result<ParquetSink> {
        let properties = writer_properties(storage.codec());
        ParquetSink::create_in(storage, path, schema, properties)
    }

    /// [`create`](Self::create) with other writer settings. A local root's
    /// file is written directly ([`crate::staged_file`]).
    pub fn create_in(
        storage: &Storage,
        path: Path,
        schema: SchemaRef,
        properties: WriterProperties,
    ) -> Result<ParquetSink> {
        let (out, written) = match storage.local_file(&path) {
            Some(file) => (None, Written::File(StagedFile::new(file?))),
            None => (
                Some(BufWriter::with_capacity(
                    storage.store(),
                    path.clone(),
                    8 << 20,
                )),
                Written::Gathered(Vec::new()),
            ),
        };
        ParquetSink::start(out, Shared::new(written), path, schema, properties)
    }

    /// [`create_in`](Self::create_in) for any object store.
    pub fn create_with(
        store: Arc<dyn ObjectStore>,
        path: Path,
        schema: SchemaRef,
        properties: WriterProperties,
    ) -> Result<ParquetSink> {
        let out = BufWriter::with_capacity(store, path.clone(), 8 << 20);
        let written = Shared::new(Written::Gathered(Vec::new()));
        ParquetSink::start(Some(out), written, path, schema, properties)
    }

    fn start(
        out: Option<BufWriter>,
        written: Shared,
        path: Path,
        schema: SchemaRef,
        properties: WriterProperties,
    ) -> Result<ParquetSink> {
        let max_group_rows = properties
            .max_row_group_row_count()
            .unwrap_or(usize::MAX)
            .max(1);
        let (file, factory) =
            ArrowWriter::try_new(written.clone(), schema.clone(), Some(properties))?
                .into_serialized_writer()?;
        Ok(ParquetSink {
            path,
            out,
            file,
            written,
            factory,
            schema,
            columns: Vec::new(),
            pending: Vec::new(),
            pending_rows: 0,
            group_rows: 0,
            max_group_rows,
            threads: crate::parallel::threads(),
            rows: 0,
        })
    }

    /// Encodes on at most `threads` threads (1: on the caller's, for a job
    /// that writes several files at once on every core).
    pub fn threads(mut self, threads: usize) -> ParquetSink {
        self.threads = threads.max(1);
        self
    }

    /// Appends a batch.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        let mut rest = batch.clone();
        while rest.num_rows() > 0 {
            // a row group ends at exactly its maximum rows, as ArrowWriter's
            let room = self.max_group_rows - self.group_rows;
            let take = rest.num_rows().min(room);
            self.pending.push(rest.slice(0, take));
            self.pending_rows += take;
            self.group_rows += take;
            rest = rest.slice(take, rest.num_rows() - take);
            if self.group_rows == self.max_group_rows {
                self.close_group().await?;
            } else if self.pending_rows >= ENCODE_ROWS {
                self.encode()?;
            }
        }
        Ok(())
    }

    /// Encodes the pending rows into the row group's column writers, each
    /// column's batches in order on one thread.
    fn encode(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.columns.is_empty() {
            let group = self.file.flushed_row_groups().len();
            self.columns = self.factory.create_column_writers(group)?;
        }
        let batches = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        let mut leaves: Vec<Vec<ArrowLeafColumn>> =
            self.columns.iter().map(|_| Vec::new()).collect();
        for b in &batches {
            let mut at = 0;
            for (field, column) in self.schema.fields().iter().zip(b.columns()) {
                for leaf in compute_leaves(field, column)? {
                    leaves[at].push(leaf);
                    at += 1;
                }
            }
        }
        let work: Vec<std::sync::Mutex<(&mut ArrowColumnWriter, Vec<ArrowLeafColumn>)>> = self
            .columns
            .iter_mut()
            .zip(leaves)
            .map(std::sync::Mutex::new)
            .collect();
        let done = crate::parallel::map(&work, self.threads, &|w| {
            let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
            let (writer, leaves) = &mut *w;
            leaves.iter().try_for_each(|leaf| writer.write(leaf))
        });
        done.into_iter().collect::<Result<(), _>>()?;
        Ok(())
    }

    /// Ends the row group under way, if any: the next rows start a new one.
    pub async fn end_group(&mut self) -> Result<()> {
        self.close_group().await
    }

    /// Appends row group `group` of another file as it is, without decoding
    /// it, after ending the row group under way. `file` holds at least the
    /// group's bytes at their offsets in that file, `metadata` that file's
    /// footer (with its page index, which is carried over when loaded); its
    /// columns must be this file's, or this fails before writing anything.
    pub async fn append_group(
        &mut self,
        file: &impl ChunkReader,
        metadata: &ParquetMetaData,
        group: usize,
    ) -> Result<()> {
        self.close_group().await?;
        let rg = metadata.row_group(group);
        let rows = u64::try_from(rg.num_rows()).unwrap_or(0);
        let mut writer = self.file.next_row_group()?;
        for (c, column) in rg.columns().iter().enumerate() {
            writer.append_column(
                file,
                ColumnCloseResult {
                    bytes_written: u64::try_from(column.compressed_size()).unwrap_or(0),
                    rows_written: rows,
                    metadata: column.clone(),
                    bloom_filter: None,
                    column_index: cell(metadata.column_index(), group, c),
                    offset_index: cell(metadata.offset_index(), group, c),
                },
            )?;
        }
        writer.close()?;
        self.rows += rows;
        self.send().await
    }

    /// Ends the row group under way (if any) and sends its bytes.
    async fn close_group(&mut self) -> Result<()> {
        self.encode()?;
        if !self.columns.is_empty() {
            let mut group = self.file.next_row_group()?;
            for column in std::mem::take(&mut self.columns) {
                column.close()?.append_to_row_group(&mut group)?;
            }
            group.close()?;
        }
        self.group_rows = 0;
        self.send().await
    }

    async fn send(&mut self) -> Result<()> {
        let Some(out) = &mut self.out else {
            return Ok(());
        };
        let bytes = self.written.take();
        if !bytes.is_empty() {
            out.put(bytes.into()).await?;
        }
        Ok(())
    }

    /// Completes the file and publishes it atomically. Returns rows written.
    pub async fn finish(mut self) -> Result<u64> {
        self.close_group().await?;
        self.file.finish()?;
        self.send().await?;
        // the object appears here, or not at all
        match self.out {
            Some(mut out) => {
                let path = self.path.to_string();
                out.shutdown().await.map_err(|e| Error::io(path, e))?;
            }
            None => {
                let written =
                    std::mem::replace(&mut *self.written.lock(), Written::Gathered(Vec::new()));
                if let Written::File(file) = written {
                    file.publish()?;
                }
            }
        }
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
    let mut sink = ParquetSink::create(storage, path.clone(), schema)?;
    for b in batches {
        sink.write(b).await?;
    }
    sink.finish().await
}

/// A page index's entry for column `c` of row group `g`.
fn cell<T: Clone>(index: Option<&Vec<Vec<T>>>, g: usize, c: usize) -> Option<T> {
    index?.get(g)?.get(c).cloned()
}

/// Bytes of a file from offset `start` on, read as that file: what
/// [`ParquetSink::append_group`] copies a row group from without fetching
/// the whole file.
pub struct FileWindow {
    pub start: u64,
    pub bytes: Bytes,
}

impl FileWindow {
    fn at(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let from = start
            .checked_sub(self.start)
            .and_then(|f| usize::try_from(f).ok())
            .filter(|&f| f.saturating_add(length) <= self.bytes.len())
            .ok_or_else(|| {
                parquet::errors::ParquetError::General(format!(
                    "bytes {start}..+{length} are outside the window {}..+{}",
                    self.start,
                    self.bytes.len()
                ))
            })?;
        Ok(self.bytes.slice(from..from + length))
    }
}

impl Length for FileWindow {
    fn len(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

impl ChunkReader for FileWindow {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let rest = usize::try_from(self.len().saturating_sub(start)).unwrap_or(0);
        Ok(self.at(start, rest)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.at(start, length)
    }
}

/// The byte range of row group `group`'s column chunks in its file.
pub fn group_range(metadata: &ParquetMetaData, group: usize) -> std::ops::Range<u64> {
    let rg = metadata.row_group(group);
    let (start, end) = rg.columns().iter().fold((u64::MAX, 0), |(lo, hi), c| {
        let (from, len) = c.byte_range();
        (lo.min(from), hi.max(from + len))
    });
    start.min(end)..end
}

/// Reads a whole Parquet object (small tables: control lists, tests).
pub async fn read_batches(storage: &Storage, path: &Path) -> Result<Vec<RecordBatch>> {
    let bytes = storage.get_bytes(path).await?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    reader.collect::<Result<Vec<_>, _>>().map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    /// `n` rows from `start`: a repeating text (dictionary-encoded), a
    /// distinct one, integers with nulls and floats.
    fn batch(schema: &SchemaRef, start: usize, n: usize) -> RecordBatch {
        let rows = start..start + n;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                rows.clone().map(|i| ["in_store", "online", "app"][i % 3]),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.clone().map(|i| format!("order-{i:08}")),
            )),
            Arc::new(Int64Array::from_iter(
                rows.clone().map(|i| (i % 7 != 0).then_some(i as i64 * 31)),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.map(|i| (i as f64).sqrt()),
            )),
        ];
        RecordBatch::try_new(schema.clone(), columns).expect("batch")
    }

    /// The columns [`batch`] fills.
    fn test_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("channel", DataType::Utf8, false),
            Field::new("order_id", DataType::Utf8, false),
            Field::new("amount", DataType::Int64, true),
            Field::new("score", DataType::Float64, false),
        ]))
    }

    /// The bytes written to `path`.
    async fn stored(store: &InMemory, path: &Path) -> Bytes {
        let object = store.get(path).await.expect("written");
        object.bytes().await.expect("bytes")
    }

    /// Row groups of at most 1,000 rows.
    fn small_groups() -> WriterProperties {
        properties_builder(Codec::Zstd)
            .set_max_row_group_row_count(Some(1000))
            .build()
    }

    fn zstd() -> WriterProperties {
        writer_properties(Codec::Zstd)
    }

    fn uncompressed() -> WriterProperties {
        writer_properties(Codec::None)
    }

    /// The sink's bytes are ArrowWriter's, whatever the threads: row groups
    /// that end inside a batch, batches that cross the rows gathered before
    /// encoding, empty batches and an empty file.
    #[tokio::test]
    async fn the_sink_writes_the_bytes_arrow_writer_writes() {
        let schema = test_schema();
        type Case = (Vec<usize>, fn() -> WriterProperties);
        let cases: [Case; 6] = [
            (vec![1, 999, 2500, 0, 7000, 123], small_groups),
            (vec![8192; 25], zstd),
            (vec![8192; 25], uncompressed),
            (vec![ENCODE_ROWS - 1, 2, ENCODE_ROWS + 5, 10], zstd),
            (vec![ENCODE_ROWS - 1, 2, ENCODE_ROWS + 5, 10], uncompressed),
            (Vec::new(), zstd),
        ];
        for (sizes, properties) in cases {
            let mut batches = Vec::new();
            let mut start = 0;
            for n in &sizes {
                batches.push(batch(&schema, start, *n));
                start += n;
            }
            let mut want = Vec::new();
            let mut w = ArrowWriter::try_new(&mut want, schema.clone(), Some(properties()))
                .expect("writer");
            for b in &batches {
                w.write(b).expect("write");
            }
            w.close().expect("close");
            for threads in [1, 2, 3] {
                let store = Arc::new(InMemory::new());
                let path = Path::from("t/part-0.parquet");
                let mut sink = ParquetSink::create_with(
                    store.clone(),
                    path.clone(),
                    schema.clone(),
                    properties(),
                )
                .expect("sink")
                .threads(threads);
                for b in &batches {
                    sink.write(b).await.expect("write");
                }
                assert_eq!(sink.finish().await.expect("finish"), start as u64);
                let got = stored(&store, &path).await;
                assert!(
                    got.as_ref() == want.as_slice(),
                    "{sizes:?} on {threads} threads: {} bytes against {}",
                    got.len(),
                    want.len()
                );
            }
        }
    }

    /// A row group copied from another file reads back as the rows it held,
    /// between rows written around it, and keeps its statistics and page
    /// index; only its window of the other file is needed. Reference: the
    /// rows themselves, written by the sink.
    #[tokio::test]
    async fn a_copied_row_group_holds_its_rows_statistics_and_page_index() {
        use parquet::arrow::arrow_reader::ArrowReaderOptions;
        use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};

        let schema = test_schema();
        let properties = small_groups;
        let store = Arc::new(InMemory::new());
        let (from, to) = (Path::from("a.parquet"), Path::from("b.parquet"));
        let mut a =
            ParquetSink::create_with(store.clone(), from.clone(), schema.clone(), properties())
                .expect("sink");
        a.write(&batch(&schema, 0, 2500)).await.expect("write");
        a.finish().await.expect("finish");
        let source = stored(&store, &from).await;
        let metadata = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Required)
            .parse_and_finish(&source)
            .expect("footer");
        assert_eq!(metadata.num_row_groups(), 3);
        let range = group_range(&metadata, 1);
        let window = FileWindow {
            start: range.start,
            bytes: source.slice(range.start as usize..range.end as usize),
        };

        let mut b =
            ParquetSink::create_with(store.clone(), to.clone(), schema.clone(), properties())
                .expect("sink");
        b.write(&batch(&schema, 5000, 10)).await.expect("write");
        b.append_group(&window, &metadata, 1).await.expect("copied");
        b.write(&batch(&schema, 9000, 20)).await.expect("write");
        assert_eq!(b.finish().await.expect("finish"), 1030);

        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(
            stored(&store, &to).await,
            ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required),
        )
        .expect("readable");
        let written = reader.metadata().clone();
        let rows: Vec<RecordBatch> = reader
            .build()
            .expect("reader")
            .collect::<Result<_, _>>()
            .expect("rows");
        let got = datafusion::arrow::compute::concat_batches(&schema, &rows).expect("concat");
        let want = datafusion::arrow::compute::concat_batches(
            &schema,
            &[
                batch(&schema, 5000, 10),
                batch(&schema, 1000, 1000),
                batch(&schema, 9000, 20),
            ],
        )
        .expect("concat");
        assert_eq!(got, want);
        assert_eq!(written.num_row_groups(), 3);
        for c in 0..4 {
            assert_eq!(
                written.row_group(1).column(c).statistics(),
                metadata.row_group(1).column(c).statistics(),
                "column {c}"
            );
        }
        let pages = |m: &ParquetMetaData| {
            m.offset_index().expect("offset index")[1][1]
                .page_locations
                .len()
        };
        assert_eq!(pages(&written), pages(&metadata));
        // outside its window the copy fails rather than write other bytes
        let short = FileWindow {
            start: range.start,
            bytes: source.slice(range.start as usize..range.end as usize - 1),
        };
        let mut c = ParquetSink::create_with(store, Path::from("c.parquet"), schema, properties())
            .expect("sink");
        assert!(c.append_group(&short, &metadata, 1).await.is_err());
    }

    /// The root's codec is every column chunk's: a local folder's files are
    /// uncompressed, an object store's zstd (here the in-memory store), and
    /// either reads back as the rows written.
    #[tokio::test]
    async fn files_are_compressed_as_the_root_says() {
        use parquet::file::metadata::ParquetMetaDataReader;

        let dir = tempfile::tempdir().expect("tempdir");
        let local = Storage::open(dir.path().to_str().expect("utf8")).expect("local root");
        let memory = Storage::open("memory://").expect("memory root");
        let cases = [
            (local.clone(), Codec::None, Compression::UNCOMPRESSED),
            (memory, Codec::Zstd, Codec::Zstd.parquet()),
            (
                local.with_codec(Codec::Zstd),
                Codec::Zstd,
                Codec::Zstd.parquet(),
            ),
        ];
        let schema = test_schema();
        let rows = batch(&schema, 0, 3000);
        for (storage, codec, compression) in cases {
            assert_eq!(storage.codec(), codec);
            let path = Path::from("t/part-0.parquet");
            write_batches(&storage, &path, schema.clone(), std::slice::from_ref(&rows))
                .await
                .expect("written");
            let bytes = storage
                .store()
                .get(&path)
                .await
                .expect("stored")
                .bytes()
                .await
                .expect("bytes");
            let metadata = ParquetMetaDataReader::new()
                .parse_and_finish(&bytes)
                .expect("footer");
            for c in metadata.row_group(0).columns() {
                assert_eq!(c.compression(), compression, "{}", c.column_path());
            }
            let read = read_batches(&storage, &path).await.expect("read");
            let read = datafusion::arrow::compute::concat_batches(&schema, &read).expect("concat");
            assert_eq!(read, rows);
        }
    }
}
