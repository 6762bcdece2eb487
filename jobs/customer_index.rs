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

/// The value of each lowercase hex digit; 0x80 for any other byte.
const HEX_DIGIT: [u8; 256] = {
    let mut t = [0x80u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

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
        // One table lookup per digit and one check at the end: this runs
        // for every purchase, and `from_str_radix` with a validation pass
        // was a tenth of the summary's time.
        let mut v = 0u128;
        let mut bad = 0u8;
        for &c in b {
            let d = HEX_DIGIT[c as usize];
            bad |= d;
            v = (v << 4) | u128::from(d & 0x0f);
        }
        (bad & 0x80 == 0).then_some(v)
    }

    pub fn new(id: &str) -> Key {
        match Key::hex(id) {
            Some(v) => Key::Hex(v),
            None => Key::Text(id.into()),
        }
    }

    /// The id as it was read.
    pub fn into_string(self) -> String {
        match self {
            Key::Hex(v) => {
                // by hand: `format!` was a tenth of the value summary's serial tail
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                let mut b = [0u8; 32];
                for (i, d) in b.iter_mut().enumerate() {
                    *d = DIGITS[((v >> (124 - 4 * i)) & 0xf) as usize];
                }
                String::from_utf8(b.to_vec()).expect("hex digits are ASCII")
            }
            Key::Text(t) => t.into_string(),
        }
    }
}

/// The order of the ids as text (fixed-width lowercase hex sorts as its number).
impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        match (self, other) {
            (Key::Hex(a), Key::Hex(b)) => a.cmp(b),
            (Key::Text(a), Key::Text(b)) => a.cmp(b),
            (a, b) => a.clone().into_string().cmp(&b.clone().into_string()),
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
            slots: vec![(0, empty); 1024],
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
        let doubled = vec![(0, self.empty); self.slots.len() * 2];
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

    /// Every (key, value), in no particular order.
    pub fn into_entries(self) -> impl Iterator<Item = (u128, V)> {
        let empty = self.empty;
        self.slots.into_iter().filter(move |s| s.1 != empty)
    }
}

/// An empty slot's number.
const EMPTY: u32 = u32::MAX;

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
        let hex: Vec<Option<u128>> = ids.iter().map(|id| id.and_then(Key::hex)).collect();
        let mut out = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            if let Some(Some(v)) = hex.get(i + AHEAD) {
                self.prefetch(*v);
            }
            out.push(match (hex[i], id) {
                (Some(v), _) => self.get_hex(v),
                (None, Some(id)) => self.text.get(*id).copied(),
                (None, None) => None,
            });
        }
        out
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
