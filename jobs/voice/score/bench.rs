//! Speed benchmark (an ignored test; the library has no bench target).

use super::*;

/// Scores 200,000 messages (a mix of the evaluation set's languages and
/// lengths) on one thread and prints messages per second. Run with
/// `cargo test --release --lib voice::score::bench -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: run explicitly in release mode"]
fn messages_per_second() {
    let s = Scorer::new();
    let texts: Vec<&str> = super::eval::load().into_iter().map(|m| m.text).collect();
    let n = 200_000;
    // Warm up the per-thread buffers.
    for t in &texts {
        std::hint::black_box(s.score(t));
    }
    let started = std::time::Instant::now();
    let mut positive = 0u64;
    for i in 0..n {
        let got = s.score(std::hint::black_box(texts[i % texts.len()]));
        positive += u64::from(got.label == Label::Positive);
    }
    let secs = started.elapsed().as_secs_f64();
    let bytes: usize = (0..n).map(|i| texts[i % texts.len()].len()).sum();
    println!(
        "scored {n} messages ({:.1} MB, mean {:.0} bytes) in {secs:.3}s: {:.0} messages/s on one core ({positive} positive)",
        bytes as f64 / 1e6,
        bytes as f64 / n as f64,
        n as f64 / secs
    );
}
