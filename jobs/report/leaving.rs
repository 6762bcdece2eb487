//! Section 4, who may be leaving and what relationships are worth: churn
//! trend, customers at risk per segment (counts only), the distribution of
//! 12-month customer lifetime value and the churn model's quality in words.
//! From marts/churn_rates, customer_value and model_metrics (job value).

use serde::Serialize;

use super::charts::{self, Bin, TrendPoint};
use super::data::{Figure, Head, Light, Marts, MaybeChart, head};
use super::format::{count, count_or_fewer, month_label, num, pct};
use super::table;
use crate::Result;

/// Section 4.
#[derive(Debug, Clone, Serialize)]
pub struct Leaving {
    pub head: Head,
    pub figures: Vec<Figure>,
    pub churn_chart: MaybeChart,
    pub at_risk: Vec<AtRisk>,
    pub cltv_chart: MaybeChart,
    /// The churn model's quality in plain words.
    pub model_quality: String,
}

/// Customers at risk in one segment.
#[derive(Debug, Clone, Serialize)]
pub struct AtRisk {
    pub segment: String,
    pub customers: String,
    pub at_risk: String,
    pub share: String,
}

/// Bins of the CLTV histogram.
const CLTV_BINS: usize = 12;

/// An at-risk count of `n` customers, hidden when it or the rest is
/// below `min_group_size` (either would single out the few).
fn at_risk_text(at_risk: f64, n: f64, min_group_size: usize) -> String {
    let small = |x: f64| x > 0.0 && x < min_group_size as f64;
    if small(at_risk) {
        count_or_fewer(None, min_group_size)
    } else if small(n - at_risk) {
        format!("all but {}", count_or_fewer(None, min_group_size))
    } else {
        count(at_risk)
    }
}

/// Builds section 4.
pub async fn build(m: &Marts<'_>) -> Result<Leaving> {
    let sources = vec![
        m.source("churn_rates").await?,
        m.source("customer_value").await?,
        m.source("model_metrics").await?,
    ];
    let mut h = head(
        4,
        "leaving",
        "Who may be leaving, and what relationships are worth",
        sources,
    );
    let mut out = Leaving {
        head: h.clone(),
        figures: Vec::new(),
        churn_chart: None,
        at_risk: Vec::new(),
        cltv_chart: None,
        model_quality: String::new(),
    };
    let fewer = m.fewer();
    let mut churn_present = false;
    match m
        .load(
            "churn_rates",
            "period, cutoff, customers, churned, churn_rate",
            "AND dimension = 'month' AND population = 'active' AND group_value = 'all' ORDER BY cutoff",
        )
        .await?
    {
        None => h.job_missing("value", "churn_rates"),
        Some(rows) => {
            churn_present = true;
            let f = |v: f64| pct(v, 0);
            let points: Vec<TrendPoint> = charts::monthly_points(
                &rows,
                &|r| r.str("period"),
                &|r| {
                    let label = month_label(r.str("period"));
                    TrendPoint {
                        title: match r.num("churn_rate") {
                            Some(v) => format!(
                                "{label}: {} of {} active customers stopped buying",
                                pct(v, 1),
                                count(r.num("customers").unwrap_or(0.0))
                            ),
                            None => format!("{label}: {fewer} customers, not shown"),
                        },
                        label: label.clone(),
                        value: r.num("churn_rate"),
                        low: None,
                        high: None,
                    }
                },
                12,
            );
            if !points.is_empty() {
                let mut c = charts::trend(
                    "chart-churn",
                    "Churn by month",
                    "Share of active customers at each month end who did not buy again in the following period.",
                    &points,
                    "month of the cut-off",
                    "customers who stopped buying (%)",
                    // From zero, so a rise from 12% to 14% does not look like a doubling.
                    Some(charts::nice_range(
                        0.0,
                        points.iter().filter_map(|p| p.value).fold(0.01, f64::max),
                    )),
                    &f,
                );
                c.legend.truncate(1);
                out.churn_chart = Some(c);
            }
            if let Some(last) = rows.iter().rev().find(|r| r.num("churn_rate").is_some()) {
                out.figures.push(Figure {
                    label: format!("Churn, {}", month_label(last.str("period"))),
                    value: pct(last.num("churn_rate").unwrap_or(0.0), 1),
                    note: format!(
                        "of {} customers active then, {} did not buy again",
                        count(last.num("customers").unwrap_or(0.0)),
                        count(last.num("churned").unwrap_or(0.0))
                    ),
                });
            }
        }
    }
    let mut risk_share = None;
    match m
        .load(
            "customer_value",
            "COALESCE(segment, 'All customers') AS segment, COUNT(*) AS customers, \
             SUM(CASE WHEN at_risk THEN 1 ELSE 0 END) AS at_risk, \
             COUNT(churn_probability) AS scored",
            "GROUP BY COALESCE(segment, 'All customers') ORDER BY segment",
        )
        .await?
    {
        None => h.job_missing("value", "customer_value"),
        Some(rows) => {
            let (mut all, mut risky, mut scored) = (0.0, 0.0, 0.0);
            for r in &rows {
                let n = r.num("customers").unwrap_or(0.0);
                let k = r.num("at_risk").unwrap_or(0.0);
                all += n;
                risky += k;
                scored += r.num("scored").unwrap_or(0.0);
                let small = |x: f64| x > 0.0 && x < m.min_group_size as f64;
                // A segment's at-risk count is shown only when it, and the rest
                // of the segment, are large enough not to single anyone out.
                let hide = small(n) || small(k) || small(n - k);
                out.at_risk.push(AtRisk {
                    segment: r.str("segment").to_string(),
                    customers: count_or_fewer((!small(n)).then_some(n), m.min_group_size),
                    at_risk: if small(n) {
                        count_or_fewer(None, m.min_group_size)
                    } else {
                        at_risk_text(k, n, m.min_group_size)
                    },
                    share: if hide || n == 0.0 {
                        "–".into()
                    } else {
                        pct(k / n, 0)
                    },
                });
            }
            if scored > 0.0 {
                risk_share = Some(risky / all.max(1.0));
                // as the segments' rows: neither the at-risk nor the rest small,
                // and no share that would give the hidden count away
                let small = |x: f64| x > 0.0 && x < m.min_group_size as f64;
                let hide = small(risky) || small(all - risky);
                out.figures.push(Figure {
                    label: "Customers at risk of leaving".into(),
                    value: at_risk_text(risky, all, m.min_group_size),
                    note: if hide {
                        format!("of {} customers who have bought", count(all))
                    } else {
                        format!(
                            "{} of {} customers who have bought",
                            pct(risky / all.max(1.0), 0),
                            count(all)
                        )
                    },
                });
            } else {
                // no churn model: no at-risk counts, not a table of zeros
                out.at_risk.clear();
            }
            let values = table::floats(
                &m.session,
                &format!(
                    "SELECT cltv_12m FROM customer_value WHERE dt = DATE '{}' AND cltv_12m IS NOT NULL ORDER BY cltv_12m",
                    m.date
                ),
            )
            .await?;
            if let Some(c) = cltv_histogram(&values, m.min_group_size, &fewer) {
                let mid = values.len() / 2;
                let median = if values.len() % 2 == 0 {
                    (values[mid - 1] + values[mid]) / 2.0
                } else {
                    values[mid]
                };
                out.figures.push(Figure {
                    label: "Typical 12-month customer value".into(),
                    value: count(median),
                    note: format!(
                        "median over {} customers (margin, discounted; currency units)",
                        count(values.len() as f64)
                    ),
                });
                out.cltv_chart = Some(c);
            }
        }
    }
    match m
        .load(
            "model_metrics",
            "metric, value, detail",
            "AND job = 'value' AND model = 'churn_logistic' AND key IS NULL ORDER BY metric",
        )
        .await?
    {
        Some(rows) if !rows.is_empty() => {
            let get = |k: &str| {
                rows.iter()
                    .find(|r| r.str("metric") == k)
                    .and_then(|r| r.num("value"))
            };
            out.model_quality = match get("roc_auc") {
                Some(auc) => format!(
                    "The churn model {} (on customers it had not seen, it ranks a customer who left above one who stayed {} of the time; 50% would be guessing{}).",
                    if auc >= 0.8 {
                        "is good at telling who will leave"
                    } else if auc >= 0.7 {
                        "is fair at telling who will leave: use it as a hint"
                    } else {
                        "is weak: treat its at-risk list with caution"
                    },
                    pct(auc, 0),
                    get("brier_score")
                        .map(|b| format!("; Brier score {}, lower is better", num(b, 3)))
                        .unwrap_or_default()
                ),
                None => "The churn model could not be checked on held-out customers for this date."
                    .into(),
            };
        }
        _ => {}
    }
    h.sentence = match risk_share {
        Some(s) => format!(
            "About {} of your customers look likely to stop buying soon{}.",
            pct(s, 0),
            out.figures
                .iter()
                .find(|f| f.label.starts_with("Churn,"))
                .map(|f| format!(
                    "; of the customers active at the end of {}, {} did not come back",
                    f.label.trim_start_matches("Churn, "),
                    f.value
                ))
                .unwrap_or_default()
        ),
        None if churn_present => {
            "Churn is shown below; no at-risk scores exist for this date.".into()
        }
        None => "Churn and customer value are not available for this date.".into(),
    };
    h.light = match risk_share {
        Some(s) if s >= 0.3 => Light::red(),
        Some(s) if s >= 0.15 => Light::amber(),
        Some(_) => Light::green(),
        None => Light::grey(),
    };
    out.head = h;
    Ok(out)
}

/// Histogram of CLTV from 0 to a round value near the 95th percentile (the
/// last bin holds everything above); bins with fewer than `min_group_size`
/// customers (but some) are suppressed.
fn cltv_histogram(sorted: &[f64], min_group_size: usize, fewer: &str) -> Option<charts::Chart> {
    if sorted.len() < min_group_size {
        return None;
    }
    let p95 = sorted[(sorted.len() as f64 * 0.95) as usize - usize::from(sorted.len() >= 20)];
    let ticks = charts::nice_ticks(0.0, p95.max(1.0));
    let step = if ticks.len() >= 2 {
        ticks[1] - ticks[0]
    } else {
        p95.max(1.0)
    };
    // Half a tick step: at most about a dozen bars, on round edges.
    let width = step / 2.0;
    let bins_n = ((p95 / width).ceil() as usize + 1).clamp(2, CLTV_BINS + 1);
    let mut counts = vec![0usize; bins_n];
    for v in sorted {
        let i = ((v.max(0.0) / width) as usize).min(bins_n - 1);
        counts[i] += 1;
    }
    let hidden = hidden_bins(&counts, min_group_size);
    let bins: Vec<Bin> = counts
        .iter()
        .zip(&hidden)
        .enumerate()
        .map(|(i, (k, hide))| Bin {
            low: i as f64 * width,
            high: (i + 1) as f64 * width,
            count: (!hide).then_some(*k as f64),
        })
        .collect();
    Some(charts::histogram(
        "chart-cltv",
        "12-month customer value",
        &format!(
            "How many customers are expected to be worth each amount over the next 12 months; the last bar includes everyone worth {} or more.",
            count(bins_n as f64 * width - width)
        ),
        &bins,
        "expected value over the next 12 months (margin, currency units)",
        "customers (count)",
        &|v| count(v),
        &format!("{fewer} customers: not shown"),
    ))
}

/// Which bins to hide: those with some but fewer than `min_group_size`
/// customers, and then (the figure beside the chart gives the total) the
/// smallest shown bins until the hidden ones hold at least
/// `min_group_size` together.
fn hidden_bins(counts: &[usize], min_group_size: usize) -> Vec<bool> {
    let sizes: Vec<u64> = counts.iter().map(|&k| k as u64).collect();
    let small: Vec<bool> = counts
        .iter()
        .map(|&k| k > 0 && k < min_group_size)
        .collect();
    let more = crate::secondary_suppression::complements(&small, &sizes, min_group_size as u64);
    small.iter().zip(more).map(|(a, b)| *a || b).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_bins_cannot_be_worked_back_from_the_total() {
        // one small bin alone: the next smallest shown bin is hidden with it
        assert_eq!(
            hidden_bins(&[40, 3, 0, 25, 60], 10),
            vec![false, true, false, true, false]
        );
        // two small bins holding 11 together: enough on their own
        assert_eq!(
            hidden_bins(&[40, 6, 5, 25], 10),
            vec![false, true, true, false]
        );
        // two holding 4 together, and the next smallest (5) is small too
        assert_eq!(
            hidden_bins(&[2, 2, 5, 30, 30], 10),
            vec![true, true, true, true, false]
        );
        assert_eq!(hidden_bins(&[12, 0, 30], 10), vec![false; 3]);
    }

    #[test]
    fn an_at_risk_count_is_hidden_when_it_or_the_rest_is_small() {
        assert_eq!(at_risk_text(3.0, 40.0, 10), "fewer than 10");
        assert_eq!(at_risk_text(495.0, 500.0, 10), "all but fewer than 10");
        assert_eq!(at_risk_text(30.0, 40.0, 10), "30");
        assert_eq!(
            at_risk_text(0.0, 40.0, 10),
            "0",
            "nobody at risk singles out nobody"
        );
    }
}
