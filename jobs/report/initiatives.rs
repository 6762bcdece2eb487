//! Section 7, do our initiatives pay off?: per initiative the effect on
//! each metric with its interval, the evidence strength, and the ROI with
//! its interval. From marts/initiative_roi.

use serde::Serialize;

use super::charts::{self, RowMark, Scale};
use super::data::{Figure, Head, Light, Marts, MaybeChart, head};
use super::format::{count, money, num, pct, signed};
use super::table::Row;
use crate::Result;

/// Section 7.
#[derive(Debug, Clone, Serialize)]
pub struct Initiatives {
    pub head: Head,
    pub chart: MaybeChart,
    pub initiatives: Vec<Initiative>,
}

/// One initiative.
#[derive(Debug, Clone, Serialize)]
pub struct Initiative {
    pub name: String,
    /// "strong (randomized: treatment against a control group)", …
    pub evidence: String,
    pub cost: String,
    /// ROI with interval, when computed.
    pub roi: Option<Figure>,
    pub effects: Vec<Effect>,
    /// The mart's plain sentence on the CLTV/ROI (or the only) row.
    pub explanation: String,
}

/// The effect on one metric.
#[derive(Debug, Clone, Serialize)]
pub struct Effect {
    pub metric: String,
    pub effect: String,
    pub interval: String,
    pub groups: String,
    pub explanation: String,
}

fn metric_name(metric: &str) -> &str {
    match metric {
        "retention_rate" => "Customers still buying",
        "repeat_orders" => "Repeat orders per customer",
        "net_promoter_score" => "Net Promoter Score",
        "cltv_12m" => "12-month customer value",
        "pre_period_orders" => "Orders before the start (balance check: should be about 0)",
        "empathy_score" => "Perceived empathy (1–7)",
        other => other,
    }
}

/// An effect as a signed number in the metric's unit, and the unit.
fn effect_parts(metric: &str, v: f64, currency: &str) -> (String, String) {
    match metric {
        "retention_rate" => (signed(v * 100.0, 1), "percentage points".into()),
        "net_promoter_score" => (signed(v, 0), "points".into()),
        "cltv_12m" => (signed(v, 2), currency.to_string()),
        "repeat_orders" | "pre_period_orders" => (signed(v, 2), "orders".into()),
        _ => (signed(v, 2), String::new()),
    }
}

fn effect_text(metric: &str, v: f64, currency: &str) -> String {
    let (n, unit) = effect_parts(metric, v, currency);
    format!("{n} {unit}").trim_end().to_string()
}

fn evidence_text(r: &Row) -> String {
    match (r.str("evidence"), r.str("design")) {
        ("strong", _) => "strong: customers were randomly given it or not (a control group)".into(),
        ("weaker", _) => "weaker: no control group, so before and after are compared with customers who did not get it".into(),
        (_, "none") => "none: could not be evaluated".into(),
        (e, d) => format!("{e} ({d})"),
    }
}

/// Builds section 7.
pub async fn build(m: &Marts<'_>) -> Result<Initiatives> {
    let mut h = head(
        7,
        "initiatives",
        "Do our initiatives pay off?",
        vec![m.source("initiative_roi").await?],
    );
    let mut out = Initiatives {
        head: h.clone(),
        chart: None,
        initiatives: Vec::new(),
    };
    let Some(rows) = m
        .load(
            "initiative_roi",
            "initiative_id, name, design, evidence, metric, treated_n, control_n, effect, ci_low, \
             ci_high, cost, currency, roi, roi_ci_low, roi_ci_high, explanation",
            "ORDER BY initiative_id, metric",
        )
        .await?
    else {
        h.job_missing("roi", "initiative_roi");
        h.sentence = "Initiative results are not available for this date.".into();
        out.head = h;
        return Ok(out);
    };
    let mut ids: Vec<&str> = rows.iter().map(|r| r.str("initiative_id")).collect();
    ids.dedup();
    let mut marks = Vec::new();
    let (mut losing, mut paying, mut with_roi) = (0, 0, 0);
    for id in ids {
        let of: Vec<&Row> = rows
            .iter()
            .filter(|r| r.str("initiative_id") == id)
            .collect();
        let first = of[0];
        let currency = first.str("currency");
        let name = first.str("name").to_string();
        let roi_row = of.iter().find(|r| r.num("roi").is_some());
        let roi = roi_row.map(|r| {
            let v = r.num("roi").unwrap_or(0.0);
            let (lo, hi) = (r.num("roi_ci_low"), r.num("roi_ci_high"));
            with_roi += 1;
            if hi.is_some_and(|x| x < 0.0) {
                losing += 1;
            }
            if lo.is_some_and(|x| x > 0.0) {
                paying += 1;
            }
            marks.push(RowMark {
                label: name.clone(),
                value: Some(v),
                low: lo,
                high: hi,
                colour: if hi.is_some_and(|x| x < 0.0) {
                    charts::VERMILLION
                } else if lo.is_some_and(|x| x > 0.0) {
                    charts::GREEN
                } else {
                    charts::BLUE
                }
                .into(),
                title: format!(
                    "{name}: return on investment {}, 95% interval {} to {}",
                    pct(v, 0),
                    lo.map_or("?".into(), |x| pct(x, 0)),
                    hi.map_or("?".into(), |x| pct(x, 0))
                ),
                value_label: pct(v, 0),
            });
            Figure {
                label: "Return on investment".into(),
                value: pct(v, 0),
                note: match (lo, hi) {
                    (Some(l), Some(h)) => format!(
                        "95% interval {} to {}: every 1 spent returned between {} and {}",
                        pct(l, 0),
                        pct(h, 0),
                        num(1.0 + l, 2),
                        num(1.0 + h, 2)
                    ),
                    _ => "no interval".into(),
                },
            }
        });
        let effects = of
            .iter()
            .filter(|r| r.str("metric") != "none")
            .map(|r| {
                let metric = r.str("metric");
                Effect {
                    metric: metric_name(metric).to_string(),
                    effect: r
                        .num("effect")
                        .map_or("withheld".into(), |v| effect_text(metric, v, currency)),
                    interval: match (r.num("ci_low"), r.num("ci_high")) {
                        (Some(l), Some(h)) => {
                            let (lo, unit) = effect_parts(metric, l, currency);
                            let (hi, _) = effect_parts(metric, h, currency);
                            format!("{lo} to {hi} {unit}").trim_end().to_string()
                        }
                        _ => "–".into(),
                    },
                    groups: match (r.num("treated_n"), r.num("control_n")) {
                        (Some(t), Some(c)) => format!("{} vs {}", count(t), count(c)),
                        _ => m.fewer(),
                    },
                    explanation: r.str("explanation").to_string(),
                }
            })
            .collect();
        let explanation = roi_row
            .or_else(|| of.iter().find(|r| r.str("metric") == "cltv_12m"))
            .or(of.first())
            .map(|r| r.str("explanation").to_string())
            .unwrap_or_default();
        out.initiatives.push(Initiative {
            name,
            evidence: evidence_text(first),
            cost: first.num("cost").map_or("–".into(), |c| money(c, currency)),
            roi,
            effects,
            explanation,
        });
    }
    if !marks.is_empty() {
        out.chart = Some(charts::intervals(
            "chart-roi",
            "Return on investment per initiative, with 95% intervals",
            "Return on investment of each randomized initiative: 0% means it paid back exactly its cost; the whisker is the 95% interval.",
            &marks,
            "return on investment (%; 0% = paid back its cost)",
            Scale::Linear,
            None,
            &|v| pct(v, 0),
        ));
    }
    let n = out.initiatives.len();
    h.sentence = if n == 0 {
        "No initiative had customers assigned by this date.".into()
    } else if with_roi == 0 {
        format!(
            "{n} initiative{} evaluated; none has a return on investment yet (see the effects below).",
            if n == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "{with_roi} initiative{} had a measurable return: {paying} clearly paid off, {losing} clearly lost money, {} too uncertain to call.",
            if with_roi == 1 { "" } else { "s" },
            with_roi - paying - losing
        )
    };
    h.light = if n == 0 {
        Light::grey()
    } else if losing > 0 {
        Light::red()
    } else if with_roi > 0 && paying == with_roi {
        Light::green()
    } else {
        Light::amber()
    };
    out.head = h;
    Ok(out)
}
