//! Reading the string values of lake, quarantine and mart Parquet files:
//! what the leak checks (3, 4, 5, 10) and `attune forget` look through.
//!
//! Files are read whole, one per task, on `ingest.threads` blocking
//! workers (twice as many files in flight, so reading overlaps scanning);
//! only string columns are scanned (numbers cannot hold an e-mail address
//! or a pseudonym). A column chunk whose footer statistics or dictionary
//! page already tell what every value counts as (all null, one value
//! throughout, order numbers that cannot be pseudonyms, a clean dictionary)
//! is counted without decoding a data page; the other columns are decoded,
//! those written with a dictionary as dictionaries, so a value repeated in
//! a file is scanned once per batch and counted as often as it occurs.
//! Either way the counts are those of scanning every value. Every count is
//! kept per table and column; no value ever leaves this module.

use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use bytes::Bytes;
use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, AsArray, LargeStringArray, RecordBatch, StringArray, StringViewArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use futures::StreamExt;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::basic::{ColumnOrder, Encoding, SortOrder, Type as PhysicalType};
use parquet::column::page::{Page, PageReader};
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};
use parquet::file::serialized_reader::SerializedPageReader;
use parquet::schema::types::SchemaDescriptor;

use crate::ingest::pseudonym::{PSEUDONYM_LEN, PassThrough, Pseudonym, fingerprint128};
use crate::ingest::redact::Redactor;
use crate::ingest::validate::trim_edges;
use crate::storage::{Storage, partition_dir};
use crate::{Error, Result};

/// A Parquet data file of a table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableFile {
    pub area: String,
    pub table: String,
    pub path: Path,
    /// Size, modification time and entity tag as listed: a file listed
    /// again with all three alike holds what it held (the tag tells apart
    /// two writes within a store's one-second clock).
    pub size: u64,
    pub modified: chrono::DateTime<chrono::Utc>,
    pub e_tag: Option<String>,
}

/// Which partitions of an area to list.
#[derive(Debug, Clone, Copy)]
pub enum Partitions {
    /// Every partition (the lake is history: each night adds a day).
    All,
    /// Only `dt=<date>` (marts are snapshots as of a run date).
    Of(NaiveDate),
}

/// Deletes what holds personal data where no scan looks (the catalog's `_…`
/// folders under `marts`), before rows of customers are removed: a killed
/// transform's staged tables, the value job's carried purchase
/// histories (the next night folds every order again), the empathy
/// job's carried text scores (the next night reads every text again) and
/// the ROI job's carried outcome sums (the next night counts every order
/// again) and the lake scan's cache (the next scan reads every lake file).
pub async fn clear_unscanned(storage: &Storage) -> Result<()> {
    crate::transform::clear_staging(storage).await?;
    for carried in [
        crate::value::carry::TABLE,
        crate::empathy::carry::TABLE,
        crate::roi::outcomes::TABLE,
        super::scan_cache::TABLE,
    ] {
        storage
            .delete_prefix(&Path::from(format!("marts/{carried}")))
            .await?;
    }
    Ok(())
}

/// The Parquet files of every table under `area`, sorted by path. Internal
/// folders (`_…`, `.…`) are skipped, as the catalog skips them.
pub async fn table_files(
    storage: &Storage,
    area: &str,
    which: Partitions,
) -> Result<Vec<TableFile>> {
    let listings = crate::catalog::table_listings(storage, area, |table| match which {
        Partitions::All => Path::from(format!("{area}/{table}")),
        Partitions::Of(date) => partition_dir(area, table, date),
    })
    .await?;
    let mut out = Vec::new();
    for (table, listed) in listings {
        for meta in listed {
            if meta.location.extension() == Some("parquet") {
                out.push(TableFile {
                    area: area.to_string(),
                    table: table.clone(),
                    path: meta.location,
                    size: meta.size,
                    modified: meta.last_modified,
                    e_tag: meta.e_tag,
                });
            }
        }
    }
    Ok(out)
}

/// A string column of a batch, whatever its Arrow string type.
#[derive(Debug, Clone, Copy)]
pub enum StrCol<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> StrCol<'a> {
    /// The column as strings, or `None` when it is not a string column.
    pub fn of(array: &'a dyn Array) -> Option<StrCol<'a>> {
        match array.data_type() {
            DataType::Utf8 => Some(StrCol::Utf8(array.as_string::<i32>())),
            DataType::LargeUtf8 => Some(StrCol::Large(array.as_string::<i64>())),
            DataType::Utf8View => Some(StrCol::View(array.as_string_view())),
            _ => None,
        }
    }

    /// Value `i`, `None` when null.
    pub fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            StrCol::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            StrCol::Large(a) => a.is_valid(i).then(|| a.value(i)),
            StrCol::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

/// Whether an Arrow type is a string type [`StrCol`] reads.
pub fn is_string(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// The value as a pseudonym when it has exactly a pseudonym's shape (32
/// lower-case hex characters).
pub fn as_pseudonym(s: &str) -> Option<Pseudonym> {
    let b: &Pseudonym = s.as_bytes().try_into().ok()?;
    // No early exit: every byte is tested, and the loop becomes a few
    // vector compares (it runs on every customer id of the lake).
    b.iter()
        .fold(true, |all, &c| all & is_lower_hex(c))
        .then_some(*b)
}

/// `0-9` or `a-f`, without branches.
fn is_lower_hex(c: u8) -> bool {
    (c.wrapping_sub(b'0') < 10) | (c.wrapping_sub(b'a') < 6)
}

/// Decodes the string columns of a Parquet file: (column names, batches).
pub fn read_string_columns(bytes: Bytes) -> Result<(Vec<String>, Vec<RecordBatch>)> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let schema = builder.schema().clone();
    read_strings(builder, &schema)
}

/// Reads the string columns of `schema` through `builder`: (names, batches).
fn read_strings(
    builder: ParquetRecordBatchReaderBuilder<Bytes>,
    schema: &Schema,
) -> Result<(Vec<String>, Vec<RecordBatch>)> {
    let indices: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| is_string(f.data_type()))
        .map(|(i, _)| i)
        .collect();
    let names = indices
        .iter()
        .map(|&i| schema.field(i).name().clone())
        .collect();
    if indices.is_empty() {
        return Ok((names, Vec::new()));
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let batches = builder
        .with_projection(mask)
        .build()?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((names, batches))
}

/// Scans the string columns of a Parquet file for the leak checks: (rows,
/// column names, counts per column), from one read of its footer.
/// `record_key` tells the record-key columns (see [`Needles::record_keys`]).
///
/// A column is counted from its footer and dictionary pages when every
/// chunk of it allows (`settle_column`): then no data page of it is
/// inflated (8% of the privacy job's CPU time in `perf` at 1M customers),
/// and a column settled from its statistics alone makes no zstd context
/// pair either (5%; the dictionary probe's page reader still makes one).
/// The others are decoded by `read_roots`. The scan looks for what a
/// reader could find; a settled column's data pages are not read, so a
/// damaged one is reported by the reader that reads it (a query, the
/// transform), not by this check.
fn scan_parquet(
    bytes: Bytes,
    record_key: impl Fn(&str) -> bool,
    needles: &Needles,
    redactor: &Redactor,
    mut keys: Option<&mut ValueKeys>,
) -> Result<(i64, Vec<String>, Vec<ColumnFacts>)> {
    let plain = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new())?;
    let meta = plain.metadata();
    let rows = meta.file_metadata().num_rows();
    let parquet_schema = meta.file_metadata().schema_descr();
    let mut names = Vec::new();
    let mut facts = Vec::new();
    // (position in `facts`, root column) of the columns to decode
    let mut decode: Vec<(usize, usize)> = Vec::new();
    for (root, field) in plain.schema().fields().iter().enumerate() {
        if !is_string(field.data_type()) {
            continue;
        }
        let key = record_key(field.name().as_str());
        let settled = leaf_of_root(parquet_schema, root).and_then(|leaf| {
            settle_column(
                &bytes,
                meta,
                leaf,
                key,
                needles,
                redactor,
                keys.as_deref_mut(),
            )
        });
        match settled {
            Some(counted) => facts.push(counted),
            None => {
                decode.push((facts.len(), root));
                facts.push(ColumnFacts {
                    record_key: key,
                    ..ColumnFacts::default()
                });
            }
        }
        names.push(field.name().clone());
    }
    if !decode.is_empty() {
        let roots: Vec<usize> = decode.iter().map(|&(_, root)| root).collect();
        let batches = read_roots(bytes, &plain, &roots)?;
        let mut times: Vec<u64> = Vec::new();
        for batch in &batches {
            for (&(k, _), array) in decode.iter().zip(batch.columns()) {
                scan_array(
                    array.as_ref(),
                    needles,
                    redactor,
                    &mut facts[k],
                    &mut times,
                    keys.as_deref_mut(),
                );
            }
        }
    }
    Ok((rows, names, facts))
}

/// The leaf column of root field `root` when the field is a plain
/// top-level column (not a group).
fn leaf_of_root(schema: &SchemaDescriptor, root: usize) -> Option<usize> {
    (0..schema.num_columns()).find(|&leaf| {
        schema.get_column_root_idx(leaf) == root && schema.column(leaf).path().parts().len() == 1
    })
}

/// Decodes the root columns `roots` (ascending) of a file, from its footer
/// already read. A column written with a dictionary (ids, channels,
/// topics: a customer's id once per order) reads back as its dictionary
/// and keys, so each distinct value is scanned once per batch instead of
/// once per row. A column written without one (keys, pseudonyms, free
/// text: see `Contract::distinct_columns`), or whose dictionary overflowed
/// into plain pages, is read plain: rebuilding a dictionary of values that
/// are all different hashed each of them for nothing, 9% of the privacy
/// job's CPU time in `perf` at a million customers.
fn read_roots(
    bytes: Bytes,
    plain: &ArrowReaderMetadata,
    roots: &[usize],
) -> Result<Vec<RecordBatch>> {
    let schema = plain.schema();
    let with_dictionary = dictionary_columns(plain.metadata());
    let hint =
        |f: &Field| f.data_type() == &DataType::Utf8 && with_dictionary.contains(f.name().as_str());
    let metadata = if roots.iter().any(|&i| hint(schema.field(i))) {
        let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let hinted: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| {
                let field = f.as_ref().clone();
                if hint(f.as_ref()) {
                    field.with_data_type(dictionary.clone())
                } else {
                    field
                }
            })
            .collect();
        let options = ArrowReaderOptions::new().with_schema(Arc::new(
            Schema::new(hinted).with_metadata(schema.metadata().clone()),
        ));
        ArrowReaderMetadata::try_new(plain.metadata().clone(), options)?
    } else {
        plain.clone()
    };
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, metadata);
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let batches = builder
        .with_projection(mask)
        .build()?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(batches)
}

/// The top-level columns whose chunk in every row group is keyed into a
/// dictionary page throughout (when the footer says how its data pages are
/// encoded).
fn dictionary_columns(meta: &ParquetMetaData) -> HashSet<String> {
    let groups = meta.row_groups();
    let Some(first) = groups.first() else {
        return HashSet::new();
    };
    first
        .columns()
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            c.column_path().parts().len() == 1
                && groups.iter().all(|g| {
                    let chunk = g.column(*i);
                    chunk.dictionary_page_offset().is_some()
                        && chunk
                            .page_encoding_stats_mask()
                            .is_none_or(|_| dictionary_only(chunk))
                })
        })
        .map(|(_, c)| c.column_path().parts()[0].clone())
        .collect()
}

/// Whether every data page of a chunk holds keys into its dictionary page
/// (a writer falls back to plain pages once the dictionary grows too big).
fn dictionary_only(chunk: &ColumnChunkMetaData) -> bool {
    chunk.dictionary_page_offset().is_some()
        && chunk.page_encoding_stats_mask().is_some_and(|m| {
            m.is_only(Encoding::RLE_DICTIONARY) || m.is_only(Encoding::PLAIN_DICTIONARY)
        })
}

/// Counts a string column from its chunks' footer statistics and
/// dictionary pages alone, or `None` when a chunk needs its values
/// decoded. All or nothing: the decoder reads a column in every row group.
fn settle_column(
    bytes: &Bytes,
    meta: &ParquetMetaData,
    leaf: usize,
    record_key: bool,
    needles: &Needles,
    redactor: &Redactor,
    keys: Option<&mut ValueKeys>,
) -> Option<ColumnFacts> {
    let file = meta.file_metadata();
    let descr = file.schema_descr().column(leaf);
    if descr.physical_type() != PhysicalType::BYTE_ARRAY || descr.max_rep_level() != 0 {
        return None;
    }
    // Bytewise order, which is what min and max of a string column mean.
    let ordered = matches!(
        file.column_order(leaf),
        ColumnOrder::TYPE_DEFINED_ORDER(SortOrder::UNSIGNED)
    );
    let mut facts = ColumnFacts {
        record_key,
        ..ColumnFacts::default()
    };
    // the keys of a column that turns out to need decoding are taken
    // there, so a chunk's are kept apart until every chunk settled
    let mut settled_keys = keys.is_some().then(ValueKeys::default);
    for group in meta.row_groups() {
        settle_chunk(
            bytes,
            (group.column(leaf), group.num_rows()),
            ordered,
            needles,
            redactor,
            &mut facts,
            settled_keys.as_mut(),
        )?;
    }
    if let (Some(keys), Some(settled)) = (keys, settled_keys) {
        keys.extend(settled);
    }
    Some(facts)
}

/// Counts one column chunk (of a row group of `rows` rows) into `facts`
/// without decoding a data page, when that gives exactly the counts of
/// scanning every value (and the chunk's values into `keys`):
/// - every value is null;
/// - one value throughout (exact min equal to exact max): it is scanned
///   once and counted once per row;
/// - a record key whose values cannot have a pseudonym's shape (see
///   `may_hold_pseudonym`), so only its values are counted;
/// - every data page is keyed into the dictionary page and no dictionary
///   value is anything, so only its values are counted.
///
/// `None` otherwise, and whenever the chunk is not as expected: the
/// decoder then reads it and reports any fault it meets (the data pages of
/// a settled chunk are not read, see `scan_parquet`).
fn settle_chunk(
    bytes: &Bytes,
    (chunk, rows): (&ColumnChunkMetaData, i64),
    ordered: bool,
    needles: &Needles,
    redactor: &Redactor,
    facts: &mut ColumnFacts,
    mut keys: Option<&mut ValueKeys>,
) -> Option<()> {
    let stats = chunk.statistics()?;
    // A flat column holds a value or a null per row.
    if chunk.num_values() != rows {
        return None;
    }
    let present = u64::try_from(rows)
        .ok()?
        .checked_sub(stats.null_count_opt()?)?;
    if present == 0 {
        return Some(());
    }
    let bounds = match (
        ordered && !stats.is_min_max_deprecated(),
        stats.min_bytes_opt(),
        stats.max_bytes_opt(),
    ) {
        (true, Some(min), Some(max)) => Some((min, max)),
        _ => None,
    };
    if let Some((min, max)) = bounds {
        if min == max && stats.min_is_exact() && stats.max_is_exact() {
            let only = std::str::from_utf8(min).ok()?;
            scan_value_times(only, present, needles, redactor, facts, keys);
            return Some(());
        }
        if facts.record_key && !may_hold_pseudonym(min, max) {
            facts.values += present;
            return Some(());
        }
    }
    if !dictionary_only(chunk) {
        return None;
    }
    let (page, n) = dictionary_page(bytes, chunk, usize::try_from(rows).ok()?)?;
    let mut probe = ColumnFacts {
        record_key: facts.record_key,
        ..ColumnFacts::default()
    };
    for v in plain_strings(&page, n)? {
        scan_value_times(v, 1, needles, redactor, &mut probe, keys.as_deref_mut());
        if probe.found_anything() {
            // Counting by occurrence needs the keys: the decoder reads them.
            return None;
        }
    }
    facts.values += present;
    Some(())
}

/// Whether a value between `min` and `max` (bytewise) can have a
/// pseudonym's shape. Every such value starts with the bytes `min` and
/// `max` share, so a shared prefix with a byte that is not lower-case hex
/// (`O000…` to `O999…`: order numbers), or longer than a pseudonym, rules
/// it out.
fn may_hold_pseudonym(min: &[u8], max: &[u8]) -> bool {
    let shared = min.iter().zip(max).take_while(|(a, b)| a == b).count();
    shared <= PSEUDONYM_LEN && min[..shared].iter().all(|&c| is_lower_hex(c))
}

/// A chunk's dictionary page, inflated: (PLAIN values, how many).
fn dictionary_page(
    bytes: &Bytes,
    chunk: &ColumnChunkMetaData,
    rows: usize,
) -> Option<(Bytes, usize)> {
    let mut pages = SerializedPageReader::new(Arc::new(bytes.clone()), chunk, rows, None).ok()?;
    match pages.get_next_page().ok()?? {
        Page::DictionaryPage {
            buf,
            num_values,
            encoding: Encoding::PLAIN | Encoding::PLAIN_DICTIONARY,
            ..
        } => Some((buf, usize::try_from(num_values).ok()?)),
        _ => None,
    }
}

/// The `n` values of a PLAIN-encoded byte-array page (each a 4-byte
/// little-endian length, then its bytes); `None` when the page is short or
/// a value is not UTF-8.
fn plain_strings(mut page: &[u8], n: usize) -> Option<Vec<&str>> {
    let mut out = Vec::with_capacity(n.min(page.len() / 4));
    for _ in 0..n {
        let (len, rest) = page.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
        let (value, rest) = rest.split_at_checked(len)?;
        out.push(std::str::from_utf8(value).ok()?);
        page = rest;
    }
    Some(out)
}

/// Decodes a whole Parquet file: (schema as written, batches).
pub fn read_all(bytes: Bytes) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let schema = builder.schema().clone();
    let batches = builder.build()?.collect::<Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}

/// Fingerprints, hashed as they are (they are uniform already).
pub type FingerprintSet = HashSet<u128, BuildHasherDefault<PassThrough>>;

/// Pseudonyms, hashed with foldhash: every pseudonym-shaped value of the
/// lake is looked up in two of these, and SipHash was about 6% of the
/// scan's CPU time in `perf` at 1M customers.
pub type PseudonymSet = HashSet<Pseudonym, foldhash::fast::RandomState>;

/// The first bytes and the lengths of the raw identifiers from landing. A
/// value whose first byte or length no identifier has is not one of them,
/// and is turned away without hashing it and probing the fingerprint set
/// (a million entries at a million customers: a cache miss per probe).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdShape {
    /// Bit `b`: some identifier starts with byte `b`.
    first: [u64; 4],
    /// Bit `n`: some identifier is `n` bytes long.
    lengths: Vec<u64>,
}

impl IdShape {
    /// Records an identifier, as trimmed for its fingerprint.
    pub fn add(&mut self, id: &[u8]) {
        let Some(&b) = id.first() else {
            return;
        };
        set_bit(&mut self.first, usize::from(b));
        if self.lengths.len() <= id.len() / 64 {
            self.lengths.resize(id.len() / 64 + 1, 0);
        }
        set_bit(&mut self.lengths, id.len());
    }

    /// Adds what `other` recorded.
    pub fn merge(&mut self, other: &IdShape) {
        for (a, b) in self.first.iter_mut().zip(other.first) {
            *a |= b;
        }
        if self.lengths.len() < other.lengths.len() {
            self.lengths.resize(other.lengths.len(), 0);
        }
        for (a, b) in self.lengths.iter_mut().zip(&other.lengths) {
            *a |= *b;
        }
    }

    /// The length of the longest identifier (0 when none).
    pub fn longest(&self) -> usize {
        self.lengths
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| **w != 0)
            .map_or(0, |(i, w)| i * 64 + 63 - w.leading_zeros() as usize)
    }

    /// Whether some identifier may have a pseudonym's shape (its length and
    /// a first byte that is lower-case hex).
    pub fn may_be_pseudonym(&self) -> bool {
        bit(&self.lengths, PSEUDONYM_LEN)
            && (0..=255u8).any(|b| is_lower_hex(b) && bit(&self.first, usize::from(b)))
    }

    /// Whether `value` starts with the first byte of some identifier and has
    /// the length of some identifier (an empty value never).
    pub fn admits(&self, value: &[u8]) -> bool {
        value
            .first()
            .is_some_and(|&b| bit(&self.first, usize::from(b)))
            && bit(&self.lengths, value.len())
    }
}

fn bit(words: &[u64], i: usize) -> bool {
    words.get(i / 64).is_some_and(|&w| (w >> (i % 64)) & 1 == 1)
}

fn set_bit(words: &mut [u64], i: usize) {
    words[i / 64] |= 1u64 << (i % 64);
}

/// One bit per slot for the pseudonyms on either list, the slot taken from
/// a pseudonym's leading bytes. Nearly every pseudonym of the lake is on
/// neither list, and one bit of a table that stays in cache says so, where
/// two probes of the sets (foldhash over 32 bytes, then the tables) were
/// the largest items of the privacy job's `perf` at 1M customers. A clear
/// bit is never wrong; a set bit sends the pseudonym to the sets.
#[derive(Debug, Clone, Default)]
struct PseudonymFilter {
    bits: Vec<u64>,
    /// 64 minus log2 of the number of bits: a hash's top bits are its slot.
    shift: u32,
}

impl PseudonymFilter {
    /// About 16 bits per pseudonym: a few percent of the others pass.
    fn of(lists: &[&PseudonymSet]) -> PseudonymFilter {
        let n: usize = lists.iter().map(|l| l.len()).sum();
        if n == 0 {
            return PseudonymFilter::default();
        }
        let log2 = (n * 16).next_power_of_two().trailing_zeros().clamp(6, 26);
        let mut filter = PseudonymFilter {
            bits: vec![0; 1 << (log2 - 6)],
            shift: 64 - log2,
        };
        for p in lists.iter().flat_map(|l| l.iter()) {
            let slot = filter.slot(p);
            set_bit(&mut filter.bits, slot);
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

    /// `false` only for a pseudonym on neither list.
    fn may_hold(&self, p: &Pseudonym) -> bool {
        !self.bits.is_empty() && bit(&self.bits, self.slot(p))
    }
}

/// Values longer than this (in bytes, trimmed) are not keyed: a raw
/// identifier is never that long, and free text would swell the keys.
pub const KEYED_LEN: usize = 64;

/// The values of a file a later night's new needles are checked against
/// (see `scan_cache`), as 64-bit keys: the pseudonym-shaped values of every
/// column, and the other values of the columns compared with raw
/// identifiers, trimmed as that comparison trims them and at most
/// [`KEYED_LEN`] bytes long. Two values with the same key only make a
/// needle look present when it is not, never the other way round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValueKeys {
    pub pseudonyms: Vec<u64>,
    pub others: Vec<u64>,
}

impl ValueKeys {
    /// Keys value `v` (`pseudonym` is its pseudonym when it has the shape)
    /// of a column that is a record key or not.
    fn add(&mut self, v: &str, pseudonym: Option<&Pseudonym>, record_key: bool) {
        match pseudonym {
            Some(p) => self.pseudonyms.push(pseudonym_key(p)),
            None if !record_key => {
                let t = trim_edges(v).as_bytes();
                if !t.is_empty() && t.len() <= KEYED_LEN {
                    self.others.push(other_key(fingerprint128(t)));
                }
            }
            None => {}
        }
    }

    /// Adds `o`'s keys.
    pub fn extend(&mut self, o: ValueKeys) {
        self.pseudonyms.extend(o.pseudonyms);
        self.others.extend(o.others);
    }
}

/// A pseudonym's key: the 64 bits of its first 16 hex digits (uniform
/// already: the first 64 bits of the HMAC), digit i's in byte i % 8, the
/// first eight in the low nibbles. Eight digits at a time: it runs on
/// every pseudonym of the lake when the scan keys its values.
pub fn pseudonym_key(p: &Pseudonym) -> u64 {
    // '0'..'9' keep their low nibble; 'a'..'f' (0x61..) have bit 6 and gain 9
    let nibbles = |v: u64| (v & 0x0f0f_0f0f_0f0f_0f0f) + ((v >> 6) & 0x0101_0101_0101_0101) * 9;
    let half = |i: usize| u64::from_le_bytes(std::array::from_fn(|j| p[i + j]));
    nibbles(half(0)) | (nibbles(half(8)) << 4)
}

/// A raw identifier's or other value's key: its fingerprint's low half.
pub fn other_key(fingerprint: u128) -> u64 {
    fingerprint as u64
}

/// What the leak checks look for. Built by [`Needles::new`], which derives
/// the pre-filters from the sets.
#[derive(Debug, Default)]
pub struct Needles {
    /// Fingerprints of the raw (trimmed) customer identifiers seen in landing.
    pub raw_ids: FingerprintSet,
    /// First bytes and lengths of those identifiers: other values are not
    /// looked up.
    pub raw_shape: IdShape,
    /// Pseudonyms of customers who declined analytics.
    pub opted_out: PseudonymSet,
    /// Pseudonyms on the erasure list.
    pub erased: PseudonymSet,
    /// Record keys (`order_id`, `ticket_id`, … and mart columns computed
    /// only from them): numbers a business assigns, which can equal a
    /// customer number or look like a phone number by coincidence, so they
    /// are not compared with raw identifiers nor run through the detectors.
    pub record_keys: HashSet<ColumnKey>,
    /// `opted_out` and `erased` as a bitmap.
    listed: PseudonymFilter,
}

impl Needles {
    /// The needles, with `raw_shape` the shape of the identifiers whose
    /// fingerprints are `raw_ids`.
    pub fn new(
        raw_ids: FingerprintSet,
        raw_shape: IdShape,
        opted_out: PseudonymSet,
        erased: PseudonymSet,
        record_keys: HashSet<ColumnKey>,
    ) -> Needles {
        let listed = PseudonymFilter::of(&[&opted_out, &erased]);
        Needles {
            raw_ids,
            raw_shape,
            opted_out,
            erased,
            record_keys,
            listed,
        }
    }
}

/// Counts for one column of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnFacts {
    /// Non-null values scanned.
    pub values: u64,
    /// Values with at least one personal-data item (pseudonyms excluded).
    pub pii_values: u64,
    /// Items found, by kind (`email`, `phone`, `card`, `iban`, `ip`).
    pub pii_items: BTreeMap<&'static str, u64>,
    /// Values equal to a raw customer identifier from landing.
    pub raw_ids: u64,
    /// Values equal to the pseudonym of an opted-out customer.
    pub opted_out: u64,
    /// Values equal to the pseudonym of an erased customer.
    pub erased: u64,
    /// A record key column (see [`Needles::record_keys`]).
    pub record_key: bool,
}

impl ColumnFacts {
    fn add(&mut self, o: &ColumnFacts) {
        self.values += o.values;
        self.pii_values += o.pii_values;
        for (k, n) in &o.pii_items {
            *self.pii_items.entry(k).or_default() += n;
        }
        self.raw_ids += o.raw_ids;
        self.opted_out += o.opted_out;
        self.erased += o.erased;
        self.record_key |= o.record_key;
    }

    /// Whether anything but values was counted.
    fn found_anything(&self) -> bool {
        self.pii_values > 0
            || !self.pii_items.is_empty()
            || self.raw_ids > 0
            || self.opted_out > 0
            || self.erased > 0
    }
}

/// (area, table, column).
pub type ColumnKey = (String, String, String);

/// Everything the leak scan counted.
#[derive(Debug, Clone, Default)]
pub struct ScanFacts {
    pub columns: BTreeMap<ColumnKey, ColumnFacts>,
    pub files: u64,
    /// Rows of the files scanned.
    pub rows: u64,
    /// Rows per (area, table).
    pub table_rows: BTreeMap<(String, String), u64>,
}

impl ScanFacts {
    /// Adds `o`'s counts: scans of disjoint files merge into the scan of all.
    pub fn merge(&mut self, o: ScanFacts) {
        for (k, v) in o.columns {
            self.columns.entry(k).or_default().add(&v);
        }
        self.files += o.files;
        self.rows += o.rows;
        for (k, v) in o.table_rows {
            *self.table_rows.entry(k).or_default() += v;
        }
    }
}

/// Scans every string value of `files` for personal data and the needles.
pub async fn scan_leaks(
    storage: &Storage,
    files: Vec<TableFile>,
    needles: Arc<Needles>,
    threads: usize,
) -> Result<ScanFacts> {
    let mut facts = ScanFacts::default();
    for (_, of_file) in scan_each(storage, files, needles, threads).await? {
        facts.merge(of_file);
    }
    Ok(facts)
}

/// [`scan_leaks`], with each file's counts apart (in no particular order).
/// A file gone since it was listed holds nothing to find and is left out:
/// the early scan of the marts lists them while jobs still write theirs.
pub async fn scan_each(
    storage: &Storage,
    files: Vec<TableFile>,
    needles: Arc<Needles>,
    threads: usize,
) -> Result<Vec<(TableFile, ScanFacts)>> {
    let scanned = scan_files(storage, files, needles, threads, false).await?;
    Ok(scanned
        .into_iter()
        .map(|(f, facts, _)| (f, facts))
        .collect())
}

/// [`scan_each`], with each file's [`ValueKeys`] (as they came: a key
/// repeats when its value does in separate batches or columns).
pub async fn scan_each_keyed(
    storage: &Storage,
    files: Vec<TableFile>,
    needles: Arc<Needles>,
    threads: usize,
) -> Result<Vec<(TableFile, ScanFacts, ValueKeys)>> {
    scan_files(storage, files, needles, threads, true).await
}

async fn scan_files(
    storage: &Storage,
    files: Vec<TableFile>,
    needles: Arc<Needles>,
    threads: usize,
    keyed: bool,
) -> Result<Vec<(TableFile, ScanFacts, ValueKeys)>> {
    let redactor = Arc::new(Redactor::new());
    let mut tasks = futures::stream::iter(files.into_iter().map(|f| {
        let (needles, redactor, storage) = (needles.clone(), redactor.clone(), storage.clone());
        async move {
            let Some(bytes) = storage.get_opt(&f.path).await? else {
                return Ok(None);
            };
            tokio::task::spawn_blocking(move || {
                let mut keys = ValueKeys::default();
                let facts = scan_file(&f, bytes, &needles, &redactor, keyed.then_some(&mut keys))?;
                Ok::<_, Error>(Some((f, facts, keys)))
            })
            .await
            .map_err(crate::nightly::panics::joined("a scan worker"))?
        }
    }))
    // twice as many files in flight as workers: one is read while the
    // other is scanned, so no worker waits for the store
    .buffer_unordered(threads.max(1) * 2);
    let mut out = Vec::new();
    while let Some(r) = tasks.next().await {
        out.extend(r?);
    }
    Ok(out)
}

fn scan_file(
    f: &TableFile,
    bytes: Bytes,
    needles: &Needles,
    redactor: &Redactor,
    keys: Option<&mut ValueKeys>,
) -> Result<ScanFacts> {
    let label = |e: Error| Error::input(f.path.to_string(), e.to_string());
    let record_key = |column: &str| {
        needles
            .record_keys
            .contains(&(f.area.clone(), f.table.clone(), column.to_string()))
    };
    let (rows, names, per_column) =
        scan_parquet(bytes, record_key, needles, redactor, keys).map_err(label)?;
    let mut out = ScanFacts {
        files: 1,
        rows: u64::try_from(rows).unwrap_or(0),
        ..ScanFacts::default()
    };
    out.table_rows
        .insert((f.area.clone(), f.table.clone()), out.rows);
    for (name, facts) in names.into_iter().zip(per_column) {
        out.columns
            .insert((f.area.clone(), f.table.clone(), name), facts);
    }
    Ok(out)
}

/// Counts the values of a decoded column into `facts`; `times` is scratch.
fn scan_array(
    array: &dyn Array,
    needles: &Needles,
    redactor: &Redactor,
    facts: &mut ColumnFacts,
    times: &mut Vec<u64>,
    mut keys: Option<&mut ValueKeys>,
) {
    if let Some(dict) = array.as_dictionary_opt::<Int32Type>()
        && let Some(values) = StrCol::of(dict.values().as_ref())
    {
        // each distinct value once, counted as often as it occurs
        times.clear();
        times.resize(dict.values().len(), 0);
        for k in dict.keys().iter().flatten() {
            times[k as usize] += 1;
        }
        for (j, &n) in times.iter().enumerate() {
            if n > 0
                && let Some(v) = values.get(j)
            {
                scan_value_times(v, n, needles, redactor, facts, keys.as_deref_mut());
            }
        }
        return;
    }
    let Some(col) = StrCol::of(array) else {
        return;
    };
    for i in 0..array.len() {
        if let Some(v) = col.get(i) {
            scan_value_times(v, 1, needles, redactor, facts, keys.as_deref_mut());
        }
    }
}

/// Counts one value into `facts`.
pub fn scan_value(v: &str, needles: &Needles, redactor: &Redactor, facts: &mut ColumnFacts) {
    scan_value_times(v, 1, needles, redactor, facts, None);
}

/// Counts a value that occurs `times` times into `facts`, as many calls of
/// [`scan_value`] would.
fn scan_value_times(
    v: &str,
    times: u64,
    needles: &Needles,
    redactor: &Redactor,
    facts: &mut ColumnFacts,
    keys: Option<&mut ValueKeys>,
) {
    facts.values += times;
    let pseudonym = as_pseudonym(v);
    if !facts.record_key {
        let t = trim_edges(v).as_bytes();
        if needles.raw_shape.admits(t) && needles.raw_ids.contains(&fingerprint128(t)) {
            facts.raw_ids += times;
        }
    }
    if let Some(keys) = keys {
        keys.add(v, pseudonym.as_ref(), facts.record_key);
    }
    if let Some(p) = pseudonym {
        // A pseudonym is hex: its digit runs can look like a phone number
        // to the detectors, and it cannot be anything else personal.
        if needles.listed.may_hold(&p) {
            facts.opted_out += times * u64::from(needles.opted_out.contains(&p));
            facts.erased += times * u64::from(needles.erased.contains(&p));
        }
        return;
    }
    if facts.record_key {
        return;
    }
    let hits = redactor.scan(v);
    if !hits.is_empty() {
        facts.pii_values += times;
        for (kind, n) in hits {
            *facts.pii_items.entry(kind.name()).or_default() += times * n as u64;
        }
    }
}

/// A Parquet file of an `amount` column and string columns, for tests.
#[cfg(test)]
pub(crate) fn write_parquet(
    columns: &[(&str, Vec<Option<String>>)],
    props: parquet::file::properties::WriterProperties,
) -> Bytes {
    use datafusion::arrow::array::{ArrayRef, Int64Array};
    use parquet::arrow::ArrowWriter;

    let rows = columns[0].1.len();
    let mut fields = vec![Field::new("amount", DataType::Int64, false)];
    let mut arrays: Vec<ArrayRef> = Vec::new();
    arrays.push(Arc::new(Int64Array::from_iter_values(0..rows as i64)));
    for (name, values) in columns {
        fields.push(Field::new(*name, DataType::Utf8, true));
        arrays.push(Arc::new(StringArray::from(values.clone())));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).expect("batch");
    let mut bytes = Vec::new();
    let mut w = ArrowWriter::try_new(&mut bytes, schema, Some(props)).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    Bytes::from(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: [&str; 3] = ["CUST-0001", "C2", "é7"];
    const OPTED_OUT: &str = "0123456789abcdef0123456789abcdef";
    const ERASED: &str = "fedcba9876543210fedcba9876543210";

    fn pseudonym(s: &str) -> Pseudonym {
        s.as_bytes().try_into().expect("32 bytes")
    }

    /// A pseudonym-shaped value: 32 lower-case hex digits.
    fn generated(i: u64) -> String {
        format!("{:032x}", fingerprint128(&i.to_le_bytes()))
    }

    fn needles_with(extra_opted_out: impl IntoIterator<Item = Pseudonym>) -> Needles {
        let mut shape = IdShape::default();
        for r in RAW {
            shape.add(r.as_bytes());
        }
        let mut opted_out: PseudonymSet = [pseudonym(OPTED_OUT)].into_iter().collect();
        opted_out.extend(extra_opted_out);
        Needles::new(
            RAW.iter().map(|r| fingerprint128(r.as_bytes())).collect(),
            shape,
            opted_out,
            [pseudonym(ERASED)].into_iter().collect(),
            HashSet::new(),
        )
    }

    fn needles() -> Needles {
        needles_with(Vec::<Pseudonym>::new())
    }

    /// The scan of one value as it was before the pre-filters (trim every
    /// value, look up every short one, probe both lists for every
    /// pseudonym), kept as the reference the fast paths must agree with.
    fn reference_scan(v: &str, n: &Needles, r: &Redactor, facts: &mut ColumnFacts) {
        let raw_max_len = RAW.iter().map(|s| s.len()).max().expect("ids");
        facts.values += 1;
        let t = v.trim();
        if !facts.record_key
            && !t.is_empty()
            && t.len() <= raw_max_len
            && n.raw_ids.contains(&fingerprint128(t.as_bytes()))
        {
            facts.raw_ids += 1;
        }
        let b = v.as_bytes();
        if b.len() == PSEUDONYM_LEN && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            let p: Pseudonym = b.try_into().expect("32 bytes");
            facts.opted_out += u64::from(n.opted_out.contains(&p));
            facts.erased += u64::from(n.erased.contains(&p));
            return;
        }
        if facts.record_key {
            return;
        }
        let hits = r.scan(v);
        if !hits.is_empty() {
            facts.pii_values += 1;
            for (kind, k) in hits {
                *facts.pii_items.entry(kind.name()).or_default() += k as u64;
            }
        }
    }

    #[test]
    fn record_keys_are_only_checked_for_pseudonyms() {
        let (n, r) = (needles(), Redactor::new());
        let key = || ColumnFacts {
            record_key: true,
            ..ColumnFacts::default()
        };
        // An order number equal to a customer number, or shaped like a phone.
        for v in ["C2", "612345678"] {
            let mut f = key();
            scan_value(v, &n, &r, &mut f);
            assert_eq!((f.values, f.raw_ids, f.pii_values), (1, 0, 0), "{v}");
        }
        let mut f = key();
        scan_value(OPTED_OUT, &n, &r, &mut f);
        assert_eq!(f.opted_out, 1, "a pseudonym in a key column still counts");
        let mut plain = ColumnFacts::default();
        scan_value("612345678", &n, &r, &mut plain);
        assert_eq!(plain.pii_values, 1, "the same value as text is a phone");
    }

    #[test]
    fn each_value_is_counted_for_what_it_is() {
        let (n, r) = (needles(), Redactor::new());
        type Counter = fn(&ColumnFacts) -> u64;
        let cases: &[(&str, Counter)] = &[
            ("CUST-0001", |f| f.raw_ids),
            (" C2 ", |f| f.raw_ids),
            ("\u{a0}é7\t", |f| f.raw_ids),
            (OPTED_OUT, |f| f.opted_out),
            (ERASED, |f| f.erased),
            ("write to ana@example.com", |f| f.pii_values),
        ];
        for (v, counter) in cases {
            let mut f = ColumnFacts::default();
            scan_value(v, &n, &r, &mut f);
            assert_eq!(counter(&f), 1, "{v:?}: {f:?}");
            assert_eq!(f.values, 1);
        }
    }

    #[test]
    fn lookalikes_are_not_counted() {
        let (n, r) = (needles(), Redactor::new());
        for v in [
            "CUST-00012",                       // a longer id that contains a raw one
            "C",                                // a prefix
            "c2",                               // another case
            "1234567890abcdef0123456789abcdef", // some other pseudonym
            // a pseudonym whose leading digits look like a phone number
            "0612345678abcdef0123456789abcdef",
            "Great croissants for 3.50 at 12:30 on 2025-03-01",
            "",
        ] {
            let mut f = ColumnFacts::default();
            scan_value(v, &n, &r, &mut f);
            assert_eq!(
                (f.raw_ids, f.opted_out, f.erased, f.pii_values),
                (0, 0, 0, 0),
                "{v:?}"
            );
        }
    }

    #[test]
    fn pii_items_are_counted_by_kind() {
        let (n, r) = (needles(), Redactor::new());
        let mut f = ColumnFacts::default();
        scan_value("a@b.com, c@d.org and 10.0.0.1", &n, &r, &mut f);
        assert_eq!(f.pii_values, 1);
        assert_eq!(f.pii_items, BTreeMap::from([("email", 2), ("ip", 1)]));
    }

    /// Differential: the pre-filtered scan against the reference, on the
    /// edges the pre-filters decide (whitespace the trim skips, first bytes
    /// and lengths of raw ids, hex case, pseudonym lengths, the bitmap of
    /// listed pseudonyms), in plain and in record-key columns.
    #[test]
    fn the_prefilters_count_as_the_reference_scan() {
        let listed: Vec<String> = (0..2000).map(generated).collect();
        let n = needles_with(listed.iter().map(|s| pseudonym(s)));
        let r = Redactor::new();
        let mut values: Vec<String> = [
            "",
            " ",
            "\t",
            "C2",
            " C2",
            "C2 ",
            "\tC2\n",
            "\u{a0}C2",
            "C2\u{3000}",
            "\u{b}C2",
            "\u{1f}C2",
            "C2\u{7f}",
            "c2",
            "C22",
            "C",
            "C3",
            "CUST-0001",
            " CUST-0001 ",
            "CUST-0002",
            "CUST-00012",
            "é7",
            " é7",
            "é8",
            "ë7",
            "7é",
            OPTED_OUT,
            ERASED,
            " 0123456789abcdef0123456789abcdef",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef0123456789abcdeg",
            "0123456789abcdef0123456789abcdeé",
            "call 0612345678",
            "ana@example.com",
            "in_store",
            "EUR",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        values.extend((0..4000).map(generated)); // half of them listed
        values.extend((0..50).map(|i| generated(i).to_uppercase()));
        for record_key in [false, true] {
            let start = ColumnFacts {
                record_key,
                ..ColumnFacts::default()
            };
            let mut all_got = start.clone();
            let mut all_want = start.clone();
            for v in &values {
                let (mut got, mut want) = (start.clone(), start.clone());
                scan_value(v, &n, &r, &mut got);
                reference_scan(v, &n, &r, &mut want);
                assert_eq!(got, want, "{v:?} (record key: {record_key})");
                scan_value(v, &n, &r, &mut all_got);
                reference_scan(v, &n, &r, &mut all_want);
            }
            assert_eq!(all_got, all_want);
            assert_eq!(all_got.opted_out, 2001, "every listed pseudonym is found");
            assert_eq!(all_got.erased, 1);
            assert_eq!(all_got.raw_ids, if record_key { 0 } else { 11 });
        }
    }

    #[test]
    fn the_id_shape_admits_every_recorded_id_and_few_others() {
        let mut a = IdShape::default();
        a.add(b"C0000001");
        a.add(b"");
        let mut b = IdShape::default();
        b.add("é7".as_bytes());
        b.add(&[b'x'; 130]);
        a.merge(&b);
        let recorded: [&[u8]; 3] = [b"C0000001", "é7".as_bytes(), &[b'x'; 130]];
        for id in recorded {
            assert!(a.admits(id), "{id:?}");
        }
        let others: [&[u8]; 7] = [
            b"",
            b"C000001",   // another length
            b"D0000001",  // another first byte
            b"c0000001",  // another case
            b" C0000001", // untrimmed
            &[b'x'; 129],
            &[b'x'; 500],
        ];
        for other in others {
            assert!(!a.admits(other), "{other:?}");
        }
        assert!(!IdShape::default().admits(b"C0000001"));
    }

    #[test]
    fn the_pseudonym_bitmap_never_misses_a_listed_one() {
        let listed: PseudonymSet = (0..5000).map(|i| pseudonym(&generated(i))).collect();
        let filter = PseudonymFilter::of(&[&listed, &PseudonymSet::default()]);
        assert!(listed.iter().all(|p| filter.may_hold(p)));
        let passed = (5000..10_000)
            .filter(|&i| filter.may_hold(&pseudonym(&generated(i))))
            .count();
        assert!(passed < 1000, "{passed} of 5000 others pass the bitmap");
        let empty = PseudonymFilter::of(&[]);
        assert!(!empty.may_hold(&pseudonym(OPTED_OUT)));
    }

    #[test]
    fn pseudonym_shape_is_exact() {
        assert!(as_pseudonym("0123456789abcdef0123456789abcdef").is_some());
        assert!(as_pseudonym("0123456789ABCDEF0123456789ABCDEF").is_none());
        assert!(as_pseudonym("0123456789abcdef0123456789abcde").is_none());
        assert!(as_pseudonym("0123456789abcdef0123456789abcdef0").is_none());
        assert!(as_pseudonym("0123456789abcdef0123456789abcdeg").is_none());
        assert!(as_pseudonym("0123456789abcdef0123456789abcd/f").is_none());
        assert!(as_pseudonym("0123456789abcdef0123456789abcd:f").is_none());
        assert!(as_pseudonym("0123456789abcdef0123456789abcd`f").is_none());
        assert!(as_pseudonym(" 123456789abcdef0123456789abcdef").is_none());
        assert!(as_pseudonym("é23456789abcdef0123456789abcdef").is_none());
        for c in 0..=255u8 {
            assert_eq!(
                is_lower_hex(c),
                matches!(c, b'0'..=b'9' | b'a'..=b'f'),
                "{c}"
            );
        }
    }

    #[test]
    fn a_shared_prefix_rules_pseudonyms_out() {
        let hex32 = "0123456789abcdef0123456789abcdef";
        let cases: &[(&str, &str, bool)] = &[
            ("O000000001", "O000999999", false), // order numbers
            ("T00000001", "T99999999", false),
            ("A0", "Azz", false), // upper case is not a pseudonym's
            ("0123", "0129", true),
            ("0a", "fz", true), // nothing shared
            ("", "zzz", true),
            (hex32, hex32, true),
            (
                "0123456789abcdef0123456789abcdef0a",
                "0123456789abcdef0123456789abcdef0b",
                false,
            ),
            (
                "0123456789abcdef0123456789abcdefa",
                "0123456789abcdef0123456789abcdefb",
                true,
            ),
        ];
        for &(min, max, want) in cases {
            assert_eq!(
                may_hold_pseudonym(min.as_bytes(), max.as_bytes()),
                want,
                "{min}..{max}"
            );
        }
    }

    #[test]
    fn plain_pages_split_into_their_strings() {
        let mut page = Vec::new();
        for v in ["in_store", "", "é", "app"] {
            page.extend_from_slice(&u32::try_from(v.len()).expect("short").to_le_bytes());
            page.extend_from_slice(v.as_bytes());
        }
        assert_eq!(
            plain_strings(&page, 4),
            Some(vec!["in_store", "", "é", "app"])
        );
        assert_eq!(plain_strings(&page, 2), Some(vec!["in_store", ""]));
        assert_eq!(
            plain_strings(&page, 5),
            None,
            "more values than the page holds"
        );
        assert_eq!(plain_strings(&page[..page.len() - 1], 4), None, "cut short");
        let not_utf8: [u8; 5] = [1, 0, 0, 0, 0xff];
        assert_eq!(plain_strings(&not_utf8, 1), None);
    }

    /// Reference: every string value of the file, read plain, one call of
    /// `reference_scan` each.
    fn reference_file(
        bytes: Bytes,
        record_key: impl Fn(&str) -> bool,
        n: &Needles,
        r: &Redactor,
    ) -> (Vec<String>, Vec<ColumnFacts>) {
        let (names, batches) = read_string_columns(bytes).expect("read");
        let facts = names
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let mut want = ColumnFacts {
                    record_key: record_key(name.as_str()),
                    ..ColumnFacts::default()
                };
                for b in &batches {
                    let col = StrCol::of(b.column(k).as_ref()).expect("a string column");
                    for i in 0..b.num_rows() {
                        if let Some(v) = col.get(i) {
                            reference_scan(v, n, r, &mut want);
                        }
                    }
                }
                want
            })
            .collect();
        (names, facts)
    }

    /// Every way a column chunk is counted from its footer and dictionary
    /// page, and every way it falls back to decoding, over several row
    /// groups, against the reference scan of every value.
    #[test]
    fn a_file_counted_from_its_footer_counts_as_value_by_value() {
        use parquet::basic::{Compression, ZstdLevel};
        use parquet::file::properties::WriterProperties;
        use parquet::schema::types::ColumnPath;

        let (n, r) = (needles(), Redactor::new());
        let rows = 3000;
        let column = |f: &dyn Fn(usize) -> Option<String>| -> Vec<Option<String>> {
            (0..rows).map(f).collect()
        };
        let s = |v: &str| Some(v.to_string());
        let columns: Vec<(&str, Vec<Option<String>>)> = vec![
            (
                "order_id",
                column(&|i| (i % 13 != 0).then(|| format!("O{i:09}"))),
            ),
            (
                "hex_key",
                column(&|i| {
                    Some(match i {
                        _ if i % 100 == 0 => OPTED_OUT.to_string(),
                        _ if i % 7 == 0 => generated(i as u64),
                        _ => ERASED.to_string(),
                    })
                }),
            ),
            (
                "channel",
                column(&|i| (i % 17 != 0).then(|| ["in_store", "online", "app"][i % 3].into())),
            ),
            ("currency", column(&|_| s("EUR"))),
            ("padded_id", column(&|_| s(" C2 "))),
            ("empty", column(&|_| None)),
            (
                "leaky",
                column(&|i| s(["app", "online", "CUST-0001"][i % 3])),
            ),
            (
                "customer_id",
                column(&|i| {
                    Some(if i % 50 == 0 {
                        ERASED.into()
                    } else {
                        generated(i as u64)
                    })
                }),
            ),
            (
                "comment",
                column(&|i| (i % 5 != 0).then(|| format!("note {i}: call 612345678, a{i}@b.com"))),
            ),
            (
                "fallback",
                column(&|i| Some(format!("value number {}", i % 700))),
            ),
        ];
        let plain = |c: &str| ColumnPath::from(c);
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("level 1")))
            .set_max_row_group_row_count(Some(1000))
            .set_data_page_row_count_limit(200)
            .set_write_batch_size(100)
            .set_column_dictionary_enabled(plain("hex_key"), false)
            .set_column_dictionary_enabled(plain("customer_id"), false)
            .set_column_dictionary_enabled(plain("comment"), false)
            .set_column_dictionary_page_size_limit(plain("fallback"), 256)
            .build();
        let bytes = write_parquet(&columns, props);
        let record_key = |c: &str| c == "order_id" || c == "hex_key";

        let footer = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new()).expect("footer");
        assert_eq!(footer.metadata().num_row_groups(), 3);
        let leaf = |c: &str| {
            let root = footer.schema().index_of(c).expect("column");
            leaf_of_root(footer.metadata().file_metadata().schema_descr(), root).expect("leaf")
        };
        let settled = |c: &str| {
            settle_column(
                &bytes,
                footer.metadata(),
                leaf(c),
                record_key(c),
                &n,
                &r,
                None,
            )
            .is_some()
        };
        for c in ["order_id", "channel", "currency", "padded_id", "empty"] {
            assert!(settled(c), "{c} is counted from its footer");
        }
        for c in ["hex_key", "leaky", "customer_id", "comment", "fallback"] {
            assert!(!settled(c), "{c} is decoded");
        }
        let chunk = |c: &str| footer.metadata().row_group(0).column(leaf(c)).clone();
        assert!(dictionary_only(&chunk("channel")));
        assert!(
            !dictionary_only(&chunk("fallback")),
            "the dictionary overflowed"
        );
        let root = |c: &str| footer.schema().index_of(c).expect("column");
        let decoded =
            read_roots(bytes.clone(), &footer, &[root("leaky"), root("fallback")]).expect("decode");
        assert!(
            matches!(decoded[0].column(0).data_type(), DataType::Dictionary(..)),
            "a column keyed into its dictionary throughout is read as one"
        );
        assert_eq!(
            decoded[0].column(1).data_type(),
            &DataType::Utf8,
            "a column whose dictionary overflowed is read plain"
        );

        let (got_rows, names, got) =
            scan_parquet(bytes.clone(), record_key, &n, &r, None).expect("scan");
        let (want_names, want) = reference_file(bytes, record_key, &n, &r);
        assert_eq!(got_rows, rows as i64);
        assert_eq!(names, want_names);
        assert_eq!(
            names.len(),
            columns.len(),
            "every string column, not `amount`"
        );
        for (k, name) in names.iter().enumerate() {
            assert_eq!(got[k], want[k], "{name}");
        }
        let of = |c: &str| want[names.iter().position(|x| x == c).expect("column")].clone();
        assert_eq!(of("padded_id").raw_ids, rows as u64);
        assert_eq!(of("empty").values, 0);
        assert!(of("order_id").values > 0 && of("channel").values > 0);
        assert!(of("hex_key").opted_out > 0 && of("hex_key").erased > 0);
        assert!(of("leaky").raw_ids > 0 && of("customer_id").erased > 0);
        assert!(of("comment").pii_values > 2000);
    }

    /// The lake as ingest writes it (a column written with a dictionary,
    /// one without), through `scan_file`: the same counts as value by value.
    #[test]
    fn a_file_scanned_by_distinct_value_counts_as_value_by_value() {
        use parquet::file::properties::WriterProperties;
        use parquet::schema::types::ColumnPath;

        let (n, r) = (needles(), Redactor::new());
        let pool = [
            Some("CUST-0001"),
            Some(OPTED_OUT),
            Some(ERASED),
            Some("write to ana@example.com or 10.0.0.1"),
            Some("fine"),
            None,
        ];
        let rows = 5000;
        let repeated: Vec<Option<String>> = (0..rows)
            .map(|i| pool[(i * 7) % pool.len()].map(str::to_string))
            .collect();
        let unique: Vec<Option<String>> = (0..rows)
            .map(|i| (i % 11 != 0).then(|| format!("note {i} call 612345678")))
            .collect();
        // small batches and pages: several batches share one dictionary
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2000))
            .set_data_page_row_count_limit(500)
            .set_column_dictionary_enabled(ColumnPath::from("unique"), false)
            .build();
        let bytes = write_parquet(&[("repeated", repeated), ("unique", unique)], props);
        let file = TableFile {
            area: "lake".into(),
            table: "t".into(),
            path: Path::from("lake/t/dt=2025-01-01/part-0.parquet"),
            size: 0,
            modified: chrono::DateTime::default(),
            e_tag: None,
        };
        let got = scan_file(&file, bytes.clone(), &n, &r, None).expect("scan");
        let (names, want) = reference_file(bytes, |_| false, &n, &r);
        assert_eq!(names, ["repeated", "unique"]);
        let key = |c: &str| ("lake".to_string(), "t".to_string(), c.to_string());
        assert_eq!(got.columns[&key("repeated")], want[0]);
        assert_eq!(got.columns[&key("unique")], want[1]);
        assert!(!got.columns.contains_key(&key("amount")));
        assert!(want[0].raw_ids > 0 && want[0].opted_out > 0);
        assert!(want[0].erased > 0 && want[0].pii_values > 0);
        assert!(want[1].pii_values > 4000);
        assert_eq!(got.rows, rows as u64);
    }

    /// A file listed, then removed before it is read (a job replacing its
    /// mart while the early scan runs) is left out, not an error; the
    /// others count as they would alone.
    #[tokio::test]
    async fn a_file_gone_since_listed_is_left_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path().to_str().expect("utf-8")).expect("storage");
        let props = || parquet::file::properties::WriterProperties::builder().build();
        let kept = write_parquet(
            &[("note", vec![Some("mail ana@example.com".into())])],
            props(),
        );
        let gone = write_parquet(&[("note", vec![Some("call 612345678".into())])], props());
        for (table, bytes) in [("kept", &kept), ("gone", &gone)] {
            let path = Path::from(format!("marts/{table}/dt=2025-01-01/part-0.parquet"));
            storage.put(&path, bytes.clone()).await.expect("put");
        }
        let files = table_files(&storage, "marts", Partitions::All)
            .await
            .expect("listed");
        assert_eq!(files.len(), 2);
        storage
            .delete(&Path::from("marts/gone/dt=2025-01-01/part-0.parquet"))
            .await
            .expect("delete");
        let got = scan_each(&storage, files, Arc::new(needles()), 2)
            .await
            .expect("a missing file is no error");
        assert_eq!(got.len(), 1);
        let (file, facts) = &got[0];
        assert_eq!(file.table, "kept");
        let alone = scan_file(file, kept, &needles(), &Redactor::new(), None).expect("scan");
        let key = ("marts".to_string(), "kept".to_string(), "note".to_string());
        assert_eq!(facts.columns[&key], alone.columns[&key]);
        assert_eq!(facts.columns[&key].pii_values, 1);
    }
}
