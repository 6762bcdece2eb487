//! Treatment versus control: the randomized comparison of an initiative's
//! arms, and the ROI arithmetic on its CLTV uplift.
//!
//! Each metric is a difference of arm means (treatment − control) with a
//! 95% percentile interval from the stratified bootstrap
//! ([`super::bootstrap`]): customers are resampled within each arm, and the
//! same resamples give every metric, the incremental value and the ROI.

use super::bootstrap::{Totals, Units, bootstrap};

/// What the job measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// Share of customers who ordered in the retention window (0–1).
    RetentionRate,
    /// Orders per customer from the day of assignment to the run date.
    RepeatOrders,
    /// 100 × (promoters − detractors) / answers, over NPS answers.
    NetPromoterScore,
    /// Mean 12-month CLTV (currency units, margin included), from marts/customer_value.
    Cltv12m,
    /// Orders per customer in the window before assignment: a balance check.
    PrePeriodOrders,
    /// Mean SERVQUAL empathy item score (1–7).
    EmpathyScore,
}

impl Metric {
    /// The name in `marts/initiative_roi.metric`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::RetentionRate => "retention_rate",
            Metric::RepeatOrders => "repeat_orders",
            Metric::NetPromoterScore => "net_promoter_score",
            Metric::Cltv12m => "cltv_12m",
            Metric::PrePeriodOrders => "pre_period_orders",
            Metric::EmpathyScore => "empathy_score",
        }
    }
}

/// The metrics of a randomized comparison, in output order; the index is
/// the metric's bootstrap cell.
pub const ARM_METRICS: [Metric; 5] = [
    Metric::RetentionRate,
    Metric::RepeatOrders,
    Metric::NetPromoterScore,
    Metric::Cltv12m,
    Metric::PrePeriodOrders,
];

const TREATMENT: usize = 0;
const CONTROL: usize = 1;

/// One assigned customer's outcomes (see `arms.sql` for the definitions).
#[derive(Debug, Clone, PartialEq)]
pub struct ArmOutcome {
    pub treated: bool,
    /// Ordered at least once in the retention window, on or after assignment.
    pub retained: bool,
    /// Orders from the day of assignment to the run date.
    pub orders_after: f64,
    /// Orders in the `inactive_days` days before the day of assignment.
    pub orders_before: f64,
    /// Σ over NPS answers since assignment of +100 (9–10), −100 (0–6), 0 (7–8).
    pub nps_total: f64,
    pub nps_answers: f64,
    /// 12-month CLTV as of the run date.
    pub cltv: Cltv,
}

/// A customer's 12-month CLTV as marts/customer_value has it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cltv {
    /// No row: the customer never bought (or bought nothing kept), worth 0.
    NeverBought,
    /// A row, with its value; `None` when the value job could not compute
    /// one (a fit did not converge): unknown, not 0.
    Valued(Option<f64>),
}

impl Cltv {
    /// What the customer counts as in the arms' means.
    fn worth(self) -> f64 {
        match self {
            Cltv::NeverBought => 0.0,
            Cltv::Valued(v) => v.unwrap_or(0.0),
        }
    }
}

/// How the intervals are made and what is suppressed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub resamples: usize,
    pub seed: u64,
    /// Groups with fewer customers than this are suppressed.
    pub min_group_size: usize,
    /// Interval level, 0.95.
    pub level: f64,
}

/// A point estimate and its interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub value: f64,
    /// `None` when too many resamples left it undefined.
    pub ci: Option<(f64, f64)>,
}

/// Incremental value and ROI of an initiative, from the CLTV uplift.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Money {
    /// CLTV uplift × treated customers.
    pub incremental_value: Interval,
    /// (incremental value − cost) / cost; `None` without a positive cost.
    pub roi: Option<Interval>,
}

/// One metric of a two-group comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub metric: Metric,
    /// Customers who contribute to the metric in each group (all customers
    /// of the arm for per-customer metrics; respondents for NPS).
    pub treated_n: usize,
    pub control_n: usize,
    /// `None` when a group is below `min_group_size` (then everything is `None`).
    pub treated_value: Option<f64>,
    pub control_value: Option<f64>,
    pub effect: Option<Interval>,
    /// Only for [`Metric::Cltv12m`] when a cost is known.
    pub money: Option<Money>,
    /// Customers of each arm (treated, control) behind the metric's
    /// values: for CLTV those who bought, whose values the arm's mean
    /// adds up; for the others `treated_n` and `control_n`.
    pub behind: [usize; 2],
}

impl Estimate {
    /// Whether a group was too small to show.
    pub fn suppressed(&self, min_group_size: usize) -> bool {
        self.treated_n < min_group_size
            || self.control_n < min_group_size
            || self.behind.iter().any(|&n| n < min_group_size)
    }
}

/// Incremental value of an initiative: the per-customer uplift in 12-month
/// CLTV (margin included) times the customers who received it.
pub fn incremental_value(cltv_uplift: f64, treated_customers: usize) -> f64 {
    cltv_uplift * treated_customers as f64
}

/// Return on investment: (incremental value − cost) / cost. `None` for a
/// cost that is not positive: a ratio to nothing means nothing.
pub fn return_on_investment(incremental_value: f64, cost: f64) -> Option<f64> {
    (cost > 0.0 && cost.is_finite()).then(|| (incremental_value - cost) / cost)
}

fn cells(o: &ArmOutcome) -> [(f64, f64); 5] {
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    [
        (flag(o.retained), 1.0),
        (o.orders_after, 1.0),
        (o.nps_total, o.nps_answers),
        // A customer who never bought (or bought nothing that was kept)
        // is worth 0: leaving them out would compare the buyers of each
        // arm, when buying is what the initiative changes, and the uplift
        // is multiplied by every treated customer. (An unknown value makes
        // the caller withhold the comparison.)
        (o.cltv.worth(), 1.0),
        (o.orders_before, 1.0),
    ]
}

fn difference(t: &Totals, cell: usize) -> Option<f64> {
    Some(t.mean(TREATMENT, cell)? - t.mean(CONTROL, cell)?)
}

/// Compares the arms on every metric of [`ARM_METRICS`]. `cost` is the
/// initiative's cost (for the ROI of the CLTV uplift); `with_cltv` says
/// whether the CLTV values are real (when not, the CLTV estimate is left
/// empty for the caller to explain).
pub fn compare_arms(
    outcomes: &[ArmOutcome],
    cost: Option<f64>,
    with_cltv: bool,
    settings: &Settings,
) -> Vec<Estimate> {
    let mut units = Units::new(2, ARM_METRICS.len());
    for o in outcomes {
        units.push(if o.treated { TREATMENT } else { CONTROL }, &cells(o));
    }
    let treated_customers = units.len(TREATMENT);
    let valued = [true, false].map(|treated| {
        (outcomes.iter())
            .filter(|o| o.treated == treated && matches!(o.cltv, Cltv::Valued(_)))
            .count()
    });
    let cltv = ARM_METRICS
        .iter()
        .position(|m| *m == Metric::Cltv12m)
        .expect("CLTV is an arm metric");
    let metrics = ARM_METRICS.len();
    // Statistics: one effect per metric, then incremental value and ROI.
    let evaluate = |t: &Totals, out: &mut [Option<f64>]| {
        for (cell, slot) in out.iter_mut().take(metrics).enumerate() {
            *slot = difference(t, cell);
        }
        let uplift = difference(t, cltv);
        out[metrics] = uplift.map(|u| incremental_value(u, treated_customers));
        out[metrics + 1] = out[metrics]
            .zip(cost)
            .and_then(|(v, c)| return_on_investment(v, c));
    };
    let point = units.totals();
    let mut point_stats = vec![None; metrics + 2];
    evaluate(&point, &mut point_stats);
    let draws = bootstrap(
        &units,
        settings.resamples,
        settings.seed,
        metrics + 2,
        evaluate,
    );
    let with_ci = |i: usize| {
        point_stats[i].map(|value| Interval {
            value,
            ci: draws[i].interval(settings.level),
        })
    };
    ARM_METRICS
        .iter()
        .enumerate()
        .map(|(cell, &metric)| {
            let treated_n = units.contributors(TREATMENT, cell);
            let control_n = units.contributors(CONTROL, cell);
            let mut e = Estimate {
                metric,
                treated_n,
                control_n,
                treated_value: None,
                control_value: None,
                effect: None,
                money: None,
                // The arms' mean CLTV times their size is the sum of the
                // values of those who bought: with one buyer in an arm,
                // their value would be published.
                behind: if metric == Metric::Cltv12m {
                    valued
                } else {
                    [treated_n, control_n]
                },
            };
            if e.suppressed(settings.min_group_size) || (metric == Metric::Cltv12m && !with_cltv) {
                return e;
            }

            e.treated_value = point.mean(TREATMENT, cell);
            e.control_value = point.mean(CONTROL, cell);
            e.effect = with_ci(cell);
            if metric == Metric::Cltv12m {
                e.money = with_ci(metrics).map(|incremental_value| Money {
                    incremental_value,
                    roi: with_ci(metrics + 1),
                });
            }
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            resamples: 2000,
            seed: 3,
            min_group_size: 10,
            level: 0.95,
        }
    }

    fn customer(treated: bool, retained: bool, cltv: f64) -> ArmOutcome {
        ArmOutcome {
            treated,
            retained,
            orders_after: if retained { 3.0 } else { 1.0 },
            orders_before: 2.0,
            nps_total: 0.0,
            nps_answers: 0.0,
            cltv: Cltv::Valued(Some(cltv)),
        }
    }

    #[test]
    fn roi_arithmetic_by_hand() {
        assert_eq!(incremental_value(12.5, 400), 5000.0);
        assert_eq!(return_on_investment(5000.0, 4000.0), Some(0.25));
        assert_eq!(return_on_investment(3000.0, 4000.0), Some(-0.25));
        assert_eq!(return_on_investment(3000.0, 0.0), None);
    }

    /// Every treated customer is worth 120, every control 100: the uplift is
    /// 20 in every resample, so the intervals collapse onto the point:
    /// incremental value 20 × 40 = 800, ROI (800 − 500) / 500 = 0.6.
    #[test]
    fn constant_cltv_uplift_gives_exact_money() {
        let mut v: Vec<ArmOutcome> = (0..40).map(|i| customer(true, i % 2 == 0, 120.0)).collect();
        v.extend((0..30).map(|i| customer(false, i % 3 == 0, 100.0)));
        let est = compare_arms(&v, Some(500.0), true, &settings());
        let cltv = est
            .iter()
            .find(|e| e.metric == Metric::Cltv12m)
            .expect("cltv");
        assert_eq!((cltv.treated_n, cltv.control_n), (40, 30));
        assert_eq!(cltv.effect.map(|e| e.value), Some(20.0));
        assert_eq!(cltv.effect.and_then(|e| e.ci), Some((20.0, 20.0)));
        let money = cltv.money.expect("money");
        assert_eq!(money.incremental_value.value, 800.0);
        assert_eq!(money.incremental_value.ci, Some((800.0, 800.0)));
        let roi = money.roi.expect("roi");
        assert!((roi.value - 0.6).abs() < 1e-12);
        let (lo, hi) = roi.ci.expect("ci");
        assert!((lo - 0.6).abs() < 1e-12 && (hi - 0.6).abs() < 1e-12);
        // Retention: 20/40 against 10/30.
        let r = &est[0];
        assert_eq!(r.metric, Metric::RetentionRate);
        assert_eq!(r.treated_value, Some(0.5));
        assert!((r.control_value.expect("c") - 1.0 / 3.0).abs() < 1e-12);
        let e = r.effect.expect("effect");
        let (lo, hi) = e.ci.expect("ci");
        assert!(lo < e.value && e.value < hi);
        // Balance check: both arms ordered twice before.
        let pre = est
            .iter()
            .find(|e| e.metric == Metric::PrePeriodOrders)
            .expect("pre");
        assert_eq!(pre.effect.map(|e| e.value), Some(0.0));
        // Nobody answered an NPS survey: suppressed, not zero.
        let nps = est
            .iter()
            .find(|e| e.metric == Metric::NetPromoterScore)
            .expect("nps");
        assert_eq!((nps.treated_n, nps.effect), (0, None));
    }

    /// Hand-computed: 200 customers per arm; the initiative gets 100 of
    /// its arm to buy (CLTV 50 each), control 50 (CLTV 60 each). Per
    /// customer that is 25 against 15: +10, ×200 = +2,000. Counting the
    /// buyers only would say 50 − 60 = −10, the opposite sign.
    #[test]
    fn customers_who_never_bought_count_as_worth_nothing() {
        let mut v: Vec<ArmOutcome> = (0..200)
            .map(|i| {
                let mut c = customer(true, true, 50.0);
                if i >= 100 {
                    c.cltv = Cltv::NeverBought;
                }
                c
            })
            .collect();
        v.extend((0..200).map(|i| {
            let mut c = customer(false, true, 60.0);
            if i >= 50 {
                c.cltv = Cltv::NeverBought;
            }
            c
        }));
        let est = compare_arms(&v, Some(1000.0), true, &settings());
        let cltv = est
            .iter()
            .find(|e| e.metric == Metric::Cltv12m)
            .expect("cltv");
        assert_eq!((cltv.treated_n, cltv.control_n), (200, 200));
        assert_eq!(cltv.effect.map(|e| e.value), Some(10.0));
        let money = cltv.money.expect("money");
        assert_eq!(money.incremental_value.value, 2000.0);
    }

    /// The ROI interval is the image of the CLTV-uplift interval under
    /// u ↦ (u·n − cost)/cost, because both come from the same resamples.
    #[test]
    fn roi_interval_is_coherent_with_the_uplift_interval() {
        let mut v = Vec::new();
        for i in 0..60 {
            v.push(customer(true, true, 90.0 + f64::from(i % 7) * 10.0));
            v.push(customer(false, true, 85.0 + f64::from(i % 5) * 10.0));
        }
        let est = compare_arms(&v, Some(300.0), true, &settings());
        let cltv = est
            .iter()
            .find(|e| e.metric == Metric::Cltv12m)
            .expect("cltv");
        let (ulo, uhi) = cltv.effect.and_then(|e| e.ci).expect("ci");
        let money = cltv.money.expect("money");
        let (vlo, vhi) = money.incremental_value.ci.expect("ci");
        assert!((vlo - ulo * 60.0).abs() < 1e-9 && (vhi - uhi * 60.0).abs() < 1e-9);
        let (rlo, rhi) = money.roi.and_then(|r| r.ci).expect("ci");
        assert!((rlo - (ulo * 60.0 - 300.0) / 300.0).abs() < 1e-9);
        assert!((rhi - (uhi * 60.0 - 300.0) / 300.0).abs() < 1e-9);
    }

    #[test]
    fn an_arm_with_few_buyers_has_its_cltv_withheld() {
        // 40 treated of whom one bought (512.30): the arm's mean times 40
        // would be that customer's value.
        let mut v: Vec<ArmOutcome> = (0..40)
            .map(|i| {
                let mut c = customer(true, true, 512.3);
                if i > 0 {
                    c.cltv = Cltv::NeverBought;
                }
                c
            })
            .collect();
        v.extend((0..40).map(|_| customer(false, true, 100.0)));
        let est = compare_arms(&v, Some(10.0), true, &settings());
        let cltv = est
            .iter()
            .find(|e| e.metric == Metric::Cltv12m)
            .expect("cltv");
        assert_eq!(cltv.behind, [1, 40]);
        assert!(cltv.suppressed(10));
        assert!(cltv.treated_value.is_none() && cltv.effect.is_none() && cltv.money.is_none());
        let retention = &est[0];
        assert_eq!(
            retention.treated_value,
            Some(1.0),
            "other metrics are shown"
        );
    }

    #[test]
    fn small_arms_and_missing_cltv_are_withheld() {
        let mut v: Vec<ArmOutcome> = (0..40).map(|_| customer(true, true, 1.0)).collect();
        v.extend((0..9).map(|_| customer(false, false, 1.0)));
        let est = compare_arms(&v, Some(10.0), true, &settings());
        assert!(est.iter().all(|e| e.suppressed(10) && e.effect.is_none()));
        v.push(customer(false, false, 1.0));
        let est = compare_arms(&v, Some(10.0), false, &settings());
        let cltv = est
            .iter()
            .find(|e| e.metric == Metric::Cltv12m)
            .expect("cltv");
        assert!(cltv.effect.is_none() && cltv.money.is_none());
        assert_eq!(est[0].effect.map(|e| e.value), Some(1.0));
    }
}
