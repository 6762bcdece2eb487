//! The lake files' Parquet footers and statistics, decoded once per process.
//!
//! DataFusion keeps both per runtime, and attune makes a runtime per
//! session: each job of a night, and each session within a job, read the
//! footer of every lake file it scanned again and turned its row groups'
//! statistics into the file's statistics again (at a million customers the
//! lake is 7,310 files; planning alone, the statistics of every file of
//! every scan, was 8-10% of an incremental transform's CPU in `perf`).
//! The lake does not change while the jobs after ingest read it, and
//! DataFusion uses an entry only for a file of the same size and
//! modification time as the one it was read from (its own check, per file,
//! against the listing), so entries for files under `lake/` go to one cache
//! that every session of the process shares (emptied when a job that
//! writes the lake starts and ends). Marts, which a job rewrites and reads
//! back within a second, keep a cache per session as before.

use std::sync::{Arc, OnceLock};

use datafusion::execution::cache::cache_manager::{
    CachedFileMetadata, CachedFileMetadataEntry, FileMetadataCache, FileStatisticsCache,
};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::cache::{Cache, CacheValue, TableScopedPath};
use object_store::path::Path;

use crate::lake_listings::{FileKey, LakeRouted, lake_prefix};
use crate::storage::Storage;

/// Room for the statistics of every lake file: a file's statistics (a
/// minimum, maximum and null count per column) take a few KiB, about 20 MiB
/// for the 7,310 files of two years at a million customers. A larger lake
/// decodes its least recently scanned files' statistics again.
const STATISTICS_BYTES: usize = 64 << 20;

/// Room for the lake files' footers, with their page indexes.
const FOOTER_BYTES: usize = 128 << 20;

fn shared_statistics() -> Arc<DefaultCache<TableScopedPath, CachedFileMetadata>> {
    static CACHE: OnceLock<Arc<DefaultCache<TableScopedPath, CachedFileMetadata>>> =
        OnceLock::new();
    Arc::clone(
        CACHE.get_or_init(|| {
            Arc::new(DefaultCache::new(STATISTICS_BYTES).with_name("LakeStatistics"))
        }),
    )
}

fn shared_footers() -> Arc<DefaultCache<Path, CachedFileMetadataEntry>> {
    static CACHE: OnceLock<Arc<DefaultCache<Path, CachedFileMetadataEntry>>> = OnceLock::new();
    Arc::clone(
        CACHE.get_or_init(|| Arc::new(DefaultCache::new(FOOTER_BYTES).with_name("LakeFooters"))),
    )
}

/// A session's cache of file statistics over `storage`'s data root, with
/// `own_bytes` for the files outside the lake.
pub fn statistics_for(
    storage: &Storage,
    own_bytes: usize,
) -> datafusion::error::Result<Arc<FileStatisticsCache>> {
    Ok(Arc::new(shared_with(
        storage,
        shared_statistics(),
        own_bytes,
    )?))
}

/// A session's cache of Parquet footers over `storage`'s data root, with
/// `own_bytes` for the files outside the lake.
pub fn footers_for(
    storage: &Storage,
    own_bytes: usize,
) -> datafusion::error::Result<Arc<FileMetadataCache>> {
    Ok(Arc::new(shared_with(storage, shared_footers(), own_bytes)?))
}

/// Jobs that write lake files.
pub const LAKE_WRITERS: [&str; 3] = ["ingest", "forget", "retention"];

/// Drops every shared entry: a file that a job rewrites could match an
/// entry's size and modification time on a file system whose timestamps
/// are coarser than the time between two writes.
pub fn forget() {
    shared_statistics().clear();
    shared_footers().clear();
}

/// Held by a job that writes lake files ([`crate::manifest::JobTimer`]):
/// the shared caches are emptied when it begins and when it is dropped.
#[derive(Debug)]
pub struct LakeWrites(());

impl LakeWrites {
    /// `Some` for a job of [`LAKE_WRITERS`].
    pub fn begin(job: &str) -> Option<LakeWrites> {
        LAKE_WRITERS.contains(&job).then(|| {
            forget();
            LakeWrites(())
        })
    }
}

impl Drop for LakeWrites {
    fn drop(&mut self) {
        forget();
    }
}

/// Bytes held by the shared caches: (statistics, footers).
pub fn shared_bytes() -> (usize, usize) {
    (
        shared_statistics().memory_used(),
        shared_footers().memory_used(),
    )
}

/// A session's cache over `storage`: lake entries in `shared`, the others
/// in `own_bytes` of its own.
fn shared_with<K: FileKey, V: CacheValue>(
    storage: &Storage,
    shared: Arc<DefaultCache<K, V>>,
    own_bytes: usize,
) -> datafusion::error::Result<LakeRouted<K, V>> {
    Ok(LakeRouted {
        prefix: lake_prefix(storage)?,
        lake: shared,
        elsewhere: Some(DefaultCache::new(own_bytes)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::register;
    use crate::parquet_io::write_batches;
    use crate::storage::partition_file;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::execution::cache::SchemaFingerprint;
    use datafusion::execution::cache::cache_manager::CacheManagerConfig;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    type Statistics = DefaultCache<TableScopedPath, CachedFileMetadata>;
    type Footers = DefaultCache<Path, CachedFileMetadataEntry>;

    async fn write_rows(storage: &Storage, area: &str, rows: i64) {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..rows))],
        )
        .expect("batch");
        let date = chrono::NaiveDate::from_ymd_opt(2025, 3, 1).expect("date");
        write_batches(storage, &partition_file(area, "t", date), schema, &[batch])
            .await
            .expect("write");
    }

    /// A data root (with a space in its name: the lake's prefix and
    /// DataFusion's paths must be spelled alike) whose lake and marts hold
    /// a table of `lake` and `marts` rows, and two caches to share.
    async fn root(
        lake: i64,
        marts: i64,
    ) -> (tempfile::TempDir, Storage, Arc<Statistics>, Arc<Footers>) {
        let dir = tempfile::Builder::new()
            .prefix("attune root")
            .tempdir()
            .expect("tmp");
        let storage = Storage::open(dir.path().to_str().expect("utf8")).expect("open");
        write_rows(&storage, "lake", lake).await;
        write_rows(&storage, "marts", marts).await;
        let statistics = Arc::new(Statistics::new(1 << 20));
        let footers = Arc::new(Footers::new(1 << 20));
        (dir, storage, statistics, footers)
    }

    /// A session over `storage` whose lake entries go to `statistics` and
    /// `footers` instead of the process's, so that no other test's job
    /// empties them meanwhile.
    fn session(
        storage: &Storage,
        statistics: &Arc<Statistics>,
        footers: &Arc<Footers>,
    ) -> SessionContext {
        let statistics: Arc<FileStatisticsCache> =
            Arc::new(shared_with(storage, Arc::clone(statistics), 1 << 20).expect("cache"));
        let footers: Arc<FileMetadataCache> =
            Arc::new(shared_with(storage, Arc::clone(footers), 1 << 20).expect("cache"));
        let caches = CacheManagerConfig::default()
            .with_file_statistics_cache(Some(statistics))
            .with_file_metadata_cache(Some(footers));
        let runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(caches)
            .build_arc()
            .expect("runtime");
        SessionContext::new_with_config_rt(SessionConfig::new(), runtime)
    }

    async fn registered(ctx: &SessionContext, storage: &Storage) {
        for (area, name) in [("lake", "lake_t"), ("marts", "mart_t")] {
            register(ctx, storage, area, "t", name)
                .await
                .expect("register");
        }
    }

    async fn sum(ctx: &SessionContext, table: &str) -> i64 {
        crate::catalog::first_row_ints(ctx, &format!("SELECT sum(a) FROM {table}")).await[0]
    }

    fn hits_under<K: FileKey, V: CacheValue>(cache: &DefaultCache<K, V>, area: &str) -> Vec<usize> {
        let part = format!("/{area}/t/dt=2025-03-01/part-0.parquet");
        cache
            .list_entries()
            .into_iter()
            .filter(|(k, _)| k.file().as_ref().ends_with(&part))
            .map(|(_, info)| info.hits)
            .collect()
    }

    /// A lake file's statistics and footer, read by one session, serve the
    /// next; a mart's stay with the session that read them.
    #[tokio::test]
    async fn sessions_share_the_lakes_statistics_and_footers_not_the_marts() {
        let (_dir, storage, statistics, footers) = root(3, 4).await;

        let first = session(&storage, &statistics, &footers);
        registered(&first, &storage).await;
        assert_eq!(
            (sum(&first, "lake_t").await, sum(&first, "mart_t").await),
            (3, 6)
        );
        assert_eq!(hits_under(&statistics, "lake"), vec![0], "computed once");
        assert!(
            hits_under(&statistics, "marts").is_empty(),
            "a mart's are the session's"
        );
        assert_eq!(hits_under(&footers, "lake").len(), 1);
        assert!(hits_under(&footers, "marts").is_empty());

        let second = session(&storage, &statistics, &footers);
        registered(&second, &storage).await;
        assert_eq!(
            (sum(&second, "lake_t").await, sum(&second, "mart_t").await),
            (3, 6)
        );
        assert_eq!(
            hits_under(&statistics, "lake"),
            vec![1],
            "the first session's, reused"
        );
        assert!(hits_under(&footers, "lake")[0] >= 1, "the footer read once");
    }

    /// An entry is for the file it was read from: the lake file written
    /// again (another size) is read anew by the next session. (A session
    /// keeps the listing of the lake it began with, see `lake_listings`.)
    #[tokio::test]
    async fn a_lake_file_written_again_is_read_again() {
        let (_dir, storage, statistics, footers) = root(3, 1).await;
        let first = session(&storage, &statistics, &footers);
        registered(&first, &storage).await;
        assert_eq!(sum(&first, "lake_t").await, 3);

        write_rows(&storage, "lake", 300).await;
        let second = session(&storage, &statistics, &footers);
        registered(&second, &storage).await;
        assert_eq!(sum(&second, "lake_t").await, 299 * 300 / 2);
    }

    /// A job that writes the lake empties the process's caches when it
    /// begins and when it ends; the others leave them.
    #[test]
    fn a_job_that_writes_the_lake_empties_the_shared_caches() {
        let key = TableScopedPath {
            table: None,
            path: Path::from(format!(
                "lake-footers-test-{}/lake/t/x.parquet",
                std::process::id()
            )),
        };
        let entry = || {
            CachedFileMetadata::new(
                object_store::ObjectMeta {
                    location: key.path.clone(),
                    last_modified: chrono::Utc::now(),
                    size: 1,
                    e_tag: None,
                    version: None,
                },
                Arc::new(SchemaFingerprint::from_schema(&Schema::empty())),
                Arc::new(datafusion::common::Statistics::new_unknown(&Schema::empty())),
                None,
            )
        };
        assert!(LakeWrites::begin("transform").is_none());
        shared_statistics().put(&key, entry());
        let writes = LakeWrites::begin("ingest").expect("ingest writes the lake");
        assert!(
            !shared_statistics().contains_key(&key),
            "emptied as it begins"
        );
        shared_statistics().put(&key, entry());
        drop(writes);
        assert!(!shared_statistics().contains_key(&key), "and as it ends");
    }
}
