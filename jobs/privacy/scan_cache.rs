//! What the lake scan counted in each file, kept for the next night.
//!
//! The lake is history: a night adds a day's files and leaves the others
//! as they were, but the leak checks' needles change (the day's raw
//! identifiers from landing, new opt-outs and erasure requests), so every
//! string of every lake file was scanned again each night (7–8
//! CPU-seconds of an incremental night at a million customers). A file
//! listed alike (size, modification time, entity tag) holds what it held;
//! its counts for the detectors are what they were, and its needle counts
//! are too, as long as
//! - it had none (a file with a hit is scanned again: a needle gone from
//!   the lists since would take its hits with it), and
//! - none of tonight's needles is among the lake's values at all: every
//!   file scanned into the cache left the 64-bit keys of its values
//!   ([`ValueKeys`]), and the cache holds their union. A needle whose key
//!   is there (a customer on the lake withdrawing, a raw identifier some
//!   value equals, or two keys alike by chance) sends the whole lake to a
//!   full scan, which is what every night did before.
//!
//! So the checks count what a full scan counts. A full scan also runs when
//! the cache was written by another scanner (a digest of the scanner's
//! source), for other record keys, when a raw identifier could be
//! pseudonym-shaped or is longer than the keyed values, and a week after
//! the last full scan, which drops the keys of files replaced since.
//!
//! The cache is `marts/_privacy_scan/lake.bin`: a JSON header, then the
//! sorted keys. It holds counts and keys of pseudonymous values, no value
//! itself; erasure deletes it with the other carried state
//! ([`super::scan::clear_unscanned`]).

use std::collections::BTreeMap;
use std::hash::BuildHasherDefault;
use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use chrono::NaiveDate;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{debug, info};

use super::scan::{
    self, ColumnFacts, KEYED_LEN, Needles, ScanFacts, TableFile, ValueKeys, other_key,
    pseudonym_key,
};
use crate::ingest::pseudonym::PassThrough;
use crate::storage::Storage;
use crate::{Error, Result};

/// Keys, uniform already: hashed as they are.
type KeySet = std::collections::HashSet<u64, BuildHasherDefault<PassThrough>>;

/// The union of many files' keys: a full scan keys every value of the lake
/// (45M at a million customers), about a million of them distinct. One set
/// of them all missed the cache on most insertions (8% of a full scan's
/// CPU time in `perf`); here a key waits in the buffer of its top byte, and
/// a full buffer goes into that byte's set, small enough to stay in cache.
/// The sets in byte order, each sorted, are the keys sorted.
struct Union {
    sets: Vec<KeySet>,
    waiting: Vec<Vec<u64>>,
}

impl Default for Union {
    fn default() -> Union {
        Union {
            sets: vec![KeySet::default(); 256],
            waiting: vec![Vec::new(); 256],
        }
    }
}

impl Union {
    const BUFFER: usize = 4096;

    fn add(&mut self, keys: &[u64]) {
        for &k in keys {
            let b = (k >> 56) as usize;
            self.waiting[b].push(k);
            if self.waiting[b].len() == Union::BUFFER {
                self.sets[b].extend(self.waiting[b].drain(..));
            }
        }
    }

    fn sorted(mut self) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.sets.iter().map(|s| s.len()).sum());
        for (set, waiting) in self.sets.iter_mut().zip(&mut self.waiting) {
            set.extend(waiting.drain(..));
            let from = out.len();
            out.extend(set.drain());
            out[from..].sort_unstable();
        }
        out
    }
}

/// The folder of the cache, under `marts` (skipped by the catalog and the
/// scans, as `_…` folders are).
pub const TABLE: &str = "_privacy_scan";

/// Days after a full scan that the next one is due.
pub const FULL_SCAN_DAYS: i64 = 7;

fn cache_path() -> Path {
    Path::from(format!("marts/{TABLE}/lake.bin"))
}

/// The sources whose code decides what a scan counts: a cache written by
/// another version of any of them is not used.
fn scanner_digest() -> &'static str {
    static DIGEST: OnceLock<String> = OnceLock::new();
    DIGEST.get_or_init(|| {
        let mut h = Sha256::new();
        for source in [
            include_str!("scan.rs"),
            include_str!("scan_cache.rs"),
            include_str!("../ingest/redact.rs"),
            include_str!("../ingest/pseudonym.rs"),
            include_str!("../ingest/validate.rs"),
        ] {
            h.update((source.len() as u64).to_le_bytes());
            h.update(source.as_bytes());
        }
        format!("{:x}", h.finalize())
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Header {
    scanner: String,
    keyed_len: usize,
    /// The lake's record-key columns, sorted: (table, column).
    record_keys: Vec<(String, String)>,
    /// The run date of the last full scan.
    full_scan: NaiveDate,
    files: Vec<Entry>,
    pseudonym_keys: usize,
    other_keys: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    path: String,
    table: String,
    size: u64,
    modified_s: i64,
    modified_ns: u32,
    e_tag: Option<String>,
    rows: u64,
    columns: Vec<Column>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Column {
    name: String,
    values: u64,
    pii_values: u64,
    pii_items: BTreeMap<String, u64>,
    raw_ids: u64,
    opted_out: u64,
    erased: u64,
    record_key: bool,
}

impl Entry {
    fn of(f: &TableFile, facts: &ScanFacts) -> Entry {
        let columns = facts
            .columns
            .iter()
            .map(|((_, _, name), c)| Column {
                name: name.clone(),
                values: c.values,
                pii_values: c.pii_values,
                pii_items: c
                    .pii_items
                    .iter()
                    .map(|(k, n)| (k.to_string(), *n))
                    .collect(),
                raw_ids: c.raw_ids,
                opted_out: c.opted_out,
                erased: c.erased,
                record_key: c.record_key,
            })
            .collect();
        Entry {
            path: f.path.to_string(),
            table: f.table.clone(),
            size: f.size,
            modified_s: f.modified.timestamp(),
            modified_ns: f.modified.timestamp_subsec_nanos(),
            e_tag: f.e_tag.clone(),
            rows: facts.rows,
            columns,
        }
    }

    /// Whether `f` is this entry's file as it was scanned.
    fn describes(&self, f: &TableFile) -> bool {
        self.path == f.path.as_ref()
            && self.table == f.table
            && self.size == f.size
            && self.modified_s == f.modified.timestamp()
            && self.modified_ns == f.modified.timestamp_subsec_nanos()
            && self.e_tag == f.e_tag
    }

    fn found_a_needle(&self) -> bool {
        self.columns
            .iter()
            .any(|c| c.raw_ids > 0 || c.opted_out > 0 || c.erased > 0)
    }

    /// The counts, as scanning the file gave them; `None` when a kind of
    /// personal data is not one this scanner names.
    fn facts(&self) -> Option<ScanFacts> {
        let mut out = ScanFacts {
            files: 1,
            rows: self.rows,
            ..ScanFacts::default()
        };
        out.table_rows
            .insert(("lake".to_string(), self.table.clone()), self.rows);
        for c in &self.columns {
            let mut pii_items = BTreeMap::new();
            for (k, n) in &c.pii_items {
                pii_items.insert(crate::ingest::redact::PiiKind::named(k)?.name(), *n);
            }
            out.columns.insert(
                ("lake".to_string(), self.table.clone(), c.name.clone()),
                ColumnFacts {
                    values: c.values,
                    pii_values: c.pii_values,
                    pii_items,
                    raw_ids: c.raw_ids,
                    opted_out: c.opted_out,
                    erased: c.erased,
                    record_key: c.record_key,
                },
            );
        }
        Some(out)
    }
}

/// The cache as read: its header and the union of its files' keys.
#[derive(Debug, Clone, PartialEq)]
struct Cache {
    header: Header,
    keys: ValueKeys,
}

impl Cache {
    fn encode(&self) -> Result<Bytes> {
        let json = serde_json::to_vec(&self.header)
            .map_err(|e| Error::Internal(format!("the scan cache's header: {e}")))?;
        let mut out = BytesMut::with_capacity(
            8 + json.len() + 8 * (self.keys.pseudonyms.len() + self.keys.others.len()),
        );
        out.put_u64_le(json.len() as u64);
        out.put_slice(&json);
        for k in self.keys.pseudonyms.iter().chain(&self.keys.others) {
            out.put_u64_le(*k);
        }
        Ok(out.freeze())
    }

    /// The header of a whole cache and the bytes of its keys, without
    /// reading the keys.
    fn header_of(bytes: &[u8]) -> Option<(Header, &[u8])> {
        let (len, rest) = bytes.split_first_chunk::<8>()?;
        let (json, rest) =
            rest.split_at_checked(usize::try_from(u64::from_le_bytes(*len)).ok()?)?;
        let header: Header = serde_json::from_slice(json).ok()?;
        (rest.len() == 8 * (header.pseudonym_keys + header.other_keys)).then_some((header, rest))
    }

    /// `None` when the bytes are not a whole cache (cut short, another
    /// layout): the scan then starts afresh.
    fn decode(bytes: &[u8]) -> Option<Cache> {
        let (header, rest) = Cache::header_of(bytes)?;
        let mut keys = rest
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
        let pseudonyms: Vec<u64> = keys.by_ref().take(header.pseudonym_keys).collect();
        let others: Vec<u64> = keys.collect();
        Some(Cache {
            header,
            keys: ValueKeys { pseudonyms, others },
        })
    }
}

/// How a lake scan used the cache, for the log, the privacy job's outcome
/// and the tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheUse {
    /// Files whose counts came from the cache.
    pub reused: u64,
    /// Files read and scanned.
    pub scanned: u64,
    /// Why every file was scanned, when they were.
    pub full_scan: Option<String>,
}

/// Scans the lake `files` for the leak checks, reusing the counts the
/// cache holds for files unchanged since, when the cache may be used for
/// `needles` on `date` (see the module), and writes the cache anew.
pub async fn scan_lake(
    storage: &Storage,
    files: Vec<TableFile>,
    needles: Arc<Needles>,
    threads: usize,
    date: NaiveDate,
) -> Result<(ScanFacts, CacheUse)> {
    let record_keys = lake_record_keys(&needles);
    let read = storage.get_opt(&cache_path()).await?;
    let cache = read.as_deref().and_then(Cache::decode);
    let reason = match (&read, &cache) {
        (None, _) => Some("no cache of an earlier scan".to_string()),
        (Some(_), None) => Some("the cache of the last scan is unreadable".to_string()),
        (_, Some(c)) => unusable(c, &needles, &record_keys, date),
    };
    let carried = match (&cache, &reason) {
        (Some(c), None) => Some(c),
        _ => None,
    };
    let by_path: BTreeMap<&str, &Entry> = carried
        .map(|c| {
            c.header
                .files
                .iter()
                .map(|e| (e.path.as_str(), e))
                .collect()
        })
        .unwrap_or_default();
    let mut facts = ScanFacts::default();
    let mut entries = Vec::with_capacity(files.len());
    let mut to_scan = Vec::new();
    for f in files {
        let kept = by_path
            .get(f.path.as_ref())
            .filter(|e| e.describes(&f) && !e.found_a_needle())
            .and_then(|e| Some((*e, e.facts()?)));
        match kept {
            Some((entry, counted)) => {
                facts.merge(counted);
                entries.push(entry.clone());
            }
            None => to_scan.push(f),
        }
    }
    let reused = entries.len() as u64;
    let scanned = scan::scan_each_keyed(storage, to_scan, needles, threads).await?;
    let mut pseudonyms = Union::default();
    let mut others = Union::default();
    if let Some(c) = carried {
        pseudonyms.add(&c.keys.pseudonyms);
        others.add(&c.keys.others);
    }
    let scanned_files = scanned.len() as u64;
    for (f, counted, of_file) in scanned {
        entries.push(Entry::of(&f, &counted));
        facts.merge(counted);
        pseudonyms.add(&of_file.pseudonyms);
        others.add(&of_file.others);
    }
    let keys = ValueKeys {
        pseudonyms: pseudonyms.sorted(),
        others: others.sorted(),
    };
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let header = Header {
        scanner: scanner_digest().to_string(),
        keyed_len: KEYED_LEN,
        record_keys,
        full_scan: match carried {
            Some(c) => c.header.full_scan,
            None => date,
        },
        files: entries,
        pseudonym_keys: keys.pseudonyms.len(),
        other_keys: keys.others.len(),
    };
    debug!(
        files = header.files.len(),
        pseudonym_keys = header.pseudonym_keys,
        other_keys = header.other_keys,
        "lake scan cache written"
    );
    storage
        .put(&cache_path(), Cache { header, keys }.encode()?)
        .await?;
    let used = CacheUse {
        reused,
        scanned: scanned_files,
        full_scan: reason,
    };
    info!(
        reused = used.reused,
        scanned = used.scanned,
        full_scan = used.full_scan.as_deref().unwrap_or("no"),
        "lake files: counts carried from the last scan, files scanned"
    );
    Ok((facts, used))
}

fn lake_record_keys(needles: &Needles) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = needles
        .record_keys
        .iter()
        .filter(|(area, _, _)| area == "lake")
        .map(|(_, t, c)| (t.clone(), c.clone()))
        .collect();
    out.sort();
    out
}

/// Why the cache may not be used tonight, or `None` when it may.
fn unusable(
    cache: &Cache,
    needles: &Needles,
    record_keys: &[(String, String)],
    date: NaiveDate,
) -> Option<String> {
    let h = &cache.header;
    if let Some(why) = outdated(h, date) {
        return Some(why);
    }
    if h.record_keys != record_keys {
        return Some("the lake's record keys changed".into());
    }
    if needles.raw_shape.may_be_pseudonym() {
        return Some("a raw identifier may have a pseudonym's shape".into());
    }
    if needles.raw_shape.longest() > KEYED_LEN {
        return Some(format!(
            "a raw identifier is longer than the {KEYED_LEN} bytes values are keyed to"
        ));
    }
    let mut listed: Vec<u64> = needles
        .opted_out
        .iter()
        .chain(&needles.erased)
        .map(pseudonym_key)
        .collect();
    listed.sort_unstable();
    if meet(&listed, &cache.keys.pseudonyms) {
        return Some(
            "a customer on the opt-out or erasure list may have values in the lake".into(),
        );
    }
    let mut raw: Vec<u64> = needles.raw_ids.iter().map(|f| other_key(*f)).collect();
    raw.sort_unstable();
    if meet(&raw, &cache.keys.others) {
        return Some("a raw identifier from landing may equal a value of the lake".into());
    }
    None
}

/// Why a cache with header `h` cannot serve a scan on `date` whatever the
/// needles: another scanner wrote it, or a full scan is due.
fn outdated(h: &Header, date: NaiveDate) -> Option<String> {
    if h.scanner != scanner_digest() || h.keyed_len != KEYED_LEN {
        return Some("the cache was written by another version of the scanner".into());
    }
    let since = (date - h.full_scan).num_days();
    (!(0..FULL_SCAN_DAYS).contains(&since)).then(|| {
        format!(
            "the last full scan was on {}: one is due every {FULL_SCAN_DAYS} days",
            h.full_scan
        )
    })
}

/// Whether a lake scan on `date` will most likely carry the last scan's
/// counts: a readable cache by this scanner whose full scan is not yet a
/// week old. For the nightly to decide when to start the scan (a carried
/// one reads a day's files, a full one every file); the needles, which
/// need the landing exports read, are left to [`scan_lake`], which decides.
/// A storage error is a `false`: the scan reports it.
pub async fn likely_carried(storage: &Storage, date: NaiveDate) -> bool {
    let Ok(Some(bytes)) = storage.get_opt(&cache_path()).await else {
        return false;
    };
    Cache::header_of(&bytes).is_some_and(|(h, _)| outdated(&h, date).is_none())
}

/// Whether two sorted lists share a value.
fn meet(a: &[u64], b: &[u64]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::ingest::pseudonym::{Pseudonym, fingerprint128};
    use crate::privacy::scan::{IdShape, Partitions, PseudonymSet, write_parquet};

    const LISTED: &str = "0123456789abcdef0123456789abcdef";
    const ON_THE_LAKE: &str = "00112233445566778899aabbccddeeff";
    const RAW: &str = "CUST-0001";

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).expect("date")
    }

    fn pseudonym(s: &str) -> Pseudonym {
        s.as_bytes().try_into().expect("32 bytes")
    }

    /// Needles: raw identifiers `raw`, `opted_out` on the opt-out list,
    /// `lake/orders.order_id` a record key.
    fn needles(raw: &[&str], opted_out: &[&str]) -> Arc<Needles> {
        let mut shape = IdShape::default();
        for r in raw {
            shape.add(r.as_bytes());
        }
        let opted_out: PseudonymSet = opted_out.iter().map(|p| pseudonym(p)).collect();
        let record_keys: HashSet<scan::ColumnKey> =
            [("lake".into(), "orders".into(), "order_id".into())].into();
        Arc::new(Needles::new(
            raw.iter().map(|r| fingerprint128(r.as_bytes())).collect(),
            shape,
            opted_out,
            PseudonymSet::default(),
            record_keys,
        ))
    }

    fn generated(i: u64) -> String {
        format!("{:032x}", fingerprint128(&i.to_le_bytes()))
    }

    async fn put(storage: &Storage, table: &str, d: u32, columns: &[(&str, Vec<Option<String>>)]) {
        let props = parquet::file::properties::WriterProperties::builder().build();
        let path = Path::from(format!("lake/{table}/dt={}/part-0.parquet", day(d)));
        storage
            .put(&path, write_parquet(columns, props))
            .await
            .expect("put");
    }

    /// A lake of two tables over two days: customer pseudonyms, order
    /// numbers (a record key), channels, comments with an e-mail address and
    /// a phone number, `ON_THE_LAKE` once.
    async fn lake() -> (tempfile::TempDir, Storage) {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path().to_str().expect("utf-8")).expect("storage");
        for d in 1..=2 {
            let n = 300;
            let customers: Vec<Option<String>> = (0..n)
                .map(|i| {
                    Some(if d == 2 && i == 7 {
                        ON_THE_LAKE.into()
                    } else {
                        generated(i % 40)
                    })
                })
                .collect();
            let orders: Vec<Option<String>> = (0..n).map(|i| Some(format!("O{d}{i:05}"))).collect();
            let channels: Vec<Option<String>> = (0..n)
                .map(|i| (i % 9 != 0).then(|| ["app", "web", "store"][i as usize % 3].into()))
                .collect();
            put(
                &storage,
                "orders",
                d,
                &[
                    ("order_id", orders),
                    ("customer_id", customers.clone()),
                    ("channel", channels),
                ],
            )
            .await;
            let comments: Vec<Option<String>> = (0..n)
                .map(|i| match i % 50 {
                    0 => Some(format!("mail me at ana{i}@example.com")),
                    1 => Some("call 612345678 please".into()),
                    _ => Some(format!("fine {}", i % 13)),
                })
                .collect();
            put(
                &storage,
                "feedback",
                d,
                &[("customer_id", customers), ("comment", comments)],
            )
            .await;
        }
        (dir, storage)
    }

    async fn files(storage: &Storage) -> Vec<TableFile> {
        scan::table_files(storage, "lake", Partitions::All)
            .await
            .expect("listed")
    }

    /// What scanning every file counts.
    async fn full(storage: &Storage, needles: &Arc<Needles>) -> ScanFacts {
        scan::scan_leaks(storage, files(storage).await, needles.clone(), 2)
            .await
            .expect("scan")
    }

    async fn cached(storage: &Storage, needles: &Arc<Needles>, d: u32) -> (ScanFacts, CacheUse) {
        scan_lake(storage, files(storage).await, needles.clone(), 2, day(d))
            .await
            .expect("scan")
    }

    fn column(table: &str, name: &str) -> scan::ColumnKey {
        ("lake".into(), table.into(), name.into())
    }

    fn same(a: &ScanFacts, b: &ScanFacts) {
        assert_eq!(a.columns, b.columns);
        assert_eq!((a.files, a.rows), (b.files, b.rows));
        assert_eq!(a.table_rows, b.table_rows);
    }

    #[tokio::test]
    async fn unchanged_files_are_counted_from_the_cache_as_a_full_scan_counts_them() {
        let (_dir, storage) = lake().await;
        let n = needles(&[RAW, "C2"], &[LISTED]);
        let (first, used) = cached(&storage, &n, 3).await;
        assert_eq!((used.reused, used.scanned), (0, 4));
        assert_eq!(
            used.full_scan.as_deref(),
            Some("no cache of an earlier scan")
        );
        let want = full(&storage, &n).await;
        same(&first, &want);
        let comments = &want.columns[&column("feedback", "comment")];
        assert!(
            comments.pii_values > 0,
            "the detectors found something to carry"
        );

        let (second, used) = cached(&storage, &n, 4).await;
        assert_eq!(
            used,
            CacheUse {
                reused: 4,
                scanned: 0,
                full_scan: None
            }
        );
        same(&second, &want);

        // a new day and a file rewritten: those two are read
        put(
            &storage,
            "orders",
            3,
            &[
                ("order_id", vec![Some("O3".into())]),
                ("customer_id", vec![Some(generated(5))]),
                ("channel", vec![None]),
            ],
        )
        .await;
        put(
            &storage,
            "feedback",
            1,
            &[
                ("customer_id", vec![Some(generated(1))]),
                ("comment", vec![Some("write to bo@example.org".into())]),
            ],
        )
        .await;
        let (third, used) = cached(&storage, &n, 5).await;
        assert_eq!((used.reused, used.scanned, used.full_scan), (3, 2, None));
        same(&third, &full(&storage, &n).await);
    }

    #[tokio::test]
    async fn a_needle_among_the_lakes_values_sends_the_lake_to_a_full_scan() {
        let (_dir, storage) = lake().await;
        let (_, used) = cached(&storage, &needles(&[RAW], &[LISTED]), 3).await;
        assert_eq!(used.scanned, 4);

        // a customer on the lake withdraws
        let withdrew = needles(&[RAW], &[LISTED, ON_THE_LAKE]);
        let (got, used) = cached(&storage, &withdrew, 4).await;
        assert_eq!(used.reused, 0);
        assert!(used.full_scan.expect("a full scan").contains("opt-out"));
        let want = full(&storage, &withdrew).await;
        same(&got, &want);
        let key = column("orders", "customer_id");
        assert_eq!(want.columns[&key].opted_out, 1);

        // a raw identifier equal to a value of the lake (a channel here)
        let raw = needles(&[RAW, "web"], &[LISTED]);
        let (got, used) = cached(&storage, &raw, 4).await;
        assert!(
            used.full_scan
                .expect("a full scan")
                .contains("raw identifier")
        );
        let want = full(&storage, &raw).await;
        same(&got, &want);
        let key = column("orders", "channel");
        assert!(want.columns[&key].raw_ids > 0);

        // an order number equal to a raw identifier is a record key: not
        // compared, so not keyed, and the cache still serves
        let orders = needles(&[RAW, "O100001"], &[LISTED]);
        let (got, used) = cached(&storage, &orders, 4).await;
        assert_eq!(used.full_scan, None);
        same(&got, &full(&storage, &orders).await);
    }

    #[tokio::test]
    async fn a_file_with_a_hit_is_scanned_again_so_a_needle_taken_off_the_list_takes_its_hits_along()
     {
        let (_dir, storage) = lake().await;
        let listed = needles(&[RAW], &[ON_THE_LAKE]);
        let (got, _) = cached(&storage, &listed, 3).await;
        let key = column("feedback", "customer_id");
        assert_eq!(got.columns[&key].opted_out, 1);

        // the customer consents again: the two files they were in are read
        let consents = needles(&[RAW], &[LISTED]);
        let (got, used) = cached(&storage, &consents, 4).await;
        assert_eq!((used.reused, used.scanned, used.full_scan), (2, 2, None));
        same(&got, &full(&storage, &consents).await);
        assert_eq!(got.columns[&key].opted_out, 0);
    }

    #[tokio::test]
    async fn a_full_scan_is_due_weekly_and_whenever_the_cache_cannot_vouch_for_the_needles() {
        let (_dir, storage) = lake().await;
        let n = needles(&[RAW], &[LISTED]);
        assert!(!likely_carried(&storage, day(3)).await, "no cache yet");
        cached(&storage, &n, 3).await;
        let carried = |d| likely_carried(&storage, day(d));
        assert!(carried(4).await && carried(9).await);
        assert!(!carried(10).await && !carried(2).await);
        let (_, used) = cached(&storage, &n, 9).await;
        assert_eq!(used.full_scan, None, "six days after the full scan");
        let (_, used) = cached(&storage, &n, 10).await;
        assert!(used.full_scan.expect("due").contains("every 7 days"));
        let (_, used) = cached(&storage, &n, 9).await;
        assert!(used.full_scan.is_some(), "a date before the last full scan");

        cached(&storage, &n, 12).await;
        let hex = needles(&[RAW, "abcdef0123456789abcdef0123456789"], &[LISTED]);
        let (got, used) = cached(&storage, &hex, 12).await;
        assert!(used.full_scan.expect("full").contains("pseudonym's shape"));
        same(&got, &full(&storage, &hex).await);
        let long = "C".repeat(KEYED_LEN + 1);
        let (_, used) = cached(&storage, &needles(&[RAW, &long], &[LISTED]), 12).await;
        assert!(used.full_scan.expect("full").contains("longer"));

        storage
            .put(&cache_path(), Bytes::from_static(b"\x05\0\0\0\0\0\0\0{}"))
            .await
            .expect("put");
        assert!(!likely_carried(&storage, day(12)).await, "unreadable");
        let (got, used) = cached(&storage, &n, 12).await;
        assert_eq!(
            used.full_scan.as_deref(),
            Some("the cache of the last scan is unreadable")
        );
        same(&got, &full(&storage, &n).await);
    }

    /// Reference: a `BTreeSet` of every key added.
    #[test]
    fn the_union_of_keys_is_each_key_once_in_order() {
        let mut union = Union::default();
        let mut want = std::collections::BTreeSet::new();
        for file in 0..40u64 {
            // enough keys to fill some buffers, repeats within and across files
            let keys: Vec<u64> = (0..3000u64)
                .map(|i| {
                    (fingerprint128(&((file * 7 + i) % 20_000).to_le_bytes()) as u64) | (i % 3)
                })
                .collect();
            want.extend(keys.iter().copied());
            union.add(&keys);
        }
        union.add(&[0, u64::MAX, 0]);
        want.extend([0, u64::MAX]);
        assert_eq!(union.sorted(), want.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn the_cache_reads_back_as_written_and_keys_are_what_they_say() {
        // "01234567" in the low nibbles, "89abcdef" in the high ones
        assert_eq!(pseudonym_key(&pseudonym(LISTED)), 0xf7e6_d5c4_b3a2_9180);
        assert_eq!(pseudonym_key(&pseudonym(&"f".repeat(32))), u64::MAX);
        assert_eq!(pseudonym_key(&pseudonym(&"0".repeat(32))), 0);
        // reference: the digits' values one by one
        for i in 0..2000u64 {
            let p = pseudonym(&generated(i));
            let digit = |c: u8| u64::from(char::from(c).to_digit(16).expect("hex"));
            let want = (0..8).fold(0u64, |k, j| {
                k | (digit(p[j]) << (8 * j)) | (digit(p[8 + j]) << (8 * j + 4))
            });
            assert_eq!(pseudonym_key(&p), want, "{}", generated(i));
        }
        let mut shape = IdShape::default();
        assert_eq!(shape.longest(), 0);
        for id in ["C1", "CUST-000001", &"x".repeat(130)] {
            shape.add(id.as_bytes());
        }
        assert_eq!(shape.longest(), 130);
        assert!(!shape.may_be_pseudonym());
        shape.add(&[b'Z'; 32]);
        assert!(!shape.may_be_pseudonym(), "32 bytes, but Z is no hex digit");
        shape.add(b"9");
        assert!(
            shape.may_be_pseudonym(),
            "a hex first byte and a 32-byte length"
        );
        assert!(meet(&[1, 5, 9], &[2, 9]) && !meet(&[1, 5], &[2, 6]) && !meet(&[], &[1]));

        let cache = Cache {
            header: Header {
                scanner: scanner_digest().into(),
                keyed_len: KEYED_LEN,
                record_keys: vec![("orders".into(), "order_id".into())],
                full_scan: day(1),
                files: Vec::new(),
                pseudonym_keys: 2,
                other_keys: 1,
            },
            keys: ValueKeys {
                pseudonyms: vec![3, 7],
                others: vec![u64::MAX],
            },
        };
        let bytes = cache.encode().expect("encode");
        assert_eq!(Cache::decode(&bytes), Some(cache));
        assert_eq!(Cache::decode(&bytes[..bytes.len() - 1]), None, "cut short");
    }
}
