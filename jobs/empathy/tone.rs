//! The reply-tone scorer: how warm the business's first answer to a ticket
//! reads, 0 (cold) to 100 (warm).
//!
//! Not a sentiment scorer: it measures the business's *empathic language*
//! (acknowledging the feeling, apologising where warranted, explaining,
//! offering a next step, using the customer's words) against cold or
//! blaming phrasing. The rules, their points and their cues are data in
//! `lexicon/tone.toml` (with the sources the categories come from); this
//! module only applies them. A reply starts at `base` points, every rule
//! that fires adds its points once, the total is clamped to 0–100, and
//! thresholds turn it into warm, neutral or cold.
//!
//! English only: a reply whatlang reliably detects as another language is
//! not scored rather than scored as neutral.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;

use crate::{Error, Result};

/// The rule file compiled into the binary.
pub(super) const TONE_TOML: &str = include_str!("lexicon/tone.toml");

/// Words the tone lexicon understands.
pub const LANGUAGE: &str = "en";

/// A reply's tone class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ToneLabel {
    Cold,
    Neutral,
    Warm,
}

impl ToneLabel {
    /// The label as written in outputs and fixtures.
    pub fn as_str(self) -> &'static str {
        match self {
            ToneLabel::Cold => "cold",
            ToneLabel::Neutral => "neutral",
            ToneLabel::Warm => "warm",
        }
    }

    /// Parses `warm`, `neutral` or `cold`.
    pub fn parse(s: &str) -> Option<ToneLabel> {
        match s {
            "cold" => Some(ToneLabel::Cold),
            "neutral" => Some(ToneLabel::Neutral),
            "warm" => Some(ToneLabel::Warm),
            _ => None,
        }
    }
}

/// What the scorer knows about the ticket a reply answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplyContext<'a> {
    /// The customer's message, for the "customer's words" rule; `None` when
    /// unknown or in another language than the replies the rules read (an
    /// English reply cannot repeat German words): the rule then cannot be
    /// judged (see [`ToneScorer::impute_echo`]).
    pub message: Option<&'a str>,
    /// Whether the customer had a problem (an apology is warranted);
    /// `None` when unknown (an apology then counts).
    pub complaint: Option<bool>,
}

/// Reads the replies and messages of a batch of tickets, each once, for
/// [`ToneReader::score`]: [`ToneScorer::score_reply`]'s tone, for less
/// when texts repeat (replies are macros, customers' messages repeat).
///
/// The content stems of what it reads are numbered, so the "customer's
/// words" rule compares a reply with a message as two short sorted lists
/// of numbers, where two sets of strings took a string comparison a step
/// (at a million customers, 1.8 million tickets' worth); and a message is
/// read without a string per word or per stem. The numbers are the
/// reader's own: what it read is scored with it alone.
pub struct ToneReader<'a> {
    scorer: &'a ToneScorer,
    /// Tells its readings from another reader's.
    id: u64,
    /// The rules of kind `overlap`, in rule order: a reading's lists of
    /// stems come in this order.
    overlap: Vec<usize>,
    /// Every content stem read so far, and its number.
    numbers: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
}

/// A business's reply as a [`ToneReader`] read it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadReply {
    /// The [`ToneReader::id`] that read it.
    reader: u64,
    facts: std::result::Result<NumberedFacts, Unscored>,
}

/// [`ReplyFacts`] with the stems numbered.
#[derive(Debug, Clone, PartialEq)]
struct NumberedFacts {
    hits: Vec<u32>,
    words: usize,
    /// Per overlap rule, the numbers of the reply's content stems, sorted.
    stems: Vec<Box<[u32]>>,
}

/// A customer's message as a [`ToneReader`] read it: per overlap rule, the
/// numbers of its content stems, sorted, without repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberedMessage {
    /// The [`ToneReader::id`] that read it.
    reader: u64,
    stems: Vec<Box<[u32]>>,
}

/// The customer's message as [`ToneScorer::finish`] gets it.
#[derive(Debug, Clone, Copy)]
enum Message<'a> {
    /// None the rules can read (see [`ReplyContext::message`]).
    Unknown,
    Text(&'a str),
}

impl<'a> Message<'a> {
    fn of_text(message: Option<&'a str>) -> Message<'a> {
        message.map_or(Message::Unknown, Message::Text)
    }
}

/// The tone of one reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Tone {
    /// 0 (cold) to 100 (warm).
    pub score: f64,
    pub label: ToneLabel,
    /// Bit `i` set when rule `i` of [`ToneScorer::rule_names`] fired.
    pub fired: u32,
    /// Bit `i` set when rule `i` could not be judged (the "customer's
    /// words" rule without a message it can read).
    pub unjudged: u32,
    /// The points before clamping to 0–100.
    pub raw: f64,
}

/// Why a reply was not scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unscored {
    /// Empty or missing reply.
    NoText,
    /// The reply is reliably in another language than English.
    UnsupportedLanguage,
}

impl Unscored {
    /// The reason code.
    pub fn as_str(self) -> &'static str {
        match self {
            Unscored::NoText => "no_text",
            Unscored::UnsupportedLanguage => "unsupported_language",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLexicon {
    base: i32,
    warm_threshold: i32,
    cold_threshold: i32,
    negators: Vec<String>,
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    points: i32,
    doc: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    applies: Option<String>,
    #[serde(default)]
    cues: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
    #[serde(default)]
    min_shared: Option<usize>,
    #[serde(default)]
    max_words: Option<usize>,
    #[serde(default)]
    stopwords: Vec<String>,
    #[serde(default)]
    max_hits: Option<u32>,
}

/// One word of a cue: exact, or a prefix (`apolog*`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pat {
    Exact(String),
    Prefix(String),
}

impl Pat {
    fn matches(&self, word: &str) -> bool {
        match self {
            Pat::Exact(w) => w == word,
            Pat::Prefix(p) => word.starts_with(p.as_str()),
        }
    }
}

/// A cue: a word sequence, or a symbol matched in the raw text (`!`, `:)`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cue {
    Words(Vec<Pat>),
    Symbol(String),
}

/// Cues indexed by their first word, so a reply is matched in one pass over
/// its words instead of one pass per cue.
#[derive(Debug, Clone, Default)]
struct CueSet {
    cues: Vec<Cue>,
    /// First word (exact) -> cues starting with it.
    by_first: HashMap<String, Vec<usize>>,
    /// Cues whose first word is a prefix pattern.
    prefix_first: Vec<usize>,
}

impl CueSet {
    fn new(cues: Vec<Cue>) -> CueSet {
        let mut set = CueSet::default();
        for (i, c) in cues.iter().enumerate() {
            if let Cue::Words(p) = c {
                match &p[0] {
                    Pat::Exact(w) => set.by_first.entry(w.clone()).or_default().push(i),
                    Pat::Prefix(_) => set.prefix_first.push(i),
                }
            }
        }
        set.cues = cues;
        set
    }

    /// Every word-cue match: (cue, start, end).
    fn matches(&self, w: &Words) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for (start, word) in w.words.iter().enumerate() {
            let exact = self
                .by_first
                .get(word)
                .map(Vec::as_slice)
                .unwrap_or_default();
            for &i in exact.iter().chain(&self.prefix_first) {
                if let Cue::Words(p) = &self.cues[i]
                    && start + p.len() <= w.words.len()
                    && p.iter()
                        .zip(&w.words[start..])
                        .all(|(pat, x)| pat.matches(x))
                {
                    out.push((i, start, start + p.len()));
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
enum RuleKind {
    /// Fires once per distinct matching cue, at most `max_hits` times.
    Cues {
        cues: CueSet,
        except: CueSet,
        max_hits: u32,
    },
    Overlap {
        min_shared: usize,
        stopwords: BTreeSet<String>,
    },
    Curt {
        max_words: usize,
    },
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    doc: String,
    points: i32,
    complaint_only: bool,
    kind: RuleKind,
}

/// The reply-tone scorer, built once from `lexicon/tone.toml`.
#[derive(Debug, Clone)]
pub struct ToneScorer {
    /// Tells the reply memo which rules its answers came from.
    id: u64,
    base: i32,
    warm_threshold: i32,
    cold_threshold: i32,
    negators: BTreeSet<String>,
    rules: Vec<Rule>,
}

/// A text split into words (contractions expanded) with the clause each
/// word belongs to.
#[derive(Debug, Clone, Default, PartialEq)]
struct Words {
    words: Vec<String>,
    clause: Vec<u32>,
}

/// Pronouns after which `'s` means "is" ("that's why"); elsewhere it is a
/// possessive and dropped ("the customer's").
const IS_AFTER: [&str; 9] = [
    "it", "that", "there", "what", "here", "he", "she", "who", "where",
];

/// The one or two words a token of a text stands for: contractions
/// expanded ("can't" -> "can", "not"), a possessive `'s` dropped but kept
/// as "is" after a pronoun. Either may be empty (a lone apostrophe).
fn expand(word: &str) -> (&str, Option<&'static str>) {
    let w = word.trim_matches('\'');
    match w {
        "can't" | "cannot" => ("can", Some("not")),
        "won't" => ("will", Some("not")),
        "shan't" => ("shall", Some("not")),
        "let's" => ("let", Some("us")),
        _ => {
            let expanded = [
                ("n't", "not"),
                ("'ve", "have"),
                ("'re", "are"),
                ("'m", "am"),
                ("'ll", "will"),
                ("'d", "would"),
            ]
            .into_iter()
            .find_map(|(suffix, full)| w.strip_suffix(suffix).map(|stem| (stem, Some(full))));
            match (expanded, w.strip_suffix("'s")) {
                (Some(x), _) => x,
                (None, Some(stem)) => (stem, IS_AFTER.contains(&stem).then_some("is")),
                (None, None) => (w, None),
            }
        }
    }
}

fn push_word(out: &mut Words, word: &str, clause: u32) {
    let (first, second) = expand(word);
    for x in std::iter::once(first).chain(second) {
        if !x.is_empty() {
            out.words.push(x.to_string());
            out.clause.push(clause);
        }
    }
}

/// Lower-cases, straightens apostrophes, expands contractions and splits
/// into words; `. , ! ? ; :` end a clause, and "but" starts a new one.
fn words(text: &str) -> Words {
    let lower = text.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'");
    let mut out = Words::default();
    let mut clause = 0u32;
    let mut cur = String::new();
    for ch in lower.chars() {
        if ch.is_alphanumeric() || ch == '\'' {
            cur.push(ch);
            continue;
        }
        if !cur.is_empty() {
            if cur == "but" {
                clause += 1;
            }
            push_word(&mut out, &cur, clause);
            cur.clear();
        }
        if matches!(ch, '.' | ',' | '!' | '?' | ';' | ':') {
            clause += 1;
        }
    }
    if !cur.is_empty() {
        if cur == "but" {
            clause += 1;
        }
        push_word(&mut out, &cur, clause);
    }
    out
}

/// Calls `f` with each word of `text`, the words of [`words`] in their
/// order, without a `String` per word: the text is lower-cased once and
/// its words handed out as slices of it (or the words contractions expand
/// to). Clauses are left out: the "customer's words" rule, which reads
/// every customer's message this way, does not look at them.
fn each_word(text: &str, mut f: impl FnMut(&str)) {
    let mut lower = text.to_lowercase();
    if lower.contains(['\u{2019}', '\u{2018}']) {
        lower = lower.replace(['\u{2019}', '\u{2018}'], "'");
    }
    let mut emit = |token: &str| {
        let (first, second) = expand(token);
        for x in std::iter::once(first).chain(second) {
            if !x.is_empty() {
                f(x);
            }
        }
    };
    // where the token being read starts
    let mut start = None;
    for (i, ch) in lower.char_indices() {
        if ch.is_alphanumeric() || ch == '\'' {
            if start.is_none() {
                start = Some(i);
            }
        } else if let Some(from) = start.take() {
            emit(&lower[from..i]);
        }
    }
    if let Some(from) = start {
        emit(&lower[from..]);
    }
}

fn parse_cue(text: &str) -> Result<Cue> {
    let bad = |why: &str| {
        Error::Config(format!(
            "jobs/empathy/lexicon/tone.toml: cue {text:?} {why}"
        ))
    };
    if !text.chars().any(char::is_alphanumeric) {
        if text.trim().is_empty() {
            return Err(bad("is empty"));
        }
        return Ok(Cue::Symbol(text.to_string()));
    }
    // A `*` ends a word: that word (the last one its token expands to) is a prefix.
    let mut pats = Vec::new();
    for token in text.split_whitespace() {
        let prefix = token.ends_with('*');
        let w = words(token.trim_end_matches('*'));
        let n = w.words.len();
        for (i, word) in w.words.into_iter().enumerate() {
            pats.push(if prefix && i + 1 == n {
                Pat::Prefix(word)
            } else {
                Pat::Exact(word)
            });
        }
    }
    if pats.is_empty() {
        return Err(bad("has no words"));
    }
    Ok(Cue::Words(pats))
}

/// English function words that Spanish and German text hardly uses.
const ENGLISH_MARKERS: [&str; 24] = [
    "the", "and", "you", "your", "to", "we", "i", "is", "for", "of", "it", "on", "our", "this",
    "that", "be", "have", "with", "will", "are", "not", "was", "can", "my",
];

/// A cheap first look: when at least 30% of the words (and at least three)
/// are English function words the text is English, and whatlang (about
/// 0.2 ms a reply) is only asked about the rest.
fn looks_english(text: &str) -> bool {
    let w = words(text);
    let markers = w
        .words
        .iter()
        .filter(|x| ENGLISH_MARKERS.contains(&x.as_str()))
        .count();
    markers >= 3 && markers * 10 >= w.words.len() * 3
}

/// Whether whatlang reliably detects `text` as another language than
/// English (after the cheap look for English function words).
fn reliably_not_english(text: &str) -> bool {
    !looks_english(text)
        && whatlang::detect(text)
            .is_some_and(|info| info.lang() != whatlang::Lang::Eng && info.is_reliable())
}

/// What a reply's own words decide, whatever ticket it answers: everything
/// but the two rules that look at the ticket (a warranted apology, the
/// customer's words).
#[derive(Debug, Clone)]
struct ReplyFacts {
    /// Per rule: a cue rule's hits (capped at its `max_hits`), else 0.
    hits: Vec<u32>,
    /// Per rule: an overlap rule's content stems of the reply.
    stems: Vec<Option<BTreeSet<String>>>,
    words: usize,
}

/// The answers of one thread's scorer, by exact reply text.
///
/// Staff replies are mostly macros (1,438 distinct texts among 1.8 million
/// replies at a million customers): splitting, matching the cues and asking
/// whatlang (about 0.2 ms a reply) once per text instead of once per reply
/// took the empathy job's scoring from 17.5 s to under 5 s at a million
/// customers. Bounded: the memo forgets everything when full, which only
/// costs the work again.
#[derive(Default)]
struct ReplyMemo {
    /// The [`ToneScorer::id`] the answers belong to.
    scorer: Option<u64>,
    answers:
        HashMap<Box<str>, std::result::Result<ReplyFacts, Unscored>, foldhash::fast::RandomState>,
}

impl ReplyMemo {
    const CAPACITY: usize = 4096;
    const MAX_KEY_BYTES: usize = 512;
}

/// Light suffix stripping, enough for "charged" ~ "charge", "croissants" ~
/// "croissant". A stem is a beginning of its word, so it is a slice of it:
/// reading a message's stems copies none.
fn stem(word: &str) -> &str {
    let mut w = word;
    for suffix in ["ing", "ed", "es", "s"] {
        if w.len() > suffix.len() + 2
            && let Some(rest) = w.strip_suffix(suffix)
        {
            w = rest;
            break;
        }
    }
    if w.len() > 3
        && let Some(rest) = w.strip_suffix('e')
    {
        w = rest;
    }
    w
}

/// The stem of a word that carries content: three letters or more, not a
/// stop word, not a number.
fn content_stem<'w>(w: &'w str, stopwords: &BTreeSet<String>) -> Option<&'w str> {
    let content =
        w.chars().count() >= 3 && !stopwords.contains(w) && !w.chars().all(|c| c.is_ascii_digit());
    content.then(|| stem(w))
}

fn content_stems(text: &str, stopwords: &BTreeSet<String>) -> BTreeSet<String> {
    words(text)
        .words
        .iter()
        .filter_map(|w| content_stem(w, stopwords))
        .map(str::to_string)
        .collect()
}

/// How many distinct content stems of `text` are among `ours`: the size of
/// `content_stems(text) ∩ ours` without building the first set.
fn shared_stems(text: &str, stopwords: &BTreeSet<String>, ours: &BTreeSet<String>) -> usize {
    let w = words(text);
    let mut shared: Vec<&str> = Vec::new();
    for s in w.words.iter().filter_map(|x| content_stem(x, stopwords)) {
        if ours.contains(s) && !shared.contains(&s) {
            shared.push(s);
        }
    }
    shared.len()
}

/// The size of the intersection of two sorted lists without repeats.
fn common(a: &[u32], b: &[u32]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// The number of a stem, the next one when it is new.
fn number(numbers: &mut HashMap<Box<str>, u32, foldhash::fast::RandomState>, stem: &str) -> u32 {
    if let Some(&n) = numbers.get(stem) {
        return n;
    }
    let n = u32::try_from(numbers.len()).expect("fewer than 4 billion distinct stems");
    numbers.insert(stem.into(), n);
    n
}

impl ToneScorer {
    /// The scorer of the rule file shipped with attune.
    pub fn builtin() -> Result<ToneScorer> {
        ToneScorer::parse(TONE_TOML)
    }

    /// Builds a scorer from rule-file text.
    pub fn parse(text: &str) -> Result<ToneScorer> {
        let bad = |why: String| Error::Config(format!("jobs/empathy/lexicon/tone.toml: {why}"));
        let raw: RawLexicon = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        if !(0 < raw.cold_threshold
            && raw.cold_threshold <= raw.warm_threshold
            && raw.warm_threshold <= 100)
        {
            return Err(bad("thresholds must satisfy 0 < cold <= warm <= 100".into()));
        }
        if raw.rule.len() > 32 {
            return Err(bad("at most 32 rules".into()));
        }
        let mut rules = Vec::new();
        let mut names = BTreeSet::new();
        for r in raw.rule {
            if !names.insert(r.name.clone()) {
                return Err(bad(format!("rule `{}` is defined twice", r.name)));
            }
            let complaint_only = match r.applies.as_deref() {
                None | Some("always") => false,
                Some("complaint") => true,
                Some(other) => {
                    return Err(bad(format!(
                        "rule `{}`: applies = {other:?} (use \"always\" or \"complaint\")",
                        r.name
                    )));
                }
            };
            let kind = match r.kind.as_deref() {
                None | Some("cues") => {
                    if r.cues.is_empty() {
                        return Err(bad(format!("rule `{}` has no cues", r.name)));
                    }
                    RuleKind::Cues {
                        cues: CueSet::new(
                            r.cues.iter().map(|c| parse_cue(c)).collect::<Result<_>>()?,
                        ),
                        except: CueSet::new(
                            r.except
                                .iter()
                                .map(|c| parse_cue(c))
                                .collect::<Result<_>>()?,
                        ),
                        max_hits: r.max_hits.unwrap_or(1).clamp(1, 10),
                    }
                }
                Some("overlap") => RuleKind::Overlap {
                    min_shared: r.min_shared.unwrap_or(2).max(1),
                    stopwords: r.stopwords.into_iter().collect(),
                },
                Some("curt") => RuleKind::Curt {
                    max_words: r.max_words.unwrap_or(2),
                },
                Some(other) => {
                    return Err(bad(format!("rule `{}`: unknown kind {other:?}", r.name)));
                }
            };
            rules.push(Rule {
                name: r.name,
                doc: r.doc,
                points: r.points,
                complaint_only,
                kind,
            });
        }
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Ok(ToneScorer {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            base: raw.base,
            warm_threshold: raw.warm_threshold,
            cold_threshold: raw.cold_threshold,
            negators: raw.negators.into_iter().collect(),
            rules,
        })
    }

    /// Rule names, in the order of [`Tone::fired`]'s bits.
    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// (name, points, what it rewards or penalizes) of every rule, for the docs.
    pub fn rule_docs(&self) -> Vec<(&str, i32, &str)> {
        self.rules
            .iter()
            .map(|r| (r.name.as_str(), r.points, r.doc.as_str()))
            .collect()
    }

    /// The label of a score.
    pub fn label(&self, score: f64) -> ToneLabel {
        if score >= f64::from(self.warm_threshold) {
            ToneLabel::Warm
        } else if score < f64::from(self.cold_threshold) {
            ToneLabel::Cold
        } else {
            ToneLabel::Neutral
        }
    }

    /// Scores a reply, or says why it cannot: empty, or reliably not English.
    pub fn score_reply(
        &self,
        reply: Option<&str>,
        ctx: &ReplyContext,
    ) -> std::result::Result<Tone, Unscored> {
        self.score_reply_to(reply, Message::of_text(ctx.message), ctx.complaint)
    }

    /// A reader of replies and messages for these rules ([`ToneReader`]).
    pub fn reader(&self) -> ToneReader<'_> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        ToneReader {
            scorer: self,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            overlap: self
                .rules
                .iter()
                .enumerate()
                .filter(|(_, r)| matches!(r.kind, RuleKind::Overlap { .. }))
                .map(|(i, _)| i)
                .collect(),
            numbers: HashMap::default(),
        }
    }

    fn score_reply_to(
        &self,
        reply: Option<&str>,
        message: Message<'_>,
        complaint: Option<bool>,
    ) -> std::result::Result<Tone, Unscored> {
        thread_local! {
            static MEMO: std::cell::RefCell<ReplyMemo> = std::cell::RefCell::default();
        }
        let text = reply.map(str::trim).unwrap_or_default();
        if text.len() > ReplyMemo::MAX_KEY_BYTES {
            return self
                .reply_facts(text)
                .map(|f| self.finish(&f, message, complaint));
        }
        MEMO.with(|memo| {
            let mut memo = memo.borrow_mut();
            if memo.scorer != Some(self.id) || memo.answers.len() >= ReplyMemo::CAPACITY {
                memo.answers.clear();
                memo.scorer = Some(self.id);
            }
            if let Some(known) = memo.answers.get(text) {
                return known
                    .as_ref()
                    .map(|f| self.finish(f, message, complaint))
                    .map_err(|e| *e);
            }
            let facts = self.reply_facts(text);
            let tone = facts
                .as_ref()
                .map(|f| self.finish(f, message, complaint))
                .map_err(|e| *e);
            memo.answers.insert(text.into(), facts);
            tone
        })
    }

    /// The text-only part of [`ToneScorer::score_reply`].
    fn reply_facts(&self, text: &str) -> std::result::Result<ReplyFacts, Unscored> {
        if !text.chars().any(char::is_alphanumeric) {
            return Err(Unscored::NoText);
        }
        if reliably_not_english(text) {
            return Err(Unscored::UnsupportedLanguage);
        }
        Ok(self.facts(text))
    }

    /// Scores an English reply (no language check).
    pub fn score(&self, reply: &str, ctx: &ReplyContext) -> Tone {
        self.finish(
            &self.facts(reply),
            Message::of_text(ctx.message),
            ctx.complaint,
        )
    }

    fn facts(&self, reply: &str) -> ReplyFacts {
        let w = words(reply);
        let raw_lower = reply.to_lowercase();
        let mut facts = ReplyFacts {
            hits: vec![0; self.rules.len()],
            stems: vec![None; self.rules.len()],
            words: w.words.len(),
        };
        for (i, rule) in self.rules.iter().enumerate() {
            match &rule.kind {
                RuleKind::Cues {
                    cues,
                    except,
                    max_hits,
                } => {
                    facts.hits[i] = self
                        .cue_hits(cues, except, &w, &raw_lower, rule.points > 0)
                        .min(*max_hits);
                }
                RuleKind::Overlap { stopwords, .. } => {
                    facts.stems[i] = Some(content_stems(reply, stopwords));
                }
                RuleKind::Curt { .. } => {}
            }
        }
        facts
    }

    /// The index of the "customer's words" rule (kind `overlap`), whose
    /// [`Tone::fired`] and [`Tone::unjudged`] bits give its rate.
    pub fn echo_rule(&self) -> Option<usize> {
        self.rules
            .iter()
            .position(|r| matches!(r.kind, RuleKind::Overlap { .. }))
    }

    /// The tone of a reply with these facts, to this message, on a ticket
    /// that is a complaint or not (see [`ReplyContext`]).
    fn finish(&self, facts: &ReplyFacts, message: Message<'_>, complaint: Option<bool>) -> Tone {
        self.tally(
            &facts.hits,
            facts.words,
            complaint,
            |i, stopwords| match message {
                Message::Unknown => None,
                _ => Some(self.shared(facts.stems[i].as_ref(), message, stopwords)),
            },
        )
    }

    /// [`ToneScorer::finish`] of a reply whose cue rules found `cue_hits`
    /// (per rule) in its `words` words, where `shared(rule, stopwords)` is
    /// how many of the message's content stems overlap rule `rule` finds
    /// in the reply, `None` when the rule cannot be judged (no message it
    /// can read).
    fn tally(
        &self,
        cue_hits: &[u32],
        words: usize,
        complaint: Option<bool>,
        shared: impl Fn(usize, &BTreeSet<String>) -> Option<usize>,
    ) -> Tone {
        let mut fired = 0u32;
        let mut unjudged = 0u32;
        let mut points = f64::from(self.base);
        let mut warm_fired = false;
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.complaint_only && complaint == Some(false) {
                continue;
            }
            let hits = match &rule.kind {
                RuleKind::Cues { .. } => cue_hits[i],
                RuleKind::Overlap {
                    min_shared,
                    stopwords,
                } => match shared(i, stopwords) {
                    None => {
                        unjudged |= 1 << i;
                        0
                    }
                    Some(n) => u32::from(n >= *min_shared),
                },
                // Decided after every other rule: see below.
                RuleKind::Curt { .. } => 0,
            };
            if hits > 0 {
                fired |= 1 << i;
                points += f64::from(rule.points * hits as i32);
                warm_fired |= rule.points > 0;
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if let RuleKind::Curt { max_words } = rule.kind
                && !warm_fired
                && words <= max_words
            {
                fired |= 1 << i;
                points += f64::from(rule.points);
            }
        }
        let score = points.clamp(0.0, 100.0);
        Tone {
            score,
            label: self.label(score),
            fired,
            unjudged,
            raw: points,
        }
    }

    /// How many distinct content stems of the message an overlap rule (its
    /// `stopwords`) finds among the reply's (`ours`); 0 without either.
    fn shared(
        &self,
        ours: Option<&BTreeSet<String>>,
        message: Message<'_>,
        stopwords: &BTreeSet<String>,
    ) -> usize {
        let Some(ours) = ours else { return 0 };
        match message {
            Message::Text(m) => shared_stems(m, stopwords, ours),
            Message::Unknown => 0,
        }
    }

    /// The share of `tones` the "customer's words" rule fired for, among
    /// those it could be judged on; `None` when there are none (or the
    /// rules have no such rule).
    pub fn echo_rate<'a>(&self, tones: impl Iterator<Item = &'a Tone>) -> Option<f64> {
        let bit = 1 << self.echo_rule()?;
        let (mut judged, mut fired) = (0u64, 0u64);
        for t in tones.filter(|t| t.unjudged & bit == 0) {
            judged += 1;
            fired += u64::from(t.fired & bit != 0);
        }
        (judged > 0).then(|| fired as f64 / judged as f64)
    }

    /// `tone` with the "customer's words" rule, where it could not be
    /// judged, credited its points × `rate`: the share of the replies it
    /// could be judged on that it fired for, so the points expected of a
    /// reply like the others. Without them every reply to a customer
    /// writing in Spanish would read up to the rule's points colder than
    /// the same reply to an English message. `None` when the rule was
    /// judged (nothing to impute).
    pub fn impute_echo(&self, tone: &Tone, rate: f64) -> Option<Tone> {
        let i = self.echo_rule()?;
        if tone.unjudged & (1 << i) == 0 {
            return None;
        }
        let raw = tone.raw + f64::from(self.rules[i].points) * rate;
        let score = raw.clamp(0.0, 100.0);
        Some(Tone {
            score,
            label: self.label(score),
            raw,
            ..tone.clone()
        })
    }

    /// How many distinct cues match outside the `except` phrases (and, for
    /// warm rules, outside a negation).
    fn cue_hits(&self, cues: &CueSet, except: &CueSet, w: &Words, raw: &str, warm: bool) -> u32 {
        let excluded: Vec<(usize, usize)> = except
            .matches(w)
            .into_iter()
            .map(|(_, a, b)| (a, b))
            .collect();
        let mut hit = vec![false; cues.cues.len()];
        for (i, start, end) in cues.matches(w) {
            let inside_except = excluded.iter().any(|&(a, b)| a <= start && end <= b);
            let negated = warm && self.negated(w, start, end);
            hit[i] |= !inside_except && !negated;
        }
        for (i, c) in cues.cues.iter().enumerate() {
            if let Cue::Symbol(sym) = c {
                hit[i] |= raw.contains(sym.as_str());
            }
        }
        hit.iter().filter(|h| **h).count() as u32
    }

    /// A negator up to three words before `start` in the same clause, or
    /// "not" right after `end`.
    fn negated(&self, w: &Words, start: usize, end: usize) -> bool {
        let clause = w.clause[start];
        let before = (start.saturating_sub(3)..start)
            .any(|i| w.clause[i] == clause && self.negators.contains(&w.words[i]));
        let after = w.words.get(end).is_some_and(|x| x == "not") && w.clause[end] == clause;
        before || after
    }
}

impl ToneReader<'_> {
    /// Reads a reply, as [`ToneScorer::score_reply`] does: one without
    /// words or reliably in another language than English is not scored.
    pub fn reply(&mut self, reply: Option<&str>) -> ReadReply {
        let text = reply.map(str::trim).unwrap_or_default();
        let facts = match self.scorer.reply_facts(text) {
            Err(why) => Err(why),
            Ok(f) => {
                let mut stems = Vec::with_capacity(self.overlap.len());
                for &i in &self.overlap {
                    let mut numbers = Vec::new();
                    for s in f.stems[i].iter().flatten() {
                        numbers.push(number(&mut self.numbers, s));
                    }
                    numbers.sort_unstable();
                    stems.push(numbers.into_boxed_slice());
                }
                Ok(NumberedFacts {
                    hits: f.hits,
                    words: f.words,
                    stems,
                })
            }
        };
        ReadReply {
            reader: self.id,
            facts,
        }
    }

    /// Reads a customer's message for the "customer's words" rule: the
    /// content stems [`ToneScorer::score_reply`] finds in its text.
    pub fn message(&mut self, message: &str) -> NumberedMessage {
        let scorer = self.scorer;
        let (overlap, numbers) = (&self.overlap, &mut self.numbers);
        let mut stems: Vec<Vec<u32>> = vec![Vec::new(); overlap.len()];
        each_word(message, |w| {
            for (k, &i) in overlap.iter().enumerate() {
                if let RuleKind::Overlap { stopwords, .. } = &scorer.rules[i].kind
                    && let Some(s) = content_stem(w, stopwords)
                {
                    stems[k].push(number(numbers, s));
                }
            }
        });
        NumberedMessage {
            reader: self.id,
            stems: stems
                .into_iter()
                .map(|mut s| {
                    s.sort_unstable();
                    s.dedup();
                    s.into_boxed_slice()
                })
                .collect(),
        }
    }

    /// The tone of a reply this reader read, to a message it read (`None`
    /// as [`ReplyContext::message`]'s `None`), on a ticket that is a
    /// complaint or not (as [`ReplyContext::complaint`]): the tone
    /// [`ToneScorer::score_reply`] gives the texts.
    pub fn score(
        &self,
        reply: &ReadReply,
        message: Option<&NumberedMessage>,
        complaint: Option<bool>,
    ) -> std::result::Result<Tone, Unscored> {
        debug_assert_eq!(reply.reader, self.id, "a reply another reader read");
        debug_assert!(
            message.is_none_or(|m| m.reader == self.id),
            "a message another reader read"
        );
        let facts = reply.facts.as_ref().map_err(|why| *why)?;
        Ok(self
            .scorer
            .tally(&facts.hits, facts.words, complaint, |rule, _| {
                let m = message?;
                let k = self
                    .overlap
                    .iter()
                    .position(|&i| i == rule)
                    .expect("the reader lists every overlap rule");
                Some(common(&facts.stems[k], &m.stems[k]))
            }))
    }

    /// How many distinct stems it has read: what it holds grows with them.
    pub fn stems(&self) -> usize {
        self.numbers.len()
    }
}

#[cfg(test)]
mod tests;
