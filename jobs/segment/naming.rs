//! Human names for segments, from their centroids in original units
//! compared with the whole clustered population.
//!
//! The first rule that holds names the segment:
//!
//! | name | rule (c = the segment's centroid, P = all clustered customers) |
//! | --- | --- |
//! | Lapsed | c.recency_days > the churn window (`segment.inactive_days`) |
//! | New customers | c.tenure_days ≤ the churn window (joined within it) |
//! | Drifting away | c.recency_days > 2 × c.avg_days_between_orders and > 1/4 of the churn window: well past their own rhythm |
//! | Big spenders | c.monetary_total ≥ P's 90th percentile, or c.avg_order_value ≥ P's 75th percentile and c.monetary_total ≥ P's median |
//! | Loyal regulars | c.frequency ≥ P's median and c.orders_90d ≥ P's median and c.recency_days ≤ P's median |
//! | Occasional visitors | otherwise |
//!
//! Names are unique: when several segments get the same name, each gets a
//! second descriptor from the feature on which it stands out most from the
//! others of that name ("Loyal regulars, higher spend" / "Loyal regulars,
//! lower spend"), and a number only if that still collides. Everything is a
//! pure function of the centroids, so the same data give the same names.

use super::features::{FEATURES, index, quantile_sorted};
use crate::Result;

/// The name every customer without a purchase gets (not clustered).
pub const NO_PURCHASES: &str = "No purchases yet";

/// Which rule named a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    Lapsed,
    NewCustomers,
    DriftingAway,
    BigSpenders,
    LoyalRegulars,
    OccasionalVisitors,
}

impl Rule {
    /// The segment name the rule gives.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Lapsed => "Lapsed",
            Rule::NewCustomers => "New customers",
            Rule::DriftingAway => "Drifting away",
            Rule::BigSpenders => "Big spenders",
            Rule::LoyalRegulars => "Loyal regulars",
            Rule::OccasionalVisitors => "Occasional visitors",
        }
    }
}

/// Percentiles of each feature over the clustered customers, original units.
#[derive(Debug, Clone, PartialEq)]
pub struct Population {
    /// Per feature (in [`FEATURES`] order): the 25th, 50th, 75th percentiles.
    pub q25: Vec<f64>,
    pub q50: Vec<f64>,
    pub q75: Vec<f64>,
    pub q90: Vec<f64>,
}

impl Population {
    /// From each feature's values (NULLs already dropped).
    pub fn new(columns: &[Vec<f64>]) -> Population {
        let mut p = Population {
            q25: Vec::new(),
            q50: Vec::new(),
            q75: Vec::new(),
            q90: Vec::new(),
        };
        for col in columns {
            let mut v = col.clone();
            v.sort_by(f64::total_cmp);
            p.q25.push(quantile_sorted(&v, 0.25).unwrap_or(0.0));
            p.q50.push(quantile_sorted(&v, 0.50).unwrap_or(0.0));
            p.q75.push(quantile_sorted(&v, 0.75).unwrap_or(0.0));
            p.q90.push(quantile_sorted(&v, 0.90).unwrap_or(0.0));
        }
        p
    }
}

/// A segment's name and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub rule: Rule,
    /// Unique among the segments.
    pub name: String,
    /// The rule in words, with the population thresholds it used (never the
    /// segment's own numbers: those belong in the profile, where small
    /// segments are suppressed).
    pub reason: String,
}

struct Cols {
    recency: usize,
    frequency: usize,
    monetary: usize,
    aov: usize,
    orders_90d: usize,
    tenure: usize,
    gap: usize,
}

impl Cols {
    fn new() -> Result<Cols> {
        Ok(Cols {
            recency: index("recency_days")?,
            frequency: index("frequency")?,
            monetary: index("monetary_total")?,
            aov: index("avg_order_value")?,
            orders_90d: index("orders_90d")?,
            tenure: index("tenure_days")?,
            gap: index("avg_days_between_orders")?,
        })
    }
}

/// The rule for one centroid (original units, [`FEATURES`] order).
pub fn classify(c: &[f64], p: &Population, inactive_days: u32) -> Result<(Rule, String)> {
    let i = Cols::new()?;
    let window = f64::from(inactive_days);
    if c[i.recency] > window {
        return Ok((
            Rule::Lapsed,
            format!("typical last purchase more than {inactive_days} days ago (the churn window)"),
        ));
    }
    if c[i.tenure] <= window {
        return Ok((
            Rule::NewCustomers,
            format!("typically signed up within the last {inactive_days} days"),
        ));
    }
    if c[i.recency] > 2.0 * c[i.gap] && c[i.recency] > window / 4.0 {
        return Ok((
            Rule::DriftingAway,
            format!(
                "typical time since the last purchase is more than twice their usual gap between purchases, and over {:.0} days",
                window / 4.0
            ),
        ));
    }
    if c[i.monetary] >= p.q90[i.monetary] {
        return Ok((
            Rule::BigSpenders,
            format!(
                "typical total spend at least {:.2} (the top tenth of customers)",
                p.q90[i.monetary]
            ),
        ));
    }
    if c[i.aov] >= p.q75[i.aov] && c[i.monetary] >= p.q50[i.monetary] {
        return Ok((
            Rule::BigSpenders,
            format!(
                "typical order value at least {:.2} (the top quarter of customers) and total spend at least {:.2} (the median)",
                p.q75[i.aov], p.q50[i.monetary]
            ),
        ));
    }
    if c[i.frequency] >= p.q50[i.frequency]
        && c[i.orders_90d] >= p.q50[i.orders_90d]
        && c[i.recency] <= p.q50[i.recency]
    {
        return Ok((
            Rule::LoyalRegulars,
            format!(
                "typically at least {:.0} purchases so far and {:.0} in the last 90 days, the last within {:.0} days (each the median customer's)",
                p.q50[i.frequency], p.q50[i.orders_90d], p.q50[i.recency]
            ),
        ));
    }
    Ok((
        Rule::OccasionalVisitors,
        "none of the other rules holds: buys now and then".to_string(),
    ))
}

/// Words for "stands out by this feature, in this direction".
fn descriptor(feature: &str, higher: bool) -> &'static str {
    match (feature, higher) {
        ("recency_days", true) => "longer since last visit",
        ("recency_days", false) => "more recent",
        ("frequency", true) => "more purchases",
        ("frequency", false) => "fewer purchases",
        ("monetary_total", true) => "higher spend",
        ("monetary_total", false) => "lower spend",
        ("avg_order_value", true) => "bigger baskets",
        ("avg_order_value", false) => "smaller baskets",
        ("orders_90d", true) => "busier lately",
        ("orders_90d", false) => "quieter lately",
        ("tenure_days", true) => "long-standing",
        ("tenure_days", false) => "newer",
        ("avg_days_between_orders", true) => "longer gaps",
        ("avg_days_between_orders", false) => "shorter gaps",
        (_, true) => "higher",
        (_, false) => "lower",
    }
}

/// Names every segment. `original[s]` is segment `s`'s centroid in original
/// units, `standardized[s]` the same in model units (used to find what sets
/// apart segments that share a name).
pub fn name_segments(
    original: &[Vec<f64>],
    standardized: &[Vec<f64>],
    p: &Population,
    inactive_days: u32,
) -> Result<Vec<Named>> {
    let mut named = Vec::with_capacity(original.len());
    for c in original {
        let (rule, reason) = classify(c, p, inactive_days)?;
        named.push(Named {
            rule,
            name: rule.name().to_string(),
            reason,
        });
    }
    // Second descriptors for shared names.
    let mut rules: Vec<Rule> = named.iter().map(|n| n.rule).collect();
    rules.sort();
    rules.dedup();
    for rule in rules {
        let group: Vec<usize> = (0..named.len())
            .filter(|&s| named[s].rule == rule)
            .collect();
        if group.len() < 2 {
            continue;
        }
        let d = FEATURES.len();
        let mean: Vec<f64> = (0..d)
            .map(|j| group.iter().map(|&s| standardized[s][j]).sum::<f64>() / group.len() as f64)
            .collect();
        for &s in &group {
            let mut best = 0;
            for j in 1..d {
                let dj = (standardized[s][j] - mean[j]).abs();
                if dj > (standardized[s][best] - mean[best]).abs() {
                    best = j;
                }
            }
            let higher = standardized[s][best] >= mean[best];
            named[s].name = format!("{}, {}", rule.name(), descriptor(FEATURES[best], higher));
        }
    }
    // Numbers for anything still shared, in segment order.
    for s in 0..named.len() {
        let same: Vec<usize> = (0..s).filter(|&t| named[t].name == named[s].name).collect();
        if !same.is_empty() {
            let mut n = same.len() + 1;
            let base = named[s].name.clone();
            while named.iter().any(|x| x.name == format!("{base} ({n})")) {
                n += 1;
            }
            named[s].name = format!("{base} ({n})");
        }
    }
    Ok(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A centroid from named values; the rest at the population median.
    fn centroid(p: &Population, values: &[(&str, f64)]) -> Vec<f64> {
        let mut c = p.q50.clone();
        for (f, v) in values {
            c[index(f).expect("feature")] = *v;
        }
        c
    }

    /// Population percentiles shaped like the demo café's.
    fn population() -> Population {
        let mut q25 = vec![0.0; FEATURES.len()];
        let mut q50 = vec![0.0; FEATURES.len()];
        let mut q75 = vec![0.0; FEATURES.len()];
        let mut q90 = vec![0.0; FEATURES.len()];
        let set = |v: &mut Vec<f64>, f: &str, x: f64| v[index(f).expect("feature")] = x;
        // Rounded from the demo café (5,000 customers, a year).
        for (f, a, b, c, d) in [
            ("recency_days", 4.0, 21.0, 130.0, 250.0),
            ("frequency", 4.0, 11.0, 28.0, 56.0),
            ("monetary_total", 32.0, 92.0, 260.0, 600.0),
            ("avg_order_value", 5.0, 9.0, 14.0, 20.0),
            ("orders_90d", 0.0, 3.0, 11.0, 24.0),
            ("tenure_days", 100.0, 225.0, 336.0, 630.0),
            ("avg_days_between_orders", 3.0, 6.0, 14.0, 30.0),
        ] {
            set(&mut q25, f, a);
            set(&mut q50, f, b);
            set(&mut q75, f, c);
            set(&mut q90, f, d);
        }
        Population { q25, q50, q75, q90 }
    }

    #[test]
    fn each_rule_names_its_textbook_centroid() {
        let p = population();
        let cases: &[(&[(&str, f64)], Rule)] = &[
            (&[("recency_days", 150.0)], Rule::Lapsed),
            (
                &[("recency_days", 150.0), ("tenure_days", 30.0)],
                Rule::Lapsed,
            ),
            (
                &[("tenure_days", 40.0), ("recency_days", 5.0)],
                Rule::NewCustomers,
            ),
            (
                &[("recency_days", 45.0), ("avg_days_between_orders", 6.0)],
                Rule::DriftingAway,
            ),
            (
                &[
                    ("avg_order_value", 25.0),
                    ("monetary_total", 200.0),
                    ("recency_days", 10.0),
                ],
                Rule::BigSpenders,
            ),
            (
                &[
                    ("frequency", 60.0),
                    ("monetary_total", 700.0),
                    ("recency_days", 2.0),
                ],
                Rule::BigSpenders,
            ),
            (
                &[
                    ("frequency", 40.0),
                    ("orders_90d", 12.0),
                    ("recency_days", 2.0),
                    ("monetary_total", 350.0),
                ],
                Rule::LoyalRegulars,
            ),
            (
                &[
                    ("frequency", 3.0),
                    ("orders_90d", 1.0),
                    ("recency_days", 15.0),
                    ("avg_days_between_orders", 30.0),
                ],
                Rule::OccasionalVisitors,
            ),
        ];
        for (values, want) in cases {
            let c = centroid(&p, values);
            let (rule, reason) = classify(&c, &p, 90).expect("classify");
            assert_eq!(rule, *want, "{values:?}");
            assert!(!reason.is_empty());
        }
    }

    #[test]
    fn the_churn_window_moves_the_lapsed_line() {
        let p = population();
        let c = centroid(
            &p,
            &[("recency_days", 70.0), ("avg_days_between_orders", 60.0)],
        );
        assert_eq!(
            classify(&c, &p, 90).expect("90").0,
            Rule::OccasionalVisitors
        );
        assert_eq!(classify(&c, &p, 60).expect("60").0, Rule::Lapsed);
    }

    #[test]
    fn shared_names_get_descriptors_then_numbers() {
        let p = population();
        let loyal = |m: f64| {
            centroid(
                &p,
                &[
                    ("frequency", 40.0),
                    ("orders_90d", 12.0),
                    ("recency_days", 2.0),
                    ("monetary_total", m),
                ],
            )
        };
        let original = vec![
            loyal(500.0),
            loyal(300.0),
            centroid(&p, &[("recency_days", 200.0)]),
        ];
        let mut standardized = vec![vec![0.0; FEATURES.len()]; 3];
        let m = index("monetary_total").expect("m");
        standardized[0][m] = 1.0;
        standardized[1][m] = -1.0;
        let named = name_segments(&original, &standardized, &p, 90).expect("names");
        let names: Vec<&str> = named.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "Loyal regulars, higher spend",
                "Loyal regulars, lower spend",
                "Lapsed"
            ]
        );
        // Identical centroids: only a number can tell them apart.
        let original = vec![loyal(500.0), loyal(500.0)];
        let standardized = vec![vec![0.0; FEATURES.len()]; 2];
        let named = name_segments(&original, &standardized, &p, 90).expect("names");
        assert_ne!(named[0].name, named[1].name);
        assert!(named[1].name.ends_with("(2)"), "{}", named[1].name);
    }

    #[test]
    fn population_percentiles() {
        let cols: Vec<Vec<f64>> = FEATURES
            .iter()
            .map(|_| vec![4.0, 1.0, 3.0, 2.0, 5.0])
            .collect();
        let p = Population::new(&cols);
        assert_eq!(p.q25[0], 2.0);
        assert_eq!(p.q50[0], 3.0);
        assert_eq!(p.q75[0], 4.0);
        assert!((p.q90[0] - 4.6).abs() < 1e-12);
    }
}
