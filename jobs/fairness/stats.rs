//! Closed-form statistics of the audit: intervals, tests and the multiple
//! comparison correction.
//!
//! Each function follows one reference implementation exactly, named in its
//! doc comment, and the unit tests compare against numbers computed with
//! that implementation (tolerance 1e-9):
//!
//! | function | reference |
//! | --- | --- |
//! | [`wilson`] | statsmodels `proportion_confint(method="wilson")` |
//! | [`katz_ratio_interval`] | statsmodels `confint_proportions_2indep(compare="ratio", method="log")` |
//! | [`two_proportion_z`] | statsmodels `proportions_ztest` (pooled, two-sided) |
//! | [`chi_square_independence`] | scipy `chi2_contingency(correction=False)` |
//! | [`mann_whitney_u`] | scipy `mannwhitneyu(method="asymptotic", use_continuity=True)` |
//! | [`welch_t`] | scipy `ttest_ind(equal_var=False)` |
//! | [`benjamini_hochberg`] | statsmodels `multipletests(method="fdr_bh")` |
//! | [`quantile_sorted`] | numpy `quantile(method="linear")` (Hyndman–Fan type 7) |

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, StudentsT};

/// A two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// The result of a significance test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestResult {
    /// z, t, U or chi-square, depending on the test.
    pub statistic: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// The standard normal quantile for a two-sided interval at `confidence`
/// (1.959963984540054 for 0.95).
pub fn z_critical(confidence: f64) -> f64 {
    Normal::standard().inverse_cdf(1.0 - (1.0 - confidence) / 2.0)
}

/// Two-sided p-value of a standard normal statistic.
fn normal_two_sided(z: f64) -> f64 {
    (2.0 * Normal::standard().sf(z.abs())).min(1.0)
}

/// Wilson score interval for `count` successes out of `n`.
/// `None` when `n` is 0.
pub fn wilson(count: u64, n: u64, confidence: f64) -> Option<Interval> {
    if n == 0 || count > n {
        return None;
    }
    wilson_effective(count as f64 / n as f64, n as f64, confidence)
}

/// Wilson score interval for a proportion `p` estimated from an effective
/// sample size `n` (rows divided by the design effect, as Kish proposed for
/// clustered samples; equal to [`wilson`] when `n` is the row count).
pub fn wilson_effective(p: f64, n: f64, confidence: f64) -> Option<Interval> {
    if n.is_nan() || n <= 0.0 || !(0.0..=1.0).contains(&p) {
        return None;
    }
    let z = z_critical(confidence);
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    Some(Interval {
        low: center - half,
        high: center + half,
    })
}

/// Katz's log interval for the ratio of two proportions
/// (`count1 / n1`) / (`count2 / n2`). `None` when a count is 0 (the log of
/// the ratio is then unbounded).
pub fn katz_ratio_interval(
    count1: u64,
    n1: u64,
    count2: u64,
    n2: u64,
    confidence: f64,
) -> Option<Interval> {
    katz_ratio_interval_deff(count1, n1, 1.0, count2, n2, 1.0, confidence)
}

/// [`katz_ratio_interval`] with each proportion's variance multiplied by
/// its design effect.
pub fn katz_ratio_interval_deff(
    count1: u64,
    n1: u64,
    deff1: f64,
    count2: u64,
    n2: u64,
    deff2: f64,
    confidence: f64,
) -> Option<Interval> {
    if count1 == 0 || count2 == 0 || count1 > n1 || count2 > n2 {
        return None;
    }
    let (a, n1, c, n2) = (count1 as f64, n1 as f64, count2 as f64, n2 as f64);
    let ratio = (a / n1) / (c / n2);
    let se = (deff1 * (1.0 / a - 1.0 / n1) + deff2 * (1.0 / c - 1.0 / n2)).sqrt();
    let d = z_critical(confidence) * se;
    Some(Interval {
        low: (ratio.ln() - d).exp(),
        high: (ratio.ln() + d).exp(),
    })
}

/// Two-sample z-test of equal proportions with the pooled standard error,
/// two-sided. When both samples are all successes or all failures the
/// proportions are equal and the p-value is 1. `None` when a sample is empty.
pub fn two_proportion_z(count1: u64, n1: u64, count2: u64, n2: u64) -> Option<TestResult> {
    two_proportion_z_deff(count1, n1, 1.0, count2, n2, 1.0)
}

/// [`two_proportion_z`] with each sample's share of the pooled variance
/// multiplied by its design effect.
pub fn two_proportion_z_deff(
    count1: u64,
    n1: u64,
    deff1: f64,
    count2: u64,
    n2: u64,
    deff2: f64,
) -> Option<TestResult> {
    if n1 == 0 || n2 == 0 || count1 > n1 || count2 > n2 {
        return None;
    }
    let (a, n1f, c, n2f) = (count1 as f64, n1 as f64, count2 as f64, n2 as f64);
    let pooled = (a + c) / (n1f + n2f);
    let var = pooled * (1.0 - pooled) * (deff1 / n1f + deff2 / n2f);
    if var <= 0.0 {
        return Some(TestResult {
            statistic: 0.0,
            p_value: 1.0,
        });
    }
    let z = (a / n1f - c / n2f) / var.sqrt();
    Some(TestResult {
        statistic: z,
        p_value: normal_two_sided(z),
    })
}

/// Pearson's chi-square test of independence on a contingency table (rows
/// = groups, columns = categories), without continuity correction. Rows
/// and columns that sum to zero are dropped first (they carry no
/// information and would make an expected count zero). Returns the test
/// and its degrees of freedom; `None` when fewer than two rows or columns
/// remain.
pub fn chi_square_independence(table: &[Vec<u64>]) -> Option<(TestResult, usize)> {
    chi_square_independence_deff(table, 1.0)
}

/// [`chi_square_independence`] with the statistic divided by the mean
/// design effect of the cells (Rao & Scott 1981, first-order correction),
/// for repeated rows per person: thirty tickets of one customer routed the
/// same way are not thirty independent choices. A design effect below 1
/// is taken as 1.
pub fn chi_square_independence_deff(table: &[Vec<u64>], deff: f64) -> Option<(TestResult, usize)> {
    let cols = table.first().map_or(0, Vec::len);
    if table.iter().any(|r| r.len() != cols) {
        return None;
    }
    let col_sums: Vec<u64> = (0..cols)
        .map(|j| table.iter().map(|r| r[j]).sum())
        .collect();
    let keep_cols: Vec<usize> = (0..cols).filter(|&j| col_sums[j] > 0).collect();
    let rows: Vec<&Vec<u64>> = table.iter().filter(|r| r.iter().sum::<u64>() > 0).collect();
    if rows.len() < 2 || keep_cols.len() < 2 {
        return None;
    }
    let total: f64 = rows.iter().flat_map(|r| r.iter()).sum::<u64>() as f64;
    let mut chi2 = 0.0;
    for r in &rows {
        let row_sum = keep_cols.iter().map(|&j| r[j]).sum::<u64>() as f64;
        for &j in &keep_cols {
            let expected = row_sum * col_sums[j] as f64 / total;
            let d = r[j] as f64 - expected;
            chi2 += d * d / expected;
        }
    }
    let df = (rows.len() - 1) * (keep_cols.len() - 1);
    let chi2 = chi2 / deff.max(1.0);
    let dist = ChiSquared::new(df as f64).ok()?;
    Some((
        TestResult {
            statistic: chi2,
            p_value: dist.sf(chi2),
        },
        df,
    ))
}

/// Mann-Whitney U test of two samples, each sorted ascending (NaN-free),
/// with the normal approximation, the tie correction and the continuity
/// correction, two-sided — as scipy's `mannwhitneyu(x, y,
/// method="asymptotic")` with its default `use_continuity=True`. The
/// statistic is U of `x`. `None` when a sample is empty or every value is
/// tied.
pub fn mann_whitney_u(x: &[f64], y: &[f64]) -> Option<TestResult> {
    mann_whitney_u_deff(x, y, 1.0)
}

/// [`mann_whitney_u`] with the variance of U multiplied by a design effect
/// (repeated rows per person; see `cluster`).
pub fn mann_whitney_u_deff(x: &[f64], y: &[f64], deff: f64) -> Option<TestResult> {
    let (n1, n2) = (x.len(), y.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    // Merge the two sorted samples, giving each run of ties its mid-rank.
    let (mut i, mut j) = (0usize, 0usize);
    let mut rank_sum_x = 0.0;
    let mut tie_term = 0.0;
    let mut position = 0usize;
    while i < n1 || j < n2 {
        let v = match (x.get(i), y.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        let (mut in_x, mut in_y) = (0usize, 0usize);
        while i < n1 && x[i] == v {
            i += 1;
            in_x += 1;
        }
        while j < n2 && y[j] == v {
            j += 1;
            in_y += 1;
        }
        let t = in_x + in_y;
        if t == 0 {
            // Unsorted or NaN input: refuse rather than loop.
            return None;
        }
        let mid_rank = position as f64 + (t as f64 + 1.0) / 2.0;
        rank_sum_x += mid_rank * in_x as f64;
        tie_term += tie(t);
        position += t;
    }
    u_test(n1, n2, rank_sum_x, tie_term, deff)
}

/// A run of `t` tied values' term of the tie correction, t³ − t.
fn tie(t: usize) -> f64 {
    let tf = t as f64;
    tf * tf * tf - tf
}

/// The test from the rank sum of x and the tie term.
fn u_test(n1: usize, n2: usize, rank_sum_x: f64, tie_term: f64, deff: f64) -> Option<TestResult> {
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let n = n1f + n2f;
    let u1 = rank_sum_x - n1f * (n1f + 1.0) / 2.0;
    let u2 = n1f * n2f - u1;
    let mu = n1f * n2f / 2.0;
    let var = deff * n1f * n2f / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if var <= 0.0 {
        return None;
    }
    let z = (u1.max(u2) - mu - 0.5) / var.sqrt();
    Some(TestResult {
        statistic: u1,
        p_value: (2.0 * Normal::standard().sf(z)).min(1.0),
    })
}

/// A sorted sample tested against many others with
/// [`mann_whitney_u_deff_against`] (a reference group against each other
/// group of a dimension): its runs of ties, found once, let each test skip
/// the stretches of it between the other sample's values by search rather
/// than walk them, so a test costs about the size of the other sample
/// instead of both.
#[derive(Debug, Clone)]
pub struct MannWhitneyReference<'a> {
    values: &'a [f64],
    /// (first index, length) of each run of two or more equal values.
    ties: Vec<(usize, usize)>,
    /// Whether `values` is ascending without NaN (else tests merge).
    ascending: bool,
}

impl<'a> MannWhitneyReference<'a> {
    /// Prepares a sample sorted ascending.
    pub fn new(values: &'a [f64]) -> MannWhitneyReference<'a> {
        let ascending = is_ascending(values);
        let mut ties = Vec::new();
        let mut i = 0;
        while ascending && i < values.len() {
            let run = values[i..].iter().take_while(|&&v| v == values[i]).count();
            if run > 1 {
                ties.push((i, run));
            }
            i += run;
        }
        MannWhitneyReference {
            values,
            ties,
            ascending,
        }
    }
}

fn is_ascending(values: &[f64]) -> bool {
    !values.iter().any(|v| v.is_nan()) && values.windows(2).all(|w| w[0] <= w[1])
}

/// The end of the stretch of `values` from `from` on where `before` holds
/// (it holds up to some index and not after, and on every value before
/// `from`): probing 1, 2, 4, … ahead, then bisecting, costs the logarithm
/// of the stretch's length.
fn gallop(values: &[f64], from: usize, before: impl Fn(f64) -> bool) -> usize {
    let mut lo = from;
    let mut step = 1;
    while lo + step <= values.len() && before(values[lo + step - 1]) {
        lo += step;
        step *= 2;
    }
    let hi = (lo + step).min(values.len());
    lo + values[lo..hi].partition_point(|&v| before(v))
}

/// [`mann_whitney_u_deff`] of `x` against `y`, bit for bit: the merge
/// visits x's runs of equal values in order, finds where each falls in `y`
/// by [`gallop`], and adds the tie terms of `y`'s runs between them in
/// order. A run of `y` alone adds nothing to x's rank sum (its mid-rank
/// times zero x values is +0.0) and a run of one adds nothing to the tie
/// term (1³ − 1 = 0); adding +0.0 to these sums, which start at +0.0 and
/// only grow, leaves them unchanged, so skipping those runs does too.
/// Unsorted or NaN input takes the merge.
pub fn mann_whitney_u_deff_against(
    x: &[f64],
    y: &MannWhitneyReference,
    deff: f64,
) -> Option<TestResult> {
    let ys = y.values;
    let (n1, n2) = (x.len(), ys.len());
    if n1 == 0 || n2 == 0 || !y.ascending || !is_ascending(x) {
        return mann_whitney_u_deff(x, ys, deff);
    }
    let mut rank_sum_x = 0.0;
    let mut tie_term = 0.0;
    // y[..j] are below the current value of x; y.ties[..next] are counted.
    let (mut i, mut j, mut next) = (0usize, 0usize, 0usize);
    while i < n1 {
        let v = x[i];
        let start = i;
        while i < n1 && x[i] == v {
            i += 1;
        }
        let below = gallop(ys, j, |b| b < v);
        j = gallop(ys, below, |b| b <= v);
        while next < y.ties.len() && y.ties[next].0 < below {
            tie_term += tie(y.ties[next].1);
            next += 1;
        }
        if j - below > 1 {
            // y's run at v is part of this run
            next += 1;
        }
        let (in_x, in_y) = (i - start, j - below);
        let t = in_x + in_y;
        let mid_rank = (start + below) as f64 + (t as f64 + 1.0) / 2.0;
        rank_sum_x += mid_rank * in_x as f64;
        tie_term += tie(t);
    }
    for &(_, t) in &y.ties[next..] {
        tie_term += tie(t);
    }
    u_test(n1, n2, rank_sum_x, tie_term, deff)
}

/// Count, mean and sample variance (n − 1) of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub n: u64,
    pub mean: f64,
    pub variance: f64,
}

impl Moments {
    /// Moments of a sample (Welford's update, stable for large n).
    pub fn of(values: &[f64]) -> Moments {
        let mut w = Welford::default();
        for &v in values {
            w.push(v);
        }
        w.moments()
    }
}

/// Welford's running moments, a value at a time: [`Moments::of`] a sample
/// whose values come interleaved with other samples' (each group's values
/// as the rows go by), which keeps the division of each update from
/// waiting on the one before.
#[derive(Debug, Clone, Copy, Default)]
pub struct Welford {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Welford {
    /// Adds the next value.
    pub fn push(&mut self, v: f64) {
        self.n += 1;
        let d = v - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (v - self.mean);
    }

    /// The moments of the values so far.
    pub fn moments(&self) -> Moments {
        let (n, mean, m2) = (self.n, self.mean, self.m2);
        Moments {
            n,
            mean: if n == 0 { f64::NAN } else { mean },
            variance: if n < 2 { f64::NAN } else { m2 / (n - 1) as f64 },
        }
    }
}

/// Welch's unequal-variance t-test of two means, two-sided. The statistic
/// is t for `x − y`. `None` when a sample has fewer than two values or
/// both variances are zero.
pub fn welch_t(x: Moments, y: Moments) -> Option<TestResult> {
    welch_t_deff(x, y, 1.0)
}

/// [`welch_t`] with the variance of the difference multiplied by a design
/// effect (repeated rows per person; see `cluster`); the degrees of
/// freedom stay Welch-Satterthwaite's.
pub fn welch_t_deff(x: Moments, y: Moments, deff: f64) -> Option<TestResult> {
    if x.n < 2 || y.n < 2 {
        return None;
    }
    let (vx, vy) = (x.variance / x.n as f64, y.variance / y.n as f64);
    let se2 = vx + vy;
    if se2 <= 0.0 || !se2.is_finite() {
        return None;
    }
    let df = se2 * se2 / (vx * vx / (x.n - 1) as f64 + vy * vy / (y.n - 1) as f64);
    let t = (x.mean - y.mean) / (deff * se2).sqrt();
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    Some(TestResult {
        statistic: t,
        p_value: (2.0 * dist.sf(t.abs())).min(1.0),
    })
}

/// Benjamini-Hochberg adjusted p-values (false discovery rate), in the
/// order given: the i-th smallest p becomes min over j ≥ i of p₍ⱼ₎·m/j,
/// capped at 1.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]).then(a.cmp(&b)));
    let mut adjusted = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &idx) in order.iter().enumerate().rev() {
        let candidate = p_values[idx] * m as f64 / (rank + 1) as f64;
        running = running.min(candidate);
        adjusted[idx] = running.min(1.0);
    }
    adjusted
}

/// The q-quantile of a sorted sample by linear interpolation between order
/// statistics (type 7, numpy's default). NaN for an empty sample.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
            let lo = h.floor() as usize;
            let frac = h - lo as f64;
            if lo + 1 >= n {
                sorted[n - 1]
            } else {
                sorted[lo] + frac * (sorted[lo + 1] - sorted[lo])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Reference numbers computed with Python 3.11.7, scipy 1.17.1 and
    //! statsmodels 0.15.0 (the calls are given next to each case).

    use super::*;

    fn close(a: f64, b: f64, what: &str) {
        let tol = 1e-9 * b.abs().max(1.0);
        assert!((a - b).abs() <= tol, "{what}: got {a:.15}, want {b:.15}");
    }

    #[test]
    fn z_critical_is_the_normal_quantile() {
        // scipy.stats.norm.ppf(0.975)
        close(z_critical(0.95), 1.959963984540054, "z 0.95");
    }

    #[test]
    fn wilson_matches_statsmodels() {
        // statsmodels.stats.proportion.proportion_confint(count, nobs, alpha=0.05, method="wilson")
        let cases = [
            (7, 20, 0.18119182410108203, 0.5671457233147638),
            (0, 12, 0.0, 0.24249400665524096),
            (12, 12, 0.7575059933447589, 0.9999999999999999),
            (431, 1000, 0.4006284437674723, 0.4618996489035343),
        ];
        for (k, n, lo, hi) in cases {
            let i = wilson(k, n, 0.95).expect("n > 0");
            close(i.low, lo, &format!("wilson low {k}/{n}"));
            close(i.high, hi, &format!("wilson high {k}/{n}"));
        }
        assert!(wilson(1, 0, 0.95).is_none());
    }

    #[test]
    fn katz_matches_statsmodels() {
        // confint_proportions_2indep(c1, n1, c2, n2, compare="ratio", method="log")
        let cases = [
            (60, 100, 25, 100, 1.6489920254082588, 3.493042968824505),
            (9, 40, 30, 90, 0.35411069719023897, 1.2866739231975943),
        ];
        for (a, n1, c, n2, lo, hi) in cases {
            let i = katz_ratio_interval(a, n1, c, n2, 0.95).expect("counts > 0");
            close(i.low, lo, "katz low");
            close(i.high, hi, "katz high");
        }
        assert!(katz_ratio_interval(0, 10, 3, 10, 0.95).is_none());
    }

    #[test]
    fn two_proportion_z_matches_statsmodels() {
        // statsmodels.stats.proportion.proportions_ztest([c1, c2], [n1, n2])
        let cases = [
            (60, 100, 25, 100, 5.006389778965061, 5.546039536257687e-07),
            (9, 40, 30, 90, -1.244033378820298, 0.21348727839019432),
        ];
        for (a, n1, c, n2, z, p) in cases {
            let t = two_proportion_z(a, n1, c, n2).expect("n > 0");
            close(t.statistic, z, "z");
            close(t.p_value, p, "p");
        }
        let same = two_proportion_z(0, 10, 0, 20).expect("n > 0");
        assert_eq!(same.p_value, 1.0);
    }

    #[test]
    fn chi_square_matches_scipy() {
        // scipy.stats.chi2_contingency(table without the all-zero row, correction=False)
        let table = vec![
            vec![30, 10, 5],
            vec![20, 25, 10],
            vec![0, 0, 0],
            vec![15, 15, 20],
        ];
        let (t, df) = chi_square_independence(&table).expect("2+ rows");
        assert_eq!(df, 4);
        close(t.statistic, 22.03812853812854, "chi2");
        close(t.p_value, 0.00019694812459750984, "p");
        assert!(chi_square_independence(&[vec![3, 4]]).is_none());
    }

    /// 40 customers, 30 tickets each, each customer always routed the same
    /// way: 360/240 against 240/360 tickets is chi-square 48 as if the
    /// tickets were independent; with the design effect of 30 it is 1.6,
    /// p = 0.2059 (1 degree of freedom: erfc(sqrt(1.6 / 2))).
    #[test]
    fn repeated_rows_per_person_widen_the_chi_square_test() {
        let table = vec![vec![360, 240], vec![240, 360]];
        let (naive, _) = chi_square_independence(&table).expect("2x2");
        close(naive.statistic, 48.0, "chi2");
        let (t, df) = chi_square_independence_deff(&table, 30.0).expect("2x2");
        assert_eq!(df, 1);
        close(t.statistic, 1.6, "chi2 / deff");
        close(t.p_value, 0.20590321073206833, "p");
        let (floor, _) = chi_square_independence_deff(&table, 0.5).expect("2x2");
        close(floor.statistic, 48.0, "a design effect below 1 is 1");
    }

    #[test]
    fn mann_whitney_matches_scipy() {
        // scipy.stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")
        let x = [1.0, 2.0, 2.0, 3.0, 5.0, 8.0, 8.0, 9.5];
        let y = [2.0, 3.0, 3.0, 4.0, 6.0, 7.0, 10.0, 11.0, 12.0, 12.0];
        let t = mann_whitney_u(&x, &y).expect("non-empty");
        close(t.statistic, 25.0, "U");
        close(t.p_value, 0.19530001923435392, "p");
        assert!(mann_whitney_u(&[], &y).is_none());
        assert!(mann_whitney_u(&[1.0, 1.0], &[1.0]).is_none(), "all tied");
    }

    /// Differential test: against a prepared reference sample the test
    /// equals the merge bit for bit, on samples with and without ties, of
    /// equal and very unequal sizes, with −0.0 beside 0.0, and unsorted.
    #[test]
    fn mann_whitney_against_a_reference_equals_the_merge() {
        use rand::Rng;
        let mut r = crate::fairness::bootstrap::rng(5);
        // levels 0: continuous values; else whole numbers from -2 on
        let mut draw = |n: usize, levels: u32| -> Vec<f64> {
            let mut v: Vec<f64> = (0..n)
                .map(|_| {
                    if levels == 0 {
                        return r.random::<f64>() * 10.0;
                    }
                    let v = f64::from(r.random_range(0..levels)) - 2.0;
                    if v == 0.0 && r.random_bool(0.5) {
                        -0.0
                    } else {
                        v
                    }
                })
                .collect();
            v.sort_unstable_by(f64::total_cmp);
            v
        };
        let bits = |t: TestResult| (t.statistic.to_bits(), t.p_value.to_bits());
        let sizes = [
            (1, 1),
            (0, 5),
            (5, 0),
            (3, 500),
            (500, 3),
            (40, 40),
            (7, 2000),
            (2000, 7),
            (300, 900),
        ];
        let mut compared = 0;
        for (nx, ny) in sizes {
            for levels in [0, 1, 2, 5, 50] {
                for deff in [1.0, 2.7] {
                    let (x, y) = (draw(nx, levels), draw(ny, levels));
                    let reference = MannWhitneyReference::new(&y);
                    let want = mann_whitney_u_deff(&x, &y, deff);
                    let got = mann_whitney_u_deff_against(&x, &reference, deff);
                    assert_eq!(
                        want.map(bits),
                        got.map(bits),
                        "{nx} vs {ny} values of {levels} levels"
                    );
                    compared += usize::from(want.is_some());
                    let mut unsorted = x.clone();
                    unsorted.reverse();
                    assert_eq!(
                        mann_whitney_u_deff(&unsorted, &y, deff).map(bits),
                        mann_whitney_u_deff_against(&unsorted, &reference, deff).map(bits)
                    );
                }
            }
        }
        assert!(compared > 40, "{compared} tests had a result");
    }

    #[test]
    fn welch_matches_scipy() {
        // scipy.stats.ttest_ind(x, y, equal_var=False)
        let x = [0.2, -0.1, 0.4, 0.35, -0.3, 0.1, 0.05];
        let y = [-0.4, -0.2, 0.0, -0.35, -0.5, 0.1, -0.25, -0.15, -0.3];
        let t = welch_t(Moments::of(&x), Moments::of(&y)).expect("n >= 2");
        close(t.statistic, 2.9055881703797963, "t");
        close(t.p_value, 0.014209688384223205, "p");
    }

    #[test]
    fn design_effects_widen_and_one_changes_nothing() {
        let plain = two_proportion_z(60, 100, 25, 100).expect("n > 0");
        assert_eq!(
            two_proportion_z_deff(60, 100, 1.0, 25, 100, 1.0),
            Some(plain)
        );
        let wide = two_proportion_z_deff(60, 100, 2.0, 25, 100, 2.0).expect("n > 0");
        close(
            wide.statistic,
            plain.statistic / 2f64.sqrt(),
            "z / sqrt(deff)",
        );
        let k = katz_ratio_interval_deff(60, 100, 3.0, 25, 100, 1.5, 0.95).expect("counts");
        let k1 = katz_ratio_interval(60, 100, 25, 100, 0.95).expect("counts");
        assert!(k.low < k1.low && k.high > k1.high);
        let w = wilson_effective(0.35, 20.0, 0.95).expect("n > 0");
        let w1 = wilson(7, 20, 0.95).expect("n > 0");
        close(w.low, w1.low, "same n, same interval");
        let x = [1.0, 2.0, 2.0, 3.0, 5.0, 8.0, 8.0, 9.5];
        let y = [2.0, 3.0, 3.0, 4.0, 6.0, 7.0, 10.0, 11.0, 12.0, 12.0];
        let m = mann_whitney_u_deff(&x, &y, 2.0).expect("non-empty");
        assert!(m.p_value > mann_whitney_u(&x, &y).expect("non-empty").p_value);
    }

    /// Moments of samples pushed interleaved equal each sample's own.
    #[test]
    fn interleaved_welford_equals_moments_of_each_sample() {
        use rand::Rng;
        let mut r = crate::fairness::bootstrap::rng(8);
        let groups: Vec<u32> = (0..5000).map(|_| r.random_range(0..4)).collect();
        let values: Vec<f64> = (0..5000).map(|_| r.random::<f64>() * 50.0 - 7.0).collect();
        let mut running = [Welford::default(); 4];
        let mut samples = vec![Vec::new(); 4];
        for (&g, &v) in groups.iter().zip(&values) {
            running[g as usize].push(v);
            samples[g as usize].push(v);
        }
        for (w, s) in running.iter().zip(&samples) {
            let (a, b) = (w.moments(), Moments::of(s));
            assert_eq!(
                (a.n, a.mean.to_bits(), a.variance.to_bits()),
                (b.n, b.mean.to_bits(), b.variance.to_bits())
            );
        }
    }

    #[test]
    fn benjamini_hochberg_matches_statsmodels() {
        // statsmodels.stats.multitest.multipletests(p, method="fdr_bh")[1]
        let p = [0.01, 0.04, 0.03, 0.005, 0.5, 0.04, 0.9];
        let want = [0.035, 0.056, 0.056, 0.035, 0.5833333333333334, 0.056, 0.9];
        for (got, want) in benjamini_hochberg(&p).iter().zip(want) {
            close(*got, want, "bh");
        }
        assert!(benjamini_hochberg(&[]).is_empty());
    }

    #[test]
    fn quantile_matches_numpy() {
        // numpy.quantile([1, 2, 4, 7, 11], [0.5, 0.9, 0.25])
        let s = [1.0, 2.0, 4.0, 7.0, 11.0];
        close(quantile_sorted(&s, 0.5), 4.0, "median");
        close(quantile_sorted(&s, 0.9), 9.4, "p90");
        close(quantile_sorted(&s, 0.25), 2.0, "p25");
        assert!(quantile_sorted(&[], 0.5).is_nan());
    }
}
