//! The privacy job's lake scan, started before the privacy job's turn.
//!
//! The privacy job reads every string of every lake partition and of the
//! run date's marts. The jobs between ingest and privacy write marts only,
//! so the lake part can run beside them (see [`crate::privacy::scan_lake`])
//! and the privacy job then scans only the marts.

use std::sync::Mutex;

use chrono::NaiveDate;
use tokio::task::JoinHandle;

use crate::Result;
use crate::context::JobContext;
use crate::privacy::{self, LakeScan};

/// A lake scan under way for the privacy job, or none.
#[derive(Default)]
pub struct EarlyScan(Mutex<Option<JoinHandle<Result<LakeScan>>>>);

impl EarlyScan {
    /// Starts the lake scan for `date` as its own task.
    pub fn start(&self, ctx: &JobContext, date: NaiveDate) {
        let ctx = ctx.clone();
        let task = tokio::spawn(super::progress::JOB.scope("privacy", async move {
            privacy::scan_lake(&ctx, date).await
        }));
        if let Some(earlier) = self.slot().replace(task) {
            earlier.abort();
        }
    }

    /// The scan's result when one was started; an error of the scan is the
    /// privacy job's.
    pub async fn take(&self) -> Result<Option<LakeScan>> {
        let Some(task) = self.slot().take() else {
            return Ok(None);
        };
        let scan = task
            .await
            .map_err(super::panics::joined("the privacy job's lake scan"))??;
        Ok(Some(scan))
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<Result<LakeScan>>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for EarlyScan {
    /// A nightly that stops before privacy, or skips it, stops the scan.
    fn drop(&mut self) {
        if let Some(task) = self.slot().take() {
            task.abort();
        }
    }
}
