//! `marts/feedback_scored`: every survey answer, ticket and review up to
//! the run date, scored for sentiment and emotions, without its text.
//!
//! The messages are read source by source, sorted by message id, and
//! streamed: each batch is scored in parallel on the blocking thread pool
//! (one slice per core, sharing one [`Scorer`]; a text scored before in the
//! run keeps its score, [`Known`]), its phrases counted for the themes, and
//! written to the partition before the next batch is read.
//! The text exists only inside this loop and never reaches the output.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use tracing::{debug, info};

use super::RunParams;
use super::base_file::{BaseFile, GroupSpan};
use super::columns::{self, opt_str, timestamp_type};
use super::score::{Emotions, Label, Scored, Scorer};
use super::scores::date32;
use super::themes::{Side, ThemeCounter, customer_fingerprint};
use crate::parquet_io::{FileWindow, ParquetSink, writer_properties_without_dictionary};
use crate::storage::{Storage, partition_file};
use crate::{Error, Result, mart};
use parquet::file::metadata::ParquetMetaData;

/// One kind of message and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The value of `feedback_scored.source`.
    pub name: &'static str,
    /// The lake table.
    pub table: &'static str,
    /// The query (one row per message, sorted by message id).
    pub sql: &'static str,
    /// Whether a message's row changes after it is known (a ticket's
    /// `follow_up_at` appears once the follow-up is due).
    pub follow_ups: bool,
}

/// The sources, in output order.
pub const SOURCES: [Source; 3] = [
    Source {
        name: "survey",
        table: "feedback",
        sql: include_str!("messages_survey.sql"),
        follow_ups: false,
    },
    Source {
        name: "ticket",
        table: "tickets",
        sql: include_str!("messages_ticket.sql"),
        follow_ups: true,
    },
    Source {
        name: "review",
        table: "reviews",
        sql: include_str!("messages_review.sql"),
        follow_ups: false,
    },
];

/// Why a message without words is not scored (the scorer's own code).
pub const NO_TEXT: &str = "no_text";

/// Schema of `marts/feedback_scored`.
pub fn schema() -> SchemaRef {
    let f = |name: &str, ty: DataType, nullable: bool| Field::new(name, ty, nullable);
    Arc::new(Schema::new(vec![
        f("source", DataType::Utf8, false),
        f("message_id", DataType::Utf8, false),
        f("customer_id", DataType::Utf8, true),
        f("at", timestamp_type(), false),
        f("touchpoint", DataType::Utf8, true),
        f("language", DataType::Utf8, true),
        f("scored", DataType::Boolean, false),
        f("unscored_reason", DataType::Utf8, true),
        f("sentiment", DataType::Float64, true),
        f("label", DataType::Utf8, false),
        f("frustration", DataType::Float64, true),
        f("confusion", DataType::Float64, true),
        f("anxiety", DataType::Float64, true),
        f("anger", DataType::Float64, true),
        f("joy", DataType::Float64, true),
        f("gratitude", DataType::Float64, true),
        f("rating", DataType::Int64, true),
        f("rating_scale", DataType::Utf8, false),
        f("follow_up_at", timestamp_type(), true),
    ]))
}

/// What the voice scorer makes of a message's text: a missing or blank
/// one is not scored. The empathy job reads the customers' words of its
/// tickets through here too, so both jobs see the same emotions.
pub fn score_text(scorer: &Scorer, text: Option<&str>) -> Scored {
    words(text).map_or_else(no_text, |t| scorer.score(t))
}

/// The text when it has something to score: not missing, not blank.
fn words(text: Option<&str>) -> Option<&str> {
    text.filter(|t| !t.trim().is_empty())
}

/// The result of scoring a message without words.
fn no_text() -> Scored {
    Scored {
        language: None,
        scored: false,
        unscored_reason: Some(NO_TEXT),
        compound: 0.0,
        label: Label::Unscored,
        emotions: Emotions::default(),
    }
}

/// The columns of one batch of messages, as the queries return them.
struct Input {
    message_id: StringArray,
    customer_id: StringArray,
    at: TimestampMicrosecondArray,
    touchpoint: StringArray,
    text: StringArray,
    rating: Int64Array,
    rating_scale: StringArray,
    follow_up_at: TimestampMicrosecondArray,
}

impl Input {
    fn from_batch(b: &RecordBatch) -> Result<Input> {
        Ok(Input {
            message_id: columns::strings(b, "message_id")?,
            customer_id: columns::strings(b, "customer_id")?,
            at: columns::timestamps(b, "at")?,
            touchpoint: columns::strings(b, "touchpoint")?,
            text: columns::strings(b, "text")?,
            rating: columns::ints(b, "rating")?,
            rating_scale: columns::strings(b, "rating_scale")?,
            follow_up_at: columns::timestamps(b, "follow_up_at")?,
        })
    }
}

/// Scores of texts already scored in the run, by the texts' fingerprints
/// (two xxHash64s, as ingest's pseudonym cache keys identifiers). Messages
/// repeat: at a million customers 2.8M texts are 0.76M distinct ones (the
/// tickets' 1.79M only 0.22M), and a score is a function of the text alone.
type Known =
    HashMap<u128, Scored, std::hash::BuildHasherDefault<crate::ingest::pseudonym::PassThrough>>;

/// Texts [`Known`] keeps at most: seven eighths of 2²⁰, as many as a table
/// of 2²⁰ slots holds (113 bytes a slot, 113 MiB), every distinct text at
/// a million customers. Beyond, new texts are scored each time they come,
/// so memory stays bounded on any input.
const KNOWN_LIMIT: usize = (1 << 20) / 8 * 7;

/// Scores rows `range` of a batch and counts the phrases of those sent at
/// or after `themes_from` (epoch microseconds). A text in `known` (the
/// batches before) or met earlier in the slice is not scored again; the
/// texts scored here come back with their scores.
fn score_slice(
    scorer: &Scorer,
    input: &Input,
    range: std::ops::Range<usize>,
    themes_from: i64,
    min_group_size: usize,
    known: &Known,
) -> (Vec<Scored>, ThemeCounter, Known) {
    let mut themes = ThemeCounter::new(min_group_size);
    let mut out = Vec::with_capacity(range.len());
    let mut fresh = Known::default();
    for i in range {
        let text = opt_str(&input.text, i);
        let s = match words(text) {
            Some(t) => {
                let fingerprint = crate::ingest::pseudonym::fingerprint128(t.as_bytes());
                match known.get(&fingerprint).or_else(|| fresh.get(&fingerprint)) {
                    Some(s) => *s,
                    None => {
                        let s = scorer.score(t);
                        fresh.insert(fingerprint, s);
                        s
                    }
                }
            }
            None => no_text(),
        };
        let side = match s.label {
            Label::Negative => Some(Side::Negative),
            Label::Positive => Some(Side::Positive),
            Label::Neutral | Label::Unscored => None,
        };
        let recent = !input.at.is_null(i) && input.at.value(i) >= themes_from;
        if let (Some(side), Some(t), true) = (side, text, recent) {
            themes.add(
                opt_str(&input.touchpoint, i),
                opt_str(&input.customer_id, i).map(customer_fingerprint),
                side,
                t,
            );
        }
        out.push(s);
    }
    (out, themes, fresh)
}

/// The output batch: the message's columns, minus its text, plus its score.
fn output(source: &str, input: &Input, scored: &[Scored]) -> Result<RecordBatch> {
    let n = scored.len();
    let when = |f: fn(&Scored) -> f64| -> ArrayRef {
        Arc::new(
            scored
                .iter()
                .map(|s| s.scored.then(|| f(s)))
                .collect::<Float64Array>(),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![source; n])),
        Arc::new(input.message_id.clone()),
        Arc::new(input.customer_id.clone()),
        Arc::new(input.at.clone()),
        Arc::new(input.touchpoint.clone()),
        Arc::new(scored.iter().map(|s| s.language).collect::<StringArray>()),
        Arc::new(
            scored
                .iter()
                .map(|s| Some(s.scored))
                .collect::<BooleanArray>(),
        ),
        Arc::new(
            scored
                .iter()
                .map(|s| s.unscored_reason)
                .collect::<StringArray>(),
        ),
        when(|s| s.compound),
        Arc::new(
            scored
                .iter()
                .map(|s| Some(s.label.as_str()))
                .collect::<StringArray>(),
        ),
        when(|s| s.emotions.frustration),
        when(|s| s.emotions.confusion),
        when(|s| s.emotions.anxiety),
        when(|s| s.emotions.anger),
        when(|s| s.emotions.joy),
        when(|s| s.emotions.gratitude),
        Arc::new(input.rating.clone()),
        Arc::new(input.rating_scale.clone()),
        Arc::new(input.follow_up_at.clone()),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// What scoring the messages produced.
#[derive(Debug)]
pub struct Scoring {
    /// Messages per source in `feedback_scored`.
    pub by_source: BTreeMap<String, u64>,
    /// Phrase counts of the negative and positive messages of the themes' days.
    pub themes: ThemeCounter,
    /// The earlier night whose `feedback_scored` was carried over, when one
    /// was (only the messages new since were scored).
    pub carried_from: Option<NaiveDate>,
}

/// Which messages a query reads: those of lake partitions `dt` in
/// (`dt_after`, `dt_upto`] sent in [`at_from`, `at_before`) (epoch
/// microseconds), the `slice_*` parameters of `messages_*.sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    dt_after: NaiveDate,
    dt_upto: NaiveDate,
    at_from: i64,
    at_before: i64,
    /// Only the tickets followed up from this instant on (before the end of
    /// the run date).
    follow_ups_from: Option<i64>,
}

/// Before any lake partition and any message.
const BEGINNING: NaiveDate = NaiveDate::from_ymd_opt(1, 1, 1).expect("valid");

/// The first instant of `day`, UTC, in epoch microseconds.
pub fn start_of(day: NaiveDate) -> i64 {
    day.and_time(NaiveTime::MIN).and_utc().timestamp_micros()
}

/// The first instant after `day`.
fn end_of(day: NaiveDate) -> i64 {
    start_of(day + chrono::Days::new(1))
}

impl Slice {
    /// Every message known on `date`.
    pub fn all(date: NaiveDate) -> Slice {
        Slice {
            dt_after: BEGINNING,
            dt_upto: date,
            at_from: start_of(BEGINNING),
            at_before: end_of(date),
            follow_ups_from: None,
        }
    }

    /// The messages known on `date` that were not known on `base`: those of
    /// partitions after `base`, and those of earlier partitions sent after
    /// `base` (a record exported before it happened); for a source with
    /// follow-ups also the messages known on `base` whose follow-up came
    /// since, as their row changed.
    pub fn since(base: NaiveDate, date: NaiveDate, source: &Source) -> Vec<Slice> {
        let mut slices = vec![
            Slice {
                dt_after: base,
                ..Slice::all(date)
            },
            Slice {
                dt_upto: base,
                at_from: end_of(base),
                ..Slice::all(date)
            },
        ];
        if source.follow_ups {
            slices.push(Slice {
                dt_upto: base,
                at_before: end_of(base),
                follow_ups_from: Some(end_of(base)),
                ..Slice::all(date)
            });
        }
        slices
    }

    /// The messages known on `base` (and still current on `date`) sent at or
    /// after `from`: the rest of the themes' days.
    pub fn known_on(base: NaiveDate, from: i64) -> Slice {
        Slice {
            dt_after: BEGINNING,
            dt_upto: base,
            at_from: from.max(start_of(BEGINNING)),
            at_before: end_of(base),
            follow_ups_from: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.dt_after >= self.dt_upto || self.at_from >= self.at_before
    }

    fn values(&self) -> Vec<(&'static str, ScalarValue)> {
        let at = |v: i64| ScalarValue::TimestampMicrosecond(Some(v), Some("UTC".into()));
        vec![
            (
                "slice_dt_after",
                ScalarValue::Date32(Some(date32(self.dt_after))),
            ),
            (
                "slice_dt_upto",
                ScalarValue::Date32(Some(date32(self.dt_upto))),
            ),
            ("slice_at_from", at(self.at_from)),
            ("slice_at_before", at(self.at_before)),
            (
                "slice_follow_ups_only",
                ScalarValue::Boolean(Some(self.follow_ups_from.is_some())),
            ),
            (
                "slice_follow_up_from",
                at(self.follow_ups_from.unwrap_or(self.at_from)),
            ),
        ]
    }
}

/// One query of the scoring loop: a source's messages in a slice, and
/// whether their scored rows are output or only their phrases counted.
#[derive(Debug, Clone, Copy)]
struct Read {
    source: Source,
    slice: Slice,
    /// Whether the scored rows go to the partition.
    output: bool,
    /// Whether the phrases count for the themes (each message once).
    themes: bool,
}

/// Where the scored rows of the loop go.
enum Outputs {
    /// Straight to the partition's writer.
    Stream(tokio::sync::mpsc::Sender<WriteMsg>),
    /// Kept, to be merged into an earlier night's rows.
    Keep(Vec<(Source, RecordBatch)>),
}

/// Writes `marts/feedback_scored/dt=<date>/part-0.parquet`: every message
/// of `sources` known on the run date, scored. From `base`, an earlier
/// night's partition (see `voice::reuse`), when there is one: its rows,
/// less the messages a later export replaced, merged with the messages new
/// since. The themes count the messages sent from `themes_from` (epoch
/// microseconds) on.
pub async fn write_feedback_scored(
    session: &SessionContext,
    storage: &Storage,
    params: &RunParams,
    sources: &[Source],
    themes_from: i64,
    base: Option<NaiveDate>,
    min_group_size: usize,
) -> Result<Scoring> {
    let schema = schema();
    mart::doc("feedback_scored")?.check(&schema)?;
    // ids and times hardly repeat: a dictionary for them is built and
    // given up per page, which cost the writer a string comparison per value
    let sink = ParquetSink::create_in(
        storage,
        partition_file("marts", "feedback_scored", params.date),
        schema,
        writer_properties_without_dictionary(
            storage.codec(),
            &["message_id", "customer_id", "at", "follow_up_at"],
        )
        .into_builder()
        .set_max_row_group_row_count(Some(GROUP_ROWS))
        .build(),
    )?;
    let (write_tx, write_rx) = tokio::sync::mpsc::channel(2);
    let writer = tokio::spawn(write_batches(sink, write_rx));
    let date = params.date;
    // without an earlier night every message is read, and written as it
    // is scored; with one, only what is new since (kept, to be merged into
    // its rows) and the rest of the themes' days (counted, not written)
    let (reads, mut out) = match base {
        None => {
            let reads = sources
                .iter()
                .map(|&source| Read {
                    source,
                    slice: Slice::all(date),
                    output: true,
                    themes: true,
                })
                .collect();
            (reads, Outputs::Stream(write_tx.clone()))
        }
        Some(base) => {
            let mut reads = Vec::new();
            for &source in sources {
                for slice in Slice::since(base, date, &source) {
                    reads.push(Read {
                        source,
                        slice,
                        output: true,
                        // a follow-up changes the row, not the words, which
                        // the themes count from the next read
                        themes: slice.follow_ups_from.is_none(),
                    });
                }
                let rest = Slice::known_on(base, themes_from);
                if !rest.is_empty() {
                    reads.push(Read {
                        source,
                        slice: rest,
                        output: false,
                        themes: true,
                    });
                }
            }
            (reads, Outputs::Keep(Vec::new()))
        }
    };
    let started = std::time::Instant::now();
    let scored = score_reads(
        session,
        params,
        reads,
        themes_from,
        min_group_size,
        &mut out,
    )
    .await;
    debug!(
        seconds = started.elapsed().as_secs_f64(),
        carried_from = ?base,
        "scoring loop done"
    );
    let scored = match (scored, out, base) {
        (Ok((themes, _)), Outputs::Keep(new), Some(base)) => {
            carry_over(session, storage, sources, base, new, &write_tx)
                .await
                .map(|by_source| (themes, by_source))
        }
        (scored, _, _) => scored,
    };
    let (themes, by_source) = match scored {
        Ok(s) => s,
        Err(e) => {
            // the writer, its channel closed without Finish, publishes nothing
            drop(write_tx);
            let _ = writer.await;
            return Err(e);
        }
    };
    // a writer that stopped early returns its error here; one that did not
    // is told the batches are complete, so the partition is published
    let _ = write_tx.send(WriteMsg::Finish).await;
    drop(write_tx);
    writer
        .await
        .map_err(crate::nightly::panics::joined("voice: the writer"))??;
    for (source, rows) in &by_source {
        info!(source = %source, rows, carried_from = ?base, "messages scored");
    }
    Ok(Scoring {
        by_source,
        themes,
        carried_from: base,
    })
}

/// Scores the messages of every read, counts the phrases of those sent from
/// `themes_from` on, and hands the rows of output reads to `out`. Returns
/// the phrase counts and the output rows per source.
async fn score_reads(
    session: &SessionContext,
    params: &RunParams,
    reads: Vec<Read>,
    themes_from: i64,
    min_group_size: usize,
    out: &mut Outputs,
) -> Result<(ThemeCounter, BTreeMap<String, u64>)> {
    let scorer = Arc::new(Scorer::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Three stages overlap, each a batch apart: DataFusion reads (and, for
    // the first batch of a source, sorts) the next batch, the blocking pool
    // scores this one, a task encodes the previous one. In one loop the
    // scoring threads waited for the reading and the writing: 40 s at a
    // million customers on two cores, with 48 CPU-seconds of work.
    let mut by_source: BTreeMap<String, u64> = reads
        .iter()
        .filter(|r| r.output)
        .map(|r| (r.source.name.to_string(), 0))
        .collect();
    let (read_tx, mut read_rx) = tokio::sync::mpsc::channel(2);
    let reader = tokio::spawn(read_slices(session.clone(), *params, reads, read_tx));
    let mut themes = ThemeCounter::new(min_group_size);
    let mut known = Arc::new(Known::default());
    let mut failed = None;
    while let Some(read) = read_rx.recv().await {
        let (read, batch) = match read {
            Ok(r) => r,
            Err(e) => {
                failed = Some(e);
                break;
            }
        };
        let input = Arc::new(Input::from_batch(&batch)?);
        let n = batch.num_rows();
        // a few slices per core: one slot finishing early leaves a core idle
        let chunk = n.div_ceil(threads * 4).max(1);
        let themes_from = if read.themes { themes_from } else { i64::MAX };
        let mut tasks = Vec::new();
        for start in (0..n).step_by(chunk) {
            let end = (start + chunk).min(n);
            let (scorer, input, known) =
                (Arc::clone(&scorer), Arc::clone(&input), Arc::clone(&known));
            tasks.push(tokio::task::spawn_blocking(move || {
                score_slice(
                    &scorer,
                    &input,
                    start..end,
                    themes_from,
                    min_group_size,
                    &known,
                )
            }));
        }
        let mut scored = Vec::with_capacity(n);
        let mut fresh = Vec::with_capacity(tasks.len());
        for t in tasks {
            let (s, counts, texts) = t
                .await
                .map_err(crate::nightly::panics::joined("voice: a scoring task"))?;
            scored.extend(s);
            themes.merge(counts);
            fresh.push(texts);
        }
        // every task is done, so no other handle on `known` is left
        if let Some(k) = Arc::get_mut(&mut known) {
            for (fingerprint, s) in fresh.into_iter().flatten() {
                if k.len() >= KNOWN_LIMIT {
                    break;
                }
                k.insert(fingerprint, s);
            }
        }
        if !read.output {
            continue;
        }
        let rows = output(read.source.name, &input, &scored)?;
        *by_source.entry(read.source.name.to_string()).or_default() += n as u64;
        match out {
            Outputs::Stream(tx) => {
                if tx.send(WriteMsg::Batch(rows)).await.is_err() {
                    // the writer stopped on an error, which its handle returns
                    break;
                }
            }
            Outputs::Keep(kept) => kept.push((read.source, rows)),
        }
    }
    // after an error the reader may wait on a full channel: closing it
    // makes its next send fail, so it stops
    drop(read_rx);
    reader
        .await
        .map_err(crate::nightly::panics::joined("voice: the message reader"))?;
    match failed {
        Some(e) => Err(e),
        None => Ok((themes, by_source)),
    }
}

/// Sends every read's batches, in order, tagged with their read; an error
/// ends the stream.
async fn read_slices(
    session: SessionContext,
    params: RunParams,
    reads: Vec<Read>,
    tx: tokio::sync::mpsc::Sender<Result<(Read, RecordBatch)>>,
) {
    for read in reads {
        let name = format!("voice/messages_{}", read.source.name);
        let failed = |e: datafusion::error::DataFusionError| Error::Model {
            model: name.clone(),
            reason: e.to_string(),
        };
        let stream = async {
            let mut values = params.values();
            values.extend(read.slice.values());
            let df = super::frame_with(&session, read.source.sql, values, &name).await?;
            df.execute_stream().await.map_err(failed)
        };
        let mut stream = match stream.await {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        while let Some(batch) = stream.next().await {
            let item = batch.map(|b| (read, b)).map_err(failed);
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    }
}

/// Writes the rows of `base`'s partition, less the messages an export
/// after `base` replaced, merged in message order with the `new` rows of
/// each source. Returns the rows written per source.
async fn carry_over(
    session: &SessionContext,
    storage: &Storage,
    sources: &[Source],
    base: NaiveDate,
    new: Vec<(Source, RecordBatch)>,
    write_tx: &tokio::sync::mpsc::Sender<WriteMsg>,
) -> Result<BTreeMap<String, u64>> {
    let replaced = replaced_since(session, base).await?;
    let mut merge = Merge::new(sources, new, replaced)?;
    let sent = match BaseFile::open(storage, "feedback_scored", base, &schema()).await? {
        Some(file) => {
            let copied = carry_groups(&file, &mut merge, write_tx, COPY_MIN_ROWS).await?;
            debug!(groups = file.groups(), copied = ?copied, "earlier night's row groups");
            copied.is_some()
        }
        None => carry_rows(session, base, &mut merge, write_tx).await?,
    };
    if sent {
        for merged in merge.finish()? {
            if write_tx.send(WriteMsg::Batch(merged)).await.is_err() {
                break;
            }
        }
    }
    Ok(merge.by_source)
}

/// Rows of a row group of `feedback_scored`: the group holding the
/// tickets of the last two days, whose follow-ups change their rows, is
/// decoded and encoded again every night, the others are copied.
const GROUP_ROWS: usize = 1 << 18;

/// Row groups of the earlier night with fewer rows are decoded and merged
/// even when nothing changed in them, so that the small group a night's
/// new messages end in grows into one worth copying instead of each night
/// leaving one more behind.
const COPY_MIN_ROWS: usize = 1 << 17;

/// [`carry_over`] from the earlier night's file: each row group of at
/// least `min_rows` copied when tonight changes none of its rows (see
/// `voice::base_file`), decoded and merged otherwise. The number of groups
/// copied, `None` when the writer stopped.
async fn carry_groups(
    file: &BaseFile,
    merge: &mut Merge,
    write_tx: &tokio::sync::mpsc::Sender<WriteMsg>,
    min_rows: usize,
) -> Result<Option<usize>> {
    let mut copied = 0;
    for g in 0..file.groups() {
        let copy = file
            .span(g)
            .filter(|span| span.rows >= min_rows)
            .and_then(|span| merge.copyable(&span).map(|s| (s, span)));
        let sent = match copy {
            Some((s, span)) => {
                let before = merge.up_to(s, &span.first)?;
                let window = file.window(g).await?;
                merge.copied(s, span.rows);
                copied += 1;
                (before.num_rows() == 0 || write_tx.send(WriteMsg::Batch(before)).await.is_ok())
                    && write_tx
                        .send(WriteMsg::Group {
                            window,
                            metadata: Arc::clone(file.metadata()),
                            group: g,
                        })
                        .await
                        .is_ok()
            }
            None => {
                let mut ok = true;
                for batch in file.rows(g).await? {
                    let merged = merge.push(&conformed(&batch)?)?;
                    if merged.num_rows() > 0
                        && write_tx.send(WriteMsg::Batch(merged)).await.is_err()
                    {
                        ok = false;
                        break;
                    }
                }
                ok
            }
        };
        if !sent {
            return Ok(None);
        }
    }
    Ok(Some(copied))
}

/// [`carry_over`] through the session, for a partition [`BaseFile`] does
/// not take (several files, other columns). `false` when the writer stopped.
async fn carry_rows(
    session: &SessionContext,
    base: NaiveDate,
    merge: &mut Merge,
    write_tx: &tokio::sync::mpsc::Sender<WriteMsg>,
) -> Result<bool> {
    // one file read in one partition (the session's): in the order written
    let schema = schema();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let sql = format!(
        "SELECT {} FROM feedback_scored WHERE dt = $base",
        columns.join(", ")
    );
    let name = "voice/feedback_scored_carried";
    let failed = |e: datafusion::error::DataFusionError| Error::Model {
        model: name.into(),
        reason: e.to_string(),
    };
    let values = vec![("base", ScalarValue::Date32(Some(date32(base))))];
    let mut old = super::frame_with(session, &sql, values, name)
        .await?
        .execute_stream()
        .await
        .map_err(failed)?;
    while let Some(batch) = old.next().await {
        let batch = conformed(&batch.map_err(failed)?)?;
        let merged = merge.push(&batch)?;
        if merged.num_rows() > 0 && write_tx.send(WriteMsg::Batch(merged)).await.is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `batch` with the types of [`schema`] (the session may read strings as views).
fn conformed(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = schema();
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| datafusion::arrow::compute::cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// (lake table, key) of every record whose copy known on `base` a later
/// export (up to the run date) replaced, from the `superseded` table
/// registered for the run date.
async fn replaced_since(
    session: &SessionContext,
    base: NaiveDate,
) -> Result<HashMap<String, HashSet<String>>> {
    let sql = "SELECT table_name, record_key FROM superseded \
               WHERE source_dt <= $base AND superseded_on > $base";
    let values = vec![("base", ScalarValue::Date32(Some(date32(base))))];
    let batches = super::frame_with(session, sql, values, "voice/replaced_since")
        .await?
        .collect()
        .await
        .map_err(|e| Error::Model {
            model: "voice/replaced_since".into(),
            reason: e.to_string(),
        })?;
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for b in &batches {
        let (table, key) = (
            columns::strings(b, "table_name")?,
            columns::strings(b, "record_key")?,
        );
        for i in 0..b.num_rows() {
            out.entry(table.value(i).to_string())
                .or_default()
                .insert(key.value(i).to_string());
        }
    }
    Ok(out)
}

/// The merge of an earlier night's rows (grouped by source in [`SOURCES`]
/// order, each source sorted by message id) with the new rows of each
/// source, in the same order.
struct Merge {
    /// Per source of the output, in output order.
    pending: Vec<Pending>,
    /// Index in `pending` of the source being merged.
    current: usize,
    by_source: BTreeMap<String, u64>,
}

/// A source's new rows, sorted by message id, and its replaced records.
struct Pending {
    source: Source,
    rows: RecordBatch,
    ids: StringArray,
    /// How many of `rows` were written.
    next: usize,
    /// Keys of the source's table whose copy of the earlier night a later
    /// export replaced.
    replaced: HashSet<String>,
}

impl Merge {
    fn new(
        sources: &[Source],
        new: Vec<(Source, RecordBatch)>,
        mut replaced: HashMap<String, HashSet<String>>,
    ) -> Result<Merge> {
        let mut pending = Vec::new();
        for &source in sources {
            let batches: Vec<RecordBatch> = new
                .iter()
                .filter(|(s, _)| *s == source)
                .map(|(_, b)| b.clone())
                .collect();
            let rows = sorted_by_id(&batches)?;
            pending.push(Pending {
                source,
                ids: columns::strings(&rows, "message_id")?,
                rows,
                next: 0,
                replaced: replaced.remove(source.table).unwrap_or_default(),
            });
        }
        Ok(Merge {
            pending,
            current: 0,
            by_source: sources.iter().map(|s| (s.name.to_string(), 0)).collect(),
        })
    }

    /// The rows of `old` that are still current, with the new rows that sort
    /// before the last of them.
    fn push(&mut self, old: &RecordBatch) -> Result<RecordBatch> {
        let source = columns::strings(old, "source")?;
        let id = columns::strings(old, "message_id")?;
        let mut take: Vec<(usize, usize)> = Vec::with_capacity(old.num_rows());
        for i in 0..old.num_rows() {
            if source.value(i) != self.pending[self.current].source.name {
                let Some(at) = self
                    .pending
                    .iter()
                    .position(|p| p.source.name == source.value(i))
                    .filter(|&at| at > self.current)
                else {
                    return Err(Error::Model {
                        model: "voice/feedback_scored".into(),
                        reason: format!(
                            "the earlier night's partition is not grouped by source in order, or has messages of {:?}, which tonight does not read",
                            source.value(i)
                        ),
                    });
                };
                self.advance_to(at, &mut take);
            }
            let key = id.value(i);
            if self.pending[self.current].replaced.contains(key) {
                continue;
            }
            self.new_rows_until(|id| id <= key, &mut take);
            // a message new tonight replaces its copy of the earlier night
            let p = &self.pending[self.current];
            if p.next > 0 && p.ids.value(p.next - 1) == key {
                continue;
            }
            take.push((0, i));
            *self
                .by_source
                .get_mut(p.source.name)
                .expect("a count per source") += 1;
        }
        self.interleave(old, &take)
    }

    /// Index of the source of `span`, an earlier night's row group, when
    /// writing its rows as they are is what [`push`](Self::push) would
    /// write: its source is not behind the merge, and none of tonight's
    /// rows of that source sorts between its first and last message or
    /// replaces one of them.
    fn copyable(&self, span: &GroupSpan) -> Option<usize> {
        let s = self
            .pending
            .iter()
            .position(|p| p.source.name == span.source)
            .filter(|&s| s >= self.current)?;
        let p = &self.pending[s];
        let (first, last) = (span.first.as_str(), span.last.as_str());
        // the first new row not before `first`: the rows are sorted by id
        let (mut from, mut to) = (p.next, p.rows.num_rows());
        while from < to {
            let mid = from + (to - from) / 2;
            if p.ids.value(mid) < first {
                from = mid + 1;
            } else {
                to = mid;
            }
        }
        let new_inside = from < p.rows.num_rows() && p.ids.value(from) <= last;
        let replaced_inside = p
            .replaced
            .iter()
            .any(|k| first <= k.as_str() && k.as_str() <= last);
        (!new_inside && !replaced_inside).then_some(s)
    }

    /// The rows to write before an earlier night's row group of source `s`
    /// whose first message is `first`: the new rows of the sources before
    /// it, and those of `s` sorting before `first`.
    fn up_to(&mut self, s: usize, first: &str) -> Result<RecordBatch> {
        let mut take = Vec::new();
        self.advance_to(s, &mut take);
        self.new_rows_until(|id| id < first, &mut take);
        self.interleave(&RecordBatch::new_empty(schema()), &take)
    }

    /// Counts the `rows` of a row group of source `s` written as they were.
    fn copied(&mut self, s: usize, rows: usize) {
        let name = self.pending[s].source.name;
        *self.by_source.get_mut(name).expect("a count per source") += rows as u64;
    }

    /// The new rows not yet written, of the current source and every later one.
    fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        let mut take = Vec::new();
        self.advance_to(self.pending.len(), &mut take);
        let merged = self.interleave(&RecordBatch::new_empty(schema()), &take)?;
        Ok(Some(merged)
            .filter(|b| b.num_rows() > 0)
            .into_iter()
            .collect())
    }

    /// Moves the merge on to source `s`, taking every new row of the
    /// sources before it.
    fn advance_to(&mut self, s: usize, take: &mut Vec<(usize, usize)>) {
        while self.current < s {
            self.drain_current(take);
            self.current += 1;
        }
    }

    /// Takes the current source's next new rows while their ids pass `before`.
    fn new_rows_until(&mut self, before: impl Fn(&str) -> bool, take: &mut Vec<(usize, usize)>) {
        let p = &mut self.pending[self.current];
        let from = p.next;
        while p.next < p.rows.num_rows() && before(p.ids.value(p.next)) {
            take.push((self.current + 1, p.next));
            p.next += 1;
        }
        *self
            .by_source
            .get_mut(p.source.name)
            .expect("a count per source") += (p.next - from) as u64;
    }

    fn drain_current(&mut self, take: &mut Vec<(usize, usize)>) {
        let p = &mut self.pending[self.current];
        let n = p.rows.num_rows();
        take.extend((p.next..n).map(|r| (self.current + 1, r)));
        *self.by_source.get_mut(p.source.name).expect("every source") += (n - p.next) as u64;
        p.next = n;
    }

    /// The rows `take` picks: (0, row) of `old`, (1 + source, row) of a
    /// source's new rows.
    fn interleave(&self, old: &RecordBatch, take: &[(usize, usize)]) -> Result<RecordBatch> {
        let mut batches = vec![old];
        batches.extend(self.pending.iter().map(|p| &p.rows));
        Ok(datafusion::arrow::compute::interleave_record_batch(
            &batches, take,
        )?)
    }
}

/// `batches` in one batch sorted by message id.
fn sorted_by_id(batches: &[RecordBatch]) -> Result<RecordBatch> {
    let all = datafusion::arrow::compute::concat_batches(&schema(), batches)?;
    let order = datafusion::arrow::compute::sort_to_indices(
        all.column_by_name("message_id").expect("in the schema"),
        None,
        None,
    )?;
    Ok(datafusion::arrow::compute::take_record_batch(&all, &order)?)
}

/// What the scoring loop hands the writer.
enum WriteMsg {
    Batch(RecordBatch),
    /// Row group `group` of an earlier night's file, copied as it is.
    Group {
        window: FileWindow,
        metadata: Arc<ParquetMetaData>,
        group: usize,
    },
    /// Every batch was sent: publish the partition. Without it (the loop
    /// failed) the channel closes and nothing is published.
    Finish,
}

/// Writes the batches it is sent; publishes the partition only on
/// [`WriteMsg::Finish`].
async fn write_batches(
    mut sink: ParquetSink,
    mut rx: tokio::sync::mpsc::Receiver<WriteMsg>,
) -> Result<()> {
    // A row group holds one source's messages, so that a later night can
    // copy the groups of the sources it adds nothing to (voice::base_file).
    let mut source: Option<String> = None;
    while let Some(msg) = rx.recv().await {
        match msg {
            WriteMsg::Batch(b) => {
                let sources = columns::strings(&b, "source")?;
                let mut start = 0;
                while start < b.num_rows() {
                    let name = sources.value(start);
                    let end = (start..b.num_rows())
                        .find(|&i| sources.value(i) != name)
                        .unwrap_or(b.num_rows());
                    if source.as_deref().is_some_and(|s| s != name) {
                        sink.end_group().await?;
                    }
                    source = Some(name.to_string());
                    sink.write(&b.slice(start, end - start)).await?;
                    start = end;
                }
            }
            WriteMsg::Group {
                window,
                metadata,
                group,
            } => {
                sink.append_group(&window, &metadata, group).await?;
                source = None;
            }
            WriteMsg::Finish => {
                sink.finish().await?;
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of `source` with these message ids, labelled `label`.
    fn scored_rows(source: &str, ids: &[String], label: &str) -> RecordBatch {
        use datafusion::arrow::array::new_null_array;
        let n = ids.len();
        let schema = schema();
        let columns = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match f.name().as_str() {
                    "source" => Arc::new(StringArray::from(vec![source; n])),
                    "message_id" => Arc::new(StringArray::from_iter_values(ids)),
                    "at" => Arc::new(
                        TimestampMicrosecondArray::from_iter_values((0..n).map(|i| i as i64))
                            .with_timezone("UTC"),
                    ),
                    "scored" => Arc::new(BooleanArray::from(vec![false; n])),
                    "label" => Arc::new(StringArray::from(vec![label; n])),
                    "rating_scale" => Arc::new(StringArray::from(vec!["nps"; n])),
                    _ => new_null_array(f.data_type(), n),
                }
            })
            .collect();
        RecordBatch::try_new(schema, columns).expect("rows")
    }

    fn ids(prefix: &str, numbers: impl Iterator<Item = usize>) -> Vec<String> {
        numbers.map(|i| format!("{prefix}{i:05}")).collect()
    }

    /// Writes `batches` as `writer` does, in row groups of at most 100 rows.
    async fn written(
        storage: &Storage,
        path: object_store::path::Path,
        batches: Vec<WriteMsg>,
    ) -> Vec<RecordBatch> {
        let properties = parquet::file::properties::WriterProperties::builder()
            .set_compression(storage.codec().parquet())
            .set_max_row_group_row_count(Some(100))
            .build();
        let sink =
            ParquetSink::create_in(storage, path.clone(), schema(), properties).expect("sink");
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let writer = tokio::spawn(write_batches(sink, rx));
        for b in batches {
            tx.send(b).await.expect("sent");
        }
        tx.send(WriteMsg::Finish).await.expect("sent");
        writer.await.expect("joined").expect("written");
        crate::parquet_io::read_batches(storage, &path)
            .await
            .expect("read")
    }

    /// Carrying an earlier night over by row groups, copying those tonight
    /// changes nothing in, writes the rows that decoding and merging every
    /// row writes. Reference: [`Merge::push`] over every row of the file.
    /// Tonight's rows fall inside a group, between groups, after a source's
    /// last group and before its first; one replaces a message in place,
    /// one export replaced a message without a new row (a superseded copy),
    /// and a source of the earlier night gets nothing new.
    #[tokio::test]
    async fn copied_row_groups_give_the_rows_of_merging_every_row() {
        let storage = Storage::open("memory://").expect("store");
        let base = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
        let earlier = vec![
            scored_rows(
                "survey",
                &ids("S", (0..1000).map(|i| 2 * i + 10)),
                "neutral",
            ),
            scored_rows("ticket", &ids("T", (0..450).map(|i| 3 * i + 5)), "neutral"),
            scored_rows("review", &ids("R", 0..230), "neutral"),
        ];
        written(
            &storage,
            partition_file("marts", "feedback_scored", base),
            earlier.into_iter().map(WriteMsg::Batch).collect(),
        )
        .await;
        let file = BaseFile::open(&storage, "feedback_scored", base, &schema())
            .await
            .expect("opened")
            .expect("one file of these columns");
        assert_eq!(file.groups(), 10 + 5 + 3, "a row group holds one source");

        let new = || {
            vec![
                (
                    SOURCES[0],
                    scored_rows(
                        "survey",
                        // inside the group of 410-608, between those of
                        // 10-208 and 210-408, before and after everything
                        &[ids("S", [411, 209, 3].into_iter()), ids("S", 5000..5030)].concat(),
                        "negative",
                    ),
                ),
                (
                    SOURCES[1],
                    // replaces T00008 in place; two after everything
                    scored_rows("ticket", &ids("T", [8, 1400, 1401].into_iter()), "positive"),
                ),
            ]
        };
        let replaced = || {
            HashMap::from([(
                "feedback".to_string(),
                HashSet::from(["S01500".to_string()]),
            )])
        };

        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let mut merge = Merge::new(&SOURCES, new(), replaced()).expect("merge");
        let copied = carry_groups(&file, &mut merge, &tx, 10)
            .await
            .expect("carried")
            .expect("not stopped");
        for b in merge.finish().expect("finished") {
            tx.send(WriteMsg::Batch(b)).await.expect("sent");
        }
        drop(tx);
        let mut by_groups = Vec::new();
        while let Some(m) = rx.recv().await {
            by_groups.push(m);
        }
        let by_groups_count = merge.by_source.clone();
        let got = written(
            &storage,
            object_store::path::Path::from("got.parquet"),
            by_groups,
        )
        .await;

        let mut merge = Merge::new(&SOURCES, new(), replaced()).expect("merge");
        let mut by_rows = Vec::new();
        for g in 0..file.groups() {
            for b in file.rows(g).await.expect("rows") {
                by_rows.push(WriteMsg::Batch(merge.push(&b).expect("merged")));
            }
        }
        by_rows.extend(
            merge
                .finish()
                .expect("finished")
                .into_iter()
                .map(WriteMsg::Batch),
        );
        let want = written(
            &storage,
            object_store::path::Path::from("want.parquet"),
            by_rows,
        )
        .await;

        let all = |b: &[RecordBatch]| {
            datafusion::arrow::compute::concat_batches(&schema(), b).expect("concat")
        };
        assert_eq!(all(&got), all(&want));
        assert_eq!(by_groups_count, merge.by_source);
        assert_eq!(by_groups_count["survey"], 1000 + 33 - 1);
        assert_eq!(by_groups_count["ticket"], 450 + 2);
        assert_eq!(by_groups_count["review"], 230);
        // dirty: the survey groups holding 411 and 1500 (replaced), the
        // ticket group holding T00008; every other group of at least 10 rows
        assert_eq!(copied, 18 - 3, "groups copied");
    }

    #[test]
    fn the_schema_is_the_documented_one_and_has_no_text() {
        let s = schema();
        mart::doc("feedback_scored")
            .expect("documented")
            .check(&s)
            .expect("schema matches schemas/marts/feedback_scored.toml");
        for forbidden in ["text", "comment", "message", "reply"] {
            assert!(s.field_with_name(forbidden).is_err(), "{forbidden}");
        }
    }

    /// Messages with these texts, customers and times (epoch microseconds).
    fn input(text: Vec<Option<&str>>, customers: Vec<Option<&str>>, at: Vec<i64>) -> Input {
        let n = text.len();
        Input {
            message_id: StringArray::from_iter_values((0..n).map(|i| format!("m{i}"))),
            customer_id: StringArray::from(customers),
            at: TimestampMicrosecondArray::from(at).with_timezone("UTC"),
            touchpoint: StringArray::from(vec![Some("in_store"); n]),
            text: StringArray::from(text),
            rating: Int64Array::from(vec![None; n]),
            rating_scale: StringArray::from(vec!["nps"; n]),
            follow_up_at: TimestampMicrosecondArray::from(vec![None; n]).with_timezone("UTC"),
        }
    }

    #[test]
    fn messages_without_words_are_unscored_not_neutral() {
        let scorer = Scorer::new();
        let input = input(
            vec![None, Some("   "), Some("lovely coffee, thanks")],
            vec![Some("c1"), Some("c2"), None],
            vec![0; 3],
        );
        let (scored, _, _) = score_slice(&scorer, &input, 0..3, 0, 10, &Known::default());
        assert_eq!(scored.len(), 3);
        for s in &scored[..2] {
            assert!(!s.scored);
            assert_eq!(s.label, Label::Unscored);
            assert_eq!(s.unscored_reason, Some(NO_TEXT));
        }
        let (tail, _, _) = score_slice(&scorer, &input, 1..3, 0, 10, &Known::default());
        assert_eq!(tail, scored[1..].to_vec(), "a slice scores like the whole");
    }

    #[test]
    fn only_the_themes_days_are_counted_and_every_message_is_scored() {
        let scorer = Scorer::new();
        let words = "The coffee was cold and the staff were rude, awful.";
        let input = input(
            vec![Some(words); 2],
            vec![Some("c1"), Some("c2")],
            vec![10, 20],
        );
        let (early, themes, known) = score_slice(&scorer, &input, 0..1, 15, 1, &Known::default());
        assert!(themes.is_empty(), "sent before the themes' days");
        let (late, themes, _) = score_slice(&scorer, &input, 1..2, 15, 1, &known);
        assert!(!themes.is_empty());
        assert_eq!(early[0].label, Label::Negative);
        assert_eq!(early, late, "the same words score the same either way");
        assert!(
            !themes.is_empty(),
            "a text known from before still has its phrases counted"
        );
    }

    /// Texts met before, in the slice or in the batches before (`known`),
    /// take the scores scoring them again would give, and only texts not
    /// known come back as scored.
    #[test]
    fn repeated_texts_score_as_each_alone_and_are_scored_once() {
        let scorer = Scorer::new();
        let texts = vec![
            Some("Great coffee, thanks!"),
            Some("Where is my order? Nobody answers."),
            Some("Great coffee, thanks!"),
            None,
            Some("   "),
            Some("Where is my order? Nobody answers."),
            Some("Ni idea de dónde está mi pedido."),
            Some("Great coffee, thanks!"),
        ];
        let n = texts.len();
        let input = input(texts.clone(), vec![Some("c1"); n], vec![0; n]);
        let (head, _, first) = score_slice(&scorer, &input, 0..4, 0, 10, &Known::default());
        assert_eq!(first.len(), 2, "two distinct texts with words");
        let (tail, _, second) = score_slice(&scorer, &input, 4..n, 0, 10, &first);
        assert_eq!(second.len(), 1, "only the Spanish text is new");
        let one_by_one: Vec<Scored> = texts.iter().map(|t| score_text(&scorer, *t)).collect();
        assert_eq!([head, tail].concat(), one_by_one);
    }

    /// feedback_scored rows with these (source, message_id), the other
    /// columns empty or constant.
    fn rows(keys: &[(&str, &str)]) -> RecordBatch {
        use datafusion::arrow::array::new_null_array;
        let n = keys.len();
        let columns = schema()
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match f.name().as_str() {
                    "source" => Arc::new(StringArray::from_iter_values(keys.iter().map(|k| k.0))),
                    "message_id" => {
                        Arc::new(StringArray::from_iter_values(keys.iter().map(|k| k.1)))
                    }
                    _ if f.is_nullable() => new_null_array(f.data_type(), n),
                    "at" => {
                        Arc::new(TimestampMicrosecondArray::from(vec![0; n]).with_timezone("UTC"))
                    }
                    "scored" => Arc::new(BooleanArray::from(vec![false; n])),
                    _ => Arc::new(StringArray::from(vec!["x"; n])),
                }
            })
            .collect();
        RecordBatch::try_new(schema(), columns).expect("batch")
    }

    fn keys(batches: &[RecordBatch]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for b in batches {
            let (s, id) = (
                columns::strings(b, "source").expect("source"),
                columns::strings(b, "message_id").expect("id"),
            );
            for i in 0..b.num_rows() {
                out.push((s.value(i).to_string(), id.value(i).to_string()));
            }
        }
        out
    }

    #[test]
    fn the_merge_keeps_message_order_drops_replaced_copies_and_prefers_tonights_row() {
        let [survey, ticket, review] = SOURCES;
        let new = vec![
            (ticket, rows(&[("ticket", "t5"), ("ticket", "t1")])),
            (survey, rows(&[("survey", "s3")])),
            (ticket, rows(&[("ticket", "t3")])),
            (review, rows(&[("review", "r1")])),
        ];
        let replaced: HashMap<String, HashSet<String>> = [(
            "feedback".to_string(),
            ["s2".to_string()].into_iter().collect(),
        )]
        .into_iter()
        .collect();
        let mut merge = Merge::new(&SOURCES, new, replaced).expect("merge");
        // the earlier night, read in two batches that split the tickets;
        // t3 is new tonight too (its follow-up came), so tonight's row wins
        let old = [
            rows(&[("survey", "s1"), ("survey", "s2"), ("ticket", "t2")]),
            rows(&[("ticket", "t3"), ("ticket", "t4")]),
        ];
        let mut out = Vec::new();
        for b in &old {
            out.push(merge.push(b).expect("push"));
        }
        out.extend(merge.finish().expect("finish"));
        let want: Vec<(String, String)> = [
            ("survey", "s1"),
            ("survey", "s3"),
            ("ticket", "t1"),
            ("ticket", "t2"),
            ("ticket", "t3"),
            ("ticket", "t4"),
            ("ticket", "t5"),
            ("review", "r1"),
        ]
        .iter()
        .map(|(s, id)| (s.to_string(), id.to_string()))
        .collect();
        assert_eq!(keys(&out), want);
        assert_eq!(
            merge.by_source,
            [("review", 1), ("survey", 2), ("ticket", 5)]
                .iter()
                .map(|(s, n)| (s.to_string(), *n))
                .collect::<BTreeMap<_, _>>()
        );
    }

    #[test]
    fn an_earlier_night_out_of_source_order_is_an_error() {
        let mut merge = Merge::new(&SOURCES, Vec::new(), HashMap::new()).expect("merge");
        merge.push(&rows(&[("ticket", "t1")])).expect("tickets");
        let err = merge
            .push(&rows(&[("survey", "s1")]))
            .expect_err("surveys after tickets");
        assert!(err.to_string().contains("not grouped by source"), "{err}");
    }

    #[test]
    fn slices_since_an_earlier_night_cover_what_it_did_not_know() {
        let d = |s: &str| s.parse::<NaiveDate>().expect("date");
        let [survey, ticket, _] = SOURCES;
        let (base, date) = (d("2025-03-01"), d("2025-03-04"));
        let surveys = Slice::since(base, date, &survey);
        assert_eq!(surveys.len(), 2);
        // new partitions, any time up to tonight
        assert_eq!((surveys[0].dt_after, surveys[0].dt_upto), (base, date));
        assert_eq!(surveys[0].at_before, end_of(date));
        // older partitions, sent after the earlier night
        assert_eq!(surveys[1].dt_upto, base);
        assert_eq!(
            (surveys[1].at_from, surveys[1].at_before),
            (end_of(base), end_of(date))
        );
        // tickets: also those known then whose follow-up came since
        let tickets = Slice::since(base, date, &ticket);
        assert_eq!(tickets.len(), 3);
        assert_eq!(tickets[2].follow_ups_from, Some(end_of(base)));
        assert_eq!(
            (tickets[2].dt_upto, tickets[2].at_before),
            (base, end_of(base))
        );
        // the themes' days already known then
        let rest = Slice::known_on(base, start_of(d("2025-02-01")));
        assert_eq!(
            (rest.at_from, rest.at_before),
            (start_of(d("2025-02-01")), end_of(base))
        );
        assert!(Slice::known_on(base, end_of(base)).is_empty());
    }
}
