//! Which jobs of a nightly run may run at once.
//!
//! The jobs after ingest form a DAG by the marts each reads ([`needs`]).
//! A job starts as soon as every job it needs is done (or, for the ones it
//! reads only at its end, [`late_needs`], has started), up to
//! `[nightly] parallel_jobs` at a time. Most jobs keep about one and a half
//! of two cores busy (their serial phases: model fits, the audit's tests,
//! writing Parquet), so two independent ones overlap into the idle half.
//! Only one [`HEAVY`] job runs at a time, whatever `parallel_jobs` says:
//! each holds tables of every customer's history, 1.4 to 2.0 GiB at a
//! million customers (tests/bench/HISTORY.md), and two of them together
//! would pass the 3 GiB the whole run may use.
//!
//! [`super::JOBS`] lists the jobs in an order that respects [`needs`], so
//! `parallel_jobs = 1` runs them one after the other in that order.

use super::JOBS;

/// Jobs that hold a table of every customer's history in memory.
pub const HEAVY: [&str; 4] = ["transform", "value", "empathy", "fairness"];

/// The jobs whose outputs `job` reads (besides the lake, which every job
/// after ingest reads): segment reads `customer_features`; voice the
/// segments (its scores by segment); value the features and the segments;
/// empathy the segments and the purchase days value folded (it scores the
/// customers' words itself, with the voice job's scorer, rather than wait
/// for `feedback_scored`; without value's fold it reads the orders); roi value's
/// lifetime values and currency; fairness the decisions of segment, voice
/// and value; privacy every mart; the report and retention everything.
pub fn needs(job: &str) -> &'static [&'static str] {
    match job {
        "ingest" | "transform" => &[],
        "segment" => &["transform"],
        "voice" | "value" => &["transform", "segment"],
        "empathy" => &["transform", "segment", "value"],
        "roi" => &["transform", "value"],
        "fairness" => &["transform", "segment", "voice", "value"],
        // privacy, report and retention: every job before them
        other => {
            let at = JOBS.iter().position(|j| *j == other).unwrap_or(JOBS.len());
            &JOBS[1..at]
        }
    }
}

/// The jobs among `job`'s [`needs`] whose outputs it reads only at its
/// end, so that it may start once they have started rather than finished
/// ([`next`] with `early`): voice scores every message before it breaks
/// the scores down by segment (`crate::voice::run_after`). The job waits
/// for them itself, where it reads them: the nightly's `run_job` hands it
/// `late::Late::ready`, so a job added here must take it. Voice beside the
/// segment job instead of after it, at a million customers: incremental
/// nights of 38.2 s on average against 40.6 s, five alternated
/// (tests/bench/HISTORY.md, session 55); the segment job alone keeps
/// only about 1.15 of the two cores busy.
pub fn late_needs(job: &str) -> &'static [&'static str] {
    match job {
        "voice" => &["segment"],
        _ => &[],
    }
}

/// `job`'s direct and indirect [`needs`], in the order of [`JOBS`]: the
/// outputs whose digests make its fingerprint.
pub fn upstream(job: &str) -> Vec<&'static str> {
    let mut all: Vec<&'static str> = Vec::new();
    let mut todo: Vec<&'static str> = needs(job).to_vec();
    while let Some(j) = todo.pop() {
        if !all.contains(&j) {
            all.push(j);
            todo.extend_from_slice(needs(j));
        }
    }
    all.sort_by_key(|j| JOBS.iter().position(|x| x == j));
    all
}

/// The first of `pending` (in their order) that may start now: every job
/// it needs is `done`, fewer than `parallel` jobs are `running`, and no
/// other [`HEAVY`] job is among them when it is one. With `early`, a job's
/// [`late_needs`] may still be `running` (never still pending: the job
/// would wait on a job that cannot start while it holds a slot).
pub fn next(
    pending: &[&'static str],
    running: &[&'static str],
    done: &[&'static str],
    parallel: usize,
    early: bool,
) -> Option<&'static str> {
    if running.len() >= parallel.max(1) {
        return None;
    }
    let heavy = |j: &str| HEAVY.contains(&j);
    let heavy_running = running.iter().any(|j| heavy(j));
    let ready = |job: &str, n: &&str| {
        done.contains(n) || (early && late_needs(job).contains(n) && running.contains(n))
    };
    pending
        .iter()
        .copied()
        .find(|job| needs(job).iter().all(|n| ready(job, n)) && !(heavy(job) && heavy_running))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_needs_only_jobs_listed_before_it() {
        for (at, job) in JOBS.iter().enumerate() {
            for n in needs(job) {
                let before = JOBS.iter().position(|j| j == n).expect("a known job");
                assert!(before < at, "{job} needs {n}, listed after it");
            }
        }
        assert_eq!(needs("report"), &JOBS[1..9]);
        assert!(needs("retention").contains(&"report"));
        assert!(needs("privacy").contains(&"fairness") && !needs("privacy").contains(&"report"));
    }

    #[test]
    fn upstream_is_the_transitive_closure_in_job_order() {
        assert_eq!(upstream("roi"), ["transform", "segment", "value"]);
        assert_eq!(upstream("empathy"), ["transform", "segment", "value"]);
        assert_eq!(upstream("transform"), Vec::<&str>::new());
        assert_eq!(upstream("report").len(), 8);
    }

    /// Runs the whole nightly through [`next`], finishing the earliest
    /// started job first; returns the groups of jobs that ran together.
    fn simulate(parallel: usize, early: bool) -> Vec<Vec<&'static str>> {
        let mut pending: Vec<&'static str> = JOBS[1..].to_vec();
        let (mut running, mut done, mut together) = (Vec::new(), Vec::new(), Vec::new());
        while !(pending.is_empty() && running.is_empty()) {
            while let Some(job) = next(&pending, &running, &done, parallel, early) {
                pending.retain(|j| *j != job);
                running.push(job);
            }
            assert!(!running.is_empty(), "nothing can start: {pending:?}");
            together.push(running.clone());
            done.push(running.remove(0));
        }
        together
    }

    #[test]
    fn one_at_a_time_is_the_listed_order() {
        for early in [false, true] {
            let order: Vec<&str> = simulate(1, early).into_iter().map(|r| r[0]).collect();
            assert_eq!(order, &JOBS[1..]);
        }
    }

    #[test]
    fn two_at_a_time_overlap_independent_jobs_but_never_two_heavy_ones() {
        let together = simulate(2, false);
        for group in &together {
            assert!(group.len() <= 2);
            assert!(
                group.iter().filter(|j| HEAVY.contains(j)).count() <= 1,
                "{group:?}"
            );
            for job in group {
                for other in group {
                    assert!(
                        !upstream(job).contains(other),
                        "{job} ran beside {other}, which it needs"
                    );
                }
            }
        }
        assert!(together.contains(&vec!["voice", "value"]), "{together:?}");
        assert!(
            together
                .iter()
                .any(|g| g.contains(&"empathy") && g.contains(&"roi")),
            "{together:?}"
        );
        // many slots change nothing about the heavy rule
        assert!(
            simulate(8, true)
                .iter()
                .all(|g| g.iter().filter(|j| HEAVY.contains(j)).count() <= 1)
        );
    }

    #[test]
    fn early_voice_starts_beside_the_segments_it_reads_last_never_before_them() {
        assert_eq!(late_needs("voice"), ["segment"]);
        for job in JOBS {
            for n in late_needs(job) {
                assert!(needs(job).contains(n), "{job}'s late need {n} is a need");
            }
        }
        // not before the segment job has started, even with a free slot
        assert_eq!(
            next(&["voice", "value"], &[], &["transform"], 2, true),
            None
        );
        assert_eq!(
            next(&["voice", "value"], &["segment"], &["transform"], 2, true),
            Some("voice")
        );
        assert_eq!(
            next(&["voice", "value"], &["segment"], &["transform"], 2, false),
            None
        );
        let together = simulate(2, true);
        assert!(together.contains(&vec!["segment", "voice"]), "{together:?}");
        assert!(together.contains(&vec!["voice", "value"]), "{together:?}");
        for group in &together {
            assert!(group.len() <= 2);
            assert!(group.iter().filter(|j| HEAVY.contains(j)).count() <= 1);
            for job in group {
                for other in group {
                    assert!(
                        !upstream(job).contains(other) || late_needs(job).contains(other),
                        "{job} ran beside {other}, which it needs at its start"
                    );
                }
            }
        }
    }
}
