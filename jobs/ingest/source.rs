//! Reading export files: CSV, gzipped CSV and NDJSON, row by row.
//!
//! Whole-file problems (no header, a required column missing, the wrong
//! delimiter, a corrupt gzip stream) stop ingest with an error naming the
//! file; row problems go to the sink as rejects with their line number.

use std::borrow::Cow;
use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Read};

use super::validate::{Fields, MAX_COLUMNS, Reason, Reject};
use crate::schema::Contract;
use crate::{Error, Result};

/// File formats attune reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    /// Tab-separated, whatever `[ingest] delimiter` says (it is for `.csv`).
    Tsv,
    Ndjson,
}

/// The format of a landing file from its name, and whether it is gzipped.
pub fn detect(name: &str) -> Option<(Format, bool)> {
    let lower = name.to_ascii_lowercase();
    let (stem, gz) = match lower.strip_suffix(".gz") {
        Some(s) => (s.to_string(), true),
        None => (lower, false),
    };
    if stem.ends_with(".csv") {
        Some((Format::Csv, gz))
    } else if stem.ends_with(".tsv") {
        Some((Format::Tsv, gz))
    } else if stem.ends_with(".ndjson") || stem.ends_with(".jsonl") {
        Some((Format::Ndjson, gz))
    } else {
        None
    }
}

/// Receives the rows of a file.
pub trait RowSink {
    /// A row whose fields are mapped to contract columns.
    fn row(&mut self, line: u64, fields: &Fields<'_>, raw: &dyn Fn() -> String) -> Result<()>;
    /// A row that [`row`](Self::row) will be given a few rows on, so its
    /// lookups can be started early (nothing by default). `field(c)` is
    /// the row's value of contract column `c`, if it has one: a sink asks
    /// for the few columns it looks up instead of the source mapping every
    /// field twice.
    fn ahead<'r>(&mut self, _field: &dyn Fn(usize) -> Option<&'r [u8]>) {}
    /// A row that could not even be mapped (ragged, malformed, not UTF-8).
    fn reject(&mut self, line: u64, reject: Reject, raw: &dyn Fn() -> String) -> Result<()>;
}

/// What one file contained.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FileReport {
    pub file: String,
    pub rows: u64,
    pub empty: bool,
    /// Columns that arrived, in file order (NDJSON: every key seen).
    pub columns: Vec<String>,
    /// Columns that arrived but no contract declares: dropped.
    pub undeclared: Vec<String>,
}

/// Reads `input` as `format`, passing rows to `sink`.
pub fn read(
    input: Box<dyn Read + Send>,
    format: Format,
    gz: bool,
    label: &str,
    delimiter: u8,
    contract: &Contract,
    sink: &mut dyn RowSink,
) -> Result<FileReport> {
    let input: Box<dyn Read + Send> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else {
        input
    };
    match format {
        Format::Csv => read_csv(input, label, delimiter, contract, sink),
        Format::Tsv => read_csv(input, label, b'\t', contract, sink),
        Format::Ndjson => read_ndjson(input, label, contract, sink),
    }
}

fn read_error(label: &str, e: std::io::Error) -> Error {
    let what = if e.kind() == std::io::ErrorKind::InvalidInput
        || e.to_string().contains("gzip")
        || e.to_string().contains("deflate")
    {
        format!("cannot decompress ({e}); is it really gzip? Re-export the file")
    } else {
        format!("cannot read: {e}")
    };
    Error::input(label, what)
}

/// CSV records read at once, and how many rows before its turn the sink
/// sees a row: enough to keep several cache misses in flight, few enough
/// that the lines are still there.
const CHUNK_ROWS: usize = 256;
const AHEAD_ROWS: usize = crate::customer_index::AHEAD;

fn read_csv(
    input: Box<dyn Read + Send>,
    label: &str,
    delimiter: u8,
    contract: &Contract,
    sink: &mut dyn RowSink,
) -> Result<FileReport> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 18)
        .from_reader(NewlineLog::new(input));
    let mut report = FileReport {
        file: label.to_string(),
        ..FileReport::default()
    };
    let mut record = csv::ByteRecord::new();
    let csv_err = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(io) => read_error(label, io),
        other => Error::input(label, format!("cannot parse CSV: {other:?}")),
    };
    if !rdr.read_byte_record(&mut record).map_err(csv_err)? {
        report.empty = true;
        return Ok(report);
    }
    let header: Vec<String> = record
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = if i == 0 {
                h.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(h)
            } else {
                h
            };
            String::from_utf8_lossy(h).trim().to_ascii_lowercase()
        })
        .collect();
    check_delimiter(&header, delimiter, label)?;
    let mut mapping: Vec<Option<usize>> = Vec::with_capacity(header.len());
    for (i, name) in header.iter().enumerate() {
        if name.is_empty() {
            return Err(Error::input(
                label,
                format!("header column {} has no name", i + 1),
            ));
        }
        if header[..i].contains(name) {
            // a file without a header line has its first record here, and
            // an error lands in logs and `runs/`, which keep no personal
            // data: only the contract's own names are quoted
            let which = if contract.column_index(name).is_some() {
                format!("`{name}`")
            } else {
                format!("{} (a name not in the contract)", i + 1)
            };
            return Err(Error::input(
                label,
                format!("header names column {which} twice"),
            ));
        }
        let idx = contract.column_index(name);
        if idx.is_none() {
            report.undeclared.push(name.clone());
        }
        mapping.push(idx);
    }
    for c in contract.columns.iter().filter(|c| c.required) {
        if !header.contains(&c.name) {
            return Err(Error::input(
                label,
                format!(
                    "header lacks required column `{}` of table {} (found: {}); add it to the export or map it in schemas/",
                    c.name,
                    contract.table,
                    found_columns(contract, &header)
                ),
            ));
        }
    }
    report.columns = header.clone();
    // Records are read CHUNK_ROWS at a time so the sink can be shown each
    // row AHEAD_ROWS before it gets it (see RowSink::ahead).
    let mut field_of = vec![None; contract.columns.len()];
    for (j, m) in mapping.iter().enumerate() {
        if let Some(ci) = m {
            field_of[*ci] = Some(j);
        }
    }
    let ahead = |sink: &mut dyn RowSink, record: &csv::ByteRecord| {
        sink.ahead(&|c| field_of[c].and_then(|j| record.get(j)));
    };
    let mut chunk = vec![csv::ByteRecord::new(); CHUNK_ROWS];
    let mut lines = [0u64; CHUNK_ROWS];
    loop {
        let mut n = 0;
        while n < CHUNK_ROWS && rdr.read_byte_record(&mut chunk[n]).map_err(csv_err)? {
            lines[n] = record_line(&mut rdr, &chunk[n]);
            n += 1;
        }
        let chunk = &chunk[..n];
        for record in chunk.iter().take(AHEAD_ROWS) {
            ahead(sink, record);
        }
        for (i, record) in chunk.iter().enumerate() {
            if let Some(next) = chunk.get(i + AHEAD_ROWS) {
                ahead(sink, next);
            }
            let line = lines[i];
            // A blank line is not a row (exports often end with one).
            if record.len() == 1 && record[0].is_empty() {
                continue;
            }
            report.rows += 1;
            // Rebuilt from the parsed fields (quoted where needed): only rejected rows pay for it.
            let raw = || {
                let mut raw_buf = Vec::new();
                let mut w = csv::WriterBuilder::new()
                    .delimiter(delimiter)
                    .terminator(csv::Terminator::Any(b'\n'))
                    .from_writer(&mut raw_buf);
                let _ = w.write_byte_record(record);
                drop(w);
                String::from_utf8_lossy(raw_buf.strip_suffix(b"\n").unwrap_or(&raw_buf))
                    .into_owned()
            };
            if record.len() != header.len() {
                let reject = Reject {
                    reason: Reason::RaggedRow,
                    column: None,
                    detail: format!("{} fields, header has {}", record.len(), header.len()),
                };
                sink.reject(line, reject, &raw)?;
                continue;
            }
            sink.row(line, &map_fields(record, &mapping), &raw)?;
        }
        if n < CHUNK_ROWS {
            break;
        }
    }
    Ok(report)
}

/// The input, noting where its `\n` bytes are so that [`record_line`] can
/// tell whether a record consumed one as its terminator.
struct NewlineLog<R> {
    inner: R,
    offset: u64,
    newlines: VecDeque<u64>,
}

impl<R> NewlineLog<R> {
    fn new(inner: R) -> Self {
        NewlineLog {
            inner,
            offset: 0,
            newlines: VecDeque::new(),
        }
    }

    /// Whether the byte at `at` is `\n`. Asked in increasing order, so the
    /// newlines before `at` are forgotten: the log holds no more than the
    /// CSV reader's buffer.
    fn is_newline(&mut self, at: u64) -> bool {
        while self.newlines.front().is_some_and(|&o| o < at) {
            self.newlines.pop_front();
        }
        self.newlines.front() == Some(&at)
    }
}

impl<R: Read> Read for NewlineLog<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let base = self.offset;
        (self.newlines).extend(memchr::memchr_iter(b'\n', &buf[..n]).map(|i| base + i as u64));
        self.offset += n as u64;
        Ok(n)
    }
}

/// The line `record` (just read) starts on. The csv crate stamps a record
/// with where its parser began, which is before the blank lines it skips
/// and, in a CRLF file, before the `\n` of the previous record's line end,
/// so that stamp can be one or more lines short. The reader's line after the
/// record is exact: work back from it by the newlines inside quoted fields
/// and the record's own `\n` terminator, if it consumed one (a CRLF record
/// ends at its `\r`, and a last row may have no line end at all).
fn record_line<R: Read>(rdr: &mut csv::Reader<NewlineLog<R>>, record: &csv::ByteRecord) -> u64 {
    let after = rdr.position().clone();
    let embedded = memchr::memchr_iter(b'\n', record.as_slice()).count() as u64;
    let terminated = after.byte() > 0 && rdr.get_mut().is_newline(after.byte() - 1);
    after.line() - embedded - u64::from(terminated)
}

/// A record's fields by contract column (`mapping`: the contract column of
/// each field, if any).
fn map_fields<'r>(record: &'r csv::ByteRecord, mapping: &[Option<usize>]) -> Fields<'r> {
    let mut fields: Fields<'r> = [None; MAX_COLUMNS];
    for (j, m) in mapping.iter().enumerate() {
        if let Some(ci) = m {
            fields[*ci] = record.get(j);
        }
    }
    fields
}

/// A header of one column that contains another common delimiter means the
/// file uses that delimiter: say so instead of rejecting every row.
/// The header's columns of the contract, by name, and how many others (a
/// file without a header line has its first record as the header: its
/// values are not quoted).
fn found_columns(contract: &Contract, header: &[String]) -> String {
    let known: Vec<&str> = (header.iter())
        .filter(|h| contract.column_index(h).is_some())
        .map(String::as_str)
        .collect();
    let others = header.len() - known.len();
    match (known.is_empty(), others) {
        (true, _) => format!("none of its columns, {others} others; is the header line missing?"),
        (false, 0) => known.join(", "),
        (false, n) => format!("{} and {n} other columns", known.join(", ")),
    }
}

fn check_delimiter(header: &[String], delimiter: u8, label: &str) -> Result<()> {
    if header.len() != 1 {
        return Ok(());
    }
    for d in [',', ';', '\t', '|'] {
        if d as u8 != delimiter && header[0].contains(d) {
            let shown = if d == '\t' {
                "\\t".to_string()
            } else {
                d.to_string()
            };
            return Err(Error::input(
                label,
                format!(
                    "the header is one column containing '{shown}': the file looks '{shown}'-delimited; set [ingest] delimiter = \"{shown}\" in attune.toml or export with '{}'",
                    delimiter as char
                ),
            ));
        }
    }
    Ok(())
}

fn read_ndjson(
    input: Box<dyn Read + Send>,
    label: &str,
    contract: &Contract,
    sink: &mut dyn RowSink,
) -> Result<FileReport> {
    let mut rdr = BufReader::with_capacity(1 << 18, input);
    let mut report = FileReport {
        file: label.to_string(),
        ..FileReport::default()
    };
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut buf = Vec::with_capacity(4096);
    let mut line = 0u64;
    let mut any_bytes = false;
    loop {
        buf.clear();
        let n = rdr
            .read_until(b'\n', &mut buf)
            .map_err(|e| read_error(label, e))?;
        if n == 0 {
            break;
        }
        any_bytes = true;
        line += 1;
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        // Windows tools start UTF-8 files with a byte-order mark
        let text = match line {
            1 => text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text),
            _ => text,
        };
        if text.trim_ascii().is_empty() {
            continue;
        }
        report.rows += 1;
        let raw = || String::from_utf8_lossy(text).into_owned();
        let Ok(s) = std::str::from_utf8(text) else {
            let reject = Reject {
                reason: Reason::InvalidUtf8,
                column: None,
                detail: "line is not valid UTF-8".into(),
            };
            sink.reject(line, reject, &raw)?;
            continue;
        };
        let members = match members_of(s) {
            Ok(m) => m,
            Err(e) => {
                let reject = Reject {
                    reason: Reason::MalformedJson,
                    column: None,
                    detail: format!("not a JSON object: {}", e.classify_text()),
                };
                sink.reject(line, reject, &raw)?;
                continue;
            }
        };
        // Numbers and booleans are handed to validation as their JSON text,
        // so one set of type rules serves CSV and NDJSON alike. Strings
        // first, then the other values: two keys that differ only in case
        // name one column, and a number or boolean among them wins.
        let mut strings: Vec<(usize, &str)> = Vec::with_capacity(members.len());
        let mut texts: Vec<(usize, &str)> = Vec::new();
        for (k, v) in &members {
            let key = ascii_lowercase(k);
            let Some(ci) = contract.column_index(&key) else {
                if !seen.contains(key.as_ref()) {
                    seen.insert(key.to_string());
                    report.undeclared.push(key.into_owned());
                }
                continue;
            };
            if !report.columns.iter().any(|c| *c == key) {
                report.columns.push(key.into_owned());
            }
            match v {
                JsonText::Null => {}
                JsonText::String(t) => strings.push((ci, t)),
                JsonText::Other(t) => texts.push((ci, t)),
            }
        }
        let mut fields: Fields<'_> = [None; MAX_COLUMNS];
        for (ci, t) in &strings {
            fields[*ci] = Some(t.as_bytes());
        }
        for (ci, t) in &texts {
            fields[*ci] = Some(t.as_bytes());
        }
        sink.row(line, &fields, &raw)?;
    }
    report.empty = !any_bytes;
    Ok(report)
}

/// A JSON line's members as `serde_json`'s map holds them (keys in byte
/// order, a repeated key's last value), strings borrowed from the line:
/// parsing every line of the tickets into a map of owned keys and values
/// was a quarter of their ingest's CPU time in `perf` (allocations, frees,
/// tree inserts).
fn members_of(line: &str) -> serde_json::Result<Vec<(Cow<'_, str>, JsonText<'_>)>> {
    let Members(mut members) = serde_json::from_str(line)?;
    // stable: a repeated key's values stay in line order
    members.sort_by(|a, b| a.0.cmp(&b.0));
    members.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            std::mem::swap(&mut later.1, &mut kept.1);
        }
        same
    });
    Ok(members)
}

/// An object's members in line order.
struct Members<'a>(Vec<(Cow<'a, str>, JsonText<'a>)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Object;
        impl<'de> serde::de::Visitor<'de> for Object {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(16);
                // a JSON key is a string: read as a value's text, it is one
                while let Some((k, v)) = map.next_entry::<JsonText<'de>, JsonText<'de>>()? {
                    let JsonText::String(k) = k else {
                        return Err(serde::de::Error::custom("a key that is not a string"));
                    };
                    members.push((k, v));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Object)
    }
}

/// A member's value as validation reads it, or its key (always a
/// `String`).
enum JsonText<'a> {
    Null,
    /// A string's contents (borrowed when it has no escapes).
    String(Cow<'a, str>),
    /// A number, boolean, array or object, written as `serde_json` writes
    /// the value it parsed.
    Other(String),
}

impl<'de> serde::Deserialize<'de> for JsonText<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        use serde_json::Value;
        struct Any;
        impl<'de> serde::de::Visitor<'de> for Any {
            type Value = JsonText<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> std::result::Result<JsonText<'de>, E> {
                Ok(JsonText::Null)
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<JsonText<'de>, E> {
                Ok(JsonText::String(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<JsonText<'de>, E> {
                Ok(JsonText::String(Cow::Owned(v.to_string())))
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<JsonText<'de>, E> {
                Ok(JsonText::Other(Value::from(v).to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<JsonText<'de>, E> {
                Ok(JsonText::Other(Value::from(v).to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<JsonText<'de>, E> {
                Ok(JsonText::Other(Value::from(v).to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> std::result::Result<JsonText<'de>, E> {
                Ok(JsonText::Other(Value::from(v).to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<JsonText<'de>, A::Error> {
                let v: Value = serde::Deserialize::deserialize(MapAccessDeserializer::new(map))?;
                Ok(JsonText::Other(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> std::result::Result<JsonText<'de>, A::Error> {
                let v: Value = serde::Deserialize::deserialize(SeqAccessDeserializer::new(seq))?;
                Ok(JsonText::Other(v.to_string()))
            }
        }
        d.deserialize_any(Any)
    }
}

/// `key` in ASCII lower case, copied only when it has capitals.
fn ascii_lowercase(key: &str) -> Cow<'_, str> {
    if key.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(key.to_ascii_lowercase())
    } else {
        Cow::Borrowed(key)
    }
}

trait ClassifyText {
    fn classify_text(&self) -> &'static str;
}

impl ClassifyText for serde_json::Error {
    fn classify_text(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Eof => "the line ends early",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "not an object",
            serde_json::error::Category::Io => "read error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Contracts;

    #[derive(Debug, Default)]
    struct Collect {
        rows: Vec<(u64, Vec<Option<String>>)>,
        rejects: Vec<(u64, Reason, String)>,
        /// The first contract column of each row shown ahead, and how many
        /// rows had been given by then.
        ahead: Vec<(Option<String>, usize)>,
    }

    impl RowSink for Collect {
        fn ahead<'r>(&mut self, field: &dyn Fn(usize) -> Option<&'r [u8]>) {
            let first = field(0).map(|b| String::from_utf8_lossy(b).into_owned());
            self.ahead.push((first, self.rows.len()));
        }
        fn row(&mut self, line: u64, fields: &Fields<'_>, _raw: &dyn Fn() -> String) -> Result<()> {
            let f = fields
                .iter()
                .map(|f| f.map(|b| String::from_utf8_lossy(b).into_owned()))
                .collect();
            self.rows.push((line, f));
            Ok(())
        }
        fn reject(&mut self, line: u64, reject: Reject, raw: &dyn Fn() -> String) -> Result<()> {
            self.rejects.push((line, reject.reason, raw()));
            Ok(())
        }
    }

    fn orders() -> std::sync::Arc<Contract> {
        Contracts::builtin()
            .expect("valid")
            .get("orders")
            .expect("exists")
    }

    fn run_csv(text: &[u8]) -> Result<(FileReport, Collect)> {
        run_csv_from(Box::new(std::io::Cursor::new(text.to_vec())))
    }

    fn run_csv_from(input: Box<dyn Read + Send>) -> Result<(FileReport, Collect)> {
        let mut sink = Collect::default();
        let report = read(
            input,
            Format::Csv,
            false,
            "orders.csv",
            b',',
            &orders(),
            &mut sink,
        )?;
        Ok((report, sink))
    }

    #[test]
    fn csv_maps_columns_and_numbers_lines_across_quoted_newlines() {
        let text =
            b"\xEF\xBB\xBFOrder_ID,customer_id,ordered_at,total_amount,currency,channel,notes\n\
            O1,C1,2025-01-01 10:00:00,3.50,EUR,in_store,\"two\nlines\"\n\
            O2,C2,2025-01-01 11:00:00,4.00,EUR,app,x\n";
        let (report, sink) = run_csv(text).expect("reads");
        assert_eq!(report.rows, 2);
        assert_eq!(report.undeclared, vec!["notes"]);
        assert_eq!(sink.rows[0].0, 2);
        assert_eq!(sink.rows[1].0, 4, "line numbers count the embedded newline");
        assert_eq!(sink.rows[1].1[0].as_deref(), Some("O2"));
    }

    /// Rows cross the reader's chunks: every record is shown ahead once, in
    /// order, before its turn and at most AHEAD_ROWS records before it, and
    /// every row reaches the sink once with its own line number.
    #[test]
    fn each_row_is_shown_ahead_once_and_given_once_across_chunks() {
        let mut text = b"order_id,customer_id,ordered_at,total_amount,currency,channel\n".to_vec();
        let total = 3 * CHUNK_ROWS + 7;
        let ragged = CHUNK_ROWS * 2 - 1;
        for i in 0..total {
            let row = if i == ragged {
                format!("O{i},C{i},2025-01-01\n")
            } else {
                format!("O{i},C{i},2025-01-01 10:00:00,3.50,EUR,app\n")
            };
            text.extend_from_slice(row.as_bytes());
        }
        text.extend_from_slice(b"\n");
        let (report, sink) = run_csv(&text).expect("reads");
        assert_eq!(
            report.rows, total as u64,
            "the trailing blank line is not a row"
        );
        assert_eq!(sink.rejects.len(), 1);
        assert_eq!(
            sink.rejects[0].0,
            ragged as u64 + 2,
            "the ragged row's own line"
        );
        let want: Vec<(u64, String)> = (0..total)
            .filter(|&i| i != ragged)
            .map(|i| (i as u64 + 2, format!("O{i}")))
            .collect();
        let got: Vec<(u64, String)> = (sink.rows.iter())
            .map(|(line, f)| (*line, f[0].clone().expect("order_id")))
            .collect();
        assert_eq!(got, want);
        // the blank line, if the reader yields it at all, shows an empty id
        let shown: Vec<String> = (sink.ahead.iter())
            .filter_map(|(id, _)| id.clone().filter(|id| !id.is_empty()))
            .collect();
        let every: Vec<String> = (0..total).map(|i| format!("O{i}")).collect();
        assert_eq!(shown, every, "each record once, in order");
        for (id, given) in sink
            .ahead
            .iter()
            .filter_map(|(id, g)| Some((id.clone()?, g)))
        {
            if let Some(at) = want.iter().position(|(_, w)| *w == id) {
                assert!(*given <= at, "{id} shown after its turn");
                assert!(
                    at - given <= AHEAD_ROWS,
                    "{id} shown {} rows early",
                    at - given
                );
            }
        }
    }

    /// An input that hands out a few bytes per read, so line ends fall on
    /// every position of the reader's buffer.
    struct Trickle(std::io::Cursor<Vec<u8>>, usize);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1);
            self.0.read(&mut buf[..n])
        }
    }

    /// Line numbers as an editor shows them, whatever the line ends: the
    /// csv crate's own stamp is short after a skipped blank line and on
    /// every row of a CRLF file (it said line 1 for the first row there).
    #[test]
    fn rows_keep_their_own_line_after_blank_lines_and_in_crlf_files() {
        let header = "order_id,customer_id,ordered_at,total_amount,currency,channel";
        let row = |id: &str| format!("{id},C,2025-01-01 10:00:00,3.50,EUR,app");
        // each case: the file, and the line of each row by order_id
        let cases: Vec<(String, Vec<(u64, &str)>)> = vec![
            (
                format!("{header}\n{}\n\n{}\n", row("A"), row("B")),
                vec![(2, "A"), (4, "B")],
            ),
            (
                format!("{header}\r\n{}\r\n\r\n\r\n{}\r\n", row("A"), row("B")),
                vec![(2, "A"), (5, "B")],
            ),
            (
                format!("{header}\r\n{}\r\n\r\n{}", row("A"), row("B")),
                vec![(2, "A"), (4, "B")],
            ),
            (
                format!(
                    "{header}\n\n{}\n\nQ,C,2025-01-01 10:00:00,3.50,EUR,\"two\r\nlines\"\n\n{}",
                    row("A"),
                    row("B")
                ),
                vec![(3, "A"), (5, "Q"), (8, "B")],
            ),
            (
                format!("{header}\n{}\r\n\n{}\n\n\n", row("A"), row("B")),
                vec![(2, "A"), (4, "B")],
            ),
        ];
        for (text, want) in cases {
            for step in [1, 3, 7, 1 << 16] {
                let input = Trickle(std::io::Cursor::new(text.clone().into_bytes()), step);
                let (_, sink) = run_csv_from(Box::new(input)).expect("reads");
                let got: Vec<(u64, String)> = (sink.rows.iter())
                    .map(|(line, f)| (*line, f[0].clone().expect("order_id")))
                    .collect();
                let want: Vec<(u64, String)> =
                    want.iter().map(|(l, id)| (*l, id.to_string())).collect();
                assert_eq!(got, want, "{text:?} read {step} bytes at a time");
                // the editor's count: the row's prefix has line-1 newlines
                for (line, id) in &want {
                    let at = text.find(&format!("{id},C,")).expect("row present");
                    assert_eq!(text[..at].matches('\n').count() as u64 + 1, *line);
                }
            }
        }
    }

    #[test]
    fn ragged_rows_are_rejected_with_their_raw_text() {
        let text = b"order_id,customer_id,ordered_at,total_amount,currency,channel\nO1,C1,2025-01-01,3.5,EUR\nO2,C2,2025-01-01,3.5,EUR,app,extra\n";
        let (report, sink) = run_csv(text).expect("reads");
        assert_eq!(report.rows, 2);
        assert_eq!(sink.rejects.len(), 2);
        assert_eq!(
            sink.rejects[0],
            (2, Reason::RaggedRow, "O1,C1,2025-01-01,3.5,EUR".to_string())
        );
    }

    #[test]
    fn whole_file_problems_name_the_file_and_the_fix() {
        let cases: [(&[u8], &str); 3] = [
            (
                b"order_id,customer_id,total_amount,currency,channel\n",
                "lacks required column `ordered_at`",
            ),
            (
                b"order_id;customer_id;ordered_at\nO1;C1;x\n",
                "looks ';'-delimited",
            ),
            (b"order_id,order_id\n", "twice"),
        ];
        for (text, want) in cases {
            let err = run_csv(text).expect_err(want).to_string();
            assert!(err.starts_with("orders.csv"), "{err}");
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }

    /// A file without its header line: the error says so without quoting
    /// the first record, which holds a customer's data (errors go to logs
    /// and `runs/` manifests).
    #[test]
    fn a_missing_header_line_is_reported_without_its_values() {
        let err = run_csv(b"O1,CUST-1001,2025-01-01 10:00:00,3.5,EUR,app\n")
            .expect_err("no header")
            .to_string();
        assert!(err.contains("none of its columns, 6 others"), "{err}");
        assert!(!err.contains("CUST-1001") && !err.contains("O1"), "{err}");
        let err = run_csv(b"order_id,customer_id,CUST-1001,CUST-1001\n")
            .expect_err("twice")
            .to_string();
        assert!(
            err.contains("column 4 (a name not in the contract) twice"),
            "{err}"
        );
        assert!(!err.contains("cust-1001"), "{err}");
        let err = run_csv(b"order_id,customer_id,notes,total_amount,currency,channel\n")
            .expect_err("no ordered_at")
            .to_string();
        assert!(
            err.contains("(found: order_id, customer_id, total_amount, currency, channel and 1 other columns)"),
            "{err}"
        );
    }

    #[test]
    fn empty_and_header_only_files_have_no_rows() {
        let (r, _) = run_csv(b"").expect("empty");
        assert!(r.empty);
        let (r, _) = run_csv(b"order_id,customer_id,ordered_at,total_amount,currency,channel\n")
            .expect("header only");
        assert!(!r.empty);
        assert_eq!(r.rows, 0);
    }

    fn read_ndjson_text(text: Vec<u8>, contract: &Contract) -> (FileReport, Collect) {
        let mut sink = Collect::default();
        let report = read(
            Box::new(std::io::Cursor::new(text)),
            Format::Ndjson,
            false,
            "t.ndjson",
            b',',
            contract,
            &mut sink,
        )
        .expect("reads");
        (report, sink)
    }

    #[test]
    fn ndjson_types_become_text_and_bad_lines_are_rejected() {
        let contract = Contracts::builtin()
            .expect("valid")
            .get("tickets")
            .expect("exists");
        let text = b"\xEF\xBB\xBF{\"ticket_id\":\"T1\",\"customer_id\":\"C1\",\"satisfaction\":4,\"ip\":\"x\"}\n\n{\"ticket_id\":\"T2\",\n{\"ticket_id\":\"T3\",\"message\":\"caf\xC3\x28\"}\n";
        let (report, sink) = read_ndjson_text(text.to_vec(), &contract);
        assert_eq!(report.rows, 3, "blank line is not a row");
        assert_eq!(report.undeclared, vec!["ip"]);
        assert_eq!(
            sink.rows.len(),
            1,
            "the first line is read past its byte-order mark"
        );
        assert_eq!(sink.rejects[0].0, 3);
        assert_eq!(sink.rejects[0].1, Reason::MalformedJson);
        assert_eq!(sink.rejects[1].1, Reason::InvalidUtf8);
        let sat = contract.column_index("satisfaction").expect("declared");
        assert_eq!(
            sink.rows[0].1[sat].as_deref(),
            Some("4"),
            "JSON number handed over as text"
        );
    }

    /// Reference: the reading this replaced, each line parsed into
    /// `serde_json`'s own map of owned keys and values. Every line's fields,
    /// columns seen and undeclared keys come out the same: keys that differ
    /// in case or repeat, escapes in keys and strings, numbers as
    /// `serde_json` writes them, booleans, nulls, nested values, blanks
    /// around members, and lines that are not objects.
    #[test]
    fn ndjson_members_read_as_serde_jsons_map_reads_them() {
        let contract = Contracts::builtin()
            .expect("valid")
            .get("tickets")
            .expect("exists");
        let lines = [
            r#"{"ticket_id":"T1","customer_id":"C1","satisfaction":4,"ip":"x"}"#,
            r#"{ "Ticket_ID" : "T2" , "ticket_id" : "t2", "satisfaction": 1.50, "reopened": true }"#,
            r#"{"ticket_id":"T3","ticket_id":"T3b","satisfaction":1e3,"satisfaction":"2"}"#,
            r#"{"TICKET_ID":7,"ticket_id":"T4","message":"say \"hi\" \u00e9\n","reply":null}"#,
            r#"{"ticket_id":"T5","message":{"a": [1, 2.0]},"reply":[true, null],"Notes":"n"}"#,
            r#"{"ticket\u005fid":"T6","satisfaction":-0,"reopened":false,"ip":1}"#,
            r#"{"ticket_id":"¿T7?","message":"¿el pan de centeno lleva lactosa?"}"#,
            r#"[1,2]"#,
            r#""text""#,
            r#"{"ticket_id":"T8""#,
            r#"{"ticket_id":"T9"} trailing"#,
        ];
        let mut text = lines.join("\n").into_bytes();
        text.push(b'\n');
        let (report, sink) = read_ndjson_text(text, &contract);

        let (mut rows, mut rejected) = (Vec::new(), Vec::new());
        let (mut columns, mut undeclared): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
        for (i, line) in lines.iter().enumerate() {
            let n = i as u64 + 1;
            let Ok(obj) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line)
            else {
                rejected.push(n);
                continue;
            };
            let mut fields: Vec<Option<String>> = vec![None; MAX_COLUMNS];
            for pass in [true, false] {
                for (k, v) in &obj {
                    let key = k.to_ascii_lowercase();
                    let Some(ci) = contract.column_index(&key) else {
                        if pass && !undeclared.contains(&key) {
                            undeclared.push(key);
                        }
                        continue;
                    };
                    if pass && !columns.contains(&key) {
                        columns.push(key);
                    }
                    match (v, pass) {
                        (serde_json::Value::String(t), true) => fields[ci] = Some(t.clone()),
                        (serde_json::Value::Null | serde_json::Value::String(_), _) => {}
                        (other, false) => fields[ci] = Some(other.to_string()),
                        (_, true) => {}
                    }
                }
            }
            rows.push((n, fields));
        }
        assert_eq!(sink.rows, rows);
        let got: Vec<u64> = sink.rejects.iter().map(|r| r.0).collect();
        assert_eq!(got, rejected);
        assert!(sink.rejects.iter().all(|r| r.1 == Reason::MalformedJson));
        assert_eq!(report.columns, columns);
        assert_eq!(report.undeclared, undeclared);
        let message = contract.column_index("message").expect("declared");
        assert_eq!(rows[3].1[message].as_deref(), Some("say \"hi\" \u{e9}\n"));
    }

    #[test]
    fn formats_from_names() {
        assert_eq!(detect("a.csv"), Some((Format::Csv, false)));
        assert_eq!(detect("a.CSV.GZ"), Some((Format::Csv, true)));
        assert_eq!(detect("t.ndjson"), Some((Format::Ndjson, false)));
        assert_eq!(detect("t.jsonl.gz"), Some((Format::Ndjson, true)));
        assert_eq!(detect("c.TSV"), Some((Format::Tsv, false)));
        assert_eq!(detect("readme.txt"), None);
    }
}
