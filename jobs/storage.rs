//! The data root: one object store (local folder, S3, GCS, Azure) and the
//! layout attune keeps in it.
//!
//! Every write is atomic per object: a file becomes visible only when it is
//! complete (local files are staged under a name listings skip and renamed,
//! by object_store or, for Parquet files, by [`crate::staged_file`]; cloud
//! stores publish an upload only when it completes). attune writes
//! exactly one data file per partition, so a partition is always either the
//! old one or the new one, never half-written.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetResultPayload, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;

use crate::parquet_io::Codec;
use crate::{Error, Result};

/// Listings [`Storage::list_many`] keeps under way: enough to keep a disk's
/// or a store's queue busy, few enough to hold little memory.
const LISTINGS_AT_ONCE: usize = 8;

/// Handle on the data root.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    url: Url,
    /// Set when the root is a local folder.
    local: Option<PathBuf>,
    /// The unprefixed store and its base URL, which DataFusion resolves
    /// table URLs against: a remote root's store, or for a local root the
    /// one that maps files ([`crate::mapped_files`]).
    datafusion: (Url, Arc<dyn ObjectStore>),
    /// How the Parquet files written here are compressed.
    codec: Codec,
    /// A local root's store, which names the file an object is.
    files: Option<Arc<crate::mapped_files::MappedFiles>>,
}

impl Storage {
    /// Opens a data root given as a path (`data`, `/srv/attune`) or a URL
    /// (`file:///srv/attune`, `s3://bucket/prefix`, `gs://…`, `az://…`).
    /// A local root is created when missing.
    pub fn open(root: &str) -> Result<Storage> {
        let looks_like_url = root.contains("://");
        if !looks_like_url || root.starts_with("file://") {
            let path = if looks_like_url {
                Url::parse(root)
                    .ok()
                    .and_then(|u| u.to_file_path().ok())
                    .ok_or_else(|| {
                        Error::Config(format!("root `{root}` is not a valid file:// URL"))
                    })?
            } else {
                PathBuf::from(root)
            };
            std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            let path = path.canonicalize().map_err(|e| Error::io(&path, e))?;
            let store = Arc::new(crate::mapped_files::MappedFiles::under_root(path.clone())?);
            let url = Url::from_directory_path(&path)
                .map_err(|_| Error::Config(format!("root `{}` cannot be a URL", path.display())))?;
            let mapped = crate::mapped_files::MappedFiles::new(path.clone());
            return Ok(Storage {
                store: store.clone(),
                url,
                local: Some(path),
                datafusion: (Url::parse("file:///").expect("a URL"), Arc::new(mapped)),
                codec: Codec::None,
                files: Some(store),
            });
        }
        let url = Url::parse(root).map_err(|e| Error::Config(format!("root `{root}`: {e}")))?;
        let options: Vec<(String, String)> = std::env::vars().collect();
        let (store, prefix) = object_store::parse_url_opts(&url, options).map_err(|e| {
            Error::Config(format!(
                "root `{root}`: {e} (s3://, gs:// and az:// need the `cloud` feature and credentials in the environment)"
            ))
        })?;
        let raw: Arc<dyn ObjectStore> = Arc::from(store);
        let store: Arc<dyn ObjectStore> =
            Arc::new(object_store::prefix::PrefixStore::new(raw.clone(), prefix));
        let base = Url::parse(&format!(
            "{}://{}",
            url.scheme(),
            url.host_str().unwrap_or_default()
        ))
        .map_err(|e| Error::Config(format!("root `{root}`: {e}")))?;
        let url = if url.path().ends_with('/') {
            url
        } else {
            Url::parse(&format!("{url}/"))
                .map_err(|e| Error::Config(format!("root `{root}`: {e}")))?
        };
        Ok(Storage {
            store,
            url,
            local: None,
            datafusion: (base, raw),
            codec: Codec::Zstd,
            files: None,
        })
    }

    /// The root `cfg` names, writing Parquet files as its `compression`
    /// says (when unset, as [`Storage::open`] chooses for the root's kind).
    pub fn configured(cfg: &crate::config::ValidConfig) -> Result<Storage> {
        let storage = Storage::open(&cfg.root)?;
        Ok(match cfg.compression {
            Some(codec) => storage.with_codec(codec),
            None => storage,
        })
    }

    /// The same root, writing Parquet files with `codec` instead of the
    /// default for its kind ([`Codec`]: none on a local folder, zstd on an
    /// object store).
    pub fn with_codec(mut self, codec: Codec) -> Storage {
        self.codec = codec;
        self
    }

    /// How the Parquet files written here are compressed.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The same root with an HTTP client of its own, for a thread with its
    /// own runtime (a client's pooled connections are driven by the runtime
    /// that opened them, and one blocked or idle stalls the other's
    /// requests). A local or in-memory root is shared as it is.
    pub fn with_own_client(&self) -> Result<Storage> {
        if self.local.is_some() || self.url.scheme() == "memory" {
            return Ok(self.clone());
        }
        Ok(Storage::open(self.url.as_str())?.with_codec(self.codec))
    }

    /// The object store, rooted at the data root.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The root as a URL (for registering with DataFusion).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The store DataFusion reads the root's table URLs with.
    pub fn datafusion_store(&self) -> (&Url, Arc<dyn ObjectStore>) {
        (&self.datafusion.0, self.datafusion.1.clone())
    }

    /// The local folder, when the root is one.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local.as_deref()
    }

    /// The file an object of a local root is kept in, for writers that
    /// write it themselves ([`crate::staged_file`]); `None` on a remote root.
    pub fn local_file(&self, path: &Path) -> Option<Result<PathBuf>> {
        let files = self.files.as_ref()?;
        Some(files.file_path(path).map_err(Error::from))
    }

    /// Human-readable location of an object, for messages.
    pub fn display(&self, path: &Path) -> String {
        match &self.local {
            Some(root) => root.join(path.as_ref()).display().to_string(),
            None => format!("{}/{}", self.url.as_str().trim_end_matches('/'), path),
        }
    }

    /// Every object under `prefix`, sorted by path (listing order is not
    /// guaranteed by stores, and attune's outputs must be deterministic).
    pub async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        if let Some(frozen) = crate::lake_listings::list_frozen(self, prefix).await {
            return frozen;
        }
        self.list_uncached(prefix).await
    }

    /// [`Storage::list`], from the store whether or not the lake is frozen.
    pub(crate) async fn list_uncached(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        let mut all: Vec<ObjectMeta> = self.store.list(Some(prefix)).try_collect().await?;
        all.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(all)
    }

    /// [`Storage::list`] of each prefix, in the order given, several at
    /// once. Listing a local root stats every file, and a nightly's caches
    /// are often cold: the privacy job's walk of the lake, landing and
    /// quarantine (21K files at a million customers) took 11 s one table
    /// after another with nothing cached, against 1 s warm. An object store
    /// answers one listing page per request, so there too the requests
    /// overlap.
    pub async fn list_many(&self, prefixes: &[Path]) -> Result<Vec<Vec<ObjectMeta>>> {
        // collected first: a lazy map's closure borrows for a lifetime that
        // keeps the nightly from spawning a job that calls this (rustc #102211)
        let listings: Vec<_> = prefixes.iter().map(|p| self.list(p)).collect();
        futures::stream::iter(listings)
            .buffered(LISTINGS_AT_ONCE)
            .try_collect()
            .await
    }

    /// The immediate sub-folders of `prefix` (their last path segment), sorted.
    pub async fn list_dirs(&self, prefix: &Path) -> Result<Vec<String>> {
        let listed = self.store.list_with_delimiter(Some(prefix)).await?;
        let mut dirs: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        dirs.sort();
        Ok(dirs)
    }

    /// Whether anything exists under `prefix`.
    pub async fn exists_prefix(&self, prefix: &Path) -> Result<bool> {
        let listed = self.store.list_with_delimiter(Some(prefix)).await?;
        Ok(!listed.objects.is_empty() || !listed.common_prefixes.is_empty())
    }

    /// Writes a whole object atomically.
    pub async fn put(&self, path: &Path, bytes: Bytes) -> Result<()> {
        self.store.put(path, PutPayload::from_bytes(bytes)).await?;
        Ok(())
    }

    /// Reads a whole object.
    pub async fn get_bytes(&self, path: &Path) -> Result<Bytes> {
        Ok(self.store.get(path).await?.bytes().await?)
    }

    /// Reads an object if it exists.
    pub async fn get_opt(&self, path: &Path) -> Result<Option<Bytes>> {
        match self.store.get(path).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens an object for sequential reading from a blocking thread. Local
    /// files stream from disk; remote objects are fetched whole (one export
    /// file at a time, so memory follows the largest file, not the input).
    /// Unbuffered: its readers (CSV, NDJSON, gzip) buffer what they read,
    /// and a buffer in front of theirs copied every byte once more.
    pub fn open_read(
        &self,
        handle: &tokio::runtime::Handle,
        path: &Path,
    ) -> Result<Box<dyn Read + Send>> {
        let got = handle.block_on(self.store.get(path))?;
        match got.payload {
            GetResultPayload::File(file, _) => Ok(Box::new(file)),
            GetResultPayload::Stream(_) => {
                let bytes = handle.block_on(self.get_bytes(path))?;
                Ok(Box::new(std::io::Cursor::new(bytes)))
            }
        }
    }

    /// The metadata of one object, if it exists.
    pub async fn head_opt(&self, path: &Path) -> Result<Option<ObjectMeta>> {
        match self.store.head(path).await {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes every object under `prefix` (a folder), in path order, and
    /// returns how many there were. Not atomic across objects: callers that
    /// need a folder to vanish as one unit record their intent first (see
    /// `privacy::retention`) so a re-run finishes an interrupted delete.
    pub async fn delete_prefix(&self, prefix: &Path) -> Result<u64> {
        let objects = self.list(prefix).await?;
        for meta in &objects {
            self.delete(&meta.location).await?;
        }
        // A local folder would otherwise stay behind empty and still look like
        // a partition to listings (object stores have no folders to remove).
        if let Some(root) = &self.local {
            remove_empty_dirs(&root.join(prefix.as_ref()));
        }
        Ok(objects.len() as u64)
    }

    /// Moves `from` to `to`, replacing what was there: a rename on a local
    /// root (readers see the old file or the new one), a server-side copy
    /// and delete on object stores (each object is replaced whole).
    pub async fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        Ok(self.store.rename(from, to).await?)
    }

    /// Deletes one object; a missing object is not an error (deletes are retried after crashes).
    pub async fn delete(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Removes `dir` and its sub-folders if they hold no files; errors mean
/// "not empty" or "already gone", both fine.
fn remove_empty_dirs(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                remove_empty_dirs(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// `<area>/<table>/dt=<date>/` — the partition folder of a table.
pub fn partition_dir(area: &str, table: &str, date: chrono::NaiveDate) -> Path {
    Path::from(format!("{area}/{table}/dt={date}"))
}

/// The one data file of a partition.
pub fn partition_file(area: &str, table: &str, date: chrono::NaiveDate) -> Path {
    Path::from(format!("{area}/{table}/dt={date}/part-0.parquet"))
}

/// `landing/<table>/<date>/`.
pub fn landing_dir(table: &str, date: chrono::NaiveDate) -> Path {
    Path::from(format!("landing/{table}/{date}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_root_roundtrip_and_sorted_listing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::open(dir.path().to_str().expect("utf8 path")).expect("open");
        for name in ["b/2.txt", "b/1.txt", "a/x.txt"] {
            s.put(&Path::from(name), Bytes::from_static(b"hi"))
                .await
                .expect("put");
        }
        let names: Vec<String> = s
            .list(&Path::from("b"))
            .await
            .expect("list")
            .into_iter()
            .map(|m| m.location.to_string())
            .collect();
        assert_eq!(names, vec!["b/1.txt", "b/2.txt"]);
        assert_eq!(
            s.list_dirs(&Path::from("")).await.expect("dirs"),
            vec!["a", "b"]
        );
        assert_eq!(
            s.get_bytes(&Path::from("a/x.txt")).await.expect("get"),
            Bytes::from_static(b"hi")
        );
        assert_eq!(
            s.delete_prefix(&Path::from("b"))
                .await
                .expect("delete_prefix"),
            2
        );
        assert!(!s.exists_prefix(&Path::from("b")).await.expect("exists"));
        assert!(
            !dir.path().join("b").exists(),
            "no empty folder left behind"
        );
        s.delete(&Path::from("a/x.txt")).await.expect("delete");
        s.delete(&Path::from("a/x.txt"))
            .await
            .expect("delete twice is fine");
        assert!(
            s.get_opt(&Path::from("a/x.txt"))
                .await
                .expect("get_opt")
                .is_none()
        );
    }

    /// More prefixes than listings at once, of uneven sizes and one empty:
    /// each answer is that prefix's own sorted listing, in the order asked.
    #[tokio::test]
    async fn many_listings_at_once_answer_in_the_order_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::open(dir.path().to_str().expect("utf8 path")).expect("open");
        let tables = LISTINGS_AT_ONCE * 2 + 3;
        for t in 0..tables {
            for f in 0..(t * 7) % 11 {
                s.put(
                    &Path::from(format!("t{t}/dt=2025-01-0{}/f{f}.parquet", f % 3 + 1)),
                    Bytes::from_static(b"x"),
                )
                .await
                .expect("put");
            }
        }
        let prefixes: Vec<Path> = (0..tables)
            .rev()
            .map(|t| Path::from(format!("t{t}")))
            .collect();
        let many = s.list_many(&prefixes).await.expect("list_many");
        assert_eq!(many.len(), prefixes.len());
        for (prefix, listed) in prefixes.iter().zip(&many) {
            let one = s.list(prefix).await.expect("list");
            let names =
                |v: &[ObjectMeta]| v.iter().map(|m| m.location.to_string()).collect::<Vec<_>>();
            assert_eq!(names(listed), names(&one), "{prefix}");
        }
        assert!(
            many.iter().any(Vec::is_empty),
            "an empty prefix is an empty listing"
        );
    }

    #[test]
    fn file_urls_and_paths_open_the_same_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = Url::from_directory_path(dir.path())
            .expect("url")
            .to_string();
        let a = Storage::open(&url).expect("url root");
        let b = Storage::open(dir.path().to_str().expect("utf8")).expect("path root");
        assert_eq!(a.local_root(), b.local_root());
        assert!(Storage::open("file://not a url").is_err());
    }
}
