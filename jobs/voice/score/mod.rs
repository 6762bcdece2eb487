//! Sentiment and emotion scorer for customer messages in English, Spanish and
//! German: lexicon and rules in the style of VADER (Hutto & Gilbert, 2014).
//!
//! ```text
//! text ─ tokenize ─ language? ─┬─ en/es/de ─ phrases, rules ─ compound ∈ [-1, 1], label, emotions
//!                              ├─ emoji only ─ every language, kept if they agree
//!                              └─ other / unknown ─ unscored, with the reason
//! ```
//!
//! No maintained Rust crate fits (the `vader_sentiment` crate is an
//! unmaintained English-only port without emoji handling, multilingual
//! lexicons or emotions), so the rules are written here and the lexicons ship
//! as data under `lexicon/` (sources and licences in README.md,
//! "Lexicons and licences"). Nothing is read or downloaded at run time.
//!
//! A message in a language without a lexicon is `unscored`
//! (`unsupported_language`), never neutral: treating it as neutral would bias
//! every aggregate against the customers who write in it.
//!
//! # Layout
//! - [`lexicon`]: data files → one entry per word (valence, rules, emotions, phrases)
//! - [`tokenize`]: tokens as VADER sees them, placeholders and emoji handled
//! - [`language`]: stop-word vote and `whatlang`
//! - [`whatlang_latin`]: `whatlang`'s Latin-script answer, from an index of its trigrams
//! - [`valence`]: VADER's rules → compound score
//! - [`emotion`]: the six emotions
//! - [`file`]: `attune voice score` over a CSV or Parquet file
//! - [`probe`]: the counterfactual probe for the fairness audit

mod emotion;
pub mod file;
pub mod language;
mod lexicon;
pub mod probe;
pub mod tokenize;
mod valence;
mod whatlang_latin;

#[cfg(test)]
mod eval;
#[cfg(test)]
mod identity;
#[cfg(test)]
mod tests;

use std::cell::RefCell;

use serde::Serialize;

pub use self::file::{ScoreFileOutcome, score_file};
pub use self::language::SUPPORTED;
pub use self::probe::{ProbeGap, counterfactual_probe};

use self::language::{Detected, Votes, WhatlangMemo};
use self::lexicon::{FxMap, Language, Sources};
use self::tokenize::{SymbolTable, Tokens};
use self::valence::Work;

/// Compound score at or above which a message is positive (VADER's published threshold).
pub const POSITIVE_THRESHOLD: f64 = 0.05;
/// Compound score at or below which a message is negative (VADER's published threshold).
pub const NEGATIVE_THRESHOLD: f64 = -0.05;
/// Emotion score at or above which an emotion counts as present (evaluation and reports).
pub const EMOTION_PRESENT: f64 = 0.3;

/// Number of emotions.
pub const EMOTION_COUNT: usize = 6;
/// The emotions, in the order of [`Emotions::as_array`].
pub const EMOTION_NAMES: [&str; EMOTION_COUNT] = [
    "frustration",
    "confusion",
    "anxiety",
    "anger",
    "joy",
    "gratitude",
];

/// Index of an emotion name in [`EMOTION_NAMES`].
pub fn emotion_index(name: &str) -> Option<usize> {
    EMOTION_NAMES.iter().position(|e| *e == name)
}

/// The embedded lexicons (see README.md, "Lexicons and licences").
mod data {
    pub const VADER: &str = include_str!("lexicon/vader_lexicon.tsv");
    pub const VADER_EMOJI: &str = include_str!("lexicon/vader_emoji.tsv");
    pub const EN_RULES: &str = include_str!("lexicon/en.toml");
    pub const EN_DOMAIN: &str = include_str!("lexicon/en_domain.tsv");
    pub const ES_RULES: &str = include_str!("lexicon/es.toml");
    pub const ES: &str = include_str!("lexicon/es.tsv");
    pub const DE_RULES: &str = include_str!("lexicon/de.toml");
    pub const DE: &str = include_str!("lexicon/de.tsv");
    pub const EMOJI_VALENCE: &str = include_str!("lexicon/emoji_valence.tsv");
    pub const EMOTIONS: &str = include_str!("lexicon/emotions.tsv");
    pub const PROBE: &str = include_str!("lexicon/probe.tsv");
    pub const WHATLANG_LATIN: &str = include_str!("lexicon/whatlang_latin.tsv");
}

/// What the scorer returns, as a fingerprint: FNV-1a 64 over the Debug form
/// of every output of `identity`'s fixed workload, first recorded with the
/// scorer of commit 169af8b (before the speed work), and recorded again for
/// the deliberate rule changes since: German negation stays within its clause
/// and a clause-final "nicht" negates a word, not an emoji; emotion cues are
/// negated by "no" and by clause-final "nicht" as sentiment words are (38 of
/// the outputs changed, all of them German or English messages with such
/// negations). Debug prints an `f64` in its shortest round-trip form, so two
/// floats print alike only if they are equal.
///
/// The identity test fails until this is recorded again after any change of
/// what the scorer returns, so `voice::reuse` hashes it: scores carried over
/// from an earlier night are never mixed with those of other rules.
pub const SCORER_FINGERPRINT: u64 = 0xd875_52fb_de58_7a0f;

/// The text of every embedded lexicon: what a score depends on besides the
/// code, for `voice::reuse`'s digest.
pub fn lexicon_sources() -> [&'static str; 12] {
    use data::*;
    [
        VADER,
        VADER_EMOJI,
        EN_RULES,
        EN_DOMAIN,
        ES_RULES,
        ES,
        DE_RULES,
        DE,
        EMOJI_VALENCE,
        EMOTIONS,
        PROBE,
        WHATLANG_LATIN,
    ]
}

/// Sentiment label of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Positive,
    Neutral,
    Negative,
    /// Not scored (see [`Scored::unscored_reason`]).
    Unscored,
}

impl Label {
    /// `"positive"`, `"neutral"`, `"negative"` or `"unscored"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Positive => "positive",
            Label::Neutral => "neutral",
            Label::Negative => "negative",
            Label::Unscored => "unscored",
        }
    }

    /// The label of a compound score (VADER's thresholds).
    pub fn of_compound(compound: f64) -> Label {
        if compound >= POSITIVE_THRESHOLD {
            Label::Positive
        } else if compound <= NEGATIVE_THRESHOLD {
            Label::Negative
        } else {
            Label::Neutral
        }
    }
}

/// Emotion scores of a message, each in [0, 1]; all 0.0 when not scored.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Emotions {
    pub frustration: f64,
    pub confusion: f64,
    pub anxiety: f64,
    pub anger: f64,
    pub joy: f64,
    pub gratitude: f64,
}

impl Emotions {
    /// In the order of [`EMOTION_NAMES`].
    pub fn as_array(&self) -> [f64; EMOTION_COUNT] {
        [
            self.frustration,
            self.confusion,
            self.anxiety,
            self.anger,
            self.joy,
            self.gratitude,
        ]
    }

    fn from_array(a: [f64; EMOTION_COUNT]) -> Emotions {
        Emotions {
            frustration: a[0],
            confusion: a[1],
            anxiety: a[2],
            anger: a[3],
            joy: a[4],
            gratitude: a[5],
        }
    }
}

/// The score of one message.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scored {
    /// ISO 639-1 code ("en", "es", "de", or another language's); None when
    /// undetectable or when the message has no words (emoji only).
    pub language: Option<&'static str>,
    pub scored: bool,
    /// `"unsupported_language"`, `"no_text"` or `"undetected_language"` when not scored.
    pub unscored_reason: Option<&'static str>,
    /// In [-1, 1]; 0.0 and meaningless when not scored.
    pub compound: f64,
    pub label: Label,
    /// All 0.0 when not scored.
    pub emotions: Emotions,
}

impl Scored {
    fn unscored(language: Option<&'static str>, reason: &'static str) -> Scored {
        Scored {
            language,
            scored: false,
            unscored_reason: Some(reason),
            compound: 0.0,
            label: Label::Unscored,
            emotions: Emotions::default(),
        }
    }
}

/// Reasons a message is not scored.
pub mod reason {
    /// The language has no lexicon.
    pub const UNSUPPORTED_LANGUAGE: &str = "unsupported_language";
    /// Empty, whitespace, or only redaction placeholders and punctuation.
    pub const NO_TEXT: &str = "no_text";
    /// The language could not be told (very short or mixed text).
    pub const UNDETECTED_LANGUAGE: &str = "undetected_language";
}

/// The scorer: lexicons loaded once; share it by reference (`&Scorer` is `Sync`).
#[derive(Debug)]
pub struct Scorer {
    languages: [Language; 3],
    votes: Votes,
    symbols: FxMap<Box<str>, ()>,
    emoji_index: FxMap<char, u32>,
    emoji_valence: Vec<f64>,
    emoji_emotions: Vec<[f32; EMOTION_COUNT]>,
}

/// Per-thread buffers, so scoring allocates nothing once warm.
#[derive(Debug, Default)]
struct Scratch {
    tokens: Tokens,
    work: Work,
    memo: WhatlangMemo,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Default for Scorer {
    fn default() -> Self {
        Scorer::new()
    }
}

impl Scorer {
    /// The built-in lexicons (embedded in the binary; no I/O).
    pub fn new() -> Scorer {
        Scorer::try_new().expect("the embedded lexicons parse (checked by the unit tests)")
    }

    fn try_new() -> Result<Scorer, String> {
        let en = lexicon::load_language(&Sources {
            rules: data::EN_RULES,
            valence: &[data::VADER, data::EN_DOMAIN],
            symbols: data::VADER,
            emotions: data::EMOTIONS,
        })?;
        let es = lexicon::load_language(&Sources {
            rules: data::ES_RULES,
            valence: &[data::ES],
            symbols: data::VADER,
            emotions: data::EMOTIONS,
        })?;
        let de = lexicon::load_language(&Sources {
            rules: data::DE_RULES,
            valence: &[data::DE],
            symbols: data::VADER,
            emotions: data::EMOTIONS,
        })?;
        let votes = Votes::new(
            [&en.stopwords, &es.stopwords, &de.stopwords],
            whatlang_latin::LatinModel::parse(data::WHATLANG_LATIN)?,
        );
        let mut symbols: FxMap<Box<str>, ()> = FxMap::default();
        for line in data::VADER.lines() {
            if let Some((term, _)) = line.split_once('\t')
                && !line.starts_with("# ")
                && lexicon::is_symbol(term)
                && !term.contains(' ')
            {
                symbols.insert(term.to_lowercase().into(), ());
            }
        }
        // An emoji's valence is what VADER gives its English description
        // ("smiling face with heart-eyes"): vaderSentiment substitutes the
        // description into the text; one token with the summed valence is the
        // same for the compound score and keeps the emoji meaningful in Spanish
        // and German messages too.
        let descriptions = lexicon::emoji_descriptions(data::VADER_EMOJI)?;
        let mut emoji_index: FxMap<char, u32> = FxMap::default();
        let mut emoji_valence = Vec::with_capacity(descriptions.len());
        let mut emoji_emotions = vec![[0.0f32; EMOTION_COUNT]; descriptions.len()];
        let no_emoji: FxMap<char, u32> = FxMap::default();
        let table = SymbolTable {
            symbols: &symbols,
            emoji: &no_emoji,
        };
        let mut scratch = Scratch::default();
        for (k, (c, description)) in descriptions.iter().enumerate() {
            emoji_index.insert(*c, k as u32);
            tokenize::tokenize(description, &table, &mut scratch.tokens);
            let (sum, _) = raw_valence(&en, &scratch.tokens, &mut scratch.work, &[]);
            emoji_valence.push(sum);
        }
        for line in data::EMOJI_VALENCE
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (emoji, valence) = line
                .split_once('\t')
                .ok_or_else(|| format!("emoji_valence.tsv: bad line {line:?}"))?;
            let mut chars = emoji.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return Err(format!(
                    "emoji_valence.tsv: one emoji per line, not {emoji:?}"
                ));
            };
            let k = *emoji_index
                .get(&c)
                .ok_or_else(|| format!("emoji_valence.tsv: {c} is not in VADER's emoji lexicon"))?;
            emoji_valence[k as usize] = valence
                .parse()
                .map_err(|_| format!("emoji_valence.tsv: bad valence for {c}"))?;
        }
        for (c, idx, weight) in lexicon::emoji_emotions(data::EMOTIONS)? {
            let k = *emoji_index.get(&c).ok_or_else(|| {
                format!("emotions.tsv: emoji {c} is not in VADER's emoji lexicon")
            })?;
            emoji_emotions[k as usize][idx] += weight;
        }
        Ok(Scorer {
            languages: [en, es, de],
            votes,
            symbols,
            emoji_index,
            emoji_valence,
            emoji_emotions,
        })
    }

    /// Scores one message; detects its language itself.
    pub fn score(&self, text: &str) -> Scored {
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut s) => self.score_with(text, &mut s),
            // Only reachable if a caller scores from inside a scoring call.
            Err(_) => self.score_with(text, &mut Scratch::default()),
        })
    }

    /// Scores a message known to be in `language` (one of [`SUPPORTED`]),
    /// skipping detection: for tests and the counterfactual probe.
    pub fn score_as(&self, text: &str, language: &str) -> Option<Scored> {
        let k = SUPPORTED.iter().position(|c| *c == language)?;
        let mut scratch = Scratch::default();
        self.tokenize(text, &mut scratch.tokens);
        if scratch.tokens.len() == 0 {
            return Some(Scored::unscored(Some(SUPPORTED[k]), reason::NO_TEXT));
        }
        Some(self.score_in(k, &mut scratch))
    }

    fn tokenize(&self, text: &str, tokens: &mut Tokens) {
        let table = SymbolTable {
            symbols: &self.symbols,
            emoji: &self.emoji_index,
        };
        tokenize::tokenize(text, &table, tokens);
    }

    fn score_with(&self, text: &str, s: &mut Scratch) -> Scored {
        self.tokenize(text, &mut s.tokens);
        if s.tokens.len() == 0 {
            return Scored::unscored(None, reason::NO_TEXT);
        }
        let in_lexicon = |k: usize, word: &str| {
            let lang = &self.languages[k];
            let info = if lang.fold_accents && !word.is_ascii() {
                let mut folded = String::with_capacity(word.len());
                lexicon::fold(word, &mut folded);
                lang.get(&folded)
            } else {
                lang.get(word)
            };
            info.is_some_and(|i| i.valence.is_some() && !lexicon::is_symbol(word))
        };
        match self.votes.detect(&s.tokens, &mut s.memo, in_lexicon) {
            Detected::Supported(k) => self.score_in(k, s),
            Detected::Unsupported(code) => {
                Scored::unscored(Some(code), reason::UNSUPPORTED_LANGUAGE)
            }
            Detected::Undetected => Scored::unscored(None, reason::UNDETECTED_LANGUAGE),
            Detected::LanguageFree => {
                let all = [0, 1, 2].map(|k| self.score_in(k, s));
                if all.iter().all(|a| a.label == all[0].label) {
                    let mean = |f: &dyn Fn(&Scored) -> f64| all.iter().map(f).sum::<f64>() / 3.0;
                    let mut emotions = [0.0; EMOTION_COUNT];
                    for (e, slot) in emotions.iter_mut().enumerate() {
                        *slot = mean(&|a: &Scored| a.emotions.as_array()[e]);
                    }
                    Scored {
                        language: None,
                        scored: true,
                        unscored_reason: None,
                        compound: mean(&|a: &Scored| a.compound),
                        label: all[0].label,
                        emotions: Emotions::from_array(emotions),
                    }
                } else {
                    Scored::unscored(None, reason::UNDETECTED_LANGUAGE)
                }
            }
        }
    }

    /// Scores tokenized text under language `k`.
    fn score_in(&self, k: usize, s: &mut Scratch) -> Scored {
        let lang = &self.languages[k];
        let Work {
            slots,
            sentiments,
            folded,
            folded_ranges,
        } = &mut s.work;
        let words = valence::words(lang, &s.tokens, folded, folded_ranges);
        valence::fill_slots(lang, &s.tokens, &words, &self.emoji_valence, slots);
        let sum = valence::score(lang, &s.tokens, &words, slots, sentiments);
        let compound = valence::compound(sum, &s.tokens);
        let raw = emotion::raw(
            lang,
            &s.tokens,
            &words,
            slots,
            &self.emoji_emotions,
            compound,
        );
        Scored {
            language: Some(lang.code),
            scored: true,
            unscored_reason: None,
            compound,
            label: Label::of_compound(compound),
            emotions: Emotions::from_array(raw.map(emotion::squash)),
        }
    }
}

/// Sum of VADER valences of tokenized text under `lang`, and the compound.
fn raw_valence(
    lang: &Language,
    tokens: &Tokens,
    work: &mut Work,
    emoji_valence: &[f64],
) -> (f64, f64) {
    let Work {
        slots,
        sentiments,
        folded,
        folded_ranges,
    } = work;
    let words = valence::words(lang, tokens, folded, folded_ranges);
    valence::fill_slots(lang, tokens, &words, emoji_valence, slots);
    let sum = valence::score(lang, tokens, &words, slots, sentiments);
    (sum, valence::compound(sum, tokens))
}
