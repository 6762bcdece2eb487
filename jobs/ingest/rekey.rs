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

use crate::config::Key;
use crate::ingest::pseudonym::{Pseudonym, Pseudonymizer};
use crate::privacy::erasure::{self, ErasureRequest, RequestStatus};
use crate::storage::Storage;
use crate::{Error, Result};

/// The earlier key's erasure list, and what this run found of it and of
/// the consent list.
pub struct EarlierKey {
    previous: Key,
    /// Public id of the earlier key.
    previous_id: String,
    /// Pseudonyms under the earlier key of every customer its requests erased.
    erased: HashSet<Pseudonym>,
    /// Whether the earlier key has any request record (one carrying an
    /// even earlier key's over may list nobody, and is carried on all the
    /// same, or check 10 would warn for good).
    has_requests: bool,
    /// Whether a record of the run's key already carries the earlier key's
    /// requests (an earlier re-ingest): another is written only for
    /// customers met anew.
    carried_before: bool,
    /// Whether an ingest under the run's key started before this run: only
    /// then can rows of carried customers be stored under it already.
    key_used_before: bool,
    /// Their pseudonyms under this run's key, as rows of theirs are met.
    found: Mutex<BTreeSet<Pseudonym>>,
    /// (earlier pseudonym, pseudonym now) of the customers met who were on
    /// the consent list under the earlier key, not yet carried.
    opted_out: Mutex<BTreeMap<Pseudonym, Pseudonym>>,
}

impl EarlierKey {
    /// The earlier key's requests, when `previous` is given and is not the
    /// run's own key. It must be the key the lake was ingested under before
    /// this one (the newest other key of a successful ingest): a typo, or a
    /// key of two changes ago, would recognize nobody on the lists, silently.
    pub async fn load(
        storage: &Storage,
        key: &Key,
        previous: Option<&Key>,
        previous_env: &str,
    ) -> Result<Option<EarlierKey>> {
        let Some(previous) = previous.filter(|p| p.id() != key.id()) else {
            return Ok(None);
        };
        let previous_id = previous.id();
        let attempts = crate::nightly::ingest_attempts(storage).await?;
        let before = attempts
            .iter()
            .find(|(_, used, ok)| *ok && *used != key.id())
            .map(|(_, used, _)| used.as_str());
        if before != Some(previous_id.as_str()) {
            return Err(Error::Policy(format!(
                "${previous_env} holds key id {previous_id}, but the lake was ingested before under {}; set it to that key, or unset it",
                before.map_or("no other key".to_string(), |k| format!("key id {k}"))
            )));
        }
        let key_used_before = attempts.iter().any(|(_, used, _)| *used == key.id());
        let mut erased = HashSet::new();
        let (mut has_requests, mut carried_before) = (false, false);
        for r in erasure::load_requests(storage).await? {
            if r.key_id == previous_id {
                has_requests = true;
                erased.extend(r.pseudonym_set()?);
            }
            carried_before |=
                r.key_id == key.id() && r.carried_from_key.as_deref() == Some(&previous_id);
        }
        Ok(Some(EarlierKey {
            previous: previous.clone(),
            previous_id,
            erased,
            has_requests,
            carried_before,
            key_used_before,
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

    /// Public id of the earlier key.
    pub fn previous_id(&self) -> &str {
        &self.previous_id
    }

    /// Whether an ingest under the run's key started before this run, so
    /// rows of carried customers may be stored under it already.
    pub fn key_used_before(&self) -> bool {
        self.key_used_before
    }

    /// The pseudonyms under the run's key of the erased customers met.
    pub fn erased_met(&self) -> BTreeSet<Pseudonym> {
        self.found.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Erased customers of the earlier key not met in this run's exports:
    /// recognized only with the earlier key if they are exported again.
    pub fn erased_not_met(&self) -> usize {
        self.erased
            .len()
            .saturating_sub(self.found.lock().unwrap_or_else(|e| e.into_inner()).len())
    }

    /// Moves the consent entries of the customers met since the last call
    /// who were listed under the earlier key to their new pseudonyms
    /// ([`ConsentList::carry`](super::consent::ConsentList::carry)), adding
    /// those to `carried`.
    pub fn carry_opted_out(
        &self,
        list: &mut super::consent::ConsentList,
        carried: &mut HashSet<Pseudonym>,
    ) {
        let met = std::mem::take(&mut *self.opted_out.lock().unwrap_or_else(|e| e.into_inner()));
        for (then, now) in met {
            if list.carry(&then, now) {
                carried.insert(now);
            }
        }
    }

    /// Writes the request record of the run's key that carries the earlier
    /// key's requests over: the new pseudonyms of the erased customers met
    /// in this run's exports, so ingest keeps them out without the earlier
    /// key from now on. Nothing when the earlier key has no requests, or an
    /// earlier re-ingest carried them and none was met now.
    pub async fn carry_over(&self, storage: &Storage, key: &Key) -> Result<Option<ErasureRequest>> {
        let pseudonyms: Vec<String> = (self.found.lock().unwrap_or_else(|e| e.into_inner()))
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        if !self.has_requests || (self.carried_before && pseudonyms.is_empty()) {
            return Ok(None);
        }
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
        Ok(Some(request))
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
    /// on `listed`, the consent list as it stands, under the earlier key;
    /// if so the pair is remembered, for the list to carry.
    pub fn opted_out<S: BuildHasher>(
        &mut self,
        raw: &[u8],
        now: Pseudonym,
        listed: &HashSet<Pseudonym, S>,
    ) -> bool {
        if listed.is_empty() {
            return false;
        }
        let earlier = self.earlier.pseudonym(raw);
        if !listed.contains(&earlier) {
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

    /// A run that ingested under `key`, as the nightly records it.
    async fn ingested_under(storage: &Storage, key: &Key, run_id: &str) {
        crate::manifest::RunManifest {
            run_id: run_id.into(),
            attune_version: "test".into(),
            command: "nightly".into(),
            config_hash: String::new(),
            key_id: Some(key.id()),
            demo_key: false,
            dates: vec!["2025-03-01".into()],
            started_at: format!("2025-03-01T02:00:0{}.000Z", run_id.len() % 10),
            finished_at: None,
            status: "ok".into(),
            jobs: vec![crate::manifest::JobRecord {
                job: "ingest".into(),
                status: "ok".into(),
                started_at: "2025-03-01T02:00:00.000Z".into(),
                seconds: 1.0,
                rows_in: 1,
                rows_out: 1,
                peak_rss_bytes: None,
                job_peak_rss_bytes: None,
                job_peak_in_use_bytes: None,
                warnings: Vec::new(),
                error: None,
                details: serde_json::Value::Null,
            }],
        }
        .save(storage)
        .await
        .expect("manifest");
    }

    #[tokio::test]
    async fn customers_erased_under_the_old_key_are_recognized_and_carried_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path().to_str().expect("utf8")).expect("root");
        let (old, new) = (key("the-old-key-0123456789"), key("the-new-key-0123456789"));
        let env = "ATTUNE_PREVIOUS_KEY";
        erased_under(&storage, &old, &["C1", "C2"]).await;
        // the same key twice, or none: nothing to recognize
        for previous in [Some(&new), None] {
            let loaded = EarlierKey::load(&storage, &new, previous, env)
                .await
                .expect("load");
            assert!(loaded.is_none());
        }
        // a key the lake was not ingested under just before: refused (a
        // typo, or the key of two changes ago, would recognize nobody)
        let refused = |previous: Key| {
            let (storage, new) = (storage.clone(), new.clone());
            async move {
                EarlierKey::load(&storage, &new, Some(&previous), env)
                    .await
                    .err()
                    .expect("refused")
                    .to_string()
            }
        };
        assert!(refused(old.clone()).await.contains("no other key"));
        let older = key("an-even-older-key-0123456789");
        // started_at orders them: the second is the newer
        ingested_under(&storage, &older, "20250301T020000Z-00000001").await;
        ingested_under(&storage, &old, "20250301T020000Z-000000002").await;
        let err = refused(older).await;
        assert!(
            err.contains(&format!("ingested before under key id {}", old.id())),
            "{err}"
        );
        let list = EarlierKey::load(&storage, &new, Some(&old), env)
            .await
            .expect("load")
            .expect("old key given");
        let mut worker = list.recognizer();
        // " C1" is the customer C1, as everywhere in ingest (trim_id)
        for (raw, erased) in [("C1", true), (" C1", true), ("C3", false), ("C1", true)] {
            let now = pseudonym(&new, raw);
            assert_eq!(worker.erased(raw.as_bytes(), now), erased, "{raw:?}");
        }
        assert_eq!(list.erased_met().len(), 1, "C1 once");
        assert_eq!(list.erased_not_met(), 1, "C2 never met");
        let record = list
            .carry_over(&storage, &new)
            .await
            .expect("carry over")
            .expect("a record");
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
        // a later run with the old key still set, meeting nobody: no new record
        let again = EarlierKey::load(&storage, &new, Some(&old), env)
            .await
            .expect("load")
            .expect("old key given");
        assert!(
            again
                .carry_over(&storage, &new)
                .await
                .expect("carry")
                .is_none()
        );
    }

    #[test]
    fn a_customer_listed_under_the_old_key_is_listed_anew_with_the_later_withdrawal() {
        use crate::ingest::consent::{ConsentList, Decision};
        let (then, now, other) = ([b'a'; 32], [b'b'; 32], [b'c'; 32]);
        let said = |consents, at, day| Decision {
            consents,
            at: Some(at),
            day,
        };
        let mut list = ConsentList::default();
        list.apply(then, said(false, 100, 10));
        assert!(!list.carry(&other, now), "not listed: nothing moves");
        assert!(list.carry(&then, now));
        assert!(!list.pseudonyms.contains(&then) && list.pseudonyms.contains(&now));
        // an older "yes" does not undo the carried withdrawal, a newer one does
        list.apply(now, said(true, 50, 5));
        assert!(list.pseudonyms.contains(&now));
        list.apply(now, said(true, 150, 15));
        assert!(!list.pseudonyms.contains(&now));
        // a later withdrawal already listed under the new key stays
        let mut list = ConsentList::default();
        list.apply(then, said(false, 100, 10));
        list.apply(now, said(false, 200, 20));
        assert!(list.carry(&then, now));
        list.apply(now, said(true, 150, 15));
        assert!(
            list.pseudonyms.contains(&now),
            "the withdrawal at 200 stands"
        );
    }
}
