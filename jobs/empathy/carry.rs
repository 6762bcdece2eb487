//! What the tickets' texts scored to, carried from night to night: a night
//! reads and scores only the replies and messages that can have changed
//! since the night before, instead of every ticket's texts again.
//!
//! A ticket's text scores (the reply's tone, the message's strongest
//! emotion and language) depend on nothing but its lake row (the reply, the
//! message, the topic) and, for the reply, whether it was sent by the end
//! of the run date (`tickets.sql` hides a reply sent later, as
//! `stg_tickets` hides its time). After each night D the job keeps every
//! ticket's scores, by ticket id and export day, in
//! `marts/_empathy_texts/dt=<D>/`, with a record of what the lake held up to
//! D (the digest the transform's carried models use, see
//! [`crate::transform::provenance`]) and of the scorers' rules. A later
//! night D' starts from the latest such night N whose record still holds,
//! and reads the texts of the lake partitions from the earliest of
//! - the day after N (the exports since), and
//! - the export day of any ticket exported by N that was answered, or
//!   opened, after N and by D' (its reply becomes known, or it enters the
//!   view; the lake's statistics on those times find them without reading
//!   the texts).
//!
//! Every ticket exported before that day was in `stg_tickets` on N with the
//! same row and the same reply shown (a later export of it would be the
//! one the view keeps), so its scores are N's. A ticket that is not among
//! N's nonetheless (the record cannot vouch for it) makes the job read every
//! text again. Otherwise, or with `[transform] incremental = false`, every
//! text is read and scored.
//!
//! The folder holds ticket ids with the scores of what their customers
//! wrote: `attune forget` and consent withdrawals delete it with the other
//! carried folders ([`crate::privacy::scan::clear_unscanned`]), and each
//! night keeps only its own and the one it started from (for a run of the
//! same date again). The catalog skips `_…` folders, so no analyst's table
//! lists it.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Date32Builder, Float64Builder, Int8Builder,
    RecordBatch, StringBuilder, UInt32Builder,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, Float64Type, Int8Type, Schema, SchemaRef, UInt32Type,
};
use datafusion::prelude::SessionContext;
use sha2::{Digest, Sha256};
use tracing::info;

use super::components::{TicketRow, ToneResult};
use super::inputs::MessageRead;
use super::tone::{Tone, ToneLabel, Unscored};
use crate::Result;
use crate::context::JobContext;
use crate::storage::Storage;
use crate::transform::provenance;
use crate::utc_dates::epoch_day;

/// The folder under `marts` (skipped by every table listing).
pub const TABLE: &str = "_empathy_texts";

/// A ticket's row of [`Carried`] (`NONE` for a ticket whose texts are read).
pub type CarriedRow = u32;

/// No carried row: the ticket's texts are read and scored tonight.
pub const NONE: CarriedRow = u32::MAX;

/// What a night starts from: the record to keep tonight's scores under,
/// and an earlier night's scores when they are current.
pub struct Start {
    pub record: String,
    pub carried: Option<Carried>,
}

/// An earlier night's scores, in ticket id order.
pub struct Carried {
    pub night: NaiveDate,
    /// The first export day whose texts are read tonight.
    pub texts_from: NaiveDate,
    rows: RecordBatch,
}

/// One ticket's text scores.
#[derive(Debug, Clone, PartialEq)]
pub struct TextScores {
    /// What the voice scorer made of the message; `None` for a message it
    /// was not given.
    pub read: Option<MessageRead>,
    pub toned: ToneResult,
}

/// The record of a night: the lake's digest as of it and the rules the
/// scorers apply.
fn record_text(digest: &str) -> String {
    let mut h = Sha256::new();
    h.update(super::tone::TONE_TOML.as_bytes());
    h.update(crate::voice::score::SCORER_FINGERPRINT.to_le_bytes());
    for source in crate::voice::score::lexicon_sources() {
        h.update((source.len() as u64).to_le_bytes());
        h.update(source.as_bytes());
    }
    format!("{digest}\nscorers {:x}", h.finalize())
}

/// The record of `date` and, when one is current, the night to start from
/// (see the module's conditions).
pub async fn start(ctx: &JobContext, session: &SessionContext, date: NaiveDate) -> Result<Start> {
    let models = crate::transform::models::load(ctx.cfg.models_dir.as_deref())?;
    let (record, night) = provenance::current_night(ctx, &models, TABLE, date, record_text).await?;
    let Some(night) = night else {
        return Ok(Start {
            record,
            carried: None,
        });
    };
    let Some(batches) =
        provenance::read_night(&ctx.storage, TABLE, night, &schema(), "text scores").await
    else {
        return Ok(Start {
            record,
            carried: None,
        });
    };
    let rows = concat_batches(&schema(), &batches)?;
    let texts_from = texts_from(session, night, date).await?;
    Ok(Start {
        record,
        carried: Some(Carried {
            night,
            texts_from,
            rows,
        }),
    })
}

/// The first export day whose texts are read on `date` when starting from
/// `night`: the day after it, or the earliest export by it of a ticket
/// answered or opened after it.
async fn texts_from(
    session: &SessionContext,
    night: NaiveDate,
    date: NaiveDate,
) -> Result<NaiveDate> {
    let after = night + chrono::Duration::days(1);
    let within = |column: &str| {
        format!(
            "({column} >= DATE '{night}' + INTERVAL '1 day' AND {column} < DATE '{date}' + INTERVAL '1 day')"
        )
    };
    let sql = format!(
        "SELECT min(dt) AS day FROM tickets WHERE dt <= DATE '{night}' AND ({} OR {})",
        within("first_response_at"),
        within("created_at")
    );
    let batches = session.sql(&sql).await?.collect().await?;
    let earliest = batches.iter().filter(|b| b.num_rows() > 0).find_map(|b| {
        let d = b.column(0).as_primitive_opt::<Date32Type>()?;
        d.is_valid(0).then(|| d.value_as_date(0)).flatten()
    });
    Ok(earliest.map_or(after, |d| d.min(after)))
}

impl Carried {
    /// Each of `tickets` (in ticket id order, as read) matched to its
    /// carried row, `NONE` for those exported on or after
    /// [`texts_from`](Self::texts_from); `None` when a ticket exported
    /// before it has no carried row (its texts were not read).
    pub fn match_rows(&self, tickets: &[TicketRow]) -> Option<Vec<CarriedRow>> {
        let ids = self.rows.column(0).as_string::<i32>();
        let days = self.rows.column(1).as_primitive::<Date32Type>();
        let from = epoch_day(self.texts_from);
        let mut at = 0usize;
        let mut out = Vec::with_capacity(tickets.len());
        for t in tickets {
            if t.source_day >= from {
                out.push(NONE);
                continue;
            }
            while at < ids.len() && ids.value(at) < t.ticket_id.as_str() {
                at += 1;
            }
            if at < ids.len() && ids.value(at) == t.ticket_id && days.value(at) == t.source_day {
                out.push(u32::try_from(at).expect("fewer than 4 billion tickets"));
            } else {
                return None;
            }
        }
        Some(out)
    }

    /// The scores of carried row `row`.
    pub fn scores(&self, row: CarriedRow) -> TextScores {
        let r = row as usize;
        let c = |i: usize| self.rows.column(i);
        let float = |i: usize| {
            let a = c(i).as_primitive::<Float64Type>();
            a.is_valid(r).then(|| a.value(r))
        };
        let languages = c(3).as_boolean();
        let read = languages.is_valid(r).then(|| MessageRead {
            strongest: float(2),
            other_language: languages.value(r),
        });
        let toned = match c(4).as_primitive::<Int8Type>().value(r) {
            KIND_NO_TEXT => Err(Unscored::NoText),
            KIND_OTHER_LANGUAGE => Err(Unscored::UnsupportedLanguage),
            _ => Ok(Tone {
                score: float(5).unwrap_or(f64::NAN),
                label: label_of(c(6).as_primitive::<Int8Type>().value(r)),
                fired: c(7).as_primitive::<UInt32Type>().value(r),
                unjudged: c(8).as_primitive::<UInt32Type>().value(r),
                raw: float(9).unwrap_or(f64::NAN),
            }),
        };
        TextScores { read, toned }
    }
}

const KIND_SCORED: i8 = 0;
const KIND_NO_TEXT: i8 = 1;
const KIND_OTHER_LANGUAGE: i8 = 2;

fn label_code(label: ToneLabel) -> i8 {
    match label {
        ToneLabel::Cold => 0,
        ToneLabel::Neutral => 1,
        ToneLabel::Warm => 2,
    }
}

fn label_of(code: i8) -> ToneLabel {
    match code {
        0 => ToneLabel::Cold,
        1 => ToneLabel::Neutral,
        _ => ToneLabel::Warm,
    }
}

/// Columns of the kept scores: one row per ticket, in ticket id order.
fn schema() -> SchemaRef {
    let f = |name: &str, ty: DataType, nullable: bool| Field::new(name, ty, nullable);
    Arc::new(Schema::new(vec![
        f("ticket_id", DataType::Utf8, false),
        f("source_dt", DataType::Date32, false),
        f("strongest_emotion", DataType::Float64, true),
        // NULL where the message was not read (see `TextScores::read`)
        f("other_language", DataType::Boolean, true),
        f("tone_kind", DataType::Int8, false),
        f("tone_score", DataType::Float64, true),
        f("tone_label", DataType::Int8, true),
        f("tone_fired", DataType::UInt32, true),
        f("tone_unjudged", DataType::UInt32, true),
        f("tone_raw", DataType::Float64, true),
    ]))
}

/// Tonight's scores, ticket by ticket in ticket id order.
pub struct Rows {
    ids: StringBuilder,
    days: Date32Builder,
    strongest: Float64Builder,
    other_language: BooleanBuilder,
    kind: Int8Builder,
    score: Float64Builder,
    label: Int8Builder,
    fired: UInt32Builder,
    unjudged: UInt32Builder,
    raw: Float64Builder,
}

impl Rows {
    pub fn with_capacity(n: usize) -> Rows {
        Rows {
            ids: StringBuilder::with_capacity(n, n * 16),
            days: Date32Builder::with_capacity(n),
            strongest: Float64Builder::with_capacity(n),
            other_language: BooleanBuilder::with_capacity(n),
            kind: Int8Builder::with_capacity(n),
            score: Float64Builder::with_capacity(n),
            label: Int8Builder::with_capacity(n),
            fired: UInt32Builder::with_capacity(n),
            unjudged: UInt32Builder::with_capacity(n),
            raw: Float64Builder::with_capacity(n),
        }
    }

    pub fn push(&mut self, ticket: &TicketRow, scores: &TextScores) {
        self.ids.append_value(&ticket.ticket_id);
        self.days.append_value(ticket.source_day);
        self.strongest
            .append_option(scores.read.and_then(|r| r.strongest));
        self.other_language
            .append_option(scores.read.map(|r| r.other_language));
        match &scores.toned {
            Ok(t) => {
                self.kind.append_value(KIND_SCORED);
                self.score.append_value(t.score);
                self.label.append_value(label_code(t.label));
                self.fired.append_value(t.fired);
                self.unjudged.append_value(t.unjudged);
                self.raw.append_value(t.raw);
            }
            Err(why) => {
                self.kind.append_value(match why {
                    Unscored::NoText => KIND_NO_TEXT,
                    Unscored::UnsupportedLanguage => KIND_OTHER_LANGUAGE,
                });
                self.score.append_null();
                self.label.append_null();
                self.fired.append_null();
                self.unjudged.append_null();
                self.raw.append_null();
            }
        }
    }

    pub fn finish(mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ids.finish()),
            Arc::new(self.days.finish()),
            Arc::new(self.strongest.finish()),
            Arc::new(self.other_language.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.score.finish()),
            Arc::new(self.label.finish()),
            Arc::new(self.fired.finish()),
            Arc::new(self.unjudged.finish()),
            Arc::new(self.raw.finish()),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }
}

/// Keeps tonight's scores (`parts`, in ticket id order) under `record`,
/// and drops every other night's but `started_from`
/// ([`provenance::keep_night`]).
pub async fn keep(
    storage: &Storage,
    date: NaiveDate,
    parts: &[RecordBatch],
    record: &str,
    started_from: Option<NaiveDate>,
) -> Result<()> {
    let started = std::time::Instant::now();
    provenance::keep_night(storage, TABLE, date, parts, schema(), record, started_from).await?;
    info!(
        tickets = parts.iter().map(RecordBatch::num_rows).sum::<usize>(),
        seconds = started.elapsed().as_secs_f64(),
        "text scores kept for the next night"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(id: &str, day: i32) -> TicketRow {
        TicketRow {
            ticket_id: id.into(),
            source_day: day,
            ..Default::default()
        }
    }

    fn scored(strongest: Option<f64>, toned: ToneResult) -> TextScores {
        TextScores {
            read: Some(MessageRead {
                strongest,
                other_language: strongest.is_none(),
            }),
            toned,
        }
    }

    #[test]
    fn kept_scores_read_back_as_they_were_and_match_tickets_by_id_and_export_day() {
        let tone = Tone {
            score: 62.5,
            label: ToneLabel::Warm,
            fired: 0b101,
            unjudged: 0b10,
            raw: 62.5,
        };
        let kept = [
            (ticket("T1", 100), scored(Some(0.25), Ok(tone.clone()))),
            (ticket("T2", 101), scored(None, Err(Unscored::NoText))),
            (
                ticket("T3", 102),
                scored(Some(0.0), Err(Unscored::UnsupportedLanguage)),
            ),
            // a message the voice scorer was not given
            (
                ticket("T35", 102),
                TextScores {
                    read: None,
                    toned: Ok(tone.clone()),
                },
            ),
        ];
        let mut rows = Rows::with_capacity(kept.len());
        for (t, s) in &kept {
            rows.push(t, s);
        }
        let carried = Carried {
            night: NaiveDate::from_ymd_opt(1970, 4, 12).expect("date"),
            texts_from: NaiveDate::from_ymd_opt(1970, 4, 13).expect("date"),
            rows: rows.finish().expect("batch"),
        };
        for (i, (_, s)) in kept.iter().enumerate() {
            assert_eq!(&carried.scores(i as u32), s);
        }
        // day 102 is 1970-04-13, the first day read: T3 is scored tonight
        let tonight = [
            ticket("T1", 100),
            ticket("T2", 101),
            ticket("T3", 102),
            ticket("T4", 103),
        ];
        assert_eq!(carried.match_rows(&tonight), Some(vec![0, 1, NONE, NONE]));
        // T2 exported again before the first day read: not the row carried
        assert_eq!(
            carried.match_rows(&[ticket("T1", 100), ticket("T2", 100)]),
            None
        );
        // a ticket the night before did not have
        assert_eq!(carried.match_rows(&[ticket("T0", 99)]), None);
        assert_eq!(carried.match_rows(&[]), Some(vec![]));
    }

    #[test]
    fn the_record_names_the_lake_and_the_scorers() {
        let a = record_text("abc");
        assert!(a.starts_with("abc\nscorers "));
        assert_ne!(a, record_text("abd"));
    }
}
