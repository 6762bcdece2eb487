//! Customer numbers by pseudonym, for jobs that fold tens of millions of
//! rows into a million customers (the value job's purchases, the empathy
//! job's contacts).
//!
//! The fold's time is memory latency: every purchase looks up its customer
//! in a table far larger than the CPU caches. Pseudonyms are 32 lowercase
//! hex digits, so they are kept as the 128-bit number they spell, inside the
//! table's own slots (a boxed string would cost one more miss per lookup to
//! compare keys), and the table is open addressing with a known slot per
//! key, so the fold can ask for the slots of the rows ahead of the one it is
//! on ([`CustomerIndex::prefetch`]) and wait for several misses at once
//! instead of one after another. Any other id keeps its text in an ordinary
//! map.

use std::collections::HashMap;

/// A customer id as kept by the index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Hex(u128),
    Text(Box<str>),
}

impl Key {
    /// The 128-bit value of a 32-digit lowercase hex id, else `None`.
    pub fn hex(id: &str) -> Option<u128> {
        let b: &[u8; 32] = id.as_bytes().try_into().ok()?;
        // Eight digits at a time in a u64: this runs for every purchase, and
        // a table lookup and a shift per digit was 3% of the value job.
        let mut v = 0u128;
        for chunk in b.chunks_exact(8) {
            let word: [u8; 8] = chunk.try_into().expect("chunks of eight bytes");
            v = (v << 32) | u128::from(hex8(word)?);
        }
        Some(v)
    }

    pub fn new(id: &str) -> Key {
        match Key::hex(id) {
            Some(v) => Key::Hex(v),
            None => Key::Text(id.into()),
        }
    }

    /// The id as it was read.
    pub fn to_text(&self) -> String {
        match self {
            Key::Hex(v) => {
                String::from_utf8(hex_digits(*v).to_vec()).expect("hex digits are ASCII")
            }
            Key::Text(t) => t.to_string(),
        }
    }

    /// The id as it was read, without copying a text id.
    pub fn into_string(self) -> String {
        match self {
            Key::Text(t) => t.into_string(),
            hex => hex.to_text(),
        }
    }
}

/// The 32 lowercase hex digits of `v`, by hand: `format!` was a tenth of
/// the value summary's serial tail.
fn hex_digits(v: u128) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut b = [0u8; 32];
    for (i, d) in b.iter_mut().enumerate() {
        *d = DIGITS[((v >> (124 - 4 * i)) & 0xf) as usize];
    }
    b
}

/// The value of eight lowercase hex digits (the first the most
/// significant), else `None`, all eight checked and converted at once.
fn hex8(digits: [u8; 8]) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    let x = u64::from_be_bytes(digits);
    // Each byte's top bit says whether it is at least `c`. With every byte
    // below 0x80 (checked first) no sum carries into the next byte.
    let at_least = |c: u8| x.wrapping_add(ONES * u64::from(0x80 - c)) & HIGH;
    let digit = at_least(b'0') & !at_least(b'9' + 1);
    let letter = at_least(b'a') & !at_least(b'f' + 1);
    if x & HIGH != 0 || (digit | letter) != HIGH {
        return None;
    }
    // '0'..='9' hold 0..=9 in their low four bits; 'a'..='f' hold 1..=6
    // there and have bit 6 set.
    let mut n = (x & (ONES * 0x0f)) + ((x >> 6) & ONES) * 9;
    // One digit a byte to one a nibble: pairs, then quads, then all eight.
    n = (n | (n >> 4)) & 0x00ff_00ff_00ff_00ff;
    n = (n | (n >> 8)) & 0x0000_ffff_0000_ffff;
    n = (n | (n >> 16)) & 0x0000_0000_ffff_ffff;
    Some(n as u32)
}

/// The order of the ids as text (fixed-width lowercase hex sorts as its number).
impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        match (self, other) {
            (Key::Hex(a), Key::Hex(b)) => a.cmp(b),
            (Key::Text(a), Key::Text(b)) => a.cmp(b),
            (Key::Hex(a), Key::Text(b)) => hex_digits(*a)[..].cmp(b.as_bytes()),
            (Key::Text(a), Key::Hex(b)) => a.as_bytes().cmp(&hex_digits(*b)[..]),
        }
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Rows between a prefetch and the row that needs it: enough to keep
/// several cache misses in flight, few enough that the lines are still there.
pub const AHEAD: usize = 16;

/// Values by 128-bit key in open addressing at most half full: a table far
/// larger than the CPU caches whose callers know a key's slot ahead of
/// looking it up, so they can ask for it ([`U128Table::prefetch`]) several
/// rows before and wait for several misses at once. `empty` is a value no
/// entry ever has; it marks a free slot.
#[derive(Debug, Clone)]
pub struct U128Table<V> {
    slots: Vec<(u128, V)>,
    len: usize,
    empty: V,
}

impl<V: Copy + PartialEq> U128Table<V> {
    pub fn new(empty: V) -> U128Table<V> {
        U128Table {
            slots: crate::huge_pages::filled_vec(1024, (0, empty)),
            len: 0,
            empty,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The home slot of a key. Pseudonyms and fingerprints are uniform
    /// already, but any 32-digit hex id is a key, so the bits are mixed.
    fn home(&self, k: u128) -> usize {
        let h =
            ((k as u64) ^ ((k >> 64) as u64).rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let bits = self.slots.len().trailing_zeros();
        (h >> (64 - bits)) as usize
    }

    /// Asks the CPU to bring the home slot of `k` into cache, and the start
    /// of the next one: a slot of a key and a pseudonym (48 bytes) can end
    /// on the line after the one it starts on, and a probe goes on there.
    pub fn prefetch(&self, k: u128) {
        let i = self.home(k);
        prefetch(&self.slots[i]);
        prefetch(&self.slots[(i + 1) & (self.slots.len() - 1)]);
    }

    pub fn get(&self, k: u128) -> Option<&V> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(k);
        loop {
            let (key, v) = &self.slots[i];
            if *v == self.empty {
                return None;
            }
            if *key == k {
                return Some(v);
            }
            i = (i + 1) & mask;
        }
    }

    /// The value of `k`, adding `make()` first when it has none.
    pub fn get_or_insert_with(&mut self, k: u128, make: impl FnOnce() -> V) -> V {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(k);
        loop {
            let (key, v) = self.slots[i];
            if v == self.empty {
                let v = make();
                debug_assert!(v != self.empty, "the empty value marks free slots");
                self.slots[i] = (k, v);
                self.len += 1;
                return v;
            }
            if key == k {
                return v;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        // on huge pages: looked up at random, a table of a million
        // customers otherwise misses the TLB on nearly every lookup
        let doubled = crate::huge_pages::filled_vec(self.slots.len() * 2, (0, self.empty));
        let old = std::mem::replace(&mut self.slots, doubled);
        let mask = self.slots.len() - 1;
        for (k, v) in old.into_iter().filter(|s| s.1 != self.empty) {
            let mut i = self.home(k);
            while self.slots[i].1 != self.empty {
                i = (i + 1) & mask;
            }
            self.slots[i] = (k, v);
        }
    }

    /// Replaces every value `v` with `f(v)`, which must not be `empty`.
    pub fn map_values(&mut self, f: impl Fn(V) -> V) {
        let empty = self.empty;
        for slot in self.slots.iter_mut().filter(|s| s.1 != empty) {
            slot.1 = f(slot.1);
            debug_assert!(slot.1 != empty, "the empty value marks free slots");
        }
    }

    /// Every (key, value), in no particular order.
    pub fn into_entries(self) -> impl Iterator<Item = (u128, V)> {
        let empty = self.empty;
        self.slots.into_iter().filter(move |s| s.1 != empty)
    }
}

/// An empty slot's number.
const EMPTY: u32 = u32::MAX;

/// `one(index, hex value, id)` for each of `ids` in turn, the index's slot
/// of the id [`AHEAD`] of it asked for first. `I` is the index itself, or
/// a shared reference to it for lookups only.
fn each_ahead<I, T>(
    index: &mut I,
    ids: &[Option<&str>],
    mut one: impl FnMut(&mut I, Option<u128>, Option<&str>) -> Option<T>,
) -> Vec<Option<T>>
where
    I: std::borrow::Borrow<CustomerIndex>,
{
    let hex: Vec<Option<u128>> = ids.iter().map(|id| id.and_then(Key::hex)).collect();
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        if let Some(Some(v)) = hex.get(i + AHEAD) {
            index.borrow().prefetch(*v);
        }
        out.push(one(index, hex[i], *id));
    }
    out
}

/// Numbers 0, 1, 2, … given to customers in the order they are first seen.
#[derive(Debug, Clone)]
pub struct CustomerIndex {
    /// Numbers of hex ids.
    hex: U128Table<u32>,
    /// Ids that are not hex pseudonyms.
    text: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
}

impl Default for CustomerIndex {
    fn default() -> CustomerIndex {
        CustomerIndex {
            hex: U128Table::new(EMPTY),
            text: HashMap::default(),
        }
    }
}

impl CustomerIndex {
    /// Customers numbered so far.
    pub fn len(&self) -> usize {
        self.hex.len() + self.text.len()
    }

    /// Whether no customer is numbered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks the CPU to bring the slot of hex value `v` into cache.
    pub fn prefetch(&self, v: u128) {
        self.hex.prefetch(v);
    }

    /// The number of hex value `v`, giving it the next number when new.
    pub fn number_hex(&mut self, v: u128) -> u32 {
        let next = self.len() as u32;
        self.hex.get_or_insert_with(v, || next)
    }

    /// The number of any id, giving it the next number when new.
    pub fn number(&mut self, id: &str) -> u32 {
        match Key::hex(id) {
            Some(v) => self.number_hex(v),
            None => self.number_text(id),
        }
    }

    /// The numbers of many ids (`None` where `ids` has none), numbering the
    /// new ones in order as [`number`](Self::number) one at a time would,
    /// each slot asked for [`AHEAD`] ids before it is needed (one at a time
    /// waited for one cache miss at a time: 4% of the empathy job's CPU at
    /// a million customers).
    pub fn number_all(&mut self, ids: &[Option<&str>]) -> Vec<Option<u32>> {
        each_ahead(self, ids, |index, hex, id| match (hex, id) {
            (Some(v), _) => Some(index.number_hex(v)),
            (None, Some(id)) => Some(index.number_text(id)),
            (None, None) => None,
        })
    }

    /// The number of an id, if it has one.
    pub fn get(&self, id: &str) -> Option<u32> {
        match Key::hex(id) {
            Some(v) => self.get_hex(v),
            None => self.text.get(id).copied(),
        }
    }

    /// The numbers of many ids (`None` for a missing or unknown one), each
    /// slot asked for [`AHEAD`] ids before it is needed: one lookup at a time
    /// waited for one cache miss at a time (2.8 s of the empathy job's 28M
    /// order rows at a million customers).
    pub fn get_all(&self, ids: &[Option<&str>]) -> Vec<Option<u32>> {
        each_ahead(&mut &*self, ids, |index, hex, id| match (hex, id) {
            (Some(v), _) => index.get_hex(v),
            (None, Some(id)) => index.text.get(id).copied(),
            (None, None) => None,
        })
    }

    fn get_hex(&self, v: u128) -> Option<u32> {
        self.hex.get(v).copied()
    }

    fn number_text(&mut self, id: &str) -> u32 {
        if let Some(&n) = self.text.get(id) {
            return n;
        }
        let n = self.len() as u32;
        self.text.insert(id.into(), n);
        n
    }

    /// Gives every customer number `n` the number `new_of[n]` (a
    /// permutation of the numbers), in place.
    pub fn renumber(&mut self, new_of: &[u32]) {
        self.hex.map_values(|n| new_of[n as usize]);
        for n in self.text.values_mut() {
            *n = new_of[*n as usize];
        }
    }

    /// The number of a key, giving it the next number when new.
    pub fn number_key(&mut self, key: Key) -> u32 {
        match key {
            Key::Hex(v) => self.number_hex(v),
            Key::Text(t) => match self.text.get(&t) {
                Some(&n) => n,
                None => {
                    let n = self.len() as u32;
                    self.text.insert(t, n);
                    n
                }
            },
        }
    }

    /// Every (key, number), in [`Key`] order: the hex keys sorted as
    /// numbers and the rest as text, then merged. Sorting a million
    /// entries by [`Key`] throughout spent its time matching the variants.
    pub fn into_sorted_entries(self) -> Vec<(Key, u32)> {
        let mut hex: Vec<(u128, u32)> = self.hex.into_entries().collect();
        hex.sort_unstable_by_key(|e| e.0);
        let mut text: Vec<(Box<str>, u32)> = self.text.into_iter().collect();
        text.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::with_capacity(hex.len() + text.len());
        let mut text = text.into_iter().peekable();
        for (v, n) in hex {
            if text.peek().is_some() {
                let digits = hex_digits(v);
                while text.peek().is_some_and(|(t, _)| t.as_bytes() < &digits[..]) {
                    let (t, m) = text.next().expect("peeked");
                    out.push((Key::Text(t), m));
                }
            }
            out.push((Key::Hex(v), n));
        }
        out.extend(text.map(|(t, m)| (Key::Text(t), m)));
        out
    }

    /// Every (key, number), in no particular order.
    pub fn into_entries(self) -> Vec<(Key, u32)> {
        let mut out: Vec<(Key, u32)> = (self.hex.into_entries())
            .map(|(v, n)| (Key::Hex(v), n))
            .collect();
        out.extend(self.text.into_iter().map(|(t, n)| (Key::Text(t), n)));
        out
    }
}

/// A set of customer numbers, a bit each: numbers are dense from 0, so
/// adding and asking touch one word, where a tree or hash set of millions of
/// numbers missed the cache on nearly every one.
#[derive(Debug, Clone, Default)]
pub struct CustomerBits {
    words: Vec<u64>,
}

impl CustomerBits {
    /// Adds `customer`; whether it was new.
    pub fn insert(&mut self, customer: u32) -> bool {
        let (word, bit) = (customer as usize / 64, 1u64 << (customer % 64));
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let new = self.words[word] & bit == 0;
        self.words[word] |= bit;
        new
    }

    pub fn contains(&self, customer: u32) -> bool {
        self.words
            .get(customer as usize / 64)
            .is_some_and(|w| w & (1 << (customer % 64)) != 0)
    }

    /// Adds every customer of `other`.
    pub fn union_with(&mut self, other: &CustomerBits) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            *mine |= *theirs;
        }
    }
}

/// A hint to load the cache line holding `p`; nothing on other machines.
#[inline]
pub fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and changes no memory; `p` is a valid
    // reference anyway.
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (p as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Differential: against a plain set, counting what is new.
    #[test]
    fn customer_bits_are_a_set() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9);
        let (mut bits, mut plain) = (CustomerBits::default(), std::collections::HashSet::new());
        for _ in 0..10_000 {
            let c = rng.random_range(0..5000u32);
            assert_eq!(bits.insert(c), plain.insert(c), "{c}");
        }
        for c in 0..5200u32 {
            assert_eq!(bits.contains(c), plain.contains(&c), "{c}");
        }
    }

    /// Against a plain map: the same numbers for the same ids, through growth,
    /// for hex pseudonyms, ids that only look like them, and other text.
    #[test]
    fn numbers_like_a_plain_map() {
        let mut index = CustomerIndex::default();
        let mut plain: HashMap<String, u32> = HashMap::new();
        for i in 0..20_000u128 {
            let j = (i * 7_919) % 5_003;
            let id = match j % 5 {
                0 | 1 => format!("{:032x}", j.wrapping_mul(0x2545_f491_4f6c_dd1d)),
                2 => format!("{j:032x}"), // sequential values: only the mixing spreads them
                3 => format!("{:032X}", j * 31), // upper case: kept as text
                _ => format!("c{j}"),
            };
            let next = plain.len() as u32;
            assert_eq!(index.get(&id), plain.get(&id).copied(), "{id} before");
            let want = *plain.entry(id.clone()).or_insert(next);
            assert_eq!(index.number(&id), want, "{id}");
            assert_eq!(index.get(&id), Some(want), "{id} after");
        }
        assert_eq!(index.len(), plain.len());
        // many at once, with missing and unknown ids among them
        let mut ids: Vec<Option<String>> = plain.keys().cloned().map(Some).collect();
        ids.sort();
        ids.extend([
            None,
            Some("unknown".into()),
            Some(format!("{:032x}", 1u128 << 100)),
        ]);
        ids.rotate_right(2);
        let refs: Vec<Option<&str>> = ids.iter().map(Option::as_deref).collect();
        let want: Vec<Option<u32>> = refs
            .iter()
            .map(|id| id.and_then(|id| plain.get(id).copied()))
            .collect();
        assert_eq!(index.get_all(&refs), want);
        assert_eq!(want.iter().filter(|n| n.is_none()).count(), 3);
        let mut entries = index.into_entries();
        entries.sort_by_key(|e| e.1);
        for (key, n) in entries {
            assert_eq!(plain[&key.into_string()], n);
        }
    }

    /// Differential: numbering a column at once gives each id the number
    /// numbering the ids one at a time gives, new ids in order, through the
    /// table's doublings, with hex and text ids, repeats and gaps.
    #[test]
    fn numbering_at_once_numbers_as_one_at_a_time() {
        let ids: Vec<Option<String>> = (0..30_000u128)
            .map(|i| {
                let j = (i * 7_919) % 9_001;
                match j % 6 {
                    0 => None,
                    1 | 2 => Some(format!("{:032x}", j.wrapping_mul(0x2545_f491_4f6c_dd1d))),
                    3 => Some(format!("{j:032x}")),
                    4 => Some(format!("{:032X}", j * 31)),
                    _ => Some(format!("c{j}")),
                }
            })
            .collect();
        let refs: Vec<Option<&str>> = ids.iter().map(Option::as_deref).collect();
        let mut one = CustomerIndex::default();
        one.number("c7");
        let mut all = one.clone();
        let want: Vec<Option<u32>> = refs.iter().map(|id| id.map(|id| one.number(id))).collect();
        assert_eq!(all.number_all(&refs), want);
        assert_eq!(all.len(), one.len());
        assert!(all.len() > 4_000, "the table doubled several times");
    }

    /// Differential: against a plain map, through many doublings, with a
    /// key of 0 and the table never more than half full.
    #[test]
    fn the_u128_table_is_a_map() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(5);
        let mut table = U128Table::new(u32::MAX);
        let mut plain = HashMap::new();
        for i in 0..50_000u32 {
            let k: u128 = if i == 0 {
                0
            } else {
                rng.random::<u128>() >> rng.random_range(0..120)
            };
            table.prefetch(k);
            let n = plain.len() as u32;
            let want = *plain.entry(k).or_insert(n);
            assert_eq!(table.get_or_insert_with(k, || n), want);
            assert!(table.slots.len() >= 2 * table.len(), "at most half full");
        }
        assert_eq!(table.len(), plain.len());
        for (k, v) in &plain {
            assert_eq!(table.get(*k), Some(v));
        }
        assert_eq!(table.get(u128::MAX - 1), plain.get(&(u128::MAX - 1)));
        let mut entries: Vec<(u128, u32)> = table.into_entries().collect();
        entries.sort_by_key(|e| e.1);
        let mut want: Vec<(u128, u32)> = plain.into_iter().collect();
        want.sort_by_key(|e| e.1);
        assert_eq!(entries, want);
    }

    /// The plain definition [`Key::hex`] must agree with, digit by digit.
    fn hex_digit_by_digit(id: &str) -> Option<u128> {
        let b: &[u8; 32] = id.as_bytes().try_into().ok()?;
        let mut v = 0u128;
        for &c in b {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => return None,
            };
            v = (v << 4) | u128::from(d);
        }
        Some(v)
    }

    /// Differential: every ASCII character at every position of a valid id,
    /// then random ids, mostly hex, with now and then another character
    /// (ones next to the digits' and letters' ranges, upper case, non-ASCII).
    #[test]
    fn hex_equals_the_digit_by_digit_definition() {
        use rand::{Rng, SeedableRng};
        let valid = "0123456789abcdeffedcba9876543210";
        assert_eq!(Key::hex(valid), hex_digit_by_digit(valid));
        assert!(Key::hex(valid).is_some());
        for at in 0..32 {
            for c in 0u8..128 {
                let mut b = valid.as_bytes().to_vec();
                b[at] = c;
                let id = String::from_utf8(b).expect("ASCII");
                assert_eq!(Key::hex(&id), hex_digit_by_digit(&id), "{id:?}");
            }
        }
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(17);
        let hex: Vec<char> = "0123456789abcdef".chars().collect();
        let odd: Vec<char> = "/:`g@AFG \0\u{7f}\u{80}\u{ff}é".chars().collect();
        let mut parsed = 0;
        for _ in 0..200_000 {
            let len = if rng.random_range(0..10) == 0 {
                rng.random_range(30..34)
            } else {
                32
            };
            let id: String = (0..len)
                .map(|_| {
                    if rng.random_range(0..64) == 0 {
                        odd[rng.random_range(0..odd.len())]
                    } else {
                        hex[rng.random_range(0..16)]
                    }
                })
                .collect();
            let want = hex_digit_by_digit(&id);
            parsed += usize::from(want.is_some());
            assert_eq!(Key::hex(&id), want, "{id:?}");
        }
        assert!(parsed > 50_000, "{parsed} valid ids among the random ones");
    }

    /// Differential: sorted entries against all entries sorted by their text.
    #[test]
    fn sorted_entries_are_in_the_ids_text_order() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(23);
        let mut index = CustomerIndex::default();
        for _ in 0..20_000 {
            let v: u128 = rng.random::<u128>() >> rng.random_range(0..128);
            let id = match rng.random_range(0..6) {
                0..=2 => format!("{v:032x}"),
                // text sorting among and around the hex ids
                3 => format!("{:x}", v % 1_000_000),
                4 => format!("{v:032X}"),
                _ => format!("{:032x}-{}", v, v % 7),
            };
            index.number(&id);
        }
        let got: Vec<(String, u32)> = index
            .clone()
            .into_sorted_entries()
            .into_iter()
            .map(|(k, n)| (k.into_string(), n))
            .collect();
        let mut want: Vec<(String, u32)> = index
            .into_entries()
            .into_iter()
            .map(|(k, n)| (k.into_string(), n))
            .collect();
        want.sort();
        assert_eq!(got, want);
        assert!(got.len() > 15_000);
    }

    #[test]
    fn keys_sort_as_their_text() {
        let ids = [
            "00000000000000000000000000000001",
            "0000000000000000000000000000000A",
            "ffffffffffffffffffffffffffffffff",
            "c1",
            "7",
            "0000000000000000000000000000000",
            "a0000000000000000000000000000000",
        ];
        let mut keys: Vec<Key> = ids.iter().map(|s| Key::new(s)).collect();
        keys.sort();
        let mut text: Vec<&str> = ids.to_vec();
        text.sort();
        let got: Vec<String> = keys.into_iter().map(Key::into_string).collect();
        assert_eq!(got, text);
        assert_eq!(Key::new(ids[0]), Key::Hex(1));
        assert!(matches!(Key::new(ids[1]), Key::Text(_)));
        let all: String = "0123456789abcdef".repeat(2);
        assert_eq!(Key::hex(&all), u128::from_str_radix(&all, 16).ok());
        for bad in ["g", "G", "A", " ", "-", "+", "é"] {
            let id = format!("{}{bad}", &all[..32 - bad.len()]);
            assert_eq!(Key::hex(&id), None, "{id}");
        }
    }
}
