//! Voice of the customer: what customers say in survey comments, tickets
//! and reviews, and what their scores say, with honest uncertainty.
//!
//! ```text
//! lake/feedback.comment ┐                                     ┌ marts/feedback_scored   one row per message, no text
//! lake/tickets.message  ├ dedupe as of D ─ score (parallel) ─┤
//! lake/reviews.text     ┘       (messages_*.sql)              └ phrase counts ─ marts/voice_themes
//! marts/feedback_scored ─ scores.sql ─ stats ─ marts/voice_scores       NPS/CSAT/CES/sentiment, CI, trend
//!                       ─ closed_loop*.sql ── marts/voice_closed_loop  follow-ups of unhappy customers
//!                       ─ quality ─────────── marts/model_metrics      Spearman(stars, sentiment), counts
//! ```
//!
//! Reads `lake/feedback`, `lake/tickets`, `lake/reviews` (the columns in
//! [`LAKE_COLUMNS_READ`]) up to the run date with the staging views'
//! de-duplication rule (the copies `marts/superseded` of the run date lists
//! are left out, so the transform must have run for the date), and
//! `marts/segments` of the run date when the segment job has written it.
//! Writes `marts/feedback_scored`, `marts/voice_scores`,
//! `marts/voice_themes`, `marts/voice_closed_loop` and the `voice` file of
//! `marts/model_metrics`. Message text is scored in
//! memory and never written; every aggregate below `min_group_size` is
//! suppressed before it leaves this module.
//!
//! # Layout
//! - [`score`]: the sentiment and emotion scorer
//! - [`messages`]: reading, scoring and writing the messages (`feedback_scored`)
//! - [`scores`]: NPS, CSAT, CES and sentiment cells with intervals and trend (`voice_scores`)
//! - [`themes`]: phrases that distinguish negative from positive messages (`voice_themes`)
//! - [`closed_loop`]: follow-ups of negative tickets and detractors (`voice_closed_loop`)
//! - [`quality`]: the scorer's agreement with star ratings, scored/unscored counts (`model_metrics`)
//! - [`stats`]: the intervals and tests
//! - [`columns`]: typed access to query results

pub mod base_file;
pub mod closed_loop;
pub mod columns;
pub mod messages;
pub mod quality;
pub mod reuse;
pub mod score;
pub mod scores;
pub mod stats;
pub mod themes;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use serde::Serialize;
use tracing::{Instrument, debug, info, instrument, warn};

use crate::catalog::{self, TableRef};
use crate::context::JobContext;
use crate::mart;
use crate::storage::{Storage, partition_dir};
use crate::{Error, Result};

/// Rows per batch of the session: each batch's messages are scored in a
/// few slices per core whose theme counts are then merged, and at
/// DataFusion's 8,192 the merging of the slices' phrase tables was a tenth
/// of the job.
const MESSAGE_BATCH_ROWS: usize = 32_768;

/// The lake columns this job reads (for the privacy job's inventory).
pub const LAKE_COLUMNS_READ: &[(&str, &str)] = &[
    ("feedback", "response_id"),
    ("feedback", "customer_id"),
    ("feedback", "responded_at"),
    ("feedback", "survey_type"),
    ("feedback", "score"),
    ("feedback", "comment"),
    ("feedback", "touchpoint"),
    ("tickets", "ticket_id"),
    ("tickets", "customer_id"),
    ("tickets", "created_at"),
    ("tickets", "channel"),
    ("tickets", "message"),
    ("tickets", "satisfaction"),
    ("tickets", "follow_up_at"),
    ("reviews", "review_id"),
    ("reviews", "customer_id"),
    ("reviews", "posted_at"),
    ("reviews", "platform"),
    ("reviews", "text"),
    ("reviews", "rating"),
];

/// What the voice job did.
#[derive(Debug, Clone, Serialize)]
pub struct VoiceOutcome {
    pub date: NaiveDate,
    /// Messages read (survey answers, tickets, reviews up to the date).
    pub rows_in: u64,
    /// Rows written to the four marts (model metrics not counted).
    pub rows_out: u64,
    pub warnings: Vec<String>,
    /// Messages per source (`survey`, `ticket`, `review`).
    pub messages_by_source: BTreeMap<String, u64>,
    /// Messages whose words were scored.
    pub scored: u64,
    /// Messages not scored, by reason (`no_text`, `unsupported_language`, …).
    pub unscored_by_reason: BTreeMap<String, u64>,
    /// Rows of `voice_scores`, and how many of them are suppressed.
    pub score_rows: u64,
    pub suppressed_score_rows: u64,
    pub theme_rows: u64,
    pub closed_loop_rows: u64,
    /// Spearman's correlation of review stars and sentiment, when computed.
    pub spearman_rating: Option<f64>,
    /// Whether `voice_scores` has the segment dimension.
    pub segments: bool,
    /// The earlier night whose scored messages were carried over (only the
    /// messages new since were scored), when one was.
    pub carried_from: Option<NaiveDate>,
}

/// Runs the voice job as of `date`.
pub async fn run(ctx: &JobContext, date: NaiveDate) -> Result<VoiceOutcome> {
    run_after(ctx, date, std::future::ready(Ok(()))).await
}

/// Runs the voice job as of `date`, reading `marts/segments` only once
/// `segments` is ready: the nightly starts voice beside the segment job
/// (`nightly::schedule::late_needs`), and every message is scored before
/// the scores are broken down by segment. An error of `segments` (the
/// segment job failed) is the job's.
#[instrument(skip_all, fields(job = "voice", run_id = %ctx.run_id))]
pub async fn run_after<T>(
    ctx: &JobContext,
    date: NaiveDate,
    segments: impl std::future::Future<Output = Result<T>>,
) -> Result<VoiceOutcome> {
    let storage = &ctx.storage;
    let cfg = &ctx.cfg;
    let k = cfg.min_group_size;
    let mut warnings = Vec::new();
    let started = std::time::Instant::now();
    let (session, tables) = session(storage, ctx.cfg.transform_memory_limit).await?;
    debug!(seconds = started.elapsed().as_secs_f64(), "session ready");
    let params = RunParams {
        date,
        followup_hours: cfg.voice.followup_hours,
    };

    let has = |area: &str, name: &str| {
        tables
            .iter()
            .any(|t: &TableRef| t.area == area && t.name == name)
    };
    let sources: Vec<messages::Source> = messages::SOURCES
        .into_iter()
        .filter(|s| {
            let present = has("lake", s.table);
            if !present {
                warnings.push(format!(
                    "lake/{} is missing: no {} messages were scored",
                    s.table, s.name
                ));
            }
            present
        })
        .collect();
    if sources.is_empty() {
        return Err(Error::MissingInput {
            what: "lake/feedback, lake/tickets and lake/reviews".into(),
            hint: "run `attune ingest` for these tables first".into(),
        });
    }

    // the messages queries leave out the copies the transform listed as
    // replaced for the date (an empty list plans no join)
    crate::transform::superseded::register_published(&session, storage, date).await?;
    // an earlier night's scores carry over when the lake they were scored
    // from is unchanged; the record of tonight's goes before the partition
    // is rewritten and comes back after it is published
    let started = std::time::Instant::now();
    let base = reuse::base(storage, date).await?;
    debug!(seconds = started.elapsed().as_secs_f64(), base = ?base, "earlier scores looked up");
    crate::transform::provenance::forget(ctx, reuse::MART, date).await?;
    let inputs = reuse::digest(storage, date).await?;
    let themes_from = messages::start_of(
        date + chrono::Days::new(1) - chrono::Days::new(cfg.voice.themes_days.into()),
    );
    crate::nightly::progress::step(if base.is_some() {
        "scoring the new messages"
    } else {
        "scoring every message"
    });
    let scoring =
        messages::write_feedback_scored(&session, storage, &params, &sources, themes_from, base, k)
            .await?;
    // vouched for only when the superseded list it left out is the lake's
    // of tonight: a partition re-ingested after the transform ran would
    // otherwise carry its stale copies into every later night
    let models = crate::transform::models::load(cfg.models_dir.as_deref())?;
    if crate::transform::provenance::is_current(ctx, &models, "superseded", date).await? {
        crate::transform::provenance::record(ctx, reuse::MART, date, &inputs).await?;
    } else {
        debug!("superseded list older than the lake: tonight's scores will not be carried over");
    }
    let rows_in: u64 = scoring.by_source.values().sum();
    catalog::register(
        &session,
        storage,
        "marts",
        "feedback_scored",
        "feedback_scored",
    )
    .await?;

    let waited = std::time::Instant::now();
    crate::nightly::progress::step("waiting for the segments");
    segments.await?;
    debug!(
        seconds = waited.elapsed().as_secs_f64(),
        "waited for the segments"
    );
    // listed again: the segment job may have written its first partition
    // since the session listed the marts
    let segmented = storage
        .exists_prefix(&partition_dir("marts", "segments", date))
        .await?;
    if segmented {
        catalog::register(&session, storage, "marts", "segments", "segments").await?;
    }
    let segments = register_segments(&session, segmented, &params).await?;
    if !segments {
        warnings.push(format!(
            "marts/segments has no rows for {date}: voice_scores has no segment dimension (run the segment job for the date, then voice again)"
        ));
    }

    crate::nightly::progress::step("scores by segment and touchpoint, closed loop");
    // Three independent reads, each a task of its own: the session plans
    // one partition, so one after another (or polled together by one task)
    // their queries and the decoding of their rows kept one core busy for
    // the job's last 3.4 s at a million customers while the other sat idle.
    let read_cells = tokio::spawn({
        let session = session.clone();
        async move { scores::read_cells(&session, &params).await }.in_current_span()
    });
    let read_tickets = tokio::spawn({
        let session = session.clone();
        async move { closed_loop::read_negative_tickets(&session, &params).await }.in_current_span()
    });
    let read_quality = tokio::spawn({
        let session = session.clone();
        async move { quality::read(&session, &params).await }.in_current_span()
    });
    let joined = || crate::nightly::panics::joined("a voice query");
    let (cells, tickets, quality) = tokio::join!(read_cells, read_tickets, read_quality);
    let cells = cells.map_err(joined())??;
    let tickets = tickets.map_err(joined())??;
    let (reviews, counts) = quality.map_err(joined())??;
    let score_rows = scores::rows(&cells, date, k);
    let suppressed_score_rows = score_rows.iter().filter(|r| r.suppressed).count() as u64;
    let n_scores = mart::publish(
        storage,
        "voice_scores",
        date,
        scores::schema(),
        &[scores::to_batch(&score_rows)?],
    )
    .await?;

    let themes = scoring.themes.rank(cfg.voice.themes_per_touchpoint);
    let n_themes = mart::publish(
        storage,
        "voice_themes",
        date,
        themes::schema(),
        &[themes::to_batch(&themes)?],
    )
    .await?;

    let detractors = cells
        .iter()
        .find(|c| c.metric == "nps" && c.period_type == "all" && c.dimension == "all")
        .map_or(0, |c| c.sum_b.round().max(0.0) as u64);
    let loop_rows = closed_loop::rows(&tickets, detractors, cfg.voice.followup_hours, k);
    let n_loop = mart::publish(
        storage,
        "voice_closed_loop",
        date,
        closed_loop::schema(),
        &[closed_loop::to_batch(&loop_rows)?],
    )
    .await?;
    if detractors > 0 {
        warnings.push(format!(
            "closed loop: {}",
            closed_loop::DETRACTOR_FOLLOW_UPS_NOT_RECORDED
        ));
    }

    let mut metrics = quality::agreement_metrics(&reviews, k);
    metrics.extend(quality::count_metrics(&counts, k));
    mart::publish_model_metrics(storage, date, "voice", &metrics).await?;
    let spearman_rating = metrics
        .iter()
        .find(|m| m.metric == "spearman_rating" && m.key.as_deref() == Some("all"))
        .and_then(|m| m.value);

    let scored = counts.iter().filter(|c| c.scored).map(|c| c.messages).sum();
    let mut unscored_by_reason = BTreeMap::new();
    for c in counts.iter().filter(|c| !c.scored) {
        *unscored_by_reason
            .entry(c.reason.clone().unwrap_or_else(|| "unknown".into()))
            .or_insert(0) += c.messages;
    }
    for w in &warnings {
        warn!(warning = %w, "voice");
    }
    info!(
        rows_in,
        scored,
        score_rows = n_scores,
        suppressed_score_rows,
        theme_rows = n_themes,
        closed_loop_rows = n_loop,
        "voice finished"
    );
    Ok(VoiceOutcome {
        date,
        rows_in,
        rows_out: rows_in + n_scores + n_themes + n_loop,
        warnings,
        messages_by_source: scoring.by_source,
        scored,
        unscored_by_reason,
        score_rows: n_scores,
        suppressed_score_rows,
        theme_rows: n_themes,
        closed_loop_rows: n_loop,
        spearman_rating,
        segments,
        carried_from: scoring.carried_from,
    })
}

/// Every lake and mart table ([`catalog::register_all`]), in a session
/// whose queries share a pool of `memory_limit` bytes
/// (`[transform] memory_limit_mb`: the de-duplication of the messages sorts
/// whole tables with their text, and spills beyond it; a fixed 512 MiB pool
/// was too small for the hash joins at two million customers), running each
/// query in one partition: the float sums of `scores.sql` then add up in the
/// same order every run, so the same input gives the same bytes (with
/// several partitions, partial sums merge in arrival order).
async fn session(
    storage: &Storage,
    memory_limit: usize,
) -> Result<(SessionContext, Vec<TableRef>)> {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(MESSAGE_BATCH_ROWS);
    let ctx = catalog::new_configured_session(storage, memory_limit, config);
    let all = catalog::register_all(&ctx, storage).await?;
    Ok((ctx, all))
}

/// The values of the named parameters of the job's SQL: `$run_date`
/// (DATE), `$run_end` (the first instant after the run date, UTC),
/// `$run_end_epoch` (the same in epoch seconds) and `$followup_seconds`.
/// Parameters rather than a joined one-row table: a cross join is a nested
/// loop join, whose spilling path fails in DataFusion 55 under memory
/// pressure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunParams {
    pub date: NaiveDate,
    pub followup_hours: u32,
}

impl RunParams {
    fn values(&self) -> Vec<(&'static str, ScalarValue)> {
        let end = (self.date + chrono::Days::new(1))
            .and_time(NaiveTime::MIN)
            .and_utc()
            .timestamp();
        vec![
            (
                "run_date",
                ScalarValue::Date32(Some(scores::date32(self.date))),
            ),
            (
                "run_end",
                ScalarValue::TimestampMicrosecond(Some(end * 1_000_000), Some("UTC".into())),
            ),
            ("run_end_epoch", ScalarValue::Float64(Some(end as f64))),
            (
                "followup_seconds",
                ScalarValue::Float64(Some(3600.0 * f64::from(self.followup_hours))),
            ),
        ]
    }
}

/// Plans `sql` with the run's parameters; errors name the query.
async fn frame(
    session: &SessionContext,
    sql: &str,
    params: &RunParams,
    name: &str,
) -> Result<DataFrame> {
    frame_with(session, sql, params.values(), name).await
}

/// Plans `sql` with the named parameters `values`; errors name the query.
async fn frame_with(
    session: &SessionContext,
    sql: &str,
    values: Vec<(&'static str, ScalarValue)>,
    name: &str,
) -> Result<DataFrame> {
    let failed = |e: datafusion::error::DataFusionError| Error::Model {
        model: name.to_string(),
        reason: e.to_string(),
    };
    session
        .sql(sql)
        .await
        .map_err(failed)?
        .with_param_values(values)
        .map_err(failed)
}

/// Runs `sql` with the run's parameters and collects the result.
async fn collect(
    session: &SessionContext,
    sql: &str,
    params: &RunParams,
    name: &str,
) -> Result<Vec<RecordBatch>> {
    let started = std::time::Instant::now();
    let batches = frame(session, sql, params, name)
        .await?
        .collect()
        .await
        .map_err(|e| Error::Model {
            model: name.to_string(),
            reason: e.to_string(),
        })?;
    // each query's share of the job, for `ATTUNE_LOG=attune=debug`
    debug!(
        query = name,
        seconds = started.elapsed().as_secs_f64(),
        "voice query done"
    );
    Ok(batches)
}

/// Registers `voice_segments(customer_id, segment)`: the segment names of
/// the run date from `marts/segments`, or an empty table when there are
/// none (then the segment dimension has no rows). Returns whether segments
/// were found.
async fn register_segments(
    session: &SessionContext,
    table_exists: bool,
    params: &RunParams,
) -> Result<bool> {
    if table_exists {
        let sql = "SELECT customer_id, segment FROM segments WHERE dt = $run_date";
        // A segments table of another shape is the segment job's business:
        // voice then goes without the dimension and says so.
        match frame(session, sql, params, "voice/segments").await {
            Ok(df) => {
                if df.clone().count().await? > 0 {
                    session.register_table("voice_segments", df.into_view())?;
                    return Ok(true);
                }
            }
            Err(e) => {
                warn!(error = %e, "marts/segments has no customer_id/segment: no segment dimension")
            }
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("segment", DataType::Utf8, true),
    ]));
    let empty = RecordBatch::new_empty(schema.clone());
    session.register_table(
        "voice_segments",
        Arc::new(MemTable::try_new(schema, vec![vec![empty]])?),
    )?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marts_are_documented_as_written() {
        mart::doc("voice_scores")
            .expect("doc")
            .check(&scores::schema())
            .expect("voice_scores");
        mart::doc("voice_themes")
            .expect("doc")
            .check(&themes::schema())
            .expect("voice_themes");
        mart::doc("voice_closed_loop")
            .expect("doc")
            .check(&closed_loop::schema())
            .expect("voice_closed_loop");
    }
}
