//! The privacy job's lake scan, started before the privacy job's turn.
//!
//! The privacy job reads every string of every lake partition and of the
//! run date's marts. The jobs between ingest and privacy write marts only,
//! so the lake part can run beside them (see [`crate::privacy::scan_lake`]),
//! and once only the last of them run, the marts written so far
//! ([`crate::privacy::scan_marts_early`]): the privacy job then scans only
//! the mart files written or rewritten since.
//!
//! When the scan will carry the last night's counts (a day's files read,
//! about 1.3 s at a million customers), it starts with the transform,
//! whose serial phases leave part of a core idle; after it, the scan took
//! that much from the segment and voice jobs beside it. A full scan (every
//! file: the first night, weekly) still waits for the transform, which on
//! such a night keeps both cores busy itself.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::NaiveDate;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Result;
use crate::context::JobContext;
use crate::privacy::{self, LakeScan};

/// A lake scan under way for the privacy job, or none, and the signal that
/// the marts written so far may be scanned after it.
#[derive(Default)]
pub struct EarlyScan {
    task: Mutex<Option<JoinHandle<Result<LakeScan>>>>,
    marts: Mutex<Option<oneshot::Sender<()>>>,
    started: AtomicBool,
    with_transform: AtomicBool,
}

impl EarlyScan {
    /// Lets [`EarlyScan::start_with_transform`] start the scan: for a night
    /// whose scan will most likely carry the last one's counts
    /// ([`crate::privacy::scan_cache::likely_carried`]).
    pub fn beside_transform(&self) {
        self.with_transform.store(true, Ordering::Relaxed);
    }

    /// Starts the scan when [`EarlyScan::beside_transform`] allowed it:
    /// called by the transform once its skip check is past, so that a
    /// re-run over unchanged inputs does not scan for a privacy job it
    /// then skips.
    pub fn start_with_transform(&self, ctx: &JobContext, date: NaiveDate) {
        if self.with_transform.load(Ordering::Relaxed) {
            self.start(ctx, date);
        }
    }

    /// Starts the lake scan for `date` as its own task, unless it was
    /// started already. Once it is done, the task scans the run date's
    /// marts too if [`EarlyScan::scan_marts`] is called before the privacy
    /// job takes the scan.
    pub fn start(&self, ctx: &JobContext, date: NaiveDate) {
        if self.started.swap(true, Ordering::Relaxed) {
            return;
        }
        let ctx = ctx.clone();
        let (tell, told) = oneshot::channel();
        let task = tokio::spawn(super::progress::JOB.scope("privacy", async move {
            let lake = privacy::scan_lake(&ctx, date).await?;
            // an error means the sender went unused: the privacy job's turn
            // came first, and it scans every mart itself
            match told.await {
                Ok(()) => privacy::scan_marts_early(&ctx, date, lake).await,
                Err(_) => Ok(lake),
            }
        }));
        *lock(&self.task) = Some(task);
        *lock(&self.marts) = Some(tell);
    }

    /// Lets the scan go on to the marts written so far: for when every job
    /// before privacy has started, so that only the last ones' files are
    /// left for the privacy job's turn.
    pub fn scan_marts(&self) {
        if let Some(tell) = lock(&self.marts).take() {
            let _ = tell.send(());
        }
    }

    /// The scan's result when one was started; an error of the scan is the
    /// privacy job's.
    pub async fn take(&self) -> Result<Option<LakeScan>> {
        // unsent, the signal is dropped, and the task ends after the lake
        drop(lock(&self.marts).take());
        let Some(task) = lock(&self.task).take() else {
            return Ok(None);
        };
        let scan = task
            .await
            .map_err(super::panics::joined("the privacy job's lake scan"))??;
        Ok(Some(scan))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for EarlyScan {
    /// A nightly that stops before privacy, or skips it, stops the scan.
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}
