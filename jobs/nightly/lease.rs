//! The lock of a data root in an object store: a lease object every
//! machine sees.
//!
//! A file lock is only seen on the machine that took it, and a Kubernetes
//! CronJob runs each night in a new pod: `concurrencyPolicy: Forbid` keeps
//! two nightlies apart, not a `kubectl run … attune forget` during one. So a
//! remote root is also locked in the store: `runs/.lease.json`, created only
//! if absent (S3 `If-None-Match`, GCS and Azure preconditions: object_store's
//! `PutMode::Create`), naming the run, host and times. The run renews it
//! every [`RENEW`] with a conditional update and deletes it when done. A
//! process that dies leaves it behind; a lease not renewed for [`EXPIRES`]
//! is taken over (again conditionally, so of two runs that find it expired
//! only one wins). A run that loses its lease (renewals failing past
//! expiry) logs it; the next run can then take the root.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::storage::Storage;
use crate::{Error, Result};

/// Where the lease lives.
pub const LEASE: &str = "runs/.lease.json";

/// How often a run renews its lease.
pub const RENEW: Duration = Duration::from_secs(60);

/// A lease not renewed for this long belongs to a run that died.
pub const EXPIRES: Duration = Duration::from_secs(600);

/// The lease's content: who holds the root, since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    /// RFC 3339, UTC.
    pub acquired_at: String,
    pub renewed_at: String,
}

impl Holder {
    fn renewed(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.renewed_at)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Whether the holder stopped renewing more than [`EXPIRES`] before `now`
    /// (an unreadable time counts as expired: nobody could renew it).
    pub fn expired(&self, now: DateTime<Utc>, expires: Duration) -> bool {
        self.renewed()
            .is_none_or(|t| now.signed_duration_since(t).to_std().unwrap_or_default() > expires)
    }
}

/// A held lease; dropping it stops the renewals and deletes it.
#[derive(Debug)]
pub struct Lease {
    stop: Option<mpsc::Sender<()>>,
    worker: Option<JoinHandle<()>>,
}

impl Lease {
    /// Takes the lease of `storage`'s root for `run_id`, or fails with
    /// [`Error::Locked`] naming the run that holds it. The store calls run
    /// on a thread of their own (the caller may be inside an async runtime),
    /// which then renews the lease until it is dropped.
    pub fn acquire(storage: &Storage, run_id: &str) -> Result<Lease> {
        Lease::acquire_with(storage, run_id, RENEW, EXPIRES)
    }

    fn acquire_with(
        storage: &Storage,
        run_id: &str,
        renew: Duration,
        expires: Duration,
    ) -> Result<Lease> {
        let (store, place) = (storage.store(), storage.display(&Path::from(LEASE)));
        let holder = Holder {
            run_id: run_id.to_string(),
            host: hostname(),
            pid: std::process::id(),
            acquired_at: now(),
            renewed_at: now(),
        };
        let (taken_tx, taken_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let worker = std::thread::Builder::new()
            .name("attune-lease".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = taken_tx.send(Err(Error::Internal(format!(
                            "the lease's runtime: {e}"
                        ))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let taken = take(store.as_ref(), &holder, expires, &place).await;
                    let Ok(mut version) = taken else {
                        let _ = taken_tx.send(taken.map(|_| ()));
                        return;
                    };
                    let _ = taken_tx.send(Ok(()));
                    let mut holder = holder;
                    // renew until told to stop (or the holder is gone)
                    while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(renew) {
                        holder.renewed_at = now();
                        match put(store.as_ref(), &holder, PutMode::Update(version.clone())).await {
                            Ok(v) => version = v,
                            Err(e) => warn!(
                                error = %e,
                                lease = %place,
                                "could not renew the data root's lease; another run may take the root once it expires"
                            ),
                        }
                    }
                    release(store.as_ref(), &holder).await;
                });
            })
            .map_err(|e| Error::Internal(format!("the lease's thread: {e}")))?;
        match taken_rx.recv() {
            Ok(Ok(())) => Ok(Lease {
                stop: Some(stop_tx),
                worker: Some(worker),
            }),
            Ok(Err(e)) => {
                let _ = worker.join();
                Err(e)
            }
            Err(_) => {
                let _ = worker.join();
                Err(Error::Internal("the lease's thread stopped".into()))
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Creates the lease, or takes over an expired one; the version to renew.
async fn take(
    store: &dyn ObjectStore,
    holder: &Holder,
    expires: Duration,
    display: &str,
) -> Result<UpdateVersion> {
    match put(store, holder, PutMode::Create).await {
        Ok(v) => return Ok(v),
        Err(Error::Locked(_)) => {}
        Err(e) => return Err(e),
    }
    let (current, version) = read(store).await?.ok_or_else(|| {
        // deleted between the two calls: the next run finds it free
        Error::Locked(format!(
            "{display} changed hands while attune looked at it; try again"
        ))
    })?;
    if !current.expired(Utc::now(), expires) {
        return Err(Error::Locked(format!(
            "run {} on {} (pid {}) holds the data root since {} (lease {display}, renewed {}); wait for it to finish",
            current.run_id, current.host, current.pid, current.acquired_at, current.renewed_at
        )));
    }
    warn!(
        run_id = %current.run_id,
        renewed_at = %current.renewed_at,
        "taking over the lease of a run that stopped renewing it"
    );
    put(store, holder, PutMode::Update(version)).await
}

/// The lease and its version, if there is one.
pub async fn read(store: &dyn ObjectStore) -> Result<Option<(Holder, UpdateVersion)>> {
    let got = match store.get(&Path::from(LEASE)).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let version = UpdateVersion {
        e_tag: got.meta.e_tag.clone(),
        version: got.meta.version.clone(),
    };
    let bytes = got.bytes().await?;
    let holder = serde_json::from_slice(&bytes).unwrap_or_else(|_| Holder {
        // unreadable: treated as expired, so it can be taken over
        run_id: "unknown".into(),
        host: "unknown".into(),
        pid: 0,
        acquired_at: String::new(),
        renewed_at: String::new(),
    });
    Ok(Some((holder, version)))
}

/// Writes the lease in `mode`; an existing lease (create) or another
/// version (update) is [`Error::Locked`].
async fn put(store: &dyn ObjectStore, holder: &Holder, mode: PutMode) -> Result<UpdateVersion> {
    let bytes = serde_json::to_vec_pretty(holder)
        .map_err(|e| Error::Internal(format!("the lease: {e}")))?;
    let opts = PutOptions {
        mode,
        ..PutOptions::default()
    };
    match store
        .put_opts(
            &Path::from(LEASE),
            PutPayload::from(Bytes::from(bytes)),
            opts,
        )
        .await
    {
        Ok(r) => Ok(UpdateVersion {
            e_tag: r.e_tag,
            version: r.version,
        }),
        Err(object_store::Error::AlreadyExists { .. })
        | Err(object_store::Error::Precondition { .. }) => {
            Err(Error::Locked(format!("{LEASE} is held by another run")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes the lease if it is still this run's.
async fn release(store: &dyn ObjectStore, holder: &Holder) {
    match read(store).await {
        Ok(Some((current, _))) if current.run_id == holder.run_id => {
            if let Err(e) = store.delete(&Path::from(LEASE)).await {
                warn!(error = %e, "could not delete the data root's lease; it expires on its own");
            }
        }
        Ok(_) => debug!("the lease is not this run's any more: left alone"),
        Err(e) => warn!(error = %e, "could not read the data root's lease"),
    }
}

/// Whether a live lease holds `storage`'s root (for `attune doctor` and
/// `attune runs`): one renewed within [`EXPIRES`].
pub async fn is_held(storage: &Storage) -> Result<bool> {
    Ok(read(storage.store().as_ref())
        .await?
        .is_some_and(|(h, _)| !h.expired(Utc::now(), EXPIRES)))
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The machine's name, for the message of a run turned away (no personal
/// data: a host name is the operator's).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_root() -> Storage {
        Storage::open("memory:///").expect("an in-memory store")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_run_holds_the_root_until_it_lets_go() {
        let storage = memory_root();
        let first = Lease::acquire(&storage, "run-1").expect("free");
        assert!(is_held(&storage).await.expect("probe"));
        let err = Lease::acquire(&storage, "run-2").expect_err("held");
        let text = err.to_string();
        assert!(matches!(err, Error::Locked(_)), "{err:?}");
        assert!(
            text.contains("run-1") && text.contains("wait for it"),
            "{text}"
        );
        drop(first);
        assert!(!is_held(&storage).await.expect("probe"), "deleted on drop");
        let second = Lease::acquire(&storage, "run-2").expect("free again");
        drop(second);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_left_by_a_dead_run_is_taken_over_once_it_expires() {
        let storage = memory_root();
        let store = storage.store();
        // what a killed run leaves: a lease nobody renews
        let dead = Holder {
            run_id: "dead".into(),
            host: "h".into(),
            pid: 1,
            acquired_at: "2025-03-14T02:00:00.000Z".into(),
            renewed_at: (Utc::now() - chrono::Duration::seconds(5))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        put(store.as_ref(), &dead, PutMode::Create)
            .await
            .expect("left behind");
        let err = Lease::acquire_with(&storage, "next", RENEW, Duration::from_secs(60))
            .expect_err("not expired yet");
        assert!(err.to_string().contains("dead"), "{err}");
        let next = Lease::acquire_with(&storage, "next", RENEW, Duration::from_secs(2))
            .expect("expired: taken over");
        let (holder, _) = read(store.as_ref()).await.expect("read").expect("lease");
        assert_eq!(holder.run_id, "next");
        drop(next);
        assert!(read(store.as_ref()).await.expect("read").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_held_lease_is_renewed_and_not_deleted_by_a_run_that_lost_it() {
        let storage = memory_root();
        let store = storage.store();
        let lease = Lease::acquire_with(&storage, "run-1", Duration::from_millis(50), EXPIRES)
            .expect("free");
        let (first, _) = read(store.as_ref()).await.expect("read").expect("lease");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (later, version) = read(store.as_ref()).await.expect("read").expect("lease");
        assert_eq!(later.run_id, "run-1");
        assert!(later.renewed_at > first.renewed_at, "renewed");
        // another run takes it over (as if this one had stalled past
        // expiry), between two of its renewals
        let other = Holder {
            run_id: "run-2".into(),
            ..later
        };
        let mut version = version;
        for _ in 0..50 {
            match put(store.as_ref(), &other, PutMode::Update(version.clone())).await {
                Ok(_) => break,
                Err(_) => {
                    version = read(store.as_ref()).await.expect("read").expect("lease").1;
                }
            }
        }
        drop(lease);
        let (holder, _) = read(store.as_ref())
            .await
            .expect("read")
            .expect("still there");
        assert_eq!(
            holder.run_id, "run-2",
            "the other run's lease is left alone"
        );
    }

    #[test]
    fn an_unreadable_or_old_renewal_is_expired() {
        let mut h = Holder {
            run_id: "r".into(),
            host: "h".into(),
            pid: 1,
            acquired_at: String::new(),
            renewed_at: "not a time".into(),
        };
        assert!(h.expired(Utc::now(), EXPIRES));
        h.renewed_at = now();
        assert!(!h.expired(Utc::now(), EXPIRES));
        assert!(h.expired(Utc::now() + chrono::Duration::seconds(601), EXPIRES));
    }
}
