//! Fairlearn's disparity aggregates of a classifier, computed from the
//! per-group rates (the "metric frame" is the audit's per-group rows).
//!
//! Definitions exactly as `fairlearn.metrics` with `method="between_groups"`
//! (and `agg="worst_case"` for equalized odds), over the groups shown
//! (suppressed groups are left out, as pandas skips missing values):
//!
//! - `demographic_parity_difference` = max − min of selection rates;
//!   `demographic_parity_ratio` = min / max.
//! - `equalized_odds_difference` = the larger of the true-positive-rate and
//!   false-positive-rate differences (max − min); `equalized_odds_ratio` =
//!   the smaller of their min / max ratios.
//! - `equal_opportunity_difference` = max − min of true positive rates;
//!   `equal_opportunity_ratio` = min / max.
//!
//! A ratio whose maximum is 0 is undefined (Fairlearn returns NaN); the row
//! is then left out.

use super::verdict::{fmt_pct, fmt_ratio};

/// One aggregate of a dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub metric: &'static str,
    pub value: f64,
    /// The range behind it: (lowest, highest) rate of the metric it is
    /// built on (for equalized odds: of whichever rate decides).
    pub low: f64,
    pub high: f64,
    /// Groups compared.
    pub groups: usize,
}

fn range(rates: &[Option<f64>]) -> Option<(f64, f64, usize)> {
    let shown: Vec<f64> = rates.iter().flatten().copied().collect();
    if shown.len() < 2 {
        return None;
    }
    let lo = shown.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = shown.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lo, hi, shown.len()))
}

fn ratio((lo, hi, _): (f64, f64, usize)) -> Option<f64> {
    (hi > 0.0).then(|| lo / hi)
}

/// The aggregates computable from per-group selection, true positive and
/// false positive rates (`None` for a group not shown).
pub fn aggregates(
    selection: &[Option<f64>],
    tpr: &[Option<f64>],
    fpr: &[Option<f64>],
) -> Vec<Aggregate> {
    let mut out = Vec::new();
    let mut push = |metric, value: Option<f64>, (low, high, groups): (f64, f64, usize)| {
        if let Some(value) = value {
            out.push(Aggregate {
                metric,
                value,
                low,
                high,
                groups,
            });
        }
    };
    if let Some(s) = range(selection) {
        push("demographic_parity_difference", Some(s.1 - s.0), s);
        push("demographic_parity_ratio", ratio(s), s);
    }
    let (t, f) = (range(tpr), range(fpr));
    if let (Some(t), Some(f)) = (t, f) {
        let (dt, df) = (t.1 - t.0, f.1 - f.0);
        push(
            "equalized_odds_difference",
            Some(dt.max(df)),
            if dt >= df { t } else { f },
        );
        if let (Some(rt), Some(rf)) = (ratio(t), ratio(f)) {
            push(
                "equalized_odds_ratio",
                Some(rt.min(rf)),
                if rt <= rf { t } else { f },
            );
        }
    }
    if let Some(t) = t {
        push("equal_opportunity_difference", Some(t.1 - t.0), t);
        push("equal_opportunity_ratio", ratio(t), t);
    }
    out
}

impl Aggregate {
    /// A sentence about the aggregate (`flagged`: "flagged at risk").
    pub fn explain(&self, dimension: &str, flagged: &str) -> String {
        let range = format!(
            "from {} to {} across the {} {dimension} groups shown",
            fmt_pct(self.low),
            fmt_pct(self.high),
            self.groups
        );
        match self.metric {
            "demographic_parity_difference" => format!(
                "the share {flagged} ranges {range}: a demographic parity difference of {:.3}",
                self.value
            ),
            "demographic_parity_ratio" => format!(
                "the share {flagged} ranges {range}: the lowest is {}× the highest (demographic parity ratio)",
                fmt_ratio(self.value)
            ),
            "equalized_odds_difference" => format!(
                "the larger spread of true and false positive rates runs {range}: an equalized odds difference of {:.3}",
                self.value
            ),
            "equalized_odds_ratio" => format!(
                "the less equal of true and false positive rates runs {range}: an equalized odds ratio of {}",
                fmt_ratio(self.value)
            ),
            "equal_opportunity_difference" => format!(
                "the true positive rate (the share {flagged} among those it should flag) ranges {range}: an equal opportunity difference of {:.3}",
                self.value
            ),
            _ => format!(
                "the true positive rate ranges {range}: an equal opportunity ratio of {}",
                fmt_ratio(self.value)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_follow_the_definitions() {
        let sel = [Some(0.2), Some(0.5), None, Some(0.4)];
        let tpr = [Some(0.6), Some(0.9), Some(0.1), None];
        let fpr = [Some(0.1), Some(0.15), Some(0.05), None];
        let got: Vec<(&str, f64)> = aggregates(&sel, &tpr, &fpr)
            .iter()
            .map(|a| (a.metric, a.value))
            .collect();
        let want = [
            ("demographic_parity_difference", 0.3),
            ("demographic_parity_ratio", 0.4),
            ("equalized_odds_difference", 0.8),
            ("equalized_odds_ratio", 0.1 / 0.9),
            ("equal_opportunity_difference", 0.8),
            ("equal_opportunity_ratio", 0.1 / 0.9),
        ];
        assert_eq!(got.len(), want.len());
        for ((gm, gv), (wm, wv)) in got.iter().zip(want) {
            assert_eq!(*gm, wm);
            assert!((gv - wv).abs() < 1e-12, "{gm}: {gv} vs {wv}");
        }
    }

    #[test]
    fn undefined_aggregates_are_left_out() {
        assert!(aggregates(&[Some(0.3)], &[None], &[None]).is_empty());
        let zero = aggregates(&[Some(0.0), Some(0.0)], &[], &[]);
        assert_eq!(zero.len(), 1, "the ratio 0/0 is left out");
        assert_eq!(zero[0].metric, "demographic_parity_difference");
    }
}
