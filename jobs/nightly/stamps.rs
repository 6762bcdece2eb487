//! Whether a job of a date can be skipped: a stamp per completed job with
//! fingerprints of what it read and what it wrote.
//!
//! A job is skipped when its stamp says it completed on inputs with the same
//! fingerprint and its outputs are still exactly as it left them. The
//! fingerprints digest object listings (path, size, modification time), not
//! contents: reading every byte of the lake to decide to do nothing would
//! cost as much as the work. Any rewrite changes the modification time, so a
//! job that re-runs makes every job after it re-run too.

use bytes::Bytes;
use chrono::NaiveDate;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage::Storage;
use crate::{Error, Result};

/// What a completed job leaves behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub job: String,
    pub date: String,
    pub run_id: String,
    /// Fingerprint of everything the job read (and the program and config it ran with).
    pub inputs: String,
    /// Digest of the listing of everything it wrote.
    pub outputs: String,
    pub finished_at: String,
    /// Findings at or above the job's audit gate (fairness concerns, privacy
    /// failures): a skipped job trips its gate as the run that stamped it did.
    #[serde(default)]
    pub gate_findings: usize,
}

fn stamp_path(job: &str, date: NaiveDate) -> Path {
    Path::from(format!("runs/stamps/{date}/{job}.json"))
}

/// The stamp of `job` for `date`, if it completed once.
pub async fn load(storage: &Storage, job: &str, date: NaiveDate) -> Result<Option<Stamp>> {
    let path = stamp_path(job, date);
    match storage.get_opt(&path).await? {
        None => Ok(None),
        // An unreadable stamp only means the job runs again.
        Some(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
    }
}

/// Records that `job` completed for `date`.
pub async fn save(storage: &Storage, stamp: &Stamp, date: NaiveDate) -> Result<()> {
    let json = serde_json::to_vec_pretty(stamp)
        .map_err(|e| Error::Internal(format!("stamp to JSON: {e}")))?;
    storage
        .put(&stamp_path(&stamp.job, date), Bytes::from(json))
        .await
}

/// Forgets that `job` completed (before it runs again, so a crash mid-job
/// never leaves a stamp that vouches for half-written outputs).
pub async fn clear(storage: &Storage, job: &str, date: NaiveDate) -> Result<()> {
    storage.delete(&stamp_path(job, date)).await
}

/// Where a job reads or writes: a folder (every object under it) or one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    Prefix(Path),
    Object(Path),
}

/// Digest of the listing of `places`: every object's path, size and
/// modification time, in path order. Absent places digest as absent.
pub async fn digest(storage: &Storage, places: &[Place]) -> Result<String> {
    let mut h = Sha256::new();
    let mut sorted = places.to_vec();
    sorted.sort();
    sorted.dedup();
    for place in &sorted {
        let metas = match place {
            Place::Prefix(p) => {
                h.update(b"prefix\0");
                h.update(p.as_ref().as_bytes());
                storage.list(p).await?
            }
            Place::Object(p) => {
                h.update(b"object\0");
                h.update(p.as_ref().as_bytes());
                storage.head_opt(p).await?.into_iter().collect()
            }
        };
        hash_listing(&mut h, &metas);
        h.update(b"\n");
    }
    Ok(hex::encode(&h.finalize()[..16]))
}

/// Adds objects' paths, sizes and modification times to a digest: what
/// changes when any of them is written again.
pub fn hash_listing(h: &mut Sha256, metas: &[object_store::ObjectMeta]) {
    for m in metas {
        h.update(m.location.as_ref().as_bytes());
        h.update(m.size.to_le_bytes());
        h.update(m.last_modified.timestamp_micros().to_le_bytes());
    }
}

/// What a job's fingerprint holds besides its own inputs: the config hash,
/// the pseudonymization key's id (under a new key ingest must run again,
/// or the lake would mix two keys' pseudonyms) and, for every job after
/// ingest, the text of the SQL models (an edited model in `models_dir`, or
/// a rebuilt binary of the same version, must rebuild the marts).
pub fn setup_hash(ctx: &crate::context::JobContext, job: &str) -> crate::Result<String> {
    let mut h = Sha256::new();
    h.update(crate::manifest::config_hash(ctx).as_bytes());
    h.update(b"\0");
    if let Some(key) = &ctx.key {
        h.update(key.id().as_bytes());
    }
    h.update(b"\0");
    if job != "ingest" {
        for (name, sql) in crate::transform::models::sources(ctx.cfg.models_dir.as_deref())? {
            h.update(name.as_bytes());
            h.update(b"\0");
            h.update(sql.as_bytes());
            h.update(b"\0");
        }
    }
    Ok(hex::encode(&h.finalize()[..16]))
}

/// Fingerprint of a job's inputs: the program, the setup ([`setup_hash`]),
/// the job, the date and digests of what it reads.
pub fn fingerprint(config_hash: &str, job: &str, date: NaiveDate, digests: &[String]) -> String {
    let mut h = Sha256::new();
    for part in [
        env!("CARGO_PKG_VERSION"),
        config_hash,
        job,
        &date.to_string(),
    ] {
        h.update(part.as_bytes());
        h.update(b"\0");
    }
    for d in digests {
        h.update(d.as_bytes());
        h.update(b"\0");
    }
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn digests_change_with_any_rewrite_and_stamps_roundtrip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::open(dir.path().to_str().expect("utf8")).expect("open");
        let places = [
            Place::Prefix(Path::from("marts/a/dt=2025-01-02")),
            Place::Object(Path::from("marts/m/dt=2025-01-02/voice.parquet")),
        ];
        let empty = digest(&s, &places).await.expect("digest");
        s.put(
            &Path::from("marts/a/dt=2025-01-02/part-0.parquet"),
            Bytes::from_static(b"x"),
        )
        .await
        .expect("put");
        let one = digest(&s, &places).await.expect("digest");
        assert_ne!(empty, one, "a new file changes the digest");
        assert_eq!(one, digest(&s, &places).await.expect("digest"), "stable");
        std::thread::sleep(std::time::Duration::from_millis(20));
        s.put(
            &Path::from("marts/a/dt=2025-01-02/part-0.parquet"),
            Bytes::from_static(b"x"),
        )
        .await
        .expect("put");
        assert_ne!(
            one,
            digest(&s, &places).await.expect("digest"),
            "a rewrite too"
        );
        s.put(
            &Path::from("marts/b/dt=2025-01-02/part-0.parquet"),
            Bytes::from_static(b"y"),
        )
        .await
        .expect("put");
        let two = digest(&s, &places).await.expect("digest");
        s.put(
            &Path::from("marts/m/dt=2025-01-02/segment.parquet"),
            Bytes::from_static(b"z"),
        )
        .await
        .expect("put");
        assert_eq!(
            two,
            digest(&s, &places).await.expect("digest"),
            "objects outside the places do not count"
        );

        let date = NaiveDate::from_ymd_opt(2025, 1, 2).expect("date");
        assert!(load(&s, "voice", date).await.expect("load").is_none());
        let stamp = Stamp {
            job: "voice".into(),
            date: date.to_string(),
            run_id: "r".into(),
            inputs: "i".into(),
            outputs: two,
            finished_at: "t".into(),
            gate_findings: 0,
        };
        save(&s, &stamp, date).await.expect("save");
        assert_eq!(load(&s, "voice", date).await.expect("load"), Some(stamp));
        clear(&s, "voice", date).await.expect("clear");
        assert!(load(&s, "voice", date).await.expect("load").is_none());
        assert_ne!(
            fingerprint("c", "voice", date, &["a".into()]),
            fingerprint("c", "voice", date, &["b".into()])
        );
    }
}
