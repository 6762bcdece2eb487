//! Design effects of repeated rows per person.
//!
//! A decision table often has several rows per customer (tickets, offers,
//! messages), and one customer's rows are alike: a customer routed to the
//! bot once is likely routed there again. Treating rows as independent then
//! overstates the evidence — on the generated business it turned a region
//! holding a few heavy ticket writers aged 65+ into a "significant"
//! disparity. Each group's estimate therefore gets a design effect: the
//! cluster-robust variance (customers as clusters, the CR1 sandwich
//! estimator statsmodels uses for `cov_type="cluster"`) over the variance
//! that assumes independent rows. Intervals and tests are widened by it; it
//! is never below 1, and it is exactly 1 when no customer has more than one
//! row, so unclustered tables get the textbook numbers.

use std::ops::Range;

/// Cluster totals of one group: for clusters c with m_c rows and total y_c.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClusterSums {
    pub clusters: u64,
    pub rows: u64,
    /// Σ y over rows (= Σ y_c)
    pub sum_y: f64,
    /// Σ y² over rows
    pub sum_y2_rows: f64,
    /// Σ m_c²
    pub sum_m2: f64,
    /// Σ y_c m_c
    pub sum_ym: f64,
    /// Σ y_c²
    pub sum_y2: f64,
    /// The largest cluster.
    pub max_m: u64,
}

impl ClusterSums {
    /// The mean of y over rows.
    pub fn mean(&self) -> f64 {
        self.sum_y / self.rows as f64
    }

    /// The variance of the mean of y if rows were independent: s²/n.
    pub fn simple_variance(&self) -> f64 {
        if self.rows < 2 {
            return 0.0;
        }
        let n = self.rows as f64;
        let m = self.mean();
        ((self.sum_y2_rows - n * m * m) / (n - 1.0)).max(0.0) / n
    }

    /// Whether some cluster has more than one row.
    pub fn clustered(&self) -> bool {
        self.max_m > 1
    }

    /// CR1 cluster-robust variance of the group's mean of y when the mean
    /// is `mean`: C/(C−1) · Σ_c (y_c − mean·m_c)² / n². `None` with fewer
    /// than two clusters.
    pub fn robust_variance(&self, mean: f64) -> Option<f64> {
        if self.clusters < 2 || self.rows == 0 {
            return None;
        }
        let c = self.clusters as f64;
        let n = self.rows as f64;
        let ss = (self.sum_y2 - 2.0 * mean * self.sum_ym + mean * mean * self.sum_m2).max(0.0);
        Some(c / (c - 1.0) * ss / (n * n))
    }

    /// Adds one cluster of `m` rows whose y total is `yc` and whose Σ y²
    /// over rows is `squares`.
    fn add(&mut self, m: u64, yc: f64, squares: f64) {
        let mf = m as f64;
        self.clusters += 1;
        self.rows += m;
        self.sum_y += yc;
        self.sum_y2_rows += squares;
        self.sum_m2 += mf * mf;
        self.sum_ym += yc * mf;
        self.sum_y2 += yc * yc;
        self.max_m = self.max_m.max(m);
    }

    /// The design effect against `simple_variance` (the variance of the
    /// same estimate for independent rows): at least 1, exactly 1 without
    /// repeated rows or when either variance is not positive.
    pub fn design_effect(&self, mean: f64, simple_variance: f64) -> f64 {
        if !self.clustered() || simple_variance <= 0.0 || !simple_variance.is_finite() {
            return 1.0;
        }
        match self.robust_variance(mean) {
            Some(v) if v.is_finite() => (v / simple_variance).max(1.0),
            _ => 1.0,
        }
    }
}

/// Per group of `codes` (groups `0..groups`), the cluster sums of `y` over
/// the rows where `mask` holds. `subjects` must be sorted (rows of one
/// subject adjacent); a subject's rows in one group form one cluster (a
/// subject whose group changes between rows forms one cluster per group).
pub fn cluster_sums(
    subjects: &[u32],
    codes: &[u32],
    groups: usize,
    mask: &[bool],
    y: impl Fn(usize) -> f64,
) -> Vec<ClusterSums> {
    cluster_sums_multi(subjects, codes, groups, mask, 1, |r, out| out[0] = y(r))
        .pop()
        .unwrap_or_default()
}

/// [`cluster_sums`] of `k` row variables at once (`fill(row, values)`
/// writes the row's `k` values): one pass over the rows for all of them.
/// Returns `[variable][group]`.
pub fn cluster_sums_multi(
    subjects: &[u32],
    codes: &[u32],
    groups: usize,
    mask: &[bool],
    k: usize,
    fill: impl Fn(usize, &mut [f64]),
) -> Vec<Vec<ClusterSums>> {
    let mut out = vec![vec![ClusterSums::default(); groups]; k];
    // The current subject's partial clusters, one per group it touches
    // (almost always exactly one): (group, rows), with their k totals in
    // `totals` at the same position.
    let mut open: Vec<(u32, u64)> = Vec::new();
    let mut totals: Vec<f64> = Vec::new();
    // Σ y² over the current subject's rows, per open cluster and variable.
    let mut squares: Vec<f64> = Vec::new();
    let mut row = vec![0.0; k];
    let flush = |open: &mut Vec<(u32, u64)>,
                 totals: &mut Vec<f64>,
                 squares: &mut Vec<f64>,
                 out: &mut [Vec<ClusterSums>]| {
        for (i, (g, m)) in open.drain(..).enumerate() {
            for (v, per_group) in out.iter_mut().enumerate() {
                per_group[g as usize].add(m, totals[i * k + v], squares[i * k + v]);
            }
        }
        totals.clear();
        squares.clear();
    };
    let mut current = None;
    for r in 0..subjects.len() {
        if !mask[r] || codes[r] as usize >= groups {
            continue;
        }
        if current != Some(subjects[r]) {
            flush(&mut open, &mut totals, &mut squares, &mut out);
            current = Some(subjects[r]);
        }
        let g = codes[r];
        fill(r, &mut row);
        let slot = match open.iter().position(|(og, _)| *og == g) {
            Some(i) => i,
            None => {
                open.push((g, 0));
                totals.extend(std::iter::repeat_n(0.0, k));
                squares.extend(std::iter::repeat_n(0.0, k));
                open.len() - 1
            }
        };
        open[slot].1 += 1;
        let range = slot * k..(slot + 1) * k;
        for ((t, q), v) in totals[range.clone()]
            .iter_mut()
            .zip(&mut squares[range])
            .zip(&row)
        {
            *t += v;
            *q += v * v;
        }
    }
    flush(&mut open, &mut totals, &mut squares, &mut out);
    out
}

/// Most row variables whose per-subject totals [`SubjectClusters`] keeps
/// (the nightly's outcomes have at most three categories).
pub const MAX_SHARED_VARIABLES: usize = 8;

/// A population's clusters (each subject's run of rows where the mask
/// holds) with the totals of `k` row variables per cluster: summed over
/// the rows once, then split by each dimension whose group is the same on
/// all of a subject's rows in a pass over the clusters. The audit cuts
/// every population fifteen ways (five attributes and their pairs), and
/// summing the rows again for each cut was the largest cost of the
/// fairness job's audit.
///
/// Each split equals [`cluster_sums_multi`] over the rows, bit for bit: a
/// cluster's totals are added up row by row in the same order from the
/// same zero, and the clusters are added to their groups in row order.
#[derive(Debug, Clone)]
pub struct SubjectClusters {
    k: usize,
    /// Whether the totals are kept: they cost 16·k bytes per subject, so a
    /// categorical outcome with many labels (a file audit's free column)
    /// adds up its rows per dimension instead.
    shared: bool,
    /// Per cluster, in row order: its subject.
    subjects: Vec<u32>,
    /// Per cluster: its rows where the mask holds.
    rows: Vec<u64>,
    /// Per cluster: its first row to one past its last (rows outside the
    /// mask may lie between).
    spans: Vec<Range<usize>>,
    /// `[cluster * k + variable]`: Σ y over the cluster's rows.
    totals: Vec<f64>,
    /// `[cluster * k + variable]`: Σ y² over the cluster's rows.
    squares: Vec<f64>,
}

impl SubjectClusters {
    /// The clusters of the rows where `mask` holds, with their totals of
    /// `k` row variables (`fill(row, values)`). `subjects` must be sorted,
    /// as for [`cluster_sums`].
    pub fn new(
        subjects: &[u32],
        mask: &[bool],
        k: usize,
        fill: impl Fn(usize, &mut [f64]),
    ) -> SubjectClusters {
        let shared = k <= MAX_SHARED_VARIABLES;
        let mut c = SubjectClusters {
            k,
            shared,
            subjects: Vec::new(),
            rows: Vec::new(),
            spans: Vec::new(),
            totals: Vec::new(),
            squares: Vec::new(),
        };
        let mut row = vec![0.0; k];
        for r in (0..subjects.len()).filter(|&r| mask[r]) {
            if c.subjects.last() != Some(&subjects[r]) {
                c.subjects.push(subjects[r]);
                c.rows.push(0);
                c.spans.push(r..r);
                if shared {
                    c.totals.extend(std::iter::repeat_n(0.0, k));
                    c.squares.extend(std::iter::repeat_n(0.0, k));
                }
            }
            let i = c.subjects.len() - 1;
            c.rows[i] += 1;
            c.spans[i].end = r + 1;
            if !shared {
                continue;
            }
            fill(r, &mut row);
            let range = i * k..(i + 1) * k;
            for ((t, q), v) in c.totals[range.clone()]
                .iter_mut()
                .zip(&mut c.squares[range])
                .zip(&row)
            {
                *t += v;
                *q += v * v;
            }
        }
        c
    }

    /// The number of row variables summed per cluster.
    pub fn variables(&self) -> usize {
        self.k
    }

    /// Whether [`by_group`](Self::by_group) can split the clusters' totals
    /// (kept for at most [`MAX_SHARED_VARIABLES`] variables).
    pub fn shares_totals(&self) -> bool {
        self.shared
    }

    /// Per variable and group (`0..groups`), the cluster sums of a
    /// dimension whose group is `group_of[subject]` on every row of the
    /// subject; subjects whose group is missing (any code from `groups` on)
    /// are left out, as [`cluster_sums_multi`] leaves out their rows.
    pub fn by_group(&self, group_of: &[u32], groups: usize) -> Vec<Vec<ClusterSums>> {
        let k = self.k;
        let mut out = vec![vec![ClusterSums::default(); groups]; k];
        for (i, &s) in self.subjects.iter().enumerate() {
            let g = group_of[s as usize] as usize;
            if g >= groups {
                continue;
            }
            for (v, per_group) in out.iter_mut().enumerate() {
                per_group[g].add(
                    self.rows[i],
                    self.totals[i * k + v],
                    self.squares[i * k + v],
                );
            }
        }
        out
    }

    /// [`by_group`](Self::by_group) for `k` other row variables whose
    /// values depend on the row's group (`fill(row, group, values)`: whether
    /// a value is below its group's median), summed again over each
    /// cluster's rows. `mask` must be the one the clusters were made with.
    pub fn by_group_with(
        &self,
        group_of: &[u32],
        groups: usize,
        mask: &[bool],
        k: usize,
        fill: impl Fn(usize, usize, &mut [f64]),
    ) -> Vec<Vec<ClusterSums>> {
        let mut out = vec![vec![ClusterSums::default(); groups]; k];
        let (mut row, mut totals, mut squares) = (vec![0.0; k], vec![0.0; k], vec![0.0; k]);
        for (i, &s) in self.subjects.iter().enumerate() {
            let g = group_of[s as usize] as usize;
            if g >= groups {
                continue;
            }
            totals.fill(0.0);
            squares.fill(0.0);
            for r in self.spans[i].clone().filter(|&r| mask[r]) {
                fill(r, g, &mut row);
                for ((t, q), v) in totals.iter_mut().zip(&mut squares).zip(&row) {
                    *t += v;
                    *q += v * v;
                }
            }
            for (v, per_group) in out.iter_mut().enumerate() {
                per_group[g].add(self.rows[i], totals[v], squares[v]);
            }
        }
        out
    }
}

/// Without subjects every row is its own cluster.
pub fn unclustered(
    codes: &[u32],
    groups: usize,
    mask: &[bool],
    y: impl Fn(usize) -> f64,
) -> Vec<ClusterSums> {
    let mut out = vec![ClusterSums::default(); groups];
    for r in 0..codes.len() {
        if mask[r] && (codes[r] as usize) < groups {
            let v = y(r);
            let s = &mut out[codes[r] as usize];
            s.clusters += 1;
            s.rows += 1;
            s.sum_y += v;
            s.sum_y2_rows += v * v;
            s.sum_m2 += 1.0;
            s.sum_ym += v;
            s.sum_y2 += v * v;
            s.max_m = 1;
        }
    }
    out
}

/// Every field of each cluster sum, floats as their bits: what the
/// differential tests compare for equality to the bit.
#[cfg(test)]
pub(crate) fn bits(sums: &[Vec<ClusterSums>]) -> Vec<[u64; 8]> {
    sums.iter()
        .flatten()
        .map(|s| {
            [
                s.clusters,
                s.rows,
                s.sum_y.to_bits(),
                s.sum_y2_rows.to_bits(),
                s.sum_m2.to_bits(),
                s.sum_ym.to_bits(),
                s.sum_y2.to_bits(),
                s.max_m,
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;
    use crate::fairness::bootstrap::rng;
    use crate::fairness::table::MISSING;

    /// statsmodels 0.15.0: `OLS(y, ones).fit(cov_type="cluster",
    /// cov_kwds={"groups": cluster}).bse[0] ** 2` is the CR1 variance of the
    /// mean; `OLS(y, ones).fit().bse[0] ** 2` the independent one.
    #[test]
    fn robust_variance_matches_statsmodels_cluster_ols() {
        let cases: [(&[f64], &[u32], f64, f64); 2] = [
            (
                &[1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 2.5],
                &[0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 4, 5],
                0.04872685185185191,
                0.04719065656565659,
            ),
            (
                &[
                    1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0,
                ],
                &[0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 5],
                0.051626666666666654,
                0.01714285714285714,
            ),
        ];
        for (y, cluster, robust, simple) in cases {
            let n = y.len();
            let sums = cluster_sums(cluster, &vec![0; n], 1, &vec![true; n], |r| y[r]);
            let s = sums[0];
            assert_eq!(s.clusters, 6);
            let mean = y.iter().sum::<f64>() / n as f64;
            let v = s.robust_variance(mean).expect("6 clusters");
            assert!((v - robust).abs() < 1e-12, "{v} vs {robust}");
            let own_simple =
                y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64 / n as f64;
            assert!((own_simple - simple).abs() < 1e-12);
            let d = s.design_effect(mean, simple);
            assert!((d - robust / simple).abs() < 1e-9, "{d}");
            assert!((s.mean() - mean).abs() < 1e-12);
            assert!((s.simple_variance() - simple).abs() < 1e-12);
        }
    }

    #[test]
    fn design_effect_is_one_without_repeated_rows() {
        let y = [1.0, 0.0, 1.0, 1.0];
        let sums = cluster_sums(&[0, 1, 2, 3], &[0, 0, 0, 0], 1, &[true; 4], |r| y[r]);
        assert!(!sums[0].clustered());
        assert_eq!(sums[0].design_effect(0.75, 0.75 * 0.25 / 4.0), 1.0);
        assert_eq!(
            unclustered(&[0, 0, 0, 0], 1, &[true; 4], |r| y[r])[0],
            sums[0]
        );
    }

    /// Identical customers with many rows: the effective sample is the
    /// number of customers, so the design effect is about the rows per
    /// customer.
    #[test]
    fn identical_rows_count_once() {
        // 10 customers × 5 identical rows; half say 1.
        let subjects: Vec<u32> = (0..50).map(|r| r / 5).collect();
        let y: Vec<f64> = subjects.iter().map(|&s| f64::from(s % 2)).collect();
        let sums = cluster_sums(&subjects, &[0; 50], 1, &[true; 50], |r| y[r]);
        let d = sums[0].design_effect(0.5, 0.25 / 50.0);
        assert!((d - 5.0 * 10.0 / 9.0).abs() < 1e-9, "{d}");
    }

    #[test]
    fn several_variables_in_one_pass_equal_one_at_a_time() {
        let subjects = [0u32, 0, 1, 1, 1, 2, 3, 3];
        let codes = [0u32, 0, 1, 0, 1, 1, 0, 0];
        let y = [1.0, 2.0, 0.5, 3.0, 1.5, 2.0, 0.0, 4.0];
        let mask = [true, true, true, true, false, true, true, true];
        let multi = cluster_sums_multi(&subjects, &codes, 2, &mask, 2, |r, out| {
            out[0] = y[r];
            out[1] = y[r] * y[r];
        });
        assert_eq!(
            multi[0],
            cluster_sums(&subjects, &codes, 2, &mask, |r| y[r])
        );
        assert_eq!(
            multi[1],
            cluster_sums(&subjects, &codes, 2, &mask, |r| y[r] * y[r])
        );
    }

    /// Subjects 0..300 in order with 1–6 rows each, a group per subject
    /// (one in twenty missing), a mask, and values with and without ties.
    struct Population {
        subjects: Vec<u32>,
        group_of: Vec<u32>,
        codes: Vec<u32>,
        mask: Vec<bool>,
        y: Vec<f64>,
    }

    fn population(seed: u64, groups: u32) -> Population {
        let mut r = rng(seed);
        let group_of: Vec<u32> = (0..300)
            .map(|_| {
                if r.random_bool(0.05) {
                    MISSING
                } else {
                    r.random_range(0..groups)
                }
            })
            .collect();
        let (mut subjects, mut codes) = (Vec::new(), Vec::new());
        for (s, &g) in group_of.iter().enumerate() {
            for _ in 0..r.random_range(1..=6) {
                subjects.push(s as u32);
                codes.push(g);
            }
        }
        let n = subjects.len();
        let mask = (0..n).map(|_| r.random_bool(0.8)).collect();
        let y = (0..n)
            .map(|_| {
                if r.random_bool(0.3) {
                    f64::from(r.random_range(0..5u8))
                } else {
                    r.random::<f64>() * 100.0 - 30.0
                }
            })
            .collect();
        Population {
            subjects,
            group_of,
            codes,
            mask,
            y,
        }
    }

    /// Differential test: the subjects' totals split by group equal a pass
    /// over the rows (the reference, [`cluster_sums_multi`]) bit for bit,
    /// for variables every dimension shares and for variables that depend
    /// on the group.
    #[test]
    fn subject_clusters_split_like_a_pass_over_the_rows() {
        for seed in 0..20u64 {
            let groups = 1 + (seed % 7) as usize;
            let p = population(seed, groups as u32);
            let fill = |r: usize, out: &mut [f64]| {
                out[0] = p.y[r];
                out[1] = p.y[r] * 0.37 + 1.0;
            };
            let cuts: Vec<f64> = (0..groups).map(|g| g as f64 * 10.0).collect();
            let grouped = |r: usize, g: usize, out: &mut [f64]| {
                out[0] = f64::from(u8::from(p.y[r] <= cuts[g]));
                out[1] = p.y[r] - cuts[g];
            };
            let rows = cluster_sums_multi(&p.subjects, &p.codes, groups, &p.mask, 4, |r, out| {
                fill(r, &mut out[..2]);
                grouped(r, p.codes[r] as usize, &mut out[2..]);
            });
            let people = SubjectClusters::new(&p.subjects, &p.mask, 2, fill);
            assert_eq!(people.variables(), 2);
            let mut split = people.by_group(&p.group_of, groups);
            split.extend(people.by_group_with(&p.group_of, groups, &p.mask, 2, grouped));
            assert_eq!(split.len(), 4);
            assert_eq!(bits(&split), bits(&rows), "seed {seed}");
        }
    }

    #[test]
    fn a_subject_in_two_groups_makes_two_clusters() {
        let sums = cluster_sums(&[7, 7, 7, 8], &[0, 1, 0, 1], 2, &[true; 4], |_| 1.0);
        assert_eq!((sums[0].clusters, sums[0].rows, sums[0].max_m), (1, 2, 2));
        assert_eq!((sums[1].clusters, sums[1].rows), (2, 2));
    }
}
