//! The lexicons and language rules, parsed once from the data files under
//! `lexicon/` (embedded with `include_str!`: nothing is read or downloaded at
//! run time).
//!
//! Every word of a language resolves to one [`WordInfo`] with one hash lookup:
//! its valence, whether it boosts, dampens, negates or contrasts, its emotion
//! weights and the phrases that start with it. With that single lookup per
//! token the rules take about 1 µs a message; language detection is the
//! scorer's real cost (see `language`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::Deserialize;

use super::{EMOTION_COUNT, emotion_index};

/// FxHash (the rustc hasher): the lexicon keys are fixed, so there is no
/// flooding risk to defend against, and SipHash would cost a third of the
/// scorer's time.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.add(u64::from_le_bytes(b));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A hash map with [`FxHasher`].
pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A multi-word term that starts with a given word.
#[derive(Debug, Clone)]
pub(crate) struct Phrase {
    /// The words after the first.
    pub rest: Box<[Box<str>]>,
    pub kind: PhraseKind,
}

/// What a matched phrase does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PhraseKind {
    /// A sentiment term ("waited forever", "oh great").
    Valence(f64),
    /// A sarcasm marker that is sincere unless something negative follows it
    /// in the same sentence ("just what I needed, a burnt bagel").
    Sarcasm(f64),
    /// A multi-word booster or dampener ("kind of", "un poco").
    Booster(f64),
    /// A multi-word contrast ("sin embargo").
    Contrast,
}

/// A multi-word emotion cue ("still waiting", "no entiendo").
#[derive(Debug, Clone)]
pub(crate) struct EmotionPhrase {
    pub rest: Box<[Box<str>]>,
    pub weights: [f32; EMOTION_COUNT],
}

/// Everything a language knows about one (lowercase, possibly accent-folded) word.
#[derive(Debug, Clone, Default)]
pub(crate) struct WordInfo {
    /// Valence on VADER's -4..4 scale, when the word is in the sentiment lexicon.
    pub valence: Option<f64>,
    /// Booster (> 0) or dampener (< 0) increment; 0 when neither.
    pub booster: f64,
    pub negator: bool,
    /// Negates the sentiment word before it when it ends a clause (German "nicht").
    pub post_negator: bool,
    pub contrast: bool,
    /// A first name that is also a lexicon word; capitalized, it carries no sentiment.
    pub name: bool,
    pub emotions: [f32; EMOTION_COUNT],
    /// Phrases starting with this word, longest first.
    pub phrases: Box<[Phrase]>,
    /// Emotion phrases starting with this word, longest first.
    pub emotion_phrases: Box<[EmotionPhrase]>,
}

/// The rules and lexicon of one supported language.
#[derive(Debug)]
pub(crate) struct Language {
    /// ISO 639-1 code.
    pub code: &'static str,
    pub words: FxMap<Box<str>, WordInfo>,
    /// Any word containing "n't" negates (English).
    pub nt_negation: bool,
    /// The word that is both a negative lexicon item and a negator of the next words ("no").
    pub no_word: Option<Box<str>>,
    /// VADER's "least" rule.
    pub least: bool,
    /// A second negator in the scope reinforces rather than cancels (Spanish).
    pub negative_concord: bool,
    /// Negation does not reach across a clause break (German).
    pub negation_within_clause: bool,
    /// Compare words without accents (Spanish).
    pub fold_accents: bool,
    pub never: Vec<Box<str>>,
    pub so: Vec<Box<str>>,
    /// A negator followed by the second word does not negate ("without doubt", "nicht nur").
    pub without_doubt: Vec<(Box<str>, Box<str>)>,
    /// The language's stop words, for the language vote.
    pub stopwords: Vec<Box<str>>,
}

impl Language {
    /// The entry of a word, if the language knows it.
    #[inline]
    pub fn get(&self, word: &str) -> Option<&WordInfo> {
        self.words.get(word)
    }
}

/// The `<lang>.toml` rules file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    code: String,
    nt_negation: bool,
    #[serde(default)]
    no_word: Option<String>,
    least: bool,
    negative_concord: bool,
    negation_within_clause: bool,
    fold_accents: bool,
    negators: Vec<String>,
    post_negators: Vec<String>,
    contrast: Vec<String>,
    never: Vec<String>,
    so: Vec<String>,
    without_doubt: Vec<(String, String)>,
    stopwords: Vec<String>,
    names: Vec<String>,
    boosters: std::collections::BTreeMap<String, f64>,
}

/// The embedded data files of one language.
pub(crate) struct Sources {
    pub rules: &'static str,
    /// Valence lexicons, later ones overriding earlier ones.
    pub valence: &'static [&'static str],
    /// Lexicons whose symbol entries (emoticons such as `:)` and `<3`) every language shares.
    pub symbols: &'static str,
    pub emotions: &'static str,
}

/// Lowercase Spanish without accents (ñ kept): customers often drop accents.
pub(crate) fn fold(s: &str, out: &mut String) {
    for c in s.chars() {
        out.push(match c {
            'á' | 'à' | 'â' => 'a',
            'é' | 'è' | 'ê' => 'e',
            'í' | 'ì' | 'î' => 'i',
            'ó' | 'ò' | 'ô' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            c => c,
        });
    }
}

/// Whether a VADER entry is a symbol (emoticon) rather than a word: it has
/// ASCII punctuation or digits and is not a contraction like "can't".
pub(crate) fn is_symbol(term: &str) -> bool {
    let has_letter = term.chars().any(char::is_alphabetic);
    let odd = term
        .chars()
        .any(|c| (c.is_ascii_punctuation() && c != '\'' && c != '-') || c.is_ascii_digit());
    odd || !has_letter
}

/// The other forms of an adjective marked `a` in a lexicon file.
fn inflections(code: &str, base: &str) -> Vec<String> {
    match code {
        "de" => ["e", "en", "er", "es", "em"]
            .iter()
            .map(|s| format!("{base}{s}"))
            .collect(),
        "es" => {
            let mut out = Vec::new();
            if let Some(stem) = base.strip_suffix('o') {
                for s in ["a", "os", "as"] {
                    out.push(format!("{stem}{s}"));
                }
                // -ísimo: "rico" → "riquísimo", "largo" → "larguísimo".
                let sup_stem = if let Some(s) = stem.strip_suffix('c') {
                    format!("{s}qu")
                } else if let Some(s) = stem.strip_suffix('g') {
                    format!("{s}gu")
                } else {
                    stem.to_string()
                };
                for s in ["ísimo", "ísima", "ísimos", "ísimas"] {
                    out.push(format!("{sup_stem}{s}"));
                }
            } else if base.ends_with('e') {
                out.push(format!("{base}s"));
            } else if base.ends_with("or") {
                for s in ["a", "es", "as"] {
                    out.push(format!("{base}{s}"));
                }
            } else if let Some(stem) = base.strip_suffix('z') {
                out.push(format!("{stem}ces"));
            } else if base.ends_with('a') {
                out.push(format!("{base}s"));
            } else {
                out.push(format!("{base}es"));
            }
            out
        }
        _ => Vec::new(),
    }
}

/// Builds one language from its embedded files.
pub(crate) fn load_language(src: &Sources) -> Result<Language, String> {
    let rules: RulesFile = toml::from_str(src.rules).map_err(|e| format!("language rules: {e}"))?;
    let code: &'static str = match rules.code.as_str() {
        "en" => "en",
        "es" => "es",
        "de" => "de",
        other => return Err(format!("unknown language code `{other}` in rules")),
    };
    let fold_on = rules.fold_accents;
    let norm = |s: &str| -> String {
        let lower = s.to_lowercase();
        if fold_on {
            let mut out = String::with_capacity(lower.len());
            fold(&lower, &mut out);
            out
        } else {
            lower
        }
    };
    let mut words: FxMap<Box<str>, WordInfo> = FxMap::default();
    // Phrases collected first, attached to their first word at the end.
    let mut phrases: FxMap<Box<str>, Vec<Phrase>> = FxMap::default();
    let mut emotion_phrases: FxMap<Box<str>, Vec<EmotionPhrase>> = FxMap::default();

    let mut add_phrase = |first: &str, rest: &[&str], kind: PhraseKind| {
        let list = phrases.entry(first.into()).or_default();
        let rest: Box<[Box<str>]> = rest.iter().map(|w| Box::<str>::from(*w)).collect();
        // A later file overrides an earlier phrase with the same words.
        list.retain(|p| p.rest != rest);
        list.push(Phrase { rest, kind });
    };

    // Symbols (emoticons) shared by every language.
    for (line_no, line) in src.symbols.lines().enumerate() {
        let Some(entry) = parse_valence_line(line, line_no)? else {
            continue;
        };
        if is_symbol(entry.term) && !entry.term.contains(' ') {
            words
                .entry(entry.term.to_lowercase().into())
                .or_default()
                .valence = Some(entry.valence);
        }
    }
    for file in src.valence {
        for (line_no, line) in file.lines().enumerate() {
            let Some(entry) = parse_valence_line(line, line_no)? else {
                continue;
            };
            let term = norm(entry.term);
            let mut forms = vec![term.clone()];
            if entry.marker == Marker::Adjective {
                forms.extend(inflections(code, &term).iter().map(|f| norm(f)));
            }
            let kind = match entry.marker {
                Marker::Sarcasm => PhraseKind::Sarcasm(entry.valence),
                _ => PhraseKind::Valence(entry.valence),
            };
            for form in forms {
                let parts: Vec<&str> = form.split(' ').filter(|p| !p.is_empty()).collect();
                match parts.as_slice() {
                    [] => {}
                    [_] if entry.marker == Marker::Sarcasm => {
                        return Err(format!(
                            "lexicon line {}: a sarcasm marker (`s`) is a phrase, not one word",
                            line_no + 1
                        ));
                    }
                    [one] => {
                        words.entry((*one).into()).or_default().valence = Some(entry.valence);
                    }
                    [first, rest @ ..] => {
                        words.entry((*first).into()).or_default();
                        add_phrase(first, rest, kind);
                    }
                }
            }
        }
    }
    for (term, inc) in &rules.boosters {
        let term = norm(term);
        let parts: Vec<&str> = term.split(' ').collect();
        match parts.as_slice() {
            [one] => words.entry((*one).into()).or_default().booster = *inc,
            [first, rest @ ..] => {
                words.entry((*first).into()).or_default();
                add_phrase(first, rest, PhraseKind::Booster(*inc));
            }
            [] => {}
        }
    }
    for w in &rules.negators {
        words.entry(norm(w).into()).or_default().negator = true;
    }
    for w in &rules.post_negators {
        words.entry(norm(w).into()).or_default().post_negator = true;
    }
    for w in &rules.contrast {
        let w = norm(w);
        let parts: Vec<&str> = w.split(' ').collect();
        match parts.as_slice() {
            [one] => words.entry((*one).into()).or_default().contrast = true,
            [first, rest @ ..] => {
                words.entry((*first).into()).or_default();
                add_phrase(first, rest, PhraseKind::Contrast);
            }
            [] => {}
        }
    }
    for w in &rules.names {
        words.entry(norm(w).into()).or_default().name = true;
    }
    // "sin embargo" is a contrast, not a negation.
    if code == "es" {
        words.entry("sin".into()).or_default();
        add_phrase("sin", &["embargo"], PhraseKind::Contrast);
    }

    for (line_no, line) in src.emotions.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let (lang, term, emotion, weight) = match cols.as_slice() {
            [l, t, e, w] | [l, t, e, w, _] => (*l, *t, *e, *w),
            _ => {
                return Err(format!(
                    "emotions line {}: expected 4 or 5 columns",
                    line_no + 1
                ));
            }
        };
        if lang != code {
            continue;
        }
        let idx = emotion_index(emotion)
            .ok_or_else(|| format!("emotions line {}: unknown emotion `{emotion}`", line_no + 1))?;
        let weight: f32 = weight
            .parse()
            .map_err(|_| format!("emotions line {}: bad weight `{weight}`", line_no + 1))?;
        let term = norm(term);
        let mut forms = vec![term.clone()];
        if cols.len() == 5 && cols[4] == "a" {
            forms.extend(inflections(code, &term).iter().map(|f| norm(f)));
        }
        for form in forms {
            let parts: Vec<&str> = form.split(' ').collect();
            match parts.as_slice() {
                [one] => words.entry((*one).into()).or_default().emotions[idx] += weight,
                [first, rest @ ..] => {
                    words.entry((*first).into()).or_default();
                    let list = emotion_phrases.entry((*first).into()).or_default();
                    let rest: Box<[Box<str>]> = rest.iter().map(|w| Box::<str>::from(*w)).collect();
                    match list.iter_mut().find(|p| p.rest == rest) {
                        Some(p) => p.weights[idx] += weight,
                        None => {
                            let mut weights = [0.0; EMOTION_COUNT];
                            weights[idx] = weight;
                            list.push(EmotionPhrase { rest, weights });
                        }
                    }
                }
                [] => {}
            }
        }
    }

    for (first, mut list) in phrases {
        list.sort_by_key(|p| std::cmp::Reverse(p.rest.len()));
        words.entry(first).or_default().phrases = list.into_boxed_slice();
    }
    for (first, mut list) in emotion_phrases {
        list.sort_by_key(|p| std::cmp::Reverse(p.rest.len()));
        words.entry(first).or_default().emotion_phrases = list.into_boxed_slice();
    }
    let boxed = |v: &[String]| v.iter().map(|s| norm(s).into()).collect::<Vec<Box<str>>>();
    Ok(Language {
        code,
        words,
        nt_negation: rules.nt_negation,
        no_word: rules.no_word.as_deref().map(|s| norm(s).into()),
        least: rules.least,
        negative_concord: rules.negative_concord,
        negation_within_clause: rules.negation_within_clause,
        fold_accents: rules.fold_accents,
        never: boxed(&rules.never),
        so: boxed(&rules.so),
        without_doubt: rules
            .without_doubt
            .iter()
            .map(|(a, b)| (norm(a).into(), norm(b).into()))
            .collect(),
        stopwords: rules
            .stopwords
            .iter()
            .map(|s| s.to_lowercase().into())
            .collect(),
    })
}

/// The optional third column of a valence lexicon line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    /// `a`: an adjective whose inflected forms are generated.
    Adjective,
    /// `s`: a sarcasm marker (see [`PhraseKind::Sarcasm`]).
    Sarcasm,
}

/// A parsed lexicon line.
struct ValenceLine<'a> {
    term: &'a str,
    valence: f64,
    marker: Marker,
}

/// One `term<TAB>valence[<TAB>a|s]` line, or `None` for comments and blank lines.
fn parse_valence_line(line: &str, line_no: usize) -> Result<Option<ValenceLine<'_>>, String> {
    let line = line.trim_end_matches('\r');
    if line.is_empty() || line.starts_with("# ") || line == "#" {
        return Ok(None);
    }
    let mut cols = line.split('\t');
    let term = cols.next().unwrap_or_default();
    let valence = cols
        .next()
        .ok_or_else(|| format!("lexicon line {}: no valence column", line_no + 1))?;
    let valence: f64 = valence
        .trim()
        .parse()
        .map_err(|_| format!("lexicon line {}: bad valence `{valence}`", line_no + 1))?;
    if !(-4.0..=4.0).contains(&valence) {
        return Err(format!(
            "lexicon line {}: valence {valence} outside -4..4",
            line_no + 1
        ));
    }
    let marker = match cols.next() {
        None | Some("") => Marker::None,
        Some("a") => Marker::Adjective,
        Some("s") => Marker::Sarcasm,
        Some(other) => {
            return Err(format!(
                "lexicon line {}: unknown marker `{other}` (expected `a` or `s`)",
                line_no + 1
            ));
        }
    };
    Ok(Some(ValenceLine {
        term,
        valence,
        marker,
    }))
}

/// Emoji → English description, from VADER's emoji lexicon.
pub(crate) fn emoji_descriptions(src: &'static str) -> Result<Vec<(char, &'static str)>, String> {
    let mut out = Vec::new();
    for (line_no, line) in src.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with("# ") {
            continue;
        }
        let (emoji, description) = line
            .split_once('\t')
            .ok_or_else(|| format!("emoji line {}: expected emoji<TAB>description", line_no + 1))?;
        let mut chars = emoji.chars();
        // vaderSentiment looks emoji up one character at a time, so only
        // single-character entries ever match; attune does the same.
        if let (Some(c), None) = (chars.next(), chars.next()) {
            out.push((c, description));
        }
    }
    Ok(out)
}

/// `(lang, emoji, emotion index, weight)` for the language-independent (`*`) rows.
pub(crate) fn emoji_emotions(src: &str) -> Result<Vec<(char, usize, f32)>, String> {
    let mut out = Vec::new();
    for (line_no, line) in src.lines().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        if line.starts_with('#') || cols.first() != Some(&"*") {
            continue;
        }
        let [_, term, emotion, weight] = cols.as_slice() else {
            return Err(format!("emotions line {}: expected 4 columns", line_no + 1));
        };
        let mut chars = term.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            return Err(format!(
                "emotions line {}: `*` rows are single emoji",
                line_no + 1
            ));
        };
        let idx = emotion_index(emotion)
            .ok_or_else(|| format!("emotions line {}: unknown emotion `{emotion}`", line_no + 1))?;
        let weight: f32 = weight
            .parse()
            .map_err(|_| format!("emotions line {}: bad weight", line_no + 1))?;
        out.push((c, idx, weight));
    }
    Ok(out)
}

/// Whether a language's valence entries exist for every inflected form we
/// generate (used by tests).
#[cfg(test)]
pub(crate) fn forms_of(code: &str, base: &str) -> Vec<String> {
    inflections(code, base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spanish_adjectives_inflect() {
        assert_eq!(
            forms_of("es", "rico"),
            [
                "rica",
                "ricos",
                "ricas",
                "riquísimo",
                "riquísima",
                "riquísimos",
                "riquísimas"
            ]
        );
        assert_eq!(forms_of("es", "amable"), ["amables"]);
        assert_eq!(
            forms_of("es", "encantador"),
            ["encantadora", "encantadores", "encantadoras"]
        );
        assert_eq!(forms_of("es", "eficaz"), ["eficaces"]);
        assert_eq!(forms_of("es", "fatal"), ["fatales"]);
        assert_eq!(
            forms_of("de", "gut"),
            ["gute", "guten", "guter", "gutes", "gutem"]
        );
        assert!(forms_of("en", "good").is_empty());
    }

    #[test]
    fn folding_drops_accents_but_keeps_enye() {
        let mut s = String::new();
        fold("rápido atención pingüino año", &mut s);
        assert_eq!(s, "rapido atencion pinguino año");
    }

    #[test]
    fn symbols_are_told_from_words() {
        for s in [":)", ":-(", "<3", ":d", "d:", "</3", "8-)"] {
            assert!(is_symbol(s), "{s}");
        }
        for w in ["good", "can't", "kind-of", "niño"] {
            assert!(!is_symbol(w), "{w}");
        }
    }

    #[test]
    fn fx_hasher_spreads_short_keys() {
        use std::hash::BuildHasher;
        let b = BuildHasherDefault::<FxHasher>::default();
        let words = ["a", "b", "ab", "ba", "good", "goods", "bad", "not"];
        let mut hashes: Vec<u64> = words.iter().map(|w| b.hash_one(w)).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), words.len());
    }
}
