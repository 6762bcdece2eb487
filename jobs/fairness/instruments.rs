//! Auditing the measuring instrument itself: does the sentiment scorer
//! read one group's words as more negative for the same stars, does it
//! leave one group's messages unscored, and does it score template
//! sentences differently when only a group-associated name or word
//! changes (a counterfactual probe in the style of the Equity Evaluation
//! Corpus, Kiritchenko & Mohammad 2018)?
//!
//! The scorer is the voice job's (`crate::voice::score`); this module only
//! reads what it produced: `marts/feedback_scored` for the first two, and
//! the probe's per-word gaps ([`ProbeGap`]) for the third.

use std::collections::HashMap;
use std::hash::Hash;

use super::findings::Finding;
use super::table::{Comparison, Direction, NO_VALUE, Outcome, Stat};
use super::verdict::{Thresholds, Verdict, language_name, sentence};

/// The outcomes of the sentiment instrument for messages with a rating:
/// `unscored` (rate over all messages) and `sentiment_at_same_rating` (the
/// message's sentiment minus the mean sentiment of every scored message
/// with the same source, rating scale and rating — a gap of 0 means the
/// scorer reads the group like everyone else who gave the same rating).
///
/// `scored[r]`: 0/1 or [`NO_VALUE`]; `sentiment[r]` NaN when unscored;
/// `stratum[r]`: the (source, scale, rating) key, `None` without a rating.
pub fn sentiment_outcomes<K: Hash + Eq>(
    scored: &[u8],
    sentiment: &[f64],
    stratum: &[Option<K>],
) -> Vec<Outcome> {
    let mut sums: HashMap<&K, (f64, u64), foldhash::fast::RandomState> = HashMap::default();
    for ((s, v), k) in scored.iter().zip(sentiment).zip(stratum) {
        if let (1, Some(k)) = (*s, k)
            && v.is_finite()
        {
            let e = sums.entry(k).or_insert((0.0, 0));
            e.0 += v;
            e.1 += 1;
        }
    }
    let residual: Vec<f64> = scored
        .iter()
        .zip(sentiment)
        .zip(stratum)
        .map(|((s, v), k)| match (*s, k) {
            (1, Some(k)) if v.is_finite() => {
                let (sum, n) = sums[k];
                v - sum / n as f64
            }
            _ => f64::NAN,
        })
        .collect();
    vec![
        Outcome::binary(
            "unscored",
            scored
                .iter()
                .map(|&s| match s {
                    NO_VALUE => NO_VALUE,
                    s => 1 - s,
                })
                .collect(),
            Direction::HigherIsWorse,
            "have their messages left unscored (no sentiment lexicon for them)",
        ),
        Outcome::continuous(
            "sentiment_at_same_rating",
            residual,
            vec![Stat::Mean],
            Comparison::Difference,
            Direction::HigherIsBetter,
            "sentiment of their messages against others giving the same rating (−1 to 1)",
            "",
        ),
    ]
}

/// One word (or name) of the counterfactual probe: the scorer's mean score
/// over template sentences carrying it, against the same templates with
/// the template's reference word. The integrator maps the voice scorer's
/// `counterfactual_probe(&Scorer) -> Vec<ProbeGap>` onto this.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeGap {
    /// Language of the templates (`en`, `es`, `de`).
    pub language: String,
    /// What kind of word differs (`name`, `age`, …).
    pub kind: String,
    /// The group-associated word or name.
    pub word: String,
    /// The template's reference word.
    pub reference: String,
    /// Templates scored.
    pub templates: u64,
    /// Mean score of the templates with `word`.
    pub mean_score: f64,
    /// `mean_score` minus the mean score with `reference`.
    pub gap: f64,
}

/// Findings of the probe. The scorer is deterministic, so a gap is not a
/// sample estimate but the instrument's behaviour: it is a `concern` when
/// at least `gap_tolerance` in size, `ok` otherwise, without a test.
pub fn probe_findings(gaps: &[ProbeGap], t: &Thresholds) -> Vec<Finding> {
    let mut out: Vec<Finding> = gaps
        .iter()
        .map(|g| {
            let mut f = Finding::new(
                "counterfactual_probe",
                &format!("{}_{}", g.kind, g.language),
                "sentiment",
                "mean_score_gap",
            );
            f.group_name = Some(g.word.clone());
            f.reference_group = Some(g.reference.clone());
            f.value = Some(g.mean_score);
            f.reference_value = Some(g.mean_score - g.gap);
            f.difference = Some(g.gap);
            f.n = Some(g.templates);
            let large = g.gap.abs() >= t.gap_tolerance;
            f.verdict = Some(if large { Verdict::Concern } else { Verdict::Ok });
            f.explanation = sentence(&format!(
                "{} template sentences that differ only in saying “{}” instead of “{}” score {:+.2} on average{}",
                language_name(&g.language),
                g.word,
                g.reference,
                g.gap,
                if large {
                    format!(
                        ": the scorer itself treats the words differently, beyond the tolerated {}.",
                        t.gap_tolerance
                    )
                } else {
                    format!(", within the tolerated {}.", t.gap_tolerance)
                }
            ));
            f
        })
        .collect();
    out.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fairness::table::OutcomeValues;

    #[test]
    fn residuals_compare_within_the_same_rating() {
        // Two strata; the residual removes each stratum's mean.
        let scored = [1, 1, 1, 1, 0, NO_VALUE];
        let sentiment = [0.8, 0.4, -0.5, -0.1, f64::NAN, f64::NAN];
        let k = |s: &str| Some(s.to_string());
        let stratum = [
            k("survey/nps/10"),
            k("survey/nps/10"),
            k("review/5/1"),
            k("review/5/1"),
            k("review/5/1"),
            None,
        ];
        let outs = sentiment_outcomes(&scored, &sentiment, &stratum);
        let OutcomeValues::Binary(unscored) = &outs[0].values else {
            panic!("binary")
        };
        assert_eq!(unscored, &vec![0, 0, 0, 0, 1, NO_VALUE]);
        let OutcomeValues::Continuous(r) = &outs[1].values else {
            panic!("continuous")
        };
        let want = [0.2, -0.2, -0.2, 0.2];
        for (got, want) in r.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        assert!(r[4].is_nan() && r[5].is_nan());
    }

    #[test]
    fn probe_gaps_become_verdicts() {
        let g = |word: &str, gap: f64| ProbeGap {
            language: "en".into(),
            kind: "age".into(),
            word: word.into(),
            reference: "my friend".into(),
            templates: 40,
            mean_score: 0.3 + gap,
            gap,
        };
        let f = probe_findings(
            &[g("my grandmother", -0.08), g("my student", 0.01)],
            &Thresholds::default(),
        );
        assert_eq!(f[0].group_name.as_deref(), Some("my grandmother"));
        assert_eq!(f[0].verdict, Some(Verdict::Concern));
        assert_eq!(f[1].verdict, Some(Verdict::Ok));
        assert!(
            f[0].explanation.starts_with("English template sentences"),
            "{}",
            f[0].explanation
        );
        assert!(f[0].explanation.contains("-0.08"));
    }
}
