//! The safety net for speed work on the scorer: every output of
//! [`Scorer::score`] and [`Scorer::score_as`] over a fixed, varied workload
//! must stay bit for bit what it was when the fingerprint below was recorded
//! (before the scorer was optimized for issue 4's 100,000 messages/s target).
//!
//! An optimization may change how the scorer computes, never what it returns:
//! this test fails on any change of label, language, reason, or a single bit
//! of a compound or emotion score. A deliberate change of the rules or the
//! lexicons changes the fingerprint too: then record the new one (the failure
//! message prints it) in the same commit, and say why in its message.
//!
//! The evaluation set's per-message quality is checked separately by
//! `voice::score::eval`; this test checks identity, not quality.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::*;

/// Number of outputs hashed (a changed workload shows here first).
const OUTPUTS: usize = 30_772;

/// Sentences in languages without a lexicon (and neighbours of the supported
/// ones), so the `whatlang` and "unsupported" paths are part of the workload.
const FOREIGN: &[&str] = &[
    "Le croissant était délicieux et le personnel très aimable.",
    "J'ai attendu trop longtemps, c'est inacceptable.",
    "O café estava frio e o atendimento foi péssimo.",
    "Adorei o bolo, voltarei com certeza!",
    "Il cornetto era buonissimo, grazie mille!",
    "Servizio lento e prezzi troppo alti.",
    "De koffie was heerlijk en de bediening vriendelijk.",
    "Kaffen var kall och personalen otrevlig.",
    "Кофе был холодный, обслуживание ужасное.",
    "コーヒーはとても美味しかったです。",
    "Kahve çok güzeldi, teşekkürler.",
    "merci",
    "Yum!",
    "danke",
    "gracias!!",
    "ok 👍",
    ":) :)",
    "😡😡😡",
    "[EMAIL] [PHONE]",
    "   ",
    "",
    "3.50 € 12:30",
];

const EMOJI: &[&str] = &["😀", "😡", "👍🏽", "💔", "🙏", "❤️", "😢", "🤔"];
const JOINERS: &[&str] = &[" but ", ". ", ", ", " and ", "!! ", " pero ", " aber ", " "];
const PUNCT: &[&str] = &["", ".", "!", "!!!", "?", "??", "...", " :)", " :(", "?!"];

/// The workload: the evaluation set as written, then deterministic variations
/// of it (shouting, emphasis, emoji, placeholders, truncation, two messages
/// joined), foreign sentences, and random word salads from the evaluation
/// vocabulary that exercise the language vote and `whatlang`.
pub(crate) fn workload() -> Vec<String> {
    let eval: Vec<&str> = super::eval::load().into_iter().map(|m| m.text).collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
    let mut out: Vec<String> = eval.iter().map(|t| t.to_string()).collect();
    out.extend(FOREIGN.iter().map(|t| t.to_string()));
    for (k, t) in eval.iter().enumerate() {
        out.push(t.to_uppercase());
        out.push(format!("{t}{}", PUNCT[k % PUNCT.len()]));
        out.push(format!("{t} {}", EMOJI[k % EMOJI.len()]));
        out.push(format!("{}{t}", EMOJI[(k + 3) % EMOJI.len()]));
        out.push(t.replacen(' ', " [EMAIL] ", 1));
        let words: Vec<&str> = t.split_whitespace().collect();
        let keep = rng.random_range(1..=words.len().clamp(1, 4));
        out.push(words[..keep.min(words.len())].join(" "));
        let other = eval[rng.random_range(0..eval.len())];
        out.push(format!(
            "{t}{}{other}",
            JOINERS[rng.random_range(0..JOINERS.len())]
        ));
        let f = FOREIGN[rng.random_range(0..FOREIGN.len())];
        out.push(format!("{f} {t}"));
    }
    for (k, f) in FOREIGN.iter().enumerate() {
        for (p, punct) in PUNCT.iter().enumerate() {
            out.push(format!("{f}{punct} {}", EMOJI[(k + p) % EMOJI.len()]));
            out.push(format!("{}{punct}", f.to_uppercase()));
        }
    }
    let foreign: Vec<&str> = FOREIGN.iter().flat_map(|t| t.split_whitespace()).collect();
    let vocabulary: Vec<&str> = eval.iter().flat_map(|t| t.split_whitespace()).collect();
    for k in 0..4000 {
        // One salad in four mostly foreign: the unsupported and undetected paths.
        let vocabulary = if k % 4 == 0 { &foreign } else { &vocabulary };
        let n = rng.random_range(1..=12);
        let mut s = String::new();
        for w in 0..n {
            if w > 0 {
                s.push(' ');
            }
            let word = vocabulary[rng.random_range(0..vocabulary.len())];
            match rng.random_range(0..10) {
                0 => s.push_str(&word.to_uppercase()),
                1 => s.push_str(EMOJI[rng.random_range(0..EMOJI.len())]),
                _ => s.push_str(word),
            }
        }
        s.push_str(PUNCT[rng.random_range(0..PUNCT.len())]);
        out.push(s);
    }
    out
}

/// FNV-1a, 64 bits: tiny, and stable across Rust versions (std's hashers are not promised to be).
fn fnv1a(hash: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *hash ^= u64::from(*b);
        *hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
}

#[test]
fn optimized_scorer_returns_exactly_the_recorded_outputs() {
    let scorer = Scorer::new();
    let texts = workload();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut outputs = 0usize;
    let mut dump = String::new();
    let mut labels = std::collections::BTreeMap::<Label, usize>::new();
    let mut reasons = std::collections::BTreeMap::<&str, usize>::new();
    // A second pass over the same texts meets this thread's language memo
    // warm: the answers must not depend on it.
    let first_pass: Vec<Scored> = texts.iter().map(|t| scorer.score(t)).collect();
    for (i, t) in texts.iter().enumerate() {
        let got = scorer.score(t);
        assert_eq!(format!("{got:?}"), format!("{:?}", first_pass[i]), "{t:?}");
        *labels.entry(got.label).or_default() += 1;
        let path = match (got.unscored_reason, got.language) {
            (Some(r), _) => r,
            (None, None) => "language_free",
            (None, Some(_)) => "scored",
        };
        *reasons.entry(path).or_default() += 1;
        let line = format!("{i}\tscore\t{got:?}\n");
        let as_langs = SUPPORTED.map(|code| scorer.score_as(t, code));
        fnv1a(&mut hash, line.as_bytes());
        dump.push_str(&line);
        outputs += 1;
        for (code, got) in SUPPORTED.iter().zip(as_langs) {
            let line = format!("{i}\t{code}\t{got:?}\n");
            fnv1a(&mut hash, line.as_bytes());
            dump.push_str(&line);
            outputs += 1;
        }
    }
    // To find which message changed: run this test with ATTUNE_SCORE_DUMP set
    // before and after the change, and diff the two files.
    if let Ok(path) = std::env::var("ATTUNE_SCORE_DUMP") {
        std::fs::write(&path, &dump).expect("write the dump");
    }
    // Every path is part of the workload (otherwise the net has holes).
    for label in [
        Label::Positive,
        Label::Neutral,
        Label::Negative,
        Label::Unscored,
    ] {
        assert!(
            labels.get(&label).copied().unwrap_or(0) >= 100,
            "{labels:?}"
        );
    }
    for (path, min) in [
        ("scored", 1000),
        ("language_free", 20),
        (reason::UNSUPPORTED_LANGUAGE, 100),
        (reason::UNDETECTED_LANGUAGE, 100),
        (reason::NO_TEXT, 3),
    ] {
        assert!(
            reasons.get(path).copied().unwrap_or(0) >= min,
            "{reasons:?}"
        );
    }
    assert_eq!(outputs, OUTPUTS, "the workload changed");
    assert_eq!(
        hash, SCORER_FINGERPRINT,
        "the scorer's outputs changed (new fingerprint {hash:#018x}; labels {labels:?})"
    );
}
