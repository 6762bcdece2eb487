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
    /// The raw field, valid UTF-8, trimmed unless free text.
    Field,
    Owned(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(i32),
    Ts(i64),
    Pseudo(Pseudonym),
    Static(&'static str),
    Prefix(usize),
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
    rows: usize,
    /// Columns whose values are pseudonymized.
    pseudonymized: Vec<usize>,
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
        let patterns: Vec<Option<regex::Regex>> =
            contract.columns.iter().map(|c| c.pattern.clone()).collect();
        let mut v = RowValidator {
            pseudonymized,
            matched: vec![String::new(); patterns.len()],
            patterns,
            parsed: vec![Parsed::Null; contract.columns.len()],
            builders: Vec::new(),
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

    fn fresh_builders(&self) -> Vec<(usize, Builder)> {
        self.contract
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_kept())
            .map(|(i, c)| {
                let b = if matches!(c.handling, Handling::Pseudonymize | Handling::Generalize) {
                    Builder::Utf8(StringBuilder::new())
                } else {
                    match c.ty {
                        ColumnType::String => Builder::Utf8(StringBuilder::new()),
                        ColumnType::Int => Builder::Int(Int64Builder::new()),
                        ColumnType::Float => Builder::Float(Float64Builder::new()),
                        ColumnType::Bool => Builder::Bool(BooleanBuilder::new()),
                        ColumnType::Date => Builder::Date(Date32Builder::new()),
                        ColumnType::Timestamp => {
                            Builder::Ts(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
                        }
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
                ColumnType::String => Parsed::Field,
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
                    std::borrow::Cow::Borrowed(_) => Parsed::Field,
                    std::borrow::Cow::Owned(s) => Parsed::Owned(s),
                },
                Handling::Generalize => match (&col.generalize, value) {
                    (Some(Generalization::AgeBand), Parsed::Int(y)) => {
                        Parsed::Static(age_band(y, self.year))
                    }
                    (Some(Generalization::Prefix { length }), _) => Parsed::Prefix(
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
        for (i, col) in contract.columns.iter().enumerate() {
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
        for (i, col) in contract.columns.iter().enumerate() {
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
        for (i, b) in self.builders.iter_mut() {
            let i = *i;
            let p = &self.parsed[i];
            let field_str = || {
                let raw = fields[i].expect("checked present");
                let s = utf8(raw).expect("checked UTF-8");
                // a prefix's length was measured on the trimmed text
                if matches!(p, Parsed::Field | Parsed::Prefix(_))
                    && self.contract.columns[i].handling != Handling::Redact
                {
                    s.trim()
                } else {
                    s
                }
            };
            match (b, p) {
                (Builder::Utf8(b), Parsed::Null) => b.append_null(),
                (Builder::Utf8(b), Parsed::Field) => b.append_value(field_str()),
                (Builder::Utf8(b), Parsed::Owned(s)) => b.append_value(s),
                (Builder::Utf8(b), Parsed::Pseudo(h)) => {
                    b.append_value(utf8(h).expect("hex is ASCII"))
                }
                (Builder::Utf8(b), Parsed::Static(s)) => b.append_value(s),
                (Builder::Utf8(b), Parsed::Prefix(n)) => b.append_value(&field_str()[..*n]),
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

    /// A pattern's last match is remembered, never a failure: each value is
    /// judged as the contract's pattern judges it alone, in any order.
    #[test]
    fn a_remembered_pattern_match_judges_every_value_as_the_pattern_does() {
        let contracts = crate::schema::Contracts::builtin().expect("contracts");
        let contract = contracts.get("orders").expect("orders");
        let currency = contract.column_index("currency").expect("currency");
        assert_eq!(currency, 5, "the row below is in the contract's order");
        let pattern = contract.columns[currency].pattern.clone().expect("pattern");
        let mut v = RowValidator::new(
            contract.clone(),
            crate::ingest::pseudonym::Pseudonymizer::new(&crate::config::Key::new(
                b"test-key".to_vec(),
            )),
            Arc::new(crate::ingest::redact::Redactor::new()),
            2025,
        );
        let values = [
            "EUR", "EUR", "eur", "EUR", "USD", "USD", "EU", "EUR", "EURO", "EUR", "GBP", "eur",
        ];
        for value in values {
            let row = format!("O1,C1,2025-03-01 09:00:00,3.50,0,{value},in_store,1,false");
            // the values in the contract's column order
            let mut fields: Fields<'_> = [None; MAX_COLUMNS];
            for (field, value) in fields.iter_mut().zip(row.split(',')) {
                *field = Some(value.as_bytes());
            }
            let got = v.check(&fields).map_err(|r| r.reason);
            let want = if pattern.is_match(value) {
                Ok(())
            } else {
                Err(Reason::BadPattern)
            };
            assert_eq!(got, want, "{value}");
        }
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
