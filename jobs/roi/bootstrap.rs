//! The stratified percentile bootstrap every ROI interval comes from.
//!
//! A unit is a customer. Each unit carries a few additive *cells*, each a
//! (sum, count) pair: "retained" is (1 or 0, 1), "NPS answers after the
//! start" is (Σ ±100, number of answers), "CLTV" is (value, 1) or (0, 0) when
//! the customer has none. Every statistic the job reports is a function of
//! cell totals per stratum (a mean is sum / count), so one resample of
//! customers gives every metric of an initiative at once: the intervals of
//! retention, NPS, CLTV and ROI all come from the *same* resamples, which
//! keeps them coherent with each other.
//!
//! Resampling is stratified: each stratum (a treatment arm, an exposure
//! group) is resampled with replacement to its own size, as the design fixed
//! those sizes. Whole customers are resampled, not answers, because answers
//! of one customer are correlated (a cluster bootstrap).

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::customer_index::prefetch;

/// Units (customers) in strata, each with `cells` (sum, count) pairs.
#[derive(Debug, Clone)]
pub struct Units {
    cells: usize,
    strata: Vec<Stratum>,
}

#[derive(Debug, Clone, Default)]
struct Stratum {
    /// Row-major (sum, count) pairs: unit i's cell c at `i * cells + c`.
    /// A unit's pairs side by side are one or two cache lines, which the
    /// resampling loop fetches at random.
    pairs: Vec<[f64; 2]>,
}

impl Stratum {
    fn len(&self, cells: usize) -> usize {
        self.pairs.len() / cells.max(1)
    }

    /// Asks for the cache lines of a unit's cells.
    fn prefetch(&self, unit: usize, cells: usize) {
        if cells > 0 {
            prefetch(&self.pairs[unit * cells]);
            prefetch(&self.pairs[unit * cells + cells - 1]);
        }
    }
}

/// Draws between a unit's prefetch and its sum.
const AHEAD: usize = 16;

/// Cell totals per stratum, for the whole sample or one resample.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    cells: usize,
    /// `stratum * cells + cell`.
    sums: Vec<f64>,
    counts: Vec<f64>,
}

impl Totals {
    fn zero(strata: usize, cells: usize) -> Totals {
        Totals {
            cells,
            sums: vec![0.0; strata * cells],
            counts: vec![0.0; strata * cells],
        }
    }

    fn clear(&mut self) {
        self.sums.iter_mut().for_each(|x| *x = 0.0);
        self.counts.iter_mut().for_each(|x| *x = 0.0);
    }

    /// Σ sum of a cell in a stratum.
    pub fn sum(&self, stratum: usize, cell: usize) -> f64 {
        self.sums[stratum * self.cells + cell]
    }

    /// Σ count of a cell in a stratum.
    pub fn count(&self, stratum: usize, cell: usize) -> f64 {
        self.counts[stratum * self.cells + cell]
    }

    /// sum / count; `None` when nothing was counted.
    pub fn mean(&self, stratum: usize, cell: usize) -> Option<f64> {
        let n = self.count(stratum, cell);
        (n > 0.0).then(|| self.sum(stratum, cell) / n)
    }
}

impl Units {
    /// No units yet, in `strata` strata with `cells` cells each.
    pub fn new(strata: usize, cells: usize) -> Units {
        Units {
            cells,
            strata: vec![Stratum::default(); strata],
        }
    }

    /// Adds a unit to `stratum`: `cells` (sum, count) pairs.
    pub fn push(&mut self, stratum: usize, cells: &[(f64, f64)]) {
        debug_assert_eq!(cells.len(), self.cells, "one (sum, count) per cell");
        let s = &mut self.strata[stratum];
        for &(sum, count) in cells {
            s.pairs.push([sum, count]);
        }
    }

    /// Units in a stratum.
    pub fn len(&self, stratum: usize) -> usize {
        self.strata[stratum].len(self.cells)
    }

    /// Units in a stratum with a positive count in `cell` (who contribute to
    /// it: respondents, customers with a CLTV): what suppression counts.
    pub fn contributors(&self, stratum: usize, cell: usize) -> usize {
        let s = &self.strata[stratum];
        (0..s.len(self.cells))
            .filter(|i| s.pairs[i * self.cells + cell][1] > 0.0)
            .count()
    }

    /// Units contributing to at least one of `cells`, given as (stratum,
    /// cell) pairs: a customer in two of them counts once.
    pub fn contributors_any(&self, cells: &[(usize, usize)]) -> usize {
        self.strata
            .iter()
            .enumerate()
            .map(|(si, s)| {
                let mine: Vec<usize> = cells
                    .iter()
                    .filter(|(st, _)| *st == si)
                    .map(|(_, c)| *c)
                    .collect();
                if mine.is_empty() {
                    return 0;
                }
                (0..s.len(self.cells))
                    .filter(|i| mine.iter().any(|c| s.pairs[i * self.cells + c][1] > 0.0))
                    .count()
            })
            .sum()
    }

    /// Totals of the whole sample.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::zero(self.strata.len(), self.cells);
        for (si, s) in self.strata.iter().enumerate() {
            for i in 0..s.len(self.cells) {
                add_unit(&mut t, si, s, i, self.cells);
            }
        }
        t
    }
}

fn add_unit(t: &mut Totals, stratum: usize, s: &Stratum, unit: usize, cells: usize) {
    let from = unit * cells;
    let to = stratum * cells;
    for c in 0..cells {
        let [sum, count] = s.pairs[from + c];
        t.sums[to + c] += sum;
        t.counts[to + c] += count;
    }
}

/// The draws of one statistic over the resamples.
#[derive(Debug, Clone, Default)]
pub struct Draws {
    /// Values of the resamples where the statistic was defined.
    pub values: Vec<f64>,
    /// Resamples where it was not (an empty cell, a zero cost).
    pub undefined: usize,
}

/// Most resamples allowed to leave a statistic undefined before its
/// interval is withheld: beyond this the percentiles describe a selected
/// subset of resamples, not the sampling distribution.
const MAX_UNDEFINED_SHARE: f64 = 0.01;

impl Draws {
    /// The percentile interval at `level` (0.95 → 2.5% and 97.5%), with
    /// linear interpolation between order statistics (numpy's default);
    /// `None` when too many resamples left the statistic undefined.
    pub fn interval(&self, level: f64) -> Option<(f64, f64)> {
        let total = self.values.len() + self.undefined;
        if self.values.is_empty() || self.undefined as f64 > MAX_UNDEFINED_SHARE * total as f64 {
            return None;
        }
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        let tail = (1.0 - level) / 2.0;
        Some((percentile(&sorted, tail), percentile(&sorted, 1.0 - tail)))
    }
}

/// The `q` quantile of sorted values, interpolating linearly between the
/// order statistics at (n − 1)·q (numpy `percentile`, method "linear").
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Resamples `units` `resamples` times (each stratum to its own size, with
/// replacement) and evaluates `statistics` on the totals of each resample:
/// it fills one slot per statistic, `None` where undefined. Returns the
/// draws per statistic, in resample order.
///
/// Resample r draws from the Xoshiro256++ stream seeded with `seed` and
/// jumped r times (jumps are 2^128 draws apart, so resamples never share
/// draws), which lets the resamples run on every core and still give the
/// same draws on any number of them. At a million customers one thread spent
/// half the ROI job here.
pub fn bootstrap<F>(
    units: &Units,
    resamples: usize,
    seed: u64,
    statistics: usize,
    evaluate: F,
) -> Vec<Draws>
where
    F: Fn(&Totals, &mut [Option<f64>]) + Sync,
{
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    bootstrap_on(units, resamples, seed, statistics, evaluate, threads)
}

/// [`bootstrap`] on `threads` threads.
fn bootstrap_on<F>(
    units: &Units,
    resamples: usize,
    seed: u64,
    statistics: usize,
    evaluate: F,
    threads: usize,
) -> Vec<Draws>
where
    F: Fn(&Totals, &mut [Option<f64>]) + Sync,
{
    let threads = threads.clamp(1, resamples.max(1));
    let base = Xoshiro256PlusPlus::seed_from_u64(seed);
    let worker = |first: usize| {
        let mut start = base.clone();
        for _ in 0..first {
            start.jump();
        }
        let mut totals = Totals::zero(units.strata.len(), units.cells);
        let mut out: Vec<(usize, Vec<Option<f64>>)> = Vec::new();
        let mut drawn: Vec<usize> = Vec::new();
        for r in (first..resamples).step_by(threads) {
            let mut rng = start.clone();
            for _ in 0..threads {
                start.jump();
            }
            totals.clear();
            for (si, s) in units.strata.iter().enumerate() {
                let n = s.len(units.cells);
                // All of the stratum's draws first, then the sums in the same
                // order (so the same floats): knowing the units ahead lets
                // their cells be fetched while earlier ones are added. At a
                // million customers the units outgrow the cache and each
                // draw waited for memory.
                drawn.clear();
                // u64 ranges sample the same on every platform (usize would
                // tie the intervals to the pointer width).
                drawn.extend((0..n).map(|_| rng.random_range(0..n as u64) as usize));
                for (k, &i) in drawn.iter().enumerate() {
                    if let Some(&ahead) = drawn.get(k + AHEAD) {
                        s.prefetch(ahead, units.cells);
                    }
                    add_unit(&mut totals, si, s, i, units.cells);
                }
            }
            let mut slots = vec![None; statistics];
            evaluate(&totals, &mut slots);
            out.push((r, slots));
        }
        out
    };
    let mut by_resample: Vec<Vec<Option<f64>>> = vec![Vec::new(); resamples];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|w| {
                let worker = &worker;
                scope.spawn(move || worker(w))
            })
            .collect();
        for h in handles {
            for (r, slots) in h.join().expect("a bootstrap thread panicked") {
                by_resample[r] = slots;
            }
        }
    });
    let mut draws = vec![
        Draws {
            values: Vec::with_capacity(resamples),
            undefined: 0
        };
        statistics
    ];
    for slots in by_resample {
        for (d, v) in draws.iter_mut().zip(&slots) {
            match v {
                Some(x) if x.is_finite() => d.values.push(*x),
                _ => d.undefined += 1,
            }
        }
    }
    draws
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentiles against numpy 2: `np.percentile([3, 1, 4, 1.5, 5, 9, 2, 6], q)`
    /// with the default (linear) method gives 1.0, 1.0875, 3.5, 8.475 and 9.0
    /// for q = 0, 2.5, 50, 97.5 and 100.
    #[test]
    fn percentile_matches_numpy_linear() {
        let mut v = vec![3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0, 6.0];
        v.sort_by(f64::total_cmp);
        for (q, want) in [
            (0.0, 1.0),
            (0.025, 1.0875),
            (0.5, 3.5),
            (0.975, 8.475),
            (1.0, 9.0),
        ] {
            let got = percentile(&v, q);
            assert!((got - want).abs() < 1e-12, "q={q}: {got} vs {want}");
        }
    }

    fn bernoulli_arm(units: &mut Units, stratum: usize, ones: usize, n: usize) {
        for i in 0..n {
            units.push(stratum, &[(if i < ones { 1.0 } else { 0.0 }, 1.0)]);
        }
    }

    fn difference(t: &Totals, out: &mut [Option<f64>]) {
        out[0] = t.mean(0, 0).zip(t.mean(1, 0)).map(|(a, b)| a - b);
    }

    /// The prefetching loop must add the same units in the same order as
    /// drawing and adding one at a time: the intervals are bit for bit those
    /// of the plain algorithm, written out here on one thread.
    #[test]
    fn prefetched_sums_equal_plain_draw_and_add() {
        let mut units = Units::new(2, 3);
        for i in 0..5_000u32 {
            let x = f64::from(i % 97) * 1.37 + 0.01 * f64::from(i);
            units.push(
                usize::from(i % 3 == 0),
                &[(x, 1.0), (x.sin(), f64::from(i % 2)), (-x, 2.0)],
            );
        }
        let stats = |t: &Totals, out: &mut [Option<f64>]| {
            for (c, slot) in out.iter_mut().enumerate() {
                *slot = Some(t.sum(c % 2, c) + t.count(1 - c % 2, c));
            }
        };
        let got = bootstrap_on(&units, 50, 3, 3, stats, 1);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        for r in 0..50 {
            let mut t = Totals::zero(2, 3);
            let mut draw = rng.clone();
            rng.jump();
            for (si, s) in units.strata.iter().enumerate() {
                let n = s.len(3);
                for _ in 0..n {
                    let i = draw.random_range(0..n as u64) as usize;
                    add_unit(&mut t, si, s, i, 3);
                }
            }
            let mut want = vec![None; 3];
            stats(&t, &mut want);
            for (d, w) in got.iter().zip(&want) {
                assert_eq!(d.values[r].to_bits(), w.expect("defined").to_bits());
            }
        }
    }

    /// Hand-checkable: treatment 5 of 10, control 0 of 10. Each resampled
    /// control mean is 0, and a resampled treatment mean is X/10 with X ~
    /// Binomial(10, 0.5). From the binomial table (scipy.stats.binom.cdf:
    /// P(X ≤ 1) = 0.0107, P(X ≤ 2) = 0.0547, P(X ≤ 7) = 0.9453,
    /// P(X ≤ 8) = 0.9893), so the 2.5% percentile is 0.2; by symmetry the
    /// 97.5% one is 0.8. With 2,000 resamples the empirical CDF at those
    /// points is several standard errors away from 0.025 / 0.975.
    #[test]
    fn binomial_fixture_gives_the_binomial_quantiles() {
        let mut units = Units::new(2, 1);
        bernoulli_arm(&mut units, 0, 5, 10);
        bernoulli_arm(&mut units, 1, 0, 10);
        let point = units.totals();
        assert_eq!(point.mean(0, 0), Some(0.5));
        assert_eq!(point.mean(1, 0), Some(0.0));
        let draws = bootstrap(&units, 2000, 7, 1, difference);
        assert_eq!(draws[0].values.len(), 2000);
        let (lo, hi) = draws[0].interval(0.95).expect("defined");
        assert!((lo - 0.2).abs() < 1e-12, "{lo}");
        assert!((hi - 0.8).abs() < 1e-12, "{hi}");
    }

    /// A difference of proportions 240/400 vs 200/400: the Wald interval
    /// 0.1 ± 1.959964 · sqrt(0.6·0.4/400 + 0.5·0.5/400) = [0.0314, 0.1686]
    /// (computed with scipy.stats.norm.ppf(0.975)); the percentile bootstrap of a
    /// mean difference this size agrees with it to within ~0.01.
    #[test]
    fn large_sample_interval_agrees_with_wald() {
        let mut units = Units::new(2, 1);
        bernoulli_arm(&mut units, 0, 240, 400);
        bernoulli_arm(&mut units, 1, 200, 400);
        let draws = bootstrap(&units, 2000, 11, 1, difference);
        let (lo, hi) = draws[0].interval(0.95).expect("defined");
        assert!((lo - 0.0314).abs() < 0.01, "{lo}");
        assert!((hi - 0.1686).abs() < 0.01, "{hi}");
    }

    /// Calibration: arms drawn from Bernoulli(0.45) and Bernoulli(0.35)
    /// (true difference 0.10), 120 customers each, 300 replications: the 95%
    /// interval must cover 0.10 in about 95% of them (binomial sd of the
    /// coverage ≈ 1.3 points, so 88%-99% is a loose but failing-able band).
    #[test]
    fn intervals_cover_the_true_difference_at_about_95_percent() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2024);
        let reps: u32 = 300;
        let mut covered = 0;
        for r in 0..reps {
            let mut units = Units::new(2, 1);
            for (stratum, p) in [(0, 0.45), (1, 0.35)] {
                for _ in 0..120 {
                    let y = if rng.random_bool(p) { 1.0 } else { 0.0 };
                    units.push(stratum, &[(y, 1.0)]);
                }
            }
            let draws = bootstrap(&units, 400, u64::from(r), 1, difference);
            let (lo, hi) = draws[0].interval(0.95).expect("defined");
            covered += usize::from(lo <= 0.10 && 0.10 <= hi);
        }
        let coverage = covered as f64 / f64::from(reps);
        assert!((0.88..=0.99).contains(&coverage), "coverage {coverage}");
    }

    #[test]
    fn strata_keep_their_sizes_and_the_seed_fixes_the_draws() {
        let mut units = Units::new(2, 2);
        for i in 0..7 {
            units.push(0, &[(1.0, 1.0), (f64::from(i), 1.0)]);
        }
        for _ in 0..3 {
            units.push(1, &[(1.0, 1.0), (0.0, 0.0)]);
        }
        assert_eq!((units.len(0), units.len(1)), (7, 3));
        assert_eq!(units.contributors(1, 1), 0);
        let sizes = |t: &Totals, out: &mut [Option<f64>]| {
            out[0] = Some(t.count(0, 0));
            out[1] = Some(t.count(1, 0));
            out[2] = t.mean(1, 1);
        };
        let a = bootstrap(&units, 300, 5, 3, sizes);
        assert!(a[0].values.iter().all(|&n| n == 7.0));
        assert!(a[1].values.iter().all(|&n| n == 3.0));
        assert_eq!(a[2].undefined, 300, "a cell nobody contributes to");
        assert_eq!(a[2].interval(0.95), None);
        let b = bootstrap(&units, 300, 5, 3, sizes);
        let c = bootstrap(&units, 300, 6, 3, |t: &Totals, out: &mut [Option<f64>]| {
            out[0] = t.mean(0, 1);
        });
        let again = bootstrap(&units, 300, 5, 1, |t: &Totals, out: &mut [Option<f64>]| {
            out[0] = t.mean(0, 1);
        });
        assert_eq!(a[0].values, b[0].values);
        assert_ne!(c[0].values, again[0].values, "another seed, other draws");
        let mean = |t: &Totals, out: &mut [Option<f64>]| out[0] = t.mean(0, 1);
        let one = bootstrap_on(&units, 301, 5, 1, mean, 1);
        for threads in [2, 3, 400] {
            let many = bootstrap_on(&units, 301, 5, 1, mean, threads);
            assert_eq!(many[0].values, one[0].values, "{threads} threads");
        }
        assert_eq!(
            one[0].values[..300],
            again[0].values[..],
            "resample r's draws do not depend on how many follow"
        );
    }
}
