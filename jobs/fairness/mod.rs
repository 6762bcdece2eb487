//! Fairness audit: compares outcomes across customer groups.
//!
//! Reads marts/customer_attributes (the sensitive attributes), lake/tickets
//! and lake/offers (through the `stg_tickets` and `stg_offers` models), and
//! when they exist marts/segments, marts/customer_value,
//! marts/churn_evaluation and marts/feedback_scored; writes
//! marts/fairness_audit. Groups below `min_group_size` are suppressed, with
//! complementary protection, before any number leaves this module.
//!
//! The engine ([`audit`]) works on any decision table; the nightly job
//! ([`run`]) assembles its tables in [`inputs`], auditing each as soon as
//! its query ends and correcting all their tests together at the end, and
//! `attune fairness audit` ([`file`]) reads one from a CSV or Parquet file.
//!
//! - [`table`]: decision tables in memory (groups, outcomes, classifier)
//! - [`dims`]: dimensions: group columns and their intersections
//! - [`suppress`]: small-group suppression with complementary protection
//! - [`stats`]: Wilson, Katz, two-proportion z, chi-square, Mann-Whitney U, Welch, Benjamini-Hochberg
//! - [`bootstrap`]: seeded bootstrap of means and quantiles
//! - [`cluster`]: design effects of several rows per person
//! - [`metrics`]: Fairlearn's disparity aggregates
//! - [`verdict`]: ok / review / concern and the sentences
//! - [`findings`]: the output rows
//! - [`instruments`]: the sentiment scorer's own fairness (rating gap, unscored, counterfactual probe)
//! - [`inputs`]: the nightly's decision tables (`*.sql` beside this file)

pub mod audit;
pub mod bootstrap;
pub mod cluster;
pub mod dims;
pub mod file;
pub mod findings;
pub mod inputs;
pub mod instruments;
pub mod metrics;
pub mod stats;
pub mod suppress;
pub mod table;
pub mod verdict;

use std::sync::Arc;

use chrono::NaiveDate;
use serde::Serialize;
use tracing::{debug, info, instrument, warn};

use self::audit::{AuditParams, AuditReport};
use self::verdict::Verdict;
use crate::config::{FairnessConfig, FairnessFailOn};
use crate::context::JobContext;
use crate::{Error, Result, mart};

/// The mart this job writes.
pub const MART: &str = "fairness_audit";

/// Lake columns the audit depends on (through the staging models it runs).
pub const LAKE_COLUMNS_READ: &[(&str, &str)] = &[
    ("offers", "customer_id"),
    ("offers", "decided_at"),
    ("offers", "decided_by"),
    ("offers", "discount_pct"),
    ("offers", "offer_id"),
    ("offers", "offer_type"),
    ("tickets", "created_at"),
    ("tickets", "customer_id"),
    ("tickets", "first_response_at"),
    ("tickets", "follow_up_at"),
    ("tickets", "handled_by"),
    ("tickets", "reopened"),
    ("tickets", "resolved_at"),
    ("tickets", "satisfaction"),
    ("tickets", "ticket_id"),
];

/// One audited decision.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionSummary {
    pub decision: String,
    pub rows: u64,
    pub dimensions: Vec<String>,
    pub outcomes: Vec<String>,
}

impl DecisionSummary {
    fn of(t: &table::DecisionTable) -> DecisionSummary {
        DecisionSummary {
            decision: t.name.clone(),
            rows: t.rows as u64,
            dimensions: t.groups.iter().map(|(g, _)| g.clone()).collect(),
            outcomes: t
                .outcomes
                .iter()
                .map(|o| o.name.clone())
                .chain(t.classifier.iter().map(|c| c.name.clone()))
                .collect(),
        }
    }
}

/// What the nightly audit did.
#[derive(Debug, Clone, Serialize)]
pub struct FairnessOutcome {
    pub date: NaiveDate,
    /// Rows of every decision table.
    pub rows_in: u64,
    /// Rows written to marts/fairness_audit.
    pub rows_out: u64,
    pub warnings: Vec<String>,
    pub decisions: Vec<DecisionSummary>,
    /// Tests corrected together.
    pub tests: usize,
    pub concerns: usize,
    pub reviews: usize,
    /// Group rows withheld for privacy.
    pub suppressed: usize,
    /// The sentences of every concern (group-level statements, no personal data).
    pub concern_explanations: Vec<String>,
}

/// The engine's settings from the configuration.
pub fn params(min_group_size: usize, cfg: &FairnessConfig) -> AuditParams {
    AuditParams {
        min_group_size: min_group_size as u64,
        thresholds: cfg.thresholds,
        resamples: cfg.bootstrap_resamples,
        seed: cfg.seed,
        intersections: cfg.intersections.clone(),
        reference_groups: cfg.reference_groups.clone(),
        noun: "customers".into(),
        threads: 0,
    }
}

/// Audits the decisions of `date` and writes `marts/fairness_audit/dt=<date>/`.
///
/// The counterfactual probe of the sentiment scorer needs the voice
/// scorer, which this build does not contain: see [`run_with_probe`].
#[instrument(skip_all, fields(job = "fairness", run_id = %ctx.run_id))]
pub async fn run(ctx: &JobContext, date: NaiveDate) -> Result<FairnessOutcome> {
    run_with_probe(ctx, date, None).await
}

/// [`run`], adding the scorer's counterfactual probe (the gaps of
/// `crate::voice::score::counterfactual_probe`, mapped onto
/// [`instruments::ProbeGap`]) to the audit when given.
pub async fn run_with_probe(
    ctx: &JobContext,
    date: NaiveDate,
    probe: Option<Vec<instruments::ProbeGap>>,
) -> Result<FairnessOutcome> {
    let started = std::time::Instant::now();
    crate::nightly::progress::step("reading the decision tables and testing each across groups");
    let params = params(ctx.cfg.min_group_size, &ctx.cfg.fairness);
    let each = params.clone();
    // Each table is audited as soon as its query ends, beside the queries
    // still running: read first and tested after, the two phases left a
    // core idle at each one's tail (a query alone, the costliest units).
    let then: inputs::Then<(DecisionSummary, audit::TableAudit)> =
        Arc::new(move |t| Ok((DecisionSummary::of(&t), audit::audit_table(&t, &each)?)));
    let mut inputs = inputs::load(ctx, date, then).await?;
    if probe.is_none() {
        inputs.warnings.push(
            "counterfactual probe not run: the sentiment scorer's probe was not supplied".into(),
        );
    }
    let (decisions, parts): (Vec<DecisionSummary>, Vec<audit::TableAudit>) =
        inputs.tables.into_iter().unzip();
    let rows_in = decisions.iter().map(|d| d.rows).sum();
    let mut report = audit::combine_tables(parts, &params);
    debug!(
        seconds = started.elapsed().as_secs_f64(),
        tables = decisions.len(),
        tests = report.tests,
        "decision tables read and audited"
    );
    if let Some(gaps) = &probe {
        report.findings.extend(instruments::probe_findings(
            gaps,
            &ctx.cfg.fairness.thresholds,
        ));
        report
            .findings
            .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    }
    let mut warnings = inputs.warnings;
    warnings.extend(report.warnings.iter().cloned());
    for w in &warnings {
        warn!(warning = %w, "fairness input");
    }
    let batch = findings::to_batch(&report.findings, Some(date))?;
    let rows_out = mart::publish(
        &ctx.storage,
        MART,
        date,
        findings::schema(true),
        std::slice::from_ref(&batch),
    )
    .await?;
    let outcome = summarize(date, rows_in, rows_out, warnings, decisions, &report);
    info!(
        rows_in,
        rows_out,
        tests = outcome.tests,
        concerns = outcome.concerns,
        reviews = outcome.reviews,
        suppressed = outcome.suppressed,
        "fairness audit written"
    );
    Ok(outcome)
}

fn summarize(
    date: NaiveDate,
    rows_in: u64,
    rows_out: u64,
    warnings: Vec<String>,
    decisions: Vec<DecisionSummary>,
    report: &AuditReport,
) -> FairnessOutcome {
    FairnessOutcome {
        date,
        rows_in,
        rows_out,
        warnings,
        decisions,
        tests: report.tests,
        concerns: report.count(Verdict::Concern),
        reviews: report.count(Verdict::Review),
        suppressed: report.findings.iter().filter(|f| f.suppressed).count(),
        concern_explanations: report
            .findings
            .iter()
            .filter(|f| f.verdict == Some(Verdict::Concern))
            .map(|f| f.explanation.clone())
            .collect(),
    }
}

/// The audit gate: `Err(Error::AuditGate)` (exit code 3) when the audit
/// found what `fail_on` refuses. Call it after the outcome is recorded, so
/// the run's outputs and manifest exist when the scheduler alerts.
pub fn gate(concerns: usize, reviews: usize, fail_on: FairnessFailOn) -> Result<()> {
    let findings = match fail_on {
        FairnessFailOn::Never => 0,
        FairnessFailOn::Concern => concerns,
        FairnessFailOn::Review => concerns + reviews,
    };
    if findings > 0 {
        return Err(Error::AuditGate {
            job: "fairness".into(),
            findings,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_follows_fail_on() {
        assert!(gate(3, 5, FairnessFailOn::Never).is_ok());
        assert!(gate(0, 5, FairnessFailOn::Concern).is_ok());
        match gate(2, 5, FairnessFailOn::Concern) {
            Err(Error::AuditGate { job, findings }) => {
                assert_eq!((job.as_str(), findings), ("fairness", 2))
            }
            other => panic!("expected the gate, got {other:?}"),
        }
        match gate(0, 5, FairnessFailOn::Review) {
            Err(Error::AuditGate { findings, .. }) => assert_eq!(findings, 5),
            other => panic!("expected the gate, got {other:?}"),
        }
    }

    #[test]
    fn the_mart_doc_matches_the_schema() {
        mart::doc(MART)
            .expect("schemas/marts/fairness_audit.toml")
            .check(&findings::schema(true))
            .expect("documented columns");
    }
}
