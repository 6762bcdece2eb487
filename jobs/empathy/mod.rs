//! The Empathy Index: how accurately and responsively the business treats
//! each customer group, as a transparent 0–100 composite of six documented
//! components, per month, touchpoint, segment and sensitive group — and
//! checked against next month's NPS and retention rather than assumed.
//!
//! Reads the transform's staging views as of the run date (tickets, empathy
//! surveys, reviews, NPS answers, orders), the reply and message of each
//! ticket from lake/tickets, `marts/customer_attributes`, and when it
//! exists for the date `marts/segments`. The months customers ordered in
//! come from the purchase days the value job folded for the date when the
//! lake is as it was then (`value::carry::purchase_days`), else from the
//! orders. The emotions of the customers'
//! words are scored here by the voice job's scorer and rule, the numbers
//! the voice job writes to `marts/feedback_scored`, so the job does not
//! wait for the voice job in the nightly. The texts of tickets exported
//! before the night the job ran last are not read again: their scores are
//! that night's ([`carry`]). Writes `marts/empathy_index`
//! (aggregated; groups below `min_group_size` suppressed),
//! `marts/empathy_contacts` (per contact, for the fairness audit) and its
//! rows of `marts/model_metrics` (Cronbach's alpha, the reply-tone counts,
//! the outcome check).
//!
//! | module | what |
//! | --- | --- |
//! | [`components`] | the six components per contact |
//! | [`tone`] | the reply-tone scorer (rules in `lexicon/tone.toml`) |
//! | [`index`] | cells, intervals, suppression, the weighted index |
//! | [`headline`] | this month, the trend, the weakest component |
//! | [`alpha`] | Cronbach's alpha of the SERVQUAL items |
//! | [`validate`] | correlation with next month's NPS and retention |
//! | [`inputs`] | what is read, as of the run date |
//! | [`contacts`] | the per-contact mart |
//! | [`carry`] | the tickets' text scores carried from night to night |

pub mod alpha;
pub mod carry;
pub mod components;
pub mod contacts;
pub mod headline;
pub mod index;
pub mod inputs;
pub mod tone;
pub mod validate;

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::NaiveDate;
use serde::Serialize;
use tracing::{info, instrument};

use self::alpha::Alpha;
use self::components::{Component, Contact, Month};
use self::headline::Headline;
use self::index::{Dimension, Groups, Settings};
use self::tone::{NumberedMessage, ReadReply, ToneLabel, ToneScorer, Unscored};
use self::validate::{Outcomes, Validation};
use crate::context::JobContext;
use crate::mart::{self, Metric};
use crate::{Error, Result};

/// Lake columns this job reads directly (the rest comes through the
/// transform's staging views): the ticket key to find the row, the
/// business's reply it scores, the customer's message whose words a warm
/// reply repeats, and the times that say whether the reply was sent by the
/// run date and which tickets answered or opened since the night before
/// need their texts read ([`carry`]).
pub const LAKE_COLUMNS_READ: &[(&str, &str)] = &[
    ("tickets", "ticket_id"),
    ("tickets", "reply"),
    ("tickets", "message"),
    ("tickets", "first_response_at"),
    ("tickets", "created_at"),
];

/// Whether a component could be computed, and its configured weight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentStatus {
    pub component: String,
    /// The configured weight (before re-normalization in a cell).
    pub weight: f64,
    pub available: bool,
    /// Contacts up to the run date with a score on this component.
    pub contacts: u64,
    /// Why not available.
    pub note: Option<String>,
}

/// How the business's replies were scored.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ToneSummary {
    pub scored: u64,
    pub warm: u64,
    pub neutral: u64,
    pub cold: u64,
    /// Tickets without a reply.
    pub no_text: u64,
    /// Replies reliably in another language than English (not scored).
    pub unsupported_language: u64,
    /// The share of replies the "customer's words" rule fired for, among
    /// the scored replies to messages it could read.
    pub echo_rate: Option<f64>,
    /// Scored replies to a message the rule could not read (none, one
    /// without words, or one in another language), credited its points ×
    /// `echo_rate`.
    pub echo_imputed: u64,
}

/// What `attune empathy` produced.
#[derive(Debug, Clone, Serialize)]
pub struct EmpathyOutcome {
    pub date: NaiveDate,
    /// Rows read: tickets, empathy surveys, negative reviews and NPS answers.
    pub rows_in: u64,
    /// Rows written to marts/empathy_index and marts/empathy_contacts.
    pub rows_out: u64,
    pub warnings: Vec<String>,
    /// Contacts by source (ticket, survey, review).
    pub contacts: BTreeMap<String, u64>,
    pub components: Vec<ComponentStatus>,
    /// Dimensions the index is broken down by.
    pub dimensions: Vec<String>,
    pub headline: Headline,
    pub tone: ToneSummary,
    /// Cronbach's alpha of the five SERVQUAL empathy items, over each
    /// customer's latest complete survey up to the run date.
    pub cronbach_alpha: Option<Alpha>,
    /// Correlations with next month's NPS and retention.
    pub validation: Vec<Validation>,
    /// How many of those correlations look clear, against how many would by
    /// chance alone.
    pub validation_summary: String,
    pub index_rows: u64,
    pub contact_rows: u64,
    /// Seconds per phase (read, score, aggregate, validate, write).
    pub seconds: BTreeMap<String, f64>,
    pub metric_rows: u64,
    /// Whether the months customers ordered in (the retention outcome)
    /// came from the purchase days the value job folded for the date,
    /// instead of every order read again.
    pub orders_from_value: bool,
    /// The earlier night whose text scores the tickets exported before
    /// tonight's texts took ([`carry`]), when there was one.
    pub texts_carried_from: Option<NaiveDate>,
    /// Tickets whose text scores were carried instead of read and scored.
    pub texts_carried: u64,
    /// The earlier night whose `empathy_contacts` row groups were copied
    /// as they were, their rows unchanged ([`contacts`]), when any were.
    pub contacts_copied_from: Option<NaiveDate>,
    /// Rows of `empathy_contacts` copied instead of built and encoded.
    pub contact_rows_copied: u64,
}

/// 1970-01-01: as the first export day whose texts are read, every one.
const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("1970-01-01 is a date");

/// The end of the run date (UTC), in seconds since 1970.
fn end_of(date: NaiveDate) -> f64 {
    ((date - EPOCH).num_days() + 1) as f64 * 86_400.0
}

/// Computes the Empathy Index as of `date` and writes its marts.
#[instrument(skip_all, fields(job = "empathy", run_id = %ctx.run_id))]
pub async fn run(ctx: &JobContext, date: NaiveDate) -> Result<EmpathyOutcome> {
    let cfg = &ctx.cfg.empathy;
    let min = ctx.cfg.min_group_size;
    let mut warnings = Vec::new();
    if !inputs::mart_exists(ctx, "customer_attributes", date).await? {
        return Err(Error::MissingInput {
            what: format!("marts/customer_attributes for {date}"),
            hint: format!("run `attune transform --date {date}` (or the nightly) first"),
        });
    }
    let mut seconds = BTreeMap::new();
    let mut clock = Instant::now();
    // each phase's seconds, and on a terminal the phase that follows
    let mut lap = |name: &str, next: &str, clock: &mut Instant| {
        seconds.insert(name.to_string(), clock.elapsed().as_secs_f64());
        *clock = Instant::now();
        crate::nightly::progress::step(next);
    };
    crate::nightly::progress::step("reading tickets, surveys, reviews and orders");
    let session = inputs::session(ctx, date).await?;
    let tone = ToneScorer::builtin()?;
    let mut customers = inputs::Customers::default();
    let start = carry::start(ctx, &session, date).await?;
    let (mut tickets, carried_rows) = match &start.carried {
        Some(c) => {
            let tickets = inputs::tickets(&session, &mut customers, c.texts_from).await?;
            match c.match_rows(&tickets) {
                Some(rows) => (tickets, Some(rows)),
                None => {
                    info!(night = %c.night, "a ticket exported before the first day read is not among the earlier night's text scores; every text is read");
                    (
                        inputs::tickets(&session, &mut customers, EPOCH).await?,
                        None,
                    )
                }
            }
        }
        None => (
            inputs::tickets(&session, &mut customers, EPOCH).await?,
            None,
        ),
    };
    let carried = start.carried.as_ref().zip(carried_rows.as_deref());
    let texts_carried_from = carried.map(|(c, _)| c.night);
    let texts_carried = carried_rows
        .as_ref()
        .map_or(0, |rows| rows.iter().filter(|&&r| r != carry::NONE).count());
    let surveys = inputs::surveys(&session, &mut customers).await?;
    let reviews = inputs::negative_reviews(&session, &mut customers).await?;
    let nps = inputs::nps_answers(&session, &mut customers).await?;

    let mut unavailable: [Option<String>; 6] = Default::default();
    let emotions = score_emotions(&tickets);
    let segments = if inputs::mart_exists(ctx, "segments", date).await? {
        Some(inputs::segments(&session, &customers, date).await?)
    } else {
        warnings.push(format!(
            "no marts/segments for {date}: the index is not broken down by segment, and the outcome check uses months and touchpoints only"
        ));
        None
    };
    let attributes = inputs::attributes(&session, &customers, date).await?;
    let (ordered, orders_from_value) =
        inputs::order_months_of(ctx, &session, &mut customers, date).await?;
    lap("read", "scoring the replies' tone", &mut clock);

    let run_end = end_of(date);
    let mut tone_summary = ToneSummary::default();
    // Tickets are scored (the tone of every reply) on every core, in
    // chunks whose results are taken back in ticket order. Each chunk is
    // lent mutably to the thread that scores it (a lock taken once): the
    // contacts take their tickets' ids and texts instead of copies.
    let threads = crate::parallel::threads();
    let mut scored = {
        let size = tickets.len().div_ceil(threads).max(1);
        let chunks: Vec<std::sync::Mutex<(&mut [components::TicketRow], CarriedChunk<'_>)>> =
            tickets
                .chunks_mut(size)
                .enumerate()
                .map(|(i, chunk)| {
                    let rows = carried
                        .map(|(night, rows)| (night, &rows[i * size..(i * size + chunk.len())]));
                    std::sync::Mutex::new((chunk, rows))
                })
                .collect();
        crate::parallel::map(&chunks, threads, &|chunk| {
            let mut chunk = chunk.lock().expect("a chunk is scored by one thread");
            let (tickets, carried) = &mut *chunk;
            score_tickets(tickets, *carried, &emotions, cfg, run_end, &tone)
        })
    };
    // tonight's text scores (before the "customer's words" rule is credited
    // below) are kept for the next night while the cells are estimated
    let texts_kept = {
        let parts = scored
            .iter_mut()
            .map(|s| std::mem::replace(&mut s.kept, carry::Rows::with_capacity(0)).finish())
            .collect::<Result<Vec<_>>>()?;
        let storage = ctx.storage.clone();
        let started_from = start.carried.as_ref().map(|c| c.night);
        let record = start.record.clone();
        tokio::spawn(
            async move { carry::keep(&storage, date, &parts, &record, started_from).await },
        )
    };
    drop(start);
    // The "customer's words" rule where it could not be judged (no message,
    // or one without words or in another language) is credited its points
    // at the rate it fired where it could, once that rate is known.
    tone_summary.echo_rate = tone.echo_rate(
        scored
            .iter()
            .flat_map(|s| &s.tones)
            .filter_map(|t| t.as_ref().ok()),
    );
    if let Some(rate) = tone_summary.echo_rate {
        for s in &mut scored {
            for (contact, toned) in s.contacts.iter_mut().zip(&mut s.tones) {
                if components::impute_echo(contact, toned, &tone, rate) {
                    tone_summary.echo_imputed += 1;
                }
            }
        }
    }
    let mut unscored_emotions = 0u64;
    for s in &scored {
        unscored_emotions += s.unscored_emotions;
        for toned in &s.tones {
            match toned {
                Ok(x) => {
                    tone_summary.scored += 1;
                    match x.label {
                        ToneLabel::Warm => tone_summary.warm += 1,
                        ToneLabel::Neutral => tone_summary.neutral += 1,
                        ToneLabel::Cold => tone_summary.cold += 1,
                    }
                }
                Err(Unscored::NoText) => tone_summary.no_text += 1,
                Err(Unscored::UnsupportedLanguage) => tone_summary.unsupported_language += 1,
            }
        }
    }
    // The tickets' texts are scored: what is left is read from the contacts.
    let tickets_read = tickets.len();
    drop(tickets);
    drop(emotions);
    // The chunks' contacts one after the other, in ticket order: the first
    // chunk's vector grows to hold them all (its memory kept, not copied)
    // and the others are appended whole. Pushed one by one, the 1.8M
    // contacts were each moved twice more.
    let mut chunks = scored.into_iter().map(|s| s.contacts);
    let mut contacts: Vec<Contact> = chunks.next().unwrap_or_default();
    contacts.reserve_exact(tickets_read - contacts.len() + surveys.len() + reviews.len());
    for chunk in chunks {
        contacts.extend(chunk);
    }
    contacts.extend(surveys.iter().map(components::score_survey));
    contacts.extend(
        reviews
            .iter()
            .map(|r| components::score_review(r, cfg, run_end)),
    );
    if tone_summary.unsupported_language > 0 {
        warnings.push(format!(
            "{} replies are not in English and were not scored for tone (the tone rules are English only)",
            tone_summary.unsupported_language
        ));
    }
    if unscored_emotions > 0 {
        warnings.push(format!(
            "{unscored_emotions} tickets' words could not be scored for emotions (language or no text): they do not count in human_when_it_matters"
        ));
    }

    lap("score", "index cells", &mut clock);
    let mut statuses = Vec::new();
    for c in Component::ALL {
        let n = contacts
            .iter()
            .filter(|x| x.scores[c.idx()].is_some())
            .count() as u64;
        if n == 0 && unavailable[c.idx()].is_none() {
            unavailable[c.idx()] = Some(match c {
                Component::PerceivedEmpathy => {
                    format!("no SERVQUAL empathy survey (survey_type empathy) up to {date}")
                }
                Component::Tone => format!("no ticket up to {date} has a reply to score"),
                Component::HumanWhenItMatters => {
                    format!("no emotionally charged ticket up to {date}")
                }
                _ => format!("no ticket up to {date} has the data"),
            });
        }
        if let Some(why) = &unavailable[c.idx()] {
            warnings.push(format!(
                "{} not available: {why}; it is left out of the index and the other weights are re-normalized",
                c.name()
            ));
        }
        statuses.push(ComponentStatus {
            component: c.name().to_string(),
            weight: c.weight(cfg),
            available: unavailable[c.idx()].is_none(),
            contacts: n,
            note: unavailable[c.idx()].clone(),
        });
    }

    // The per-contact mart is built and written on a thread of its own
    // while the cells are estimated and checked: both only read the
    // contacts, and its two million rows (a batch, then their Parquet
    // encoding, the same bytes as written after them) took the larger part
    // of the write phase at a million customers, with a core to spare
    // through much of the aggregation. Nothing else reads the pseudonyms
    // from here on: they go with it.
    let contacts = std::sync::Arc::new(contacts);
    let contacts_written = {
        let contacts = std::sync::Arc::clone(&contacts);
        let storage = ctx.storage.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || -> Result<contacts::Written> {
            runtime.block_on(contacts::write(&storage, date, &contacts, &customers))
        })
    };

    let groups = Groups {
        segment: segments,
        attributes: Some(attributes),
    };
    let run_month = Month::of_date(date);
    let settings = Settings {
        cfg,
        min_group_size: min,
        unavailable: &unavailable,
        run_month,
    };
    let cells = index::aggregate(&contacts, &groups, &settings);
    let headline = headline::headline(&cells, &contacts, date, cfg, min);
    lap("aggregate", "outcome check", &mut clock);

    let cronbach = alpha::servqual_alpha(&surveys);
    if cronbach.is_none() && !surveys.is_empty() {
        warnings.push(
            "Cronbach's alpha needs complete empathy surveys from at least 3 customers, with some variation".into(),
        );
    }
    let outcomes = Outcomes { nps, ordered };
    let validation = validate::validate(&cells, &contacts, &outcomes, date, min);
    let validation_summary = validate::summary(&validation);
    lap("validate", "writing", &mut clock);

    let index_batch = index::to_batch(&cells)?;
    let index_rows = mart::publish(
        &ctx.storage,
        "empathy_index",
        date,
        index::schema(),
        std::slice::from_ref(&index_batch),
    )
    .await?;
    let contacts_file = contacts_written
        .await
        .map_err(crate::nightly::panics::joined(
            "empathy: the contacts writer",
        ))??;
    let contact_rows = contacts_file.rows;
    texts_kept.await.map_err(crate::nightly::panics::joined(
        "empathy: the text scores writer",
    ))??;
    let metrics = metrics(cfg, &tone_summary, cronbach.as_ref(), &validation);
    let metric_rows = mart::publish_model_metrics(&ctx.storage, date, "empathy", &metrics).await?;
    lap("write", "done", &mut clock);

    let mut by_source = BTreeMap::new();
    for c in contacts.iter() {
        *by_source.entry(c.source.name().to_string()).or_insert(0u64) += 1;
    }
    let dimensions = Dimension::ALL
        .iter()
        .filter(|d| groups.has(**d))
        .map(|d| d.name().to_string())
        .collect();
    info!(
        contacts = contacts.len(),
        cells = cells.len(),
        index_rows,
        contact_rows,
        contact_rows_copied = contacts_file.rows_copied,
        "empathy index written"
    );
    Ok(EmpathyOutcome {
        date,
        rows_in: (tickets_read + surveys.len() + reviews.len() + outcomes.nps.len()) as u64,
        rows_out: index_rows + contact_rows,
        warnings,
        contacts: by_source,
        components: statuses,
        dimensions,
        headline,
        tone: tone_summary,
        cronbach_alpha: cronbach,
        validation,
        validation_summary,
        index_rows,
        contact_rows,
        metric_rows,
        orders_from_value,
        texts_carried_from,
        texts_carried: texts_carried as u64,
        contacts_copied_from: contacts_file.copied_from,
        contact_rows_copied: contacts_file.rows_copied,
        seconds,
    })
}

/// A chunk of tickets scored, in ticket order.
struct ScoredTickets {
    contacts: Vec<Contact>,
    /// Each ticket's reply's tone.
    tones: Vec<components::ToneResult>,
    /// Tickets whose words' emotions could not be scored.
    unscored_emotions: u64,
    /// The chunk's text scores, kept for the next night ([`carry`]).
    kept: carry::Rows,
}

/// The scores a chunk of tickets takes from an earlier night: the night's
/// and each ticket's row of it ([`carry::NONE`] where the texts were read
/// tonight). `None` when nothing is carried.
type CarriedChunk<'a> = Option<(&'a carry::Carried, &'a [carry::CarriedRow])>;

/// How many distinct replies, messages or stems [`score_tickets`] keeps
/// read before it forgets them (and reads again what comes back): more
/// than a chunk of tickets has at a million customers (1,438 replies and
/// 224,486 messages among 1.8 million tickets), a bound on its memory
/// where every text would be new.
const READS_KEPT: usize = 1 << 18;

/// Scores tickets, in their order; each ticket's id, channel and handler
/// move into its contact ([`components::take_contact`]).
///
/// Replies and messages are interned (one `Text` per distinct text: see
/// `inputs::tickets`), so each distinct one is read once (a reply's cues
/// and language, a message's stems for the "customer's words" rule) and
/// found again by where its text is, not by hashing the text a ticket;
/// one [`tone::ToneReader`] numbers the stems of both, so a ticket's
/// overlap is counted on two short lists of numbers. The tickets are taken
/// in their order and each contact is written once, where it stays
/// (taken message by message, the tickets and their results' slots were
/// reached out of order, and the results moved twice after).
fn score_tickets(
    tickets: &mut [components::TicketRow],
    carried: CarriedChunk<'_>,
    emotions: &Emotions,
    cfg: &crate::config::EmpathyConfig,
    run_end: f64,
    tone: &ToneScorer,
) -> ScoredTickets {
    score_tickets_keeping(tickets, carried, emotions, cfg, run_end, tone, READS_KEPT)
}

/// [`score_tickets`], forgetting what it read once it holds `kept`
/// replies, messages or stems.
fn score_tickets_keeping(
    tickets: &mut [components::TicketRow],
    carried: CarriedChunk<'_>,
    emotions: &Emotions,
    cfg: &crate::config::EmpathyConfig,
    run_end: f64,
    tone: &ToneScorer,
    kept: usize,
) -> ScoredTickets {
    let mut reader = tone.reader();
    let mut replies: ByCopy<ReadReply> = Default::default();
    // `None` for a message without words, which a reply cannot repeat
    let mut messages: ByCopy<Option<NumberedMessage>> = Default::default();
    let mut out = ScoredTickets {
        contacts: Vec::with_capacity(tickets.len()),
        tones: Vec::with_capacity(tickets.len()),
        unscored_emotions: 0,
        kept: carry::Rows::with_capacity(tickets.len()),
    };
    for (i, t) in tickets.iter_mut().enumerate() {
        let scores = match carried {
            Some((night, rows)) if rows[i] != carry::NONE => night.scores(rows[i]),
            _ => {
                if replies.len() >= kept || messages.len() >= kept || reader.stems() >= kept {
                    reader = tone.reader();
                    replies.clear();
                    messages.clear();
                }
                score_texts(t, emotions, &mut reader, &mut replies, &mut messages)
            }
        };
        let charged = scores
            .read
            .and_then(|r| r.strongest)
            .map(|strongest| strongest >= cfg.charged_emotion_threshold);
        out.unscored_emotions += u64::from(scores.read.is_some_and(|r| r.strongest.is_none()));
        out.kept.push(t, &scores);
        out.contacts.push(components::take_contact(
            t,
            cfg,
            run_end,
            charged,
            &scores.toned,
        ));
        out.tones.push(scores.toned);
    }
    out
}

/// What a ticket's texts score to: its message's emotions (from
/// `emotions`, where every message of the tickets is) and its reply's tone,
/// each distinct reply and message read once per `reader`.
fn score_texts(
    t: &components::TicketRow,
    emotions: &Emotions,
    reader: &mut tone::ToneReader<'_>,
    replies: &mut ByCopy<ReadReply>,
    messages: &mut ByCopy<Option<NumberedMessage>>,
) -> carry::TextScores {
    let read = match &t.message {
        Some(m) => emotions.get(&copy(Some(m))).copied(),
        None => Some(NO_MESSAGE),
    };
    // an English reply cannot repeat words in another language
    let other_language = read.is_some_and(|r| r.other_language);
    let message = match &t.message {
        Some(m) => messages
            .entry(copy(Some(m)))
            .or_insert_with(|| {
                m.chars()
                    .any(char::is_alphanumeric)
                    .then(|| reader.message(m))
            })
            .as_ref(),
        None => None,
    };
    let reply = replies
        .entry(copy(t.reply.as_ref()))
        .or_insert_with(|| reader.reply(t.reply.as_deref()));
    let toned = reader.score(
        reply,
        message.filter(|_| !other_language),
        components::complaint(t),
    );
    carry::TextScores { read, toned }
}

type ByCopy<T> = std::collections::HashMap<usize, T, foldhash::fast::RandomState>;

/// Where a text's shared copy is (0 for none): `inputs::tickets` keeps one
/// copy of each distinct text, so the same copy is the same text.
fn copy(text: Option<&components::Text>) -> usize {
    text.map_or(0, |t| std::sync::Arc::as_ptr(t).cast::<u8>() as usize)
}

/// What the voice scorer made of each distinct message, by [`copy`].
type Emotions = ByCopy<inputs::MessageRead>;

/// A ticket without a message: its words cannot be scored.
const NO_MESSAGE: inputs::MessageRead = inputs::MessageRead {
    strongest: None,
    other_language: false,
};

/// The strongest of frustration, anger and anxiety in each distinct
/// customer message, by the voice job's scorer and rule
/// ([`crate::voice::messages::score_text`]): the numbers the voice job
/// writes to `marts/feedback_scored`. Scored here rather than read from
/// there, so the job does not wait for the voice job; each distinct text
/// (224,486 among 1.8 million tickets at a million customers) is scored
/// once, on every core.
fn score_emotions(tickets: &[components::TicketRow]) -> Emotions {
    let mut seen: ByCopy<()> = Default::default();
    let mut distinct: Vec<&components::Text> = Vec::new();
    for m in tickets.iter().filter_map(|t| t.message.as_ref()) {
        if seen.insert(copy(Some(m)), ()).is_none() {
            distinct.push(m);
        }
    }
    drop(seen);
    let scorer = crate::voice::score::Scorer::new();
    let threads = crate::parallel::threads();
    // a few chunks per thread, taken in turn, so no thread waits on
    // another's long messages
    let size = distinct.len().div_ceil(threads * 8).max(1);
    let chunks: Vec<&[&components::Text]> = distinct.chunks(size).collect();
    let reads = crate::parallel::map(&chunks, threads, &|chunk| {
        chunk
            .iter()
            .map(|m| {
                inputs::MessageRead::from_score(&crate::voice::messages::score_text(
                    &scorer,
                    Some(m),
                ))
            })
            .collect::<Vec<_>>()
    });
    distinct
        .into_iter()
        .map(|m| copy(Some(m)))
        .zip(reads.into_iter().flatten())
        .collect()
}

/// The job's rows of `marts/model_metrics`.
fn metrics(
    cfg: &crate::config::EmpathyConfig,
    tone: &ToneSummary,
    alpha: Option<&Alpha>,
    validation: &[Validation],
) -> Vec<Metric> {
    let mut out = Vec::new();
    for c in Component::ALL {
        out.push(
            Metric::new("empathy_index", "weight", c.weight(cfg))
                .key(c.name())
                .detail("configured weight; re-normalized over the components shown in each cell"),
        );
    }
    for (label, n) in [
        ("warm", tone.warm),
        ("neutral", tone.neutral),
        ("cold", tone.cold),
    ] {
        let mut share = Metric::new("reply_tone", "share", 0.0)
            .key(label)
            .detail(format!("{n} of {} scored replies", tone.scored));
        // no scored reply: no share (NULL), not 0% of nothing
        share.value = (tone.scored > 0).then(|| n as f64 / tone.scored as f64);
        out.push(share);
    }
    let mut rate = Metric::new("reply_tone", "echo_rate", 0.0)
        .detail("share of the scored replies it could be judged on (a message with words, not read as another language) that repeat the customer's words");
    rate.value = tone.echo_rate;
    out.push(rate);
    out.push(
        Metric::new("reply_tone", "echo_imputed", tone.echo_imputed as f64).detail(
            "scored replies to no message, a message without words or one in another language, credited the customer_words points x echo_rate",
        ),
    );
    out.push(Metric::new("reply_tone", "unscored", tone.no_text as f64).key("no_text"));
    out.push(
        Metric::new("reply_tone", "unscored", tone.unsupported_language as f64)
            .key("unsupported_language"),
    );
    match alpha {
        Some(a) => {
            let detail = format!(
                "{} customers with all {} items (each one's latest survey); {} (95% CI {:.3} to {:.3}, Feldt)",
                a.respondents, a.items, a.wording, a.ci_lower, a.ci_upper
            );
            out.push(Metric::new("servqual_empathy", "cronbach_alpha", a.alpha).detail(detail));
            out.push(Metric::new(
                "servqual_empathy",
                "cronbach_alpha_ci_lower",
                a.ci_lower,
            ));
            out.push(Metric::new(
                "servqual_empathy",
                "cronbach_alpha_ci_upper",
                a.ci_upper,
            ));
            out.push(Metric::new(
                "servqual_empathy",
                "respondents",
                a.respondents as f64,
            ));
        }
        None => out.push(Metric {
            model: "servqual_empathy".into(),
            metric: "cronbach_alpha".into(),
            key: None,
            value: None,
            detail: Some(
                "complete empathy surveys from fewer than 3 customers, or no variation".into(),
            ),
        }),
    }
    for v in validation {
        let key = format!("{}: {} ~ {}", v.family.name(), v.measure, v.outcome);
        let mut push = |metric: &str, value: Option<f64>, detail: Option<&str>| {
            out.push(Metric {
                model: "empathy_validation".into(),
                metric: metric.into(),
                key: Some(key.clone()),
                value,
                detail: detail.map(str::to_string),
            });
        };
        push("cells", Some(v.cells as f64), None);
        push("pearson_r", v.pearson.map(|c| c.r), Some(&v.wording));
        push("pearson_r_ci_lower", v.pearson.map(|c| c.ci_lower), None);
        push("pearson_r_ci_upper", v.pearson.map(|c| c.ci_upper), None);
        push("spearman_rho", v.spearman.map(|c| c.r), None);
        push(
            "spearman_rho_ci_lower",
            v.spearman.map(|c| c.ci_lower),
            None,
        );
        push(
            "spearman_rho_ci_upper",
            v.spearman.map(|c| c.ci_upper),
            None,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::components::{MessageFacts, Text, TicketRow};
    use super::tone::ReplyContext;
    use super::*;

    /// A random customer's message: content words in several forms (case,
    /// suffixes the stemmer strips, contractions), function words, numbers,
    /// another script, or no words at all.
    fn random_message(rng: &mut rand_xoshiro::Xoshiro256PlusPlus) -> String {
        const WORDS: [&str; 20] = [
            "my",
            "croissant",
            "croissants",
            "was",
            "cold",
            "Coffee",
            "charged",
            "twice",
            "the",
            "order",
            "late",
            "can't",
            "it’s",
            "delivery",
            "missing",
            "12",
            "Straße",
            "🙂",
            "!!",
            "stale",
        ];
        let n = rng.random_range(0..10);
        (0..n)
            .map(|_| WORDS[rng.random_range(0..WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Each distinct message is scored once, and every copy of it, shared
    /// or not, reads what the voice job's rule makes of its text
    /// (`voice::messages::score_text`, which `marts/feedback_scored` holds):
    /// a blank message is not scored, one in Spanish is another language.
    #[test]
    fn each_message_reads_what_the_voice_job_scores() {
        let texts = [
            "I am furious, this is the third time my order is wrong!",
            "Thanks, all good.",
            "   ",
            "Estoy muy enfadado, el pedido llegó tarde otra vez.",
            "worried my allergy info was not passed on to the kitchen",
        ];
        let shared: Vec<Text> = texts.iter().map(|t| Text::from(*t)).collect();
        let mut tickets = Vec::new();
        for i in 0..40 {
            let k = i % texts.len();
            let message = match i % 3 {
                0 => Some(shared[k].clone()),
                // the same text in a copy of its own
                1 => Some(Text::from(texts[k])),
                _ => None,
            };
            tickets.push(TicketRow {
                ticket_id: format!("T{i}"),
                message,
                ..TicketRow::default()
            });
        }
        let emotions = score_emotions(&tickets);
        // one read per copy: the five shared ones and the 13 of their own
        assert_eq!(emotions.len(), texts.len() + 13);
        let scorer = crate::voice::score::Scorer::new();
        let mut strongest = Vec::new();
        for t in tickets.iter().filter(|t| t.message.is_some()) {
            let text = t.message.as_deref();
            let want =
                inputs::MessageRead::from_score(&crate::voice::messages::score_text(&scorer, text));
            let got = emotions[&copy(t.message.as_ref())];
            assert_eq!(got, want, "{text:?}");
            strongest.push((text.map(str::to_string), got));
        }
        let read = |t: &str| {
            strongest
                .iter()
                .find(|(x, _)| x.as_deref() == Some(t))
                .expect(t)
                .1
        };
        assert!(
            read(texts[0]).strongest.is_some_and(|s| s >= 0.3),
            "{:?}",
            read(texts[0])
        );
        assert_eq!(read(texts[2]), NO_MESSAGE);
        assert!(read(texts[3]).other_language);
    }

    /// Differential: tickets scored in their order, each distinct reply and
    /// message read once by one reader, stems numbered (`score_tickets`),
    /// against each ticket scored on its own the way before: its message's
    /// text through the tone rules (`ReplyContext`, the "customer's words"
    /// stems counted once a ticket) for the tone, `score_ticket` (the
    /// message read into sets of stems, copies of the ticket's texts) for
    /// the contact. On random tickets whose replies and messages are
    /// shared, repeated in copies of their own, missing or without words,
    /// read as another language or not, on complaints and questions, with
    /// and without emotions; keeping everything read, and forgetting it
    /// every few tickets.
    #[test]
    fn tickets_scored_in_order_equal_each_scored_with_its_texts() {
        let cfg = crate::config::ValidConfig::default().empathy;
        let tone = ToneScorer::builtin().expect("tone rules");
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(23);
        let fixed = [
            "Sorry about the cold coffee and the stale croissant, I've refunded you.",
            "We apologise that your order was late; a refund for the delivery is on its way.",
            "Thanks.",
            "Your delivery was missing the croissants: we are sending them today.",
            "Lo sentimos mucho, le devolvemos el dinero de su pedido.",
            "",
            "  ",
            "You were charged twice for the order, we have refunded one of the charges.",
        ];
        // macros, and replies that repeat some of the customers' words
        let replies: Vec<Text> = fixed
            .into_iter()
            .map(String::from)
            .chain((0..20).map(|_| {
                let words = random_message(&mut rng);
                format!("Sorry about the {words}, we have refunded you.")
            }))
            .map(Text::from)
            .collect();
        // interned, as `inputs::tickets` shares them
        let messages: Vec<Text> = (0..60)
            .map(|_| Text::from(random_message(&mut rng)))
            .collect();
        let topics = [
            None,
            Some("billing"),
            Some("delivery"),
            Some("allergy_info"),
        ];
        let channels = [None, Some("chat"), Some("email"), Some("phone")];
        let handlers = [None, Some("bot"), Some("human"), Some("bot_then_human")];
        let run_end = 1_750_000_000.0;
        let mut emotions = Emotions::default();
        let mut tickets = Vec::new();
        for i in 0..5000 {
            let ticket_id = format!("T{i:05}");
            let m = rng.random_range(0..messages.len());
            let message = match rng.random_range(0..10) {
                0 => None,
                // the same text in a copy of its own
                1 => Some(Text::from(&*messages[m])),
                _ => Some(messages[m].clone()),
            };
            // emotions per copy of a text, some copies left without
            let kind = rng.random_range(0..4);
            if kind > 0 {
                let strongest = (kind > 1).then_some(rng.random_range(0.0..1.0));
                let other_language = kind == 3 && rng.random_range(0..2) == 0;
                let read = inputs::MessageRead {
                    strongest,
                    other_language,
                };
                if let Some(m) = &message {
                    emotions.entry(copy(Some(m))).or_insert(read);
                }
            }
            let r = rng.random_range(0..replies.len());
            let reply = match rng.random_range(0..10) {
                0 => None,
                1 => Some(Text::from(&*replies[r])),
                _ => Some(replies[r].clone()),
            };
            tickets.push(TicketRow {
                ticket_id,
                customer: Some(rng.random_range(0..100)),
                created: run_end - rng.random_range(0.0..30.0 * 86_400.0),
                channel: channels[rng.random_range(0..channels.len())].map(Text::from),
                handled_by: handlers[rng.random_range(0..handlers.len())].map(Text::from),
                topic: topics[rng.random_range(0..topics.len())].map(Text::from),
                satisfaction: Some(rng.random_range(1..6)),
                reopened: Some(rng.random_range(0..2) == 0),
                first_response_hours: Some(rng.random_range(0.0..30.0)),
                resolution_hours: Some(rng.random_range(0.0..100.0)),
                follow_up_hours: Some(rng.random_range(0.0..100.0)),
                reply,
                message,
                ..TicketRow::default()
            });
        }
        let echo = 1 << tone.echo_rule().expect("the shipped rules have one");
        for kept in [READS_KEPT, 3] {
            let mut taken = tickets.clone();
            let scored =
                score_tickets_keeping(&mut taken, None, &emotions, &cfg, run_end, &tone, kept);
            assert_eq!(scored.contacts.len(), tickets.len());
            assert_eq!(scored.tones.len(), tickets.len());
            let (mut fired, mut not_fired, mut unscored) = (0, 0, 0);
            for (i, t) in tickets.iter().enumerate() {
                let read = match &t.message {
                    Some(m) => emotions.get(&copy(Some(m))),
                    None => Some(&NO_MESSAGE),
                };
                let facts = MessageFacts {
                    charged: read
                        .and_then(|r| r.strongest)
                        .map(|s| s >= cfg.charged_emotion_threshold),
                    other_language: read.is_some_and(|r| r.other_language),
                };
                let (contact, by_sets) = components::score_ticket(t, &cfg, run_end, &tone, &facts);
                let context = ReplyContext {
                    message: t
                        .message
                        .as_deref()
                        .filter(|m| !facts.other_language && m.chars().any(char::is_alphanumeric)),
                    complaint: t
                        .topic
                        .as_deref()
                        .map(|x| components::COMPLAINT_TOPICS.contains(&x)),
                };
                let toned = tone.score_reply(t.reply.as_deref(), &context);
                unscored += u64::from(read.is_some_and(|r| r.strongest.is_none()));
                assert_eq!(by_sets, toned, "{}", t.ticket_id);
                assert_eq!(scored.tones[i], toned, "{} keeping {kept}", t.ticket_id);
                assert_eq!(contact.contact_id, t.ticket_id);
                assert_eq!(contact.touchpoint, t.channel);
                assert_eq!(contact.handled_by, t.handled_by);
                let tone_score = toned.as_ref().ok().map(|x| x.score);
                assert_eq!(contact.scores[Component::Tone.idx()], tone_score);
                let label = toned.as_ref().ok().map(|x| x.label);
                assert_eq!(contact.detail.tone_label, label);
                assert_eq!(
                    scored.contacts[i], contact,
                    "{} keeping {kept}",
                    t.ticket_id
                );
                // the id and the texts moved into the contact, the rest is left
                let left = TicketRow {
                    ticket_id: String::new(),
                    channel: None,
                    handled_by: None,
                    ..t.clone()
                };
                assert_eq!(taken[i], left);
                if let Ok(x) = &toned {
                    if x.fired & echo != 0 {
                        fired += 1;
                    } else if x.unjudged & echo == 0 {
                        not_fired += 1;
                    }
                }
            }
            assert_eq!(scored.unscored_emotions, unscored);
            assert!(fired > 200 && not_fired > 200, "{fired} {not_fired}");
        }
    }
}
