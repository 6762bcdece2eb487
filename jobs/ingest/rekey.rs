//! Customers erased or opted out under an earlier key, recognized while
//! the lake is re-ingested under a new one.
//!
//! The erasure and consent lists hold pseudonyms, never customer numbers,
//! and a pseudonym is of one key: under a new key an erased customer's rows
//! in the landing exports would get a new pseudonym the list does not hold,
//! and come back, and so would the later rows of a customer who declined
//! analytics in an export retention has since deleted. With the old key in
//! `[pseudonymization] previous_key_env` (default `ATTUNE_PREVIOUS_KEY`)
//! for the re-ingest, each distinct identifier is also pseudonymized under
//! it:
//!
//! - a customer on the erasure list under the old key is kept out (counted
//!   as `erased`), and their pseudonym under the new key goes into a
//!   request record of the new key marked as carried over from the old one
//!   (`carried_from_key`), so later nights, without the old key, keep them
//!   out too. Privacy check 10 warns about requests of another key than the
//!   lake's that no record carried over;
//! - a customer on the consent list under the old key (the list as the run
//!   found it) is kept out (counted as `consent_excluded`), and the list
//!   gets their new pseudonym with the same withdrawal.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::BuildHasher;
use std::sync::Mutex;

use crate::Result;
use crate::config::Key;
use crate::ingest::pseudonym::{Pseudonym, Pseudonymizer};
use crate::privacy::erasure::{self, ErasureRequest, RequestStatus};
use crate::storage::Storage;

/// The earlier key's erasure list, and what this run found of it and of
/// the consent list.
pub struct EarlierKey {
    previous: Key,
    /// Public id of the earlier key.
    previous_id: String,
    /// Pseudonyms under the earlier key of every customer its requests erased.
    erased: HashSet<Pseudonym>,
    /// Their pseudonyms under this run's key, as rows of theirs are met.
    found: Mutex<BTreeSet<Pseudonym>>,
    /// (earlier pseudonym, pseudonym now) of the customers met who were on
    /// the consent list under the earlier key.
    opted_out: Mutex<BTreeMap<Pseudonym, Pseudonym>>,
}

impl EarlierKey {
    /// The requests made under `previous` (none when it is not given, or is
    /// the run's own key): `None` when there is nothing to recognize.
    pub async fn load(
        storage: &Storage,
        key: &Key,
        previous: Option<&Key>,
    ) -> Result<Option<EarlierKey>> {
        let Some(previous) = previous.filter(|p| p.id() != key.id()) else {
            return Ok(None);
        };
        let previous_id = previous.id();
        let mut erased = HashSet::new();
        for r in erasure::load_requests(storage).await? {
            if r.key_id == previous_id {
                erased.extend(r.pseudonym_set()?);
            }
        }
        Ok(Some(EarlierKey {
            previous: previous.clone(),
            previous_id,
            erased,
            found: Mutex::new(BTreeSet::new()),
            opted_out: Mutex::new(BTreeMap::new()),
        }))
    }

    /// One worker's recognizer, with its own pseudonymizer under the
    /// earlier key (which caches the identifiers it has seen, as the run
    /// key's does).
    pub fn recognizer(&self) -> Recognizer<'_> {
        Recognizer {
            list: self,
            earlier: Pseudonymizer::new(&self.previous),
        }
    }

    /// Writes the request record of the run's key that carries the earlier
    /// key's requests over: the new pseudonyms of the erased customers met
    /// in this run's exports (none when none was), so ingest keeps them out
    /// without the earlier key from now on. Returns the record.
    pub async fn carry_over(&self, storage: &Storage, key: &Key) -> Result<ErasureRequest> {
        let pseudonyms: Vec<String> = (self.found.lock().unwrap_or_else(|e| e.into_inner()))
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        let now = chrono::Utc::now();
        let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut seed = pseudonyms.clone();
        seed.push(format!("carried from {}", self.previous_id));
        let request = ErasureRequest {
            request_id: erasure::new_request_id(now, &seed),
            requested_at: at.clone(),
            completed_at: Some(at),
            status: RequestStatus::Done,
            key_id: key.id(),
            pseudonyms,
            rows_removed: Default::default(),
            files_rewritten: 0,
            consent_list_updated: false,
            plan: Default::default(),
            carried_from_key: Some(self.previous_id.clone()),
        };
        request.save(storage).await?;
        Ok(request)
    }

    /// Public id of the earlier key.
    pub fn previous_id(&self) -> &str {
        &self.previous_id
    }

    /// Whether the earlier key has any request to carry over.
    pub fn has_requests(&self) -> bool {
        !self.erased.is_empty()
    }

    /// (earlier pseudonym, pseudonym now) of every customer met who was on
    /// the consent list under the earlier key, for
    /// [`ConsentList::carry`](super::consent::ConsentList::carry).
    pub fn opted_out_met(&self) -> Vec<(Pseudonym, Pseudonym)> {
        let met = self.opted_out.lock().unwrap_or_else(|e| e.into_inner());
        met.iter().map(|(a, b)| (*a, *b)).collect()
    }

    /// Customers of the earlier key's requests met in this run so far.
    pub fn found(&self) -> usize {
        self.found.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// See [`EarlierKey::recognizer`].
pub struct Recognizer<'a> {
    list: &'a EarlierKey,
    earlier: Pseudonymizer,
}

impl Recognizer<'_> {
    /// Whether the customer `raw` (pseudonym `now` under the run's key) was
    /// erased under the earlier key; if so `now` is remembered for the
    /// record [`EarlierKey::carry_over`] writes.
    pub fn erased(&mut self, raw: &[u8], now: Pseudonym) -> bool {
        let list = self.list;
        if list.erased.is_empty() || !list.erased.contains(&self.earlier.pseudonym(raw)) {
            return false;
        }
        list.found
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(now);
        true
    }

    /// Whether the customer `raw` (pseudonym `now` under the run's key) is
    /// on `opted_out`, the consent list as the run found it, under the
    /// earlier key; if so the pair is remembered for the list.
    pub fn opted_out<S: BuildHasher>(
        &mut self,
        raw: &[u8],
        now: Pseudonym,
        opted_out: &HashSet<Pseudonym, S>,
    ) -> bool {
        if opted_out.is_empty() {
            return false;
        }
        let earlier = self.earlier.pseudonym(raw);
        if !opted_out.contains(&earlier) {
            return false;
        }
        self.list
            .opted_out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(earlier, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Key {
        Key::new(text.as_bytes().to_vec())
    }

    fn pseudonym(key: &Key, raw: &str) -> Pseudonym {
        Pseudonymizer::new(key).pseudonym(raw.as_bytes())
    }

    async fn erased_under(storage: &Storage, key: &Key, raws: &[&str]) {
        let mut ids: Vec<String> = raws
            .iter()
            .map(|r| String::from_utf8_lossy(&pseudonym(key, r)).into_owned())
            .collect();
        ids.sort();
        ErasureRequest {
            request_id: erasure::new_request_id(chrono::Utc::now(), &ids),
            requested_at: "2025-03-01T00:00:00.000Z".into(),
            completed_at: None,
            status: RequestStatus::Done,
            key_id: key.id(),
            pseudonyms: ids,
            rows_removed: Default::default(),
            files_rewritten: 0,
            consent_list_updated: false,
            plan: Default::default(),
            carried_from_key: None,
        }
        .save(storage)
        .await
        .expect("save");
    }

    #[tokio::test]
    async fn customers_erased_under_the_old_key_are_recognized_and_carried_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path().to_str().expect("utf8")).expect("root");
        let (old, new) = (key("the-old-key-0123456789"), key("the-new-key-0123456789"));
        erased_under(&storage, &old, &["C1", "C2"]).await;
        // the same key twice, or none: nothing to recognize
        assert!(
            EarlierKey::load(&storage, &new, Some(&new))
                .await
                .expect("load")
                .is_none()
        );
        assert!(
            EarlierKey::load(&storage, &new, None)
                .await
                .expect("load")
                .is_none()
        );
        let list = EarlierKey::load(&storage, &new, Some(&old))
            .await
            .expect("load")
            .expect("old key given");
        assert!(list.has_requests());
        let mut worker = list.recognizer();
        // " C1" is the customer C1, as everywhere in ingest (trim_id)
        for (raw, erased) in [("C1", true), (" C1", true), ("C3", false), ("C1", true)] {
            let now = pseudonym(&new, raw);
            assert_eq!(worker.erased(raw.as_bytes(), now), erased, "{raw:?}");
        }
        assert_eq!(list.found(), 1, "C1 once; C2 never met");
        let record = list.carry_over(&storage, &new).await.expect("carry over");
        assert_eq!(
            (record.key_id.as_str(), record.carried_from_key.as_deref()),
            (new.id().as_str(), Some(old.id().as_str()))
        );
        let c1 = String::from_utf8_lossy(&pseudonym(&new, "C1")).into_owned();
        assert_eq!(record.pseudonyms, vec![c1]);
        // on the list ingest reads from now on, under the new key
        let listed = erasure::erased_pseudonyms(&storage).await.expect("list");
        assert!(listed.contains(&pseudonym(&new, "C1")));
        assert!(!listed.contains(&pseudonym(&new, "C2")));
    }
}
