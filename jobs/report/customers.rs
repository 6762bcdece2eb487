//! Section 3, who your customers are: segments with sizes and profiles,
//! from marts/segment_profiles.

use serde::Serialize;

use super::charts::{self, RowMark};
use super::data::{Head, Light, Marts, MaybeChart, head};
use super::format::{NOT_SHOWN, count, money, num, pct};
use super::table::Row;
use crate::Result;

/// `segment_profiles.segment_id` of "No purchases yet".
const NO_PURCHASES_ID: f64 = crate::segment::NO_PURCHASES_ID as f64;

/// Section 3.
#[derive(Debug, Clone, Serialize)]
pub struct Customers {
    pub head: Head,
    pub chart: MaybeChart,
    pub segments: Vec<Segment>,
    /// Why some sizes say "not shown"; empty when none do.
    pub withheld_note: String,
    /// Segments whose size is not shown, for section 4, which shows the
    /// same segments against another total.
    #[serde(skip)]
    pub hidden: Vec<String>,
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

/// Builds section 3. `also_hidden`: segments section 4 withholds, whose
/// sizes here would undo it.
pub async fn build(m: &Marts<'_>, also_hidden: &[String]) -> Result<Customers> {
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
        withheld_note: String::new(),
        hidden: Vec::new(),
    };
    let Some(rows) = m
        .load(
            "segment_profiles",
            "segment_id, segment, suppressed, customers, share, median_recency_days, \
             median_frequency, median_monetary_total, currency, net_promoter_score, churn_rate, name_reason",
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
    let everyone = everyone(&rows);
    let withheld = withheld(&rows, everyone, also_hidden, m.min_group_size);
    // The size a reader sees, if any.
    let size = |i: usize| rows[i].num("customers").filter(|_| !withheld[i]);
    let small =
        |i: usize| rows[i].num("customers").is_none() && rows[i].flag("suppressed") != Some(false);
    let mut marks = Vec::new();
    let (mut shown, mut drifting) = (0.0, 0.0);
    for (i, r) in rows.iter().enumerate() {
        let name = r.str("segment").to_string();
        let n = size(i);
        // A churn rate is churned / size: with the size hidden it goes too.
        let churn = r.num("churn_rate").filter(|_| n.is_some());
        shown += n.unwrap_or(0.0);
        if churn.is_some_and(|c| c >= DRIFTING_CHURN) {
            drifting += n.unwrap_or(0.0);
        }
        if n.is_none() {
            out.hidden.push(name.clone());
        }
        out.segments.push(Segment {
            name: name.clone(),
            customers: match n {
                Some(n) => count(n),
                None if small(i) => fewer.clone(),
                None => NOT_SHOWN.into(),
            },
            share: match (n, r.num("share"), everyone) {
                (Some(_), Some(s), Some(_)) => pct(s, 0),
                _ => dash.clone(),
            },
            last_purchase: r
                .num("median_recency_days")
                .map_or(dash.clone(), |d| format!("{} days ago", num(d, 0))),
            purchases: r
                .num("median_frequency")
                .map_or(dash.clone(), |f| num(f, 0)),
            spend: r
                .num("median_monetary_total")
                .map_or(dash.clone(), |x| money(x, r.str("currency"))),
            nps: r
                .num("net_promoter_score")
                .map_or(dash.clone(), |v| num(v, 0)),
            churn: churn.map_or(dash.clone(), |c| pct(c, 0)),
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
                colour: if churn.is_some_and(|c| c >= DRIFTING_CHURN) {
                    charts::ORANGE
                } else {
                    charts::BLUE
                }
                .into(),
            },
            None => RowMark {
                title: if small(i) {
                    format!("{fewer} customers: not shown")
                } else {
                    "size not shown: it would give a smaller segment away".into()
                },
                value_label: String::new(),
                label: name,
                value: None,
                low: None,
                high: None,
                colour: charts::GREY.into(),
            },
        });
    }
    if (0..rows.len()).any(|i| size(i).is_none() && !small(i)) {
        out.withheld_note = format!(
            "“{NOT_SHOWN}”: a segment of {} customers or more whose size, share and churn are withheld, because with the total they would give away a segment of {fewer}.",
            m.min_group_size
        );
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
    let biggest = (0..rows.len())
        .filter_map(|i| Some((i, size(i)?)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let some_hidden = !out.hidden.is_empty();
    // Hidden segments may be drifting too: what is shown is a lower bound.
    let at_least = if some_hidden { "at least " } else { "" };
    let (share, drift) = match everyone {
        Some(all) if all > 0.0 => (
            drifting / all,
            format!("{at_least}{} are in groups", pct(drifting / all, 0)),
        ),
        _ => (
            if shown > 0.0 { drifting / shown } else { 0.0 },
            format!(
                "{} of the customers in the groups shown are in groups",
                pct(if shown > 0.0 { drifting / shown } else { 0.0 }, 0)
            ),
        ),
    };
    h.sentence = match biggest {
        Some((b, n)) => format!(
            "Your {}customers fall into {} groups; the largest is “{}” ({}){}.",
            everyone.map_or(String::new(), |e| format!("{} ", count(e))),
            rows.len(),
            rows[b].str("segment"),
            match (rows[b].num("share"), everyone) {
                (Some(s), Some(_)) => pct(s, 0),
                _ => format!("{} customers", count(n)),
            },
            if drifting > 0.0 {
                format!(", and {drift} where most have stopped buying")
            } else if some_hidden {
                ", and no group shown has mostly stopped buying".to_string()
            } else {
                ", and no group has mostly stopped buying".to_string()
            }
        ),
        None if rows.is_empty() => "There are no segments for this date.".into(),
        None => "No segment's size can be shown: some are too small to show.".into(),
    };
    h.light = if shown == 0.0 {
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

/// Every customer, withheld segments included: a shown size over its share
/// (the largest, for precision), or the sum when nothing is hidden. `None`
/// when "No purchases yet" is hidden: everyone minus the customers who have
/// bought (section 4) would give it away.
fn everyone(rows: &[Row]) -> Option<f64> {
    let hidden = |r: &Row| r.num("customers").is_none();
    if rows
        .iter()
        .any(|r| r.num("segment_id") == Some(NO_PURCHASES_ID) && hidden(r))
    {
        return None;
    }
    let from_share = rows
        .iter()
        .filter_map(|r| Some((r.num("customers")?, r.num("share").filter(|s| *s > 0.0)?)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(n, s)| (n / s).round());
    from_share.or_else(|| {
        (!rows.iter().any(hidden)).then(|| rows.iter().filter_map(|r| r.num("customers")).sum())
    })
}

/// Shown sizes to withhold: those of `also_hidden`, then (when `everyone`
/// is printed) the smallest clustered ones until the hidden segments hold
/// at least `min_group_size` customers together, as the segment job does
/// ([`crate::segment::profile::protect_totals`]; this guards marts written
/// before it did). Never "No purchases yet", whose size is everyone minus
/// the customers who have bought.
fn withheld(rows: &[Row], everyone: Option<f64>, also_hidden: &[String], min: usize) -> Vec<bool> {
    let mut out: Vec<bool> = rows
        .iter()
        .map(|r| r.num("customers").is_some() && also_hidden.iter().any(|s| s == r.str("segment")))
        .collect();
    let Some(all) = everyone else {
        return out;
    };
    let members: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].num("segment_id") != Some(NO_PURCHASES_ID))
        .collect();
    let hidden: Vec<bool> = members
        .iter()
        .map(|&i| out[i] || rows[i].num("customers").is_none())
        .collect();
    let shown: f64 = (0..rows.len())
        .filter(|&i| !out[i])
        .filter_map(|i| rows[i].num("customers"))
        .sum();
    // Hidden sizes are known only together (everyone minus the rest):
    // complements adds them up, so the first carries the sum.
    let mut held = Some((all - shown).max(0.0) as u64);
    let sizes: Vec<u64> = members
        .iter()
        .zip(&hidden)
        .map(|(&i, &h)| {
            if h {
                held.take().unwrap_or(0)
            } else {
                rows[i].num("customers").unwrap_or(0.0) as u64
            }
        })
        .collect();
    let more = crate::secondary_suppression::complements(&hidden, &sizes, min as u64);
    for (&i, m) in members.iter().zip(more) {
        out[i] |= m;
    }
    out
}
