//! One run per data root at a time.

use std::fs::File;
use std::path::PathBuf;

use crate::context::JobContext;
use crate::storage::Storage;
use crate::{Error, Result};

/// An exclusive lock on the data root, held for the whole run. It is an OS
/// file lock, so the kernel releases it when the process dies, however it
/// dies: a crashed run never blocks the next night. A remote root is also
/// locked in the store itself, for runs on other machines
/// ([`super::lease`]).
#[derive(Debug)]
pub struct RunLock {
    /// Declared first, so dropped first: the lease is released before the
    /// file lock lets another run on this machine start.
    lease: Option<super::lease::Lease>,
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
        // A few tries over a fifth of a second: `attune runs` and `attune
        // doctor` probe the lock with a shared lock held for an instant,
        // which must not turn a nightly away.
        for attempt in 0.. {
            match file.try_lock() {
                Ok(()) => {
                    let lease = match ctx.storage.local_root() {
                        None if ctx.cfg.store_lease => {
                            Some(super::lease::Lease::acquire(&ctx.storage, &ctx.run_id)?)
                        }
                        _ => None,
                    };
                    return Ok(RunLock {
                        lease,
                        _file: file,
                        path,
                    });
                }
                Err(std::fs::TryLockError::WouldBlock) if attempt < 10 => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => break,
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::Locked(format!(
            "another attune run holds {}; wait for it to finish (the lock is released when that process exits)",
            path.display()
        )))
    }

    /// The lock file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Fails with [`Error::Locked`] once a remote root's lease was lost
    /// (taken over by another run after this one could not renew it): a run
    /// checks before each job and stops writing.
    pub fn still_held(&self) -> Result<()> {
        match &self.lease {
            Some(l) if l.lost() => Err(Error::Locked(
                "this run lost the data root's lease (runs/.lease.json): its renewals failed for minutes, or another run took it over; it stopped before its next job, so another run can take the root".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// The lock file of a data root. A remote root is locked on this machine,
/// keyed by its URL, and in the store by its lease.
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
/// `attune runs`). It probes with a shared lock on a read-only handle, taken
/// and released at once: a user who may only read the root can ask, and a
/// run starting in that instant waits it out ([`RunLock::acquire`] tries
/// again).
pub fn is_held(storage: &Storage) -> Result<bool> {
    let path = lock_path(storage);
    let file = match File::options().read(true).open(&path) {
        Ok(f) => f,
        // No lock file: no run ever started on this root from this machine.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(&path, e)),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// [`is_held`], and for a remote root whether a live lease holds it from
/// any machine.
pub async fn is_held_anywhere(storage: &Storage) -> Result<bool> {
    if is_held(storage)? {
        return Ok(true);
    }
    match storage.local_root() {
        Some(_) => Ok(false),
        None => super::lease::is_held(storage).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_sees_a_held_lock_and_does_not_block_the_next_run() {
        let dir = tempfile::tempdir().expect("tmp");
        let storage = Storage::open(dir.path().to_str().expect("utf8")).expect("open");
        assert!(!is_held(&storage).expect("no lock file yet"));
        let path = lock_path(&storage);
        std::fs::create_dir_all(path.parent().expect("runs")).expect("mkdir");
        let run = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .expect("open");
        run.try_lock().expect("a run takes it");
        assert!(is_held(&storage).expect("probe"));
        drop(run);
        assert!(!is_held(&storage).expect("probe"));
        // a probe holding its shared lock while a run starts: the run waits
        let probe = File::options().read(true).open(&path).expect("open");
        probe.try_lock_shared().expect("shared");
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            drop(probe);
        });
        let cfg = crate::config::ValidConfig {
            root: dir.path().to_string_lossy().into_owned(),
            ..crate::config::ValidConfig::default()
        };
        let ctx = JobContext::open(cfg, crate::context::KeyMode::NotNeeded).expect("ctx");
        let lock = RunLock::acquire(&ctx).expect("the run takes the lock once the probe lets go");
        release.join().expect("thread");
        assert!(is_held(&storage).expect("probe"));
        drop(lock);
    }

    /// A remote root is locked in the store too, where runs on other
    /// machines see it, for as long as the run holds the lock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_remote_root_is_also_locked_by_a_lease_in_the_store() {
        let cfg = crate::config::ValidConfig {
            root: "memory:///lease-test".into(),
            ..crate::config::ValidConfig::default()
        };
        let ctx = JobContext::open(cfg, crate::context::KeyMode::NotNeeded).expect("ctx");
        let store = ctx.storage.store();
        assert!(!is_held_anywhere(&ctx.storage).await.expect("probe"));
        let lock = RunLock::acquire(&ctx).expect("free");
        let current = super::super::lease::read(store.as_ref())
            .await
            .expect("read")
            .expect("a lease");
        assert_eq!(current.holder.run_id, ctx.run_id);
        assert!(is_held_anywhere(&ctx.storage).await.expect("probe"));
        lock.still_held().expect("held");
        drop(lock);
        assert!(
            !is_held_anywhere(&ctx.storage).await.expect("probe"),
            "released"
        );
    }

    /// `store_lease = false`: a store without conditional writes is locked
    /// on this machine only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_store_lease_a_remote_root_is_locked_on_the_machine_only() {
        let cfg = crate::config::ValidConfig {
            root: "memory:///machine-only-test".into(),
            store_lease: false,
            ..crate::config::ValidConfig::default()
        };
        let ctx = JobContext::open(cfg, crate::context::KeyMode::NotNeeded).expect("ctx");
        let lock = RunLock::acquire(&ctx).expect("free");
        let lease = super::super::lease::read(ctx.storage.store().as_ref())
            .await
            .expect("read");
        assert!(lease.is_none(), "no lease written");
        lock.still_held().expect("held");
    }
}
