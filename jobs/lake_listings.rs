//! The lake's file listings, kept for a DataFusion session's life.
//!
//! DataFusion 55 caches listings per runtime with no expiry, which attune
//! cannot use as is: a job rewrites its marts and reads them back in the
//! same session, and a cached listing would give the new file the old size
//! (so attune's sessions had the cache off, and listed every table's files
//! at every scan). The lake, though, does not change while a job after
//! ingest runs: only ingest, retention and erasure write it, and none of
//! them reads it through a session. Listing the two years of an incremental
//! night's lake once per scan was 405K `statx` and 161K `getdents64` calls
//! in the transform alone. So a session keeps the listings of tables under
//! `lake/` and lists everything else (marts, quarantine) afresh.
//!
//! The routing of the lake's paths apart ([`LakeRouted`]) serves the
//! process's shared footers and statistics too (`lake_footers`).
//!
//! # A frozen lake
//! A nightly's jobs after ingest each open sessions of their own (about
//! two dozen in an incremental night at a million customers), and each
//! listed the lake's 7,310 files again: 1.03M `statx`, 403K `getdents64`
//! and 227K `openat` calls in one night, about 3 CPU-seconds, with
//! attune's own walks of the whole lake (stamps, provenance digests, the
//! privacy scan). Between its lake writers the nightly holds a
//! [`FrozenLake`]: while it is held, every session over that root shares
//! one listing cache for the lake, and [`Storage::list`] answers prefixes
//! under `lake/` from one walk. A job that writes the lake thaws its
//! root's lake before it writes ([`thaw`]), so nothing it writes is listed
//! from before.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use datafusion::common::{HashMap, TableReference};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::cache::cache_manager::{CachedFileList, ListFilesCache};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::cache::{Cache, CacheEntryInfo, CacheKey, CacheValue, TableScopedPath};
use object_store::ObjectMeta;
use object_store::path::Path;

use crate::storage::Storage;

/// Room for the listings: a lake of nine tables with a file a day for two
/// years lists in about 2 MiB; the limit only bounds a far larger lake,
/// whose least recently scanned tables are then listed again.
const LIMIT_BYTES: usize = 64 << 20;

/// The [`ListFilesCache`] of a session over a data root: it keeps the
/// listings of paths under the lake and none other.
pub struct LakeListings;

impl LakeListings {
    /// The cache for a session over `storage`'s data root: the frozen
    /// lake's, shared, while one is held for the root ([`FrozenLake`]),
    /// else the session's own.
    pub fn for_storage(storage: &Storage) -> datafusion::error::Result<Arc<ListFilesCache>> {
        let lake = match frozen(storage) {
            Some(f) => Arc::clone(&f.listings),
            None => Arc::new(DefaultCache::new(LIMIT_BYTES).with_name("LakeListings")),
        };
        Ok(Arc::new(LakeRouted {
            prefix: lake_prefix(storage)?,
            lake,
            elsewhere: None,
        }))
    }
}

/// The listings of one root's lake, shared while it is frozen.
struct Frozen {
    root: String,
    listings: Arc<DefaultCache<TableScopedPath, CachedFileList>>,
    /// [`Storage::list`] of `lake/`, sorted, once asked for.
    walked: tokio::sync::Mutex<Option<Arc<Vec<ObjectMeta>>>>,
}

/// The frozen lakes of this process, by root.
static FROZEN: Mutex<Vec<Arc<Frozen>>> = Mutex::new(Vec::new());

fn frozen_lakes() -> std::sync::MutexGuard<'static, Vec<Arc<Frozen>>> {
    FROZEN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A root's identity in [`FROZEN`]: its URL, unless the root is in memory
/// (every such root has the same URL, and none is large).
fn root_key(storage: &Storage) -> Option<String> {
    (storage.url().scheme() != "memory").then(|| storage.url().to_string())
}

fn frozen(storage: &Storage) -> Option<Arc<Frozen>> {
    let root = root_key(storage)?;
    (frozen_lakes().iter().find(|f| f.root == root)).cloned()
}

/// Held while no job writes a root's lake (the nightly's jobs after
/// ingest): its sessions and listings share one listing of the lake.
/// Dropping it, or a job that writes the root's lake beginning ([`thaw`]),
/// ends that.
#[derive(Debug)]
pub struct FrozenLake {
    root: Option<String>,
}

impl FrozenLake {
    /// Freezes `storage`'s lake (not an in-memory root's) until dropped.
    pub fn begin(storage: &Storage) -> FrozenLake {
        let root = root_key(storage);
        if let Some(root) = &root {
            let mut lakes = frozen_lakes();
            lakes.retain(|f| &f.root != root);
            lakes.push(Arc::new(Frozen {
                root: root.clone(),
                listings: Arc::new(DefaultCache::new(LIMIT_BYTES).with_name("FrozenLakeListings")),
                walked: tokio::sync::Mutex::new(None),
            }));
        }
        FrozenLake { root }
    }
}

impl Drop for FrozenLake {
    fn drop(&mut self) {
        if let Some(root) = &self.root {
            frozen_lakes().retain(|f| &f.root != root);
        }
    }
}

/// Ends the freeze of `storage`'s lake, if any: called by every job that
/// writes the lake (ingest, retention, `attune forget`) before it writes,
/// so no listing from before its writes is used after them.
pub fn thaw(storage: &Storage) {
    if let Some(root) = root_key(storage) {
        frozen_lakes().retain(|f| f.root != root);
    }
}

/// [`Storage::list`] of `prefix` from the frozen lake's one walk, when the
/// root's lake is frozen and `prefix` is in it; `None` otherwise.
pub async fn list_frozen(
    storage: &Storage,
    prefix: &Path,
) -> Option<crate::Result<Vec<ObjectMeta>>> {
    let lake = Path::from("lake");
    if !prefix.prefix_matches(&lake) {
        return None;
    }
    let f = frozen(storage)?;
    let mut walked = f.walked.lock().await;
    let all = match &*walked {
        Some(all) => Arc::clone(all),
        None => match storage.list_uncached(&lake).await {
            Ok(all) => Arc::clone(walked.insert(Arc::new(all))),
            Err(e) => return Some(Err(e)),
        },
    };
    Some(Ok((all.iter())
        .filter(|m| m.location.prefix_matches(prefix))
        .cloned()
        .collect()))
}

/// The lake's folder of `storage` as an object-store path, as DataFusion
/// keys its caches.
pub fn lake_prefix(storage: &Storage) -> datafusion::error::Result<Path> {
    Ok(ListingTableUrl::parse(format!("{}lake/", storage.url()))?
        .prefix()
        .clone())
}

/// A cache key that names a file or folder.
pub trait FileKey: CacheKey {
    fn file(&self) -> &Path;
}

impl FileKey for TableScopedPath {
    fn file(&self) -> &Path {
        &self.path
    }
}

impl FileKey for Path {
    fn file(&self) -> &Path {
        self
    }
}

/// A cache whose entries for paths under the lake go to `lake` (the
/// session's own, or one the process shares: see `lake_footers`) and the
/// others to `elsewhere`, or nowhere without it. What DataFusion sizes,
/// lists and clears is the session's part: `elsewhere` when there is one,
/// else `lake`; the lake's room is attune's to set.
pub struct LakeRouted<K: FileKey, V: CacheValue> {
    pub prefix: Path,
    pub lake: Arc<DefaultCache<K, V>>,
    pub elsewhere: Option<DefaultCache<K, V>>,
}

impl<K: FileKey, V: CacheValue> LakeRouted<K, V> {
    fn for_key(&self, key: &K) -> Option<&DefaultCache<K, V>> {
        if key.file().prefix_matches(&self.prefix) {
            Some(&self.lake)
        } else {
            self.elsewhere.as_ref()
        }
    }

    fn session_part(&self) -> &DefaultCache<K, V> {
        self.elsewhere.as_ref().unwrap_or(&self.lake)
    }
}

impl<K: FileKey, V: CacheValue> Cache<K, V> for LakeRouted<K, V> {
    fn get(&self, key: &K) -> Option<V> {
        self.for_key(key)?.get(key)
    }

    fn put(&self, key: &K, value: V) -> Option<V> {
        self.for_key(key)?.put(key, value)
    }

    fn remove(&self, k: &K) -> Option<V> {
        self.for_key(k)?.remove(k)
    }

    fn contains_key(&self, k: &K) -> bool {
        self.for_key(k).is_some_and(|c| c.contains_key(k))
    }

    fn len(&self) -> usize {
        self.session_part().len()
    }

    fn clear(&self) {
        self.session_part().clear()
    }

    fn name(&self) -> String {
        self.session_part().name()
    }

    fn cache_limit(&self) -> usize {
        self.session_part().cache_limit()
    }

    // DataFusion sets the configured limit (for listings 1 MiB unless set,
    // which one table's listing alone can exceed) on the runtime's caches.
    fn update_cache_limit(&self, limit: usize) {
        if let Some(own) = &self.elsewhere {
            own.update_cache_limit(limit)
        }
    }

    fn cache_ttl(&self) -> Option<Duration> {
        self.session_part().cache_ttl()
    }

    fn update_cache_ttl(&self, ttl: Option<Duration>) {
        self.session_part().update_cache_ttl(ttl)
    }

    fn drop_table_entries(&self, table_ref: &TableReference) -> datafusion::error::Result<()> {
        self.session_part().drop_table_entries(table_ref)
    }

    fn list_entries(&self) -> HashMap<K, CacheEntryInfo<V>> {
        self.session_part().list_entries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{new_session, register};
    use crate::parquet_io::write_batches;
    use crate::storage::partition_file;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::SessionContext;

    async fn write_day(storage: &Storage, area: &str, day: u32) {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let rows = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![i64::from(day)]))],
        )
        .expect("batch");
        let date = chrono::NaiveDate::from_ymd_opt(2025, 3, day).expect("date");
        write_batches(storage, &partition_file(area, "t", date), schema, &[rows])
            .await
            .expect("write");
    }

    async fn rows(ctx: &SessionContext, table: &str) -> i64 {
        crate::catalog::first_row_ints(ctx, &format!("SELECT count(*) FROM {table}")).await[0]
    }

    /// A session lists a lake table once and a mart at every scan: the mart
    /// it rewrote reads back whole, the lake (which only ingest, retention
    /// and erasure write, outside any session) from the listing it began
    /// with. A space in the root checks that the cache's prefix and
    /// DataFusion's table paths are spelled alike.
    #[tokio::test]
    async fn a_session_keeps_the_lakes_listings_and_lists_marts_afresh() {
        let dir = tempfile::Builder::new()
            .prefix("attune root")
            .tempdir()
            .expect("tmp");
        let storage = Storage::open(dir.path().to_str().expect("utf8")).expect("open");
        for area in ["lake", "marts"] {
            write_day(&storage, area, 1).await;
        }
        let ctx = new_session(&storage);
        register(&ctx, &storage, "lake", "t", "lake_t")
            .await
            .expect("register");
        register(&ctx, &storage, "marts", "t", "mart_t")
            .await
            .expect("register");
        assert_eq!(rows(&ctx, "lake_t").await, 1);
        assert_eq!(rows(&ctx, "mart_t").await, 1);

        for area in ["lake", "marts"] {
            write_day(&storage, area, 2).await;
        }
        assert_eq!(rows(&ctx, "mart_t").await, 2, "a mart is listed afresh");
        assert_eq!(rows(&ctx, "lake_t").await, 1, "the lake's listing is kept");
        let cache = (ctx.runtime_env().cache_manager.get_list_files_cache()).expect("a cache");
        let kept: Vec<String> = (cache.list_entries().into_keys())
            .map(|k| k.path.to_string())
            .collect();
        // the table, and the newest partition its schema was read from
        assert!(kept.iter().any(|p| p.ends_with("/lake/t")), "{kept:?}");
        assert!(kept.iter().all(|p| p.contains("/lake/t")), "{kept:?}");

        let next = new_session(&storage);
        register(&next, &storage, "lake", "t", "lake_t")
            .await
            .expect("register");
        assert_eq!(rows(&next, "lake_t").await, 2, "a new session lists anew");
    }

    async fn session_over(storage: &Storage) -> SessionContext {
        let ctx = new_session(storage);
        for (area, name) in [("lake", "lake_t"), ("marts", "mart_t")] {
            register(&ctx, storage, area, "t", name)
                .await
                .expect("register");
        }
        ctx
    }

    async fn listed(storage: &Storage, area: &str) -> usize {
        (storage.list(&Path::from(format!("{area}/t"))).await)
            .expect("list")
            .len()
    }

    /// While a root's lake is frozen, every new session and
    /// `Storage::list` see the lake as first listed (a file written since
    /// is not listed) and marts as they are; another root is not frozen
    /// with it. After a thaw (a lake writer beginning) both list anew.
    #[tokio::test]
    async fn a_frozen_lake_is_listed_once_for_every_session_until_thawed() {
        let dirs: Vec<_> = (0..2)
            .map(|_| (tempfile::Builder::new().prefix("attune root").tempdir()).expect("tmp"))
            .collect();
        let open = |d: &tempfile::TempDir| Storage::open(d.path().to_str().expect("utf8"));
        let (storage, other) = (open(&dirs[0]).expect("open"), open(&dirs[1]).expect("open"));
        for s in [&storage, &other] {
            for area in ["lake", "marts"] {
                write_day(s, area, 1).await;
            }
        }
        let frozen = FrozenLake::begin(&storage);
        assert_eq!(rows(&session_over(&storage).await, "lake_t").await, 1);
        assert_eq!(listed(&storage, "lake").await, 1);
        for s in [&storage, &other] {
            for area in ["lake", "marts"] {
                write_day(s, area, 2).await;
            }
        }
        let next = session_over(&storage).await;
        assert_eq!(rows(&next, "lake_t").await, 1, "the frozen listing");
        assert_eq!(rows(&next, "mart_t").await, 2, "a mart is listed afresh");
        assert_eq!(listed(&storage, "lake").await, 1, "the frozen walk");
        assert_eq!(listed(&storage, "marts").await, 2);
        assert_eq!(rows(&session_over(&other).await, "lake_t").await, 2);
        assert_eq!(
            listed(&other, "lake").await,
            2,
            "another root is not frozen"
        );

        thaw(&storage);
        assert_eq!(rows(&session_over(&storage).await, "lake_t").await, 2);
        assert_eq!(listed(&storage, "lake").await, 2);
        drop(frozen);
        assert_eq!(listed(&storage, "lake").await, 2);
    }

    /// Every in-memory root has the same URL: none is frozen.
    #[tokio::test]
    async fn an_in_memory_lake_is_never_frozen() {
        let storage = Storage::open("memory:///").expect("open");
        write_day(&storage, "lake", 1).await;
        let _frozen = FrozenLake::begin(&storage);
        assert_eq!(listed(&storage, "lake").await, 1);
        write_day(&storage, "lake", 2).await;
        assert_eq!(listed(&storage, "lake").await, 2);
    }
}
