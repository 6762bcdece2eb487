//! The nightly run: every job for a date or a range, one run per data root
//! at a time, resumable, with a manifest under `runs/`. After ingest,
//! independent jobs run at once as [`schedule`] allows, each as its own
//! task.
//!
//! A range (a backfill, or missed nights) ingests every day in order, then
//! builds the marts and the report once, as of its last day: marts are
//! snapshots of all history up to a date, so the intermediate snapshots
//! would be overwritten by nothing and read by nobody.
//!
//! A job whose inputs have not changed since it last completed for the date,
//! and whose outputs are still as it left them, is skipped (see
//! [`stamps`]); `--force` runs it anyway. After a crash, the next run
//! therefore redoes only what did not complete.

pub mod early;
pub mod late;
pub mod lease;
pub mod lock;
pub mod panics;
pub mod progress;
pub mod schedule;
pub mod stamps;

use std::collections::HashMap;

use chrono::NaiveDate;
use futures::StreamExt;
use object_store::path::Path;
use tracing::{error, info};

use self::stamps::{Place, Stamp};
use crate::context::JobContext;
use crate::manifest::{JobRecord, JobTimer, RunManifest};
use crate::storage::{landing_dir, partition_dir};
use crate::{
    Error, Result, empathy, fairness, ingest, privacy, report, roi, segment, transform, value,
    voice,
};

pub use self::lock::RunLock;

/// The jobs of a nightly run, in an order that respects what each reads
/// ([`schedule::needs`]; one at a time they run in this order): segment before voice (voice breaks
/// its scores down by segment); value and empathy after segment too (churn
/// rates and the index by segment); roi after value (it
/// needs CLTV); fairness after every job whose decisions it audits; privacy
/// after every job that writes a mart; the report last, from every mart.
/// `retention` runs only when
/// `[privacy] retention_enabled` is set, and always runs then (it is cheap
/// and idempotent).
pub static JOBS: [&str; 11] = [
    "ingest",
    "transform",
    "segment",
    "voice",
    "value",
    "empathy",
    "roi",
    "fairness",
    "privacy",
    "report",
    "retention",
];

/// Which dates and jobs to run.
#[derive(Debug, Clone, Default)]
pub struct NightlyParams {
    pub dates: Vec<NaiveDate>,
    /// Run only these jobs (all when empty).
    pub only: Vec<String>,
    /// Start at this job (skip the ones before it).
    pub from_job: Option<String>,
    /// Run jobs even when their inputs have not changed.
    pub force: bool,
}

/// Outcome of a nightly run.
#[derive(Debug)]
pub struct NightlyOutcome {
    pub manifest: RunManifest,
    pub manifest_path: String,
    pub ingest: Option<ingest::IngestOutcome>,
    pub transform: Option<transform::TransformOutcome>,
    pub segment: Option<segment::SegmentOutcome>,
    pub voice: Option<voice::VoiceOutcome>,
    pub privacy: Option<privacy::PrivacyOutcome>,
    pub value: Option<value::ValueOutcome>,
    pub empathy: Option<empathy::EmpathyOutcome>,
    pub roi: Option<roi::RoiOutcome>,
    pub fairness: Option<fairness::FairnessOutcome>,
    pub report: Option<report::ReportOutcome>,
}

/// What one job reported, for the manifest.
struct Ran {
    rows_in: u64,
    rows_out: u64,
    warnings: Vec<String>,
    details: serde_json::Value,
    /// Findings at or above the job's audit gate; 0 for ungated jobs.
    gate_findings: usize,
}

/// Runs the nightly sequence. The manifest is written even when a job fails.
pub async fn run(ctx: &JobContext, params: &NightlyParams) -> Result<NightlyOutcome> {
    for j in params.only.iter().chain(&params.from_job) {
        if !JOBS.contains(&j.as_str()) {
            return Err(Error::Config(format!(
                "unknown job `{j}` (jobs: {})",
                JOBS.join(", ")
            )));
        }
    }
    if params.only.iter().any(|j| j == "retention") && !ctx.cfg.retention_enabled {
        return Err(Error::Config(
            "`--only retention`, but retention is off: set `retention_enabled = true` under `[privacy]` in attune.toml, or run `attune retention`".into(),
        ));
    }
    let last = *params
        .dates
        .last()
        .ok_or_else(|| Error::Config("no dates to run".into()))?;
    let lock = RunLock::acquire(ctx)?;
    if !params.force {
        refuse_a_new_key(ctx).await?;
    }
    let mut manifest = RunManifest::start(ctx, "nightly", &params.dates);
    manifest.save(&ctx.storage).await?;
    let first = params
        .from_job
        .as_deref()
        .and_then(|j| JOBS.iter().position(|x| *x == j))
        .unwrap_or(0);
    let wanted = |job: &str| {
        let at = JOBS.iter().position(|x| *x == job).unwrap_or(usize::MAX);
        at >= first && (params.only.is_empty() || params.only.iter().any(|j| j == job))
    };
    let mut outcome = NightlyOutcome {
        manifest_path: String::new(),
        manifest: manifest.clone(),
        ingest: None,
        transform: None,
        segment: None,
        voice: None,
        privacy: None,
        value: None,
        empathy: None,
        roi: None,
        fairness: None,
        report: None,
    };
    let mut failure = None;
    // (job, findings) of every gated job that found something, run or skipped.
    let mut tripped: Vec<(String, usize)> = Vec::new();

    let mut progress = progress::Progress::new();
    if wanted("ingest") {
        progress.start("ingest");
        match run_ingest(ctx, params, &lock, &mut outcome).await {
            Ok(record) => settle(&mut manifest, &mut progress, record),
            Err((record, e)) => {
                settle(&mut manifest, &mut progress, record);
                failure = Some(e);
            }
        }
        save_progress(ctx, &manifest).await;
    }

    // Everything after ingest reads the lake as a whole and the outputs of
    // the jobs it needs (`schedule::needs`), for the last date. A job not
    // wanted in this run counts as done: its outputs are as they are.
    let mut lake = String::new();
    // ingest is done and retention, the next to write the lake, thaws it
    let _frozen = crate::lake_listings::FrozenLake::begin(&ctx.storage);
    let mut written: HashMap<&'static str, String> = HashMap::new();
    let mut pending: Vec<&'static str> = Vec::new();
    let mut done: Vec<&'static str> = Vec::new();
    if failure.is_none() {
        match stamps::digest(&ctx.storage, &[Place::Prefix(Path::from("lake"))]).await {
            Ok(d) => lake = d,
            Err(e) => failure = Some(e),
        }
    }
    for job in JOBS.iter().skip(1).copied() {
        if failure.is_some() {
            break;
        }
        if job == "retention" {
            if wanted(job) && ctx.cfg.retention_enabled {
                pending.push(job);
            }
            continue;
        }
        if wanted(job) {
            pending.push(job);
            continue;
        }
        let digest = match outputs(ctx, job, last) {
            Ok(places) => stamps::digest(&ctx.storage, &places).await,
            Err(e) => Err(e),
        };
        match digest {
            Ok(d) => {
                written.insert(job, d);
                done.push(job);
            }
            Err(e) => {
                failure = Some(failed(
                    &mut manifest,
                    &mut progress,
                    JobTimer::start(job),
                    e,
                ))
            }
        }
    }

    // The privacy job's lake scan starts once the transform has run, beside
    // the jobs before privacy: 1.5 s off a night at a million customers; a
    // scan that will carry the last night's counts starts with the
    // transform instead (see `early`). Not when the jobs run one at a time,
    // nor with or after a skipped transform (a re-run over unchanged inputs
    // would scan for a privacy job it then skips).
    let scan = std::sync::Arc::new(early::EarlyScan::default());
    let mut scan_early =
        failure.is_none() && pending.contains(&"privacy") && ctx.cfg.parallel_jobs > 1;
    if scan_early
        && pending.contains(&"transform")
        && privacy::scan_cache::likely_carried(&ctx.storage, last).await
    {
        scan.beside_transform();
    }
    let mut running = futures::stream::FuturesUnordered::new();
    let mut in_flight: Vec<&'static str> = Vec::new();
    let mut signals = late::Signals::default();
    loop {
        let transformed = || {
            manifest
                .jobs
                .iter()
                .any(|j| j.job == "transform" && j.status == "ok")
        };
        if scan_early && failure.is_none() && transformed() {
            scan.start(ctx, last);
            scan_early = false;
        }
        // Jobs may start beside the jobs they read last only when the
        // transform ran tonight (see `late`): otherwise their skip check
        // needs every input's digest first.
        let start_early = transformed();
        while failure.is_none() {
            let Some(job) = schedule::next(
                &pending,
                &in_flight,
                &done,
                ctx.cfg.parallel_jobs,
                start_early,
            ) else {
                break;
            };
            if let Err(e) = lock.still_held() {
                error!(error = %e, "stopping");
                failure = Some(e);
                break;
            }
            pending.retain(|j| *j != job);
            in_flight.push(job);
            progress.start(job);
            let upstream = Upstream {
                lake: lake.clone(),
                written: schedule::upstream(job)
                    .into_iter()
                    .filter_map(|j| Some((j, written.get(j)?.clone())))
                    .collect(),
                late: late::Late::new(
                    schedule::late_needs(job)
                        .iter()
                        .filter(|j| !done.contains(j))
                        .map(|j| signals.wait_for(j))
                        .collect(),
                ),
            };
            let task = progress::JOB.scope(
                job,
                step(ctx.clone(), job, last, upstream, params.force, scan.clone()),
            );
            let handle = tokio::spawn(task);
            running.push(async move { (job, handle.await) });
        }
        // Every job privacy waits for has started: the marts of those done
        // are final, and the scan of them fills what the last ones leave
        // of the cores (the audit alone keeps about one and a half busy).
        // Alternated at a million customers: privacy's turn 1.1-1.3 s
        // against 2.8-3.0 s, the same checks.
        if pending.contains(&"privacy")
            && schedule::needs("privacy")
                .iter()
                .all(|j| !pending.contains(j))
        {
            scan.scan_marts();
        }
        if failure.is_some() {
            signals.stop_all();
        }
        let Some((job, joined)) = running.next().await else {
            break;
        };
        in_flight.retain(|j| *j != job);
        let finished = joined.map_err(panics::joined("a nightly job"));
        let Stepped {
            timer,
            result,
            outcome: finished_outcome,
        } = match finished {
            Ok(s) => s,
            Err(e) => {
                failure = Some(failed(
                    &mut manifest,
                    &mut progress,
                    JobTimer::start(job),
                    e,
                ));
                save_progress(ctx, &manifest).await;
                continue;
            }
        };
        // A run that lost the root does not vouch for what it wrote: its
        // stamp is saved only while the lock is still held.
        let settled = match result {
            Ok(StepResult::Skipped(s)) => {
                info!(job, run_id = %s.run_id, "inputs unchanged: skipped");
                if s.gate_findings > 0 {
                    tripped.push((job.to_string(), s.gate_findings));
                }
                written.insert(job, s.outputs.clone());
                Ok(skipped(job, &s))
            }
            Ok(StepResult::Ran { ran, stamp }) => {
                let saved = match (&stamp, lock.still_held()) {
                    (_, Err(e)) => Err(e),
                    (Some(stamp), Ok(())) => stamps::save(&ctx.storage, stamp, last).await,
                    (None, Ok(())) => Ok(()),
                };
                match saved {
                    Ok(()) => {
                        if ran.gate_findings > 0 {
                            tripped.push((job.to_string(), ran.gate_findings));
                        }
                        if let Some(stamp) = stamp {
                            written.insert(job, stamp.outputs);
                        }
                        if let Some(o) = finished_outcome {
                            outcome.absorb(o);
                        }
                        Ok(timer.finish(ran.rows_in, ran.rows_out, ran.warnings, ran.details))
                    }
                    Err(e) => Err((timer, e)),
                }
            }
            Err(e) => Err((timer, e)),
        };
        match settled {
            Ok(record) => {
                settle(&mut manifest, &mut progress, record);
                done.push(job);
                signals.done(job, written.get(job).cloned());
            }
            Err((timer, e)) => {
                let e = failed(&mut manifest, &mut progress, timer, e);
                // the first failure is the night's: a job that waited for
                // a failed one (`late`) fails after it, for its sake
                failure.get_or_insert(e);
            }
        }
        save_progress(ctx, &manifest).await;
    }
    if failure.is_none() && !pending.is_empty() {
        failure = Some(Error::Internal(format!(
            "the nightly could not start {}: the jobs it needs did not finish",
            pending.join(", ")
        )));
    }

    drop(progress);

    // Audit gates trip only after every output, the report included, is written.
    let gate = match (&failure, tripped.first()) {
        (None, Some((job, findings))) => Some(Error::AuditGate {
            job: job.clone(),
            findings: *findings,
        }),
        _ => None,
    };
    manifest.status = match (&failure, &gate) {
        (Some(_), _) => "failed",
        (None, Some(_)) => "gate_tripped",
        (None, None) => "ok",
    }
    .into();
    manifest.finished_at = Some(crate::manifest::now_rfc3339());
    let path = manifest.save(&ctx.storage).await?;
    info!(run_id = %manifest.run_id, status = %manifest.status, "nightly run finished");
    if let Some(e) = failure.or(gate) {
        return Err(e);
    }
    outcome.manifest_path = ctx.storage.display(&path);
    outcome.manifest = manifest;
    Ok(outcome)
}

/// Ingests the dates whose landing exports changed since they were last
/// ingested (all of them with `--force`).
async fn run_ingest(
    ctx: &JobContext,
    params: &NightlyParams,
    lock: &RunLock,
    outcome: &mut NightlyOutcome,
) -> std::result::Result<JobRecord, (JobRecord, Error)> {
    let timer = JobTimer::start("ingest");
    let plan = async {
        let setup = stamps::setup_hash(ctx, "ingest")?;
        let mut todo = Vec::new();
        let mut skipped = Vec::new();
        for date in &params.dates {
            let inputs: Vec<Place> = ctx
                .cfg
                .ingest
                .tables
                .iter()
                .map(|t| Place::Prefix(landing_dir(t, *date)))
                .collect();
            let fp = stamps::fingerprint(
                &setup,
                "ingest",
                *date,
                &[stamps::digest(&ctx.storage, &inputs).await?],
            );
            let places = ingest_outputs(ctx, *date);
            let unchanged = match stamps::load(&ctx.storage, "ingest", *date).await? {
                Some(s) if !params.force && s.inputs == fp => {
                    stamps::digest(&ctx.storage, &places).await? == s.outputs
                }
                _ => false,
            };
            if unchanged {
                skipped.push(*date);
            } else {
                stamps::clear(&ctx.storage, "ingest", *date).await?;
                todo.push((*date, fp, places));
            }
        }
        Ok::<_, Error>((todo, skipped))
    };
    let (todo, skipped) = match plan.await {
        Ok(p) => p,
        Err(e) => return Err((timer.fail(&e), e)),
    };
    if todo.is_empty() {
        info!(
            dates = skipped.len(),
            "ingest: every date unchanged, skipped"
        );
        let mut r = timer.finish(
            0,
            0,
            Vec::new(),
            serde_json::json!({ "skipped_dates": skipped }),
        );
        r.status = "skipped".into();
        return Ok(r);
    }
    let dates: Vec<NaiveDate> = todo.iter().map(|(d, _, _)| *d).collect();
    match panics::contain("ingest", ingest::run(ctx, &dates)).await {
        Ok(o) => {
            // a run that lost the root does not vouch for what it wrote
            if let Err(e) = lock.still_held() {
                return Err((timer.fail(&e), e));
            }
            for (date, fp, places) in &todo {
                let stamped = async {
                    let written = stamps::digest(&ctx.storage, places).await?;
                    stamps::save(
                        &ctx.storage,
                        &Stamp {
                            job: "ingest".into(),
                            date: date.to_string(),
                            run_id: ctx.run_id.clone(),
                            inputs: fp.clone(),
                            outputs: written,
                            finished_at: crate::manifest::now_rfc3339(),
                            gate_findings: 0,
                        },
                        *date,
                    )
                    .await
                };
                if let Err(e) = stamped.await {
                    return Err((timer.fail(&e), e));
                }
            }
            let (rows_in, rows_out) = o.rows();
            let mut details = o.manifest_details();
            details["skipped_dates"] = serde_json::json!(skipped);
            let record = timer.finish(rows_in, rows_out, o.warnings.clone(), details);
            outcome.ingest = Some(o);
            Ok(record)
        }
        Err(e) => {
            error!(job = "ingest", error = %e, "job failed");
            Err((timer.fail(&e), e))
        }
    }
}

/// A job's outcome, kept in [`NightlyOutcome`] once the job is settled.
enum Finished {
    Transform(Box<transform::TransformOutcome>),
    Segment(Box<segment::SegmentOutcome>),
    Voice(Box<voice::VoiceOutcome>),
    Privacy(Box<privacy::PrivacyOutcome>),
    Value(Box<value::ValueOutcome>),
    Empathy(Box<empathy::EmpathyOutcome>),
    Roi(Box<roi::RoiOutcome>),
    Fairness(Box<fairness::FairnessOutcome>),
    Report(Box<report::ReportOutcome>),
}

impl NightlyOutcome {
    fn absorb(&mut self, finished: Finished) {
        match finished {
            Finished::Transform(o) => self.transform = Some(*o),
            Finished::Segment(o) => self.segment = Some(*o),
            Finished::Voice(o) => self.voice = Some(*o),
            Finished::Privacy(o) => self.privacy = Some(*o),
            Finished::Value(o) => self.value = Some(*o),
            Finished::Empathy(o) => self.empathy = Some(*o),
            Finished::Roi(o) => self.roi = Some(*o),
            Finished::Fairness(o) => self.fairness = Some(*o),
            Finished::Report(o) => self.report = Some(*o),
        }
    }
}

/// What a job's task hands back to the run: its timer, whether it was
/// skipped or ran, and its outcome.
struct Stepped {
    timer: JobTimer,
    result: Result<StepResult>,
    outcome: Option<Finished>,
}

enum StepResult {
    /// Inputs and outputs as the stamp of an earlier run left them.
    Skipped(Stamp),
    /// Ran; the stamp to save once the run still holds the root (none for
    /// retention, which is never skipped).
    Ran { ran: Ran, stamp: Option<Stamp> },
}

/// What a job reads of the night before it: the lake's digest, the output
/// digests of the jobs it needs that had finished when it started, and
/// those it waits for ([`late`]).
struct Upstream {
    lake: String,
    written: Vec<(&'static str, String)>,
    late: late::Late,
}

impl Upstream {
    /// The digests of the fingerprint: the lake's, then every job's in the
    /// order of [`schedule::upstream`] (`arrived`: the late ones').
    fn digests(&self, job: &str, arrived: &[(&'static str, String)]) -> Vec<String> {
        let mut digests = vec![self.lake.clone()];
        for j in schedule::upstream(job) {
            if let Some((_, d)) = self.written.iter().chain(arrived).find(|(w, _)| *w == j) {
                digests.push(d.clone());
            }
        }
        digests
    }
}

/// One job after ingest for `date`, as its own task: skipped when its
/// fingerprint (its settings, the date and the `upstream` digests: the lake
/// and the outputs of every job it needs) and its outputs are those its
/// last stamp recorded, else run. A job that started before some of the
/// jobs it needs finished ([`late`]) runs without the check, and its
/// fingerprint takes their outputs once they are done. Reading stamps and
/// digests can fail too (storage): such an error is the job's, so the
/// manifest says what stopped the run instead of staying `running`.
async fn step(
    ctx: JobContext,
    job: &'static str,
    date: NaiveDate,
    upstream: Upstream,
    force: bool,
    scan: std::sync::Arc<early::EarlyScan>,
) -> Stepped {
    let timer = JobTimer::start(job);
    if job == "retention" {
        let options = Default::default();
        let result = panics::contain(job, privacy::retention::run(&ctx, date, &options))
            .await
            .map(|o| StepResult::Ran {
                ran: Ran::of(&o, 0, 0, &[], 0),
                stamp: None,
            });
        return Stepped {
            timer,
            result,
            outcome: None,
        };
    }
    let mut outcome = None;
    let result = async {
        let places = outputs(&ctx, job, date)?;
        let other = stamps::digest(&ctx.storage, &other_inputs(&ctx, job, date)).await?;
        let setup = stamps::setup_hash(&ctx, job)?;
        let fingerprint = |arrived: &[(&'static str, String)]| {
            let mut digests = upstream.digests(job, arrived);
            digests.push(other.clone());
            stamps::fingerprint(&setup, job, date, &digests)
        };
        if !force
            && upstream.late.is_empty()
            && let Some(s) = stamps::load(&ctx.storage, job, date).await?
            && s.inputs == fingerprint(&[])
            && stamps::digest(&ctx.storage, &places).await? == s.outputs
        {
            return Ok(StepResult::Skipped(s));
        }
        stamps::clear(&ctx.storage, job, date).await?;
        let (ran, finished) =
            panics::contain(job, run_job(&ctx, job, date, &scan, &upstream.late)).await?;
        outcome = Some(finished);
        // at once when nothing was waited for; else the late jobs are done
        // (the job read their outputs) or its own run would have failed
        let fp = fingerprint(&upstream.late.ready().await?);
        let written = stamps::digest(&ctx.storage, &places).await?;
        let stamp = Stamp {
            job: job.to_string(),
            date: date.to_string(),
            run_id: ctx.run_id.clone(),
            inputs: fp,
            outputs: written,
            finished_at: crate::manifest::now_rfc3339(),
            gate_findings: ran.gate_findings,
        };
        Ok(StepResult::Ran {
            ran,
            stamp: Some(stamp),
        })
    }
    .await;
    Stepped {
        timer,
        result,
        outcome,
    }
}

/// Runs one job after ingest for `date`.
async fn run_job(
    ctx: &JobContext,
    job: &str,
    date: NaiveDate,
    scan: &early::EarlyScan,
    late: &late::Late,
) -> Result<(Ran, Finished)> {
    match job {
        "transform" => {
            scan.start_with_transform(ctx, date);
            let o = transform::run(ctx, date).await?;
            let ran = Ran {
                rows_in: o.superseded.values().map(|c| c.rows).sum(),
                rows_out: o.rows_out(),
                warnings: Vec::new(),
                details: serde_json::to_value(&o).unwrap_or_default(),
                gate_findings: 0,
            };
            Ok((ran, Finished::Transform(Box::new(o))))
        }
        "segment" => {
            let o = segment::run(ctx, date).await?;
            let ran = Ran::of(&o, o.rows_in, o.rows_out, &o.warnings, 0);
            Ok((ran, Finished::Segment(Box::new(o))))
        }
        "voice" => {
            let o = voice::run_after(ctx, date, late.ready()).await?;
            let ran = Ran::of(&o, o.rows_in, o.rows_out, &o.warnings, 0);
            Ok((ran, Finished::Voice(Box::new(o))))
        }
        "privacy" => {
            let o = privacy::run_after(ctx, date, scan.take().await?).await?;
            let ran = Ran::of(&o, o.rows_in, o.rows_out, &o.warnings, o.gate_findings());
            Ok((ran, Finished::Privacy(Box::new(o))))
        }
        "value" => {
            let o = value::run(ctx, date).await?;
            let ran = Ran::of(&o, o.rows_in, o.rows_out, &o.warnings, 0);
            Ok((ran, Finished::Value(Box::new(o))))
        }
        "empathy" => {
            let o = empathy::run(ctx, date).await?;
            let ran = Ran::of(&o, o.rows_in, o.rows_out, &o.warnings, 0);
            Ok((ran, Finished::Empathy(Box::new(o))))
        }
        "roi" => {
            let o = roi::run(ctx, date).await?;
            let ran = Ran::of(&o, o.rows_in, o.rows_out, &o.warnings, 0);
            Ok((ran, Finished::Roi(Box::new(o))))
        }
        "fairness" => {
            // The sentiment scorer's counterfactual probe joins the audit:
            // voice scores every customer's words, so its bias is a decision.
            let probe = voice::score::counterfactual_probe(&voice::score::Scorer::new())
                .into_iter()
                .map(|g| fairness::instruments::ProbeGap {
                    language: g.language,
                    kind: g.slot,
                    word: g.word,
                    reference: g.reference,
                    templates: g.templates as u64,
                    mean_score: g.mean_score,
                    gap: g.gap,
                })
                .collect();
            let o = fairness::run_with_probe(ctx, date, Some(probe)).await?;
            let gated = match ctx.cfg.fairness.fail_on {
                crate::config::FairnessFailOn::Never => 0,
                crate::config::FairnessFailOn::Concern => o.concerns,
                crate::config::FairnessFailOn::Review => o.concerns + o.reviews,
            };
            let ran = Ran::of(&o, o.rows_in, o.rows_out, &o.warnings, gated);
            Ok((ran, Finished::Fairness(Box::new(o))))
        }
        "report" => {
            let o = report::run(ctx, date).await?;
            let ran = Ran::of(&o, o.rows_in, o.rows_out, &o.warnings, 0);
            Ok((ran, Finished::Report(Box::new(o))))
        }
        other => Err(Error::Internal(format!("job `{other}` has no runner"))),
    }
}

impl Ran {
    fn of(
        outcome: &impl serde::Serialize,
        rows_in: u64,
        rows_out: u64,
        warnings: &[String],
        gate_findings: usize,
    ) -> Ran {
        Ran {
            rows_in,
            rows_out,
            warnings: warnings.to_vec(),
            details: serde_json::to_value(outcome).unwrap_or_default(),
            gate_findings,
        }
    }
}

/// What ingest writes for a date (the consent list is shared by all dates
/// and is not part of any one date's outputs).
fn ingest_outputs(ctx: &JobContext, date: NaiveDate) -> Vec<Place> {
    let mut places: Vec<Place> = ctx
        .cfg
        .ingest
        .tables
        .iter()
        .flat_map(|t| {
            [
                Place::Prefix(partition_dir("lake", t, date)),
                Place::Prefix(partition_dir("quarantine", t, date)),
            ]
        })
        .collect();
    places.push(Place::Prefix(partition_dir("lake", "ingest_audit", date)));
    places
}

/// What a job after ingest writes for a date: its marts (SQL models for
/// transform, `schemas/marts/` docs naming the job for the others) and its
/// own file of `marts/model_metrics`.
fn outputs(ctx: &JobContext, job: &str, date: NaiveDate) -> Result<Vec<Place>> {
    let mut places = Vec::new();
    if job == "transform" {
        for m in transform::models::load(ctx.cfg.models_dir.as_deref())? {
            if m.materialized == transform::models::Materialized::Table {
                places.push(Place::Prefix(partition_dir("marts", &m.name, date)));
            }
        }
        places.push(Place::Prefix(partition_dir("marts", "lineage", date)));
    }
    if job == "report" {
        places.push(Place::Prefix(Path::from(format!("reports/{date}"))));
    }
    if job == "value" {
        // the features as of the churn cut-off, which the job writes when
        // no transform or earlier night did, and reads when one did: a
        // backfill that rewrites them makes the job run again
        places.push(Place::Prefix(partition_dir(
            "marts",
            "customer_features",
            crate::value::churn_cutoff(date, ctx.cfg.value.cutoff_days),
        )));
    }
    for doc in crate::mart::docs()? {
        let writers: Vec<&str> = doc.job.split(',').map(str::trim).collect();
        if !writers.contains(&job) {
            continue;
        }
        let dir = partition_dir("marts", &doc.table, date);
        places.push(if writers.len() > 1 {
            Place::Object(Path::from(format!("{dir}/{job}.parquet")))
        } else {
            Place::Prefix(dir)
        });
    }
    Ok(places)
}

/// Adds a job's record to the manifest, in the order of [`JOBS`] (jobs
/// that run at once finish in any order), and shows it.
fn settle(manifest: &mut RunManifest, progress: &mut progress::Progress, record: JobRecord) {
    progress.finished(&record);
    let rank = |job: &str| JOBS.iter().position(|j| *j == job).unwrap_or(JOBS.len());
    let at = manifest
        .jobs
        .partition_point(|r| rank(&r.job) <= rank(&record.job));
    manifest.jobs.insert(at, record);
}

/// Logs and records a job's failure; returns the error that stops the run.
fn failed(
    manifest: &mut RunManifest,
    progress: &mut progress::Progress,
    timer: JobTimer,
    e: Error,
) -> Error {
    let record = timer.fail(&e);
    error!(job = %record.job, error = %e, "job failed");
    settle(manifest, progress, record);
    e
}

/// Saves the manifest after a job, so a run killed half-way still says
/// which jobs it finished; a failure to do so does not stop the run.
async fn save_progress(ctx: &JobContext, manifest: &RunManifest) {
    if let Err(e) = manifest.save(&ctx.storage).await {
        tracing::warn!(error = %e, "could not update the run manifest");
    }
}

/// Stops a run whose key is not the one the last ingest used: the lake's
/// pseudonyms are of that key, and a new day under another would not join
/// them (nor the consent and erasure lists). `--force` re-ingests whatever
/// dates it is given under the new key.
pub(crate) async fn refuse_a_new_key(ctx: &JobContext) -> Result<()> {
    let Some(key) = &ctx.key else {
        return Ok(());
    };
    match last_ingest_key(&ctx.storage).await? {
        Some((_, used)) if used == key.id() => Ok(()),
        None => Ok(()),
        Some((id, used)) => Err(Error::Config(format!(
            "the pseudonymization key changed: run {id} ingested under key id {used}, this run has key id {}. The lake holds pseudonyms of the old key, which new days would not match. Restore the old {}, or re-ingest every date under the new one with `attune nightly --from FIRST --to LAST --force` and the old key in {} for that run, so customers erased under it are recognized and carried over to the new key",
            key.id(),
            ctx.cfg.key_env,
            ctx.cfg.previous_key_env
        ))),
    }
}

/// (run id, key id) of the newest run that ingested: the key the lake's
/// pseudonyms are of. Every run that ingested (a nightly or `attune
/// ingest`) recorded its key. All manifests are read, not the newest few:
/// a cron whose runs keep failing before ingest must not push the last one
/// that ingested out of sight. Ids order runs to the second only: by start
/// time, to the millisecond, the way `attune runs` lists them.
pub(crate) async fn last_ingest_key(
    storage: &crate::storage::Storage,
) -> Result<Option<(String, String)>> {
    Ok(ingest_keys(storage).await?.into_iter().next())
}

/// (run id, key id) of every run that ingested, newest first.
async fn ingest_keys(storage: &crate::storage::Storage) -> Result<Vec<(String, String)>> {
    Ok(ingest_attempts(storage)
        .await?
        .into_iter()
        .filter(|(_, _, ok)| *ok)
        .map(|(run, key, _)| (run, key))
        .collect())
}

/// (run id, key id, whether its ingest succeeded) of every run whose ingest
/// started, newest first: a failed ingest may have written partitions.
pub(crate) async fn ingest_attempts(
    storage: &crate::storage::Storage,
) -> Result<Vec<(String, String, bool)>> {
    let mut recent = Vec::new();
    for id in crate::runs::ids(storage).await? {
        if let Ok(m) = RunManifest::load(storage, &id).await {
            recent.push(m);
        }
    }
    recent.sort_by(|a, b| (&b.started_at, &b.run_id).cmp(&(&a.started_at, &a.run_id)));
    Ok(recent
        .into_iter()
        .filter_map(|m| {
            let ingest = m.jobs.iter().find(|j| j.job == "ingest")?;
            let ok = ingest.status == "ok";
            m.key_id.map(|used| (m.run_id, used, ok))
        })
        .collect())
}

/// What a job reads besides the lake and the outputs of the jobs before it
/// for the date: value reads the segments of the churn rates' cut-off day
/// (the features of its churn model's cut-off day are among its outputs:
/// it may write them), privacy the consent and erasure lists and every
/// customers export (check 4). A backfilled cut-off day or a new erasure
/// re-runs them.
fn other_inputs(ctx: &JobContext, job: &str, date: NaiveDate) -> Vec<Place> {
    let days_before = |n: u32| date - chrono::Duration::days(i64::from(n));
    match job {
        "value" => vec![Place::Prefix(partition_dir(
            "marts",
            "segments",
            days_before(ctx.cfg.value.inactive_days),
        ))],
        "privacy" => vec![
            Place::Prefix(Path::from("control")),
            Place::Prefix(Path::from("landing/customers")),
        ],
        _ => Vec::new(),
    }
}

fn skipped(job: &str, stamp: &Stamp) -> JobRecord {
    let mut r = JobTimer::start(job).finish(
        0,
        0,
        Vec::new(),
        serde_json::json!({ "skipped": "inputs unchanged", "completed_by_run": stamp.run_id }),
    );
    r.status = "skipped".into();
    r
}

/// The dates a nightly run without `--date` processes: yesterday in the
/// business's time zone, preceded by every night since the last date that
/// was ingested (missed nights are caught up in order).
pub async fn default_dates(
    ctx: &JobContext,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<NaiveDate>> {
    let today = now.with_timezone(&ctx.cfg.timezone).date_naive();
    let yesterday = today
        .pred_opt()
        .ok_or_else(|| Error::Internal("no day before today".into()))?;
    let mut last_done = None;
    for dir in ctx.storage.list_dirs(&Path::from("runs/stamps")).await? {
        let Ok(d) = NaiveDate::parse_from_str(&dir, "%Y-%m-%d") else {
            continue;
        };
        if d < yesterday
            && stamps::load(&ctx.storage, "ingest", d).await?.is_some()
            && last_done.is_none_or(|l| d > l)
        {
            last_done = Some(d);
        }
    }
    match last_done.and_then(|d| d.succ_opt()) {
        Some(from) => date_range(from, yesterday),
        None => Ok(vec![yesterday]),
    }
}

/// Every date from `from` to `to`, inclusive.
pub fn date_range(from: NaiveDate, to: NaiveDate) -> Result<Vec<NaiveDate>> {
    if to < from {
        return Err(Error::Config(format!("--to {to} is before --from {from}")));
    }
    Ok(from.iter_days().take_while(|d| *d <= to).collect())
}
