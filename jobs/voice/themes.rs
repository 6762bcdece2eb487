//! Themes: the phrases that most distinguish negative from positive
//! messages, per touchpoint, so an owner sees what to fix (and what to
//! keep).
//!
//! Each message contributes the set of its phrases (words and two-word
//! phrases, stop words and redaction placeholders left out) once. For every
//! phrase the log odds ratio of appearing in a negative rather than a
//! positive message is estimated with the Haldane–Anscombe ½ correction, and
//! its z score (log odds ratio over its standard error) ranks the phrases.
//! A phrase is listed only when it is significant (|z| > 1.96) and used by
//! at least `min_group_size` distinct customers on its side, so no single
//! customer's words can be singled out. Anonymous messages (reviews without
//! a customer) are counted but never count as a distinct customer.
//!
//! Memory stays bounded by the vocabulary: per phrase two counters and at
//! most `min_group_size` customer fingerprints per side.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::stats::Z95;
use crate::Result;

/// The touchpoint under which every message is also counted.
pub const ALL: &str = "all";

/// Words that carry no theme on their own (English, Spanish, German).
/// Negations ("not", "no", "nie", "nunca") are kept on purpose: "not
/// fresh" is a theme.
const STOP_WORDS: &[&str] = &[
    // English
    "a", "about", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been",
    "but", "by", "can", "could", "did", "do", "does", "for", "from", "get", "got", "had", "has",
    "have", "he", "her", "here", "him", "his", "how", "i", "i'm", "if", "in", "is", "it", "it's",
    "its", "just", "me", "my", "of", "on", "or", "our", "out", "she", "so", "some", "than", "that",
    "the", "their", "them", "then", "there", "they", "this", "to", "too", "up", "us", "very",
    "was", "we", "were", "what", "when", "which", "who", "will", "with", "would", "you", "your",
    "really", "even", "every", "one", "time",
    // Greetings and thanks: politeness, not a theme.
    "hi", "hello", "dear", "morning", "thanks", "thank", "cheers", "please", "many", "lot", "much",
    "oh", "gracias", "saludo", "buenos", "días", "danke", "viele", "grüße", "guten", "tag",
    // Spanish
    "al", "con", "de", "del", "el", "en", "es", "esta", "está", "estaba", "este", "fue", "ha", "la",
    "las", "le", "lo", "los", "me", "mi", "muy", "para", "pero", "por", "que", "se", "su", "un",
    "una", "y", "ya", "hola", // German
    "am", "an", "auf", "aus", "bei", "das", "dem", "den", "der", "die", "ein", "eine", "einen",
    "es", "für", "hat", "ich", "im", "in", "ist", "mein", "meine", "mir", "mit", "sehr", "sie",
    "und", "von", "war", "wir", "wurde", "zu", "hallo",
];

fn is_stop_word(w: &str) -> bool {
    // a set, not a scan of the list: two million messages a night ask it
    // for every word (the scan was a tenth of the voice job)
    static SET: std::sync::LazyLock<std::collections::HashSet<&str, Fast>> =
        std::sync::LazyLock::new(|| STOP_WORDS.iter().copied().collect());
    SET.contains(w)
}

/// The phrases of one message in reused buffers: building them was half of
/// counting them in `perf` (14.5% of the voice job's CPU time against 29%),
/// much of it a `String` allocated per phrase.
#[derive(Debug, Clone, Default)]
struct PhraseBuf {
    /// The kept words; a two-word phrase is the span over a word, a space
    /// and the next word, which is where the next word is written.
    text: String,
    /// Byte ranges of the phrases in `text`, sorted by phrase and distinct
    /// after [`fill`](Self::fill).
    spans: Vec<(u32, u32)>,
    word: String,
    lower: String,
}

impl PhraseBuf {
    /// The distinct phrases of `text`, sorted: every word that is not a
    /// stop word, and every two adjacent words of one clause that are both
    /// not stop words. Redaction placeholders (`[EMAIL]`, `[PHONE]`, …),
    /// numbers and single letters are left out; punctuation ends a clause.
    fn fill(&mut self, text: &str) {
        self.text.clear();
        self.spans.clear();
        self.word.clear();
        // where in `text` the previous kept word of the clause starts; it
        // always ends `text`, since nothing is written after a kept word
        let mut prev: Option<usize> = None;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '[' {
                // Skip a placeholder such as [EMAIL]; a bracket without one is punctuation.
                let rest = chars.clone().take_while(|&x| x != ']').take(8);
                let (mut len, mut upper) = (0, true);
                for x in rest {
                    len += 1;
                    upper &= x.is_ascii_uppercase();
                }
                if len > 0 && upper && chars.clone().nth(len) == Some(']') {
                    self.flush(&mut prev);
                    prev = None;
                    for _ in 0..=len {
                        chars.next();
                    }
                    continue;
                }
            }
            if c.is_alphanumeric() || (c == '\'' && !self.word.is_empty()) {
                self.word.push(c);
            } else if c.is_whitespace() || c == '-' {
                self.flush(&mut prev);
            } else {
                self.flush(&mut prev);
                prev = None;
            }
        }
        self.flush(&mut prev);
        let text = &self.text;
        self.spans
            .sort_unstable_by(|a, b| span(text, *a).cmp(span(text, *b)));
        self.spans.dedup_by(|a, b| span(text, *a) == span(text, *b));
    }

    /// Ends the current word: keeps it (and the two-word phrase it ends)
    /// or, for a stop word, ends the clause's run of kept words.
    fn flush(&mut self, prev: &mut Option<usize>) {
        if self.word.is_empty() {
            return;
        }
        self.lower.clear();
        if self.word.is_ascii() {
            self.lower
                .extend(self.word.chars().map(|c| c.to_ascii_lowercase()));
        } else {
            // the string's own rules (a final sigma), not char by char
            self.lower.push_str(&self.word.to_lowercase());
        }
        self.word.clear();
        let w = self.lower.trim_matches('\'');
        let keep =
            w.chars().count() >= 2 && !w.chars().any(|c| c.is_ascii_digit()) && !is_stop_word(w);
        if !keep {
            *prev = None;
            return;
        }
        if prev.is_some() {
            self.text.push(' ');
        }
        let start = self.text.len();
        self.text.push_str(w);
        let end = self.text.len() as u32;
        if let Some(p) = *prev {
            self.spans.push((p as u32, end));
        }
        self.spans.push((start as u32, end));
        *prev = Some(start);
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        self.spans.iter().map(|s| span(&self.text, *s))
    }
}

fn span(text: &str, (start, end): (u32, u32)) -> &str {
    &text[start as usize..end as usize]
}

/// A fingerprint of a pseudonymous customer id, for counting distinct
/// customers in memory (never written). A collision can only make a phrase
/// look rarer than it is, which errs on the side of suppression.
pub fn customer_fingerprint(customer_id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    customer_id.hash(&mut h);
    h.finish()
}

/// Up to `cap` distinct customers: enough to know whether a phrase reaches
/// `min_group_size`, never more.
#[derive(Debug, Clone, Default)]
struct CappedSet(Vec<u64>);

impl CappedSet {
    fn insert(&mut self, x: u64, cap: usize) {
        if self.0.len() < cap && !self.0.contains(&x) {
            self.0.push(x);
        }
    }

    fn merge(&mut self, other: &CappedSet, cap: usize) {
        for &x in &other.0 {
            self.insert(x, cap);
        }
    }

    fn reached(&self, cap: usize) -> bool {
        self.0.len() >= cap
    }
}

#[derive(Debug, Clone, Default)]
struct PhraseCounts {
    negative: u64,
    positive: u64,
    negative_customers: CappedSet,
    positive_customers: CappedSet,
}

/// Negative and positive message totals of a touchpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    negative: u64,
    positive: u64,
}

/// The tone of a message, as far as themes are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Negative,
    Positive,
}

/// Phrase counts per touchpoint; merge partial counters from parallel
/// workers with [`ThemeCounter::merge`].
#[derive(Debug, Clone)]
pub struct ThemeCounter {
    cap: usize,
    /// Every phrase seen, with its number (0, 1, … in order of first
    /// sight): each touchpoint counts by number, so a phrase is hashed as
    /// text once per message, not once per touchpoint.
    ids: HashMap<Box<str>, u32, Fast>,
    touchpoints: HashMap<String, TouchpointCounts>,
    buf: PhraseBuf,
    message_ids: Vec<u32>,
}

#[derive(Debug, Clone, Default)]
struct TouchpointCounts {
    totals: Totals,
    by_phrase: HashMap<u32, PhraseCounts, Fast>,
}

/// Phrases and touchpoints are counted, never exposed to a choice of keys by
/// a caller: foldhash, not SipHash.
type Fast = foldhash::fast::RandomState;

impl ThemeCounter {
    /// A counter that needs `min_group_size` distinct customers per phrase.
    pub fn new(min_group_size: usize) -> ThemeCounter {
        ThemeCounter {
            cap: min_group_size,
            ids: HashMap::default(),
            touchpoints: HashMap::new(),
            buf: PhraseBuf::default(),
            message_ids: Vec::new(),
        }
    }

    /// Whether no message was counted.
    pub fn is_empty(&self) -> bool {
        self.touchpoints.is_empty()
    }

    /// The number of a phrase, given one when it is new.
    fn intern(&mut self, phrase: &str) -> u32 {
        if let Some(&id) = self.ids.get(phrase) {
            return id;
        }
        let id = u32::try_from(self.ids.len()).expect("fewer than 2^32 distinct phrases");
        self.ids.insert(phrase.into(), id);
        id
    }

    fn touchpoint(&mut self, tp: &str) -> &mut TouchpointCounts {
        // one lookup for a touchpoint seen before, which all but a few are
        if !self.touchpoints.contains_key(tp) {
            self.touchpoints
                .insert(tp.to_string(), TouchpointCounts::default());
        }
        self.touchpoints.get_mut(tp).expect("inserted above")
    }

    /// Counts one negative or positive message, under its touchpoint (when
    /// known) and under [`ALL`].
    pub fn add(&mut self, touchpoint: Option<&str>, customer: Option<u64>, side: Side, text: &str) {
        let mut buf = std::mem::take(&mut self.buf);
        let mut ids = std::mem::take(&mut self.message_ids);
        buf.fill(text);
        ids.clear();
        ids.extend(buf.iter().map(|p| self.intern(p)));
        let cap = self.cap;
        for tp in [Some(ALL), touchpoint].into_iter().flatten() {
            let counts = self.touchpoint(tp);
            match side {
                Side::Negative => counts.totals.negative += 1,
                Side::Positive => counts.totals.positive += 1,
            }
            for &id in &ids {
                let c = counts.by_phrase.entry(id).or_default();
                match side {
                    Side::Negative => {
                        c.negative += 1;
                        if let Some(id) = customer {
                            c.negative_customers.insert(id, cap);
                        }
                    }
                    Side::Positive => {
                        c.positive += 1;
                        if let Some(id) = customer {
                            c.positive_customers.insert(id, cap);
                        }
                    }
                }
            }
        }
        self.buf = buf;
        self.message_ids = ids;
    }

    /// Adds another counter's counts to this one.
    pub fn merge(&mut self, other: ThemeCounter) {
        let mut number = vec![0; other.ids.len()];
        for (phrase, &id) in &other.ids {
            number[id as usize] = self.intern(phrase);
        }
        let cap = self.cap;
        for (tp, theirs) in other.touchpoints {
            let mine = self.touchpoint(&tp);
            mine.totals.negative += theirs.totals.negative;
            mine.totals.positive += theirs.totals.positive;
            for (id, c) in theirs.by_phrase {
                let m = mine.by_phrase.entry(number[id as usize]).or_default();
                m.negative += c.negative;
                m.positive += c.positive;
                m.negative_customers.merge(&c.negative_customers, cap);
                m.positive_customers.merge(&c.positive_customers, cap);
            }
        }
    }

    /// The ranked themes: per touchpoint (sorted, [`ALL`] included) and
    /// direction, at most `per_touchpoint` significant phrases.
    pub fn rank(&self, per_touchpoint: usize) -> Vec<Theme> {
        let mut by_tp: BTreeMap<&str, Vec<Theme>> = BTreeMap::new();
        let mut phrases = vec![""; self.ids.len()];
        for (phrase, &id) in &self.ids {
            phrases[id as usize] = phrase;
        }
        let counts = self.touchpoints.iter().flat_map(|(tp, counts)| {
            counts
                .by_phrase
                .iter()
                .map(move |(&id, c)| (tp, &counts.totals, id, c))
        });
        for (tp, t, id, c) in counts {
            let phrase = phrases[id as usize];
            let (lor, z) = log_odds_z(c.negative, t.negative, c.positive, t.positive);
            let direction = if z > Z95 && c.negative_customers.reached(self.cap) {
                Side::Negative
            } else if z < -Z95 && c.positive_customers.reached(self.cap) {
                Side::Positive
            } else {
                continue;
            };
            by_tp.entry(tp.as_str()).or_default().push(Theme {
                touchpoint: tp.clone(),
                direction,
                rank: 0,
                phrase: phrase.to_string(),
                negative_messages: c.negative,
                positive_messages: c.positive,
                negative_share: share(c.negative, t.negative),
                positive_share: share(c.positive, t.positive),
                log_odds_ratio: lor,
                z,
            });
        }
        let mut out = Vec::new();
        for (_, themes) in by_tp {
            for side in [Side::Negative, Side::Positive] {
                let mut list: Vec<Theme> = themes
                    .iter()
                    .filter(|t| t.direction == side)
                    .cloned()
                    .collect();
                // Strongest evidence first; ties by phrase for a stable order.
                list.sort_by(|a, b| {
                    b.z.abs()
                        .total_cmp(&a.z.abs())
                        .then_with(|| a.phrase.cmp(&b.phrase))
                });
                let pairs = two_word_counts(&list);
                let kept = list
                    .iter()
                    .filter(|t| !covered_by_a_phrase(t, &pairs))
                    .take(per_touchpoint)
                    .cloned();
                for (i, mut t) in kept.enumerate() {
                    t.rank = i as u32 + 1;
                    out.push(t);
                }
            }
        }
        out
    }
}

/// A theme's messages on its own side.
fn side_count(t: &Theme) -> u64 {
    match t.direction {
        Side::Negative => t.negative_messages,
        Side::Positive => t.positive_messages,
    }
}

/// For each word of a two-word phrase in `list`, the most messages of such
/// a phrase: one pass, so that checking a word is a lookup, not a scan of
/// every phrase in the list (quadratic in the significant phrases).
fn two_word_counts(list: &[Theme]) -> HashMap<&str, u64> {
    let mut most: HashMap<&str, u64> = HashMap::new();
    for p in list {
        let mut words = p.phrase.split(' ');
        if let (Some(a), Some(b), None) = (words.next(), words.next(), words.next()) {
            for w in [a, b] {
                let m = most.entry(w).or_default();
                *m = (*m).max(side_count(p));
            }
        }
    }
    most
}

/// Whether a single word is (almost) only ever used inside one of the
/// listed two-word phrases: "happy" when it is "not happy" 9 times in 10.
/// The phrase says more, so the word would only repeat it. `pairs` is
/// [`two_word_counts`] of the list.
fn covered_by_a_phrase(t: &Theme, pairs: &HashMap<&str, u64>) -> bool {
    !t.phrase.contains(' ')
        && pairs
            .get(t.phrase.as_str())
            .is_some_and(|&most| most as f64 >= 0.9 * side_count(t) as f64)
}

fn share(k: u64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        100.0 * k as f64 / n as f64
    }
}

/// Log odds ratio (negative vs positive messages) of containing a phrase,
/// with ½ added to every cell, and its z score.
pub fn log_odds_z(neg_hits: u64, neg_total: u64, pos_hits: u64, pos_total: u64) -> (f64, f64) {
    let a = neg_hits as f64 + 0.5;
    let b = neg_total.saturating_sub(neg_hits) as f64 + 0.5;
    let c = pos_hits as f64 + 0.5;
    let d = pos_total.saturating_sub(pos_hits) as f64 + 0.5;
    let lor = (a / b).ln() - (c / d).ln();
    let se = (1.0 / a + 1.0 / b + 1.0 / c + 1.0 / d).sqrt();
    (lor, lor / se)
}

/// One row of `marts/voice_themes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub touchpoint: String,
    pub direction: Side,
    /// 1 = the strongest.
    pub rank: u32,
    pub phrase: String,
    pub negative_messages: u64,
    pub positive_messages: u64,
    /// % of the touchpoint's negative messages containing the phrase.
    pub negative_share: f64,
    /// % of the touchpoint's positive messages containing the phrase.
    pub positive_share: f64,
    pub log_odds_ratio: f64,
    pub z: f64,
}

impl Side {
    /// `"negative"` or `"positive"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Negative => "negative",
            Side::Positive => "positive",
        }
    }
}

impl Theme {
    /// Messages and % of messages of the theme's own direction containing
    /// the phrase: at least `min_group_size` messages, since at least that
    /// many distinct customers used it.
    pub fn own(&self) -> (u64, f64) {
        match self.direction {
            Side::Negative => (self.negative_messages, self.negative_share),
            Side::Positive => (self.positive_messages, self.positive_share),
        }
    }

    /// The same for the opposite direction.
    pub fn other(&self) -> (u64, f64) {
        match self.direction {
            Side::Negative => (self.positive_messages, self.positive_share),
            Side::Positive => (self.negative_messages, self.negative_share),
        }
    }
}

/// Schema of `marts/voice_themes`.
pub fn schema() -> SchemaRef {
    let f = |name: &str, ty: DataType| Field::new(name, ty, false);
    Arc::new(Schema::new(vec![
        f("touchpoint", DataType::Utf8),
        f("direction", DataType::Utf8),
        f("rank", DataType::Int64),
        f("phrase", DataType::Utf8),
        f("messages", DataType::Int64),
        f("share", DataType::Float64),
        f("other_messages", DataType::Int64),
        f("other_share", DataType::Float64),
        f("log_odds_ratio", DataType::Float64),
        f("z_score", DataType::Float64),
    ]))
}

/// The themes as one batch of [`schema`].
pub fn to_batch(themes: &[Theme]) -> Result<RecordBatch> {
    let s = |f: fn(&Theme) -> &str| -> ArrayRef {
        Arc::new(themes.iter().map(|t| Some(f(t))).collect::<StringArray>())
    };
    let i = |f: fn(&Theme) -> i64| -> ArrayRef {
        Arc::new(themes.iter().map(|t| Some(f(t))).collect::<Int64Array>())
    };
    let x = |f: fn(&Theme) -> f64| -> ArrayRef {
        Arc::new(themes.iter().map(|t| Some(f(t))).collect::<Float64Array>())
    };
    let columns = vec![
        s(|t| &t.touchpoint),
        s(|t| t.direction.as_str()),
        i(|t| i64::from(t.rank)),
        s(|t| &t.phrase),
        i(|t| t.own().0 as i64),
        x(|t| t.own().1),
        i(|t| t.other().0 as i64),
        x(|t| t.other().1),
        x(|t| t.log_odds_ratio),
        x(|t| t.z),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrases(text: &str) -> Vec<String> {
        let mut buf = PhraseBuf::default();
        buf.fill(text);
        buf.iter().map(str::to_string).collect()
    }

    #[test]
    fn phrases_skip_stop_words_placeholders_and_numbers() {
        let cases: &[(&str, &[&str])] = &[
            (
                "Long wait, cold coffee!",
                &["coffee", "cold", "cold coffee", "long", "long wait", "wait"],
            ),
            ("the coffee was cold", &["coffee", "cold"]),
            ("waited 40 minutes", &["minutes", "waited"]),
            ("mail [EMAIL] today", &["mail", "today"]),
            (
                "not fresh. Checkout broken",
                &[
                    "broken",
                    "checkout",
                    "checkout broken",
                    "fresh",
                    "not",
                    "not fresh",
                ],
            ),
            ("el café estaba frío", &["café", "frío"]),
            ("", &[]),
            ("[PHONE]", &[]),
        ];
        for (text, want) in cases {
            let got = phrases(text);
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(got, want, "{text}");
        }
    }

    /// Haldane–Anscombe log odds ratio by hand: 30 of 100 negative vs 5 of
    /// 200 positive messages: ln(30.5/70.5) − ln(5.5/195.5) = −0.837886 +
    /// 3.570812 = 2.732926; se = √(1/30.5 + 1/70.5 + 1/5.5 + 1/195.5) =
    /// 0.483637; z = 5.650782 (checked with Python's math module).
    #[test]
    fn log_odds_ratio_by_hand() {
        let (lor, z) = log_odds_z(30, 100, 5, 200);
        assert!((lor - 2.732_926).abs() < 1e-6, "{lor}");
        assert!((z - 5.650_782).abs() < 1e-6, "{z}");
        let (l2, z2) = log_odds_z(5, 200, 30, 100);
        assert!((l2 + lor).abs() < 1e-12 && (z2 + z).abs() < 1e-12);
    }

    fn fixture(k: usize) -> ThemeCounter {
        let mut c = ThemeCounter::new(k);
        // 12 customers complain about the long wait at delivery.
        for i in 0..12u64 {
            c.add(
                Some("delivery"),
                Some(i),
                Side::Negative,
                "Long wait again, not happy",
            );
        }
        // 3 customers complain about burnt toast, 5 times each: 15
        // messages, but only 3 people.
        for i in 0..15u64 {
            c.add(
                Some("delivery"),
                Some(100 + i % 3),
                Side::Negative,
                "burnt toast!!",
            );
        }
        // 20 anonymous negative reviews about a dirty table: no known customer.
        for _ in 0..20 {
            c.add(Some("delivery"), None, Side::Negative, "dirty table");
        }
        // 25 customers are happy with the friendly driver.
        for i in 0..25u64 {
            c.add(
                Some("delivery"),
                Some(200 + i),
                Side::Positive,
                "friendly driver, thanks",
            );
        }
        c
    }

    #[test]
    fn themes_need_enough_distinct_customers() {
        let themes = fixture(10).rank(10);
        let listed: Vec<(&str, &str, Side)> = themes
            .iter()
            .map(|t| (t.touchpoint.as_str(), t.phrase.as_str(), t.direction))
            .collect();
        for phrase in [
            "burnt",
            "toast",
            "burnt toast",
            "dirty",
            "table",
            "dirty table",
        ] {
            assert!(
                !listed.iter().any(|(_, p, _)| *p == phrase),
                "{phrase} is used by fewer than 10 known customers: {listed:?}"
            );
        }
        for tp in ["delivery", ALL] {
            assert!(
                listed.contains(&(tp, "long wait", Side::Negative)),
                "{listed:?}"
            );
            assert!(
                listed.contains(&(tp, "friendly driver", Side::Positive)),
                "{listed:?}"
            );
        }
        let lw = themes
            .iter()
            .find(|t| t.touchpoint == "delivery" && t.phrase == "long wait")
            .expect("listed");
        // 12 of 47 negative messages, 0 of 25 positive.
        assert_eq!((lw.negative_messages, lw.positive_messages), (12, 0));
        assert!((lw.negative_share - 100.0 * 12.0 / 47.0).abs() < 1e-9);
        assert_eq!(lw.own(), (12, lw.negative_share));
        assert_eq!(lw.other(), (0, 0.0));
        let fd = themes
            .iter()
            .find(|t| t.touchpoint == "delivery" && t.phrase == "friendly driver")
            .expect("listed");
        assert_eq!(fd.own(), (25, 100.0));
        assert_eq!(fd.other().0, 0);
        let (lor, z) = log_odds_z(12, 47, 0, 25);
        assert_eq!((lw.log_odds_ratio, lw.z), (lor, z));
        // With a threshold of 3, burnt toast (3 customers) qualifies.
        let low = fixture(3).rank(10);
        assert!(low.iter().any(|t| t.phrase == "burnt toast"));
        assert!(
            !low.iter().any(|t| t.phrase == "dirty table"),
            "anonymous only"
        );
    }

    fn theme(phrase: &str, direction: Side, count: u64) -> Theme {
        Theme {
            touchpoint: "delivery".into(),
            direction,
            rank: 0,
            phrase: phrase.into(),
            negative_messages: if direction == Side::Negative {
                count
            } else {
                0
            },
            positive_messages: if direction == Side::Positive {
                count
            } else {
                0
            },
            negative_share: 0.0,
            positive_share: 0.0,
            log_odds_ratio: 0.0,
            z: 0.0,
        }
    }

    #[test]
    fn a_word_nine_times_in_ten_inside_a_listed_pair_is_covered_by_it() {
        let list = vec![
            theme("not happy", Side::Negative, 9),
            theme("happy", Side::Negative, 10),
            theme("wait", Side::Negative, 10),
            theme("long wait", Side::Negative, 8),
            theme("again", Side::Negative, 4),
            theme("again again", Side::Negative, 4),
        ];
        let pairs = two_word_counts(&list);
        let covered: Vec<&str> = list
            .iter()
            .filter(|t| covered_by_a_phrase(t, &pairs))
            .map(|t| t.phrase.as_str())
            .collect();
        // 9 >= 0.9 x 10 covers "happy"; 8 < 0.9 x 10 leaves "wait";
        // phrases themselves are never covered.
        assert_eq!(covered, ["happy", "again"]);
        assert_eq!(pairs.get("not"), Some(&9));
        assert_eq!(pairs.get("wait"), Some(&8));
    }

    #[test]
    fn ranks_are_dense_capped_and_merging_is_adding() {
        let themes = fixture(10).rank(2);
        for tp in ["delivery", ALL] {
            for side in [Side::Negative, Side::Positive] {
                let ranks: Vec<u32> = themes
                    .iter()
                    .filter(|t| t.touchpoint == tp && t.direction == side)
                    .map(|t| t.rank)
                    .collect();
                assert!(ranks.len() <= 2 && !ranks.is_empty());
                assert_eq!(ranks, (1..=ranks.len() as u32).collect::<Vec<_>>());
            }
        }
        // Counting in two halves and merging gives the same themes.
        let mut a = ThemeCounter::new(10);
        let mut b = ThemeCounter::new(10);
        for i in 0..12u64 {
            let c = if i % 2 == 0 { &mut a } else { &mut b };
            c.add(
                Some("delivery"),
                Some(i),
                Side::Negative,
                "Long wait again, not happy",
            );
        }
        for i in 0..15u64 {
            let c = if i % 2 == 0 { &mut a } else { &mut b };
            c.add(
                Some("delivery"),
                Some(100 + i % 3),
                Side::Negative,
                "burnt toast!!",
            );
        }
        for _ in 0..20 {
            a.add(Some("delivery"), None, Side::Negative, "dirty table");
        }
        for i in 0..25u64 {
            let c = if i % 3 == 0 { &mut a } else { &mut b };
            c.add(
                Some("delivery"),
                Some(200 + i),
                Side::Positive,
                "friendly driver, thanks",
            );
        }
        a.merge(b);
        assert_eq!(a.rank(10), fixture(10).rank(10));
    }
}
