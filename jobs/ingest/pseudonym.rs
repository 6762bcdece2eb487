//! Keyed pseudonyms for customer identifiers.
//!
//! HMAC-SHA256, not a bare hash: customer numbers and emails are guessable,
//! and an unkeyed hash of a guessable value is a lookup table away from the
//! value. The same key gives the same pseudonym every night, so a customer's
//! history joins up; another key gives unrelated pseudonyms.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Key;

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
    cache: HashMap<u128, Pseudonym, BuildHasherDefault<PassThrough>>,
    computed: u64,
}

impl Pseudonymizer {
    /// A pseudonymizer under `key`.
    pub fn new(key: &Key) -> Pseudonymizer {
        Pseudonymizer {
            keyed: Hmac::<Sha256>::new_from_slice(key.bytes())
                .expect("HMAC accepts keys of any length"),
            cache: HashMap::default(),
            computed: 0,
        }
    }

    /// The pseudonym of a raw identifier (surrounding whitespace ignored:
    /// exports pad ids inconsistently, and " C1" is the customer "C1").
    pub fn pseudonym(&mut self, raw: &[u8]) -> Pseudonym {
        let raw = raw.trim_ascii();
        let fingerprint = fingerprint128(raw);
        if let Some(p) = self.cache.get(&fingerprint) {
            return *p;
        }
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        let p = self.compute(raw);
        self.cache.insert(fingerprint, p);
        p
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

/// A 128-bit fingerprint of bytes from two independently keyed SipHashes:
/// exact-set semantics (dedupe, caches) without storing the bytes, with a
/// collision chance far below one in a trillion at a billion keys.
pub fn fingerprint128(bytes: &[u8]) -> u128 {
    #[allow(deprecated)]
    // SipHasher13 is not public; SipHasher with fixed keys is deterministic across runs.
    let mut a = std::hash::SipHasher::new_with_keys(0x6174_7475_6e65_0001, 0x0123_4567_89ab_cdef);
    #[allow(deprecated)]
    let mut b = std::hash::SipHasher::new_with_keys(0x6174_7475_6e65_0002, 0xfedc_ba98_7654_3210);
    a.write(bytes);
    b.write(bytes);
    ((a.finish() as u128) << 64) | b.finish() as u128
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
}
