//! Keyed pseudonyms for customer identifiers.
//!
//! HMAC-SHA256, not a bare hash: customer numbers and emails are guessable,
//! and an unkeyed hash of a guessable value is a lookup table away from the
//! value. The same key gives the same pseudonym every night, so a customer's
//! history joins up; another key gives unrelated pseudonyms.

use std::hash::Hasher;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use twox_hash::XxHash64;

use crate::config::Key;
use crate::customer_index::prefetch;

/// Hex characters in a pseudonym (128 bits: collisions are negligible even
/// for billions of customers, and half the width of the full MAC keeps the
/// lake smaller).
pub const PSEUDONYM_LEN: usize = 32;

/// A pseudonym as ASCII hex.
pub type Pseudonym = [u8; PSEUDONYM_LEN];

/// Beyond this many cached identifiers the cache starts afresh, so memory
/// stays bounded on any input.
const CACHE_LIMIT: usize = 4_000_000;

/// Computes pseudonyms, each distinct identifier once.
#[derive(Clone)]
pub struct Pseudonymizer {
    keyed: Hmac<Sha256>,
    cache: Cache,
    computed: u64,
}

impl Pseudonymizer {
    /// A pseudonymizer under `key`.
    pub fn new(key: &Key) -> Pseudonymizer {
        Pseudonymizer {
            keyed: Hmac::<Sha256>::new_from_slice(key.bytes())
                .expect("HMAC accepts keys of any length"),
            cache: Cache::new(),
            computed: 0,
        }
    }

    /// The pseudonym of a raw identifier (surrounding whitespace ignored:
    /// exports pad ids inconsistently, and " C1" is the customer "C1").
    pub fn pseudonym(&mut self, raw: &[u8]) -> Pseudonym {
        let raw = raw.trim_ascii();
        let fingerprint = fingerprint128(raw);
        if let Some(p) = self.cache.get(fingerprint) {
            return *p;
        }
        if self.cache.len >= CACHE_LIMIT {
            self.cache = Cache::new();
        }
        let p = self.compute(raw);
        self.cache.insert(fingerprint, p);
        p
    }

    /// Asks the CPU for the cache slot of a raw identifier that
    /// [`pseudonym`](Self::pseudonym) will be asked for a few rows on.
    pub fn prefetch(&self, raw: &[u8]) {
        self.cache.prefetch(fingerprint128(raw.trim_ascii()));
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

    /// How many HMACs were computed (distinct identifiers seen by this instance).
    pub fn computed(&self) -> u64 {
        self.computed
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

/// Pseudonyms by the fingerprint of their identifier, in open addressing
/// at most half full. Ingest looks up every row's customer in a table of a
/// million or more, far larger than the CPU caches: with a known slot per
/// fingerprint it can ask for the slots of the rows ahead
/// ([`Pseudonymizer::prefetch`]) and wait for several misses at once (a
/// standard map's lookups were 13% of ingest's CPU time in `perf`, most of
/// it waiting on memory).
#[derive(Clone)]
struct Cache {
    /// (fingerprint, pseudonym); fingerprint 0 marks a free slot, so an
    /// identifier whose fingerprint is 0 is never cached.
    slots: Vec<(u128, Pseudonym)>,
    len: usize,
}

impl Cache {
    fn new() -> Cache {
        Cache {
            slots: vec![(0, [0; PSEUDONYM_LEN]); 1024],
            len: 0,
        }
    }

    /// The home slot: fingerprints are uniform, so their top bits will do.
    fn home(&self, fingerprint: u128) -> usize {
        let bits = self.slots.len().trailing_zeros();
        ((fingerprint >> 64) as u64 >> (64 - bits)) as usize
    }

    fn prefetch(&self, fingerprint: u128) {
        let slot = &self.slots[self.home(fingerprint)];
        // a 48-byte slot can span two cache lines
        prefetch(&slot.0);
        prefetch(&slot.1[PSEUDONYM_LEN - 1]);
    }

    fn get(&self, fingerprint: u128) -> Option<&Pseudonym> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(fingerprint);
        loop {
            let (f, p) = &self.slots[i];
            if *f == fingerprint && fingerprint != 0 {
                return Some(p);
            }
            if *f == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds a fingerprint that is not in the cache.
    fn insert(&mut self, fingerprint: u128, p: Pseudonym) {
        if fingerprint == 0 {
            return;
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        self.place(fingerprint, p);
        self.len += 1;
    }

    fn place(&mut self, fingerprint: u128, p: Pseudonym) {
        let mask = self.slots.len() - 1;
        let mut i = self.home(fingerprint);
        while self.slots[i].0 != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = (fingerprint, p);
    }

    fn grow(&mut self) {
        let doubled = vec![(0, [0; PSEUDONYM_LEN]); self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        for (f, p) in old.into_iter().filter(|s| s.0 != 0) {
            self.place(f, p);
        }
    }
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
}

#[cfg(test)]
mod tests {
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
        assert_eq!(p.computed(), 3);
    }

    /// Reference: each pseudonym computed afresh by a new pseudonymizer,
    /// for enough ids that the cache grows many times over.
    #[test]
    fn the_cache_keeps_every_pseudonym_through_growth() {
        let k = key("a key of some length");
        let mut p = Pseudonymizer::new(&k);
        let ids: Vec<String> = (0..20_000).map(|i| format!("C{i:07}")).collect();
        let first: Vec<Pseudonym> = ids.iter().map(|id| p.pseudonym(id.as_bytes())).collect();
        assert!(p.cache.slots.len() >= 2 * ids.len(), "at most half full");
        for (id, got) in ids.iter().zip(&first).step_by(997) {
            assert_eq!(*got, Pseudonymizer::new(&k).pseudonym(id.as_bytes()));
        }
        for (id, got) in ids.iter().zip(&first).rev() {
            p.prefetch(id.as_bytes());
            assert_eq!(p.pseudonym(id.as_bytes()), *got);
        }
        assert_eq!(p.computed(), ids.len() as u64);
    }
}
