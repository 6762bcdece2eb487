//! The lock of a data root in an object store: a lease object every
//! machine sees.
//!
//! A file lock is only seen on the machine that took it, and a Kubernetes
//! CronJob runs each night in a new pod: `concurrencyPolicy: Forbid` keeps
//! two nightlies apart, not a `kubectl run … attune forget` during one. So a
//! remote root is also locked in the store: `runs/.lease.json`, created only
//! if absent (S3 `If-None-Match`, GCS and Azure preconditions: object_store's
//! `PutMode::Create`), naming the run, host and times. The run renews it
//! every [`RENEW`] with a conditional update and marks it released when
//! done. A process that dies leaves it held. A run that finds it held
//! watches it on its own monotonic clock, never comparing timestamps of
//! different machines: renewed meanwhile, its holder is alive and the run
//! exits with code 4; unchanged for [`EXPIRES`], its holder is dead (a
//! killed pod) and the run takes it over (again conditionally, so of two
//! only one wins) and goes ahead. A run whose renewals fail gives up well
//! before anyone may take over, and stops before its next job (exit 4).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::manifest::now_rfc3339;
use crate::storage::Storage;
use crate::{Error, Result};

/// Where the lease lives.
pub const LEASE: &str = "runs/.lease.json";

/// How often a run renews its lease (a run that finds the root held knows
/// within about this long whether the holder is alive).
pub const RENEW: Duration = Duration::from_secs(20);

/// A lease seen unchanged for this long belongs to a run that died.
pub const EXPIRES: Duration = Duration::from_secs(300);

/// Longest a store call of the lease may take (the store retries within it).
const CALL: Duration = Duration::from_secs(30);

/// The lease's content: who holds the root, since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    /// RFC 3339, UTC.
    pub acquired_at: String,
    pub renewed_at: String,
    /// Set when the run let go: the lease stays (a delete could not be
    /// made conditional) and is free.
    #[serde(default)]
    pub released: bool,
}

/// A lease as read: its holder, version, and when the store last wrote it
/// (the store's clock, so machines whose clocks differ agree on its age).
#[derive(Debug, Clone)]
pub struct Current {
    pub holder: Holder,
    pub version: UpdateVersion,
    pub written: DateTime<Utc>,
}

impl Current {
    /// Whether it looks free to `attune doctor` and `attune runs`:
    /// released, or not written for `expires` by this machine's clock
    /// against the store's (a display; runs decide by watching, see
    /// [`take`]).
    pub fn expired(&self, now: DateTime<Utc>, expires: Duration) -> bool {
        self.holder.released
            || now
                .signed_duration_since(self.written)
                .to_std()
                .unwrap_or_default()
                > expires
    }
}

/// A held lease; dropping it stops the renewals and releases it.
#[derive(Debug)]
pub struct Lease {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    worker: Option<JoinHandle<()>>,
    held: Arc<Held>,
}

/// What the run and the lease thread share: when the last write that
/// landed was sent, and whether the lease was seen taken over. The run
/// counts itself lost `give_up` after that write whatever the thread is
/// doing (stalled, or gone after a panic).
#[derive(Debug)]
struct Held {
    base: Instant,
    /// Milliseconds from `base` to the sending of the last write that landed.
    last_write: AtomicU64,
    give_up: Duration,
    taken_over: AtomicBool,
}

impl Held {
    /// `base` is taken before the first write is sent: counting from it
    /// errs on the early side.
    fn new(give_up: Duration) -> Held {
        Held {
            base: Instant::now(),
            last_write: AtomicU64::new(0),
            give_up,
            taken_over: AtomicBool::new(false),
        }
    }

    fn wrote(&self, sent: Instant) {
        let ms = u64::try_from(sent.duration_since(self.base).as_millis()).unwrap_or(u64::MAX);
        self.last_write.fetch_max(ms, Ordering::SeqCst);
    }

    fn since_write(&self) -> Duration {
        self.base.elapsed().saturating_sub(Duration::from_millis(
            self.last_write.load(Ordering::SeqCst),
        ))
    }

    fn lost(&self) -> bool {
        self.taken_over.load(Ordering::SeqCst) || self.since_write() >= self.give_up
    }
}

impl Lease {
    /// Takes the lease of `storage`'s root for `run_id`, or fails with
    /// [`Error::Locked`] naming the run that holds it (see [`take`]: a
    /// lease nobody renews is waited out, so the retry of a killed run goes
    /// ahead). The store calls run on a thread of their own, with a client
    /// of their own (the caller may be inside an async runtime), which then
    /// renews the lease until it is dropped.
    pub fn acquire(storage: &Storage, run_id: &str) -> Result<Lease> {
        Lease::acquire_with(storage, run_id, RENEW, EXPIRES)
    }

    fn acquire_with(
        storage: &Storage,
        run_id: &str,
        renew: Duration,
        expires: Duration,
    ) -> Result<Lease> {
        let own = storage.with_own_client()?;
        let place = storage.display(&Path::from(LEASE));
        let at = now_rfc3339();
        let holder = Holder {
            run_id: run_id.to_string(),
            host: hostname(),
            pid: std::process::id(),
            acquired_at: at.clone(),
            renewed_at: at,
            released: false,
        };
        // gives up well before anyone may take over: see `hold`
        let held = Arc::new(Held::new(
            expires.saturating_sub(renew + 2 * CALL).max(2 * renew),
        ));
        let shared = held.clone();
        let (taken_tx, taken_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let worker = std::thread::Builder::new()
            .name("attune-lease".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = taken_tx
                            .send(Err(Error::Internal(format!("the lease's runtime: {e}"))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let store = own.store();
                    let store = store.as_ref();
                    let taken = take(store, &holder, renew, expires, &place).await;
                    let Ok((version, sent)) = taken else {
                        let _ = taken_tx.send(taken.map(|_| ()));
                        return;
                    };
                    // counted from the write that took it, not from the
                    // start of a watch that may have lasted minutes
                    shared.wrote(sent);
                    let _ = taken_tx.send(Ok(()));
                    hold(store, holder, version, renew, stop_rx, &shared).await;
                });
            })
            .map_err(|e| Error::Internal(format!("the lease's thread: {e}")))?;
        match taken_rx.recv() {
            Ok(Ok(())) => Ok(Lease {
                stop: Some(stop_tx),
                worker: Some(worker),
                held,
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

    /// Whether the lease may be lost (seen taken over, or no renewal
    /// landed for too long): the run must stop writing.
    pub fn lost(&self) -> bool {
        self.held.lost()
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

/// Renews the lease every `renew` until told to stop, then releases it.
/// The run counts itself lost well before anyone may take over: another
/// run takes over a lease it has watched unchanged for `expires` on its own
/// clock, that is no earlier than `expires` after this run's last write
/// landed, and [`Held`] gives up `renew` and two store calls sooner,
/// counted from before that write was sent.
async fn hold(
    store: &dyn ObjectStore,
    mut holder: Holder,
    mut version: UpdateVersion,
    renew: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    held: &Held,
) {
    loop {
        let deadline = held.give_up.saturating_sub(held.since_write());
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(renew.min(deadline)) => {}
        }
        if held.lost() {
            warn!(
                "the data root's lease could not be renewed in time: this run stops before its next job"
            );
            return;
        }
        let sent = Instant::now();
        holder.renewed_at = now_rfc3339();
        let renewal = tokio::select! {
            _ = &mut stop => break,
            r = call(put(store, &holder, PutMode::Update(version.clone()))) => r,
        };
        match renewal {
            Ok(v) => {
                version = v;
                held.wrote(sent);
            }
            // the write may have landed with only its answer lost, leaving
            // this version behind: still ours if the lease names this run
            Err(Error::Locked(_)) => match call(read(store)).await {
                Ok(Some(c)) if same_run(&c.holder, &holder) => {
                    if c.holder.renewed_at == holder.renewed_at {
                        held.wrote(sent);
                    }
                    version = c.version;
                }
                Ok(_) => {
                    warn!(
                        "the data root's lease was taken over: this run stops before its next job"
                    );
                    held.taken_over.store(true, Ordering::SeqCst);
                    return;
                }
                Err(e) => warn!(error = %e, "could not read the data root's lease"),
            },
            Err(e) => warn!(error = %e, "could not renew the data root's lease"),
        }
    }
    release(store, &holder, version).await;
}

/// A store call of the lease, bounded by [`CALL`].
async fn call<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(CALL, f)
        .await
        .unwrap_or_else(|_| Err(Error::Internal(TIMED_OUT.into())))
}

const TIMED_OUT: &str = "the lease's store call timed out";

/// A write whose outcome is unknown or lost to another run: the lease is
/// read again to know (any other error is the store's answer).
fn unclear(e: &Error) -> bool {
    matches!(e, Error::Locked(_)) || matches!(e, Error::Internal(m) if m == TIMED_OUT)
}

fn same_run(a: &Holder, b: &Holder) -> bool {
    a.run_id == b.run_id && a.acquired_at == b.acquired_at && a.pid == b.pid
}

/// Creates the lease, or takes over a free one; the version to renew.
///
/// A lease held by another run is watched, on this machine's monotonic
/// clock, not judged by timestamps (clocks differ between machines): if it
/// is renewed while watched, its run is alive and this one is turned away
/// (within about one renewal interval); if it stays unchanged for
/// `expires`, its run is dead (killed, a pod evicted) and this one takes it
/// over, so the retry of a killed run goes ahead instead of failing. A
/// released lease is taken at once. Every write is conditional, and one
/// whose answer was lost is adopted when the lease names this run.
async fn take(
    store: &dyn ObjectStore,
    holder: &Holder,
    renew: Duration,
    expires: Duration,
    place: &str,
) -> Result<(UpdateVersion, Instant)> {
    // when the earliest write of this run whose outcome is unknown was
    // sent: if the lease names this run next, that write took it
    let sent = Instant::now();
    let mut unknown: Option<Instant> = match call(put(store, holder, PutMode::Create)).await {
        Ok(v) => return Ok((v, sent)),
        Err(e) if unclear(&e) => Some(sent),
        Err(e) => return Err(e),
    };
    let mut watched: Option<(UpdateVersion, Instant)> = None;
    let mut said = false;
    let started = Instant::now();
    for round in 0.. {
        if round > 0 {
            tokio::time::sleep(renew / 2).await;
        }
        // a store that keeps failing: give up in the end
        if started.elapsed() > expires + (4 * renew).max(CALL) {
            return Err(Error::Locked(format!(
                "{place} could not be read or taken over in time; try again, or see the store's logs"
            )));
        }
        let current = match call(read(store)).await {
            Ok(Some(c)) => c,
            // gone between two calls: create it after all
            Ok(None) => {
                let sent = Instant::now();
                match call(put(store, holder, PutMode::Create)).await {
                    Ok(v) => return Ok((v, sent)),
                    Err(e) if unclear(&e) => {
                        unknown = unknown.or(Some(sent));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e @ Error::Locked(_)) => return Err(e),
            Err(e) => {
                warn!(error = %e, "could not read the data root's lease; trying again");
                continue;
            }
        };
        // a write of this run that landed with its answer lost
        if same_run(&current.holder, holder) {
            return Ok((current.version, unknown.unwrap_or(started)));
        }
        // another run's lease: no earlier write of this one can land now
        // (each was conditional on a version that is gone)
        unknown = None;
        let unchanged_for = match &watched {
            _ if current.holder.released => Duration::ZERO,
            Some((v, since)) if *v == current.version => since.elapsed(),
            Some(_) => {
                let h = &current.holder;
                return Err(Error::Locked(format!(
                    "run {} on {} (pid {}) holds the data root since {} and renews its lease ({place}, last at {}); wait for it to finish",
                    h.run_id, h.host, h.pid, h.acquired_at, h.renewed_at
                )));
            }
            None => {
                watched = Some((current.version.clone(), Instant::now()));
                Duration::ZERO
            }
        };
        if current.holder.released || unchanged_for >= expires {
            if !current.holder.released {
                warn!(
                    run_id = %current.holder.run_id,
                    "taking over the lease of a run that stopped renewing it"
                );
            }
            let sent = Instant::now();
            match call(put(store, holder, PutMode::Update(current.version))).await {
                Ok(v) => return Ok((v, sent)),
                // another run won (its version shows next), or the answer was
                // lost (the lease names this run next)
                Err(e) if unclear(&e) => {
                    unknown = Some(sent);
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        if !said {
            info!(
                run_id = %current.holder.run_id,
                "the data root's lease is held: watching whether its run renews it"
            );
            said = true;
        }
    }
    unreachable!("the rounds above end by returning")
}

/// The lease, if there is one. One that does not parse is refused, not
/// taken over: it may be a newer attune's.
pub async fn read(store: &dyn ObjectStore) -> Result<Option<Current>> {
    let got = match store.get(&Path::from(LEASE)).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let version = UpdateVersion {
        e_tag: got.meta.e_tag.clone(),
        version: got.meta.version.clone(),
    };
    let written = got.meta.last_modified;
    let bytes = got.bytes().await?;
    let holder = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Locked(format!(
            "{LEASE} is not a lease this attune reads ({e}); if no run is going, delete it"
        ))
    })?;
    Ok(Some(Current {
        holder,
        version,
        written,
    }))
}

/// Writes the lease in `mode`; an existing lease (create) or another
/// version, or none (update), is [`Error::Locked`].
async fn put(store: &dyn ObjectStore, holder: &Holder, mode: PutMode) -> Result<UpdateVersion> {
    let update = matches!(mode, PutMode::Update(_));
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
        Err(object_store::Error::NotFound { .. }) if update => {
            Err(Error::Locked(format!("{LEASE} was removed by another run")))
        }
        Err(object_store::Error::NotImplemented { .. }) => Err(Error::Config(format!(
            "the data root's store does not take conditional writes, which its lock ({LEASE}) needs; with S3 do not set aws_conditional_put=disabled, or set store_lease = false under [nightly] to lock on this machine only"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Marks the lease released, only if it is still this run's version (a
/// delete cannot be made conditional, and would remove a lease another run
/// took over in between).
async fn release(store: &dyn ObjectStore, holder: &Holder, version: UpdateVersion) {
    let done = Holder {
        released: true,
        renewed_at: now_rfc3339(),
        ..holder.clone()
    };
    let mut version = version;
    for attempt in 0..2 {
        match call(put(store, &done, PutMode::Update(version.clone()))).await {
            Ok(_) => return debug!("the data root's lease released"),
            // a renewal abandoned on the way out may have landed: still ours?
            Err(Error::Locked(_)) if attempt == 0 => match call(read(store)).await {
                Ok(Some(c)) if same_run(&c.holder, holder) && !c.holder.released => {
                    version = c.version;
                }
                _ => return debug!("the lease is not this run's any more: left alone"),
            },
            Err(e) => {
                return warn!(error = %e, "could not release the data root's lease; it expires on its own");
            }
        }
    }
}

/// Whether a live lease holds `storage`'s root (for `attune doctor` and
/// `attune runs`): one not released and written within [`EXPIRES`].
pub async fn is_held(storage: &Storage) -> Result<bool> {
    Ok(read(storage.store().as_ref())
        .await?
        .is_some_and(|c| !c.expired(Utc::now(), EXPIRES)))
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

    async fn holder_of(store: &dyn ObjectStore) -> Option<Current> {
        read(store).await.expect("read")
    }

    const FAST: Duration = Duration::from_millis(40);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_live_holder_turns_the_next_run_away_and_a_released_lease_is_free() {
        let storage = memory_root();
        let first = Lease::acquire_with(&storage, "run-1", FAST, EXPIRES).expect("free");
        assert!(is_held(&storage).await.expect("probe"));
        // the second run sees the lease renewed while it watches
        let err = Lease::acquire_with(&storage, "run-2", FAST, EXPIRES).expect_err("held");
        let text = err.to_string();
        assert!(matches!(err, Error::Locked(_)), "{err:?}");
        assert!(
            text.contains("run-1") && text.contains("renews its lease"),
            "{text}"
        );
        assert!(!first.lost());
        drop(first);
        assert!(!is_held(&storage).await.expect("probe"), "released on drop");
        // released: taken at once, without watching for EXPIRES
        let second = Lease::acquire_with(&storage, "run-2", FAST, EXPIRES).expect("free again");
        let current = holder_of(storage.store().as_ref()).await.expect("lease");
        assert_eq!(current.holder.run_id, "run-2");
        drop(second);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_left_by_a_killed_run_is_waited_out_and_taken_over() {
        let storage = memory_root();
        let store = storage.store();
        // what a killed run leaves: a lease nobody renews
        let dead = Holder {
            run_id: "dead".into(),
            host: "h".into(),
            pid: 1,
            acquired_at: now_rfc3339(),
            renewed_at: now_rfc3339(),
            released: false,
        };
        put(store.as_ref(), &dead, PutMode::Create)
            .await
            .expect("left behind");
        // the run gives up `renew` after its last write: the watch (longer)
        // must not count against the lease it then holds
        let (renew, expires) = (Duration::from_millis(200), Duration::from_millis(400));
        let started = Instant::now();
        let next = Lease::acquire_with(&storage, "next", renew, expires).expect("taken over");
        assert!(
            !next.lost(),
            "counted from the takeover, not from the watch"
        );
        // watched unchanged for `expires` on this machine's clock first
        assert!(started.elapsed() >= expires, "{:?}", started.elapsed());
        // and held on: renewed
        let took = holder_of(store.as_ref()).await.expect("lease");
        assert_eq!(took.holder.run_id, "next");
        let mut renewed = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let current = holder_of(store.as_ref()).await.expect("lease");
            if current.holder.renewed_at > took.holder.renewed_at {
                renewed = true;
                break;
            }
        }
        assert!(renewed, "the run that took it over renews it");
        drop(next);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_whose_lease_was_taken_over_knows_and_leaves_it_alone() {
        let storage = memory_root();
        let store = storage.store();
        let lease = Lease::acquire_with(&storage, "run-1", FAST, EXPIRES).expect("free");
        let first = holder_of(store.as_ref()).await.expect("lease");
        let mut later = first.clone();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            later = holder_of(store.as_ref()).await.expect("lease");
            if later.holder.renewed_at > first.holder.renewed_at {
                break;
            }
        }
        assert_eq!(later.holder.run_id, "run-1");
        assert!(later.holder.renewed_at > first.holder.renewed_at, "renewed");
        // another run takes it over between two renewals (as if this one
        // had stalled past expiry)
        let other = Holder {
            run_id: "run-2".into(),
            ..later.holder.clone()
        };
        let mut version = later.version;
        for _ in 0..50 {
            match put(store.as_ref(), &other, PutMode::Update(version.clone())).await {
                Ok(_) => break,
                Err(_) => version = holder_of(store.as_ref()).await.expect("lease").version,
            }
        }
        for _ in 0..100 {
            if lease.lost() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        assert!(lease.lost(), "the next renewal found it gone");
        drop(lease);
        let current = holder_of(store.as_ref()).await.expect("still there");
        assert_eq!(
            current.holder.run_id, "run-2",
            "the other run's lease is left alone"
        );
        assert!(!current.holder.released);
    }

    /// The run's own count, whatever the lease thread does: lost once no
    /// write landed for `give_up`, or once seen taken over.
    #[test]
    fn the_run_counts_itself_lost_without_the_lease_thread() {
        let held = Held::new(Duration::from_millis(80));
        assert!(!held.lost());
        std::thread::sleep(Duration::from_millis(100));
        assert!(held.lost(), "no write landed for give_up");
        held.wrote(Instant::now());
        assert!(!held.lost());
        held.taken_over.store(true, Ordering::SeqCst);
        assert!(held.lost());
    }

    #[tokio::test]
    async fn a_lease_this_attune_cannot_read_is_refused_not_taken_over() {
        let storage = memory_root();
        let store = storage.store();
        store
            .put(
                &Path::from(LEASE),
                PutPayload::from_static(b"{\"owner\": 1}"),
            )
            .await
            .expect("put");
        let err = read(store.as_ref()).await.expect_err("unreadable");
        assert!(matches!(err, Error::Locked(_)), "{err:?}");
    }
}
