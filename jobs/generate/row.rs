//! One export row as typed fields, serialized to CSV or NDJSON by hand.
//!
//! Rows are built field by field into one reusable byte buffer (numbers via
//! `itoa`, dates via arithmetic: no `format!` on the hot path). Keeping the
//! fields apart until serialization is what lets a defect be planted in
//! exactly one field, with CSV quoting and JSON escaping still right.

use super::sim::civil_from_days;

/// How a field is written to NDJSON (CSV writes every kind as text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string known to need no CSV quoting or JSON escaping (ids, dates, enums).
    Str,
    /// Free text: quoted and escaped as needed.
    Text,
    Num,
    Bool,
    Null,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub bytes: Vec<u8>,
    pub fields: Vec<(u32, u32, Kind)>,
    /// The last date formatted: most timestamps of a day's rows share it.
    date_cache: (i64, [u8; 10]),
}

impl Default for Row {
    fn default() -> Self {
        Row {
            bytes: Vec::with_capacity(512),
            fields: Vec::with_capacity(16),
            date_cache: (i64::MIN, [0; 10]),
        }
    }
}

fn two(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
pub fn push_date(out: &mut Vec<u8>, epoch_day: i64) {
    let (y, m, d) = civil_from_days(epoch_day);
    let y = y.clamp(0, 9999) as u32;
    two(out, y / 100);
    two(out, y % 100);
    out.push(b'-');
    two(out, m);
    out.push(b'-');
    two(out, d);
}

/// `␠HH:MM:SS` (CSV) or `THH:MM:SSZ` (NDJSON): the time part of Unix seconds.
fn push_time(out: &mut Vec<u8>, secs: i64, rfc3339: bool) {
    let s = secs.rem_euclid(86_400) as u32;
    out.push(if rfc3339 { b'T' } else { b' ' });
    two(out, s / 3600);
    out.push(b':');
    two(out, s / 60 % 60);
    out.push(b':');
    two(out, s % 60);
    if rfc3339 {
        out.push(b'Z');
    }
}

/// Euros with two decimals from cents.
pub fn push_money(out: &mut Vec<u8>, cents: i64) {
    if cents < 0 {
        out.push(b'-');
    }
    let c = cents.unsigned_abs();
    out.extend_from_slice(itoa::Buffer::new().format(c / 100).as_bytes());
    out.push(b'.');
    two(out, (c % 100) as u32);
}

/// A fixed-point decimal (`x` rounded to `decimals` places), for the truth files.
pub fn push_fixed(out: &mut Vec<u8>, x: f64, decimals: u32) {
    let scale = 10u64.pow(decimals);
    let v = (x.abs() * scale as f64).round() as u64;
    if x < 0.0 && v > 0 {
        out.push(b'-');
    }
    out.extend_from_slice(itoa::Buffer::new().format(v / scale).as_bytes());
    if decimals > 0 {
        out.push(b'.');
        let frac = v % scale;
        let digits = itoa::Buffer::new().format(frac).len() as u32;
        for _ in digits..decimals {
            out.push(b'0');
        }
        out.extend_from_slice(itoa::Buffer::new().format(frac).as_bytes());
    }
}

/// `prefix` then `n` zero-padded to `width` digits ("O000000123").
pub fn push_id(out: &mut Vec<u8>, prefix: &str, n: u64, width: usize) {
    out.extend_from_slice(prefix.as_bytes());
    let mut b = itoa::Buffer::new();
    let s = b.format(n);
    for _ in s.len()..width {
        out.push(b'0');
    }
    out.extend_from_slice(s.as_bytes());
}

impl Row {
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.fields.clear();
    }

    fn begin(&self) -> u32 {
        self.bytes.len() as u32
    }

    fn end(&mut self, start: u32, kind: Kind) {
        self.fields.push((start, self.bytes.len() as u32, kind));
    }

    /// A plain string (no commas, quotes, backslashes or line breaks).
    pub fn str(&mut self, s: &str) {
        let st = self.begin();
        self.bytes.extend_from_slice(s.as_bytes());
        self.end(st, Kind::Str);
    }

    /// Free text.
    pub fn text(&mut self, s: &str) {
        let st = self.begin();
        self.bytes.extend_from_slice(s.as_bytes());
        self.end(st, Kind::Text);
    }

    /// Free text, or null when empty.
    pub fn opt_text(&mut self, s: &str) {
        if s.is_empty() {
            self.null();
        } else {
            self.text(s);
        }
    }

    fn put_date(&mut self, epoch_day: i64) {
        if self.date_cache.0 != epoch_day {
            let mut v = Vec::with_capacity(10);
            push_date(&mut v, epoch_day);
            let mut b = [0u8; 10];
            b.copy_from_slice(&v[..10]);
            self.date_cache = (epoch_day, b);
        }
        self.bytes.extend_from_slice(&self.date_cache.1);
    }

    pub fn null(&mut self) {
        let st = self.begin();
        self.end(st, Kind::Null);
    }

    pub fn uint(&mut self, v: u64) {
        let st = self.begin();
        self.bytes
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        self.end(st, Kind::Num);
    }

    pub fn boolean(&mut self, v: bool) {
        let st = self.begin();
        self.bytes
            .extend_from_slice(if v { b"true" } else { b"false" });
        self.end(st, Kind::Bool);
    }

    pub fn money(&mut self, cents: i64) {
        let st = self.begin();
        push_money(&mut self.bytes, cents);
        self.end(st, Kind::Num);
    }

    /// A number in tenths ("12.5").
    pub fn tenths(&mut self, v: u32) {
        let st = self.begin();
        self.bytes
            .extend_from_slice(itoa::Buffer::new().format(v / 10).as_bytes());
        self.bytes.push(b'.');
        self.bytes.push(b'0' + (v % 10) as u8);
        self.end(st, Kind::Num);
    }

    pub fn id(&mut self, prefix: &str, n: u64, width: usize) {
        let st = self.begin();
        push_id(&mut self.bytes, prefix, n, width);
        self.end(st, Kind::Str);
    }

    pub fn customer(&mut self, idx: u32) {
        self.id("C", u64::from(idx) + 1, 7);
    }

    pub fn date(&mut self, epoch_day: i64) {
        let st = self.begin();
        self.put_date(epoch_day);
        self.end(st, Kind::Str);
    }

    pub fn ts(&mut self, secs: i64, rfc3339: bool) {
        let st = self.begin();
        self.put_date(secs.div_euclid(86_400));
        push_time(&mut self.bytes, secs, rfc3339);
        self.end(st, Kind::Str);
    }

    pub fn opt_ts(&mut self, secs: Option<i64>, rfc3339: bool) {
        match secs {
            Some(s) => self.ts(s, rfc3339),
            None => self.null(),
        }
    }

    /// A field built by the caller directly into `bytes`.
    pub fn raw(&mut self, f: impl FnOnce(&mut Vec<u8>), kind: Kind) {
        let st = self.begin();
        f(&mut self.bytes);
        self.end(st, kind);
    }

    pub fn field(&self, i: usize) -> &[u8] {
        let (a, b, _) = self.fields[i];
        &self.bytes[a as usize..b as usize]
    }

    /// Replaces field `i` (the old bytes stay unused in the buffer).
    pub fn set(&mut self, i: usize, value: &[u8], kind: Kind) {
        let st = self.begin();
        self.bytes.extend_from_slice(value);
        self.fields[i] = (st, self.bytes.len() as u32, kind);
    }

    /// Appends the row as one CSV line (RFC 4180 quoting, `\n` end).
    pub fn write_csv(&self, out: &mut Vec<u8>) {
        for (i, &(a, b, kind)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let v = &self.bytes[a as usize..b as usize];
            if kind == Kind::Null || v.is_empty() {
                continue;
            }
            let quote =
                kind == Kind::Text && v.iter().any(|&c| matches!(c, b',' | b'"' | b'\n' | b'\r'));
            if quote {
                out.push(b'"');
                for &c in v {
                    if c == b'"' {
                        out.push(b'"');
                    }
                    out.push(c);
                }
                out.push(b'"');
            } else {
                out.extend_from_slice(v);
            }
        }
        out.push(b'\n');
    }

    /// Appends the row as one JSON object line, keys from `columns`.
    /// Bytes ≥ 0x80 are copied as they are, so a planted invalid byte survives.
    pub fn write_json(&self, columns: &[&str], out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, &(a, b, kind)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(columns.get(i).copied().unwrap_or("extra").as_bytes());
            out.extend_from_slice(b"\":");
            let v = &self.bytes[a as usize..b as usize];
            match kind {
                Kind::Null => out.extend_from_slice(b"null"),
                Kind::Num | Kind::Bool => out.extend_from_slice(v),
                Kind::Str => {
                    out.push(b'"');
                    out.extend_from_slice(v);
                    out.push(b'"');
                }
                Kind::Text => {
                    out.push(b'"');
                    for &c in v {
                        match c {
                            b'"' => out.extend_from_slice(b"\\\""),
                            b'\\' => out.extend_from_slice(b"\\\\"),
                            b'\n' => out.extend_from_slice(b"\\n"),
                            b'\r' => out.extend_from_slice(b"\\r"),
                            b'\t' => out.extend_from_slice(b"\\t"),
                            c if c < 0x20 => {
                                const HEX: &[u8; 16] = b"0123456789abcdef";
                                out.extend_from_slice(b"\\u00");
                                out.push(HEX[usize::from(c >> 4)]);
                                out.push(HEX[usize::from(c & 15)]);
                            }
                            c => out.push(c),
                        }
                    }
                    out.push(b'"');
                }
            }
        }
        out.extend_from_slice(b"}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_the_contract() {
        let mut r = Row::default();
        r.ts(1_741_941_067, false);
        r.ts(1_741_941_067, true);
        r.date(20_161);
        assert_eq!(r.field(0), b"2025-03-14 08:31:07");
        assert_eq!(r.field(1), b"2025-03-14T08:31:07Z");
        assert_eq!(r.field(2), b"2025-03-14");
        let mut v = Vec::new();
        push_money(&mut v, 1205);
        assert_eq!(v, b"12.05");
        v.clear();
        push_fixed(&mut v, 0.0571, 4);
        assert_eq!(v, b"0.0571");
        v.clear();
        push_id(&mut v, "O", 123, 9);
        assert_eq!(v, b"O000000123");
    }

    #[test]
    fn csv_quotes_and_json_escapes() {
        let mut r = Row::default();
        r.text("a,b");
        r.text("say \"hi\"");
        r.null();
        r.uint(7);
        r.boolean(true);
        let mut csv = Vec::new();
        r.write_csv(&mut csv);
        assert_eq!(csv, b"\"a,b\",\"say \"\"hi\"\"\",,7,true\n");
        let mut json = Vec::new();
        r.write_json(&["a", "b", "c", "d", "e"], &mut json);
        let v: serde_json::Value = serde_json::from_slice(&json).expect("valid json");
        assert_eq!(v["b"], "say \"hi\"");
        assert!(v["c"].is_null());
        assert_eq!(v["d"], 7);
    }
}
