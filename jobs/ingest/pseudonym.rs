//! Keyed pseudonyms for customer identifiers.
//!
//! HMAC-SHA256, not a bare hash: customer numbers and emails are guessable,
//! and an unkeyed hash of a guessable value is a lookup table away from the
//! value. The same key gives the same pseudonym every night, so a customer's
//! history joins up; another key gives unrelated pseudonyms.

use std::hash::Hasher;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use twox_hash::{XxHash3_128, XxHash64};

use crate::config::Key;
use crate::customer_index::U128Table;

/// Hex characters in a pseudonym (128 bits: collisions are negligible even
/// for billions of customers, and half the width of the full MAC keeps the
/// lake smaller).
pub const PSEUDONYM_LEN: usize = 32;

/// A pseudonym as ASCII hex.
pub type Pseudonym = [u8; PSEUDONYM_LEN];

/// The free slots' value in the cache: not hex, so never a pseudonym.
const FREE: Pseudonym = [0; PSEUDONYM_LEN];

/// Beyond this many cached identifiers the cache starts afresh, so memory
/// stays bounded on any input.
const CACHE_LIMIT: usize = 4_000_000;

/// An identifier without the whitespace around it, as validation trims
/// every non-text value: exports pad ids inconsistently (" C1", a
/// spreadsheet's no-break space after "C1"), and each is the customer "C1".
/// The pseudonym, the erasure check, the duplicate key and the leak scan's
/// fingerprints of landing ids all go through here, so they agree.
pub fn trim_id(raw: &[u8]) -> &[u8] {
    let ascii = raw.trim_ascii();
    let unicode_edge =
        ascii.first().is_some_and(|b| !b.is_ascii()) || ascii.last().is_some_and(|b| !b.is_ascii());
    if !unicode_edge {
        // the common case, without a UTF-8 check of the whole id (1% of a
        // backfill's CPU in `perf`: every id is trimmed two or three times)
        return ascii;
    }
    match std::str::from_utf8(ascii) {
        Ok(s) => s.trim().as_bytes(),
        Err(_) => ascii,
    }
}

/// Pseudonyms computed once and shared, read-only, by every worker after
/// (see [`Pseudonymizer::share`]).
pub type Known = std::sync::Arc<U128Table<Pseudonym>>;

/// Computes pseudonyms, each distinct identifier once.
#[derive(Clone)]
pub struct Pseudonymizer {
    keyed: Hmac<Sha256>,
    /// Pseudonyms looked up before the worker's own cache: every worker's
    /// cache grew to every customer, each computing every customer's
    /// pseudonym again (2.5 million HMACs for a million customers in a
    /// backfill) in a table of its own (96 MiB each).
    known: Option<Known>,
    /// Pseudonyms by the fingerprint of their identifier, in a table whose
    /// slots ingest asks for rows ahead ([`Pseudonymizer::prefetch`]): a
    /// standard map's lookups were 13% of ingest's CPU time in `perf`, most
    /// of it waiting on memory. No pseudonym is all zero bytes (they are
    /// hex), which marks a free slot.
    cache: U128Table<Pseudonym>,
    computed: u64,
}

impl Pseudonymizer {
    /// A pseudonymizer under `key`.
    pub fn new(key: &Key) -> Pseudonymizer {
        Pseudonymizer {
            keyed: Hmac::<Sha256>::new_from_slice(key.bytes())
                .expect("HMAC accepts keys of any length"),
            known: None,
            cache: U128Table::new(FREE),
            computed: 0,
        }
    }

    /// A pseudonymizer under `key` that looks up `known` first.
    pub fn with_known(key: &Key, known: Known) -> Pseudonymizer {
        Pseudonymizer {
            known: Some(known),
            ..Pseudonymizer::new(key)
        }
    }

    /// Whether this instance looks up `known` first.
    pub fn knows(&self, known: &Known) -> bool {
        self.known
            .as_ref()
            .is_some_and(|k| std::sync::Arc::ptr_eq(k, known))
    }

    /// Every pseudonym the instances in `all` know, in one table to share:
    /// the largest cache taken whole, the others' entries added to it.
    /// None when `all` is empty.
    pub fn share(all: Vec<Pseudonymizer>) -> Option<Known> {
        let mut caches: Vec<U128Table<Pseudonym>> = all.into_iter().map(|p| p.cache).collect();
        let largest = (0..caches.len()).max_by_key(|&i| caches[i].len())?;
        let mut known = caches.swap_remove(largest);
        for (k, p) in caches.into_iter().flat_map(U128Table::into_entries) {
            known.get_or_insert_with(k, || p);
        }
        Some(std::sync::Arc::new(known))
    }

    /// The pseudonym of a raw identifier (surrounding whitespace ignored, see
    /// [`trim_id`]).
    pub fn pseudonym(&mut self, raw: &[u8]) -> Pseudonym {
        let raw = trim_id(raw);
        let fingerprint = key_fingerprint(raw);
        if let Some(p) = (self.known.as_ref()).and_then(|k| k.get(fingerprint)) {
            return *p;
        }
        if let Some(p) = self.cache.get(fingerprint) {
            return *p;
        }
        if self.cache.len() >= CACHE_LIMIT {
            self.cache = U128Table::new(FREE);
        }
        let p = self.compute(raw);
        self.cache.get_or_insert_with(fingerprint, || p)
    }

    /// Asks the CPU for the cache slot of a raw identifier that
    /// [`pseudonym`](Self::pseudonym) will be asked for a few rows on.
    /// With a shared table, only its slot: an identifier it lacks is rare.
    pub fn prefetch(&self, raw: &[u8]) {
        let fingerprint = key_fingerprint(trim_id(raw));
        self.known
            .as_deref()
            .unwrap_or(&self.cache)
            .prefetch(fingerprint);
    }

    fn compute(&mut self, raw: &[u8]) -> Pseudonym {
        self.computed += 1;
        // Cloning the keyed state skips re-hashing the key for every id.
        let mut mac = self.keyed.clone();
        mac.update(raw);
        let digest = mac.finalize().into_bytes();
        let mut out = [0u8; PSEUDONYM_LEN];
        hex::encode_to_slice(&digest[..PSEUDONYM_LEN / 2], &mut out)
            .expect("buffer is exactly twice the bytes");
        out
    }

    /// How many HMACs were computed (distinct identifiers seen by this
    /// instance, not in its shared table) since this was last asked.
    pub fn take_computed(&mut self) -> u64 {
        std::mem::take(&mut self.computed)
    }
}

/// A 128-bit fingerprint of bytes from two differently seeded xxHash64s:
/// exact-set semantics (dedupe, caches) without storing the bytes, with a
/// collision chance far below one in a trillion at a billion keys. Not
/// SipHash: ingest fingerprints every identifier and key of every row, and
/// two SipHash passes were 3% of its CPU time in `perf`. Fingerprints live
/// in memory only (a remote root's lock file and an erasure request's id
/// are named after one).
pub fn fingerprint128(bytes: &[u8]) -> u128 {
    let a = XxHash64::oneshot(0x6174_7475_6e65_0001, bytes);
    let b = XxHash64::oneshot(0xfedc_ba98_7654_3210, bytes);
    (u128::from(a) << 64) | u128::from(b)
}

/// A 128-bit fingerprint for ingest's own in-memory sets, which nothing
/// keeps past the run: the pseudonym cache and the duplicate keys seen.
/// One XXH3-128 pass, where [`fingerprint128`] (whose values the privacy
/// scan's cache and erasure requests keep, and must stay) makes two
/// XXH64 passes; every row fingerprints its identifier twice (prefetch,
/// lookup) and its key once. The same exact-set odds: 128 bits, a
/// collision chance far below one in a trillion at a billion keys.
pub fn key_fingerprint(bytes: &[u8]) -> u128 {
    XxHash3_128::oneshot_with_seed(0x6174_7475_6e65_0002, bytes)
}

/// Hasher for keys that are already uniformly distributed fingerprints.
#[derive(Default, Clone, Copy)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64 ^ (v >> 64) as u64;
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

#[cfg(test)]
mod tests {
    /// Reference: the Python `xxhash` package (3.x, the C library's
    /// XXH3-128), `xxh3_128_intdigest(b, seed=0x617474756e650002)`,
    /// computed outside attune: short ids, a dedupe key with its separator,
    /// and an id past the 16-byte short-input path.
    #[test]
    fn key_fingerprints_are_xxh3_128_with_attunes_seed() {
        for (bytes, want) in [
            (&b""[..], 0xec292a2480d602fc9c656d1421468852_u128),
            (b"C0407568", 0xb97064aa83fa720e13de9eb3aac35c5a),
            (b"O004082128\x1f", 0x439089d554255de01e36bfcec1bfa61a),
            (
                b"a-much-longer-identifier-with-more-than-sixteen-bytes@example.org",
                0x3baa773c2bf0b540cfb94c5d4f4cb6da,
            ),
        ] {
            assert_eq!(super::key_fingerprint(bytes), want, "{bytes:?}");
        }
    }

    #[test]
    fn identifiers_are_trimmed_of_ascii_and_unicode_spaces_alike() {
        for raw in ["C1", " C1\t", "C1\u{a0}", "\u{2003}C1 \u{3000}"] {
            assert_eq!(trim_id(raw.as_bytes()), b"C1", "{raw:?}");
        }
        assert_eq!(trim_id(b"C\xC3 1"), b"C\xC3 1", "not UTF-8: left as it is");
        assert_eq!(trim_id("\u{a0}".as_bytes()), b"");
        assert_eq!(trim_id("Zo\u{eb}".as_bytes()), "Zo\u{eb}".as_bytes());
    }

    use super::*;

    fn key(s: &str) -> Key {
        Key::new(s.as_bytes().to_vec())
    }

    #[test]
    fn stable_across_instances_and_different_under_another_key() {
        let mut a = Pseudonymizer::new(&key("first key 0123456789"));
        let mut a2 = Pseudonymizer::new(&key("first key 0123456789"));
        let mut b = Pseudonymizer::new(&key("second key 012345678"));
        let p = a.pseudonym(b"C0001234");
        assert_eq!(p, a2.pseudonym(b"C0001234"));
        assert_ne!(p, b.pseudonym(b"C0001234"));
        assert_ne!(p, a.pseudonym(b"C0001235"));
        assert_eq!(p, a.pseudonym(b"  C0001234 "), "padding is ignored");
        assert!(p.iter().all(|c| c.is_ascii_hexdigit()));
    }

    /// Reference: RFC 4231 test case 2 (key "Jefe"), truncated to 128 bits.
    #[test]
    fn matches_rfc4231_hmac_sha256() {
        let mut p = Pseudonymizer::new(&key("Jefe"));
        let got = p.pseudonym(b"what do ya want for nothing?");
        assert_eq!(&got, b"5bdcc146bf60754e6a042426089575c7");
    }

    #[test]
    fn each_distinct_identifier_is_computed_once() {
        let mut p = Pseudonymizer::new(&key("a key of some length"));
        for _ in 0..100 {
            for id in [b"A".as_slice(), b"B", b"C"] {
                p.pseudonym(id);
            }
        }
        assert_eq!(p.take_computed(), 3);
    }

    /// Reference: the pseudonyms of pseudonymizers without a shared table.
    /// Shared, every identifier either instance met is computed no more,
    /// the largest cache's and the other's alike; a new one is computed
    /// once, in the worker's own cache.
    #[test]
    fn a_shared_table_serves_every_worker_the_same_pseudonyms() {
        let k = key("a key of some length");
        let ids: Vec<String> = (0..5_000).map(|i| format!("C{i:07}")).collect();
        let (mut a, mut b) = (Pseudonymizer::new(&k), Pseudonymizer::new(&k));
        for id in &ids[..4_000] {
            a.pseudonym(id.as_bytes());
        }
        for id in &ids[3_000..4_500] {
            b.pseudonym(id.as_bytes());
        }
        assert!(Pseudonymizer::share(Vec::new()).is_none());
        let known = Pseudonymizer::share(vec![b, a]).expect("two caches");
        assert_eq!(known.len(), 4_500);
        let mut worker = Pseudonymizer::with_known(&k, known.clone());
        assert!(worker.knows(&known));
        assert!(!Pseudonymizer::new(&k).knows(&known));
        for id in ids.iter().chain(&ids) {
            worker.prefetch(id.as_bytes());
            let want = Pseudonymizer::new(&k).pseudonym(id.as_bytes());
            assert_eq!(worker.pseudonym(id.as_bytes()), want, "{id}");
        }
        assert_eq!(worker.take_computed(), 500, "only the ids no one met");
        assert_eq!(worker.take_computed(), 0, "counted once");
    }

    /// Reference: each pseudonym computed afresh by a new pseudonymizer,
    /// for enough ids that the cache grows many times over.
    #[test]
    fn the_cache_keeps_every_pseudonym_through_growth() {
        let k = key("a key of some length");
        let mut p = Pseudonymizer::new(&k);
        let ids: Vec<String> = (0..20_000).map(|i| format!("C{i:07}")).collect();
        let first: Vec<Pseudonym> = ids.iter().map(|id| p.pseudonym(id.as_bytes())).collect();
        assert_eq!(p.cache.len(), ids.len());
        for (id, got) in ids.iter().zip(&first).step_by(997) {
            assert_eq!(*got, Pseudonymizer::new(&k).pseudonym(id.as_bytes()));
        }
        for (id, got) in ids.iter().zip(&first).rev() {
            p.prefetch(id.as_bytes());
            assert_eq!(p.pseudonym(id.as_bytes()), *got);
        }
        assert_eq!(p.take_computed(), ids.len() as u64);
    }
}
