//! Planted defects: each dirty row carries exactly one, chosen so that a
//! validator checking UTF-8 → field count / JSON syntax → required → type →
//! timestamp → enum → range rejects it for exactly the recorded reason.
//!
//! That is why the choices are narrow: a wrong type is a number word (never
//! "yes" or "1", which parse as booleans), a bad timestamp is non-empty and
//! unparseable, an out-of-range value is a well-formed number, a missing
//! value only hits a required column, invalid UTF-8 only goes into a column
//! the contract keeps (dropped columns are never decoded), and a truncated
//! JSON line is cut on a character boundary (else it would be invalid UTF-8).

use rand::Rng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::row::{Kind, Row};

/// Share of eligible data rows that get a defect or a duplicate.
pub const DIRTY_RATE: f64 = 0.005;
/// Share of days on which one table folder gets an extra 0-byte file.
pub const EMPTY_FILE_RATE: f64 = 0.02;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Defect {
    WrongType,
    OutOfRange,
    MissingRequired,
    BadTimestamp,
    BadEnum,
    RaggedRow,
    MalformedJson,
    InvalidUtf8,
    Duplicate,
}

impl Defect {
    pub fn code(self) -> &'static str {
        match self {
            Defect::WrongType => "wrong_type",
            Defect::OutOfRange => "out_of_range",
            Defect::MissingRequired => "missing_required",
            Defect::BadTimestamp => "bad_timestamp",
            Defect::BadEnum => "bad_enum",
            Defect::RaggedRow => "ragged_row",
            Defect::MalformedJson => "malformed_json",
            Defect::InvalidUtf8 => "invalid_utf8",
            Defect::Duplicate => "duplicate",
        }
    }
}

/// Which columns of a table may carry which defect.
pub struct DirtSpec {
    pub kinds: &'static [Defect],
    /// Int, float or bool columns.
    pub wrong_type: &'static [usize],
    /// Required columns (never ids: a row without its key is still a row).
    pub missing: &'static [usize],
    /// (column, is a date rather than a timestamp).
    pub timestamps: &'static [(usize, bool)],
    pub enums: &'static [(usize, &'static [&'static str])],
    /// Kept string columns.
    pub utf8: &'static [usize],
    /// (column, values outside its range).
    pub ranges: &'static [(usize, &'static [&'static str])],
    /// Column whose range depends on `survey_type` (feedback scores).
    pub score_by_survey: Option<(usize, usize)>,
}

use Defect::*;

const CSV_KINDS: &[Defect] = &[
    WrongType,
    OutOfRange,
    MissingRequired,
    BadTimestamp,
    BadEnum,
    RaggedRow,
    InvalidUtf8,
    Duplicate,
];

pub const CUSTOMERS: DirtSpec = DirtSpec {
    kinds: CSV_KINDS,
    wrong_type: &[5, 10],
    missing: &[9, 10],
    timestamps: &[(9, true), (11, false)],
    enums: &[
        (6, &["robot", "unknown", "x"]),
        (8, &["northeast", "mars", "centre"]),
    ],
    utf8: &[4, 6, 8],
    ranges: &[(5, &["1850", "1899", "2031", "2042"])],
    score_by_survey: None,
};

pub const ORDERS: DirtSpec = DirtSpec {
    kinds: CSV_KINDS,
    wrong_type: &[3, 4, 7, 8],
    missing: &[2, 3, 5, 6],
    timestamps: &[(2, false)],
    enums: &[(6, &["fax", "kiosk", "drive_thru"])],
    utf8: &[5, 6],
    ranges: &[
        (7, &["0", "-2", "1500"]),
        (3, &["-4.50", "-12.00"]),
        (4, &["-1.00"]),
    ],
    score_by_survey: None,
};

pub const FEEDBACK: DirtSpec = DirtSpec {
    kinds: CSV_KINDS,
    wrong_type: &[4, 7],
    missing: &[2, 3, 4],
    timestamps: &[(2, false)],
    enums: &[
        (3, &["survey", "rating"]),
        (6, &["fax", "carrier_pigeon", "kiosk"]),
    ],
    utf8: &[5, 6],
    ranges: &[],
    score_by_survey: Some((4, 3)),
};

pub const TICKETS: DirtSpec = DirtSpec {
    kinds: &[
        WrongType,
        OutOfRange,
        MissingRequired,
        BadTimestamp,
        BadEnum,
        MalformedJson,
        InvalidUtf8,
        Duplicate,
    ],
    wrong_type: &[8, 10],
    missing: &[2, 5, 6],
    timestamps: &[(2, false), (3, false), (4, false), (9, false)],
    enums: &[
        (5, &["fax", "sms"]),
        (6, &["robot", "intern"]),
        (7, &["weather", "gossip"]),
    ],
    utf8: &[11, 12],
    ranges: &[(8, &["0", "6", "9"])],
    score_by_survey: None,
};

pub const REVIEWS: DirtSpec = DirtSpec {
    kinds: CSV_KINDS,
    wrong_type: &[4],
    missing: &[1, 4],
    timestamps: &[(1, false), (6, false)],
    enums: &[(3, &["yelp", "myspace"])],
    utf8: &[5, 3],
    ranges: &[(4, &["0", "6", "7"])],
    score_by_survey: None,
};

pub const WEB_SESSIONS: DirtSpec = DirtSpec {
    kinds: &[
        WrongType,
        OutOfRange,
        MissingRequired,
        BadTimestamp,
        RaggedRow,
        InvalidUtf8,
        Duplicate,
    ],
    wrong_type: &[3, 4, 5, 6],
    missing: &[2],
    timestamps: &[(2, false)],
    enums: &[],
    utf8: &[0],
    ranges: &[(3, &["-1", "-3"]), (4, &["-30", "90000", "123456"])],
    score_by_survey: None,
};

pub const OFFERS: DirtSpec = DirtSpec {
    kinds: CSV_KINDS,
    wrong_type: &[4],
    missing: &[2, 3, 5],
    timestamps: &[(2, false)],
    enums: &[(3, &["voucher", "lottery"]), (5, &["magic", "coin_flip"])],
    utf8: &[3, 5],
    ranges: &[(4, &["-5.0", "120.0", "250.0"])],
    score_by_survey: None,
};

pub const INITIATIVES: DirtSpec = DirtSpec {
    kinds: &[],
    wrong_type: &[],
    missing: &[],
    timestamps: &[],
    enums: &[],
    utf8: &[],
    ranges: &[],
    score_by_survey: None,
};

pub const ASSIGNMENTS: DirtSpec = DirtSpec {
    kinds: &[
        MissingRequired,
        BadTimestamp,
        BadEnum,
        RaggedRow,
        InvalidUtf8,
        Duplicate,
    ],
    wrong_type: &[],
    missing: &[3],
    timestamps: &[(2, false)],
    enums: &[(3, &["placebo", "both"])],
    utf8: &[3],
    ranges: &[],
    score_by_survey: None,
};

const NUMBER_WORDS: &[&str] = &["twelve", "seven", "four", "nineteen", "three", "forty"];
const BAD_TS: &[&str] = &[
    "2025-02-30 25:61:00",
    "yesterday",
    "2025-13-45 10:00:00",
    "31/02/2025 09:15",
    "last tuesday",
];
const BAD_TS_JSON: &[&str] = &[
    "2025-02-30T25:61:00Z",
    "yesterday",
    "2025-13-45T10:00:00Z",
    "last tuesday",
];
const BAD_DATE: &[&str] = &["2025-02-30", "yesterday", "2025-13-45", "30.02.2025"];

fn pick<T: Copy>(rng: &mut Xoshiro256PlusPlus, xs: &[T]) -> T {
    xs[rng.random_range(0..xs.len())]
}

/// Hands out defect kinds in shuffled rounds, so every kind a table allows
/// shows up once a handful of rows are dirty, in no fixed order.
#[derive(Debug, Default)]
pub struct KindDeck {
    deck: Vec<Defect>,
}

impl KindDeck {
    pub fn next(&mut self, spec: &DirtSpec, rng: &mut Xoshiro256PlusPlus) -> Option<Defect> {
        if spec.kinds.is_empty() {
            return None;
        }
        if self.deck.is_empty() {
            self.deck.extend_from_slice(spec.kinds);
            self.deck.shuffle(rng);
        }
        self.deck.pop()
    }
}

/// Plants `defect` (not `Duplicate`/`MalformedJson`, which work on whole
/// lines) into `row`.
pub fn apply(
    defect: Defect,
    spec: &DirtSpec,
    row: &mut Row,
    json: bool,
    rng: &mut Xoshiro256PlusPlus,
) {
    match defect {
        WrongType => {
            let c = pick(rng, spec.wrong_type);
            row.set(c, pick(rng, NUMBER_WORDS).as_bytes(), Kind::Str);
        }
        OutOfRange => {
            let (c, v) = match spec.score_by_survey {
                Some((score, survey)) => {
                    let values: &[&str] = match row.field(survey) {
                        b"nps" => &["11", "12", "-1", "15"],
                        b"csat" => &["0", "6", "9"],
                        b"ces" => &["0", "8", "10"],
                        _ => &["0", "8", "9"],
                    };
                    (score, pick(rng, values))
                }
                None => {
                    let (c, values) = pick(rng, spec.ranges);
                    (c, pick(rng, values))
                }
            };
            row.set(c, v.as_bytes(), Kind::Num);
        }
        MissingRequired => {
            let c = pick(rng, spec.missing);
            row.set(c, b"", Kind::Null);
        }
        BadTimestamp => {
            let (c, is_date) = pick(rng, spec.timestamps);
            let v = if is_date {
                pick(rng, BAD_DATE)
            } else if json {
                pick(rng, BAD_TS_JSON)
            } else {
                pick(rng, BAD_TS)
            };
            row.set(c, v.as_bytes(), Kind::Str);
        }
        BadEnum => {
            let (c, values) = pick(rng, spec.enums);
            row.set(c, pick(rng, values).as_bytes(), Kind::Str);
        }
        RaggedRow => {
            let n = row.fields.len();
            if rng.random_bool(0.5) {
                row.fields.remove(rng.random_range(0..n));
            } else {
                let i = rng.random_range(0..n);
                let copy = row.fields[i];
                row.fields.insert(rng.random_range(0..=n), copy);
            }
        }
        InvalidUtf8 => {
            let c = pick(rng, spec.utf8);
            let old = row.field(c).to_vec();
            let mut v = if old.is_empty() { b"ok ".to_vec() } else { old };
            // Insert between characters: the only invalid bytes are ours.
            let text = String::from_utf8_lossy(&v).into_owned();
            let boundaries: Vec<usize> = (1..=text.len())
                .filter(|&i| text.is_char_boundary(i))
                .collect();
            let at = if text.len() == v.len() {
                pick(rng, &boundaries).min(v.len())
            } else {
                v.len()
            };
            v.splice(at..at, [0xC3, 0x28]);
            let kind = match row.fields[c].2 {
                Kind::Text => Kind::Text,
                _ => Kind::Str,
            };
            row.set(c, &v, kind);
        }
        MalformedJson | Duplicate => {}
    }
}

/// Cuts a serialized JSON line (without its `\n`) short, on a character
/// boundary, leaving at least the opening brace and one key.
pub fn truncate_json(line: &[u8], rng: &mut Xoshiro256PlusPlus) -> usize {
    let text = std::str::from_utf8(line).unwrap_or("");
    if text.len() < 4 {
        return line.len().saturating_sub(1);
    }
    let lo = (text.len() / 4).max(2);
    let hi = (text.len() * 3 / 4).max(lo + 1);
    let mut at = rng.random_range(lo..hi);
    while at > 1 && !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allowed_kind_has_a_column_to_hit() {
        for spec in [
            &CUSTOMERS,
            &ORDERS,
            &FEEDBACK,
            &TICKETS,
            &REVIEWS,
            &WEB_SESSIONS,
            &OFFERS,
            &INITIATIVES,
            &ASSIGNMENTS,
        ] {
            for kind in spec.kinds {
                let ok = match kind {
                    WrongType => !spec.wrong_type.is_empty(),
                    OutOfRange => !spec.ranges.is_empty() || spec.score_by_survey.is_some(),
                    MissingRequired => !spec.missing.is_empty(),
                    BadTimestamp => !spec.timestamps.is_empty(),
                    BadEnum => !spec.enums.is_empty(),
                    InvalidUtf8 => !spec.utf8.is_empty(),
                    RaggedRow | MalformedJson | Duplicate => true,
                };
                assert!(ok, "{kind:?} allowed without a column");
            }
        }
    }
}
