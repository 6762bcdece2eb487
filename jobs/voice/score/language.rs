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
//! 3. Otherwise `whatlang` decides when it is reliable (an unsupported language
//!    then gives `unsupported_language`), unless three or more stop words of one
//!    supported language, three times more than any other, contradict it
//!    (`whatlang` is unreliable on short texts).
//! 4. An unreliable `whatlang` result defers to a vote with a single winner,
//!    then breaks a tie in the vote, else the language is `undetected_language`.
//!    Very short texts ("no", "merci") end up here: guessing would either score
//!    a foreign message as neutral or score it with the wrong lexicon.

use super::lexicon::FxMap;
use super::tokenize::Tokens;

/// The languages attune has lexicons for, in the scorer's order.
pub const SUPPORTED: [&str; 3] = ["en", "es", "de"];

/// Words every supported language uses alike: a message made only of these
/// (and emoji) is scored language-free.
const UNIVERSAL: &[&str] = &[
    "ok", "okay", "wow", "lol", "xd", "haha", "hahaha", "jaja", "jajaja", "hmm", "mmm", "top",
    "super", "bravo", "yay",
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

/// The stop words of every supported language, one bit per language.
#[derive(Debug, Default)]
pub(crate) struct Votes {
    map: FxMap<Box<str>, u8>,
}

impl Votes {
    /// Builds the vote table; `stopwords[k]` are the words of `SUPPORTED[k]`
    /// (lowercase; Spanish also without accents).
    pub fn new(stopwords: [&[Box<str>]; 3]) -> Votes {
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
        Votes { map }
    }

    /// Detects the language of a tokenized message.
    pub fn detect(&self, tokens: &Tokens) -> Detected {
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
        let info = whatlang::detect(&tokens.lower);
        let supported = |lang: whatlang::Lang| SUPPORTED.iter().position(|c| *c == iso639_1(lang));
        match info {
            Some(info) if info.is_reliable() => match supported(info.lang()) {
                Some(k) => Detected::Supported(k),
                None if best_votes >= 3 && best_votes >= 3 * second => Detected::Supported(best),
                None => Detected::Unsupported(iso639_1(info.lang())),
            },
            _ => {
                if best_votes >= 1 && best_votes > second {
                    return Detected::Supported(best);
                }
                if best_votes >= 1
                    && let Some(k) = info.and_then(|i| supported(i.lang()))
                    && votes[k] == best_votes
                {
                    return Detected::Supported(k);
                }
                Detected::Undetected
            }
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
