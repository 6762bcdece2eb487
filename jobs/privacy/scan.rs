//! Reading the string values of lake, quarantine and mart Parquet files:
//! what the leak checks (3, 4, 5, 10) and `attune forget` look through.
//!
//! Files are read whole, one per task, on `ingest.threads` blocking
//! workers (twice as many files in flight, so reading overlaps scanning);
//! only string columns are decoded for scans (numbers cannot hold an e-mail
//! address or a pseudonym), as dictionaries, so a value repeated in a file
//! is scanned once per batch and counted as often as it occurs. Every
//! count is kept per table and column; no value ever leaves this module.

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
use parquet::file::metadata::ParquetMetaData;

use crate::ingest::pseudonym::{PSEUDONYM_LEN, PassThrough, Pseudonym, fingerprint128};
use crate::ingest::redact::Redactor;
use crate::storage::{Storage, partition_dir};
use crate::{Error, Result};

/// A Parquet data file of a table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableFile {
    pub area: String,
    pub table: String,
    pub path: Path,
}

/// Which partitions of an area to list.
#[derive(Debug, Clone, Copy)]
pub enum Partitions {
    /// Every partition (the lake is history: each night adds a day).
    All,
    /// Only `dt=<date>` (marts are snapshots as of a run date).
    Of(NaiveDate),
}

/// The Parquet files of every table under `area`, sorted by path. Internal
/// folders (`_…`, `.…`) are skipped, as the catalog skips them.
pub async fn table_files(
    storage: &Storage,
    area: &str,
    which: Partitions,
) -> Result<Vec<TableFile>> {
    let mut out = Vec::new();
    for table in storage.list_dirs(&Path::from(area)).await? {
        if table.starts_with('_') || table.starts_with('.') {
            continue;
        }
        let prefix = match which {
            Partitions::All => Path::from(format!("{area}/{table}")),
            Partitions::Of(date) => partition_dir(area, &table, date),
        };
        for meta in storage.list(&prefix).await? {
            if meta.location.extension() == Some("parquet") {
                out.push(TableFile {
                    area: area.to_string(),
                    table: table.clone(),
                    path: meta.location,
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
    let b = s.as_bytes();
    if b.len() != PSEUDONYM_LEN || !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    b.try_into().ok()
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

/// Decodes the string columns of a Parquet file for the leak scan: (rows,
/// column names, batches), from one read of its footer. A column written
/// with a dictionary (ids, channels, topics: a customer's id once per
/// order) reads back as its dictionary and keys, so each distinct value is
/// scanned once per batch instead of once per row. A column written
/// without one (keys, pseudonyms, free text: see
/// `Contract::distinct_columns`) is read plain: rebuilding a dictionary of
/// values that are all different hashed each of them for nothing, 9% of
/// the privacy job's CPU time in `perf` at a million customers.
fn read_for_scan(bytes: Bytes) -> Result<(i64, Vec<String>, Vec<RecordBatch>)> {
    let plain = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new())?;
    let rows = plain.metadata().file_metadata().num_rows();
    let schema = plain.schema().clone();
    let with_dictionary = dictionary_columns(plain.metadata());
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let hinted: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let field = f.as_ref().clone();
            if f.data_type() == &DataType::Utf8 && with_dictionary.contains(f.name().as_str()) {
                field.with_data_type(dictionary.clone())
            } else {
                field
            }
        })
        .collect();
    let options = ArrowReaderOptions::new().with_schema(Arc::new(
        Schema::new(hinted).with_metadata(schema.metadata().clone()),
    ));
    let metadata = ArrowReaderMetadata::try_new(plain.metadata().clone(), options)?;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, metadata);
    let (names, batches) = read_strings(builder, &schema)?;
    Ok((rows, names, batches))
}

/// The top-level columns with a dictionary page in every row group.
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
                && groups
                    .iter()
                    .all(|g| g.column(*i).dictionary_page_offset().is_some())
        })
        .map(|(_, c)| c.column_path().parts()[0].clone())
        .collect()
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

/// What the leak checks look for.
#[derive(Debug, Default)]
pub struct Needles {
    /// Fingerprints of the raw (trimmed) customer identifiers seen in landing.
    pub raw_ids: FingerprintSet,
    /// The longest raw identifier, in bytes: longer values are not looked up.
    pub raw_max_len: usize,
    /// Pseudonyms of customers who declined analytics.
    pub opted_out: PseudonymSet,
    /// Pseudonyms on the erasure list.
    pub erased: PseudonymSet,
    /// Record keys (`order_id`, `ticket_id`, … and mart columns computed
    /// only from them): numbers a business assigns, which can equal a
    /// customer number or look like a phone number by coincidence, so they
    /// are not compared with raw identifiers nor run through the detectors.
    pub record_keys: HashSet<ColumnKey>,
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
    fn merge(&mut self, o: ScanFacts) {
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
    let redactor = Arc::new(Redactor::new());
    let mut tasks = futures::stream::iter(files.into_iter().map(|f| {
        let (needles, redactor, storage) = (needles.clone(), redactor.clone(), storage.clone());
        async move {
            let bytes = storage.get_bytes(&f.path).await?;
            tokio::task::spawn_blocking(move || scan_file(&f, bytes, &needles, &redactor))
                .await
                .map_err(crate::nightly::panics::joined("a scan worker"))?
        }
    }))
    // twice as many files in flight as workers: one is read while the
    // other is scanned, so no worker waits for the store
    .buffer_unordered(threads.max(1) * 2);
    let mut facts = ScanFacts::default();
    while let Some(r) = tasks.next().await {
        facts.merge(r?);
    }
    Ok(facts)
}

fn scan_file(
    f: &TableFile,
    bytes: Bytes,
    needles: &Needles,
    redactor: &Redactor,
) -> Result<ScanFacts> {
    let label = |e: Error| Error::input(f.path.to_string(), e.to_string());
    let (rows, names, batches) = read_for_scan(bytes).map_err(label)?;
    let mut per_column: Vec<ColumnFacts> = names
        .iter()
        .map(|n| ColumnFacts {
            record_key: needles
                .record_keys
                .contains(&(f.area.clone(), f.table.clone(), n.clone())),
            ..ColumnFacts::default()
        })
        .collect();
    let mut times: Vec<u64> = Vec::new();
    for batch in &batches {
        for (facts, array) in per_column.iter_mut().zip(batch.columns()) {
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
                        scan_value_times(v, n, needles, redactor, facts);
                    }
                }
                continue;
            }
            let Some(col) = StrCol::of(array.as_ref()) else {
                continue;
            };
            for i in 0..array.len() {
                if let Some(v) = col.get(i) {
                    scan_value(v, needles, redactor, facts);
                }
            }
        }
    }
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

/// Counts one value into `facts`.
pub fn scan_value(v: &str, needles: &Needles, redactor: &Redactor, facts: &mut ColumnFacts) {
    scan_value_times(v, 1, needles, redactor, facts);
}

/// Counts a value that occurs `times` times into `facts`, as many calls of
/// [`scan_value`] would.
fn scan_value_times(
    v: &str,
    times: u64,
    needles: &Needles,
    redactor: &Redactor,
    facts: &mut ColumnFacts,
) {
    facts.values += times;
    let t = v.trim();
    if !facts.record_key
        && !t.is_empty()
        && t.len() <= needles.raw_max_len
        && needles.raw_ids.contains(&fingerprint128(t.as_bytes()))
    {
        facts.raw_ids += times;
    }
    if let Some(p) = as_pseudonym(v) {
        // A pseudonym is hex: its digit runs can look like a phone number
        // to the detectors, and it cannot be anything else personal.
        facts.opted_out += times * u64::from(needles.opted_out.contains(&p));
        facts.erased += times * u64::from(needles.erased.contains(&p));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn needles() -> Needles {
        let raw = ["CUST-0001", "C2"];
        Needles {
            raw_ids: raw.iter().map(|r| fingerprint128(r.as_bytes())).collect(),
            raw_max_len: 9,
            opted_out: [*b"0123456789abcdef0123456789abcdef"].into_iter().collect(),
            erased: [*b"fedcba9876543210fedcba9876543210"].into_iter().collect(),
            record_keys: HashSet::new(),
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
        scan_value("0123456789abcdef0123456789abcdef", &n, &r, &mut f);
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
            ("0123456789abcdef0123456789abcdef", |f| f.opted_out),
            ("fedcba9876543210fedcba9876543210", |f| f.erased),
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

    /// Reference: the same values scanned one call of `scan_value` each,
    /// from a column written with a dictionary (read as one) and one
    /// written without (read plain), as ingest writes distinct columns.
    #[test]
    fn a_file_scanned_by_distinct_value_counts_as_value_by_value() {
        use datafusion::arrow::array::{Int64Array, StringArray};
        use parquet::arrow::ArrowWriter;
        use parquet::file::properties::WriterProperties;
        use parquet::schema::types::ColumnPath;

        let (n, r) = (needles(), Redactor::new());
        let pool = [
            Some("CUST-0001"),
            Some("0123456789abcdef0123456789abcdef"),
            Some("fedcba9876543210fedcba9876543210"),
            Some("write to ana@example.com or 10.0.0.1"),
            Some("fine"),
            None,
        ];
        let rows = 5000;
        let repeated: Vec<Option<&str>> = (0..rows).map(|i| pool[(i * 7) % pool.len()]).collect();
        let unique: Vec<Option<String>> = (0..rows)
            .map(|i| (i % 11 != 0).then(|| format!("note {i} call 612345678")))
            .collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("repeated", DataType::Utf8, true),
            Field::new("amount", DataType::Int64, false),
            Field::new("unique", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(repeated.clone())),
                Arc::new(Int64Array::from_iter_values(0..rows as i64)),
                Arc::new(StringArray::from(unique.clone())),
            ],
        )
        .expect("batch");
        let mut bytes = Vec::new();
        // small batches and pages: several batches share one dictionary
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2000))
            .set_data_page_row_count_limit(500)
            .set_column_dictionary_enabled(ColumnPath::from("unique"), false)
            .build();
        let mut w = ArrowWriter::try_new(&mut bytes, schema, Some(props)).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
        let bytes = Bytes::from(bytes);

        let (_, names, batches) = read_for_scan(bytes.clone()).expect("read");
        assert_eq!(names, ["repeated", "unique"]);
        assert!(
            matches!(batches[0].column(0).data_type(), DataType::Dictionary(..)),
            "a column written with a dictionary is read as one"
        );
        assert_eq!(
            batches[0].column(1).data_type(),
            &DataType::Utf8,
            "a column written without a dictionary is read plain"
        );
        let file = TableFile {
            area: "lake".into(),
            table: "t".into(),
            path: Path::from("lake/t/dt=2025-01-01/part-0.parquet"),
        };
        let got = scan_file(&file, bytes, &n, &r).expect("scan");
        let mut want_repeated = ColumnFacts::default();
        for v in repeated.iter().flatten() {
            scan_value(v, &n, &r, &mut want_repeated);
        }
        let mut want_unique = ColumnFacts::default();
        for v in unique.iter().flatten() {
            scan_value(v, &n, &r, &mut want_unique);
        }
        let key = |c: &str| ("lake".to_string(), "t".to_string(), c.to_string());
        assert_eq!(got.columns[&key("repeated")], want_repeated);
        assert_eq!(got.columns[&key("unique")], want_unique);
        assert!(!got.columns.contains_key(&key("amount")));
        assert!(want_repeated.raw_ids > 0 && want_repeated.opted_out > 0);
        assert!(want_repeated.erased > 0 && want_repeated.pii_values > 0);
        assert!(want_unique.pii_values > 4000);
        assert_eq!(got.rows, rows as u64);
    }

    #[test]
    fn pseudonym_shape_is_exact() {
        assert!(as_pseudonym("0123456789abcdef0123456789abcdef").is_some());
        assert!(as_pseudonym("0123456789ABCDEF0123456789ABCDEF").is_none());
        assert!(as_pseudonym("0123456789abcdef0123456789abcde").is_none());
        assert!(as_pseudonym("0123456789abcdef0123456789abcdeg").is_none());
    }
}
