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

use std::sync::Arc;
use std::time::Duration;

use datafusion::common::{HashMap, TableReference};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::cache::cache_manager::{CachedFileList, ListFilesCache};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::cache::{Cache, CacheEntryInfo, TableScopedPath};
use object_store::path::Path;

use crate::storage::Storage;

/// Room for the listings: a lake of nine tables with a file a day for two
/// years lists in about 2 MiB; the limit only bounds a far larger lake,
/// whose least recently scanned tables are then listed again.
const LIMIT_BYTES: usize = 64 << 20;

/// A [`ListFilesCache`] that keeps the listings of paths under one prefix
/// (the lake's) and none other.
pub struct LakeListings {
    lake: Path,
    kept: DefaultCache<TableScopedPath, CachedFileList>,
}

impl LakeListings {
    /// Keeps listings of paths under `lake` (an object-store path, as
    /// DataFusion keys its listings).
    pub fn under(lake: Path) -> Self {
        LakeListings {
            lake,
            kept: DefaultCache::new(LIMIT_BYTES).with_name("LakeListings"),
        }
    }

    /// The cache for a session over `storage`'s data root.
    pub fn for_storage(storage: &Storage) -> datafusion::error::Result<Arc<ListFilesCache>> {
        let lake = ListingTableUrl::parse(format!("{}lake/", storage.url()))?;
        Ok(Arc::new(Self::under(lake.prefix().clone())))
    }

    fn keeps(&self, key: &TableScopedPath) -> bool {
        key.path.prefix_matches(&self.lake)
    }
}

impl Cache<TableScopedPath, CachedFileList> for LakeListings {
    fn get(&self, key: &TableScopedPath) -> Option<CachedFileList> {
        if self.keeps(key) {
            self.kept.get(key)
        } else {
            None
        }
    }

    fn put(&self, key: &TableScopedPath, value: CachedFileList) -> Option<CachedFileList> {
        if self.keeps(key) {
            self.kept.put(key, value)
        } else {
            None
        }
    }

    fn remove(&self, k: &TableScopedPath) -> Option<CachedFileList> {
        self.kept.remove(k)
    }

    fn contains_key(&self, k: &TableScopedPath) -> bool {
        self.kept.contains_key(k)
    }

    fn len(&self) -> usize {
        self.kept.len()
    }

    fn clear(&self) {
        self.kept.clear()
    }

    fn name(&self) -> String {
        self.kept.name()
    }

    fn cache_limit(&self) -> usize {
        self.kept.cache_limit()
    }

    // DataFusion sets the configured limit (1 MiB unless set) on the
    // runtime's cache: one table's listing alone can exceed that.
    fn update_cache_limit(&self, _limit: usize) {}

    fn cache_ttl(&self) -> Option<Duration> {
        self.kept.cache_ttl()
    }

    fn update_cache_ttl(&self, ttl: Option<Duration>) {
        self.kept.update_cache_ttl(ttl)
    }

    fn drop_table_entries(&self, table_ref: &TableReference) -> datafusion::error::Result<()> {
        self.kept.drop_table_entries(table_ref)
    }

    fn list_entries(&self) -> HashMap<TableScopedPath, CacheEntryInfo<CachedFileList>> {
        self.kept.list_entries()
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
}
