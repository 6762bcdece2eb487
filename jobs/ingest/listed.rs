//! Lists of pseudonyms looked up once per row or value.
//!
//! The privacy scan looks every pseudonym of the lake up in two lists (who
//! declined analytics, who was erased), and nearly every one is on neither:
//! one bit of a [`PseudonymFilter`] says so, where probes of the two sets
//! (foldhash over 32 bytes, then their tables) were the largest items of the
//! privacy job's `perf` at a million customers. A clear bit is never wrong;
//! a set bit sends the pseudonym on to the sets.

use std::collections::HashSet;

use super::pseudonym::Pseudonym;

/// One bit per slot, the slot taken from a pseudonym's leading bytes.
#[derive(Debug, Clone, Default)]
pub struct PseudonymFilter {
    bits: Vec<u64>,
    /// 64 minus log2 of the number of bits: a hash's top bits are its slot.
    shift: u32,
}

/// Bits per pseudonym the filter is sized for: about 6% of the pseudonyms
/// on no list pass it.
const BITS_PER_PSEUDONYM: usize = 16;

impl PseudonymFilter {
    /// A filter sized for `n` pseudonyms, holding `pseudonyms`.
    pub fn of<'a>(n: usize, pseudonyms: impl IntoIterator<Item = &'a Pseudonym>) -> Self {
        if n == 0 {
            return PseudonymFilter::default();
        }
        let log2 = (n * BITS_PER_PSEUDONYM)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(6, 26);
        let mut filter = PseudonymFilter {
            bits: vec![0; 1 << (log2 - 6)],
            shift: 64 - log2,
        };
        for p in pseudonyms {
            filter.add(p);
        }
        filter
    }

    fn slot(&self, p: &Pseudonym) -> usize {
        let a = u64::from_le_bytes(std::array::from_fn(|i| p[i]));
        let b = u64::from_le_bytes(std::array::from_fn(|i| p[8 + i]));
        // Fibonacci hashing: the product's top bits depend on every input
        // bit, and the 16 hex digits carry 64 bits of the HMAC.
        ((a ^ b.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    fn add(&mut self, p: &Pseudonym) {
        let slot = self.slot(p);
        self.bits[slot / 64] |= 1u64 << (slot % 64);
    }

    /// `false` only for a pseudonym the filter was not given.
    pub fn may_hold(&self, p: &Pseudonym) -> bool {
        if self.bits.is_empty() {
            return false;
        }
        let slot = self.slot(p);
        (self.bits[slot / 64] >> (slot % 64)) & 1 == 1
    }
}

/// A list of pseudonyms that changes day by day, looked up once per row
/// with a customer: foldhash, not SipHash (the keys are HMACs, nobody
/// chooses them). No [`PseudonymFilter`] in front: for a pseudonym not on
/// the list a probe reads only the set's control bytes, a table smaller
/// than the filter's (a filter of 16 bits per pseudonym took ingest's
/// lookups from 2.2% to 2.7% of a re-ingest's CPU in `perf`).
#[derive(Debug, Clone, Default)]
pub struct ListedSet {
    set: HashSet<Pseudonym, foldhash::fast::RandomState>,
}

impl ListedSet {
    pub fn contains(&self, p: &Pseudonym) -> bool {
        self.set.contains(p)
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// The set itself, for the lookups that take any set.
    pub fn set(&self) -> &HashSet<Pseudonym, foldhash::fast::RandomState> {
        &self.set
    }

    /// Adds or removes `p`.
    pub fn set_listed(&mut self, p: Pseudonym, listed: bool) {
        if listed {
            self.set.insert(p);
        } else {
            self.set.remove(&p);
        }
    }
}

impl FromIterator<Pseudonym> for ListedSet {
    fn from_iter<I: IntoIterator<Item = Pseudonym>>(iter: I) -> Self {
        ListedSet {
            set: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Key;
    use crate::ingest::pseudonym::Pseudonymizer;

    fn pseudonyms(range: std::ops::Range<u32>) -> Vec<Pseudonym> {
        let mut p = Pseudonymizer::new(&Key::new(b"listed-test-key-0123456789abcdef".to_vec()));
        range
            .map(|i| p.pseudonym(format!("C{i:07}").as_bytes()))
            .collect()
    }

    #[test]
    fn the_filter_never_misses_a_listed_pseudonym_and_passes_few_others() {
        let listed = pseudonyms(0..5000);
        let filter = PseudonymFilter::of(listed.len(), &listed);
        assert!(listed.iter().all(|p| filter.may_hold(p)));
        let passed = pseudonyms(5000..10_000)
            .iter()
            .filter(|p| filter.may_hold(p))
            .count();
        // 1 - e^(-1/16) of them, about 6%, would pass at random
        assert!(passed < 600, "{passed} of 5000 others pass the filter");
        let empty = PseudonymFilter::of(0, &[]);
        assert!(!empty.may_hold(&listed[0]));
    }

    /// The reference is a plain `HashSet` given the same changes.
    #[test]
    fn a_set_changed_day_by_day_answers_as_a_plain_set() {
        let all = pseudonyms(0..3000);
        let mut ours = ListedSet::default();
        let mut plain = HashSet::new();
        // grows day by day, with removals along the way
        for (i, p) in all.iter().enumerate() {
            let listed = i % 7 != 3;
            ours.set_listed(*p, listed);
            if listed {
                plain.insert(*p);
            } else {
                plain.remove(p);
            }
            if i % 5 == 0 {
                let earlier = all[i / 2];
                ours.set_listed(earlier, false);
                plain.remove(&earlier);
            }
        }
        assert_eq!(ours.len(), plain.len());
        for p in &all {
            assert_eq!(ours.contains(p), plain.contains(p));
        }
        let collected: ListedSet = plain.iter().copied().collect();
        assert!(
            all.iter()
                .all(|p| collected.contains(p) == plain.contains(p))
        );
        assert!(ListedSet::default().is_empty());
        assert!(!ListedSet::default().contains(&all[0]));
    }
}
