//! How good a churn probability is, on customers the model never saw:
//! ROC AUC, Brier score, a calibration table and the lift of the top decile.

use serde::Serialize;

/// Area under the ROC curve by the rank (Mann-Whitney) formula, tied scores
/// sharing their average rank. `None` unless both classes are present.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let n = scores.len().min(labels.len());
    let positives = labels[..n].iter().filter(|&&y| y).count();
    let negatives = n - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| scores[i].total_cmp(&scores[j]));
    let mut rank_sum_positive = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let mean_rank = (i + j + 2) as f64 / 2.0;
        for &k in &order[i..=j] {
            if labels[k] {
                rank_sum_positive += mean_rank;
            }
        }
        i = j + 1;
    }
    let p = positives as f64;
    Some((rank_sum_positive - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// Mean squared difference between probability and outcome.
pub fn brier_score(probabilities: &[f64], labels: &[bool]) -> Option<f64> {
    let n = probabilities.len().min(labels.len());
    (n > 0).then(|| {
        probabilities[..n]
            .iter()
            .zip(labels)
            .map(|(p, &y)| (p - f64::from(u8::from(y))).powi(2))
            .sum::<f64>()
            / n as f64
    })
}

/// One bin of a calibration table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationBin {
    /// Predicted probabilities in [lower, upper) (the last bin includes 1).
    pub lower: f64,
    pub upper: f64,
    pub customers: u64,
    /// Mean predicted probability in the bin; `None` when empty.
    pub mean_predicted: Option<f64>,
    /// Share that churned; `None` when empty.
    pub observed_rate: Option<f64>,
}

/// Equal-width bins over [0, 1] (scikit-learn's `calibration_curve` with
/// `strategy="uniform"`, which drops the empty bins this keeps).
pub fn calibration(probabilities: &[f64], labels: &[bool], bins: usize) -> Vec<CalibrationBin> {
    let bins = bins.max(1);
    let mut n = vec![0u64; bins];
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    for (&p, &y) in probabilities.iter().zip(labels) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        n[b] += 1;
        sum_p[b] += p;
        sum_y[b] += f64::from(u8::from(y));
    }
    (0..bins)
        .map(|b| CalibrationBin {
            lower: b as f64 / bins as f64,
            upper: (b + 1) as f64 / bins as f64,
            customers: n[b],
            mean_predicted: (n[b] > 0).then(|| sum_p[b] / n[b] as f64),
            observed_rate: (n[b] > 0).then(|| sum_y[b] / n[b] as f64),
        })
        .collect()
}

/// Churn rate among the tenth of customers with the highest scores divided
/// by the overall rate (ceil(n/10) customers; ties broken by input order,
/// which callers keep sorted by customer). `None` without churners.
pub fn top_decile_lift(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let n = scores.len().min(labels.len());
    let churners = labels[..n].iter().filter(|&&y| y).count();
    if n == 0 || churners == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]));
    let k = n.div_ceil(10);
    let top = order[..k].iter().filter(|&&i| labels[i]).count();
    Some((top as f64 / k as f64) / (churners as f64 / n as f64))
}

#[cfg(test)]
// Reference values are pasted with every digit their source printed.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;

    /// A fixed fixture of 40 scores with ties and outcomes; expected values
    /// from scikit-learn 1.9.1: roc_auc_score = 0.80375, brier_score_loss =
    /// 0.179625, calibration_curve(n_bins=10, strategy="uniform") below; the
    /// lift from numpy (stable argsort of −p, top ceil(40/10) = 4: rate 0.75
    /// over a base of 0.5).
    const P: [f64; 40] = [
        0.625, 0.875, 0.775, 0.225, 0.325, 0.875, 0.025, 0.825, 0.775, 0.475, 0.325, 0.275, 0.275,
        0.425, 0.525, 0.575, 0.975, 0.775, 0.625, 0.975, 0.225, 0.175, 0.625, 0.025, 0.025, 0.525,
        0.475, 0.925, 0.625, 0.525, 0.475, 0.225, 0.025, 0.175, 0.675, 0.225, 0.375, 0.025, 0.825,
        0.175,
    ];
    const Y: [u8; 40] = [
        1, 0, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1,
        0, 0, 0, 0, 1, 0, 0, 0, 1, 1,
    ];

    fn labels() -> Vec<bool> {
        Y.iter().map(|&y| y == 1).collect()
    }

    #[test]
    fn auc_and_brier_match_scikit_learn() {
        let y = labels();
        let auc = roc_auc(&P, &y).expect("both classes");
        assert!((auc - 0.80375).abs() < 1e-12, "{auc}");
        let brier = brier_score(&P, &y).expect("non-empty");
        assert!((brier - 0.179625).abs() < 1e-12, "{brier}");
    }

    #[test]
    fn calibration_matches_scikit_learn() {
        let table = calibration(&P, &labels(), 10);
        let observed = [
            0.2,
            1.0 / 3.0,
            1.0 / 6.0,
            0.0,
            0.5,
            1.0,
            0.4,
            1.0,
            0.75,
            1.0,
        ];
        let predicted = [
            0.025,
            0.175,
            0.2416666666666667,
            0.3416666666666666,
            0.4625,
            0.5375,
            0.635,
            0.775,
            0.85,
            0.9583333333333334,
        ];
        let counts = [5, 3, 6, 3, 4, 4, 5, 3, 4, 3];
        for (b, bin) in table.iter().enumerate() {
            assert_eq!(bin.customers, counts[b], "bin {b}");
            assert!((bin.observed_rate.expect("non-empty") - observed[b]).abs() < 1e-12);
            assert!((bin.mean_predicted.expect("non-empty") - predicted[b]).abs() < 1e-12);
        }
        let sparse = calibration(&[0.05, 0.95, 1.0], &[false, true, true], 10);
        assert_eq!(sparse[9].customers, 2, "1.0 falls in the last bin");
        assert_eq!(sparse[4].mean_predicted, None);
    }

    #[test]
    fn lift_of_the_top_decile() {
        let lift = top_decile_lift(&P, &labels()).expect("churners");
        assert!((lift - 1.5).abs() < 1e-12, "{lift}");
    }

    #[test]
    fn degenerate_inputs() {
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(brier_score(&[], &[]), None);
        assert_eq!(top_decile_lift(&[0.3], &[false]), None);
        // A perfect ranking, and its reverse.
        assert_eq!(roc_auc(&[0.1, 0.2, 0.9], &[false, false, true]), Some(1.0));
        assert_eq!(roc_auc(&[0.9, 0.2, 0.1], &[false, false, true]), Some(0.0));
        // All scores tied: 0.5.
        assert_eq!(roc_auc(&[0.5; 4], &[true, false, true, false]), Some(0.5));
    }
}
