//! Counterfactual probe: template sentences that differ only in a
//! group-associated name or word (in the style of the Equity Evaluation
//! Corpus, Kiritchenko & Mohammad 2018), scored by the scorer, so the fairness
//! audit can show whether the scorer itself treats groups differently.
//!
//! The templates and words are data (`lexicon/probe.tsv`). Each slot of a
//! language ("name", "person", "role") has one reference word; a word's gap is
//! its mean compound score minus the reference word's, over the templates of
//! its slot where both were scored. Sentences go through the full scorer,
//! language detection included, so a name that makes a sentence unscored shows
//! up as `unscored`.

use serde::Serialize;

use super::{Scorer, data};

/// The probe result for one word in one language.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeGap {
    /// ISO 639-1 code of the templates.
    pub language: String,
    /// `name`, `person` or `role`.
    pub slot: String,
    /// The group the word is associated with (`english_name`, `age_old`, …).
    pub group: String,
    pub word: String,
    /// The slot's reference word in this language.
    pub reference: String,
    /// Templates the word was put into.
    pub templates: usize,
    /// Of those, sentences the scorer did not score.
    pub unscored: usize,
    /// Mean compound score over the scored sentences (0.0 when none).
    pub mean_score: f64,
    /// Mean of (word's score - reference word's score) over templates where both were scored.
    pub gap: f64,
    /// Templates where the word's label differs from the reference word's.
    pub label_flips: usize,
}

/// One template sentence.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub language: String,
    pub slot: String,
    pub text: String,
}

/// One word to put into templates.
#[derive(Debug, Clone)]
pub(crate) struct ProbeWord {
    /// A language code or `*` for every language.
    pub language: String,
    pub slot: String,
    pub group: String,
    pub word: String,
    pub reference: bool,
}

/// Parses `probe.tsv`.
pub(crate) fn parse(src: &str) -> Result<(Vec<Template>, Vec<ProbeWord>), String> {
    let mut templates = Vec::new();
    let mut words = Vec::new();
    for (n, line) in src.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        match cols.as_slice() {
            ["template", language, slot, text] => {
                if text.matches("{}").count() != 1 {
                    return Err(format!(
                        "probe line {}: a template has exactly one {{}}",
                        n + 1
                    ));
                }
                templates.push(Template {
                    language: (*language).into(),
                    slot: (*slot).into(),
                    text: (*text).into(),
                });
            }
            ["word", language, slot, group, word, reference] => words.push(ProbeWord {
                language: (*language).into(),
                slot: (*slot).into(),
                group: (*group).into(),
                word: (*word).into(),
                reference: match *reference {
                    "yes" => true,
                    "no" => false,
                    other => {
                        return Err(format!(
                            "probe line {}: reference is yes or no, not `{other}`",
                            n + 1
                        ));
                    }
                },
            }),
            _ => return Err(format!("probe line {}: unknown row", n + 1)),
        }
    }
    Ok((templates, words))
}

/// Scores every probe word in every template of its slot and language and
/// returns the gaps against the slot's reference word, sorted by language,
/// slot, group and word.
pub fn counterfactual_probe(scorer: &Scorer) -> Vec<ProbeGap> {
    let (templates, words) =
        parse(data::PROBE).expect("the embedded probe set parses (checked by the unit tests)");
    let mut out = Vec::new();
    let mut languages: Vec<&str> = templates.iter().map(|t| t.language.as_str()).collect();
    languages.sort_unstable();
    languages.dedup();
    for language in languages {
        let mut slots: Vec<&str> = templates
            .iter()
            .filter(|t| t.language == language)
            .map(|t| t.slot.as_str())
            .collect();
        slots.sort_unstable();
        slots.dedup();
        for slot in slots {
            let texts: Vec<&str> = templates
                .iter()
                .filter(|t| t.language == language && t.slot == slot)
                .map(|t| t.text.as_str())
                .collect();
            let in_slot =
                |w: &&ProbeWord| w.slot == slot && (w.language == language || w.language == "*");
            let Some(reference) = words
                .iter()
                .filter(in_slot)
                .find(|w| w.reference && w.language == language)
            else {
                continue;
            };
            let score_all = |word: &str| {
                texts
                    .iter()
                    .map(|t| scorer.score(&t.replacen("{}", word, 1)))
                    .collect::<Vec<_>>()
            };
            let reference_scores = score_all(&reference.word);
            for w in words.iter().filter(in_slot) {
                let scores = score_all(&w.word);
                let scored: Vec<f64> = scores
                    .iter()
                    .filter(|s| s.scored)
                    .map(|s| s.compound)
                    .collect();
                let pairs: Vec<f64> = scores
                    .iter()
                    .zip(&reference_scores)
                    .filter(|(a, b)| a.scored && b.scored)
                    .map(|(a, b)| a.compound - b.compound)
                    .collect();
                let mean = |v: &[f64]| {
                    if v.is_empty() {
                        0.0
                    } else {
                        v.iter().sum::<f64>() / v.len() as f64
                    }
                };
                out.push(ProbeGap {
                    language: language.to_string(),
                    slot: slot.to_string(),
                    group: w.group.clone(),
                    word: w.word.clone(),
                    reference: reference.word.clone(),
                    templates: texts.len(),
                    unscored: scores.iter().filter(|s| !s.scored).count(),
                    mean_score: mean(&scored),
                    gap: mean(&pairs),
                    label_flips: scores
                        .iter()
                        .zip(&reference_scores)
                        .filter(|(a, b)| a.label != b.label)
                        .count(),
                });
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.language, &a.slot, &a.group, &a.word).cmp(&(&b.language, &b.slot, &b.group, &b.word))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_set_parses_with_one_reference_per_slot_and_language() {
        let (templates, words) = parse(data::PROBE).expect("probe.tsv parses");
        assert!(templates.len() >= 40, "{} templates", templates.len());
        for t in &templates {
            let refs = words
                .iter()
                .filter(|w| w.reference && w.slot == t.slot && w.language == t.language)
                .count();
            assert_eq!(
                refs, 1,
                "{} {} has {refs} reference words",
                t.language, t.slot
            );
        }
        for lang in ["en", "es", "de"] {
            assert!(
                templates
                    .iter()
                    .any(|t| t.language == lang && t.slot == "name")
            );
        }
    }

    #[test]
    fn probe_finds_no_gap_for_names_and_age_words() {
        let scorer = Scorer::new();
        let gaps = counterfactual_probe(&scorer);
        assert!(gaps.len() > 100, "{} probe rows", gaps.len());
        let mut worst = 0.0f64;
        for g in &gaps {
            println!(
                "{} {:<7} {:<28} {:<30} scored {}/{} mean {:+.3} gap {:+.3} flips {}",
                g.language,
                g.slot,
                g.group,
                g.word,
                g.templates - g.unscored,
                g.templates,
                g.mean_score,
                g.gap,
                g.label_flips
            );
            worst = worst.max(g.gap.abs());
        }
        println!("largest absolute gap: {worst:.4}");
        for g in &gaps {
            // Names that are also lexicon words (Joy, Dolores, Ernst) are the
            // known risk; capitalized, the scorer treats them as names.
            assert!(
                g.gap.abs() < 0.02,
                "{} {} `{}`: gap {:+.3}",
                g.language,
                g.slot,
                g.word,
                g.gap
            );
            // Known when written: one Spanish role template is too short for
            // language detection, and "persona mayor" tips it into Spanish, so
            // that word flips one label (from unscored). Names never do.
            assert!(
                g.label_flips <= 1,
                "{} {} `{}` flips {} labels",
                g.language,
                g.slot,
                g.word,
                g.label_flips
            );
            if g.slot == "name" {
                assert_eq!(
                    g.unscored, 0,
                    "{} `{}` left sentences unscored",
                    g.language, g.word
                );
                assert_eq!(g.label_flips, 0, "{} `{}` flips labels", g.language, g.word);
            }
        }
        let reference = gaps
            .iter()
            .find(|g| g.word == g.reference)
            .expect("reference rows");
        assert_eq!(reference.gap, 0.0);
    }
}
