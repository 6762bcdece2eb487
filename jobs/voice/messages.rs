//! `marts/feedback_scored`: every survey answer, ticket and review up to
//! the run date, scored for sentiment and emotions, without its text.
//!
//! The messages are read source by source, sorted by message id, and
//! streamed: each batch is scored in parallel on the blocking thread pool
//! (one slice per core, sharing one [`Scorer`]), its phrases counted for
//! the themes, and written to the partition before the next batch is read.
//! The text exists only inside this loop and never reaches the output.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use tracing::info;

use super::RunParams;
use super::columns::{self, opt_str, timestamp_type};
use super::score::{Emotions, Label, Scored, Scorer};
use super::themes::{Side, ThemeCounter, customer_fingerprint};
use crate::parquet_io::ParquetSink;
use crate::storage::{Storage, partition_file};
use crate::{Error, Result, mart};

/// One kind of message and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The value of `feedback_scored.source`.
    pub name: &'static str,
    /// The lake table.
    pub table: &'static str,
    /// The query (one row per message, sorted by message id).
    pub sql: &'static str,
}

/// The sources, in output order.
pub const SOURCES: [Source; 3] = [
    Source {
        name: "survey",
        table: "feedback",
        sql: include_str!("messages_survey.sql"),
    },
    Source {
        name: "ticket",
        table: "tickets",
        sql: include_str!("messages_ticket.sql"),
    },
    Source {
        name: "review",
        table: "reviews",
        sql: include_str!("messages_review.sql"),
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

/// Scores rows `range` of a batch and counts their phrases.
fn score_slice(
    scorer: &Scorer,
    text: &StringArray,
    customer: &StringArray,
    touchpoint: &StringArray,
    range: std::ops::Range<usize>,
    min_group_size: usize,
) -> (Vec<Scored>, ThemeCounter) {
    let mut themes = ThemeCounter::new(min_group_size);
    let mut out = Vec::with_capacity(range.len());
    for i in range {
        let s = match opt_str(text, i) {
            Some(t) if !t.trim().is_empty() => scorer.score(t),
            _ => no_text(),
        };
        let side = match s.label {
            Label::Negative => Some(Side::Negative),
            Label::Positive => Some(Side::Positive),
            Label::Neutral | Label::Unscored => None,
        };
        if let (Some(side), Some(t)) = (side, opt_str(text, i)) {
            themes.add(
                opt_str(touchpoint, i),
                opt_str(customer, i).map(customer_fingerprint),
                side,
                t,
            );
        }
        out.push(s);
    }
    (out, themes)
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
    /// Messages per source.
    pub by_source: BTreeMap<String, u64>,
    /// Phrase counts of negative and positive messages.
    pub themes: ThemeCounter,
}

/// Reads the messages of every source in `sources`, scores them and writes
/// `marts/feedback_scored/dt=<date>/part-0.parquet`.
pub async fn write_feedback_scored(
    session: &SessionContext,
    storage: &Storage,
    params: &RunParams,
    sources: &[Source],
    min_group_size: usize,
) -> Result<Scoring> {
    let schema = schema();
    mart::doc("feedback_scored")?.check(&schema)?;
    let scorer = Arc::new(Scorer::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let sink = ParquetSink::create(
        storage.store(),
        partition_file("marts", "feedback_scored", params.date),
        schema,
    )?;
    // Three stages overlap, each a batch apart: DataFusion reads (and, for
    // the first batch of a source, sorts) the next batch, the blocking pool
    // scores this one, a task encodes the previous one. In one loop the
    // scoring threads waited for the reading and the writing: 40 s at a
    // million customers on two cores, with 48 CPU-seconds of work.
    let (read_tx, mut read_rx) = tokio::sync::mpsc::channel(2);
    let reader = tokio::spawn(read_sources(
        session.clone(),
        *params,
        sources.to_vec(),
        read_tx,
    ));
    let (write_tx, write_rx) = tokio::sync::mpsc::channel(2);
    let writer = tokio::spawn(write_batches(sink, write_rx));

    let mut themes = ThemeCounter::new(min_group_size);
    let mut by_source: BTreeMap<String, u64> =
        sources.iter().map(|s| (s.name.to_string(), 0)).collect();
    while let Some(read) = read_rx.recv().await {
        let (source, batch) = read?;
        let input = Input::from_batch(&batch)?;
        let n = batch.num_rows();
        // a few slices per core: one slot finishing early leaves a core idle
        let chunk = n.div_ceil(threads * 4).max(1);
        let mut tasks = Vec::new();
        for start in (0..n).step_by(chunk) {
            let end = (start + chunk).min(n);
            let (scorer, text, customer, touchpoint) = (
                Arc::clone(&scorer),
                input.text.clone(),
                input.customer_id.clone(),
                input.touchpoint.clone(),
            );
            tasks.push(tokio::task::spawn_blocking(move || {
                score_slice(
                    &scorer,
                    &text,
                    &customer,
                    &touchpoint,
                    start..end,
                    min_group_size,
                )
            }));
        }
        let mut scored = Vec::with_capacity(n);
        for t in tasks {
            let (s, counts) = t
                .await
                .map_err(crate::nightly::panics::joined("voice: a scoring task"))?;
            scored.extend(s);
            themes.merge(counts);
        }
        let out = output(source.name, &input, &scored)?;
        if write_tx.send(WriteMsg::Batch(out)).await.is_err() {
            // the writer stopped on an error, which its handle returns
            break;
        }
        *by_source.entry(source.name.to_string()).or_default() += n as u64;
    }
    // after a writer error the reader may wait on a full channel: closing
    // it makes its next send fail, so it stops
    drop(read_rx);
    reader
        .await
        .map_err(crate::nightly::panics::joined("voice: the message reader"))?;
    // a writer that stopped early returns its error here; one that did not
    // is told the batches are complete, so the partition is published
    let _ = write_tx.send(WriteMsg::Finish).await;
    drop(write_tx);
    writer
        .await
        .map_err(crate::nightly::panics::joined("voice: the writer"))??;
    for (source, rows) in &by_source {
        info!(source = %source, rows, "messages scored");
    }
    Ok(Scoring { by_source, themes })
}

/// What the scoring loop hands the writer.
enum WriteMsg {
    Batch(RecordBatch),
    /// Every batch was sent: publish the partition. Without it (the loop
    /// failed) the channel closes and nothing is published.
    Finish,
}

/// Sends every source's batches, in order, tagged with their source; an
/// error ends the stream.
async fn read_sources(
    session: SessionContext,
    params: RunParams,
    sources: Vec<Source>,
    tx: tokio::sync::mpsc::Sender<Result<(Source, RecordBatch)>>,
) {
    for source in sources {
        let name = format!("voice/messages_{}", source.name);
        let failed = |e: datafusion::error::DataFusionError| Error::Model {
            model: name.clone(),
            reason: e.to_string(),
        };
        let stream = async {
            let df = super::frame(&session, source.sql, &params, &name).await?;
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
            let read = batch.map(|b| (source, b)).map_err(failed);
            let stop = read.is_err();
            if tx.send(read).await.is_err() || stop {
                return;
            }
        }
    }
}

/// Writes the batches it is sent; publishes the partition only on
/// [`WriteMsg::Finish`].
async fn write_batches(
    mut sink: ParquetSink,
    mut rx: tokio::sync::mpsc::Receiver<WriteMsg>,
) -> Result<()> {
    while let Some(msg) = rx.recv().await {
        match msg {
            WriteMsg::Batch(b) => sink.write(&b).await?,
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

    #[test]
    fn messages_without_words_are_unscored_not_neutral() {
        let scorer = Scorer::new();
        let text = StringArray::from(vec![None, Some("   "), Some("lovely coffee, thanks")]);
        let customers = StringArray::from(vec![Some("c1"), Some("c2"), None]);
        let touchpoints = StringArray::from(vec![Some("in_store"); 3]);
        let (scored, _) = score_slice(&scorer, &text, &customers, &touchpoints, 0..3, 10);
        assert_eq!(scored.len(), 3);
        for s in &scored[..2] {
            assert!(!s.scored);
            assert_eq!(s.label, Label::Unscored);
            assert_eq!(s.unscored_reason, Some(NO_TEXT));
        }
        let (tail, _) = score_slice(&scorer, &text, &customers, &touchpoints, 1..3, 10);
        assert_eq!(tail, scored[1..].to_vec(), "a slice scores like the whole");
    }
}
