//! Churn and customer lifetime value (`attune value`).
//!
//! Reads the orders as of the run date (through the `stg_orders` model:
//! de-duplicated, refunds left out), `marts/customer_features` of the run
//! date, `customer_features` as of the churn cut-off (its mart partition
//! when the lake up to the cut-off is as it was then, else computed and,
//! when it passes the model's data tests, written there for the next nights),
//! `marts/segments` of the run date when the segment job has written it, and
//! `lake/initiative_assignments` with `lake/initiatives` (when an arm's
//! exposure started), and the purchases the night before folded, when they
//! are current ([`carry`]). Writes `marts/customer_value` (one row per
//! customer with a purchase: the BG/NBD and Gamma-Gamma predictions, the
//! 12-month CLTV in the most common currency of the orders, the churn
//! probability and at-risk flag),
//! `marts/churn_evaluation` (the held-out customers, for the fairness audit),
//! `marts/churn_rates` (per month, segment and initiative arm; groups below
//! `min_group_size` suppressed) and this job's `marts/model_metrics`.
//!
//! Honest about time: the churn model is trained on features as of a cut-off
//! (the Monday on or before `cutoff_days` before the run date, so the nights
//! of a week share it and its features are computed once: see
//! [`churn_cutoff`]) and labels from what happened after it,
//! evaluated on customers it never saw, then refitted on all of them and
//! applied to today's features.
//!
//! # Layout
//! - [`summary`]: x, t_x, T, mean repeat value and purchase days per customer (`purchase_days.sql`)
//! - [`carry`]: the purchases folded, kept for the next night, which adds only the new orders
//! - [`special`]: ln Γ, ψ, log-sum-exp, Gauss ₂F₁
//! - [`optim`]: maximum likelihood with argmin (L-BFGS, Nelder-Mead fallback), standard errors
//! - [`bgnbd`]: the BG/NBD model: likelihood, fit, P(alive), expected purchases
//! - [`gamma_gamma`]: the Gamma-Gamma spend model
//! - [`clv`]: fitting both and scoring customers, discounted CLTV
//! - [`churn`]: features, standardization, logistic regression
//! - [`metrics`]: ROC AUC, Brier score, calibration, lift
//! - [`rates`]: churn labels and churn rates from the gaps between purchase days
//! - [`fit`]: `attune value fit` on any transaction file

pub mod bgnbd;
pub mod carry;
pub mod churn;
pub mod clv;
pub mod fit;
pub mod gamma_gamma;
pub mod metrics;
pub mod optim;
pub mod rates;
pub mod special;
pub mod summary;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use serde::Serialize;
use tracing::{debug, info, instrument, warn};

use self::churn::{ChurnModel, FeatureTable};
use self::clv::{ClvModels, ClvSettings};
use self::rates::History;
use self::summary::{Summaries, epoch_day, string_column};
use crate::context::JobContext;
use crate::mart::{self, Metric};
use crate::{Error, Result, catalog, transform};

/// Lake columns this job reads (through `stg_orders`, directly for the
/// currencies, and through `arms.sql`).
pub const LAKE_COLUMNS_READ: &[(&str, &str)] = &[
    ("orders", "order_id"),
    ("orders", "customer_id"),
    ("orders", "ordered_at"),
    ("orders", "total_amount"),
    ("orders", "currency"),
    ("orders", "refunded"),
    ("initiative_assignments", "customer_id"),
    ("initiative_assignments", "initiative_id"),
    ("initiative_assignments", "arm"),
    ("initiative_assignments", "assigned_at"),
    ("initiatives", "initiative_id"),
    ("initiatives", "started_on"),
];

const ARMS_SQL: &str = include_str!("arms.sql");

/// The churn model's evaluation on held-out customers.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnEvaluation {
    pub cutoff: NaiveDate,
    pub training_customers: u64,
    pub holdout_customers: u64,
    /// Share of held-out customers who churned.
    /// Churn rate of the held-out customers (none when nobody is held out).
    pub base_rate: Option<f64>,
    pub roc_auc: Option<f64>,
    /// AUC among held-out customers who had bought in the inactive_days
    /// before the cut-off: how well it tells which current customers leave.
    pub roc_auc_active_at_cutoff: Option<f64>,
    pub brier_score: Option<f64>,
    pub top_decile_lift: Option<f64>,
    pub calibration: Vec<metrics::CalibrationBin>,
}

/// The currency lifetime values are in, and the orders left out of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ValueCurrency {
    /// ISO 4217 code of `monetary`, `expected_order_value` and `cltv_12m`:
    /// the most common currency of the non-refunded orders up to the run
    /// date (the first in alphabetical order on a tie); `None` when no order
    /// has one.
    pub currency: Option<String>,
    /// Non-refunded orders up to the run date in each other currency
    /// (`none` for orders without one). They are purchases all the same
    /// (BG/NBD, churn), but amounts in two currencies cannot be averaged:
    /// they are left out of the value of a purchase (Gamma-Gamma).
    pub other_orders: BTreeMap<String, u64>,
}

impl ValueCurrency {
    /// Orders in other currencies, in all.
    pub fn others(&self) -> u64 {
        self.other_orders.values().sum()
    }

    /// "CHF 12, USD 3".
    fn list_others(&self) -> String {
        self.other_orders
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the value job produced.
#[derive(Debug, Clone, Serialize)]
pub struct ValueOutcome {
    /// Customers with a purchase up to the run date.
    pub rows_in: u64,
    /// Rows written to customer_value, churn_evaluation, churn_rates and model_metrics.
    pub rows_out: u64,
    pub warnings: Vec<String>,
    pub customers_scored: u64,
    pub at_risk_customers: u64,
    pub clv: ClvModels,
    /// The currency of the values in customer_value.
    pub currency: ValueCurrency,
    pub churn: Option<ChurnEvaluation>,
    /// The night whose purchase histories this one started from (see
    /// [`carry`]); `None` when every order was folded.
    pub histories_from: Option<NaiveDate>,
    /// Seconds per phase (summary, clv_fit, clv_score, churn, write).
    pub seconds: BTreeMap<String, f64>,
}

/// Runs churn and lifetime value as of `date`.
#[instrument(skip_all, fields(job = "value", run_id = %ctx.run_id))]
pub async fn run(ctx: &JobContext, date: NaiveDate) -> Result<ValueOutcome> {
    let cfg = &ctx.cfg.value;
    let mut warnings = Vec::new();
    let mut seconds = BTreeMap::new();
    let mut clock = Instant::now();
    // each phase's seconds, and on a terminal the phase that follows
    let mut lap = |name: &str, next: &str, clock: &mut Instant| {
        seconds.insert(name.to_string(), clock.elapsed().as_secs_f64());
        *clock = Instant::now();
        crate::nightly::progress::step(next);
    };
    crate::nightly::progress::step("purchase histories");

    let (session, currency) = purchases_session(ctx, date).await?;
    if let Some(w) = currency_warning(&currency, date) {
        warnings.push(w);
    }
    register_features_mart(ctx, &session, date).await?;
    let models = transform::models::load(ctx.cfg.models_dir.as_deref())?;
    let (record, carried) =
        carry::start(ctx, &session, &models, date, currency.currency.as_deref()).await?;
    let histories_from = carried.as_ref().map(|c| c.night);
    let (source, carried) = match carried {
        Some(c) => (carry::SINCE, Some(c.run)),
        None => ("purchases", None),
    };
    // Today's features and the purchase histories are independent reads,
    // side by side: the features' read of one row group and the fold's
    // serial merge each leave a core to the other. Both run to the end, so
    // the error reported is the one reported before, the features' first.
    let (today, loaded) = tokio::join!(
        current_features(&session, date),
        summary::load_night(&session, date, cfg.time_unit, source, carried)
    );
    let today = today?;
    let (all, run) = loaded?;
    // Written beside the models' work, on the core their serial phases
    // leave; waited for before the job ends.
    let keeping = tokio::spawn(carry::keep(
        ctx.storage.clone(),
        date,
        run,
        record,
        histories_from,
    ));
    let rows_in = all.summaries.len() as u64;
    let inactive = i32::try_from(cfg.inactive_days).unwrap_or(i32::MAX);
    let (s, histories) = keep_known_customers(all, &today, inactive, &mut warnings);
    if s.is_empty() {
        return Err(Error::MissingInput {
            what: format!("orders of consenting customers up to {date}"),
            hint: "run `attune ingest` and `attune transform` for the dates first".into(),
        });
    }
    info!(customers = s.len(), "purchase histories summarized");
    lap("summary", "lifetime value models", &mut clock);

    let settings = ClvSettings {
        time_unit: cfg.time_unit,
        gross_margin: cfg.gross_margin,
        annual_discount_rate: cfg.annual_discount_rate,
        max_iterations: cfg.max_iterations,
    };
    let models = clv::fit_models(&s, &settings)?;
    warnings.extend(models.warnings.iter().cloned());
    lap("clv_fit", "expected purchases and value", &mut clock);
    let scores = clv::score(&s, &models, &[90.0, 365.0], &settings);
    if scores.failures > 0 {
        warnings.push(format!(
            "expected purchases could not be evaluated for {} customers (hypergeometric series did not converge); left empty",
            scores.failures
        ));
    }
    lap("clv_score", "churn model", &mut clock);

    let cutoff = churn_cutoff(date, cfg.cutoff_days);
    let churn = churn_model(ctx, date, &s, &histories, &today, inactive, &mut warnings).await?;
    lap("churn_model", "churn rates", &mut clock);
    let probability: Vec<Option<f64>> = today
        .positions(&s.customer_id)
        .into_iter()
        .map(|i| churn.as_ref().and_then(|c| i.map(|i| c.today[i])))
        .collect();
    let segments = segments_of(ctx, &s.customer_id, date).await?;
    if segments.iter().all(Option::is_none) {
        warnings.push(format!(
            "no marts/segments for {date}: segment is empty in customer_value (run `attune segment` before `attune value`)"
        ));
    }
    let latest_cutoff = epoch_day(date) - inactive;
    // Churn per segment counts who left after the cut-off, so customers are
    // grouped by their segment as of the cut-off: today's segments are
    // drawn on recency and recent orders, the very buying the rate counts,
    // and a "lapsed" segment would show a churn rate of 100% by definition.
    let cutoff_date = summary::from_epoch_day(latest_cutoff);
    let cutoff_segments = segments_of(ctx, &s.customer_id, cutoff_date).await?;
    if cutoff_segments.iter().all(Option::is_none) {
        warnings.push(format!(
            "no marts/segments for {cutoff_date}, the churn cut-off: churn_rates has no segment rows (segments of the run date would be defined by the buying the rates count)"
        ));
    }
    let arms = arms_of(&session, &s.customer_id, latest_cutoff).await?;
    let cutoffs = rates::month_end_cutoffs(
        s.first_day.iter().copied().min().unwrap_or(latest_cutoff),
        date,
        inactive,
    );
    let rate_rows = rates::churn_rates(
        &histories,
        &cutoff_segments,
        &arms,
        &cutoffs,
        latest_cutoff,
        inactive,
    );
    lap("churn_rates", "writing", &mut clock);

    let threshold = cfg.at_risk_threshold;
    let at_risk_customers = probability
        .iter()
        .filter(|p| p.is_some_and(|p| p >= threshold))
        .count() as u64;
    let mut rows_out = 0;
    let batch = customer_value_batch(&s, &segments, &scores, &probability, threshold)?;
    rows_out += mart::publish(
        &ctx.storage,
        "customer_value",
        date,
        batch.schema(),
        &[batch],
    )
    .await?;
    // Written even without a model (empty), so no earlier run's rows survive.
    let batch = churn_evaluation_batch(churn.as_ref(), cutoff, threshold)?;
    rows_out += mart::publish(
        &ctx.storage,
        "churn_evaluation",
        date,
        batch.schema(),
        &[batch],
    )
    .await?;
    let batch = churn_rates_batch(&rate_rows, ctx.cfg.min_group_size)?;
    rows_out += mart::publish(&ctx.storage, "churn_rates", date, batch.schema(), &[batch]).await?;
    let evaluation = churn.as_ref().map(|c| c.evaluation.clone());
    let metrics = model_metrics(
        &models,
        &currency,
        churn.as_ref(),
        cfg,
        at_risk_customers,
        ctx.cfg.min_group_size,
    );
    rows_out += mart::publish_model_metrics(&ctx.storage, date, "value", &metrics).await?;
    keeping.await.map_err(crate::nightly::panics::joined(
        "keeping the purchase histories",
    ))??;
    lap("write", "done", &mut clock);
    for w in &warnings {
        warn!(job = "value", "{w}");
    }
    info!(
        customers = s.len(),
        at_risk_customers, rows_out, "value finished"
    );
    Ok(ValueOutcome {
        rows_in,
        rows_out,
        warnings,
        customers_scored: s.len() as u64,
        at_risk_customers,
        clv: models,
        currency,
        churn: evaluation,
        histories_from,
        seconds,
    })
}

/// A session as of `date` (every lake table, every model as a view) with
/// `purchases(customer_id, order_date, amount)`: the non-refunded orders of
/// `stg_orders`, de-duplicated across export days, `amount` NULL for those
/// in another currency than the one modelled, which is returned.
pub async fn purchases_session(
    ctx: &JobContext,
    date: NaiveDate,
) -> Result<(SessionContext, ValueCurrency)> {
    let session = transform::session_as_of(ctx, date, date).await?;
    let currency = register_purchases(&session).await?;
    Ok((session, currency))
}

/// Chooses the currency to model in `session` (with lake `orders`,
/// `stg_orders` and `run_date()`) and registers `purchases`.
async fn register_purchases(session: &SessionContext) -> Result<ValueCurrency> {
    let chosen = match single_currency(session).await? {
        Some(only) => ValueCurrency {
            currency: Some(only),
            other_orders: BTreeMap::new(),
        },
        None => count_currencies(session).await?,
    };
    let amount = match &chosen.currency {
        Some(c) => format!(
            "CASE WHEN currency = '{}' THEN total_amount END",
            c.replace('\'', "''")
        ),
        None => "CAST(NULL AS DOUBLE)".to_string(),
    };
    session.register_table(
        "purchases",
        session
            .sql(&format!(
                "SELECT customer_id, order_date, {amount} AS amount, source_dt, ordered_at \
                 FROM stg_orders WHERE NOT refunded"
            ))
            .await?
            .into_view(),
    )?;
    Ok(chosen)
}

/// The code of every order in the lake's `orders` up to `run_date()` when
/// they all have the same one; `None` for two codes, an order without one,
/// or no order.
///
/// One currency, the usual case, needs no count over the de-duplicated
/// orders (seconds at scale), nor a read of every order's code: a code from
/// the first rows read, then a search for any other code or a missing one,
/// which Parquet statistics settle without reading a row group whose codes
/// are all that one (its minimum and maximum, and no nulls).
async fn single_currency(session: &SessionContext) -> Result<Option<String>> {
    let first = session
        .sql("SELECT currency FROM orders WHERE dt <= run_date() AND currency IS NOT NULL LIMIT 1")
        .await?
        .collect()
        .await?;
    let mut code = None;
    for b in &first {
        let c = string_column(b, "currency")?;
        if let Some(r) = (0..b.num_rows()).find(|&r| c.is_valid(r)) {
            code = Some(c.value(r).to_string());
            break;
        }
    }
    let Some(code) = code else {
        return Ok(None);
    };
    let others = session
        .sql(&format!(
            "SELECT currency FROM orders WHERE dt <= run_date() \
             AND (currency IS NULL OR currency <> '{}') LIMIT 1",
            code.replace('\'', "''")
        ))
        .await?
        .collect()
        .await?;
    Ok(others.iter().all(|b| b.num_rows() == 0).then_some(code))
}

/// The most common currency of the non-refunded orders in `stg_orders`
/// (the first in alphabetical order on a tie) and the orders in the others.
async fn count_currencies(session: &SessionContext) -> Result<ValueCurrency> {
    let mut counts: BTreeMap<Option<String>, u64> = BTreeMap::new();
    for b in session
        .sql("SELECT currency, count(*) AS orders FROM stg_orders WHERE NOT refunded GROUP BY currency")
        .await?
        .collect()
        .await?
    {
        let c = string_column(&b, "currency")?;
        let n = b
            .column_by_name("orders")
            .and_then(|a| a.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>())
            .ok_or_else(|| Error::Internal("currency counts: orders is not BIGINT".into()))?;
        for r in 0..b.num_rows() {
            let code = c.is_valid(r).then(|| c.value(r).to_string());
            *counts.entry(code).or_default() += n.value(r) as u64;
        }
    }
    // Ascending codes, so on a tie the first stays chosen.
    let mut currency: Option<(&String, u64)> = None;
    for (code, &n) in &counts {
        if let Some(code) = code
            && currency.is_none_or(|(_, most)| n > most)
        {
            currency = Some((code, n));
        }
    }
    let currency = currency.map(|(c, _)| c.clone());
    let other_orders = counts
        .iter()
        .filter(|(code, _)| code.as_ref() != currency.as_ref())
        .map(|(code, &n)| (code.clone().unwrap_or_else(|| "none".into()), n))
        .collect();
    Ok(ValueCurrency {
        currency,
        other_orders,
    })
}

/// The job's warning about orders left out of the values, if any.
fn currency_warning(c: &ValueCurrency, date: NaiveDate) -> Option<String> {
    let others = c.others();
    if others == 0 {
        return None;
    }
    Some(match &c.currency {
        Some(code) => format!(
            "{others} orders up to {date} are not in {code}, the most common currency of the orders ({}): they count as purchases (P(alive), expected purchases, churn) but not in the value of a purchase, since amounts in two currencies cannot be averaged; monetary, expected_order_value and cltv_12m are in {code}",
            c.list_others()
        ),
        None => format!(
            "no order up to {date} has a currency: purchases are counted, but none is valued, so expected_order_value and cltv_12m are left empty"
        ),
    })
}

/// The job's error when `marts/customer_features` has no rows for `date`.
fn no_current_features(date: NaiveDate) -> Error {
    Error::MissingInput {
        what: format!("marts/customer_features for {date}"),
        hint: format!("run `attune transform --date {date}` first"),
    }
}

/// Registers `marts/customer_features` in `session` as
/// `customer_features_mart`; the job's error when it has no partition.
async fn register_features_mart(
    ctx: &JobContext,
    session: &SessionContext,
    date: NaiveDate,
) -> Result<()> {
    let present = catalog::list_tables(&ctx.storage, "marts")
        .await?
        .iter()
        .any(|t| t.name == "customer_features");
    if !present {
        return Err(no_current_features(date));
    }
    catalog::register(
        session,
        &ctx.storage,
        "marts",
        "customer_features",
        "customer_features_mart",
    )
    .await
}

/// The run date's rows of `customer_features_mart` (the consenting
/// customers and today's features), in customer id order.
async fn current_features(session: &SessionContext, date: NaiveDate) -> Result<FeatureTable> {
    // No ORDER BY: the transform writes the partition in customer id order,
    // which DataFusion is not told, so it sorted the million rows of thirty
    // columns again, all in the plan partition that reads the file's row
    // group (up to 2^20 rows make one). A partition read in pieces, which
    // arrive in any order, is sorted by `into_sorted`.
    let batches = session
        .sql(&format!(
            "SELECT * FROM customer_features_mart WHERE dt = DATE '{date}'"
        ))
        .await?
        .collect()
        .await?;
    let table = FeatureTable::from_batches(&batches)?.into_sorted();
    if table.customer_id.is_empty() {
        return Err(no_current_features(date));
    }
    Ok(table)
}

/// Only customers in today's `customer_features` (consenting, known to the
/// customers export) are modelled; their purchase days become churn
/// histories.
fn keep_known_customers(
    all: summary::Histories,
    today: &FeatureTable,
    inactive: i32,
    warnings: &mut Vec<String>,
) -> (Summaries, Vec<History>) {
    let known = today.positions(&all.summaries.customer_id);
    let summary::Histories {
        summaries,
        start,
        days,
    } = all;
    // Taken apart so the ids move into the kept summaries instead of being
    // copied (a million strings).
    let Summaries {
        customer_id,
        first_day,
        x,
        t_x,
        t,
        valued_x,
        monetary,
        holdout_x,
    } = summaries;
    let mut s = Summaries::default();
    let mut histories = Vec::new();
    let mut dropped = 0u64;
    for (i, id) in customer_id.into_iter().enumerate() {
        if known[i].is_none() {
            dropped += 1;
            continue;
        }
        s.customer_id.push(id);
        s.first_day.push(first_day[i]);
        s.x.push(x[i]);
        s.t_x.push(t_x[i]);
        s.t.push(t[i]);
        s.valued_x.push(valued_x[i]);
        s.monetary.push(monetary[i]);
        s.holdout_x.push(holdout_x[i]);
        histories.push(History::from_days(&days[start[i]..start[i + 1]], inactive));
    }
    if dropped > 0 {
        warnings.push(format!(
            "{dropped} customers with orders are not in today's customer_features (no consenting customer record) and are left out"
        ));
    }
    (s, histories)
}

/// The churn model's outputs.
struct ChurnRun {
    evaluation: ChurnEvaluation,
    model: ChurnModel,
    /// Held-out customers: (id, probability, churned, active at cut-off).
    held_out: Vec<(String, f64, bool, bool)>,
    /// P(churn) for every customer of today's feature table.
    today: Vec<f64>,
    training_customers: u64,
}

/// Writes `marts/customer_features/dt=<cutoff>` from `batches` (the model as
/// of the cut-off, exactly what the transform of that day writes, computed
/// in `session`) with its provenance record, when they pass the model's
/// data tests, as the transform's must, and the day is within
/// `retention_days` of the run date (an older partition is one retention
/// deletes and the privacy job flags).
/// Returns whether it wrote them; a failing data test, or one that could
/// not run, is a warning of the job (the churn model still learns from
/// them, as it did before they were kept).
async fn keep_cutoff_features(
    ctx: &JobContext,
    session: &SessionContext,
    models: &[transform::models::Model],
    cutoff: NaiveDate,
    date: NaiveDate,
    batches: &[RecordBatch],
    warnings: &mut Vec<String>,
) -> Result<bool> {
    let Some(first) = batches.first() else {
        return Ok(false);
    };
    if (date - cutoff).num_days() > i64::from(ctx.cfg.retention_days) {
        return Ok(false);
    }
    let Some(model) = models.iter().find(|m| m.name == "customer_features") else {
        return Ok(false);
    };
    let failed = match transform::data_tests_in(session, model, batches).await {
        Ok(failed) => failed,
        Err(e) => Some(format!("its data tests could not run: {e}")),
    };
    if let Some(failed) = failed {
        warnings.push(format!(
            "customer_features as of the churn cut-off {cutoff} fail the model's data tests, so they were not kept for the next nights, and the churn model learned from them: {failed}"
        ));
        return Ok(false);
    }
    let inputs = transform::provenance::digest(ctx, models, cutoff).await?;
    transform::provenance::forget(ctx, "customer_features", cutoff).await?;
    crate::parquet_io::write_batches(
        &ctx.storage,
        &crate::storage::partition_file("marts", "customer_features", cutoff),
        first.schema(),
        batches,
    )
    .await?;
    transform::provenance::record(ctx, "customer_features", cutoff, &inputs).await?;
    Ok(true)
}

/// The churn model's cut-off for a run on `date`: the Monday on or before
/// `date` less `cutoff_days`. The nights of a week share it, so the features
/// as of the cut-off are computed on the first of them and read back on the
/// others (computing them took 10 s of the job at a million customers),
/// and the labels still look at least `cutoff_days` ahead.
pub fn churn_cutoff(date: NaiveDate, cutoff_days: u32) -> NaiveDate {
    let day = date - chrono::Duration::days(i64::from(cutoff_days));
    day - chrono::Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

/// The churn model trained as of [`churn_cutoff`] for a run on `date`.
async fn churn_model(
    ctx: &JobContext,
    date: NaiveDate,
    s: &Summaries,
    histories: &[History],
    today: &FeatureTable,
    inactive: i32,
    warnings: &mut Vec<String>,
) -> Result<Option<ChurnRun>> {
    let cfg = &ctx.cfg.value;
    let started = Instant::now();
    let cutoff = churn_cutoff(date, cfg.cutoff_days);
    // The cut-off's own transform, or an earlier night of the week, wrote
    // these features; they are read when the lake up to the cut-off is as it
    // was then (see transform::provenance). Computed, they are kept as the
    // cut-off's partition with the same record, for the next nights.
    let models = transform::models::load(ctx.cfg.models_dir.as_deref())?;
    let reused = transform::provenance::reuse(ctx, &models, "customer_features", cutoff).await?;
    let (batches, how) = match reused {
        Some(b) => (b, "read from its mart partition"),
        None => {
            let (b, session) =
                transform::model_as_of(ctx, "customer_features", cutoff, date).await?;
            let computed = started.elapsed().as_secs_f64();
            let kept =
                keep_cutoff_features(ctx, &session, &models, cutoff, date, &b, warnings).await?;
            debug!(
                computed,
                tested_and_kept = started.elapsed().as_secs_f64() - computed,
                "features as of the cut-off: seconds to compute them, then to test and keep them"
            );
            let how = if kept {
                "computed and kept"
            } else {
                "computed"
            };
            (b, how)
        }
    };
    let past = FeatureTable::from_batches(&batches)?;
    info!(
        customers = past.customer_id.len(),
        seconds = started.elapsed().as_secs_f64(),
        "features as of the cut-off {how}"
    );
    if past.customer_id.is_empty() {
        warnings.push(format!(
            "no customers as of the churn model's cut-off {cutoff} (the data starts later): the churn model is not trained"
        ));
        return Ok(None);
    }
    if past.names != today.names {
        return Err(Error::Internal(
            "customer_features as of the cut-off and today have different columns".into(),
        ));
    }
    let c = epoch_day(cutoff);
    // Labelled: bought by the cut-off, known then and still consenting now.
    let mut labelled = Labelled::default();
    let in_past = past.positions(&s.customer_id);
    for i in 0..s.customer_id.len() {
        if !histories[i].purchased_by(c) {
            continue;
        }
        let Some(p) = in_past[i] else {
            continue;
        };
        labelled.rows.push(p);
        labelled
            .churned
            .push(histories[i].churned_after(c, inactive));
        labelled.active.push(histories[i].active_at(c, inactive));
    }
    let settings = ChurnSettings {
        holdout_share: cfg.holdout_share,
        seed: cfg.seed,
        min_group_size: ctx.cfg.min_group_size,
        max_training: churn::MAX_TRAINING_CUSTOMERS,
    };
    Ok(fit_churn(
        &past, today, &labelled, cutoff, &settings, warnings,
    ))
}

/// The customers the churn model learns from: positions in the cut-off's
/// features, with whether each churned after the cut-off and had bought in
/// the `inactive_days` before it.
#[derive(Debug, Default)]
struct Labelled {
    rows: Vec<usize>,
    churned: Vec<bool>,
    active: Vec<bool>,
}

/// How the churn model is fitted and evaluated.
#[derive(Debug, Clone, Copy)]
struct ChurnSettings {
    holdout_share: f64,
    seed: u64,
    min_group_size: usize,
    /// Most customers one fit uses ([`churn::MAX_TRAINING_CUSTOMERS`]).
    max_training: usize,
}

/// Fits the churn model on the labelled customers of `past`, evaluates it
/// on those held out, refits it on all of them (up to the cap) and scores
/// `today`. Whatever keeps a model from being fitted is a warning and
/// `None`, never an error: customer_value is still written, its lifetime
/// values do not depend on churn, with `churn_probability` empty.
fn fit_churn(
    past: &FeatureTable,
    today: &FeatureTable,
    labelled: &Labelled,
    cutoff: NaiveDate,
    settings: &ChurnSettings,
    warnings: &mut Vec<String>,
) -> Option<ChurnRun> {
    let Labelled {
        rows,
        churned: labels,
        active,
    } = labelled;
    let churners = labels.iter().filter(|&&y| y).count();
    if rows.len() < 2 * settings.min_group_size || churners == 0 || churners == rows.len() {
        warnings.push(format!(
            "churn model not fitted: {} customers had bought by the cut-off {cutoff}, {churners} of them churned; churn_probability is left empty",
            rows.len()
        ));
        return None;
    }
    let (train, held) = churn::holdout_split(rows.len(), settings.holdout_share, settings.seed);
    let train = churn::training_sample(train, settings.max_training, settings.seed);
    let pick = |idx: &[usize], v: &[usize]| idx.iter().map(|&k| v[k]).collect::<Vec<usize>>();
    let pick_b = |idx: &[usize], v: &[bool]| idx.iter().map(|&k| v[k]).collect::<Vec<bool>>();
    // Both outcomes overall can still leave the training split with one
    // (a lone churner held out), which no model can be fitted to.
    if let Some(all) = one_outcome(&train, labels) {
        warnings.push(format!(
            "churn model not fitted: the {} training customers (the rest of {} are held out, [value] holdout_share = {}) are all {all}; churn_probability is left empty",
            train.len(),
            rows.len(),
            settings.holdout_share,
        ));
        return None;
    }
    let not_fitted = |e: Error, warnings: &mut Vec<String>| {
        warnings.push(format!(
            "churn model not fitted ({e}); churn_probability is left empty"
        ));
    };
    let held_rows = pick(&held, rows);
    let held_labels = pick_b(&held, labels);
    let held_active = pick_b(&held, active);
    // Refit on every labelled customer (up to the training cap), then score
    // today's features.
    let refit = churn::training_sample(
        (0..rows.len()).collect(),
        settings.max_training,
        settings.seed,
    );
    let all_today: Vec<usize> = (0..today.customer_id.len()).collect();
    // The refit does not depend on the evaluation, so it runs beside it on
    // another core: the two fits are most of the churn model's time. Its
    // result is looked at only where it was computed before.
    let (evaluated, refitted) = std::thread::scope(|scope| {
        let refitted = scope.spawn(|| {
            ChurnModel::fit(past, &pick(&refit, rows), &pick_b(&refit, labels)).map(|model| {
                let today_p = model.predict(today, &all_today);
                (model, today_p)
            })
        });
        let evaluated = ChurnModel::fit(past, &pick(&train, rows), &pick_b(&train, labels))
            .map(|model| model.predict(past, &held_rows));
        let refitted = refitted
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (evaluated, refitted)
    });
    let predicted = match evaluated {
        Ok(p) => p,
        Err(e) => {
            not_fitted(e, warnings);
            return None;
        }
    };
    let (active_p, active_y): (Vec<f64>, Vec<bool>) = predicted
        .iter()
        .zip(&held_labels)
        .zip(&held_active)
        .filter(|(_, a)| **a)
        .map(|((p, y), _)| (*p, *y))
        .unzip();
    let evaluation = ChurnEvaluation {
        cutoff,
        training_customers: train.len() as u64,
        holdout_customers: held.len() as u64,
        base_rate: (!held_labels.is_empty())
            .then(|| held_labels.iter().filter(|&&y| y).count() as f64 / held_labels.len() as f64),
        roc_auc: metrics::roc_auc(&predicted, &held_labels),
        roc_auc_active_at_cutoff: metrics::roc_auc(&active_p, &active_y),
        brier_score: metrics::brier_score(&predicted, &held_labels),
        top_decile_lift: metrics::top_decile_lift(&predicted, &held_labels),
        calibration: metrics::calibration(&predicted, &held_labels, 10)
            .into_iter()
            .map(|mut bin| {
                // The outcome lands in the run manifest: small bins say nothing there either.
                if bin.customers < settings.min_group_size as u64 {
                    bin.mean_predicted = None;
                    bin.observed_rate = None;
                }
                bin
            })
            .collect(),
    };
    info!(
        training = train.len(),
        held_out = held.len(),
        roc_auc = evaluation.roc_auc.unwrap_or(f64::NAN),
        "churn model evaluated"
    );
    let held_out = held_rows
        .iter()
        .zip(&predicted)
        .zip(held_labels.iter().zip(&held_active))
        .map(|((&r, &p), (&y, &a))| (past.customer_id[r].clone(), p, y, a))
        .collect();
    // Beyond the cap the refit draws its own sample, which with few
    // churners can hold one outcome where the training sample held both.
    if let Some(all) = one_outcome(&refit, labels) {
        warnings.push(format!(
            "churn model not fitted: the {} customers it is refitted on (a sample of the {} who had bought by the cut-off {cutoff}) are all {all}; churn_probability is left empty",
            refit.len(),
            rows.len(),
        ));
        return None;
    }
    let (model, today_p) = match refitted {
        Ok(fitted) => fitted,
        Err(e) => {
            not_fitted(e, warnings);
            return None;
        }
    };
    Some(ChurnRun {
        evaluation,
        model,
        held_out,
        today: today_p,
        training_customers: refit.len() as u64,
    })
}

/// What all the customers `idx` are, when they are all the same (or none):
/// no model can be fitted to one outcome.
fn one_outcome(idx: &[usize], labels: &[bool]) -> Option<&'static str> {
    let churners = idx.iter().filter(|&&k| labels[k]).count();
    if churners == 0 {
        Some("non-churners")
    } else if churners == idx.len() {
        Some("churners")
    } else {
        None
    }
}

/// Segment names from `marts/segments` of `date`, aligned with
/// `customers`; all `None` when the segment job has not run for that date.
async fn segments_of(
    ctx: &JobContext,
    customers: &[String],
    date: NaiveDate,
) -> Result<Vec<Option<String>>> {
    let mut out = vec![None; customers.len()];
    let present = catalog::list_tables(&ctx.storage, "marts")
        .await?
        .iter()
        .any(|t| t.name == "segments");
    let batches = if present {
        let session = catalog::new_session(&ctx.storage);
        catalog::register(&session, &ctx.storage, "marts", "segments", "segments").await?;
        session
            .sql(&format!(
                "SELECT customer_id, segment FROM segments WHERE dt = DATE '{date}'"
            ))
            .await?
            .collect()
            .await?
    } else {
        Vec::new()
    };
    let mut from = 0;
    for b in &batches {
        let ids = string_column(b, "customer_id")?;
        let names = string_column(b, "segment")?;
        for r in 0..b.num_rows() {
            if ids.is_null(r) || names.is_null(r) {
                continue;
            }
            if let Some(i) = sorted_position(customers, ids.value(r), &mut from) {
                out[i] = Some(names.value(r).to_string());
            }
        }
    }
    Ok(out)
}

/// `initiative arm` labels per customer (aligned with `customers`), for
/// assignments that started on or before the cut-off.
async fn arms_of(
    session: &SessionContext,
    customers: &[String],
    cutoff: i32,
) -> Result<Vec<Vec<String>>> {
    let mut out = vec![Vec::new(); customers.len()];
    if !session.table_exist("initiative_assignments")? {
        return Ok(out);
    }
    let batches = session.sql(ARMS_SQL).await?.collect().await?;
    let mut from = 0;
    for b in &batches {
        let ids = string_column(b, "customer_id")?;
        let initiative = string_column(b, "initiative_id")?;
        let arm = string_column(b, "arm")?;
        let on = summary::date_column(b, "assigned_on")?;
        for r in 0..b.num_rows() {
            if ids.is_null(r) || initiative.is_null(r) || arm.is_null(r) || on.is_null(r) {
                continue;
            }
            if on.value(r) > cutoff {
                continue;
            }
            if let Some(i) = sorted_position(customers, ids.value(r), &mut from) {
                out[i].push(format!("{} {}", initiative.value(r), arm.value(r)));
            }
        }
    }
    Ok(out)
}

/// The position of `id` in `customers` (sorted, distinct), searched for
/// from `*from` on when `id` sorts after the customer before it, where it
/// leaves the position `id` has or would have. Rows in customer order cost
/// a step or two each, where a binary search over a million strings missed
/// the cache at nearly every step; rows in any other order are still found.
fn sorted_position(customers: &[String], id: &str, from: &mut usize) -> Option<usize> {
    let n = customers.len();
    let before = |i: usize| customers[i].as_str() < id;
    let (mut lo, mut hi) = (0, n);
    if *from > 0 && *from <= n && before(*from - 1) {
        // Galloping: every customer before `lo` sorts before `id`.
        (lo, hi) = (*from, *from);
        let mut step = 1;
        while hi < n && before(hi) {
            lo = hi + 1;
            hi += step;
            step *= 2;
        }
        hi = hi.min(n);
    }
    let p = lo + customers[lo..hi].partition_point(|c| c.as_str() < id);
    *from = p;
    (p < n && customers[p] == id).then_some(p)
}

fn customer_value_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("segment", DataType::Utf8, true),
        Field::new("x", DataType::Int64, false),
        Field::new("t_x", DataType::Float64, false),
        Field::new("t", DataType::Float64, false),
        Field::new("monetary", DataType::Float64, true),
        Field::new("p_alive", DataType::Float64, true),
        Field::new("expected_purchases_90d", DataType::Float64, true),
        Field::new("expected_purchases_365d", DataType::Float64, true),
        Field::new("expected_order_value", DataType::Float64, true),
        Field::new("cltv_12m", DataType::Float64, true),
        Field::new("churn_probability", DataType::Float64, true),
        Field::new("at_risk", DataType::Boolean, true),
    ]))
}

fn customer_value_batch(
    s: &Summaries,
    segments: &[Option<String>],
    scores: &clv::Scores,
    probability: &[Option<f64>],
    threshold: f64,
) -> Result<RecordBatch> {
    let mut id = StringBuilder::new();
    let mut seg = StringBuilder::new();
    let mut x = Int64Builder::new();
    let (mut tx, mut t, mut m, mut pa, mut e90, mut e365, mut ev, mut cltv, mut pc) = (
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
    );
    let mut risk = BooleanBuilder::new();
    for i in 0..s.len() {
        id.append_value(&s.customer_id[i]);
        seg.append_option(segments[i].as_deref());
        x.append_value(i64::from(s.x[i]));
        tx.append_value(s.t_x[i]);
        t.append_value(s.t[i]);
        m.append_option(s.monetary[i]);
        pa.append_option(scores.p_alive[i]);
        e90.append_option(scores.expected_purchases[0][i]);
        e365.append_option(scores.expected_purchases[1][i]);
        ev.append_option(scores.expected_value[i]);
        cltv.append_option(scores.cltv_12m[i]);
        pc.append_option(probability[i]);
        risk.append_option(probability[i].map(|p| p >= threshold));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(seg.finish()),
        Arc::new(x.finish()),
        Arc::new(tx.finish()),
        Arc::new(t.finish()),
        Arc::new(m.finish()),
        Arc::new(pa.finish()),
        Arc::new(e90.finish()),
        Arc::new(e365.finish()),
        Arc::new(ev.finish()),
        Arc::new(cltv.finish()),
        Arc::new(pc.finish()),
        Arc::new(risk.finish()),
    ];
    Ok(RecordBatch::try_new(customer_value_schema(), columns)?)
}

fn churn_evaluation_batch(
    c: Option<&ChurnRun>,
    cutoff: NaiveDate,
    threshold: f64,
) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("cutoff", DataType::Date32, false),
        Field::new("churn_probability", DataType::Float64, false),
        Field::new("at_risk", DataType::Boolean, false),
        Field::new("churned", DataType::Boolean, false),
        Field::new("active_at_cutoff", DataType::Boolean, false),
    ]));
    let mut id = StringBuilder::new();
    let mut cut = Date32Builder::new();
    let mut p = Float64Builder::new();
    let (mut risk, mut churned, mut active) = (
        BooleanBuilder::new(),
        BooleanBuilder::new(),
        BooleanBuilder::new(),
    );
    for (cid, prob, y, a) in c.iter().flat_map(|c| &c.held_out) {
        id.append_value(cid);
        cut.append_value(epoch_day(cutoff));
        p.append_value(*prob);
        risk.append_value(*prob >= threshold);
        churned.append_value(*y);
        active.append_value(*a);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(cut.finish()),
        Arc::new(p.finish()),
        Arc::new(risk.finish()),
        Arc::new(churned.finish()),
        Arc::new(active.finish()),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn churn_rates_batch(rows: &[rates::RateRow], min_group_size: usize) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("period", DataType::Utf8, false),
        Field::new("cutoff", DataType::Date32, false),
        Field::new("population", DataType::Utf8, false),
        Field::new("dimension", DataType::Utf8, false),
        Field::new("group_value", DataType::Utf8, false),
        Field::new("customers", DataType::Int64, true),
        Field::new("churned", DataType::Int64, true),
        Field::new("churn_rate", DataType::Float64, true),
        Field::new("suppressed", DataType::Boolean, false),
    ]));
    let (mut period, mut population, mut dimension, mut group) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut cutoff = Date32Builder::new();
    let (mut n, mut churned) = (Int64Builder::new(), Int64Builder::new());
    let mut rate = Float64Builder::new();
    let mut suppressed = BooleanBuilder::new();
    let hidden = rates::hidden_rows(rows, min_group_size as u64);
    for (r, &hide) in rows.iter().zip(&hidden) {
        period.append_value(&r.period);
        cutoff.append_value(epoch_day(r.cutoff));
        population.append_value(r.population);
        dimension.append_value(r.dimension);
        group.append_value(&r.group_value);
        if hide {
            n.append_null();
            churned.append_null();
            rate.append_null();
        } else {
            n.append_value(r.customers as i64);
            churned.append_value(r.churned as i64);
            rate.append_value(r.churned as f64 / r.customers as f64);
        }
        suppressed.append_value(hide);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(period.finish()),
        Arc::new(cutoff.finish()),
        Arc::new(population.finish()),
        Arc::new(dimension.finish()),
        Arc::new(group.finish()),
        Arc::new(n.finish()),
        Arc::new(churned.finish()),
        Arc::new(rate.finish()),
        Arc::new(suppressed.finish()),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn model_metrics(
    models: &ClvModels,
    currency: &ValueCurrency,
    churn: Option<&ChurnRun>,
    cfg: &crate::config::ValueConfig,
    at_risk_customers: u64,
    min_group_size: usize,
) -> Vec<Metric> {
    let mut out = Vec::new();
    let unit = models.time_unit.name();
    let bg = &models.bg_nbd;
    let state = bg.optimizer.describe();
    for (k, (name, v)) in bg.params.named().iter().enumerate() {
        let mut m = Metric::new("bg_nbd", "parameter", *v).key(*name);
        if *name == "alpha" {
            m = m.detail(format!("time unit: {unit}"));
        }
        out.push(m);
        out.push(match bg.standard_errors {
            Some(se) => Metric::new("bg_nbd", "standard_error", se[k]).key(*name),
            None => Metric {
                value: None,
                ..Metric::new("bg_nbd", "standard_error", 0.0)
                    .key(*name)
                    .detail("observed information not positive definite")
            },
        });
    }
    out.push(Metric::new("bg_nbd", "log_likelihood", bg.log_likelihood).detail(state.clone()));
    out.push(
        Metric::new(
            "bg_nbd",
            "converged",
            f64::from(u8::from(bg.optimizer.converged)),
        )
        .detail(format!("{}; method {}", state, bg.optimizer.method)),
    );
    out.push(Metric::new(
        "bg_nbd",
        "iterations",
        bg.optimizer.iterations as f64,
    ));
    out.push(Metric::new("bg_nbd", "customers", bg.customers as f64));
    out.push(
        Metric::new("bg_nbd", "distinct_tuples", bg.distinct_tuples as f64)
            .detail("distinct (x, t_x, T): the likelihood's unit of work"),
    );
    if let Some(gg) = &models.gamma_gamma {
        let state = gg.optimizer.describe();
        for (k, (name, v)) in gg.params.named().iter().enumerate() {
            out.push(Metric::new("gamma_gamma", "parameter", *v).key(*name));
            if let Some(se) = gg.standard_errors {
                out.push(Metric::new("gamma_gamma", "standard_error", se[k]).key(*name));
            }
        }
        out.push(
            Metric::new("gamma_gamma", "log_likelihood", gg.log_likelihood).detail(state.clone()),
        );
        out.push(
            Metric::new(
                "gamma_gamma",
                "converged",
                f64::from(u8::from(gg.optimizer.converged)),
            )
            .detail(format!("{}; method {}", state, gg.optimizer.method)),
        );
        out.push(Metric::new(
            "gamma_gamma",
            "iterations",
            gg.optimizer.iterations as f64,
        ));
        out.push(Metric::new("gamma_gamma", "customers", gg.customers as f64));
        if let Some(mean) = gg.params.population_mean() {
            out.push(
                Metric::new("gamma_gamma", "population_mean_value", mean).detail(format!(
                    "mean value of a purchase day, in {}",
                    currency.currency.as_deref().unwrap_or("currency units")
                )),
            );
        }
    }
    out.push(Metric {
        value: models.frequency_monetary_correlation,
        ..Metric::new("gamma_gamma", "frequency_monetary_correlation", 0.0).detail(
            "Pearson correlation of repeat purchases and mean repeat value; the model assumes 0",
        )
    });
    if models.gamma_gamma_excluded > 0 {
        out.push(
            Metric::new(
                "gamma_gamma",
                "excluded_customers",
                models.gamma_gamma_excluded as f64,
            )
            .detail("repeat customers with a zero mean value"),
        );
    }
    out.push(
        Metric::new("clv", "gross_margin", cfg.gross_margin)
            .detail("CLTV = margin x expected revenue"),
    );
    out.push(
        Metric::new("clv", "annual_discount_rate", cfg.annual_discount_rate)
            .detail("applied monthly over 12 months"),
    );
    if let Some(code) = &currency.currency {
        let others = match currency.others() {
            0 => "none".to_string(),
            _ => currency.list_others(),
        };
        out.push(
            Metric::new("clv", "currency", currency.others() as f64)
                .key(code.clone())
                .detail(format!(
                    "monetary, expected_order_value and cltv_12m are in {code}, the most common currency of the orders; the value counts the orders in other currencies ({others}), purchases but not valued"
                )),
        );
    }
    let Some(c) = churn else {
        out.push(Metric {
            value: None,
            ..Metric::new("churn_logistic", "roc_auc", 0.0)
                .detail("churn model not fitted (see the job's warnings)")
        });
        return out;
    };
    let e = &c.evaluation;
    let opt = |model: &str, metric: &str, v: Option<f64>, detail: &str| Metric {
        value: v,
        ..Metric::new(model, metric, 0.0).detail(detail)
    };
    let held = format!(
        "{} held-out customers, cut-off {}",
        e.holdout_customers, e.cutoff
    );
    out.push(opt("churn_logistic", "roc_auc", e.roc_auc, &held));
    out.push(opt(
        "churn_logistic",
        "roc_auc_active_at_cutoff",
        e.roc_auc_active_at_cutoff,
        "held-out customers who had bought in the inactive_days before the cut-off",
    ));
    out.push(opt("churn_logistic", "brier_score", e.brier_score, &held));
    out.push(opt(
        "churn_logistic",
        "top_decile_lift",
        e.top_decile_lift,
        "churn rate of the 10% highest scores / overall churn rate",
    ));
    out.push(opt("churn_logistic", "base_rate", e.base_rate, &held));
    out.push(Metric::new(
        "churn_logistic",
        "training_customers",
        e.training_customers as f64,
    ));
    out.push(Metric::new(
        "churn_logistic",
        "holdout_customers",
        e.holdout_customers as f64,
    ));
    for bin in &e.calibration {
        let key = format!("{:.1}-{:.1}", bin.lower, bin.upper);
        if bin.customers < min_group_size as u64 {
            out.push(
                opt(
                    "churn_logistic",
                    "calibration_customers",
                    None,
                    &format!("suppressed: fewer than {min_group_size} customers"),
                )
                .key(key),
            );
            continue;
        }
        out.push(
            Metric::new(
                "churn_logistic",
                "calibration_customers",
                bin.customers as f64,
            )
            .key(key.clone()),
        );
        out.push(
            opt(
                "churn_logistic",
                "calibration_mean_predicted",
                bin.mean_predicted,
                "",
            )
            .key(key.clone()),
        );
        out.push(
            opt(
                "churn_logistic",
                "calibration_observed_rate",
                bin.observed_rate,
                "",
            )
            .key(key),
        );
    }
    let fitted_on = format!(
        "log-odds of churning per standard deviation; refitted on all {} labelled customers",
        c.training_customers
    );
    out.push(
        Metric::new("churn_logistic", "intercept", c.model.intercept).detail(fitted_on.clone()),
    );
    let mut coefficients: Vec<(&String, f64)> = c
        .model
        .standardizer
        .names
        .iter()
        .zip(c.model.coefficients.iter().copied())
        .collect();
    coefficients.sort_by(|a, b| a.0.cmp(b.0));
    for (name, v) in coefficients {
        let detail = if name.ends_with("_missing") {
            "log-odds of churning when the feature is missing".to_string()
        } else {
            fitted_on.clone()
        };
        out.push(
            Metric::new("churn_logistic", "coefficient", v)
                .key(name.clone())
                .detail(detail),
        );
    }
    for (name, why) in &c.model.standardizer.dropped {
        out.push(opt("churn_logistic", "feature_dropped", None, why).key(name.clone()));
    }
    out.push(
        Metric::new(
            "churn_logistic",
            "at_risk_customers",
            at_risk_customers as f64,
        )
        .detail(format!("churn probability >= {}", cfg.at_risk_threshold)),
    );
    out.push(Metric::new(
        "churn_logistic",
        "cutoff_days",
        f64::from(cfg.cutoff_days),
    ));
    out.push(Metric::new(
        "churn_logistic",
        "inactive_days",
        f64::from(cfg.inactive_days),
    ));
    // Blank details carry no information: drop them.
    for m in &mut out {
        if m.detail.as_deref() == Some("") {
            m.detail = None;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Date32Array, StringArray, new_null_array};
    use datafusion::arrow::compute::cast;
    use datafusion::datasource::MemTable;

    use super::*;

    fn day(s: &str) -> i32 {
        epoch_day(s.parse().expect("date"))
    }

    /// Registers lake table `table` with its contract's columns and `dt`:
    /// `columns` given as text (cast to the contract's type), the rest null.
    fn lake_table(
        session: &SessionContext,
        table: &str,
        columns: &[(&str, Vec<&str>)],
        dt: &[&str],
    ) {
        let contract = crate::schema::Contracts::builtin()
            .expect("contracts")
            .get(table)
            .expect("contracted");
        let mut fields: Vec<Field> = contract
            .lake_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        fields.push(Field::new("dt", DataType::Date32, false));
        let schema = Arc::new(Schema::new(fields));
        let n = dt.len();
        let arrays: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| {
                if f.name() == "dt" {
                    return Arc::new(Date32Array::from_iter_values(dt.iter().map(|d| day(d))))
                        as ArrayRef;
                }
                match columns.iter().find(|(c, _)| c == f.name()) {
                    Some((_, v)) => cast(
                        &StringArray::from_iter_values(v.iter().copied()),
                        f.data_type(),
                    )
                    .expect("castable"),
                    None => new_null_array(f.data_type(), n),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), arrays).expect("batch");
        session
            .register_table(
                table,
                Arc::new(MemTable::try_new(schema, vec![vec![batch]]).expect("table")),
            )
            .expect("register");
    }

    /// Orders in two currencies (four in EUR, one in CHF, one refunded in
    /// USD): the values are modelled in EUR, the most common; the CHF order
    /// is a purchase day of c1 but not in its mean repeat value (10, not the
    /// 11 of adding 10 EUR and 12 CHF), and the warning counts it. The
    /// refunded order is no purchase and is not counted.
    #[tokio::test]
    async fn orders_in_other_currencies_are_purchases_without_a_value() {
        let session = SessionContext::new();
        let run_date: NaiveDate = "2025-03-31".parse().expect("date");
        session.register_udf(transform::run_date_udf(run_date));
        lake_table(
            &session,
            "orders",
            &[
                ("order_id", vec!["o1", "o2", "o3", "o4", "o5", "o6"]),
                ("customer_id", vec!["c1", "c1", "c1", "c2", "c2", "c2"]),
                (
                    "ordered_at",
                    vec![
                        "2025-03-01T10:00:00",
                        "2025-03-05T10:00:00",
                        "2025-03-09T10:00:00",
                        "2025-03-02T10:00:00",
                        "2025-03-04T10:00:00",
                        "2025-03-06T10:00:00",
                    ],
                ),
                ("total_amount", vec!["5", "10", "12", "7", "9", "30"]),
                ("currency", vec!["EUR", "EUR", "CHF", "EUR", "EUR", "USD"]),
                (
                    "refunded",
                    vec!["false", "false", "false", "false", "false", "true"],
                ),
            ],
            &["2025-03-31"; 6],
        );
        // stg_orders' columns, without its de-duplication (one export here)
        session
            .register_table(
                "stg_orders",
                session
                    .sql(
                        "SELECT customer_id, ordered_at, CAST(ordered_at AS DATE) AS order_date, \
                         total_amount, currency, COALESCE(refunded, FALSE) AS refunded, \
                         dt AS source_dt FROM orders",
                    )
                    .await
                    .expect("view")
                    .into_view(),
            )
            .expect("register");
        let currency = register_purchases(&session).await.expect("purchases");
        assert_eq!(
            currency,
            ValueCurrency {
                currency: Some("EUR".into()),
                other_orders: BTreeMap::from([("CHF".into(), 1)]),
            }
        );
        let warning = currency_warning(&currency, run_date).expect("warned");
        assert!(
            warning.starts_with("1 orders up to 2025-03-31 are not in EUR")
                && warning.contains("(CHF 1)"),
            "{warning}"
        );
        let s = summary::load(&session, run_date, run_date, summary::TimeUnit::Days)
            .await
            .expect("summary")
            .summaries;
        assert_eq!(s.customer_id, ["c1", "c2"]);
        assert_eq!(s.x, [2, 1], "the CHF day is a purchase day");
        assert_eq!(s.t_x, [8.0, 2.0]);
        assert_eq!(s.valued_x, [1, 1]);
        assert_eq!(s.monetary, [Some(10.0), Some(9.0)]);
    }

    /// Differential: today's features read as they are and sorted only
    /// when they do not arrive sorted, against the ORDER BY query they were
    /// read with: the same table, bit for bit, for a partition written
    /// sorted (read in one piece, or in three that arrive in any order) and
    /// one that was not; another day's rows are left out either way.
    #[tokio::test]
    async fn features_read_as_stored_equal_the_ordered_query() {
        use datafusion::arrow::array::{Float64Array, Int64Array};
        use rand::seq::SliceRandom;
        use rand::{Rng, SeedableRng};
        type Row = (String, Option<i64>, Option<f64>, i32);
        let mut rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(41);
        let date: NaiveDate = "2025-06-30".parse().expect("date");
        let mut rows: Vec<Row> = Vec::new();
        for dt in [date, date.pred_opt().expect("date")] {
            for _ in 0..500 {
                let id = format!("{:032x}", rng.random::<u128>());
                let recency = rng.random_bool(0.9).then(|| rng.random_range(0..400));
                let monetary = rng
                    .random_bool(0.8)
                    .then(|| f64::from(rng.random_range(0..100_000u32)) / 100.0);
                rows.push((id, recency, monetary, epoch_day(dt)));
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("recency_days", DataType::Int64, true),
            Field::new("currency", DataType::Utf8, true),
            Field::new("monetary_total", DataType::Float64, true),
            Field::new("dt", DataType::Date32, false),
        ]));
        let batch = |rows: &[Row]| {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.0.as_str()),
                )) as ArrayRef,
                Arc::new(rows.iter().map(|r| r.1).collect::<Int64Array>()),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "EUR"))),
                Arc::new(rows.iter().map(|r| r.2).collect::<Float64Array>()),
                Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.3))),
            ];
            RecordBatch::try_new(schema.clone(), columns).expect("batch")
        };
        let pieces = |rows: &[Row], n: usize| -> Vec<Vec<RecordBatch>> {
            rows.chunks(rows.len().div_ceil(n))
                .map(|c| vec![batch(c)])
                .collect()
        };
        let mut sorted = rows.clone();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut shuffled = rows;
        shuffled.shuffle(&mut rng);
        let bits = |t: &FeatureTable| -> Vec<Vec<u64>> {
            t.values
                .iter()
                .map(|v| v.iter().map(|x| x.to_bits()).collect())
                .collect()
        };
        for (what, partitions) in [
            ("sorted, one piece", pieces(&sorted, 1)),
            ("sorted, three pieces", pieces(&sorted, 3)),
            ("shuffled, four pieces", pieces(&shuffled, 4)),
        ] {
            let session = SessionContext::new();
            let table = MemTable::try_new(schema.clone(), partitions).expect("table");
            session
                .register_table("customer_features_mart", Arc::new(table))
                .expect("register");
            let got = current_features(&session, date).await.expect("features");
            let ordered = session
                .sql(&format!(
                    "SELECT * FROM customer_features_mart WHERE dt = DATE '{date}' ORDER BY customer_id"
                ))
                .await
                .expect("sql")
                .collect()
                .await
                .expect("rows");
            let want = FeatureTable::from_batches(&ordered).expect("table");
            assert_eq!(got.customer_id.len(), 500, "{what}");
            assert_eq!(got.customer_id, want.customer_id, "{what}");
            assert_eq!(got.names, want.names, "{what}");
            assert_eq!(bits(&got), bits(&want), "{what}");
        }
    }

    /// The single currency as it was found before: every distinct code of
    /// the lake's orders up to the run date.
    async fn single_currency_by_distinct_codes(session: &SessionContext) -> Option<String> {
        let mut codes = Vec::new();
        for b in session
            .sql("SELECT DISTINCT currency FROM orders WHERE dt <= run_date()")
            .await
            .expect("sql")
            .collect()
            .await
            .expect("rows")
        {
            let c = string_column(&b, "currency").expect("currency");
            codes.extend((0..b.num_rows()).map(|r| c.is_valid(r).then(|| c.value(r).to_string())));
        }
        match codes.as_slice() {
            [Some(only)] => Some(only.clone()),
            _ => None,
        }
    }

    /// Differential: the single currency from a first code and a search
    /// for any other, which Parquet statistics answer, against every
    /// distinct code, on orders files (one a day, random codes drawn from
    /// each case's) read through the catalog as the job reads them, so row
    /// groups are pruned as there.
    #[tokio::test]
    async fn one_currency_by_statistics_equals_the_distinct_codes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(43);
        let run_date: NaiveDate = "2025-03-31".parse().expect("date");
        let after: NaiveDate = "2025-04-02".parse().expect("date");
        type Codes<'a> = &'a [Option<&'a str>];
        // (case, codes of the five days up to the run date, of a day after
        // it, the currency)
        let cases: [(&str, Codes<'_>, Codes<'_>, Option<&str>); 7] = [
            ("one code", &[Some("EUR")], &[], Some("EUR")),
            (
                "two codes",
                &[Some("EUR"), Some("EUR"), Some("CHF")],
                &[],
                None,
            ),
            (
                "a missing code",
                &[Some("EUR"), Some("EUR"), None],
                &[],
                None,
            ),
            ("no code", &[None], &[], None),
            (
                "others after the run date",
                &[Some("EUR")],
                &[Some("CHF"), None],
                Some("EUR"),
            ),
            ("a quote", &[Some("E'R")], &[], Some("E'R")),
            ("no order up to the run date", &[], &[Some("EUR")], None),
        ];
        let schema = Arc::new(Schema::new(vec![
            Field::new("order_id", DataType::Utf8, false),
            Field::new("currency", DataType::Utf8, true),
        ]));
        for (what, before, later, want) in cases {
            let dir = tempfile::tempdir().expect("tmp");
            let storage =
                crate::storage::Storage::open(dir.path().to_str().expect("utf8")).expect("open");
            let days = (25..=29)
                .map(|d| (NaiveDate::from_ymd_opt(2025, 3, d).expect("date"), before))
                .chain([(after, later)]);
            for (dt, codes) in days {
                if codes.is_empty() {
                    continue;
                }
                let n = 300;
                let ids = StringArray::from_iter_values((0..n).map(|i| format!("{dt}-{i}")));
                let currency: StringArray = (0..n)
                    .map(|_| codes[rng.random_range(0..codes.len())])
                    .collect();
                let columns = vec![Arc::new(ids) as ArrayRef, Arc::new(currency)];
                let batch = RecordBatch::try_new(schema.clone(), columns).expect("batch");
                crate::parquet_io::write_batches(
                    &storage,
                    &crate::storage::partition_file("lake", "orders", dt),
                    schema.clone(),
                    &[batch],
                )
                .await
                .expect("write");
            }
            let session = catalog::new_session(&storage);
            catalog::register(&session, &storage, "lake", "orders", "orders")
                .await
                .expect("register");
            session.register_udf(transform::run_date_udf(run_date));
            let got = single_currency(&session).await.expect("currency");
            assert_eq!(got.as_deref(), want, "{what}");
            assert_eq!(
                got,
                single_currency_by_distinct_codes(&session).await,
                "{what}"
            );
        }
    }

    /// Customers c000… with one feature, `value(i)` for customer i.
    fn features(n: usize, value: impl Fn(usize) -> f64) -> FeatureTable {
        FeatureTable {
            customer_id: (0..n).map(|i| format!("c{i:03}")).collect(),
            names: vec!["recency_days".into()],
            values: vec![(0..n).map(value).collect()],
        }
    }

    /// A churn model that cannot be fitted is a warning with no model, not
    /// an error that stops the job before customer_value is written: the
    /// lifetime values do not depend on it. Two ways, at the smallest
    /// scale: no usable feature, and a refit sample (capped at 6 of 40
    /// customers here, as the job caps it at 50,000) that drew only non-churners
    /// while the training sample drew both.
    #[test]
    fn a_churn_model_that_cannot_be_fitted_is_a_warning() {
        let n = 40;
        let cutoff: NaiveDate = "2025-04-07".parse().expect("date");
        let settings = ChurnSettings {
            holdout_share: 0.3,
            seed: 42,
            min_group_size: 5,
            max_training: churn::MAX_TRAINING_CUSTOMERS,
        };
        let outcome = |got: Option<ChurnRun>| assert!(got.is_none(), "fitted");

        let constant = features(n, |_| 3.0);
        let labelled = Labelled {
            rows: (0..n).collect(),
            churned: (0..n).map(|i| i % 4 == 0).collect(),
            active: vec![true; n],
        };
        let mut warnings = Vec::new();
        outcome(fit_churn(
            &constant,
            &constant,
            &labelled,
            cutoff,
            &settings,
            &mut warnings,
        ));
        assert!(
            warnings.iter().any(|w| w.contains("no usable feature")
                && w.contains("churn_probability is left empty")),
            "{warnings:?}"
        );

        let churned: Vec<bool> = (0..n).map(|i| i == 3 || i == 20).collect();
        let cap = 6;
        let seed = (0..1000u64)
            .find(|&seed| {
                let (train, _) = churn::holdout_split(n, settings.holdout_share, seed);
                let refit = churn::training_sample((0..n).collect(), cap, seed);
                one_outcome(&churn::training_sample(train, cap, seed), &churned).is_none()
                    && one_outcome(&refit, &churned).is_some()
            })
            .expect("a seed that splits so");
        let varying = features(n, |i| (i % 7) as f64);
        let labelled = Labelled {
            rows: (0..n).collect(),
            churned,
            active: vec![true; n],
        };
        let mut warnings = Vec::new();
        outcome(fit_churn(
            &varying,
            &varying,
            &labelled,
            cutoff,
            &ChurnSettings {
                seed,
                max_training: cap,
                ..settings
            },
            &mut warnings,
        ));
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("refitted on") && w.contains("all non-churners")),
            "{warnings:?}"
        );
    }

    /// Assignments without `assigned_at` re-sent in every export (first on
    /// 2025-01-10, last on the run date 2025-06-30) started before the
    /// cut-off 2025-04-01: they keep their arm in the churn rates, dated by
    /// the initiative's start as the ROI job dates them, or, for an
    /// initiative the lake does not list, by their first export. One first
    /// exported after the cut-off has no arm yet.
    #[tokio::test]
    async fn assignments_resent_in_every_export_are_dated_by_their_start() {
        let session = SessionContext::new();
        session.register_udf(transform::run_date_udf("2025-06-30".parse().expect("date")));
        lake_table(
            &session,
            "initiative_assignments",
            &[
                ("customer_id", vec!["c1", "c1", "c2", "c2", "c3", "c3"]),
                ("initiative_id", vec!["I1", "I1", "I2", "I2", "I2", "I2"]),
                (
                    "arm",
                    vec![
                        "treatment",
                        "treatment",
                        "control",
                        "control",
                        "treatment",
                        "treatment",
                    ],
                ),
            ],
            &[
                "2025-01-10",
                "2025-06-30",
                "2025-01-10",
                "2025-06-30",
                "2025-05-02",
                "2025-06-30",
            ],
        );
        lake_table(
            &session,
            "initiatives",
            &[
                ("initiative_id", vec!["I1", "I1"]),
                ("started_on", vec!["2025-01-06", "2025-01-06"]),
            ],
            &["2025-01-06", "2025-06-30"],
        );
        let customers = ["c1", "c2", "c3"].map(String::from);
        let arms = arms_of(&session, &customers, day("2025-04-01"))
            .await
            .expect("arms");
        assert_eq!(
            arms,
            [
                vec!["I1 treatment".to_string()],
                vec!["I2 control".to_string()],
                vec![]
            ]
        );
    }

    /// Differential: against a binary search, for ids in customer order
    /// (the fast path), in reverse and shuffled, with ids that are missing,
    /// before the first customer and after the last.
    #[test]
    fn sorted_positions_equal_a_binary_search() {
        use rand::seq::SliceRandom;
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(31);
        let mut customers: Vec<String> = (0..3000)
            .map(|_| format!("{:x}", rng.random_range(0..1_000_000u32)))
            .collect();
        customers.sort();
        customers.dedup();
        let mut ids: Vec<String> = customers.iter().step_by(2).cloned().collect();
        ids.extend((0..1500).map(|_| format!("{:x}", rng.random_range(0..1_000_000u32))));
        ids.extend(["".to_string(), "0".into(), "fffff".into(), "g".into()]);
        ids.sort();
        let mut reversed = ids.clone();
        reversed.reverse();
        let mut shuffled = ids.clone();
        shuffled.shuffle(&mut rng);
        for order in [ids, reversed, shuffled] {
            let mut from = 0;
            for id in &order {
                let want = customers.binary_search(id).ok();
                assert_eq!(sorted_position(&customers, id, &mut from), want, "{id}");
            }
        }
        assert_eq!(sorted_position(&[], "a", &mut 0), None);
    }

    #[test]
    fn a_training_split_with_one_outcome_is_named() {
        let labels = [true, false, false, false];
        // the lone churner held out: training has non-churners only
        assert_eq!(one_outcome(&[1, 2, 3], &labels), Some("non-churners"));
        assert_eq!(one_outcome(&[0], &labels), Some("churners"));
        assert_eq!(one_outcome(&[], &labels), Some("non-churners"));
        assert_eq!(one_outcome(&[0, 3], &labels), None);
        // whatever the seed, splitting 25 customers with one churner puts
        // it in the holdout for some seeds: exactly the case guarded
        let mut labels = vec![false; 25];
        labels[7] = true;
        let held_out_churner = (0..200u64).any(|seed| {
            let (train, _) = churn::holdout_split(25, 0.3, seed);
            one_outcome(&train, &labels).is_some()
        });
        assert!(held_out_churner);
    }
}
