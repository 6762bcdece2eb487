//! The local root as DataFusion reads it: column chunks are read by
//! mapping the file, not by copying it.
//!
//! object_store's `LocalFileSystem` reads each range into a new buffer: it
//! zeroes the buffer, has the kernel copy the page cache into it, and does
//! so on a blocking thread. With the lake's files uncompressed (see
//! [`crate::parquet_io::Codec`]) the empathy job alone read 1.36 GB that
//! way at a million customers, and the kernel's copy was 5.9% of its CPU.
//! A mapping hands the decoder the page cache's own pages. Everything
//! else (listing, writing, renaming, whole-object reads) is the
//! `LocalFileSystem`'s.
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
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

/// `LocalFileSystem` (unprefixed: DataFusion's table URLs are absolute
/// `file://` paths) whose range reads map the files under `root`.
#[derive(Debug)]
pub struct MappedFiles {
    files: Arc<LocalFileSystem>,
    root: PathBuf,
}

impl MappedFiles {
    /// For the data root at `root` (an absolute, canonical path, as
    /// `Storage::open` makes it).
    pub fn new(root: PathBuf) -> MappedFiles {
        MappedFiles {
            files: Arc::new(LocalFileSystem::new()),
            root,
        }
    }

    /// `ranges` of the file at `path`, each a view of one mapping; `None`
    /// when the file is outside the root or cannot be mapped, so that the
    /// caller reads it as `LocalFileSystem` does.
    fn mapped(
        &self,
        path: &std::path::Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Option<Vec<Bytes>>> {
        if !path.starts_with(&self.root) {
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
        // SAFETY: the mapping is read-only and attune replaces files by
        // renaming new ones over them, never by changing them in place
        // (module documentation); the mapping keeps the file's pages.
        let map = match unsafe { memmap2::Mmap::map(&file) } {
            Ok(map) => map,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "not mapped: read instead");
                return Ok(None);
            }
        };
        let whole = Bytes::from_owner(map);
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
        self.files.get_opts(location, options).await
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
        // a whole-object read and a listing are the LocalFileSystem's
        let whole = mapped
            .get(&at("part-0.parquet"))
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(whole.as_ref(), bytes.as_slice());
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
    /// declares elsewhere may be rewritten in place by its owner); inside
    /// it they are mapped.
    #[test]
    fn only_files_under_the_root_are_mapped() {
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
    }
}
