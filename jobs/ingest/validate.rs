//! Row validation against a contract, and the Arrow columns it fills.
//!
//! A row is checked completely before anything is appended, so a rejected
//! row leaves no partial trace in the batch. Checks run per column in
//! contract order: UTF-8, required, type (timestamps and dates separately),
//! enum and pattern, range; then ranges that depend on another column.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::pseudonym::{Pseudonym, Pseudonymizer};
use super::redact::Redactor;
use crate::Result;
use crate::schema::{ColumnType, Contract, Generalization, Handling, age_band};

/// Most columns any contract may have (fields live in a fixed array per row: no allocation).
pub const MAX_COLUMNS: usize = 32;

/// `bytes` as text, if they are UTF-8. Nearly every field of an export is
/// ASCII, which `is_ascii` checks a word at a time, inline; the standard
/// validation, a call per field, was 5% of ingest's CPU in `perf` (every
/// kept field checked, and the string ones again when appended).
pub fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

/// Field values of one row, indexed by contract column; `None` = absent.
pub type Fields<'a> = [Option<&'a [u8]>; MAX_COLUMNS];

/// Why a row was quarantined. The codes are stable: analysts filter on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    InvalidUtf8,
    RaggedRow,
    MalformedJson,
    MissingRequired,
    WrongType,
    BadTimestamp,
    BadEnum,
    BadPattern,
    OutOfRange,
}

impl Reason {
    /// The reason code written to quarantine and manifests.
    pub fn code(self) -> &'static str {
        match self {
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::RaggedRow => "ragged_row",
            Reason::MalformedJson => "malformed_json",
            Reason::MissingRequired => "missing_required",
            Reason::WrongType => "wrong_type",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::BadEnum => "bad_enum",
            Reason::BadPattern => "bad_pattern",
            Reason::OutOfRange => "out_of_range",
        }
    }
}

/// A rejected row: the reason, the column (if one), and a message that
/// describes the expectation without repeating the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub reason: Reason,
    pub column: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone)]
enum Parsed {
    Null,
    /// Bytes `start..end` of the raw field: valid UTF-8, trimmed unless
    /// free text, cut to a prefix when generalized so. Where they are, not
    /// the text: appending them checked and trimmed the field again.
    Field {
        start: usize,
        end: usize,
    },
    Owned(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(i32),
    Ts(i64),
    Pseudo(Pseudonym),
    Static(&'static str),
}

/// How large a table's batches grow: rows and each builder's value bytes.
/// A validator's builders start at that size (the largest batch of the
/// table so far: each partition starts at the size the one before ended
/// at, at most `batch_rows` rows) instead of growing from
/// empty by doubling: the copies of that growth (`realloc` under Arrow's
/// `append_value`) were 3% of a backfill's CPU in `perf`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchSize {
    pub rows: usize,
    /// Value bytes of each string builder, in builder order (0 for the
    /// fixed-width ones, whose size the rows give).
    pub bytes: Vec<usize>,
}

impl BatchSize {
    /// The larger of the two, column by column.
    fn max(&self, other: &BatchSize) -> BatchSize {
        let n = self.bytes.len().max(other.bytes.len());
        let at = |s: &BatchSize, k: usize| s.bytes.get(k).copied().unwrap_or(0);
        BatchSize {
            rows: self.rows.max(other.rows),
            bytes: (0..n).map(|k| at(self, k).max(at(other, k))).collect(),
        }
    }
}

/// Validates rows of one table and accumulates the accepted ones as Arrow columns.
pub struct RowValidator {
    contract: Arc<Contract>,
    schema: SchemaRef,
    pub(crate) pseudonymizer: Pseudonymizer,
    redactor: Arc<Redactor>,
    /// Year of the partition date: age bands are ages on that date.
    year: i64,
    parsed: Vec<Parsed>,
    builders: Vec<(usize, Builder)>,
    /// The size new builders start at (see [`BatchSize`]).
    size: BatchSize,
    rows: usize,
    /// Columns whose values are pseudonymized.
    pseudonymized: Vec<usize>,
    /// Columns checked against another column (`not_before`, `range_by`):
    /// most tables have none, and every row went over every column twice
    /// more to find that out.
    dependent: Vec<usize>,
    /// Each column's pattern, cloned for this validator: a clone has a
    /// match cache of its own, where every worker matching with the
    /// contract's one regex took the regex crate's shared, locked cache
    /// pool (0.6% of a re-ingest's CPU in `perf`).
    patterns: Vec<Option<regex::Regex>>,
    /// Each patterned column's last value that matched: an export repeats
    /// its codes (orders' currency on every row), and matching the same
    /// text again was 1% of the orders' ingest CPU in `perf`.
    matched: Vec<String>,
}

enum Builder {
    Utf8(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder),
}

impl RowValidator {
    /// A validator for `contract` at a partition in `year`.
    pub fn new(
        contract: Arc<Contract>,
        pseudonymizer: Pseudonymizer,
        redactor: Arc<Redactor>,
        year: i64,
    ) -> Self {
        assert!(
            contract.columns.len() <= MAX_COLUMNS,
            "contract checked at load"
        );
        let schema = contract.lake_schema();
        let pseudonymized = (contract.columns.iter().enumerate())
            .filter(|(_, c)| c.handling == Handling::Pseudonymize)
            .map(|(i, _)| i)
            .collect();
        let dependent = (contract.columns.iter().enumerate())
            .filter(|(_, c)| c.not_before.is_some() || c.range_by.is_some())
            .map(|(i, _)| i)
            .collect();
        let patterns: Vec<Option<regex::Regex>> =
            contract.columns.iter().map(|c| c.pattern.clone()).collect();
        let mut v = RowValidator {
            pseudonymized,
            dependent,
            matched: vec![String::new(); patterns.len()],
            patterns,
            parsed: vec![Parsed::Null; contract.columns.len()],
            builders: Vec::new(),
            size: BatchSize::default(),
            contract,
            schema,
            pseudonymizer,
            redactor,
            year,
            rows: 0,
        };
        v.builders = v.fresh_builders();
        v
    }

    /// Builders start at `size` from now on (the size of the table's
    /// batches before; see [`BatchSize`]).
    pub fn starting_at(mut self, size: BatchSize) -> Self {
        self.size = size;
        self
    }

    /// The size of the largest batch so far, or the one started at.
    pub fn batch_size(&self) -> BatchSize {
        self.size.max(&self.current_size())
    }

    fn current_size(&self) -> BatchSize {
        BatchSize {
            rows: self.rows,
            bytes: (self.builders.iter())
                .map(|(_, b)| match b {
                    Builder::Utf8(b) => b.values_slice().len(),
                    _ => 0,
                })
                .collect(),
        }
    }

    fn fresh_builders(&self) -> Vec<(usize, Builder)> {
        let rows = self.size.rows;
        self.contract
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_kept())
            .enumerate()
            .map(|(k, (i, c))| {
                let text = || {
                    let bytes = self.size.bytes.get(k).copied().unwrap_or(0);
                    Builder::Utf8(StringBuilder::with_capacity(rows, bytes))
                };
                let b = if matches!(c.handling, Handling::Pseudonymize | Handling::Generalize) {
                    text()
                } else {
                    match c.ty {
                        ColumnType::String => text(),
                        ColumnType::Int => Builder::Int(Int64Builder::with_capacity(rows)),
                        ColumnType::Float => Builder::Float(Float64Builder::with_capacity(rows)),
                        ColumnType::Bool => Builder::Bool(BooleanBuilder::with_capacity(rows)),
                        ColumnType::Date => Builder::Date(Date32Builder::with_capacity(rows)),
                        ColumnType::Timestamp => Builder::Ts(
                            TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
                        ),
                    }
                };
                (i, b)
            })
            .collect()
    }

    /// The lake schema the batches follow.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows accepted since the last [`take_batch`](Self::take_batch).
    pub fn pending(&self) -> usize {
        self.rows
    }

    /// Checks a row; on success its values are ready for [`append`](Self::append).
    pub fn check(&mut self, fields: &Fields<'_>) -> std::result::Result<(), Reject> {
        // borrowed, not an `Arc` clone per row: the workers validating
        // partitions of one table at once share the contract's count
        let contract = &*self.contract;
        for (i, col) in contract.columns.iter().enumerate() {
            if !col.is_kept() {
                continue;
            }
            let reject = |reason: Reason, detail: String| Reject {
                reason,
                column: Some(col.name.clone()),
                detail,
            };
            let free_text = col.handling == Handling::Redact;
            let Some(text) = utf8(fields[i].unwrap_or_default()) else {
                return Err(reject(Reason::InvalidUtf8, "not valid UTF-8".into()));
            };
            // trimmed of Unicode spaces too (a spreadsheet's no-break space)
            let text = if free_text { text } else { trim_edges(text) };
            // where the text is in the field (the enum is as large as a
            // pseudonym already: two offsets cost it nothing)
            let start = text.as_ptr() as usize - fields[i].unwrap_or_default().as_ptr() as usize;
            let field = |len: usize| Parsed::Field {
                start,
                end: start + len,
            };
            if text.is_empty() {
                if col.required {
                    return Err(reject(
                        Reason::MissingRequired,
                        "required value is empty".into(),
                    ));
                }
                self.parsed[i] = Parsed::Null;
                continue;
            }
            let value = match col.ty {
                ColumnType::String => field(text.len()),
                ColumnType::Int => match text.parse::<i64>() {
                    Ok(v) => Parsed::Int(v),
                    Err(_) => {
                        return Err(reject(Reason::WrongType, "expected a whole number".into()));
                    }
                },
                ColumnType::Float => match text.parse::<f64>() {
                    Ok(v) if v.is_finite() => Parsed::Float(v),
                    _ => {
                        return Err(reject(
                            Reason::WrongType,
                            "expected a number like 12.50".into(),
                        ));
                    }
                },
                ColumnType::Bool => match parse_bool(text) {
                    Some(v) => Parsed::Bool(v),
                    None => return Err(reject(Reason::WrongType, "expected true or false".into())),
                },
                ColumnType::Date => match parse_date(text.as_bytes()) {
                    Some(d) => Parsed::Date(d),
                    None => {
                        return Err(reject(
                            Reason::BadTimestamp,
                            "expected a date YYYY-MM-DD".into(),
                        ));
                    }
                },
                ColumnType::Timestamp => match parse_timestamp_micros(text.as_bytes()) {
                    Some(t) => Parsed::Ts(t),
                    None => {
                        return Err(reject(
                            Reason::BadTimestamp,
                            "expected a timestamp YYYY-MM-DD HH:MM:SS or RFC 3339".into(),
                        ));
                    }
                },
            };
            if let Some(allowed) = &col.allowed
                && !allowed.iter().any(|a| a == text)
            {
                return Err(reject(
                    Reason::BadEnum,
                    format!("expected one of {}", allowed.join(", ")),
                ));
            }
            if let Some(p) = &self.patterns[i]
                && self.matched[i] != text
            {
                if !p.is_match(text) {
                    return Err(reject(
                        Reason::BadPattern,
                        format!("does not match {}", p.as_str()),
                    ));
                }
                self.matched[i].clear();
                self.matched[i].push_str(text);
            }
            let number = match value {
                Parsed::Int(v) => Some(v as f64),
                Parsed::Float(v) => Some(v),
                _ => None,
            };
            if let Some(n) = number
                && (col.min.is_some_and(|lo| n < lo) || col.max.is_some_and(|hi| n > hi))
            {
                return Err(reject(Reason::OutOfRange, range_text(col.min, col.max)));
            }
            self.parsed[i] = match col.handling {
                Handling::Pseudonymize => {
                    Parsed::Pseudo(self.pseudonymizer.pseudonym(text.as_bytes()))
                }
                Handling::Redact => match self.redactor.redact(text) {
                    std::borrow::Cow::Borrowed(_) => field(text.len()),
                    std::borrow::Cow::Owned(s) => Parsed::Owned(s),
                },
                Handling::Generalize => match (&col.generalize, value) {
                    (Some(Generalization::AgeBand), Parsed::Int(y)) => {
                        Parsed::Static(age_band(y, self.year))
                    }
                    (Some(Generalization::Prefix { length }), _) => field(
                        text.char_indices()
                            .nth(*length)
                            .map_or(text.len(), |(b, _)| b),
                    ),
                    _ => unreachable!("contract check ties age_band to int columns"),
                },
                Handling::Keep => value,
                Handling::Drop => unreachable!("dropped columns are skipped above"),
            };
        }
        // Timestamps that cannot come before another's.
        for &i in &self.dependent {
            let col = &contract.columns[i];
            let Some(j) = col.not_before else { continue };
            if let (Parsed::Ts(t), Parsed::Ts(before)) = (&self.parsed[i], &self.parsed[j])
                && t < before
            {
                return Err(Reject {
                    reason: Reason::OutOfRange,
                    column: Some(col.name.clone()),
                    detail: format!("{} is before {}", col.name, contract.columns[j].name),
                });
            }
        }
        // Ranges that depend on another column (a score's scale on its survey type).
        for &i in &self.dependent {
            let col = &contract.columns[i];
            let (Some(rb), Some(n)) = (&col.range_by, number_of(&self.parsed[i])) else {
                continue;
            };
            let Some(key) = fields[rb.column]
                .and_then(|b| std::str::from_utf8(b).ok())
                .map(str::trim)
            else {
                continue;
            };
            if let Some((lo, hi)) = rb.ranges.get(key)
                && (n < *lo || n > *hi)
            {
                return Err(Reject {
                    reason: Reason::OutOfRange,
                    column: Some(col.name.clone()),
                    detail: format!("{key} {} must be {lo} to {hi}", col.name),
                });
            }
        }
        Ok(())
    }

    /// Appends the row last accepted by [`check`](Self::check).
    pub fn append(&mut self, fields: &Fields<'_>) {
        if self.rows == 0 {
            // sized when a batch's first row comes, not when the last is
            // taken: a partition's last batch needs no builders after it
            self.builders = self.fresh_builders();
        }
        for (i, b) in self.builders.iter_mut() {
            let i = *i;
            match (b, &self.parsed[i]) {
                (Builder::Utf8(b), Parsed::Null) => b.append_null(),
                (Builder::Utf8(b), Parsed::Field { start, end }) => {
                    let raw = fields[i].expect("checked present");
                    let text = raw.get(*start..*end).and_then(utf8);
                    b.append_value(text.expect("the field checked"))
                }
                (Builder::Utf8(b), Parsed::Owned(s)) => b.append_value(s),
                (Builder::Utf8(b), Parsed::Pseudo(h)) => {
                    b.append_value(utf8(h).expect("hex is ASCII"))
                }
                (Builder::Utf8(b), Parsed::Static(s)) => b.append_value(s),
                (Builder::Int(b), Parsed::Int(v)) => b.append_value(*v),
                (Builder::Int(b), Parsed::Null) => b.append_null(),
                (Builder::Float(b), Parsed::Float(v)) => b.append_value(*v),
                (Builder::Float(b), Parsed::Null) => b.append_null(),
                (Builder::Bool(b), Parsed::Bool(v)) => b.append_value(*v),
                (Builder::Bool(b), Parsed::Null) => b.append_null(),
                (Builder::Date(b), Parsed::Date(v)) => b.append_value(*v),
                (Builder::Date(b), Parsed::Null) => b.append_null(),
                (Builder::Ts(b), Parsed::Ts(v)) => b.append_value(*v),
                (Builder::Ts(b), Parsed::Null) => b.append_null(),
                _ => unreachable!("parsed value matches the column's builder"),
            }
        }
        self.rows += 1;
    }

    /// Asks for the pseudonym cache slots of a row that [`check`](Self::check)
    /// will see a few rows on.
    pub fn prefetch<'r>(&self, field: &dyn Fn(usize) -> Option<&'r [u8]>) {
        for &i in &self.pseudonymized {
            if let Some(raw) = field(i) {
                self.pseudonymizer.prefetch(raw);
            }
        }
    }

    /// The pseudonym computed for column `i` by the last successful check.
    pub fn pseudonym_of(&self, i: usize) -> Option<&Pseudonym> {
        match &self.parsed[i] {
            Parsed::Pseudo(p) => Some(p),
            _ => None,
        }
    }

    /// The boolean parsed for column `i` by the last successful check.
    pub fn bool_of(&self, i: usize) -> Option<bool> {
        match self.parsed[i] {
            Parsed::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The timestamp (microseconds) parsed for column `i` by the last
    /// successful check.
    pub fn timestamp_of(&self, i: usize) -> Option<i64> {
        match self.parsed[i] {
            Parsed::Ts(t) => Some(t),
            _ => None,
        }
    }

    /// Finishes the accepted rows as a batch and starts afresh.
    pub fn take_batch(&mut self) -> Result<RecordBatch> {
        self.size = self.batch_size();
        let columns: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|(_, b)| -> ArrayRef {
                match b {
                    Builder::Utf8(b) => Arc::new(b.finish()),
                    Builder::Int(b) => Arc::new(b.finish()),
                    Builder::Float(b) => Arc::new(b.finish()),
                    Builder::Bool(b) => Arc::new(b.finish()),
                    Builder::Date(b) => Arc::new(b.finish()),
                    Builder::Ts(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        self.rows = 0;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

fn number_of(p: &Parsed) -> Option<f64> {
    match p {
        Parsed::Int(v) => Some(*v as f64),
        Parsed::Float(v) => Some(*v),
        _ => None,
    }
}

fn range_text(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("must be {lo} to {hi}"),
        (Some(lo), None) => format!("must be at least {lo}"),
        (None, Some(hi)) => format!("must be at most {hi}"),
        (None, None) => String::new(),
    }
}

/// `true`/`false` and the spellings exports use for them (case ignored).
pub fn parse_bool(s: &str) -> Option<bool> {
    const TRUE: [&str; 5] = ["true", "t", "yes", "y", "1"];
    const FALSE: [&str; 5] = ["false", "f", "no", "n", "0"];
    if TRUE.iter().any(|t| s.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|f| s.eq_ignore_ascii_case(f)) {
        Some(false)
    } else {
        None
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm), or
/// `None` for dates that do not exist.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i32> {
    if !(1..=12).contains(&m) || d < 1 || !(1..=9999).contains(&y) {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_len = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d > month_len[(m - 1) as usize] {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    i32::try_from(era * 146_097 + doe - 719_468).ok()
}

/// `YYYY-MM-DD`.
pub fn parse_date(b: &[u8]) -> Option<i32> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    days_from_civil(digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?)
}

/// `YYYY-MM-DD[ T]HH:MM[:SS[.f…]][Z|±HH:MM|±HHMM|±HH]`, or a bare date
/// (midnight); `±HH` is how PostgreSQL prints a whole-hour time zone.
/// Timestamps without an offset are taken as UTC.
pub fn parse_timestamp_micros(b: &[u8]) -> Option<i64> {
    if b.len() == 10 {
        return parse_date(b).map(|d| i64::from(d) * 86_400_000_000);
    }
    if b.len() < 16 || !(b[10] == b' ' || b[10] == b'T' || b[10] == b't') || b[13] != b':' {
        return None;
    }
    let days = i64::from(parse_date(&b[..10])?);
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let mut rest = &b[16..];
    let mut second = 0;
    let mut micros = 0i64;
    if rest.first() == Some(&b':') {
        if rest.len() < 3 {
            return None;
        }
        second = digits(&rest[1..3])?;
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            let frac = &rest[1..1 + n];
            let mut scaled = 0i64;
            for i in 0..6 {
                scaled = scaled * 10 + frac.get(i).map_or(0, |d| i64::from(d - b'0'));
            }
            micros = scaled;
            rest = &rest[1 + n..];
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let offset_s = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2] => offset(*sign, [*h1, *h2], [b'0', b'0'])?,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] | [sign @ (b'+' | b'-'), h1, h2, m1, m2] => {
            offset(*sign, [*h1, *h2], [*m1, *m2])?
        }
        _ => return None,
    };
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Some(secs * 1_000_000 + micros)
}

/// Seconds east of UTC of a `±HH` and `MM` offset.
fn offset(sign: u8, h: [u8; 2], m: [u8; 2]) -> Option<i64> {
    let h = digits(&h)?;
    let m = digits(&m)?;
    if h > 18 || m > 59 {
        return None;
    }
    let s = h * 3600 + m * 60;
    Some(if sign == b'+' { s } else { -s })
}

/// `v.trim()`, without the call when both ends are visible ASCII, which is
/// never whitespace: nearly every value (trimming was 1.2% of a re-ingest's
/// CPU and 2% of the privacy scan's).
pub fn trim_edges(v: &str) -> &str {
    match (v.as_bytes().first(), v.as_bytes().last()) {
        (Some(a), Some(b)) if a.is_ascii_graphic() && b.is_ascii_graphic() => v,
        _ => v.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Array;

    /// A validator of `contract` in 2025 under a test key.
    fn validator_for(contract: &Arc<Contract>) -> RowValidator {
        RowValidator::new(
            contract.clone(),
            crate::ingest::pseudonym::Pseudonymizer::new(&crate::config::Key::new(
                b"test-key".to_vec(),
            )),
            Arc::new(crate::ingest::redact::Redactor::new()),
            2025,
        )
    }

    /// The fields of a comma-separated row, in the contract's column order.
    fn fields_of(row: &str) -> Fields<'_> {
        let mut fields: Fields<'_> = [None; MAX_COLUMNS];
        for (field, value) in fields.iter_mut().zip(row.split(',')) {
            *field = Some(value.as_bytes());
        }
        fields
    }

    /// A pattern's last match is remembered, never a failure: each value is
    /// judged as the contract's pattern judges it alone, in any order.
    #[test]
    fn a_remembered_pattern_match_judges_every_value_as_the_pattern_does() {
        let contracts = crate::schema::Contracts::builtin().expect("contracts");
        let contract = contracts.get("orders").expect("orders");
        let currency = contract.column_index("currency").expect("currency");
        assert_eq!(currency, 5, "the row below is in the contract's order");
        let pattern = contract.columns[currency].pattern.clone().expect("pattern");
        let mut v = validator_for(&contract);
        let values = [
            "EUR", "EUR", "eur", "EUR", "USD", "USD", "EU", "EUR", "EURO", "EUR", "GBP", "eur",
        ];
        for value in values {
            let row = format!("O1,C1,2025-03-01 09:00:00,3.50,0,{value},in_store,1,false");
            let fields = fields_of(&row);
            let got = v.check(&fields).map_err(|r| r.reason);
            let want = if pattern.is_match(value) {
                Ok(())
            } else {
                Err(Reason::BadPattern)
            };
            assert_eq!(got, want, "{value}");
        }
    }

    /// Reference: a validator whose builders grow from empty, as Arrow's
    /// do. One started at an earlier batch's size gives the same batches,
    /// and each validator's size is that of its largest batch: rows, and
    /// the bytes of each string column (pseudonyms 32 each).
    #[test]
    fn builders_started_at_an_earlier_size_give_the_same_batches() {
        let contracts = crate::schema::Contracts::builtin().expect("contracts");
        let contract = contracts.get("customers").expect("customers");
        // padded (ASCII and no-break spaces) and empty optional values: the
        // spans appended are the trimmed texts
        let rows = [
            "C1,,,,75011,1980,female,fr,north,2024-01-02,true,",
            " C2 ,,,, \u{a0}SW1A 1AA\u{a0},1950, male ,de,\u{a0}south,2024-01-03,false,2024-05-01 10:00:00",
            "C3,,,,,,,,,2024-01-04,yes,",
        ];
        let fill = |v: &mut RowValidator, n: usize| -> RecordBatch {
            for row in rows.iter().cycle().take(n) {
                let fields = fields_of(row);
                v.check(&fields).expect("valid row");
                v.append(&fields);
            }
            v.take_batch().expect("batch")
        };
        let mut grown = validator_for(&contract);
        let reference = [fill(&mut grown, 7), fill(&mut grown, 3)];
        let size = grown.batch_size();
        assert_eq!(size.rows, 7, "the largest batch, not the last");
        let id = (contract.columns.iter().filter(|c| c.is_kept()))
            .position(|c| c.name == "customer_id")
            .expect("kept");
        assert_eq!(size.bytes[id], 7 * crate::ingest::pseudonym::PSEUDONYM_LEN);
        let mut started = validator_for(&contract).starting_at(size.clone());
        assert_eq!(started.batch_size(), size, "the size started at");
        assert_eq!([fill(&mut started, 7), fill(&mut started, 3)], reference);
        let texts = |name: &str| -> Vec<Option<String>> {
            let column = reference[0].column_by_name(name).expect("lake column");
            let text = (column.as_any())
                .downcast_ref::<datafusion::arrow::array::StringArray>()
                .expect("text");
            (0..3)
                .map(|r| text.is_valid(r).then(|| text.value(r).to_string()))
                .collect()
        };
        let some = |v: &str| Some(v.to_string());
        assert_eq!(texts("postal_prefix"), [some("75"), some("SW"), None]);
        assert_eq!(texts("gender"), [some("female"), some("male"), None]);
        assert_eq!(texts("region"), [some("north"), some("south"), None]);
    }

    /// Reference: `str::trim`, on values with ASCII and Unicode spaces at
    /// either end, controls that are not spaces, and no space at all.
    #[test]
    fn trim_edges_trims_as_str_trim() {
        for v in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\ta\n",
            "\u{b}a",
            "a\u{c}",
            "\u{1f}a",
            "a\u{7f}",
            "\u{a0}a",
            "a\u{3000}",
            "\u{85}a",
            "é",
            " é ",
            "a b",
            "\u{200b}a",
        ] {
            assert_eq!(trim_edges(v), v.trim(), "{v:?}");
        }
    }

    /// The fast path agrees with the standard validation: ASCII, text in
    /// other scripts, and bytes that are not UTF-8 (a Latin-1 "ñ", a lone
    /// continuation byte, a sequence cut short).
    #[test]
    fn utf8_is_the_standard_validation() {
        let cases: [&[u8]; 8] = [
            b"",
            b"C-000123",
            b"2025-03-14 08:31:07",
            "Großartig, ¡gracias! 👍".as_bytes(),
            b"Espa\xf1a",
            b"\x80",
            b"caf\xc3",
            b"plain ASCII then \xff",
        ];
        for bytes in cases {
            assert_eq!(utf8(bytes), std::str::from_utf8(bytes).ok(), "{bytes:?}");
        }
    }

    #[test]
    fn timestamps_parse_the_formats_exports_use() {
        let base = 1_741_941_067_000_000; // 2025-03-14T08:31:07Z
        let cases: [(&str, Option<i64>); 15] = [
            ("2025-03-14 08:31:07", Some(base)),
            ("2025-03-14T08:31:07Z", Some(base)),
            ("2025-03-14T09:31:07+01:00", Some(base)),
            ("2025-03-14T03:31:07-0500", Some(base)),
            // PostgreSQL's text for a timestamptz in a whole-hour zone
            ("2025-03-14 09:31:07+01", Some(base)),
            ("2025-03-14 03:31:07.000-05", Some(base)),
            ("2025-03-14 08:31:07+1", None),
            ("2025-03-14T08:31:07.250Z", Some(base + 250_000)),
            ("2025-03-14 08:31", Some(base - 7_000_000)),
            (
                "2025-03-14",
                Some(base - (8 * 3600 + 31 * 60 + 7) * 1_000_000),
            ),
            ("2025-02-30 10:00:00", None),
            ("2025-03-14 25:61:00", None),
            ("yesterday", None),
            ("2025-03-14T08:31:07+25:00", None),
            ("2025-03-14T08:31:07 UTC", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_timestamp_micros(text.as_bytes()), want, "{text}");
        }
    }

    #[test]
    fn dates_match_chrono() {
        use chrono::{Datelike, NaiveDate};
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
        let mut d = NaiveDate::from_ymd_opt(1899, 12, 25).expect("valid");
        while d.year() < 2101 {
            let want = (d - epoch).num_days() as i32;
            assert_eq!(
                days_from_civil(d.year().into(), d.month().into(), d.day().into()),
                Some(want),
                "{d}"
            );
            d += chrono::Duration::days(13);
        }
        assert_eq!(parse_date(b"2024-02-29"), days_from_civil(2024, 2, 29));
        assert_eq!(parse_date(b"2023-02-29"), None);
        assert_eq!(parse_date(b"2100-02-29"), None);
        assert_eq!(parse_date(b"2000-02-29"), days_from_civil(2000, 2, 29));
    }

    #[test]
    fn booleans_accept_common_spellings_only() {
        for (s, want) in [
            ("true", Some(true)),
            ("No", Some(false)),
            ("1", Some(true)),
            ("maybe", None),
            ("", None),
        ] {
            assert_eq!(parse_bool(s), want, "{s}");
        }
    }
}
