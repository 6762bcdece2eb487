//! One run per data root at a time.

use std::fs::File;
use std::path::PathBuf;

use crate::context::JobContext;
use crate::storage::Storage;
use crate::{Error, Result};

/// An exclusive lock on the data root, held for the whole run. It is an OS
/// file lock, so the kernel releases it when the process dies, however it
/// dies: a crashed run never blocks the next night.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock or fails at once with [`Error::Locked`].
    pub fn acquire(ctx: &JobContext) -> Result<RunLock> {
        let path = lock_path(&ctx.storage);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked(format!(
                "another attune run holds {}; wait for it to finish (the lock is released when that process exits)",
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// The lock file of a data root. Object stores have no locks: a remote root
/// is locked on this machine, keyed by its URL (one scheduler host per root).
pub fn lock_path(storage: &Storage) -> PathBuf {
    match storage.local_root() {
        Some(root) => root.join("runs").join(".lock"),
        None => {
            let id = crate::ingest::pseudonym::fingerprint128(storage.url().as_str().as_bytes());
            std::env::temp_dir().join(format!("attune-{id:032x}.lock"))
        }
    }
}

/// Whether a run holds the data root's lock now (for `attune doctor` and
/// `attune runs`). It probes by taking the lock and releasing it at once: a
/// run starting in that instant is refused as if another run held it, which
/// is why only the read-only commands call this.
pub fn is_held(storage: &Storage) -> Result<bool> {
    let path = lock_path(storage);
    let file = match File::options().write(true).open(&path) {
        Ok(f) => f,
        // No lock file: no run ever started on this root from this machine.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(&path, e)),
    };
    match file.try_lock() {
        Ok(()) => Ok(false),
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}
