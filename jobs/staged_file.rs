//! A file of a local data root written by the thread that makes its bytes
//! and published atomically.
//!
//! object_store's local writes hand every file to a blocking task of the
//! async runtime: a thread switch there and back, and the bytes gathered
//! in a buffer of their own first. Ingest writes two files for each of
//! about 6,500 partitions in a backfill, from worker threads that wait on
//! each write, so [`crate::parquet_io::ParquetSink`] writes a local root's
//! files here instead. The staging name and the rename are object_store's:
//! `<name>#<n>` beside the final name, which its listings skip, so a crash
//! leaves no file anything reads, and readers see the old file or the new
//! one.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A file being written under a staging name until [`StagedFile::publish`].
#[derive(Debug)]
pub struct StagedFile {
    dest: PathBuf,
    /// Opened at the first write, so a file never written leaves nothing.
    staged: Option<(File, PathBuf)>,
    /// The first of the folders made for it, removed again (when still
    /// empty) with a file given up: a failed partition leaves no folder.
    made: Option<PathBuf>,
}

impl StagedFile {
    /// A file to be published at `dest`.
    pub fn new(dest: PathBuf) -> StagedFile {
        StagedFile {
            dest,
            staged: None,
            made: None,
        }
    }

    /// Appends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let (file, path) = match &mut self.staged {
            Some(staged) => staged,
            None => self.staged.insert(open_staged(&self.dest, &mut self.made)?),
        };
        file.write_all(bytes).map_err(|e| Error::io(&*path, e))
    }

    /// Renames the file over `dest`, replacing what was there.
    pub fn publish(mut self) -> Result<()> {
        let (file, path) = match self.staged.take() {
            Some(staged) => staged,
            None => open_staged(&self.dest, &mut self.made)?,
        };
        // closed before the rename, as object_store does for file systems
        // that upload a file when it is closed
        drop(file);
        if let Err(e) = std::fs::rename(&path, &self.dest) {
            let _ = std::fs::remove_file(&path);
            return Err(Error::io(&self.dest, e));
        }
        Ok(())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        // not published: an error or a write given up
        if let Some((_, path)) = self.staged.take() {
            let _ = std::fs::remove_file(path);
            let Some(made) = &self.made else { return };
            let mut dir = self.dest.parent();
            // innermost first; a folder another file went into stays
            while let Some(d) = dir
                && std::fs::remove_dir(d).is_ok()
                && d != made
            {
                dir = d.parent();
            }
        }
    }
}

/// A new file `<dest>#<n>` with the first free `n`, its folders made when
/// missing (`made`: the first of them).
fn open_staged(dest: &Path, made: &mut Option<PathBuf>) -> Result<(File, PathBuf)> {
    let mut n = 1u32;
    loop {
        let mut name = dest.as_os_str().to_owned();
        name.push(format!("#{n}"));
        let path = PathBuf::from(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => n += 1,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let parent = dest.parent().unwrap_or(Path::new("."));
                let mut first = parent;
                while let Some(up) = first.parent().filter(|up| !up.exists()) {
                    first = up;
                }
                // a folder that still cannot be made is the open's error
                if std::fs::create_dir_all(parent).is_err() {
                    return Err(Error::io(&path, e));
                }
                made.get_or_insert_with(|| first.to_path_buf());
            }
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut all: Vec<String> = walk(dir)
            .iter()
            .map(|p| {
                p.strip_prefix(dir)
                    .expect("under dir")
                    .display()
                    .to_string()
            })
            .collect();
        all.sort();
        all
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn a_file_appears_whole_at_publish_and_replaces_the_old_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("lake/t/dt=2025-01-01/part-0.parquet");
        let mut f = StagedFile::new(dest.clone());
        f.write(b"new ").expect("write");
        f.write(b"bytes").expect("write");
        // written, not yet there: only the staging name, in folders made for it
        assert!(!dest.exists());
        assert_eq!(names(dir.path()), ["lake/t/dt=2025-01-01/part-0.parquet#1"]);
        f.publish().expect("publish");
        assert_eq!(std::fs::read(&dest).expect("read"), b"new bytes");
        assert_eq!(names(dir.path()), ["lake/t/dt=2025-01-01/part-0.parquet"]);

        let mut g = StagedFile::new(dest.clone());
        g.write(b"newer").expect("write");
        assert_eq!(std::fs::read(&dest).expect("read"), b"new bytes");
        g.publish().expect("publish");
        assert_eq!(std::fs::read(&dest).expect("read"), b"newer");
    }

    #[test]
    fn a_file_given_up_leaves_nothing_and_a_stray_staging_file_is_stepped_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("part-0.parquet");
        let mut f = StagedFile::new(dest.clone());
        f.write(b"half").expect("write");
        drop(f);
        assert!(names(dir.path()).is_empty());
        // nor the folders made for it, up to the first of them
        std::fs::create_dir(dir.path().join("lake")).expect("mkdir");
        let mut f = StagedFile::new(dir.path().join("lake/t/dt=2025-01-01/part-0.parquet"));
        f.write(b"half").expect("write");
        drop(f);
        assert_eq!(
            std::fs::read_dir(dir.path().join("lake"))
                .expect("lake")
                .count(),
            0
        );
        assert!(dir.path().join("lake").is_dir(), "it was there before");
        // a crash's leftover keeps its name; the next write takes another
        std::fs::write(dir.path().join("part-0.parquet#1"), b"crash").expect("stray");
        let mut g = StagedFile::new(dest.clone());
        g.write(b"whole").expect("write");
        assert_eq!(names(dir.path()), ["part-0.parquet#1", "part-0.parquet#2"]);
        g.publish().expect("publish");
        assert_eq!(std::fs::read(&dest).expect("read"), b"whole");
        assert_eq!(
            std::fs::read(dir.path().join("part-0.parquet#1")).expect("read"),
            b"crash"
        );
    }

    #[test]
    fn object_stores_listing_skips_the_staging_name() {
        use futures::TryStreamExt;
        use object_store::ObjectStore;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut f = StagedFile::new(dir.path().join("a/part-0.parquet"));
        f.write(b"x").expect("write");
        let store =
            object_store::local::LocalFileSystem::new_with_prefix(dir.path()).expect("store");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let listed: Vec<_> = rt
            .block_on(store.list(None).try_collect::<Vec<_>>())
            .expect("list");
        assert!(listed.is_empty(), "{listed:?}");
        f.publish().expect("publish");
        let listed: Vec<_> = rt
            .block_on(store.list(None).try_collect::<Vec<_>>())
            .expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].location.as_ref(), "a/part-0.parquet");
    }

    #[test]
    fn an_unwritable_place_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        // a file where a folder must go
        std::fs::write(dir.path().join("lake"), b"").expect("blocker");
        let mut f = StagedFile::new(dir.path().join("lake/t/part-0.parquet"));
        let err = f.write(b"x").expect_err("cannot be made").to_string();
        assert!(err.contains("lake/t/part-0.parquet#1"), "{err}");
    }
}
