//! Quality measured on the hand-written evaluation set
//! (`tests/fixtures/voice/eval.tsv`, see the README beside it): accuracy and
//! macro-F1 of the three labels per language, per split and overall, and
//! precision/recall of the six emotions. The test fails below the level the
//! scorer reached when it was written (minus a small margin), so a lexicon
//! change that hurts quality is caught.

use std::collections::BTreeMap;

use super::*;

const EVAL: &str = include_str!("../../../tests/fixtures/voice/eval.tsv");

/// One labelled message.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub id: &'static str,
    pub language: &'static str,
    pub split: &'static str,
    pub label: Label,
    pub emotions: Vec<usize>,
    pub tags: Vec<&'static str>,
    pub text: &'static str,
}

/// Parses the evaluation set.
pub(crate) fn load() -> Vec<Message> {
    let mut out = Vec::new();
    for line in EVAL
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let cols: Vec<&'static str> = line.split('\t').collect();
        let [id, language, split, label, emotions, tags, text] = cols.as_slice() else {
            panic!("eval.tsv: 7 columns expected in {line:?}");
        };
        let label = match *label {
            "positive" => Label::Positive,
            "neutral" => Label::Neutral,
            "negative" => Label::Negative,
            other => panic!("eval.tsv {id}: unknown label {other}"),
        };
        out.push(Message {
            id,
            language,
            split,
            label,
            emotions: emotions
                .split(',')
                .filter(|e| !e.is_empty())
                .map(|e| emotion_index(e).unwrap_or_else(|| panic!("{id}: unknown emotion {e}")))
                .collect(),
            tags: tags.split(',').collect(),
            text,
        });
    }
    out
}

/// Accuracy and macro-F1 over the three labels; a prediction of `Unscored` is
/// simply wrong.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LabelMetrics {
    pub n: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
}

pub(crate) fn label_metrics(pairs: &[(Label, Label)]) -> LabelMetrics {
    let n = pairs.len();
    let correct = pairs.iter().filter(|(t, p)| t == p).count();
    let f1s: Vec<f64> = [Label::Positive, Label::Neutral, Label::Negative]
        .iter()
        .map(|c| {
            let tp = pairs.iter().filter(|(t, p)| t == c && p == c).count() as f64;
            let fp = pairs.iter().filter(|(t, p)| t != c && p == c).count() as f64;
            let fn_ = pairs.iter().filter(|(t, p)| t == c && p != c).count() as f64;
            if tp == 0.0 {
                0.0
            } else {
                2.0 * tp / (2.0 * tp + fp + fn_)
            }
        })
        .collect();
    LabelMetrics {
        n,
        accuracy: if n == 0 {
            0.0
        } else {
            correct as f64 / n as f64
        },
        macro_f1: f1s.iter().sum::<f64>() / 3.0,
    }
}

/// Macro-F1 reference values computed by hand: on
/// true [P, P, N, Neg, Neg, Neg], predicted [P, N, N, Neg, Neg, P]:
/// positive tp=1 fp=1 fn=1 → F1 0.5; neutral tp=1 fp=1 fn=0 → 2/3;
/// negative tp=2 fp=0 fn=1 → 0.8; macro = (0.5 + 0.6667 + 0.8) / 3 = 0.65556
/// (the same as scikit-learn's `f1_score(average="macro")` on these lists).
#[test]
fn macro_f1_matches_a_hand_computed_value() {
    use Label::*;
    let pairs = [
        (Positive, Positive),
        (Positive, Neutral),
        (Neutral, Neutral),
        (Negative, Negative),
        (Negative, Negative),
        (Negative, Positive),
    ];
    let m = label_metrics(&pairs);
    assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
    assert!(
        (m.macro_f1 - (0.5 + 2.0 / 3.0 + 0.8) / 3.0).abs() < 1e-12,
        "{m:?}"
    );
}

#[test]
fn evaluation_set_is_large_and_balanced_enough() {
    let msgs = load();
    assert!(msgs.len() >= 300, "{} messages", msgs.len());
    let mut ids: Vec<&str> = msgs.iter().map(|m| m.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), msgs.len(), "ids are unique");
    for lang in SUPPORTED {
        let n = msgs.iter().filter(|m| m.language == lang).count();
        assert!(n >= 50, "{lang}: {n} messages");
    }
    for tag in [
        "negation",
        "but",
        "caps",
        "exclaim",
        "emoji",
        "sarcasm",
        "domain",
        "placeholder",
    ] {
        assert!(
            msgs.iter().filter(|m| m.tags.contains(&tag)).count() >= 5,
            "tag {tag}"
        );
    }
}

/// The headline figures. Run with `--nocapture` to see them.
#[test]
fn sentiment_and_emotion_quality_on_the_evaluation_set() {
    let scorer = Scorer::new();
    let msgs = load();
    let scored: Vec<(&Message, Scored)> = msgs.iter().map(|m| (m, scorer.score(m.text))).collect();

    let mut groups: BTreeMap<String, Vec<(Label, Label)>> = BTreeMap::new();
    for (m, s) in &scored {
        for key in [
            "all".to_string(),
            format!("lang={}", m.language),
            format!("split={}", m.split),
            format!("lang={} split={}", m.language, m.split),
        ] {
            groups.entry(key).or_default().push((m.label, s.label));
        }
        for tag in &m.tags {
            groups
                .entry(format!("tag={tag}"))
                .or_default()
                .push((m.label, s.label));
        }
    }
    println!(
        "{:<24} {:>4} {:>9} {:>9}",
        "group", "n", "accuracy", "macro-F1"
    );
    let mut metrics = BTreeMap::new();
    for (k, pairs) in &groups {
        let m = label_metrics(pairs);
        println!("{k:<24} {:>4} {:>9.3} {:>9.3}", m.n, m.accuracy, m.macro_f1);
        metrics.insert(k.clone(), m);
    }
    let unscored: Vec<&str> = scored
        .iter()
        .filter(|(_, s)| !s.scored)
        .map(|(m, _)| m.id)
        .collect();
    println!("unscored: {unscored:?}");
    for (m, s) in &scored {
        if m.label != s.label {
            println!(
                "miss {} {:?} → {:?} ({:+.3}): {}",
                m.id, m.label, s.label, s.compound, m.text
            );
        }
    }

    // Emotions: present when the score reaches EMOTION_PRESENT.
    let mut tp = [0usize; EMOTION_COUNT];
    let mut fp = [0usize; EMOTION_COUNT];
    let mut fn_ = [0usize; EMOTION_COUNT];
    for (m, s) in &scored {
        let e = s.emotions.as_array();
        for k in 0..EMOTION_COUNT {
            match (m.emotions.contains(&k), e[k] >= EMOTION_PRESENT) {
                (true, true) => tp[k] += 1,
                (false, true) => fp[k] += 1,
                (true, false) => fn_[k] += 1,
                (false, false) => {}
            }
        }
    }
    let f1 = |tp: usize, fp: usize, fn_: usize| {
        if tp == 0 {
            0.0
        } else {
            2.0 * tp as f64 / (2 * tp + fp + fn_) as f64
        }
    };
    println!(
        "{:<12} {:>4} {:>9} {:>7} {:>6}",
        "emotion", "true", "precision", "recall", "F1"
    );
    for k in 0..EMOTION_COUNT {
        let p = tp[k] as f64 / (tp[k] + fp[k]).max(1) as f64;
        let r = tp[k] as f64 / (tp[k] + fn_[k]).max(1) as f64;
        println!(
            "{:<12} {:>4} {:>9.3} {:>7.3} {:>6.3}",
            EMOTION_NAMES[k],
            tp[k] + fn_[k],
            p,
            r,
            f1(tp[k], fp[k], fn_[k])
        );
    }
    let micro = f1(tp.iter().sum(), fp.iter().sum(), fn_.iter().sum());
    println!("emotion micro-F1 {micro:.3}");

    // Floors: the level reached, minus a margin of about 0.02.
    // Measured when written: all 0.827 / 0.815, en 0.822 / 0.805,
    // es 0.800 / 0.798, de 0.871 / 0.860, held-out test split 0.832 / 0.818.
    let floors: &[(&str, f64, f64)] = &[
        ("all", 0.80, 0.79),
        ("lang=en", 0.80, 0.78),
        ("lang=es", 0.77, 0.77),
        ("lang=de", 0.85, 0.84),
        ("split=test", 0.81, 0.79),
    ];
    for (group, accuracy, macro_f1) in floors {
        let m = metrics[*group];
        assert!(
            m.accuracy >= *accuracy,
            "{group}: accuracy {:.3} < {accuracy}",
            m.accuracy
        );
        assert!(
            m.macro_f1 >= *macro_f1,
            "{group}: macro-F1 {:.3} < {macro_f1}",
            m.macro_f1
        );
    }
    // Every message is in a supported language; 9 short ones ("Yum!",
    // "Pagué con tarjeta.") were left unscored when this was written, which
    // counts against accuracy above. More would mean detection got worse.
    assert!(
        unscored.len() <= 9,
        "{} unscored: {unscored:?}",
        unscored.len()
    );
    // Measured when written: 0.685.
    assert!(micro >= 0.66, "emotion micro-F1 {micro:.3}");
}
