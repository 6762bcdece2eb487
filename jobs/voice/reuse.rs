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
//! message is scored again. The record is kept as the SQL models' are
//! (`transform::provenance`): removed before a partition is rewritten and
//! written after it is published, so it never vouches for a half-written
//! one; only the digest is the voice job's own.

use chrono::NaiveDate;
use object_store::path::Path;
use sha2::{Digest, Sha256};

use super::messages::SOURCES;
use super::score::{SCORER_FINGERPRINT, lexicon_sources};
use crate::Result;
use crate::storage::{Storage, partition_file};
use crate::transform::provenance;

/// The mart whose partitions carry over.
pub const MART: &str = "feedback_scored";

/// Digest of what `feedback_scored` as of `date` is scored from.
pub async fn digest(storage: &Storage, date: NaiveDate) -> Result<String> {
    digest_with(storage, date, SCORER_FINGERPRINT).await
}

/// [`digest`] with the scorer's fingerprint given: the version alone would
/// not change with the scoring rules, and a carried-over score of an older
/// rule would sit beside tonight's.
async fn digest_with(storage: &Storage, date: NaiveDate, scorer: u64) -> Result<String> {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(b"\0");
    h.update(scorer.to_le_bytes());
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
        let files =
            provenance::lake_files_up_to(storage, &Path::from(format!("lake/{}", s.table)), date)
                .await?;
        crate::nightly::stamps::hash_listing(&mut h, &files);
    }
    Ok(hex::encode(&h.finalize()[..16]))
}

/// The latest night before `date` whose `feedback_scored` was scored from
/// what the lake holds up to that night now, if any.
pub async fn base(storage: &Storage, date: NaiveDate) -> Result<Option<NaiveDate>> {
    let Some(night) = provenance::latest_recorded_before(storage, MART, date).await? else {
        return Ok(None);
    };
    let Some(recorded) = provenance::recorded(storage, MART, night).await? else {
        return Ok(None);
    };
    if storage
        .head_opt(&partition_file("marts", MART, night))
        .await?
        .is_none()
    {
        return Ok(None);
    }
    if recorded != digest(storage, night).await? {
        tracing::debug!(%night, "feedback_scored of an earlier night not reused: its inputs changed");
        return Ok(None);
    }
    Ok(Some(night))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another scorer (its fingerprint recorded again after a rule change)
    /// gives another digest over the same lake: nothing carries over.
    #[tokio::test]
    async fn the_digest_changes_with_the_scorer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path().to_str().expect("utf8")).expect("open");
        let date: NaiveDate = "2025-03-31".parse().expect("date");
        let now = digest(&storage, date).await.expect("digest");
        assert_eq!(
            now,
            digest_with(&storage, date, SCORER_FINGERPRINT)
                .await
                .expect("digest")
        );
        let other = digest_with(&storage, date, SCORER_FINGERPRINT ^ 1)
            .await
            .expect("digest");
        assert_ne!(now, other);
    }
}
