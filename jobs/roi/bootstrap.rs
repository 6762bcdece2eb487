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
///
/// Each resample's totals are the bits of drawing units one by one and
/// adding their (sum, count) pairs in draw order, but most parts of a unit
/// need not be fetched as floats: a count of 1 per customer totals n
/// whichever customers are drawn, and integers (orders, retained flags, NPS
/// points, answers) add up exactly in any order. Only the rest, CLTV in
/// cents, is added as floats in draw order. The varying parts of a unit are
/// packed into one record, whose shape the loop is compiled for: 32 bytes
/// for the arms' five cells, whose pairs took 80 on two cache lines. Units
/// with more varying parts than any shape holds take the loop over pairs.
fn bootstrap_on<E>(
    units: &Units,
    resamples: usize,
    seed: u64,
    statistics: usize,
    evaluate: E,
    threads: usize,
) -> Vec<Draws>
where
    E: Fn(&Totals, &mut [Option<f64>]) + Sync,
{
    let run = Resampling {
        units,
        resamples,
        seed,
        statistics,
        threads: threads.clamp(1, resamples.max(1)),
        evaluate: &evaluate,
    };
    let plans: Vec<StratumPlan> = (0..units.strata.len())
        .map(|s| StratumPlan::of(units, s))
        .collect();
    match record_shape(&plans) {
        Some((0, 0)) => packed::<0, 0>(&run, &plans),
        Some((0, 2)) => packed::<0, 2>(&run, &plans),
        Some((1, 0)) => packed::<1, 0>(&run, &plans),
        Some((0, 4)) => packed::<0, 4>(&run, &plans),
        Some((1, 2)) => packed::<1, 2>(&run, &plans),
        Some((2, 0)) => packed::<2, 0>(&run, &plans),
        Some((0, 6)) => packed::<0, 6>(&run, &plans),
        Some((0, 8)) => packed::<0, 8>(&run, &plans),
        Some((1, 6)) => packed::<1, 6>(&run, &plans),
        Some((2, 4)) => packed::<2, 4>(&run, &plans),
        Some((0, 16)) => packed::<0, 16>(&run, &plans),
        Some((1, 14)) => packed::<1, 14>(&run, &plans),
        Some((2, 12)) => packed::<2, 12>(&run, &plans),
        Some((0, 32)) => packed::<0, 32>(&run, &plans),
        _ => run.resample(|rng, totals, drawn| plain_resample(units, rng, totals, drawn)),
    }
}

/// What every resample of one bootstrap shares.
struct Resampling<'a> {
    units: &'a Units,
    resamples: usize,
    seed: u64,
    statistics: usize,
    /// At least 1 and at most `resamples`.
    threads: usize,
    /// A trait object: it runs once per resample, and the loops are then
    /// compiled once per record shape, not once per shape and caller.
    evaluate: &'a (dyn Fn(&Totals, &mut [Option<f64>]) + Sync),
}

impl Resampling<'_> {
    /// Runs every resample, worker w the resamples w, w + threads, …:
    /// `total` fills the totals of one resample from its stream (with a
    /// scratch list it may use), `evaluate` its statistics.
    fn resample<S>(&self, total: S) -> Vec<Draws>
    where
        S: Fn(&mut Xoshiro256PlusPlus, &mut Totals, &mut Vec<usize>) + Sync,
    {
        let (resamples, statistics, threads) = (self.resamples, self.statistics, self.threads);
        let base = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let worker = |first: usize| {
            let mut start = base.clone();
            for _ in 0..first {
                start.jump();
            }
            let mut totals = Totals::zero(self.units.strata.len(), self.units.cells);
            let mut drawn: Vec<usize> = Vec::new();
            // the statistics of this worker's resamples one after another,
            // not a vector per resample
            let mut out: Vec<Option<f64>> = Vec::new();
            for _ in (first..resamples).step_by(threads) {
                let mut rng = start.clone();
                for _ in 0..threads {
                    start.jump();
                }
                total(&mut rng, &mut totals, &mut drawn);
                let at = out.len();
                out.resize(at + statistics, None);
                (self.evaluate)(&totals, &mut out[at..]);
            }
            out
        };
        let mut by_worker: Vec<Vec<Option<f64>>> = Vec::with_capacity(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|w| {
                    let worker = &worker;
                    scope.spawn(move || worker(w))
                })
                .collect();
            for h in handles {
                by_worker.push(h.join().expect("a bootstrap thread panicked"));
            }
        });
        let mut draws = vec![
            Draws {
                values: Vec::with_capacity(resamples),
                undefined: 0
            };
            statistics
        ];
        for r in 0..resamples {
            let at = r / threads * statistics;
            let slots = &by_worker[r % threads][at..at + statistics];
            for (d, v) in draws.iter_mut().zip(slots) {
                match v {
                    Some(x) if x.is_finite() => d.values.push(*x),
                    _ => d.undefined += 1,
                }
            }
        }
        draws
    }
}

/// One resample drawn and added pair by pair, for units with more varying
/// parts than any record shape holds.
fn plain_resample(
    units: &Units,
    rng: &mut Xoshiro256PlusPlus,
    totals: &mut Totals,
    drawn: &mut Vec<usize>,
) {
    totals.clear();
    for (si, s) in units.strata.iter().enumerate() {
        let n = s.len(units.cells);
        // All of the stratum's draws first, then the sums in the same order
        // (so the same floats): knowing the units ahead lets their cells be
        // fetched while earlier ones are added. At a million customers the
        // units outgrow the cache and each draw waited for memory.
        drawn.clear();
        // u64 ranges sample the same on every platform (usize would tie the
        // intervals to the pointer width).
        drawn.extend((0..n).map(|_| rng.random_range(0..n as u64) as usize));
        for (k, &i) in drawn.iter().enumerate() {
            if let Some(&ahead) = drawn.get(k + AHEAD) {
                s.prefetch(ahead, units.cells);
            }
            add_unit(totals, si, s, i, units.cells);
        }
    }
}

/// One number of a unit: the sum or the count of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Part {
    cell: usize,
    count: bool,
}

impl Totals {
    fn part_mut(&mut self, stratum: usize, p: Part) -> &mut f64 {
        let i = stratum * self.cells + p.cell;
        if p.count {
            &mut self.counts[i]
        } else {
            &mut self.sums[i]
        }
    }
}

/// 2^53: integers below it are exact in an f64, and so is any sum of them
/// that stays below it.
const EXACT: f64 = 9_007_199_254_740_992.0;

/// What a part's values across a stratum's `n` units allow.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Integers {
    /// The same integer in every unit: n draws total n times it.
    Constant(f64),
    /// Integers within i32 whose largest magnitude times n is below 2^53:
    /// every partial sum of n draws is an exact integer, so the draws add up
    /// to the same float in any order, and as i64.
    Varying,
    /// Anything else: added as floats in draw order.
    No,
}

fn integers(values: impl IntoIterator<Item = f64>, n: usize) -> Integers {
    let mut first: Option<f64> = None;
    let mut same = true;
    let mut largest = 0.0f64;
    for v in values {
        let integer = v.is_finite() && v.trunc() == v && v.abs() <= f64::from(i32::MAX);
        if !integer {
            return Integers::No;
        }
        largest = largest.max(v.abs());
        match first {
            None => first = Some(v),
            Some(f) => same &= f == v,
        }
    }
    if largest * n as f64 >= EXACT {
        return Integers::No;
    }
    match first {
        // through i64, so -0.0 totals +0.0 as adding it to a zero total does
        Some(v) if same => Integers::Constant((v as i64 * n as i64) as f64),
        Some(_) => Integers::Varying,
        None => Integers::Constant(0.0),
    }
}

/// How one stratum's resampled totals are made: each part the cheapest way
/// that gives the bits of adding the drawn units' pairs in draw order.
#[derive(Debug, Clone, Default)]
struct StratumPlan {
    /// Added as floats in draw order, the order that fixes their rounding.
    floats: Vec<Part>,
    /// Added as integers (see [`Integers::Varying`]).
    ints: Vec<Part>,
    /// Not fetched at all: the total of every resample.
    constants: Vec<(Part, f64)>,
}

impl StratumPlan {
    fn of(units: &Units, stratum: usize) -> StratumPlan {
        let s = &units.strata[stratum];
        let n = s.len(units.cells);
        let mut plan = StratumPlan::default();
        for cell in 0..units.cells {
            for count in [false, true] {
                let part = Part { cell, count };
                let values = (0..n).map(|i| s.pairs[i * units.cells + cell][usize::from(count)]);
                match integers(values, n) {
                    Integers::Constant(total) => plan.constants.push((part, total)),
                    Integers::Varying => plan.ints.push(part),
                    Integers::No => plan.floats.push(part),
                }
            }
        }
        plan
    }

    /// The stratum's units as records: float parts, then integer parts, in
    /// plan order; lanes beyond the plan's are 0 and never read back.
    fn records<const F: usize, const I: usize>(
        &self,
        s: &Stratum,
        cells: usize,
    ) -> Vec<Record<F, I>> {
        let value = |unit: usize, p: Part| s.pairs[unit * cells + p.cell][usize::from(p.count)];
        (0..s.len(cells))
            .map(|unit| {
                let mut r = Record {
                    floats: [0.0; F],
                    ints: [0; I],
                };
                for (lane, &p) in self.floats.iter().enumerate() {
                    r.floats[lane] = value(unit, p);
                }
                for (lane, &p) in self.ints.iter().enumerate() {
                    // exact: `integers` found an integer within i32
                    r.ints[lane] = value(unit, p) as i32;
                }
                r
            })
            .collect()
    }

    /// Writes the stratum's totals of one resample: every part of every
    /// cell, so the totals need no clearing between resamples.
    fn store(&self, t: &mut Totals, stratum: usize, floats: &[f64], ints: &[i64]) {
        for (&p, &x) in self.floats.iter().zip(floats) {
            *t.part_mut(stratum, p) = x;
        }
        for (&p, &x) in self.ints.iter().zip(ints) {
            // below 2^53 in magnitude: exact as a float
            *t.part_mut(stratum, p) = x as f64;
        }
        for &(p, x) in &self.constants {
            *t.part_mut(stratum, p) = x;
        }
    }
}

/// The (float lanes, integer lanes) of the records the resampling loop is
/// compiled for, smallest record first: 0 to 64 bytes, and 128 for the
/// sixteen cells of a touchpoint comparison, whose answers are integers.
const SHAPES: [(usize, usize); 14] = [
    (0, 0),
    (0, 2),
    (1, 0),
    (0, 4),
    (1, 2),
    (2, 0),
    (0, 6),
    (0, 8),
    (1, 6),
    (2, 4),
    (0, 16),
    (1, 14),
    (2, 12),
    (0, 32),
];

/// The smallest shape that holds every stratum's varying parts.
fn record_shape(plans: &[StratumPlan]) -> Option<(usize, usize)> {
    let floats = plans.iter().map(|p| p.floats.len()).max().unwrap_or(0);
    let ints = plans.iter().map(|p| p.ints.len()).max().unwrap_or(0);
    SHAPES.into_iter().find(|&(f, i)| f >= floats && i >= ints)
}

/// A unit's varying parts side by side, fetched at once.
#[derive(Debug, Clone, Copy)]
struct Record<const F: usize, const I: usize> {
    floats: [f64; F],
    ints: [i32; I],
}

/// The bootstrap with units as records of `F` float and `I` integer lanes.
fn packed<const F: usize, const I: usize>(
    run: &Resampling<'_>,
    plans: &[StratumPlan],
) -> Vec<Draws> {
    let cells = run.units.cells;
    let records: Vec<Vec<Record<F, I>>> = (run.units.strata.iter())
        .zip(plans)
        .map(|(s, plan)| plan.records::<F, I>(s, cells))
        .collect();
    run.resample(|rng, totals, _| {
        for (stratum, (records, plan)) in records.iter().zip(plans).enumerate() {
            let (floats, ints) = draw_and_sum(rng, records);
            plan.store(totals, stratum, &floats, &ints);
        }
    })
}

/// Draws as many units as `records` has, with replacement, and sums their
/// records in draw order. A unit is drawn `AHEAD` draws before it is added,
/// and its record asked for then: the draws are the same calls in the same
/// order as drawing them all first, and the float lanes add in draw order.
fn draw_and_sum<const F: usize, const I: usize>(
    rng: &mut Xoshiro256PlusPlus,
    records: &[Record<F, I>],
) -> ([f64; F], [i64; I]) {
    let n = records.len();
    let draw = |rng: &mut Xoshiro256PlusPlus| {
        // u64 ranges sample the same on every platform (usize would tie the
        // intervals to the pointer width).
        let unit = rng.random_range(0..n as u64) as usize;
        prefetch_record(records, unit);
        unit
    };
    let mut ahead = [0usize; AHEAD];
    for slot in ahead.iter_mut().take(n) {
        *slot = draw(rng);
    }
    let mut floats = [0.0f64; F];
    let mut ints = [0i64; I];
    for k in 0..n {
        let slot = &mut ahead[k % AHEAD];
        let unit = *slot;
        if k + AHEAD < n {
            *slot = draw(rng);
        }
        let r = &records[unit];
        for (sum, &x) in floats.iter_mut().zip(&r.floats) {
            *sum += x;
        }
        for (sum, &x) in ints.iter_mut().zip(&r.ints) {
            *sum += i64::from(x);
        }
    }
    (floats, ints)
}

/// Asks for the cache lines of a record: its own and, as a record may end
/// on the line after the one it starts on, the start of the next record.
fn prefetch_record<T>(records: &[T], unit: usize) {
    prefetch(&records[unit]);
    if let Some(next) = records.get(unit + 1) {
        prefetch(next);
    }
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

    /// The resampling loop as it was before units were packed into records
    /// (every pair of every drawn unit added as floats in draw order), kept
    /// as the reference the packed loop must match bit for bit.
    fn bootstrap_before<F>(
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
                    drawn.clear();
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

    /// Every total of a resample as a statistic: sum and count of each
    /// (stratum, cell).
    fn every_total(units: &Units) -> impl Fn(&Totals, &mut [Option<f64>]) + Sync {
        let (strata, cells) = (units.strata.len(), units.cells);
        move |t: &Totals, out: &mut [Option<f64>]| {
            for s in 0..strata {
                for c in 0..cells {
                    out[2 * (s * cells + c)] = Some(t.sum(s, c));
                    out[2 * (s * cells + c) + 1] = Some(t.count(s, c));
                }
            }
        }
    }

    fn assert_draws_as_before(name: &str, units: &Units, resamples: usize, seed: u64) {
        let statistics = 2 * units.strata.len() * units.cells;
        let evaluate = every_total(units);
        let want = bootstrap_before(units, resamples, seed, statistics, &evaluate, 1);
        let bits = |d: &Draws| d.values.iter().map(|x| x.to_bits()).collect::<Vec<u64>>();
        for threads in [1, 2, 3] {
            let got = bootstrap_on(units, resamples, seed, statistics, &evaluate, threads);
            assert_eq!(got.len(), want.len(), "{name}");
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    g.undefined, w.undefined,
                    "{name}: total {k}, {threads} threads"
                );
                assert_eq!(bits(g), bits(w), "{name}: total {k}, {threads} threads");
            }
        }
    }

    /// Differential: on seeded units of every shape the job builds (the
    /// arms' five cells with CLTV in cents, the customer windows' integers,
    /// a touchpoint's sixteen cells) and on edge cases (an empty stratum, a
    /// lone unit, -0.0, the same fraction in every unit, integers beyond
    /// i32, NaN and infinity, more float parts than a record holds), every
    /// total of every resample is the bits of the loop before records.
    #[test]
    fn packed_totals_are_the_bits_of_adding_pairs_in_draw_order() {
        /// A case's name, its units and the (stratum, cell) it checks, if one.
        type Case<'a> = (&'a str, Units, Option<(usize, usize)>);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(41);
        let mut cases: Vec<Case> = Vec::new();

        let mut arms = Units::new(2, 5);
        for i in 0..700 {
            let answers = rng.random_range(0..3u32);
            let nps: f64 = (0..answers)
                .map(|_| [-100.0, 0.0, 100.0][rng.random_range(0..3usize)])
                .sum();
            arms.push(
                usize::from(i % 3 == 0),
                &[
                    (f64::from(rng.random_range(0..2u32)), 1.0),
                    (f64::from(rng.random_range(0..9u32)), 1.0),
                    (nps, f64::from(answers)),
                    (f64::from(rng.random_range(0..100_000u32)) / 100.0, 1.0),
                    (f64::from(rng.random_range(0..5u32)), 1.0),
                ],
            );
        }
        cases.push(("arms", arms, Some((1, 6))));

        let mut windows = Units::new(2, 4);
        for i in 0..500 {
            let (before, after) = (rng.random_range(0..4u32), rng.random_range(0..6u32));
            let (nb, na) = (rng.random_range(0..2u32), rng.random_range(0..3u32));
            windows.push(
                usize::from(i % 4 == 0),
                &[
                    (f64::from(before), 1.0),
                    (f64::from(after), 1.0),
                    (100.0 * f64::from(nb), f64::from(nb)),
                    // -100 × 0 is -0.0
                    (-100.0 * f64::from(na), f64::from(na)),
                ],
            );
        }
        cases.push(("customer windows", windows, Some((0, 6))));

        let mut answers = Units::new(1, 16);
        for _ in 0..300 {
            let cells: Vec<(f64, f64)> = (0..16)
                .map(|_| {
                    let k = rng.random_range(0..3u32);
                    let total: f64 = (0..k).map(|_| f64::from(rng.random_range(1..8u32))).sum();
                    (total, f64::from(k))
                })
                .collect();
            answers.push(0, &cells);
        }
        cases.push(("touchpoint answers", answers, Some((0, 32))));

        // stratum 0 empty; 1 one unit with a NaN and a fraction; 2 integers
        // beyond i32 and an infinity; 3 -0.0 everywhere, negative integers
        // and the same fraction in every unit
        let mut edges = Units::new(4, 3);
        edges.push(1, &[(5.0, 1.0), (f64::NAN, 1.0), (0.1, -0.0)]);
        for i in 0..150u32 {
            let x = f64::from(i);
            let odd = if i % 7 == 0 { f64::INFINITY } else { x };
            edges.push(2, &[(x * 4_294_967_296.0, 1.0), (odd, 2.0), (7.0, -0.0)]);
            edges.push(3, &[(-0.0, -0.0), (x - 75.0, 1.0), (0.1, f64::from(i % 2))]);
        }
        cases.push(("edges", edges, Some((2, 4))));

        let mut fractions = Units::new(1, 3);
        for i in 1..100u32 {
            let x = f64::from(i) / 3.0;
            fractions.push(0, &[(x, 1.0), (x * 2.0, 1.0), (x.sqrt(), 1.0)]);
        }
        cases.push(("three float parts", fractions, None));

        for (name, units, shape) in &cases {
            let plans: Vec<StratumPlan> = (0..units.strata.len())
                .map(|s| StratumPlan::of(units, s))
                .collect();
            assert_eq!(record_shape(&plans), *shape, "{name}");
            assert_draws_as_before(name, units, 60, 7);
        }
    }

    /// A part is summed as integers only where every order of adding it
    /// gives the same float: integers within i32 whose n-fold largest
    /// magnitude stays below 2^53; the same integer everywhere is n times
    /// it, with -0.0 totalling +0.0 as adding it to a zero total does.
    #[test]
    fn integer_parts_are_those_every_order_sums_exactly() {
        use super::Integers::{Constant, No, Varying};
        let cases: [(&[f64], usize, Integers); 10] = [
            (&[1.0, 0.0, 1.0], 3, Varying),
            (&[1.0, 1.0, 1.0], 3, Constant(3.0)),
            (&[-2.0, -2.0], 2, Constant(-4.0)),
            (&[], 0, Constant(0.0)),
            (&[0.5, 1.0], 2, No),
            (&[3e9, 1.0], 2, No),
            (&[2e9, 1.0], 5_000_000, No),
            (&[2e9, 1.0], 4_000_000, Varying),
            (&[f64::NAN], 1, No),
            (&[f64::INFINITY], 1, No),
        ];
        for (values, n, want) in cases {
            assert_eq!(
                integers(values.iter().copied(), n),
                want,
                "{values:?} × {n}"
            );
        }
        let Constant(zero) = integers([-0.0, 0.0, -0.0], 3) else {
            panic!("zeros are a constant");
        };
        assert_eq!(zero.to_bits(), 0.0f64.to_bits());
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
