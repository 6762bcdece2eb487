//! The statistics behind the voice scores: point estimates with 95%
//! intervals for NPS, CSAT and means, the z-test of a change between two
//! periods, Spearman's rank correlation and the median with its
//! distribution-free interval.
//!
//! Every estimate carries its standard error so that two independent
//! estimates can be compared with [`change_z`].

use statrs::distribution::{ContinuousCDF, StudentsT};

/// The 97.5% quantile of the standard normal: two-sided 95% intervals.
pub const Z95: f64 = 1.959_963_984_540_054;

/// A point estimate with its standard error and 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Observations behind the estimate.
    pub n: u64,
    pub value: f64,
    /// Where the interval and comparisons are centred: for counts, the
    /// estimate with pseudo-answers added (see [`net_promoter_score`] and
    /// [`share_wilson`]), which keeps them honest at small n and at 0% or
    /// 100%; otherwise `value`.
    pub centre: f64,
    /// Standard error of `centre` (used for comparisons between periods).
    pub se: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// Net Promoter Score in points (−100 to 100): % promoters (9–10) minus %
/// detractors (0–6), with Rocks's adjusted Wald interval.
///
/// With p the promoter share and d the detractor share of n answers, the
/// per-answer variable is +1 (promoter), 0 (passive) or −1 (detractor); its
/// variance is p + d − (p − d)², so var(NPS/100) = (p + d − (p − d)²) / n.
/// The plain Wald interval on that variance collapses at the extremes (ten
/// promoters of ten give [100, 100]) and covers the truth far less than 95%
/// of the time at small n. The adjusted Wald interval adds three
/// pseudo-answers first: ¾ promoter, ¾ detractor and 1½ passive (Rocks, B.
/// (2016). "Interval estimation for the 'net promoter score'". The American
/// Statistician 70(4), 365–372): its exact coverage at n = 10 with 90%
/// promoters and 2% detractors is 0.93 (plain Wald: 0.65). The score
/// itself stays the plain one; the interval is clamped to [−100, 100] and
/// holds it. `None` when `n` is 0.
pub fn net_promoter_score(n: u64, promoters: u64, detractors: u64) -> Option<Estimate> {
    if n == 0 || promoters + detractors > n {
        return None;
    }
    let nf = n as f64;
    let value = 100.0 * (promoters as f64 - detractors as f64) / nf;
    let adjusted = nf + 3.0;
    let p = (promoters as f64 + 0.75) / adjusted;
    let d = (detractors as f64 + 0.75) / adjusted;
    let diff = p - d;
    let se = 100.0 * ((p + d - diff * diff) / adjusted).max(0.0).sqrt();
    let centre = 100.0 * diff;
    Some(Estimate {
        n,
        value,
        centre,
        se,
        ci_low: (centre - Z95 * se).max(-100.0).min(value),
        ci_high: (centre + Z95 * se).min(100.0).max(value),
    })
}

/// A share in percent (CSAT: % of answers 4–5) with the Wilson score
/// interval (Wilson, E. B. (1927). JASA 22(158), 209–212), which stays
/// inside [0, 100] and keeps its coverage near 0% and 100% where the Wald
/// interval collapses. Comparisons between periods use the share with one
/// success and one failure added, p̃ = (k + 1)/(n + 2), and its standard
/// error √(p̃(1−p̃)/(n + 2)): the difference of two such shares is Agresti
/// and Caffo's interval (Agresti, A. & Caffo, B. (2000). The American
/// Statistician 54(4), 280–288), which does not call 12 of 12 after 85 of
/// 100 a significant rise as the plain Wald test does. `None` when `n` is 0.
pub fn share_wilson(n: u64, hits: u64) -> Option<Estimate> {
    if n == 0 || hits > n {
        return None;
    }
    let nf = n as f64;
    let p = hits as f64 / nf;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / nf;
    let center = (p + z2 / (2.0 * nf)) / denom;
    let half = Z95 / denom * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
    let tilde = (hits as f64 + 1.0) / (nf + 2.0);
    Some(Estimate {
        n,
        value: 100.0 * p,
        centre: 100.0 * tilde,
        se: 100.0 * (tilde * (1.0 - tilde) / (nf + 2.0)).sqrt(),
        // At p = 0 or 1 the bound equals p exactly in theory; rounding must
        // not leave the estimate outside its own interval.
        ci_low: 100.0 * (center - half).max(0.0).min(p),
        ci_high: 100.0 * (center + half).min(1.0).max(p),
    })
}

/// The mean of n values given their sum and sum of squares, with a Student
/// t interval (n − 1 degrees of freedom). `None` when `n` is 0; with n = 1
/// the interval is unknown and set to the value itself with an infinite
/// standard error.
pub fn mean_t(n: u64, sum: f64, sum_sq: f64) -> Option<Estimate> {
    if n == 0 {
        return None;
    }
    let nf = n as f64;
    let mean = sum / nf;
    if n == 1 {
        return Some(Estimate {
            n,
            value: mean,
            centre: mean,
            se: f64::INFINITY,
            ci_low: mean,
            ci_high: mean,
        });
    }
    // Sum of squared deviations; tiny negatives are rounding error.
    let ss = (sum_sq - sum * sum / nf).max(0.0);
    let sd = (ss / (nf - 1.0)).sqrt();
    let se = sd / nf.sqrt();
    let t = t_quantile_975(n - 1);
    Some(Estimate {
        n,
        value: mean,
        centre: mean,
        se,
        ci_low: mean - t * se,
        ci_high: mean + t * se,
    })
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom.
pub fn t_quantile_975(df: u64) -> f64 {
    StudentsT::new(0.0, 1.0, df as f64)
        .map(|t| t.inverse_cdf(0.975))
        .unwrap_or(Z95)
}

/// z statistic of the change from `previous` to `current`, two
/// independent estimates: the difference of their centres over
/// √(se_c² + se_p²). `None` when either standard error is not finite or
/// both are 0.
pub fn change_z(current: &Estimate, previous: &Estimate) -> Option<f64> {
    let var = current.se * current.se + previous.se * previous.se;
    if !var.is_finite() || var <= 0.0 {
        return None;
    }
    Some((current.centre - previous.centre) / var.sqrt())
}

/// Whether a change is significant at the two-sided 5% level.
pub fn significant(z: f64) -> bool {
    z.abs() > Z95
}

/// The difference `a − b` of two independent estimates, with its interval.
pub fn difference(a: &Estimate, b: &Estimate) -> Estimate {
    let se = (a.se * a.se + b.se * b.se).sqrt();
    let value = a.value - b.value;
    let centre = a.centre - b.centre;
    Estimate {
        n: a.n + b.n,
        value,
        centre,
        se,
        ci_low: (centre - Z95 * se).min(value),
        ci_high: (centre + Z95 * se).max(value),
    }
}

/// Ranks 1..n with ties given their average rank.
fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        // Positions i..=j (0-based) share the mean of ranks i+1..=j+1.
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's rank correlation: Pearson's correlation of the average ranks,
/// which is the definition that stays correct with ties (star ratings have
/// many). `None` with fewer than 3 pairs or when one side is constant.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 3 {
        return None;
    }
    let (rx, ry) = (average_ranks(x), average_ranks(y));
    let n = rx.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    Some(sxy / (sxx * syy).sqrt())
}

/// The median of `values` (sorted in place) with a distribution-free 95%
/// interval from order statistics: ranks n/2 ∓ 1.96·√n/2 (the normal
/// approximation to the binomial, Conover 1999, §3.2). `None` when empty.
pub fn median_with_interval(values: &mut [f64]) -> Option<Estimate> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    let nf = n as f64;
    let half = Z95 * nf.sqrt() / 2.0;
    // 1-based ranks, rounded outwards, kept inside 1..=n.
    let lo = ((nf / 2.0 - half).floor().max(1.0) as usize).min(n);
    let hi = ((nf / 2.0 + half).ceil() as usize + 1).clamp(1, n);
    Some(Estimate {
        n: n as u64,
        value: median,
        centre: median,
        se: f64::NAN,
        ci_low: values[lo - 1],
        ci_high: values[hi - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256Plus;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// Hand computation on 20 answers: 9 promoters, 6 passives, 5 detractors.
    /// NPS = 100 · (9 − 5)/20 = 20. Adjusted (Rocks 2016): n = 23,
    /// p = 9.75/23, d = 5.75/23, centre = 100 · 4/23 = 17.391304,
    /// var = (15.5/23 − (4/23)²)/23, se = 16.728878, interval
    /// 17.391304 ∓ 1.959964 · 16.728878 = [−15.396693, 50.179302] (the same
    /// arithmetic repeated in Python).
    #[test]
    fn nps_interval_matches_the_hand_computation() {
        let e = net_promoter_score(20, 9, 5).expect("n > 0");
        assert!(close(e.value, 20.0, 1e-12));
        assert!(close(e.centre, 17.391_304_347_826_086, 1e-9));
        assert!(close(e.se, 16.728_877_620_117_405, 1e-9), "{}", e.se);
        assert!(
            close(e.ci_low, -15.396_693_289_382_156, 1e-6),
            "{}",
            e.ci_low
        );
        assert!(
            close(e.ci_high, 50.179_301_985_034_33, 1e-6),
            "{}",
            e.ci_high
        );
    }

    /// Ten promoters of ten: the plain Wald interval was [100, 100]; the
    /// adjusted one is [47.50, 100] (n = 13, p = 10.75/13, d = 0.75/13).
    /// 3 promoters and 17 detractors: −70, interval [−91.57, −30.17].
    #[test]
    fn nps_interval_is_clamped_and_degenerate_cases_hold() {
        let e = net_promoter_score(10, 10, 0).expect("n > 0");
        assert_eq!((e.value, e.ci_high), (100.0, 100.0));
        assert!(close(e.ci_low, 47.503_551_544_790_2, 1e-6), "{}", e.ci_low);
        let e = net_promoter_score(20, 3, 17).expect("n > 0");
        assert!(close(e.value, -70.0, 1e-12));
        assert!(
            close(e.ci_low, -91.568_867_468_244_48, 1e-6),
            "{}",
            e.ci_low
        );
        assert!(close(e.ci_high, -30.170_262_966_538_143, 1e-6));
        assert!(net_promoter_score(0, 0, 0).is_none());
        assert!(net_promoter_score(5, 4, 3).is_none(), "more than n");
    }

    /// Exact coverage at small n, summed over every trinomial outcome (the
    /// figures Rocks 2016 tabulates; recomputed in Python: 0.914, 0.930,
    /// 0.944 where the plain Wald interval gave 0.400, 0.649, 0.884).
    #[test]
    fn nps_interval_keeps_its_coverage_at_small_n() {
        let choose =
            |n: u64, k: u64| -> f64 { (1..=k).map(|i| (n - k + i) as f64 / i as f64).product() };
        for (p, d, least) in [(0.95, 0.0, 0.91), (0.9, 0.02, 0.925), (0.8, 0.05, 0.94)] {
            let (n, truth, q) = (10u64, 100.0 * (p - d), 1.0 - p - d);
            let mut coverage = 0.0;
            for prom in 0..=n {
                for det in 0..=n - prom {
                    let e = net_promoter_score(n, prom, det).expect("n > 0");
                    if e.ci_low - 1e-9 <= truth && truth <= e.ci_high + 1e-9 {
                        let pas = n - prom - det;
                        coverage += choose(n, prom)
                            * choose(n - prom, det)
                            * p.powi(prom as i32)
                            * d.powi(det as i32)
                            * q.powi(pas as i32);
                    }
                }
            }
            assert!(coverage >= least, "p {p} d {d}: coverage {coverage}");
        }
    }

    /// 2,000 seeded samples of 200 answers from promoters 0.45, passives
    /// 0.30, detractors 0.25 (true NPS 20): the 95% interval should cover
    /// the true value 95% of the time (binomial sd of the coverage over
    /// 2,000 samples ≈ 0.005, so [0.93, 0.97] is four sd wide each way).
    #[test]
    fn nps_interval_covers_the_true_value_95_percent_of_the_time() {
        let mut rng = Xoshiro256Plus::seed_from_u64(20_160_401);
        let (p, d) = (0.45, 0.25);
        let truth = 100.0 * (p - d);
        let samples = 2000;
        let mut covered = 0;
        for _ in 0..samples {
            let (mut prom, mut det) = (0u64, 0u64);
            for _ in 0..200 {
                let u: f64 = rng.random();
                if u < p {
                    prom += 1;
                } else if u >= 1.0 - d {
                    det += 1;
                }
            }
            let e = net_promoter_score(200, prom, det).expect("n > 0");
            if e.ci_low <= truth && truth <= e.ci_high {
                covered += 1;
            }
        }
        let coverage = f64::from(covered) / f64::from(samples);
        assert!((0.93..=0.97).contains(&coverage), "coverage {coverage}");
    }

    /// Wilson intervals from statsmodels 0.15
    /// `proportion_confint(count, nobs, alpha=0.05, method="wilson")`
    /// (n, count, low, high); (12, 0) and (12, 12) check the ends.
    #[test]
    fn wilson_matches_statsmodels() {
        let cases = [
            (60, 45, 0.627_679_299_2, 0.842_234_774_7),
            (12, 0, 0.0, 0.242_494_006_7),
            (12, 12, 0.757_505_993_3, 1.0),
            (250, 173, 0.632_227_075_0, 0.745_961_738_0),
        ];
        for (n, k, lo, hi) in cases {
            let e = share_wilson(n, k).expect("n > 0");
            assert!(close(e.ci_low, 100.0 * lo, 1e-6), "{n} {k}: {}", e.ci_low);
            assert!(close(e.ci_high, 100.0 * hi, 1e-6), "{n} {k}: {}", e.ci_high);
            assert!(close(e.value, 100.0 * k as f64 / n as f64, 1e-12));
        }
    }

    /// t interval of the CES answers [5, 6, 7, 4, 6, 5, 7, 3]: mean 5.375,
    /// sd 1.407886 (numpy `std(ddof=1)`), t(0.975, 7) = 2.364624
    /// (scipy 1.17 `t.ppf(0.975, 7)`), half width 2.364624 · 1.407886 / √8 =
    /// 1.177022 (computed with scipy).
    #[test]
    fn mean_t_matches_scipy() {
        let xs = [5.0, 6.0, 7.0, 4.0, 6.0, 5.0, 7.0, 3.0];
        let sum: f64 = xs.iter().sum();
        let sum_sq: f64 = xs.iter().map(|x| x * x).sum();
        let e = mean_t(8, sum, sum_sq).expect("n > 0");
        assert!(close(e.value, 5.375, 1e-12));
        assert!(close(t_quantile_975(7), 2.364_624_251_6, 1e-6));
        assert!(close(e.ci_low, 5.375 - 1.177_022_112, 1e-6), "{}", e.ci_low);
        assert!(
            close(e.ci_high, 5.375 + 1.177_022_112, 1e-6),
            "{}",
            e.ci_high
        );
        let one = mean_t(1, 4.0, 16.0).expect("n = 1");
        assert!(one.se.is_infinite());
    }

    /// A rise of NPS from 20 to 32, 200 answers each, by hand with the
    /// adjusted answers (n = 203): a: centre 19.704433, se 5.694254; b:
    /// centre 31.527094, se 5.335743; z = 11.822660 / √(5.694254² +
    /// 5.335743²) = 1.515045 (not significant; Python, same arithmetic).
    /// CSAT 85 of 100, then 12 of 12: Agresti–Caffo p̃ 86/102 and 13/14,
    /// z = 1.099816 (the plain Wald test gave 4.2, "significant").
    #[test]
    fn change_z_is_the_difference_over_the_pooled_error() {
        let a = net_promoter_score(200, 90, 50).expect("n");
        let b = net_promoter_score(200, 100, 36).expect("n");
        let z = change_z(&b, &a).expect("finite");
        assert!(close(z, 1.515_044_982_938_734, 1e-9), "{z}");
        assert!(!significant(z));
        assert!(significant(2.0) && significant(-2.0) && !significant(1.9));
        let d = difference(&b, &a);
        assert!(close(d.value, 12.0, 1e-9));
        assert!(d.ci_low < 12.0 && d.ci_high > 12.0);
        let before = share_wilson(100, 85).expect("n");
        let after = share_wilson(12, 12).expect("n");
        let z = change_z(&after, &before).expect("finite");
        assert!(close(z, 1.099_816_316_869_904_2, 1e-9), "{z}");
        assert!(!significant(z));
    }

    /// scipy 1.17 `spearmanr([1,2,3,4,5,5,3], [0.1,0.4,0.3,0.8,0.9,0.7,0.2])`
    /// = 0.8183170884 (ties get average ranks).
    #[test]
    fn spearman_matches_scipy_with_ties() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 3.0];
        let y = [0.1, 0.4, 0.3, 0.8, 0.9, 0.7, 0.2];
        let r = spearman(&x, &y).expect("defined");
        assert!(close(r, 0.818_317_088_4, 1e-9), "{r}");
        assert!(close(spearman(&y, &x).expect("symmetric"), r, 1e-12));
        let neg: Vec<f64> = y.iter().map(|v| -v).collect();
        assert!(close(spearman(&x, &neg).expect("defined"), -r, 1e-12));
        assert!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_none());
        assert!(spearman(&[1.0, 2.0], &[1.0, 2.0]).is_none());
    }

    /// Median of 1..=25: 13; ranks 12.5 ∓ 4.9 → 7 and 19 (the order
    /// statistics hand-computed from the formula in the doc).
    #[test]
    fn median_interval_from_order_statistics() {
        let mut v: Vec<f64> = (1..=25).rev().map(f64::from).collect();
        let m = median_with_interval(&mut v).expect("non-empty");
        assert_eq!(m.value, 13.0);
        assert_eq!((m.ci_low, m.ci_high), (7.0, 19.0));
        let mut two = vec![4.0, 2.0];
        let m = median_with_interval(&mut two).expect("non-empty");
        assert_eq!((m.value, m.ci_low, m.ci_high), (3.0, 2.0, 4.0));
        assert!(median_with_interval(&mut []).is_none());
    }
}
