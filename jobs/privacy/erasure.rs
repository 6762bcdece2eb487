//! The erasure list and log: which customers asked to be forgotten, and what
//! was removed for them.
//!
//! One JSON record per `attune forget` request under
//! `control/erasure/requests/<request_id>.json`. A record is written (one
//! atomic put) before anything is removed, with status `pending` and the
//! plan of files to rewrite, and replaced by its final form (status `done`,
//! rows removed per table, no file list) when the request completes. So:
//!
//! - the list of erased pseudonyms, which ingest consults, is the union of
//!   the pseudonyms of every record; a customer is kept out from the moment
//!   the request starts, even if it is interrupted;
//! - appending is atomic on every object store (a new object per request,
//!   no read-modify-write of a shared file);
//! - an interrupted request is found by its `pending` status and completed
//!   by the next `attune forget`.
//!
//! JSON rather than Parquet on purpose: after an erasure, no Parquet file of
//! the data root (what analysts and their tools read) holds the pseudonym;
//! this list is the one place it must stay, like `control/consent/`. Records
//! hold pseudonyms and counts, never a raw identifier.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::ingest::pseudonym::{PSEUDONYM_LEN, Pseudonym};
use crate::storage::Storage;
use crate::{Error, Result};

/// Folder of the request records.
pub const REQUESTS_DIR: &str = "control/erasure/requests";

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Started: the pseudonyms are on the erasure list; rows may remain.
    Pending,
    /// Every row found was removed.
    Done,
}

/// One erasure request, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRequest {
    /// `<UTC time>-<8 hex>`: sortable and unique.
    pub request_id: String,
    /// When the request started (RFC 3339, UTC).
    pub requested_at: String,
    /// When it completed; `None` while pending.
    pub completed_at: Option<String>,
    pub status: RequestStatus,
    /// Public id of the key the pseudonyms were computed with.
    pub key_id: String,
    /// The erased customers' pseudonyms, sorted.
    pub pseudonyms: Vec<String>,
    /// `<area>/<table>` → rows removed (planned, while pending).
    pub rows_removed: BTreeMap<String, u64>,
    /// Parquet files rewritten without the customers' rows.
    pub files_rewritten: u64,
    /// Whether the pseudonyms were also taken off `control/consent/` (the
    /// erasure list supersedes the consent list for these customers).
    pub consent_list_updated: bool,
    /// While pending: file → rows to remove, so an interrupted request can be
    /// completed with exact counts. Emptied when done.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plan: BTreeMap<String, u64>,
    /// Set on the record a re-ingest under a new key writes for the
    /// requests of the earlier key (its id): the pseudonyms under the new
    /// key of those customers that the re-ingest met (`ingest::rekey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried_from_key: Option<String>,
}

impl ErasureRequest {
    /// Where the record lives.
    pub fn path(&self) -> Path {
        request_path(&self.request_id)
    }

    /// Writes (or replaces) the record atomically.
    pub async fn save(&self, storage: &Storage) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Internal(format!("erasure record to JSON: {e}")))?;
        storage.put(&self.path(), Bytes::from(json)).await
    }

    /// The pseudonyms as fixed-width values.
    pub fn pseudonym_set(&self) -> Result<HashSet<Pseudonym>> {
        self.pseudonyms
            .iter()
            .map(|p| parse_pseudonym(p, &self.request_id))
            .collect()
    }
}

fn request_path(request_id: &str) -> Path {
    Path::from(format!("{REQUESTS_DIR}/{request_id}.json"))
}

fn parse_pseudonym(p: &str, request_id: &str) -> Result<Pseudonym> {
    let bytes: Pseudonym = p.as_bytes().try_into().map_err(|_| {
        Error::input(
            request_path(request_id).to_string(),
            format!("a pseudonym is not {PSEUDONYM_LEN} characters"),
        )
    })?;
    if !bytes.iter().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::input(
            request_path(request_id).to_string(),
            "a pseudonym is not hexadecimal",
        ));
    }
    Ok(bytes)
}

/// Every erasure request recorded, sorted by request id (oldest first).
pub async fn load_requests(storage: &Storage) -> Result<Vec<ErasureRequest>> {
    let mut out = Vec::new();
    for meta in storage.list(&Path::from(REQUESTS_DIR)).await? {
        if meta.location.extension() != Some("json") {
            continue; // staging files of an interrupted put, editor backups
        }
        let bytes = storage.get_bytes(&meta.location).await?;
        let request: ErasureRequest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::input(meta.location.to_string(), e.to_string()))?;
        out.push(request);
    }
    out.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    Ok(out)
}

/// The erasure list: pseudonyms of every customer who asked to be forgotten
/// (pending requests included). Empty when nobody did.
pub async fn erased_pseudonyms(storage: &Storage) -> Result<HashSet<Pseudonym>> {
    let mut all = HashSet::new();
    for r in load_requests(storage).await? {
        all.extend(r.pseudonym_set()?);
    }
    Ok(all)
}

/// Requests of another key than `lake_key` (the key of the lake's
/// pseudonyms) that no record of `lake_key` carried over, by key id:
/// (key id, requests, distinct customers). Carrying is transitive: after
/// two key changes A→B→C, A's requests carried into B's record are carried
/// on with B's. Empty before anything was ingested.
pub fn uncarried(
    requests: &[ErasureRequest],
    lake_key: Option<&str>,
) -> Result<Vec<(String, u64, u64)>> {
    let Some(lake_key) = lake_key else {
        return Ok(Vec::new());
    };
    let mut carried: HashSet<&str> = HashSet::from([lake_key]);
    loop {
        let more: Vec<&str> = requests
            .iter()
            .filter(|r| carried.contains(r.key_id.as_str()))
            .filter_map(|r| r.carried_from_key.as_deref())
            .filter(|k| !carried.contains(k))
            .collect();
        if more.is_empty() {
            break;
        }
        carried.extend(more);
    }
    let mut by_key: BTreeMap<&str, (u64, HashSet<Pseudonym>)> = BTreeMap::new();
    for r in requests {
        if r.key_id != lake_key && !carried.contains(r.key_id.as_str()) {
            let (n, customers) = by_key.entry(&r.key_id).or_default();
            *n += 1;
            customers.extend(r.pseudonym_set()?);
        }
    }
    Ok(by_key
        .into_iter()
        .map(|(k, (n, c))| (k.to_string(), n, c.len() as u64))
        .collect())
}

/// A new request id: UTC time (sortable) and a fingerprint of the
/// pseudonyms (the same request started twice in one second is one record).
pub fn new_request_id(now: chrono::DateTime<chrono::Utc>, pseudonyms: &[String]) -> String {
    let joined = pseudonyms.join("\n");
    let fp = crate::ingest::pseudonym::fingerprint128(joined.as_bytes());
    format!("{}-{:08x}", now.format("%Y%m%dT%H%M%SZ"), (fp >> 96) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str, pseudonyms: &[&str], status: RequestStatus) -> ErasureRequest {
        ErasureRequest {
            request_id: id.to_string(),
            requested_at: "2025-03-01T00:00:00.000Z".into(),
            completed_at: None,
            status,
            key_id: "abc".into(),
            pseudonyms: pseudonyms.iter().map(|s| s.to_string()).collect(),
            rows_removed: BTreeMap::new(),
            files_rewritten: 0,
            consent_list_updated: false,
            plan: BTreeMap::new(),
            carried_from_key: None,
        }
    }

    #[test]
    fn requests_of_another_key_count_until_a_record_of_the_lake_key_carries_them() {
        let a = "0123456789abcdef0123456789abcdef";
        let b = "fedcba9876543210fedcba9876543210";
        let of_key = |id: &str, key: &str, pseudonyms: &[&str]| ErasureRequest {
            key_id: key.into(),
            ..request(id, pseudonyms, RequestStatus::Done)
        };
        let requests = vec![
            of_key("1", "old", &[a]),
            of_key("2", "old", &[a, b]),
            of_key("3", "older", &[b]),
            of_key("4", "new", &[b]),
        ];
        assert_eq!(
            uncarried(&requests, Some("new")).expect("valid"),
            vec![("old".to_string(), 2, 2), ("older".to_string(), 1, 1)]
        );
        assert!(
            uncarried(&requests, None).expect("valid").is_empty(),
            "nothing ingested yet"
        );
        let mut carried = requests.clone();
        carried.push(ErasureRequest {
            carried_from_key: Some("old".into()),
            ..of_key("5", "new", &[])
        });
        assert_eq!(
            uncarried(&carried, Some("new")).expect("valid"),
            vec![("older".to_string(), 1, 1)]
        );
        // a record of a key not itself carried over does not count
        let mut elsewhere = requests.clone();
        elsewhere.push(ErasureRequest {
            carried_from_key: Some("old".into()),
            ..of_key("6", "unrelated", &[])
        });
        let keys: Vec<String> = (uncarried(&elsewhere, Some("new")).expect("valid"))
            .into_iter()
            .map(|(k, _, _)| k)
            .collect();
        assert_eq!(keys, ["old", "older", "unrelated"]);
        // two key changes, older→old→new: carried on
        let mut chain = requests;
        for (id, key, from) in [("7", "old", "older"), ("8", "new", "old")] {
            chain.push(ErasureRequest {
                carried_from_key: Some(from.into()),
                ..of_key(id, key, &[])
            });
        }
        assert!(uncarried(&chain, Some("new")).expect("valid").is_empty());
    }

    #[tokio::test]
    async fn the_list_is_the_union_of_every_request_pending_or_done() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path().to_str().expect("utf8")).expect("open");
        assert!(erased_pseudonyms(&storage).await.expect("empty").is_empty());
        let a = "0123456789abcdef0123456789abcdef";
        let b = "fedcba9876543210fedcba9876543210";
        request("20250301T000000Z-00000001", &[a], RequestStatus::Done)
            .save(&storage)
            .await
            .expect("save");
        request("20250302T000000Z-00000002", &[a, b], RequestStatus::Pending)
            .save(&storage)
            .await
            .expect("save");
        let list = erased_pseudonyms(&storage).await.expect("load");
        let want: HashSet<Pseudonym> = [a, b]
            .iter()
            .map(|s| s.as_bytes().try_into().expect("32 bytes"))
            .collect();
        assert_eq!(list, want);
        let requests = load_requests(&storage).await.expect("requests");
        assert_eq!(
            requests
                .iter()
                .map(|r| (r.request_id.as_str(), r.status))
                .collect::<Vec<_>>(),
            vec![
                ("20250301T000000Z-00000001", RequestStatus::Done),
                ("20250302T000000Z-00000002", RequestStatus::Pending)
            ]
        );
    }

    #[tokio::test]
    async fn a_malformed_pseudonym_is_an_input_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path().to_str().expect("utf8")).expect("open");
        request("r1", &["not-a-pseudonym"], RequestStatus::Done)
            .save(&storage)
            .await
            .expect("save");
        let err = erased_pseudonyms(&storage).await.expect_err("bad record");
        assert!(err.to_string().contains("control/erasure/requests/r1.json"));
    }

    #[test]
    fn request_ids_sort_by_time_and_differ_by_content() {
        let t1 = chrono::DateTime::parse_from_rfc3339("2025-03-01T10:00:00Z")
            .expect("time")
            .to_utc();
        let t2 = chrono::DateTime::parse_from_rfc3339("2025-03-02T09:00:00Z")
            .expect("time")
            .to_utc();
        let a = new_request_id(t1, &["x".into()]);
        let b = new_request_id(t1, &["y".into()]);
        assert_ne!(a, b);
        assert_eq!(a, new_request_id(t1, &["x".into()]));
        assert!(a < new_request_id(t2, &["x".into()]));
        assert!(a.starts_with("20250301T100000Z-"));
    }
}
