//! PROVISIONAL sentiment scorer: a placeholder with the interface of the real
//! scorer (branch `voice-scorer`), so the voice job compiles and runs before
//! that branch lands. The integrator replaces this whole folder with the real
//! one. Nothing here is meant to be accurate: a handful of words per
//! language, `whatlang` for the language, and no rules.

/// Sentiment label of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
}

/// Emotion scores of a message, each in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Emotions {
    pub frustration: f64,
    pub confusion: f64,
    pub anxiety: f64,
    pub anger: f64,
    pub joy: f64,
    pub gratitude: f64,
}

/// The score of one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// ISO 639-1 code, or `None` when undetectable.
    pub language: Option<&'static str>,
    pub scored: bool,
    /// Why the message was not scored.
    pub unscored_reason: Option<&'static str>,
    /// In [-1, 1]; 0.0 when not scored.
    pub compound: f64,
    pub label: Label,
    pub emotions: Emotions,
}

/// The provisional scorer (stateless, so `&Scorer` is `Sync`).
#[derive(Debug, Default)]
pub struct Scorer;

const POSITIVE: &[&str] = &[
    "good",
    "great",
    "love",
    "lovely",
    "friendly",
    "fresh",
    "best",
    "amazing",
    "delicious",
    "perfect",
    "thanks",
    "bueno",
    "buenísimo",
    "rico",
    "gracias",
    "perfecto",
    "gut",
    "lecker",
    "danke",
    "super",
    "freundlich",
];
const NEGATIVE: &[&str] = &[
    "bad",
    "cold",
    "rude",
    "stale",
    "wrong",
    "never",
    "disappointed",
    "broken",
    "waited",
    "late",
    "dirty",
    "malo",
    "frío",
    "tarde",
    "mal",
    "kalt",
    "schlecht",
    "spät",
    "enttäuscht",
];

impl Scorer {
    /// A new scorer.
    pub fn new() -> Scorer {
        Scorer
    }

    /// Scores one message.
    pub fn score(&self, text: &str) -> Scored {
        let lower = text.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            return unscored(None, "no_text");
        }
        let language = match whatlang::detect(text) {
            Some(info) => match info.lang() {
                whatlang::Lang::Eng => Some("en"),
                whatlang::Lang::Spa => Some("es"),
                whatlang::Lang::Deu => Some("de"),
                _ => return unscored(Some("xx"), "unsupported_language"),
            },
            None => return unscored(None, "undetected_language"),
        };
        let pos = words.iter().filter(|w| POSITIVE.contains(w)).count() as f64;
        let neg = words.iter().filter(|w| NEGATIVE.contains(w)).count() as f64;
        let compound = ((pos - neg) / (pos + neg + 1.0)).clamp(-1.0, 1.0);
        let label = if compound >= 0.05 {
            Label::Positive
        } else if compound <= -0.05 {
            Label::Negative
        } else {
            Label::Neutral
        };
        Scored {
            language,
            scored: true,
            unscored_reason: None,
            compound,
            label,
            emotions: Emotions {
                frustration: (neg / 2.0).min(1.0),
                joy: (pos / 2.0).min(1.0),
                ..Emotions::default()
            },
        }
    }
}

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
