//! Jobs started before every job they read has finished.
//!
//! A job's [`super::schedule::late_needs`] are outputs it reads only at its
//! end. On a night whose transform ran, such a job starts once they have
//! started, and waits for them where it reads them ([`Late::ready`]). Its
//! skip check is left out then: its fingerprint holds the transform's
//! outputs, which the transform has just rewritten, so it could not have
//! matched; the stamp it saves holds the late jobs' outputs as they were
//! when they finished, the same fingerprint a later night computes.

use std::collections::HashMap;

use tokio::sync::watch;

use crate::{Error, Result};

/// Where a job another one waits for stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Running,
    /// Finished; the digest of its outputs when it has one.
    Done(Option<String>),
    /// Failed, or the night stopped before it finished.
    Stopped,
}

/// The nightly's side: one signal per job that a started job waits for.
#[derive(Default)]
pub struct Signals {
    senders: HashMap<&'static str, watch::Sender<State>>,
}

impl Signals {
    /// A wait on `job`, which has started and not finished.
    pub fn wait_for(&mut self, job: &'static str) -> Wait {
        let rx = self
            .senders
            .entry(job)
            .or_insert_with(|| watch::channel(State::Running).0)
            .subscribe();
        Wait { job, rx }
    }

    /// `job` finished with outputs of digest `outputs`.
    pub fn done(&mut self, job: &str, outputs: Option<String>) {
        if let Some(tx) = self.senders.remove(job) {
            tx.send_replace(State::Done(outputs));
        }
    }

    /// The night stops: every job still waited for will not finish.
    pub fn stop_all(&mut self) {
        for (_, tx) in self.senders.drain() {
            tx.send_replace(State::Stopped);
        }
    }
}

/// A wait on one job.
#[derive(Debug, Clone)]
pub struct Wait {
    job: &'static str,
    rx: watch::Receiver<State>,
}

/// The job's side: the jobs it still waits for (none when they had
/// finished before it started).
#[derive(Debug, Clone, Default)]
pub struct Late {
    waits: Vec<Wait>,
}

impl Late {
    pub fn new(waits: Vec<Wait>) -> Late {
        Late { waits }
    }

    pub fn is_empty(&self) -> bool {
        self.waits.is_empty()
    }

    /// Waits until every job waited for has finished; the digests of their
    /// outputs. An error names a job that failed or that the night stopped
    /// before. May be awaited any number of times.
    pub async fn ready(&self) -> Result<Vec<(&'static str, String)>> {
        let mut digests = Vec::new();
        for w in &self.waits {
            let mut rx = w.rx.clone();
            let state = rx
                .wait_for(|s| *s != State::Running)
                .await
                .map(|s| s.clone())
                // the nightly dropped the signal: it stopped
                .unwrap_or(State::Stopped);
            match state {
                State::Done(Some(d)) => digests.push((w.job, d)),
                State::Done(None) => {}
                State::Running | State::Stopped => {
                    return Err(Error::Internal(format!(
                        "the {} job, whose outputs this job reads, did not finish",
                        w.job
                    )));
                }
            }
        }
        Ok(digests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_ends_with_the_job_and_gives_its_digest_to_every_reader() {
        let mut signals = Signals::default();
        let late = Late::new(vec![signals.wait_for("segment")]);
        assert!(!late.is_empty());
        let waiting = tokio::spawn({
            let late = late.clone();
            async move { late.ready().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "ready before the job finished");
        signals.done("segment", Some("abc".into()));
        assert_eq!(waiting.await.unwrap().unwrap(), [("segment", "abc".into())]);
        // again, after the fact
        assert_eq!(late.ready().await.unwrap(), [("segment", "abc".into())]);
        assert_eq!(Late::default().ready().await.unwrap(), []);
    }

    #[tokio::test]
    async fn a_night_that_stops_ends_every_wait_with_an_error_naming_the_job() {
        let mut signals = Signals::default();
        let late = Late::new(vec![signals.wait_for("segment")]);
        let other = Late::new(vec![signals.wait_for("segment")]);
        signals.stop_all();
        let e = late.ready().await.unwrap_err().to_string();
        assert!(e.contains("segment job"), "{e}");
        assert!(other.ready().await.is_err());
        // a dropped nightly is a stopped one
        let mut signals = Signals::default();
        let late = Late::new(vec![signals.wait_for("segment")]);
        drop(signals);
        assert!(late.ready().await.is_err());
    }
}
