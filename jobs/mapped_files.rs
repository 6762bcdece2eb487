//! The local root as DataFusion reads it: column chunks are read by
//! mapping the file, not by copying it.
//!
//! object_store's `LocalFileSystem` reads each range into a new buffer: it
//! zeroes the buffer, has the kernel copy the page cache into it, and does
//! so on a blocking thread. With the lake's files uncompressed (see
//! [`crate::parquet_io::Codec`]) the empathy job alone read 1.36 GB that
//! way at a million customers, and the kernel's copy was 5.9% of its CPU.
//! A mapping hands the decoder the page cache's own pages. A read of one
//! range or of a whole file (`get_range`, `get`) is mapped too: in
//! object_store 0.13 those go through `get_opts`, whose buffer was the
//! same zeroed copy (the voice job's earlier night of 555 MB, read row
//! group by row group; the footers DataFusion reads one range at a time).
//! Everything else (listing, writing, renaming) is the `LocalFileSystem`'s.
//!
//! Only attune's own Parquet files are mapped: files under the root, not
//! under `landing/` (the business's exports, which its tools may still be
//! writing), named `*.parquet`. Anything else is read as
//! `LocalFileSystem` reads it. Storage's own reads go through a prefixed
//! [`MappedFiles::under_root`], DataFusion's through
//! [`MappedFiles::new`].
//!
//! A mapped file that another program truncates while it is read would
//! stop the process (SIGBUS). attune never changes a file in place: every
//! write goes to a new file that is then renamed over the old one, whose
//! pages stay valid for as long as they are mapped; the run lock keeps
//! other runs out. Nothing else should write under the root while attune
//! reads it. Only files under the root are mapped: a table an analyst
//! declares elsewhere (`CREATE EXTERNAL TABLE … LOCATION`) is read as
//! `LocalFileSystem` reads it.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

/// `LocalFileSystem` whose reads map attune's Parquet files under `root`.
#[derive(Debug)]
pub struct MappedFiles {
    files: Arc<LocalFileSystem>,
    root: PathBuf,
}

impl MappedFiles {
    /// For the data root at `root` (an absolute, canonical path, as
    /// `Storage::open` makes it), unprefixed: DataFusion's table URLs are
    /// absolute `file://` paths.
    pub fn new(root: PathBuf) -> MappedFiles {
        MappedFiles {
            files: Arc::new(LocalFileSystem::new()),
            root,
        }
    }

    /// For the data root at `root`, with paths relative to it, as
    /// `Storage` names objects.
    pub fn under_root(root: PathBuf) -> object_store::Result<MappedFiles> {
        Ok(MappedFiles {
            files: Arc::new(LocalFileSystem::new_with_prefix(&root)?),
            root,
        })
    }

    /// The file `location` is.
    pub fn file_path(&self, location: &Path) -> object_store::Result<PathBuf> {
        self.files.path_to_filesystem(location)
    }

    /// Whether `path` is one of attune's own Parquet files, which it
    /// replaces only by renaming a new file over them (module
    /// documentation).
    fn mappable(&self, path: &std::path::Path) -> bool {
        path.starts_with(&self.root)
            && !path.starts_with(self.root.join("landing"))
            && path.extension().is_some_and(|e| e == "parquet")
    }

    /// The whole file `file` (at `path`) as one mapping, when it is
    /// [`mappable`](Self::mappable) and can be mapped.
    fn map_whole(&self, file: &std::fs::File, path: &std::path::Path) -> Option<Bytes> {
        if !self.mappable(path) {
            return None;
        }
        // SAFETY: the mapping is read-only and attune replaces files by
        // renaming new ones over them, never by changing them in place
        // (module documentation); the mapping keeps the file's pages.
        match unsafe { memmap2::Mmap::map(file) } {
            Ok(map) => Some(Bytes::from_owner(map)),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "not mapped: read instead");
                None
            }
        }
    }

    /// `ranges` of the file at `path`, each a view of one mapping; `None`
    /// when the file is not [`mappable`](Self::mappable) or cannot be
    /// mapped, so that the caller reads it as `LocalFileSystem` does.
    fn mapped(
        &self,
        path: &std::path::Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Option<Vec<Bytes>>> {
        if !self.mappable(path) {
            return Ok(None);
        }
        let file = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => object_store::Error::NotFound {
                path: path.display().to_string(),
                source: e.into(),
            },
            _ => object_store::Error::Generic {
                store: "MappedFiles",
                source: format!("{}: {e}", path.display()).into(),
            },
        })?;
        let Some(whole) = self.map_whole(&file, path) else {
            return Ok(None);
        };
        let len = whole.len() as u64;
        ranges
            .iter()
            .map(|r| {
                if r.start > r.end || r.end > len {
                    return Err(object_store::Error::Generic {
                        store: "MappedFiles",
                        source: format!(
                            "{}: bytes {}..{} asked of a file of {len}",
                            path.display(),
                            r.start,
                            r.end
                        )
                        .into(),
                    });
                }
                Ok(whole.slice(r.start as usize..r.end as usize))
            })
            .collect::<object_store::Result<Vec<Bytes>>>()
            .map(Some)
    }
}

impl fmt::Display for MappedFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MappedFiles({})", self.files)
    }
}

#[async_trait::async_trait]
impl ObjectStore for MappedFiles {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.files.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.files.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        // LocalFileSystem opens the file, checks the preconditions and the
        // range and fills in the metadata; only its read is replaced
        let head = options.head;
        let mut got = self.files.get_opts(location, options).await?;
        if head {
            return Ok(got);
        }
        if let GetResultPayload::File(file, path) = &got.payload
            && let Some(whole) = self.map_whole(file, path)
            && let (Ok(start), Ok(end)) = (
                usize::try_from(got.range.start),
                usize::try_from(got.range.end),
            )
            && start <= end
            && end <= whole.len()
        {
            let range = whole.slice(start..end);
            got.payload =
                GetResultPayload::Stream(futures::stream::once(async { Ok(range) }).boxed());
        }
        Ok(got)
    }

    /// Mapping a file is a system call that does not wait for the disk
    /// (the pages come in as the decoder touches them), so it runs on the
    /// caller's thread rather than a blocking one.
    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let path = self.files.path_to_filesystem(location)?;
        match self.mapped(&path, ranges)? {
            Some(bytes) => Ok(bytes),
            None => self.files.get_ranges(location, ranges).await,
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.files.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.files.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.files.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.files.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.files.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.files.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    fn one(r: Range<u64>) -> [Range<u64>; 1] {
        [r]
    }

    /// The ranges read back are the file's bytes at those offsets, as
    /// `LocalFileSystem` reads them (the reference); an empty file and an
    /// empty range too; a range past the end and a missing file are errors
    /// that name the file.
    #[tokio::test]
    async fn ranges_are_the_bytes_local_file_system_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let file = dir.path().join("part-0.parquet");
        std::fs::write(&file, &bytes).expect("written");
        std::fs::write(dir.path().join("empty.parquet"), b"").expect("written");
        let mapped = MappedFiles::new(dir.path().canonicalize().expect("canonical"));
        let plain = LocalFileSystem::new();
        let at = |name: &str| Path::from_absolute_path(dir.path().join(name)).expect("path");
        let ranges = [0..10, 4096..70_000, 99_990..100_000, 50..50, 0..100_000];
        let got = mapped
            .get_ranges(&at("part-0.parquet"), &ranges)
            .await
            .expect("read");
        let want = plain
            .get_ranges(&at("part-0.parquet"), &ranges)
            .await
            .expect("read");
        assert_eq!(got, want);
        assert_eq!(got[1].as_ref(), &bytes[4096..70_000]);
        // mapped, not copied: every range is a view of one mapping of the
        // whole file, at its offset in it
        let base = got[4].as_ptr();
        assert_eq!(got[1].as_ptr(), base.wrapping_add(4096));
        assert_eq!(got[2].as_ptr(), base.wrapping_add(99_990));
        let empty = mapped
            .get_ranges(&at("empty.parquet"), &one(0..0))
            .await
            .expect("empty file");
        assert_eq!(empty, vec![Bytes::new()]);

        let past = mapped
            .get_ranges(&at("part-0.parquet"), &one(99_000..100_001))
            .await
            .expect_err("past the end");
        assert!(past.to_string().contains("part-0.parquet"), "{past}");
        let missing = mapped
            .get_ranges(&at("missing.parquet"), &one(0..1))
            .await
            .expect_err("missing");
        assert!(
            matches!(missing, object_store::Error::NotFound { .. }),
            "{missing}"
        );
    }

    /// Whether `bytes` lie in a mapping of `file` (by `/proc/self/maps`):
    /// how a test tells a mapped read from a copy of the same bytes.
    fn mapped_from(bytes: &Bytes, file: &std::path::Path) -> bool {
        let at = bytes.as_ptr() as usize;
        let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
        maps.lines().any(|line| {
            let mut fields = line.split_whitespace();
            let span = fields.next().unwrap_or_default();
            let name = fields.nth(4).unwrap_or_default();
            let Some((from, to)) = span.split_once('-') else {
                return false;
            };
            let from = usize::from_str_radix(from, 16).unwrap_or(usize::MAX);
            let to = usize::from_str_radix(to, 16).unwrap_or(0);
            (from..to).contains(&at) && std::path::Path::new(name) == file
        })
    }

    /// Reads of one range or a whole object (`get_opts`, under `get`,
    /// `get_range` and a storage's own reads) give the bytes, metadata and
    /// errors `LocalFileSystem` gives (the reference), from a mapping of
    /// attune's Parquet files; any other file, and the exports under
    /// `landing/`, are read as `LocalFileSystem` reads them.
    #[tokio::test]
    async fn single_reads_match_local_file_system_and_map_only_attunes_parquet_files() {
        use object_store::GetRange;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        let bytes: Vec<u8> = (0..50_000u32).map(|i| (i * 13 % 241) as u8).collect();
        for name in [
            "lake/t/dt=2025-01-01/part-0.parquet",
            "runs/r.json",
            "landing/t/x.parquet",
        ] {
            let file = root.join(name);
            std::fs::create_dir_all(file.parent().expect("a folder")).expect("folder");
            std::fs::write(&file, &bytes).expect("written");
        }
        let mapped = MappedFiles::under_root(root.clone()).expect("store");
        let plain = LocalFileSystem::new_with_prefix(&root).expect("store");
        let lake = Path::from("lake/t/dt=2025-01-01/part-0.parquet");
        let ranges = [
            None,
            Some(GetRange::Bounded(100..20_000)),
            Some(GetRange::Offset(49_000)),
            Some(GetRange::Suffix(10)),
        ];
        for range in ranges {
            let options = || GetOptions::new().with_range(range.clone());
            let got = mapped.get_opts(&lake, options()).await.expect("read");
            let want = plain.get_opts(&lake, options()).await.expect("read");
            assert_eq!(
                (&got.meta, &got.range),
                (&want.meta, &want.range),
                "{range:?}"
            );
            let (got, want) = (got.bytes().await.expect("bytes"), want.bytes().await);
            assert_eq!(got, want.expect("bytes"), "{range:?}");
            assert!(
                mapped_from(&got, &root.join(lake.as_ref())),
                "{range:?} was copied, not mapped"
            );
        }
        let head = mapped.head(&lake).await.expect("head");
        assert_eq!(head, plain.head(&lake).await.expect("head"));
        // preconditions and ranges are checked as LocalFileSystem checks them
        let stale = GetOptions::new().with_if_match(Some("not-the-etag".to_string()));
        let refused = mapped.get_opts(&lake, stale).await.expect_err("stale");
        assert!(
            matches!(refused, object_store::Error::Precondition { .. }),
            "{refused}"
        );
        // (a range past the end is cut at it; an empty one is refused)
        for odd in [49_000..50_001, 7..7] {
            let odd = || GetOptions::new().with_range(Some(GetRange::Bounded(odd.clone())));
            let got = match mapped.get_opts(&lake, odd()).await {
                Ok(r) => Some(r.bytes().await.expect("bytes")),
                Err(_) => None,
            };
            let want = match plain.get_opts(&lake, odd()).await {
                Ok(r) => Some(r.bytes().await.expect("bytes")),
                Err(_) => None,
            };
            assert_eq!(got, want);
        }
        let missing = mapped.get(&Path::from("lake/t/none.parquet")).await;
        assert!(matches!(missing, Err(object_store::Error::NotFound { .. })));
        // not attune's Parquet: the same bytes, copied
        for name in ["runs/r.json", "landing/t/x.parquet"] {
            let got = mapped.get(&Path::from(name)).await.expect("get");
            let got = got.bytes().await.expect("bytes");
            assert_eq!(got.as_ref(), bytes.as_slice(), "{name}");
            assert!(!mapped_from(&got, &root.join(name)), "{name} was mapped");
        }
    }

    /// A file replaced (renamed over) while a range of it is held keeps
    /// the old bytes in the range, and the next read sees the new ones.
    #[tokio::test]
    async fn a_file_renamed_over_keeps_what_was_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("part-0.parquet");
        std::fs::write(&file, vec![1u8; 8192]).expect("written");
        let mapped = MappedFiles::new(dir.path().canonicalize().expect("canonical"));
        let at = Path::from_absolute_path(&file).expect("path");
        let before = mapped.get_ranges(&at, &one(0..8192)).await.expect("read");
        let next = dir.path().join("next.parquet");
        std::fs::write(&next, vec![2u8; 4096]).expect("written");
        std::fs::rename(&next, &file).expect("renamed");
        assert!(before[0].iter().all(|&b| b == 1));
        let after = mapped.get_ranges(&at, &one(0..4096)).await.expect("read");
        assert!(after[0].iter().all(|&b| b == 2));
    }

    /// Files outside the root are read, not mapped (a table an analyst
    /// declares elsewhere may be rewritten in place by its owner), and so
    /// are the root's exports and files that are not Parquet; the root's
    /// Parquet files are mapped.
    #[test]
    fn only_parquet_files_under_the_root_are_mapped() {
        let root = tempfile::tempdir().expect("tempdir");
        let elsewhere = tempfile::tempdir().expect("tempdir");
        let inside = root.path().join("part-0.parquet");
        let outside = elsewhere.path().join("part-0.parquet");
        std::fs::write(&inside, [7u8; 100]).expect("written");
        std::fs::write(&outside, [7u8; 100]).expect("written");
        let mapped = MappedFiles::new(root.path().canonicalize().expect("canonical"));
        let inside = inside.canonicalize().expect("canonical");
        let outside = outside.canonicalize().expect("canonical");
        assert!(
            mapped
                .mapped(&inside, &one(0..100))
                .expect("read")
                .is_some()
        );
        assert!(
            mapped
                .mapped(&outside, &one(0..100))
                .expect("read")
                .is_none()
        );
        for name in ["landing/orders/2025-01-01/a.parquet", "lake/notes.csv"] {
            let file = root.path().join(name);
            std::fs::create_dir_all(file.parent().expect("a folder")).expect("folder");
            std::fs::write(&file, [7u8; 100]).expect("written");
            let file = file.canonicalize().expect("canonical");
            assert!(
                mapped.mapped(&file, &one(0..100)).expect("read").is_none(),
                "{name}"
            );
        }
    }
}
