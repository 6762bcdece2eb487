//! VADER's rules: the valence of each sentiment word, adjusted by the three
//! words before it (boosters, dampeners, negation, "never so"), ALL CAPS,
//! "least", the contrast word ("but": what comes before counts half, what
//! follows one and a half), then punctuation emphasis and normalization of
//! the sum into [-1, 1].
//!
//! This follows vaderSentiment 3.3.2's `SentimentIntensityAnalyzer` (the
//! constants are its published, empirically derived ones) and is checked
//! against it in the tests. Where attune differs, on purpose:
//! - multi-word terms are matched anywhere (vaderSentiment checks its idioms
//!   only from the fourth word on, and never its multi-word lexicon entries);
//!   a matched phrase counts as one sentiment word at its last word;
//! - negation, boosters and "no" do not reach across a sentence boundary,
//!   and in German negation stays within its clause (`,` `:` `;` a dash);
//! - the contrast rule applies the intended factors by position (the Python
//!   code finds positions by value, which misplaces repeated valences);
//! - per language: Spanish negative concord ("no estaba nada mal" is one
//!   negation), German clause-final "nicht" ("gefällt mir nicht");
//! - a sarcasm marker such as "just what I needed" counts only when something
//!   negative follows it in the same sentence.

use super::lexicon::{Language, Phrase, PhraseKind, WordInfo};
use super::tokenize::{NO_EMOJI, Tokens};

/// VADER's empirically derived increase for an ALL CAPS word (`C_INCR`).
pub(crate) const C_INCR: f64 = 0.733;
/// VADER's negation factor (`N_SCALAR`).
pub(crate) const N_SCALAR: f64 = -0.74;
/// VADER's normalization constant: `x / sqrt(x² + ALPHA)`.
pub(crate) const ALPHA: f64 = 15.0;

/// The per-token facts the rules need, after phrase matching.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Slot {
    /// The word is in the sentiment lexicon (vaderSentiment's `in self.lexicon`).
    pub lex: bool,
    /// The valence the token contributes before the rules (None: none).
    pub valence: Option<f64>,
    pub booster: f64,
    pub negator: bool,
    pub post_negator: bool,
    pub contrast: bool,
    /// Part of a matched phrase other than its last word.
    pub absorbed: bool,
    /// The language's "no" word.
    pub is_no: bool,
    /// The head of a sarcasm marker ([`PhraseKind::Sarcasm`]).
    pub sarcasm: bool,
}

/// Reusable buffers for the rules.
#[derive(Debug, Default)]
pub(crate) struct Work {
    pub slots: Vec<Slot>,
    pub sentiments: Vec<f64>,
    /// Accent-folded words (Spanish): byte ranges into `folded`.
    pub folded: String,
    pub folded_ranges: Vec<(u32, u32)>,
}

/// The words of a message as a language compares them (accent-folded for Spanish).
pub(crate) struct Words<'a> {
    tokens: &'a Tokens,
    folded: Option<(&'a str, &'a [(u32, u32)])>,
}

impl<'a> Words<'a> {
    #[inline]
    pub fn get(&self, i: usize) -> &'a str {
        match self.folded {
            Some((s, r)) => &s[r[i].0 as usize..r[i].1 as usize],
            None => {
                let t = &self.tokens.toks[i];
                &self.tokens.lower[t.start as usize..t.end as usize]
            }
        }
    }
}

/// Prepares `work.folded` for a language that folds accents, and returns the
/// word accessor.
pub(crate) fn words<'a>(
    lang: &Language,
    tokens: &'a Tokens,
    folded: &'a mut String,
    ranges: &'a mut Vec<(u32, u32)>,
) -> Words<'a> {
    if !lang.fold_accents || tokens.lower.is_ascii() {
        return Words {
            tokens,
            folded: None,
        };
    }
    folded.clear();
    ranges.clear();
    for i in 0..tokens.len() {
        let start = folded.len();
        super::lexicon::fold(tokens.word(i), folded);
        ranges.push((start as u32, folded.len() as u32));
    }
    Words {
        tokens,
        folded: Some((folded.as_str(), ranges.as_slice())),
    }
}

/// Fills `slots` with one entry per token: lexicon facts and matched phrases.
/// `emoji_valence` gives the valence of an emoji token.
pub(crate) fn fill_slots(
    lang: &Language,
    tokens: &Tokens,
    words: &Words<'_>,
    emoji_valence: &[f64],
    slots: &mut Vec<Slot>,
) {
    slots.clear();
    let n = tokens.len();
    slots.resize(n, Slot::default());
    let mut i = 0;
    while i < n {
        let tok = &tokens.toks[i];
        if tok.emoji != NO_EMOJI {
            let v = emoji_valence[tok.emoji as usize];
            if v != 0.0 {
                slots[i].lex = true;
                slots[i].valence = Some(v);
            }
            i += 1;
            continue;
        }
        let w = words.get(i);
        let Some(info) = lang.get(w) else {
            slots[i].negator = lang.nt_negation && w.contains("n't");
            i += 1;
            continue;
        };
        if let Some(phrase) = match_phrase(info, tokens, words, i) {
            let head = i + phrase.rest.len();
            for s in &mut slots[i..head] {
                s.absorbed = true;
            }
            // The head word's own facts are replaced by the phrase's.
            let s = &mut slots[head];
            match phrase.kind {
                PhraseKind::Valence(v) => {
                    s.lex = true;
                    s.valence = Some(v);
                }
                PhraseKind::Sarcasm(v) => {
                    s.lex = true;
                    s.valence = Some(v);
                    s.sarcasm = true;
                }
                PhraseKind::Booster(b) => s.booster = b,
                PhraseKind::Contrast => s.contrast = true,
            }
            i = head + 1;
            continue;
        }
        set_word(&mut slots[i], info, lang, w, tok.capitalized && !tok.upper);
        i += 1;
    }
}

/// The longest phrase starting at `i`.
fn match_phrase<'i>(
    info: &'i WordInfo,
    tokens: &Tokens,
    words: &Words<'_>,
    i: usize,
) -> Option<&'i Phrase> {
    let n = tokens.len();
    'phrases: for p in info.phrases.iter() {
        let len = p.rest.len();
        if i + len >= n {
            continue;
        }
        for (k, w) in p.rest.iter().enumerate() {
            let j = i + 1 + k;
            if tokens.toks[j].boundary_before || words.get(j) != &**w {
                continue 'phrases;
            }
        }
        return Some(p);
    }
    None
}

#[inline]
fn set_word(slot: &mut Slot, info: &WordInfo, lang: &Language, w: &str, capitalized: bool) {
    slot.lex = info.valence.is_some();
    // A booster never carries valence itself (vaderSentiment appends 0 for it),
    // and a capitalized first name ("Joy") is a person, not a feeling.
    slot.valence = if info.booster != 0.0 || (info.name && capitalized) {
        None
    } else {
        info.valence
    };
    if info.name && capitalized {
        slot.lex = false;
    }
    slot.booster = info.booster;
    slot.negator = info.negator || (lang.nt_negation && w.contains("n't"));
    slot.post_negator = info.post_negator;
    slot.contrast = info.contrast;
    slot.is_no = lang.no_word.as_deref() == Some(w);
}

/// How many words before token `i` a negator may stand and still negate it:
/// three, not across a sentence boundary, nor across a clause break where
/// negation stays within its clause (German).
pub(crate) fn negation_reach(lang: &Language, tokens: &Tokens, i: usize) -> usize {
    let mut reach = 0;
    while reach < 3 && reach < i {
        let t = &tokens.toks[i - reach];
        if t.boundary_before || (lang.negation_within_clause && t.clause_before) {
            break;
        }
        reach += 1;
    }
    reach
}

/// Whether the negator at `j` is cancelled by the word after it within the
/// scope that ends before `i` ("without doubt", "nicht nur").
fn negation_exempt(lang: &Language, words: &Words<'_>, j: usize, i: usize) -> bool {
    lang.without_doubt
        .iter()
        .any(|(a, b)| words.get(j) == &**a && (j + 1..i).any(|k| words.get(k) == &**b))
}

/// Whether a negator before token `i` negates it: a negator within
/// [`negation_reach`] (not one cancelled by the word after it), or the "no"
/// word one or two words back, or three back with "or"/"nor" right before
/// (VADER's rule for "no").
pub(crate) fn negated_before(
    lang: &Language,
    tokens: &Tokens,
    words: &Words<'_>,
    slots: &[Slot],
    i: usize,
) -> bool {
    let reach = negation_reach(lang, tokens, i);
    let no_at = |back: usize| back <= reach && slots[i - back].is_no && !slots[i - back].absorbed;
    if no_at(1) || no_at(2) || (no_at(3) && matches!(words.get(i - 1), "or" | "nor")) {
        return true;
    }
    (1..=reach).any(|back| {
        let j = i - back;
        slots[j].negator && !slots[j].absorbed && !negation_exempt(lang, words, j, i)
    })
}

/// Whether a clause-final post-negator within three words after token `i`
/// negates it ("Den Kuchen mag ich nicht.", "gefällt mir nicht, zu
/// trocken"): no sentence boundary and no other sentiment word in between.
pub(crate) fn post_negated(tokens: &Tokens, slots: &[Slot], i: usize) -> bool {
    // It negates the verb or adjective before it; an emoji or emoticon there
    // is the writer's comment, not what "nicht" denies ("😢 Ich verstehe nicht, …").
    if !tokens.toks[i].alpha {
        return false;
    }
    let n = tokens.len();
    for (k, after) in slots.iter().enumerate().take(n.min(i + 4)).skip(i + 1) {
        if tokens.toks[k].boundary_before || after.lex {
            return false;
        }
        if after.post_negator && !after.absorbed && (k + 1 == n || tokens.toks[k + 1].clause_before)
        {
            return true;
        }
    }
    false
}

/// The sum of the adjusted valences (before punctuation) and the compound
/// score in [-1, 1]; `sentiments` receives each token's adjusted valence.
pub(crate) fn score(
    lang: &Language,
    tokens: &Tokens,
    words: &Words<'_>,
    slots: &[Slot],
    sentiments: &mut Vec<f64>,
) -> f64 {
    let n = tokens.len();
    sentiments.clear();
    sentiments.resize(n, 0.0);
    let cap_diff = tokens.cap_differential();
    let in_list = |list: &[Box<str>], j: usize| list.iter().any(|w| &**w == words.get(j));
    for i in 0..n {
        let s = &slots[i];
        let Some(base) = s.valence else { continue };
        if s.absorbed || s.booster != 0.0 {
            continue;
        }
        // How far back the rules may look: three words, not across a sentence boundary.
        let mut reach = 0;
        while reach < 3 && reach < i && !tokens.toks[i - reach].boundary_before {
            reach += 1;
        }
        let neg_reach = negation_reach(lang, tokens, i);
        let mut v = base;
        if s.is_no && i + 1 < n && slots[i + 1].lex && !tokens.toks[i + 1].boundary_before {
            // "no" before a sentiment word negates it instead of counting itself.
            v = 0.0;
        }
        let no_at =
            |back: usize| back <= neg_reach && slots[i - back].is_no && !slots[i - back].absorbed;
        if no_at(1) || no_at(2) || (no_at(3) && matches!(words.get(i - 1), "or" | "nor")) {
            v = base * N_SCALAR;
        }
        if tokens.toks[i].upper && cap_diff {
            v += if v > 0.0 { C_INCR } else { -C_INCR };
        }
        let mut negated = false;
        let neg = |j: usize| i - j <= neg_reach && slots[j].negator && !slots[j].absorbed;
        let negate = |v: &mut f64, negated: &mut bool| {
            if !(lang.negative_concord && *negated) {
                *v *= N_SCALAR;
                *negated = true;
            }
        };
        for start in 0..reach {
            let j = i - start - 1;
            if slots[j].lex {
                continue;
            }
            let mut scalar = slots[j].booster;
            if scalar != 0.0 {
                if v < 0.0 {
                    scalar = -scalar;
                }
                if tokens.toks[j].upper && cap_diff {
                    scalar += if v > 0.0 { C_INCR } else { -C_INCR };
                }
                scalar *= [1.0, 0.95, 0.9][start];
            }
            v += scalar;
            match start {
                0 => {
                    if neg(i - 1) {
                        negate(&mut v, &mut negated);
                    }
                }
                1 => {
                    let exempt = lang
                        .without_doubt
                        .iter()
                        .any(|(a, b)| words.get(i - 2) == &**a && words.get(i - 1) == &**b);
                    if in_list(&lang.never, i - 2) && in_list(&lang.so, i - 1) {
                        v *= 1.25;
                    } else if !exempt && neg(i - 2) {
                        negate(&mut v, &mut negated);
                    }
                }
                _ => {
                    let exempt = lang.without_doubt.iter().any(|(a, b)| {
                        words.get(i - 3) == &**a
                            && (words.get(i - 2) == &**b || words.get(i - 1) == &**b)
                    });
                    if (in_list(&lang.never, i - 3) && in_list(&lang.so, i - 2))
                        || in_list(&lang.so, i - 1)
                    {
                        v *= 1.25;
                    } else if !exempt && neg(i - 3) {
                        negate(&mut v, &mut negated);
                    }
                }
            }
        }
        if lang.least && reach >= 1 && !slots[i - 1].lex && words.get(i - 1) == "least" {
            if reach >= 2 {
                if !matches!(words.get(i - 2), "at" | "very") {
                    v *= N_SCALAR;
                }
            } else {
                v *= N_SCALAR;
            }
        }
        if !negated && post_negated(tokens, slots, i) {
            v *= N_SCALAR;
        }
        sentiments[i] = v;
    }
    // A sarcasm marker with nothing negative after it in its sentence is
    // meant: "the croissant was just what I needed" is not a complaint.
    for i in (0..n).filter(|&i| slots[i].sarcasm && !slots[i].absorbed) {
        let sentence_end = (i + 1..n)
            .find(|&k| tokens.toks[k].boundary_before)
            .unwrap_or(n);
        if !sentiments[i + 1..sentence_end].iter().any(|&v| v < 0.0) {
            sentiments[i] = 0.0;
        }
    }
    // Contrast: the first "but" halves what precedes it and adds half to what follows.
    if let Some(b) = (0..n).find(|&i| slots[i].contrast && !slots[i].absorbed) {
        for (i, s) in sentiments.iter_mut().enumerate() {
            if i < b {
                *s *= 0.5;
            } else if i > b {
                *s *= 1.5;
            }
        }
    }
    sentiments.iter().sum()
}

/// VADER's punctuation emphasis: up to four `!` (0.292 each) and two or more `?`.
pub(crate) fn punctuation_emphasis(tokens: &Tokens) -> f64 {
    let ep = f64::from(tokens.exclamations.min(4)) * 0.292;
    let qm = match tokens.questions {
        0 | 1 => 0.0,
        q @ 2..=3 => f64::from(q) * 0.18,
        _ => 0.96,
    };
    ep + qm
}

/// VADER's compound score from the summed valences.
pub(crate) fn compound(sum: f64, tokens: &Tokens) -> f64 {
    if sum == 0.0 {
        return 0.0;
    }
    let amp = punctuation_emphasis(tokens);
    let s = if sum > 0.0 { sum + amp } else { sum - amp };
    (s / (s * s + ALPHA).sqrt()).clamp(-1.0, 1.0)
}
