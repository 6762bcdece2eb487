//! The privacy job's lake scan, started before the privacy job's turn.
//!
//! The privacy job reads every string of every lake partition and of the
//! run date's marts. The jobs between ingest and privacy write marts only,
//! so the lake part can run beside them (see [`crate::privacy::scan_lake`]),
//! and once only the last of them run, the marts written so far
//! ([`crate::privacy::scan_marts_early`]): the privacy job then scans only
//! the mart files written or rewritten since.

use std::sync::Mutex;

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
}

impl EarlyScan {
    /// Starts the lake scan for `date` as its own task. Once it is done,
    /// the task scans the run date's marts too if [`EarlyScan::scan_marts`]
    /// is called before the privacy job takes the scan.
    pub fn start(&self, ctx: &JobContext, date: NaiveDate) {
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
        if let Some(earlier) = lock(&self.task).replace(task) {
            earlier.abort();
        }
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
