//! Speed of the voice scorer (issue 4's target: 100,000 messages per second
//! on one core, release build).
//!
//! `cargo bench --bench scorer` scores the evaluation set's messages
//! (`tests/fixtures/voice/eval.tsv`: English, Spanish, German, short and long,
//! emoji, sarcasm; 37 bytes on average) on one thread, two ways:
//!
//! - *repeated*: the 359 messages over and over, as real feedback repeats its
//!   short messages ("Thanks!", "ok"); the scorer's per-thread language memo
//!   answers a repeated text without running `whatlang` again;
//! - *distinct*: the same mix with a running number appended to every message,
//!   so no text repeats and every message that needs `whatlang`'s answer
//!   computes it (a number is not a word: the stop-word vote, and so which
//!   messages need `whatlang`, stays as it was).
//!
//! `ATTUNE_BENCH_MESSAGES=n` sets the number of messages per workload
//! (default 200,000); `ATTUNE_BENCH_SMOKE=1` is a smoke size (2,000) for CI.

use std::hint::black_box;
use std::time::Instant;

use attune::voice::score::{Label, Scorer};

const EVAL: &str = include_str!("../fixtures/voice/eval.tsv");

/// The text column (the last of seven) of the evaluation set.
fn eval_texts() -> Vec<&'static str> {
    EVAL.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            l.rsplit('\t')
                .next()
                .expect("split always yields one piece")
        })
        .collect()
}

/// Scores `texts` once on this thread; returns (seconds, positives).
fn run<S: AsRef<str>>(scorer: &Scorer, texts: &[S]) -> (f64, u64) {
    let started = Instant::now();
    let mut positive = 0u64;
    for t in texts {
        let got = scorer.score(black_box(t.as_ref()));
        positive += u64::from(got.label == Label::Positive);
    }
    (started.elapsed().as_secs_f64(), positive)
}

fn main() {
    let smoke = std::env::var("ATTUNE_BENCH_SMOKE").is_ok_and(|v| v == "1");
    let n: usize = std::env::var("ATTUNE_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke { 2_000 } else { 200_000 });
    let texts = eval_texts();
    assert!(texts.len() > 300, "the evaluation set has {}", texts.len());
    let scorer = Scorer::new();
    let bytes = (0..n).map(|i| texts[i % texts.len()].len()).sum::<usize>();
    println!(
        "voice scorer, one thread: {n} messages per workload, {} distinct texts, mean {:.0} bytes",
        texts.len(),
        bytes as f64 / n as f64
    );

    // Warm up the per-thread buffers (and, for `repeated`, the memo).
    run(&scorer, &texts);
    let repeated: Vec<&str> = (0..n).map(|i| texts[i % texts.len()]).collect();
    let (secs, positive) = run(&scorer, &repeated);
    println!(
        "repeated: {:>9.0} messages/s ({secs:.3} s, {positive} positive)",
        n as f64 / secs
    );

    let distinct: Vec<String> = (0..n)
        .map(|i| format!("{} {}", texts[i % texts.len()], 1_000_000 + i))
        .collect();
    let (secs, positive) = run(&scorer, &distinct);
    println!(
        "distinct: {:>9.0} messages/s ({secs:.3} s, {positive} positive)",
        n as f64 / secs
    );
}
