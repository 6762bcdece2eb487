//! Difference in differences, for initiatives without a control arm.
//!
//! effect = (after − before) of the exposed − (after − before) of the others.
//! Whatever moved both groups alike (the season, the customer mix, a price
//! change) cancels; what remains is the initiative's effect *if* the two
//! groups would have moved in parallel without it. That assumption cannot be
//! checked from the data the way randomization can be trusted, so every
//! result from here is labelled weaker evidence.
//!
//! Two kinds of exposure:
//!
//! - **Touchpoint**: an initiative rolled out to everyone at once that
//!   changed one touchpoint (staff training in store). Survey answers about
//!   that touchpoint are the exposed group, answers about the other
//!   touchpoints the comparison; one customer can be in both. Customers are
//!   resampled as a whole (one stratum), since their answers are correlated.
//! - **Customers**: an initiative with treatment assignments but no control
//!   arm. Assigned customers are the exposed group, customers who were not
//!   assigned the comparison; each group is resampled within itself.

use super::bootstrap::{Totals, Units, bootstrap};
use super::effects::{Interval, Metric, Settings};

/// Where the four means of one metric live: (stratum, cell) each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DidCells {
    pub exposed_before: (usize, usize),
    pub exposed_after: (usize, usize),
    pub other_before: (usize, usize),
    pub other_after: (usize, usize),
}

impl DidCells {
    fn all(&self) -> [(usize, usize); 4] {
        [
            self.exposed_before,
            self.exposed_after,
            self.other_before,
            self.other_after,
        ]
    }
}

/// One metric's difference in differences.
#[derive(Debug, Clone, PartialEq)]
pub struct DidEstimate {
    pub metric: Metric,
    /// Customers contributing to the exposed group (before or after).
    pub exposed_n: usize,
    /// Customers contributing to the comparison group (before or after).
    pub other_n: usize,
    /// Customers behind the smallest of the four cells (what suppression tests).
    pub smallest_cell_n: usize,
    /// Means: exposed before, exposed after, other before, other after.
    pub means: [Option<f64>; 4],
    /// after − before, exposed.
    pub exposed_change: Option<f64>,
    /// after − before, comparison.
    pub other_change: Option<f64>,
    pub effect: Option<Interval>,
}

impl DidEstimate {
    /// Whether a cell was too small to show.
    pub fn suppressed(&self, min_group_size: usize) -> bool {
        self.smallest_cell_n < min_group_size
    }
}

fn change(t: &Totals, before: (usize, usize), after: (usize, usize)) -> Option<f64> {
    Some(t.mean(after.0, after.1)? - t.mean(before.0, before.1)?)
}

fn did_effect(t: &Totals, c: &DidCells) -> Option<f64> {
    Some(change(t, c.exposed_before, c.exposed_after)? - change(t, c.other_before, c.other_after)?)
}

/// Estimates every metric's difference in differences from the same resamples.
pub fn estimate(
    units: &Units,
    metrics: &[(Metric, DidCells)],
    settings: &Settings,
) -> Vec<DidEstimate> {
    let evaluate = |t: &Totals, out: &mut [Option<f64>]| {
        for (slot, (_, cells)) in out.iter_mut().zip(metrics) {
            *slot = did_effect(t, cells);
        }
    };
    let point = units.totals();
    let draws = bootstrap(
        units,
        settings.resamples,
        settings.seed,
        metrics.len(),
        evaluate,
    );
    metrics
        .iter()
        .zip(draws)
        .map(|(&(metric, cells), draws)| {
            let smallest_cell_n = cells
                .all()
                .iter()
                .map(|&(s, c)| units.contributors(s, c))
                .min()
                .unwrap_or(0);
            let exposed_n = units.contributors_any(&[cells.exposed_before, cells.exposed_after]);
            let other_n = units.contributors_any(&[cells.other_before, cells.other_after]);
            let mut e = DidEstimate {
                metric,
                exposed_n,
                other_n,
                smallest_cell_n,
                means: [None; 4],
                exposed_change: None,
                other_change: None,
                effect: None,
            };
            if e.suppressed(settings.min_group_size) {
                return e;
            }
            e.means = cells.all().map(|(s, c)| point.mean(s, c));
            e.exposed_change = change(&point, cells.exposed_before, cells.exposed_after);
            e.other_change = change(&point, cells.other_before, cells.other_after);
            e.effect = did_effect(&point, &cells).map(|value| Interval {
                value,
                ci: draws.interval(settings.level),
            });
            e
        })
        .collect()
}

/// The survey metrics of a touchpoint initiative, in output order.
pub const TOUCHPOINT_METRICS: [Metric; 2] = [Metric::EmpathyScore, Metric::NetPromoterScore];

/// One customer's answers of one kind in one cell: `rows` of
/// `touchpoint_did.sql`.
#[derive(Debug, Clone, PartialEq)]
pub struct TouchpointAnswers {
    /// Rows of one customer are adjacent (the SQL sorts by customer).
    pub customer: String,
    pub metric: Metric,
    /// About the initiative's touchpoint.
    pub exposed: bool,
    /// On or after the start day.
    pub after: bool,
    /// Σ scores (empathy items) or Σ ±100 (NPS).
    pub total: f64,
    pub answers: f64,
}

fn touchpoint_cell(metric_index: usize, exposed: bool, after: bool) -> usize {
    metric_index * 4 + usize::from(!exposed) * 2 + usize::from(after)
}

/// Units and cells of a touchpoint initiative: one stratum, four cells per
/// metric of [`TOUCHPOINT_METRICS`].
pub fn touchpoint_units(rows: &[TouchpointAnswers]) -> (Units, Vec<(Metric, DidCells)>) {
    let cells = TOUCHPOINT_METRICS.len() * 4;
    let mut units = Units::new(1, cells);
    let mut current: Option<&str> = None;
    let mut acc = vec![(0.0, 0.0); cells];
    for r in rows {
        if current.is_some_and(|c| c != r.customer) {
            units.push(0, &acc);
            acc.iter_mut().for_each(|x| *x = (0.0, 0.0));
        }
        current = Some(&r.customer);
        let Some(m) = TOUCHPOINT_METRICS.iter().position(|x| *x == r.metric) else {
            continue;
        };
        let cell = &mut acc[touchpoint_cell(m, r.exposed, r.after)];
        cell.0 += r.total;
        cell.1 += r.answers;
    }
    if current.is_some() {
        units.push(0, &acc);
    }
    let layout = TOUCHPOINT_METRICS
        .iter()
        .enumerate()
        .map(|(m, &metric)| {
            (
                metric,
                DidCells {
                    exposed_before: (0, touchpoint_cell(m, true, false)),
                    exposed_after: (0, touchpoint_cell(m, true, true)),
                    other_before: (0, touchpoint_cell(m, false, false)),
                    other_after: (0, touchpoint_cell(m, false, true)),
                },
            )
        })
        .collect();
    (units, layout)
}

/// The metrics of a customer-level initiative, in output order.
pub const CUSTOMER_METRICS: [Metric; 2] = [Metric::RepeatOrders, Metric::NetPromoterScore];

/// One customer's outcomes in the windows before and after the start:
/// rows of `customer_did.sql`.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerWindows {
    pub exposed: bool,
    pub orders_before: f64,
    pub orders_after: f64,
    pub nps_total_before: f64,
    pub nps_answers_before: f64,
    pub nps_total_after: f64,
    pub nps_answers_after: f64,
}

/// Units and cells of a customer-level initiative: stratum 0 the exposed,
/// 1 the others; cells orders before/after, NPS before/after.
pub fn customer_units(rows: &[CustomerWindows]) -> (Units, Vec<(Metric, DidCells)>) {
    let mut units = Units::new(2, 4);
    for r in rows {
        units.push(
            if r.exposed { 0 } else { 1 },
            &[
                (r.orders_before, 1.0),
                (r.orders_after, 1.0),
                (r.nps_total_before, r.nps_answers_before),
                (r.nps_total_after, r.nps_answers_after),
            ],
        );
    }
    let layout = CUSTOMER_METRICS
        .iter()
        .enumerate()
        .map(|(m, &metric)| {
            (
                metric,
                DidCells {
                    exposed_before: (0, 2 * m),
                    exposed_after: (0, 2 * m + 1),
                    other_before: (1, 2 * m),
                    other_after: (1, 2 * m + 1),
                },
            )
        })
        .collect();
    (units, layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(min_group_size: usize) -> Settings {
        Settings {
            resamples: 1000,
            seed: 9,
            min_group_size,
            level: 0.95,
        }
    }

    fn answer(customer: usize, exposed: bool, after: bool, score: f64) -> TouchpointAnswers {
        TouchpointAnswers {
            customer: format!("c{customer:03}"),
            metric: Metric::EmpathyScore,
            exposed,
            after,
            total: score,
            answers: 1.0,
        }
    }

    /// A fixture with a known effect: exposed answers go 4 → 5.5 (+1.5),
    /// the others 4.2 → 4.7 (+0.5, the season), so the effect is exactly
    /// 1.0. Every customer answers once per cell with the cell's value, so
    /// every resample gives 1.0 and the interval is [1.0, 1.0].
    #[test]
    fn known_effect_without_noise() {
        let mut rows = Vec::new();
        for c in 0..30 {
            rows.push(answer(c, true, false, 4.0));
            rows.push(answer(c, true, true, 5.5));
            rows.push(answer(c, false, false, 4.2));
            rows.push(answer(c, false, true, 4.7));
        }
        let (units, layout) = touchpoint_units(&rows);
        assert_eq!(units.len(0), 30);
        let est = estimate(&units, &layout, &settings(10));
        let e = &est[0];
        assert_eq!(e.metric, Metric::EmpathyScore);
        assert_eq!((e.exposed_n, e.other_n, e.smallest_cell_n), (30, 30, 30));
        for (got, want) in e.means.iter().zip([4.0, 5.5, 4.2, 4.7]) {
            assert!(
                (got.expect("mean") - want).abs() < 1e-12,
                "{got:?} vs {want}"
            );
        }
        let effect = e.effect.expect("effect");
        assert!((effect.value - 1.0).abs() < 1e-12);
        let (lo, hi) = effect.ci.expect("ci");
        assert!((lo - 1.0).abs() < 1e-9 && (hi - 1.0).abs() < 1e-9);
        // NPS: nobody answered, so the cells are empty and the row withheld.
        assert!(est[1].suppressed(10) && est[1].effect.is_none());
    }

    /// With noise, the point estimate is the plain difference of the four
    /// cell means (computed here separately) and the interval brackets it
    /// and the planted +1.0.
    #[test]
    fn known_effect_with_noise() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(17);
        let mut rows = Vec::new();
        let mut sums = [0.0f64; 4];
        let mut n = [0.0f64; 4];
        for c in 0..200usize {
            // Uniform noise in [-1, 1): mean 0, sd 0.58.
            let mut noise = || rng.random::<f64>() * 2.0 - 1.0;
            let cells = [
                (true, false, 4.0 + noise()),
                (true, true, 5.5 + noise()),
                (false, false, 4.2 + noise()),
                (false, true, 4.7 + noise()),
            ];
            for (k, (exposed, after, score)) in cells.into_iter().enumerate() {
                // Not every customer answers every cell.
                if (c + k) % 5 != 0 {
                    rows.push(answer(c, exposed, after, score));
                    sums[k] += score;
                    n[k] += 1.0;
                }
            }
        }
        let want = (sums[1] / n[1] - sums[0] / n[0]) - (sums[3] / n[3] - sums[2] / n[2]);
        let (units, layout) = touchpoint_units(&rows);
        let est = estimate(&units, &layout, &settings(10));
        let effect = est[0].effect.expect("effect");
        assert!(
            (effect.value - want).abs() < 1e-12,
            "{} vs {want}",
            effect.value
        );
        let (lo, hi) = effect.ci.expect("ci");
        assert!(lo < want && want < hi);
        assert!(lo < 1.0 && 1.0 < hi, "[{lo}, {hi}]");
        assert!(
            hi - lo < 0.5,
            "200 customers give a tight interval: [{lo}, {hi}]"
        );
    }

    /// Customer-level: exposed customers go from 2 to 5 orders, the others
    /// from 2 to 3; effect +2 orders per customer.
    #[test]
    fn customer_level_effect() {
        let mut rows = Vec::new();
        for i in 0..40 {
            let jitter = f64::from(i % 3);
            rows.push(CustomerWindows {
                exposed: i < 15,
                orders_before: 2.0 + jitter,
                orders_after: if i < 15 { 5.0 } else { 3.0 } + jitter,
                nps_total_before: 0.0,
                nps_answers_before: 0.0,
                nps_total_after: 100.0,
                nps_answers_after: 1.0,
            });
        }
        let (units, layout) = customer_units(&rows);
        assert_eq!((units.len(0), units.len(1)), (15, 25));
        let est = estimate(&units, &layout, &settings(10));
        let orders = &est[0];
        assert_eq!(orders.metric, Metric::RepeatOrders);
        assert_eq!((orders.exposed_n, orders.other_n), (15, 25));
        let effect = orders.effect.expect("effect");
        assert!((effect.value - 2.0).abs() < 1e-12);
        let (lo, hi) = effect.ci.expect("ci");
        assert!((lo - 2.0).abs() < 1e-9 && (hi - 2.0).abs() < 1e-9);
        assert_eq!(orders.exposed_change, Some(3.0));
        assert_eq!(orders.other_change, Some(1.0));
        assert!(est[1].suppressed(10), "no NPS answers before the start");
        // A comparison group below the threshold withholds the row.
        let est = estimate(&units, &layout, &settings(16));
        assert!(est[0].suppressed(16) && est[0].effect.is_none());
    }
}
