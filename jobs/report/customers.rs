//! Section 3, who your customers are: segments with sizes and profiles,
//! from marts/segment_profiles.

use serde::Serialize;

use super::charts::{self, RowMark};
use super::data::{Head, Light, Marts, MaybeChart, head};
use super::format::{count, count_or_fewer, num, pct};
use crate::Result;

/// Section 3.
#[derive(Debug, Clone, Serialize)]
pub struct Customers {
    pub head: Head,
    pub chart: MaybeChart,
    pub segments: Vec<Segment>,
}

/// One segment as the owner reads it.
#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    pub name: String,
    pub customers: String,
    pub share: String,
    pub last_purchase: String,
    pub purchases: String,
    pub spend: String,
    pub nps: String,
    pub churn: String,
    /// Why the segment has its name.
    pub reason: String,
}

/// Churn rate from which a segment counts as drifting away.
const DRIFTING_CHURN: f64 = 0.5;

/// Builds section 3.
pub async fn build(m: &Marts<'_>) -> Result<Customers> {
    let mut h = head(
        3,
        "customers",
        "Who your customers are",
        vec![m.source("segment_profiles").await?],
    );
    let mut out = Customers {
        head: h.clone(),
        chart: None,
        segments: Vec::new(),
    };
    let Some(rows) = m
        .load(
            "segment_profiles",
            "segment_id, segment, suppressed, customers, share, median_recency_days, \
             median_frequency, median_monetary_total, net_promoter_score, churn_rate, name_reason",
            "ORDER BY segment_id",
        )
        .await?
    else {
        h.job_missing("segment", "segment_profiles");
        h.sentence = "Customer segments are not available for this date.".into();
        out.head = h;
        return Ok(out);
    };
    let dash = "–".to_string();
    let fewer = m.fewer();
    let mut marks = Vec::new();
    let (mut total, mut drifting) = (0.0, 0.0);
    for r in &rows {
        let name = r.str("segment").to_string();
        let n = r.num("customers");
        total += n.unwrap_or(0.0);
        if r.num("churn_rate").is_some_and(|c| c >= DRIFTING_CHURN) {
            drifting += n.unwrap_or(0.0);
        }
        out.segments.push(Segment {
            name: name.clone(),
            customers: count_or_fewer(n, m.min_group_size),
            share: r.num("share").map_or(dash.clone(), |s| pct(s, 0)),
            last_purchase: r
                .num("median_recency_days")
                .map_or(dash.clone(), |d| format!("{} days ago", num(d, 0))),
            purchases: r
                .num("median_frequency")
                .map_or(dash.clone(), |f| num(f, 0)),
            spend: r.num("median_monetary_total").map_or(dash.clone(), count),
            nps: r
                .num("net_promoter_score")
                .map_or(dash.clone(), |v| num(v, 0)),
            churn: r.num("churn_rate").map_or(dash.clone(), |c| pct(c, 0)),
            reason: r.str("name_reason").to_string(),
        });
        marks.push(match n {
            Some(k) => RowMark {
                title: format!("{name}: {} customers", count(k)),
                value_label: count(k),
                label: name,
                value: Some(k),
                low: None,
                high: None,
                colour: if r.num("churn_rate").is_some_and(|c| c >= DRIFTING_CHURN) {
                    charts::ORANGE
                } else {
                    charts::BLUE
                }
                .into(),
            },
            None => RowMark {
                title: format!("{fewer} customers: not shown"),
                value_label: String::new(),
                label: name,
                value: None,
                low: None,
                high: None,
                colour: charts::GREY.into(),
            },
        });
    }
    if !marks.is_empty() {
        let mut chart = charts::hbars(
            "chart-segments",
            "Customers per segment",
            "Number of customers in each segment; orange bars are segments where at least half the customers have stopped buying.",
            &marks,
            "customers (count)",
            None,
            &|v| count(v),
        );
        chart.legend = vec![
            charts::LegendItem {
                colour: charts::BLUE.into(),
                label: "segment".into(),
                kind: "bar".into(),
            },
            charts::LegendItem {
                colour: charts::ORANGE.into(),
                label: "half or more have stopped buying".into(),
                kind: "bar".into(),
            },
        ];
        out.chart = Some(chart);
    }
    let biggest = rows
        .iter()
        .filter(|r| r.num("customers").is_some())
        .max_by(|a, b| {
            a.num("customers")
                .partial_cmp(&b.num("customers"))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    // Segment shares are of every customer, withheld segments included.
    let everyone = biggest
        .and_then(|b| Some(b.num("customers")? / b.num("share").filter(|s| *s > 0.0)?))
        .unwrap_or(total);
    let share = if everyone > 0.0 {
        drifting / everyone
    } else {
        0.0
    };
    h.sentence = match biggest {
        Some(b) => format!(
            "Your {} customers fall into {} groups; the largest is “{}” ({}){}.",
            count(everyone),
            rows.len(),
            b.str("segment"),
            b.num("share").map_or(String::new(), |s| pct(s, 0)),
            if drifting > 0.0 {
                format!(
                    ", and {} are in groups where most have stopped buying",
                    pct(share, 0)
                )
            } else {
                ", and no group has mostly stopped buying".to_string()
            }
        ),
        None => "Every segment is too small to show.".into(),
    };
    h.light = if total == 0.0 {
        Light::grey()
    } else if share >= 0.5 {
        Light::red()
    } else if share >= 0.25 {
        Light::amber()
    } else {
        Light::green()
    };
    out.head = h;
    Ok(out)
}
