//! Which language a message is in, so that a message in a language without a
//! lexicon is marked unscored instead of silently scored neutral.
//!
//! Two signals: a stop-word vote between the supported languages (English,
//! Spanish, German: each has ~100 frequent words that the others and their
//! close neighbours such as Portuguese, Italian and French do not share), and
//! `whatlang`'s trigram detector over all 69 languages it knows.
//!
//! 1. A message with no words, only emoji, emoticons, numbers or words every
//!    language uses ("ok", "wow", "top") is *language-free*: the scorer scores
//!    it under every supported language and keeps the result only if they agree.
//! 2. A decisive vote (two or more stop words of one language, none of the
//!    others, at least a quarter of the words) settles it without `whatlang`:
//!    the common case, and the fast one.
//! 3. Otherwise `whatlang` decides when it is reliable (confidence above 0.9;
//!    an unsupported language then gives `unsupported_language`), unless three
//!    or more stop words of one supported language, three times more than any
//!    other and a third of the words, contradict it.
//! 4. When `whatlang` is unsure, stop words (two points) and sentiment-lexicon
//!    words (one point) vote; a single winner is the language. A tie is broken
//!    by `whatlang`'s guess; with no votes at all, a `whatlang` lean of 0.5 or
//!    more decides; else the language is `undetected_language`. Very short
//!    texts ("merci", "Yum!") end up there: guessing would either score a
//!    foreign message as neutral or score it with the wrong lexicon.
//!
//! `whatlang` itself compares a Latin-script text with 300 trigrams of each of
//! 37 languages, whatever the text's length: about 40 µs a call, where
//! everything else takes 1 µs a message, and 41% of the evaluation set's
//! messages need it. So the scorer does not call it for Latin-script text:
//! [`super::whatlang_latin`] computes the very same answer (language and
//! confidence, bit for bit, checked against `whatlang` by a differential
//! test) from an index of those trigrams in about 3 µs. Nothing above depends
//! on how the answer is computed, which is why the speed work left every
//! decision as it was rather than skip `whatlang` for some texts or restrict
//! it to fewer languages: both change which language a message gets, and an
//! allowlist can turn a language without a lexicon into a scored one.
//!
//! The answers are also memoized per thread by exact text ([`WhatlangMemo`]):
//! real feedback repeats its short messages ("Thanks!", "ok", "Great
//! coffee"), which are exactly the ones the stop-word vote cannot settle, and
//! a hash lookup is cheaper still. A memoized answer is the answer `whatlang`
//! gives, so results do not depend on the memo.

use super::lexicon::FxMap;
use super::tokenize::Tokens;
use super::whatlang_latin::{LatinModel, LatinScratch};

/// The languages attune has lexicons for, in the scorer's order.
pub const SUPPORTED: [&str; 3] = ["en", "es", "de"];

/// Words every supported language uses alike: a message made only of these
/// (and emoji) is scored language-free.
const UNIVERSAL: &[&str] = &[
    "ok", "okay", "wow", "lol", "xd", "haha", "hahaha", "jaja", "jajaja", "hmm", "mmm", "top",
    "super", "bravo", "yay", "no",
];

/// Bit of the vote map for "universal word".
const UNIVERSAL_BIT: u8 = 1 << 7;

/// The outcome of detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detected {
    /// One of [`SUPPORTED`], by index.
    Supported(usize),
    /// A language without a lexicon (ISO 639-1 code).
    Unsupported(&'static str),
    /// No language could be told.
    Undetected,
    /// Only emoji, emoticons, numbers or universal words.
    LanguageFree,
}

/// What `whatlang` said about a text: its language and confidence.
type Guess = Option<(whatlang::Lang, f64)>;

/// `whatlang`'s answers by exact text (the tokens' lowercase form), one memo
/// per thread, with the buffers that compute them. Bounded: it forgets
/// everything when full, which costs one detection per text seen again and
/// keeps memory under ~1 MB.
#[derive(Debug, Default)]
pub(crate) struct WhatlangMemo {
    map: FxMap<Box<str>, Guess>,
    latin: LatinScratch,
}

impl WhatlangMemo {
    /// Entries kept before the memo starts over.
    const CAPACITY: usize = 4096;
    /// Longer texts are not kept: they rarely repeat, and the vote settles most.
    const MAX_KEY_BYTES: usize = 160;

    fn detect(&mut self, text: &str, model: &LatinModel) -> Guess {
        if let Some(g) = self.map.get(text) {
            return *g;
        }
        let guess = model.detect(text, &mut self.latin);
        if text.len() <= Self::MAX_KEY_BYTES {
            if self.map.len() >= Self::CAPACITY {
                self.map.clear();
            }
            self.map.insert(text.into(), guess);
        }
        guess
    }
}

/// The stop words of every supported language, one bit per language, and
/// `whatlang`'s Latin-script model.
#[derive(Debug)]
pub(crate) struct Votes {
    map: FxMap<Box<str>, u8>,
    latin: LatinModel,
}

impl Votes {
    /// Builds the vote table; `stopwords[k]` are the words of `SUPPORTED[k]`
    /// (lowercase; Spanish also without accents). `latin` answers for
    /// `whatlang` on Latin-script text.
    pub fn new(stopwords: [&[Box<str>]; 3], latin: LatinModel) -> Votes {
        let mut map: FxMap<Box<str>, u8> = FxMap::default();
        for (k, words) in stopwords.iter().enumerate() {
            for w in words.iter() {
                *map.entry(w.clone()).or_default() |= 1 << k;
                let mut folded = String::new();
                super::lexicon::fold(w, &mut folded);
                *map.entry(folded.into()).or_default() |= 1 << k;
            }
        }
        for w in UNIVERSAL {
            *map.entry((*w).into()).or_default() |= UNIVERSAL_BIT;
        }
        Votes { map, latin }
    }

    /// Detects the language of a tokenized message. `in_lexicon(k, word)`
    /// tells whether `SUPPORTED[k]`'s sentiment lexicon has the word (a weaker
    /// vote, used only when the stop words and `whatlang` leave it open).
    /// `memo` remembers `whatlang`'s answers (this thread's).
    pub fn detect(
        &self,
        tokens: &Tokens,
        memo: &mut WhatlangMemo,
        in_lexicon: impl Fn(usize, &str) -> bool,
    ) -> Detected {
        let mut votes = [0u32; 3];
        let mut words = 0u32;
        for i in 0..tokens.len() {
            if !tokens.toks[i].alpha {
                continue;
            }
            let bits = self.map.get(tokens.word(i)).copied().unwrap_or(0);
            if bits & UNIVERSAL_BIT != 0 {
                continue;
            }
            words += 1;
            for (k, v) in votes.iter_mut().enumerate() {
                if bits & (1 << k) != 0 {
                    *v += 1;
                }
            }
        }
        if words == 0 {
            return Detected::LanguageFree;
        }
        let (best, best_votes) = votes
            .iter()
            .copied()
            .enumerate()
            .max_by_key(|&(k, v)| (v, std::cmp::Reverse(k)))
            .expect("three languages");
        let second = votes
            .iter()
            .enumerate()
            .filter(|&(k, _)| k != best)
            .map(|(_, &v)| v)
            .max()
            .unwrap_or(0);
        if best_votes >= 2 && second == 0 && best_votes * 4 >= words {
            return Detected::Supported(best);
        }
        let supported = |lang: whatlang::Lang| SUPPORTED.iter().position(|c| *c == iso639_1(lang));
        let guess = memo
            .detect(&tokens.lower, &self.latin)
            .map(|(lang, confidence)| (supported(lang), lang, confidence));
        if let Some((k, lang, confidence)) = guess
            && confidence > 0.9
        {
            // whatlang's own "reliable" threshold.
            return match k {
                Some(k) => Detected::Supported(k),
                None if best_votes >= 3 && best_votes >= 3 * second && best_votes * 3 >= words => {
                    Detected::Supported(best)
                }
                None => Detected::Unsupported(iso639_1(lang)),
            };
        }
        // whatlang is unsure: the stop words (two points each) and the
        // sentiment words (one point each: "Lovely cake, friendly baristas"
        // has no stop word) vote. A cognate ("excellent" in French) can win
        // such a vote; scoring a message with a lexicon whose word means the
        // same is a smaller harm than leaving a Spanish or German message
        // unscored because it is short.
        let mut total = [0u32; 3];
        for (k, t) in total.iter_mut().enumerate() {
            *t = 2 * votes[k];
        }
        for i in 0..tokens.len() {
            if tokens.toks[i].alpha
                && self
                    .map
                    .get(tokens.word(i))
                    .is_none_or(|b| b & UNIVERSAL_BIT == 0)
            {
                for (k, t) in total.iter_mut().enumerate() {
                    *t += u32::from(in_lexicon(k, tokens.word(i)));
                }
            }
        }
        let top = (0..3)
            .max_by_key(|&k| (total[k], std::cmp::Reverse(k)))
            .expect("three");
        let tied: Vec<usize> = (0..3).filter(|&k| total[k] == total[top]).collect();
        if total[top] >= 1 && tied.len() == 1 {
            return Detected::Supported(top);
        }
        match guess {
            Some((Some(k), _, _)) if total[top] >= 1 && tied.contains(&k) => Detected::Supported(k),
            Some((Some(k), _, confidence)) if confidence >= 0.5 => Detected::Supported(k),
            Some((None, lang, confidence)) if confidence >= 0.5 => {
                Detected::Unsupported(iso639_1(lang))
            }
            _ => Detected::Undetected,
        }
    }
}

/// ISO 639-1 code of a `whatlang` language (`whatlang` uses ISO 639-3).
pub(crate) fn iso639_1(lang: whatlang::Lang) -> &'static str {
    use whatlang::Lang::*;
    match lang {
        Epo => "eo",
        Eng => "en",
        Rus => "ru",
        Cmn => "zh",
        Spa => "es",
        Por => "pt",
        Ita => "it",
        Ben => "bn",
        Fra => "fr",
        Deu => "de",
        Ukr => "uk",
        Kat => "ka",
        Ara => "ar",
        Hin => "hi",
        Jpn => "ja",
        Heb => "he",
        Yid => "yi",
        Pol => "pl",
        Amh => "am",
        Jav => "jv",
        Kor => "ko",
        Nob => "nb",
        Dan => "da",
        Swe => "sv",
        Fin => "fi",
        Tur => "tr",
        Nld => "nl",
        Hun => "hu",
        Ces => "cs",
        Ell => "el",
        Bul => "bg",
        Bel => "be",
        Mar => "mr",
        Kan => "kn",
        Ron => "ro",
        Slv => "sl",
        Hrv => "hr",
        Srp => "sr",
        Mkd => "mk",
        Lit => "lt",
        Lav => "lv",
        Est => "et",
        Tam => "ta",
        Vie => "vi",
        Urd => "ur",
        Tha => "th",
        Guj => "gu",
        Uzb => "uz",
        Pan => "pa",
        Aze => "az",
        Ind => "id",
        Tel => "te",
        Pes => "fa",
        Mal => "ml",
        Ori => "or",
        Mya => "my",
        Nep => "ne",
        Sin => "si",
        Khm => "km",
        Tuk => "tk",
        Aka => "ak",
        Zul => "zu",
        Sna => "sn",
        Afr => "af",
        Lat => "la",
        Slk => "sk",
        Cat => "ca",
        Tgl => "tl",
        Hye => "hy",
        Cym => "cy",
    }
}
