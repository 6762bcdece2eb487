//! Which earlier night's `feedback_scored` tonight can start from, so only
//! the messages that arrived since are scored.
//!
//! Scoring every message of two years was most of the voice job (about
//! 16 of its 24 s a night at a million customers). A partition records
//! beside it (`marts/feedback_scored/dt=<D>/_inputs`, a name Parquet readers
//! skip) a digest of what it was scored from: attune's version, the
//! scorer's lexicons, the messages queries, and the listing (path, size,
//! modification time) of every `feedback`, `tickets` and `reviews` lake
//! partition up to D. A later night reuses the latest such partition whose
//! digest still matches the lake: a re-ingested, erased, purged or expired
//! partition, a new release or an edited lexicon changes it, and every
//! message is scored again. The record is removed before a partition is
//! rewritten and written after it is published, so it never vouches for a
//! half-written one.

use chrono::NaiveDate;
use object_store::path::Path;
use sha2::{Digest, Sha256};

use super::messages::SOURCES;
use super::score::lexicon_sources;
use crate::Result;
use crate::storage::{Storage, partition_dir, partition_file};
use crate::transform::provenance::partition_day;

const FILE: &str = "_inputs";
const MART: &str = "feedback_scored";

fn record_path(date: NaiveDate) -> Path {
    Path::from(format!("{}/{FILE}", partition_dir("marts", MART, date)))
}

/// Digest of what `feedback_scored` as of `date` is scored from.
pub async fn digest(storage: &Storage, date: NaiveDate) -> Result<String> {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(b"\0");
    for text in lexicon_sources() {
        h.update(text.as_bytes());
        h.update(b"\0");
    }
    // every source, present or not: a table that appears or vanishes
    // changes what the partition holds
    for s in SOURCES {
        for part in [s.name, s.table, s.sql] {
            h.update(part.as_bytes());
            h.update(b"\0");
        }
        let files: Vec<_> = storage
            .list(&Path::from(format!("lake/{}", s.table)))
            .await?
            .into_iter()
            .filter(|m| partition_day(&m.location).is_none_or(|d| d <= date))
            .collect();
        crate::nightly::stamps::hash_listing(&mut h, &files);
    }
    Ok(hex::encode(&h.finalize()[..16]))
}

/// Removes the record of `date` (before its partition is rewritten).
pub async fn forget(storage: &Storage, date: NaiveDate) -> Result<()> {
    storage.delete(&record_path(date)).await
}

/// Records that the partition of `date` was scored from `digest`.
pub async fn record(storage: &Storage, date: NaiveDate, digest: &str) -> Result<()> {
    storage
        .put(&record_path(date), bytes::Bytes::from(digest.to_string()))
        .await
}

/// The latest night before `date` whose `feedback_scored` was scored from
/// what the lake holds up to that night now, if any.
pub async fn base(storage: &Storage, date: NaiveDate) -> Result<Option<NaiveDate>> {
    let latest = storage
        .list(&Path::from(format!("marts/{MART}")))
        .await?
        .into_iter()
        .filter(|m| m.location.filename() == Some(FILE))
        .filter_map(|m| partition_day(&m.location))
        .filter(|d| *d < date)
        .max();
    let Some(night) = latest else {
        return Ok(None);
    };
    let Some(recorded) = storage.get_opt(&record_path(night)).await? else {
        return Ok(None);
    };
    if storage
        .head_opt(&partition_file("marts", MART, night))
        .await?
        .is_none()
    {
        return Ok(None);
    }
    let now = digest(storage, night).await?;
    if recorded.as_ref() != now.as_bytes() {
        tracing::debug!(%night, "feedback_scored of an earlier night not reused: its inputs changed");
        return Ok(None);
    }
    Ok(Some(night))
}
