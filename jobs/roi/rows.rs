//! Rows of `marts/initiative_roi`: the estimates in a table, each with one
//! plain sentence an owner can read.
//!
//! A withheld number is NULL, never 0, and the sentence says why it is
//! withheld (a small group, no CLTV yet, no cost, a survey scale without a
//! money value).

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::did::DidEstimate;
use super::effects::{Estimate, Interval, Metric};
use crate::Result;

/// How an initiative's effect was estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Design {
    /// Treatment against a control arm.
    Randomized,
    /// Before/after, exposed against non-exposed.
    DifferenceInDifferences,
    /// Not estimated (the explanation says why).
    None,
}

impl Design {
    pub fn name(self) -> &'static str {
        match self {
            Design::Randomized => "randomized",
            Design::DifferenceInDifferences => "difference_in_differences",
            Design::None => "none",
        }
    }

    /// The evidence label that goes with the design.
    pub fn evidence(self) -> &'static str {
        match self {
            Design::Randomized => "strong",
            Design::DifferenceInDifferences => "weaker",
            Design::None => "none",
        }
    }
}

/// What the evidence label says in words, for DiD rows.
pub const WEAKER: &str = "weaker evidence (no control arm; difference in differences)";

/// The initiative a row belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct InitiativeInfo {
    pub initiative_id: String,
    pub name: String,
    pub started_on: NaiveDate,
    pub cost: f64,
    pub currency: String,
}

/// One row of `marts/initiative_roi`.
#[derive(Debug, Clone, PartialEq)]
pub struct RoiRow {
    pub initiative_id: String,
    pub name: String,
    pub design: Design,
    pub metric: &'static str,
    pub treated_n: Option<usize>,
    pub control_n: Option<usize>,
    pub treated_value: Option<f64>,
    pub control_value: Option<f64>,
    pub effect: Option<Interval>,
    pub cost: Option<f64>,
    pub currency: Option<String>,
    pub incremental_value: Option<Interval>,
    pub roi: Option<Interval>,
    pub explanation: String,
}

impl RoiRow {
    fn empty(i: &InitiativeInfo, design: Design, metric: &'static str, why: String) -> RoiRow {
        RoiRow {
            initiative_id: i.initiative_id.clone(),
            name: i.name.clone(),
            design,
            metric,
            treated_n: None,
            control_n: None,
            treated_value: None,
            control_value: None,
            effect: None,
            cost: Some(i.cost),
            currency: Some(i.currency.clone()),
            incremental_value: None,
            roi: None,
            explanation: why,
        }
    }

    /// An initiative that could not be evaluated at all.
    pub fn not_estimated(i: &InitiativeInfo, why: &str) -> RoiRow {
        RoiRow::empty(i, Design::None, "none", format!("Not evaluated: {why}."))
    }
}

/// Schema of `marts/initiative_roi` (documented in `schemas/marts/initiative_roi.toml`).
pub fn schema() -> SchemaRef {
    let f = |name: &str| Field::new(name, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new("initiative_id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("design", DataType::Utf8, false),
        Field::new("evidence", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("treated_n", DataType::Int64, true),
        Field::new("control_n", DataType::Int64, true),
        f("treated_value"),
        f("control_value"),
        f("effect"),
        f("ci_low"),
        f("ci_high"),
        f("cost"),
        Field::new("currency", DataType::Utf8, true),
        f("incremental_value"),
        f("incremental_value_ci_low"),
        f("incremental_value_ci_high"),
        f("roi"),
        f("roi_ci_low"),
        f("roi_ci_high"),
        Field::new("explanation", DataType::Utf8, false),
    ]))
}

/// The rows as one batch, in the order given.
pub fn to_batch(rows: &[RoiRow]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&RoiRow) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let count = |f: &dyn Fn(&RoiRow) -> Option<usize>| -> ArrayRef {
        Arc::new(Int64Array::from(
            rows.iter()
                .map(|r| f(r).map(|n| n as i64))
                .collect::<Vec<_>>(),
        ))
    };
    // A NaN or infinity would read as a number; NULL says "not computed".
    let float = |f: &dyn Fn(&RoiRow) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from(
            rows.iter()
                .map(|r| f(r).filter(|v| v.is_finite()))
                .collect::<Vec<_>>(),
        ))
    };
    let lo = |i: Option<Interval>| i.and_then(|x| x.ci).map(|c| c.0);
    let hi = |i: Option<Interval>| i.and_then(|x| x.ci).map(|c| c.1);
    let columns = vec![
        text(&|r| Some(r.initiative_id.clone())),
        text(&|r| Some(r.name.clone())),
        text(&|r| Some(r.design.name().to_string())),
        text(&|r| Some(r.design.evidence().to_string())),
        text(&|r| Some(r.metric.to_string())),
        count(&|r| r.treated_n),
        count(&|r| r.control_n),
        float(&|r| r.treated_value),
        float(&|r| r.control_value),
        float(&|r| r.effect.map(|e| e.value)),
        float(&|r| lo(r.effect)),
        float(&|r| hi(r.effect)),
        float(&|r| r.cost),
        text(&|r| r.currency.clone()),
        float(&|r| r.incremental_value.map(|e| e.value)),
        float(&|r| lo(r.incremental_value)),
        float(&|r| hi(r.incremental_value)),
        float(&|r| r.roi.map(|e| e.value)),
        float(&|r| lo(r.roi)),
        float(&|r| hi(r.roi)),
        text(&|r| Some(r.explanation.clone())),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

// --- Numbers in words ---------------------------------------------------------

/// A value of `metric` as an owner reads it.
fn value(metric: Metric, x: f64, currency: &str) -> String {
    match metric {
        Metric::RetentionRate => format!("{:.1}%", x * 100.0),
        Metric::RepeatOrders | Metric::PrePeriodOrders => format!("{x:.2}"),
        Metric::NetPromoterScore => format!("{x:.1}"),
        Metric::Cltv12m => format!("{x:.2} {currency}"),
        Metric::EmpathyScore => format!("{x:.2}"),
    }
}

/// A signed difference of `metric`, without its unit.
fn signed(metric: Metric, x: f64) -> String {
    match metric {
        Metric::RetentionRate => format!("{:+.1}", x * 100.0),
        Metric::NetPromoterScore => format!("{x:+.1}"),
        Metric::RepeatOrders | Metric::PrePeriodOrders | Metric::EmpathyScore => {
            format!("{x:+.2}")
        }
        Metric::Cltv12m => format!("{x:+.2}"),
    }
}

fn unit(metric: Metric, currency: &str) -> String {
    match metric {
        Metric::RetentionRate => "percentage points".into(),
        Metric::NetPromoterScore => "NPS points".into(),
        Metric::RepeatOrders | Metric::PrePeriodOrders => "orders per customer".into(),
        Metric::Cltv12m => format!("{currency} per customer"),
        Metric::EmpathyScore => "points on the 1-7 scale".into(),
    }
}

/// "+11.1 percentage points (95% interval +4.9 to +17.2)".
fn effect_phrase(metric: Metric, e: &Interval, currency: &str) -> String {
    format!(
        "{} {} {}",
        signed(metric, e.value),
        unit(metric, currency),
        interval_phrase(e.ci, |x| signed(metric, x))
    )
}

fn interval_phrase(ci: Option<(f64, f64)>, fmt: impl Fn(f64) -> String) -> String {
    match ci {
        Some((lo, hi)) => format!("(95% interval {} to {})", fmt(lo), fmt(hi)),
        None => "(no interval: too many resamples had no answers to average)".into(),
    }
}

/// Whether the interval settles the sign of the effect, in words.
fn verdict(ci: Option<(f64, f64)>) -> &'static str {
    match ci {
        Some((lo, _)) if lo > 0.0 => "clearly above zero",
        Some((_, hi)) if hi < 0.0 => "clearly below zero",
        Some(_) => "the interval includes zero, so the data cannot tell this from chance",
        None => "its size is uncertain",
    }
}

fn money(x: f64, currency: &str) -> String {
    format!("{x:.0} {currency}")
}

fn percent(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

// --- Randomized rows ------------------------------------------------------------

/// What a randomized row's sentence needs besides the estimate.
#[derive(Debug, Clone)]
pub struct ArmContext<'a> {
    pub initiative: &'a InitiativeInfo,
    pub run_date: NaiveDate,
    pub inactive_days: u32,
    pub min_group_size: usize,
    /// Why the CLTV-based numbers are not shown, in words, when they are
    /// not (marts/customer_value missing or unusable, or its values not in
    /// the row's currency).
    pub cltv_gap: Option<&'a str>,
}

/// The row of one randomized metric.
pub fn randomized_row(e: &Estimate, cx: &ArmContext) -> RoiRow {
    let i = cx.initiative;
    let cur = i.currency.as_str();
    let mut row = RoiRow::empty(i, Design::Randomized, e.metric.name(), String::new());
    if e.metric == Metric::Cltv12m
        && let Some(why) = cx.cltv_gap
    {
        row.explanation = format!(
            "Not available: {why}, so the CLTV uplift, the incremental value and the ROI are not computed (attune does not guess a lifetime value)."
        );
        return row;
    }
    if e.suppressed(cx.min_group_size) {
        row.explanation = format!(
            "Withheld: fewer than {} customers {} in one of the arms.",
            cx.min_group_size,
            match e.metric {
                Metric::NetPromoterScore => "answered an NPS survey after assignment",
                Metric::Cltv12m => "bought (and so have a lifetime value)",
                _ => "were assigned",
            }
        );
        return row;
    }
    let (Some(t), Some(c), Some(effect)) = (e.treated_value, e.control_value, e.effect) else {
        row.explanation = "Withheld: an arm has nothing to average.".into();
        return row;
    };
    row.treated_n = Some(e.treated_n);
    row.control_n = Some(e.control_n);
    row.treated_value = Some(t);
    row.control_value = Some(c);
    row.effect = Some(effect);
    let eff = effect_phrase(e.metric, &effect, cur);
    let sure = verdict(effect.ci);
    let (nt, nc) = (e.treated_n, e.control_n);
    row.explanation = match e.metric {
        Metric::RetentionRate => format!(
            "{} of the {nt} treated customers ordered in the {} days up to {} against {} of the {nc} control customers (the churn rate is one minus these shares): {eff} against a randomized control group, {sure}.",
            value(e.metric, t, cur),
            cx.inactive_days,
            cx.run_date,
            value(e.metric, c, cur)
        ),
        Metric::RepeatOrders => format!(
            "Since assignment, treated customers placed {} orders each and control customers {}: {eff}, {sure}.",
            value(e.metric, t, cur),
            value(e.metric, c, cur)
        ),
        Metric::NetPromoterScore => format!(
            "NPS since assignment is {} from {nt} treated respondents against {} from {nc} control respondents: {eff}, {sure}.",
            value(e.metric, t, cur),
            value(e.metric, c, cur)
        ),
        Metric::PrePeriodOrders => {
            let balanced = effect.ci.is_some_and(|(lo, hi)| lo <= 0.0 && 0.0 <= hi);
            format!(
                "Balance check: in the {} days before assignment treated customers ordered {} times each and control customers {}, a difference of {eff}; {}",
                cx.inactive_days,
                value(e.metric, t, cur),
                value(e.metric, c, cur),
                if balanced {
                    "the arms looked alike before the start, as they should when assigned at random."
                } else {
                    "the arms already differed before the start, so read the other differences with caution."
                }
            )
        }
        Metric::Cltv12m => cltv_sentence(e, &mut row, cx, t, c, &format!("{eff}, {sure}")),
        Metric::EmpathyScore => format!(
            "Empathy answers since assignment average {} for treated and {} for control customers: {eff}, {sure}.",
            value(e.metric, t, cur),
            value(e.metric, c, cur)
        ),
    };
    row
}

fn cltv_sentence(
    e: &Estimate,
    row: &mut RoiRow,
    cx: &ArmContext,
    t: f64,
    c: f64,
    eff: &str,
) -> String {
    let i = cx.initiative;
    let cur = i.currency.as_str();
    let opening = format!(
        "Treated customers are worth {} each over the next 12 months (margin included) against {} for control customers, {eff}",
        value(e.metric, t, cur),
        value(e.metric, c, cur),
    );
    let Some(m) = e.money else {
        return format!("{opening}; no incremental value: the uplift has no interval.");
    };
    row.incremental_value = Some(m.incremental_value);
    row.roi = m.roi;
    let inc = format!(
        "times {} treated customers that is {} {}",
        e.treated_n,
        money(m.incremental_value.value, cur),
        interval_phrase(m.incremental_value.ci, |x| money(x, cur))
    );
    match m.roi {
        Some(r) => format!(
            "{opening}; {inc} against a cost of {}, a return on investment of {} {}.",
            money(i.cost, cur),
            percent(r.value),
            interval_phrase(r.ci, percent)
        ),
        None => format!("{opening}; {inc}; no ROI because no cost was recorded."),
    }
}

// --- Difference-in-differences rows ------------------------------------------------

/// Who the two groups of a DiD are, in words.
#[derive(Debug, Clone)]
pub enum DidGroups {
    /// Answers about one touchpoint against the others.
    Touchpoint(String),
    /// Assigned against unassigned customers, in windows of this many days.
    Customers { window_days: i64 },
}

/// The row of one DiD metric.
pub fn did_row(
    e: &DidEstimate,
    i: &InitiativeInfo,
    groups: &DidGroups,
    min_group_size: usize,
) -> RoiRow {
    let cur = i.currency.as_str();
    let mut row = RoiRow::empty(
        i,
        Design::DifferenceInDifferences,
        e.metric.name(),
        String::new(),
    );
    if e.suppressed(min_group_size) {
        row.explanation = format!(
            "Withheld: fewer than {min_group_size} customers behind one of the four before/after groups; {WEAKER} in any case."
        );
        return row;
    }
    let (Some(te), Some(oe), Some(effect)) = (e.exposed_change, e.other_change, e.effect) else {
        row.explanation =
            format!("Withheld: a before/after group has nothing to average; {WEAKER}.");
        return row;
    };
    row.treated_n = Some(e.exposed_n);
    row.control_n = Some(e.other_n);
    row.treated_value = Some(te);
    row.control_value = Some(oe);
    row.effect = Some(effect);
    let m = e.metric;
    let mean = |k: usize| e.means[k].map_or_else(|| "?".to_string(), |x| value(m, x, cur));
    let what = match m {
        Metric::EmpathyScore => "SERVQUAL empathy answers",
        Metric::NetPromoterScore => "NPS",
        _ => "orders per customer",
    };
    let (exposed, others, no_money) = match groups {
        DidGroups::Touchpoint(tp) => (
            format!("{what} about the {} touchpoint", tp.replace('_', "-")),
            format!("{what} about the other touchpoints"),
            "a survey scale has no money value attune could defend, so there is no ROI",
        ),
        DidGroups::Customers { window_days } => (
            format!("{what} of assigned customers ({window_days} days before and after)"),
            format!("{what} of unassigned customers"),
            "there is no ROI, because a money value needs the CLTV of a control arm",
        ),
    };
    row.explanation = format!(
        "From {} on, {exposed} moved from {} to {} ({}) while {others} moved from {} to {} ({}) over the same time (season, customer mix): an effect of {}, {}; {WEAKER}, and {no_money}.",
        i.started_on,
        mean(0),
        mean(1),
        signed(m, te),
        mean(2),
        mean(3),
        signed(m, oe),
        effect_phrase(m, &effect, cur),
        verdict(effect.ci),
    );
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roi::effects::Money;

    fn info() -> InitiativeInfo {
        InitiativeInfo {
            initiative_id: "I0001".into(),
            name: "Loyalty card".into(),
            started_on: NaiveDate::from_ymd_opt(2025, 3, 31).expect("date"),
            cost: 4500.0,
            currency: "EUR".into(),
        }
    }

    #[test]
    fn batch_matches_the_schema_and_documentation() {
        let i = info();
        let cltv = Estimate {
            metric: Metric::Cltv12m,
            treated_n: 400,
            control_n: 390,
            treated_value: Some(120.0),
            control_value: Some(100.0),
            effect: Some(Interval {
                value: 20.0,
                ci: Some((10.0, 30.0)),
            }),
            money: Some(Money {
                incremental_value: Interval {
                    value: 8000.0,
                    ci: Some((4000.0, 12000.0)),
                },
                roi: Some(Interval {
                    value: 0.7778,
                    ci: Some((-0.1111, 1.6667)),
                }),
            }),
            behind: [400, 390],
        };
        let cx = ArmContext {
            initiative: &i,
            run_date: NaiveDate::from_ymd_opt(2025, 12, 31).expect("date"),
            inactive_days: 90,
            min_group_size: 10,
            cltv_gap: None,
        };
        let row = randomized_row(&cltv, &cx);
        assert!(row.explanation.contains("8000 EUR"), "{}", row.explanation);
        assert!(row.explanation.contains("78%"), "{}", row.explanation);
        let rows = vec![
            row,
            RoiRow::not_estimated(&i, "it starts after the run date"),
        ];
        let batch = to_batch(&rows).expect("batch");
        crate::mart::doc("initiative_roi")
            .expect("documented")
            .check(&batch.schema())
            .expect("schema matches the doc");
        assert_eq!(batch.num_rows(), 2);
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| {
                    c.as_any()
                        .downcast_ref::<datafusion::arrow::array::Float64Array>()
                })
                .map(|a| {
                    (0..a.len())
                        .map(|k| a.is_valid(k).then(|| a.value(k)))
                        .collect::<Vec<_>>()
                })
                .expect("float column")
        };
        use datafusion::arrow::array::Array as _;
        assert_eq!(col("cost"), vec![Some(4500.0), Some(4500.0)]);
        assert_eq!(col("incremental_value_ci_high"), vec![Some(12000.0), None]);
        assert_eq!(col("roi"), vec![Some(0.7778), None]);
        assert_eq!(col("effect"), vec![Some(20.0), None]);
    }

    #[test]
    fn the_sentence_says_whether_the_interval_settles_the_sign() {
        let cases = [
            (Some((0.01, 0.2)), "clearly above zero"),
            (Some((-0.3, -0.1)), "clearly below zero"),
            (Some((-0.1, 0.2)), "includes zero"),
            (Some((0.0, 0.2)), "includes zero"),
            (None, "uncertain"),
        ];
        for (ci, want) in cases {
            assert!(verdict(ci).contains(want), "{ci:?}: {}", verdict(ci));
        }
    }

    #[test]
    fn missing_cltv_is_said_not_invented() {
        let i = info();
        let gap = "marts/customer_value has no partition for 2025-12-31";
        let e = Estimate {
            metric: Metric::Cltv12m,
            treated_n: 400,
            control_n: 390,
            treated_value: None,
            control_value: None,
            effect: None,
            money: None,
            behind: [400, 390],
        };
        let cx = ArmContext {
            initiative: &i,
            run_date: NaiveDate::from_ymd_opt(2025, 12, 31).expect("date"),
            inactive_days: 90,
            min_group_size: 10,
            cltv_gap: Some(gap),
        };
        let row = randomized_row(&e, &cx);
        assert!(row.effect.is_none() && row.roi.is_none() && row.incremental_value.is_none());
        assert!(
            row.explanation
                .starts_with("Not available: marts/customer_value")
        );
    }
}
