//! Section 4, who may be leaving and what relationships are worth: churn
//! trend, customers at risk per segment (counts only), the distribution of
//! 12-month customer lifetime value and the churn model's quality in words.
//! From marts/churn_rates, customer_value and model_metrics (job value).

use serde::Serialize;

use super::charts::{self, Bin, TrendPoint};
use super::data::{Figure, Head, Light, Marts, MaybeChart, head};
use super::format::{NOT_SHOWN, count, count_or_fewer, month_label, num, pct};
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
    /// Why some at-risk cells say "not shown"; empty when none do.
    pub withheld_note: String,
    /// Segments whose size is not shown, for section 3, which shows the
    /// same segments against another total.
    #[serde(skip)]
    pub hidden: Vec<String>,
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

/// Some but fewer than `min_group_size` people.
fn small(x: f64, min_group_size: usize) -> bool {
    x > 0.0 && x < min_group_size as f64
}

/// Whether `part` of `whole` customers (at risk, or churned) must be
/// withheld: it, or the rest, is small, and either would single out the
/// few. Its share of `whole` goes with it, since it gives the count back.
fn part_hidden(part: f64, whole: f64, min_group_size: usize) -> bool {
    small(part, min_group_size) || small(whole - part, min_group_size)
}

/// `part` of `whole` customers as the page says it: the count, or "fewer
/// than N" / "all but fewer than N" when [`part_hidden`].
fn part_text(part: f64, whole: f64, min_group_size: usize) -> String {
    if small(part, min_group_size) {
        count_or_fewer(None, min_group_size)
    } else if small(whole - part, min_group_size) {
        format!("all but {}", count_or_fewer(None, min_group_size))
    } else {
        count(part)
    }
}

/// "Fewer than 10" at the start of a sentence.
fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
}

/// Builds section 4. `hidden_segments`: segments whose size section 3
/// withholds, which this section's sizes would otherwise give back.
pub async fn build(m: &Marts<'_>, hidden_segments: &[String]) -> Result<Leaving> {
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
        withheld_note: String::new(),
        hidden: Vec::new(),
    };
    let min = m.min_group_size;
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
            // A rate of a known number of customers gives the count back, on
            // the page or as a dot's height: a month with few who stopped, or
            // few who stayed, has neither.
            let churned = |r: &table::Row| {
                let n = r.num("customers").unwrap_or(0.0);
                let k = r
                    .num("churned")
                    .or_else(|| Some((r.num("churn_rate")? * n).round()));
                (n, k)
            };
            let points: Vec<TrendPoint> = charts::monthly_points(
                &rows,
                &|r| r.str("period"),
                &|r| {
                    let label = month_label(r.str("period"));
                    let (n, k) = churned(r);
                    let hidden = k.is_some_and(|k| part_hidden(k, n, min));
                    TrendPoint {
                        title: match (r.num("churn_rate"), k) {
                            (Some(_), Some(k)) if hidden => format!(
                                "{label}: {} of {} active customers stopped buying",
                                part_text(k, n, min),
                                count(n)
                            ),
                            (Some(v), _) => format!(
                                "{label}: {} of {} active customers stopped buying",
                                pct(v, 1),
                                count(n)
                            ),
                            (None, _) => format!("{label}: {fewer} customers, not shown"),
                        },
                        label: label.clone(),
                        value: r.num("churn_rate").filter(|_| !hidden),
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
                let (n, k) = churned(last);
                let k = k.unwrap_or(0.0);
                out.figures.push(Figure {
                    label: format!("Churn, {}", month_label(last.str("period"))),
                    value: if part_hidden(k, n, min) {
                        part_text(k, n, min)
                    } else {
                        pct(last.num("churn_rate").unwrap_or(0.0), 1)
                    },
                    note: if part_hidden(k, n, min) {
                        format!(
                            "did not buy again, of {} customers active then (no percentage: it would give the few back)",
                            count(n)
                        )
                    } else {
                        format!(
                            "of {} customers active then, {} did not buy again",
                            count(n),
                            count(k)
                        )
                    },
                });
            }
        }
    }
    let mut risk_share = None;
    let mut risk_hidden = false;
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
            let n: Vec<u64> = rows
                .iter()
                .map(|r| r.num("customers").unwrap_or(0.0) as u64)
                .collect();
            let k: Vec<u64> = rows
                .iter()
                .map(|r| r.num("at_risk").unwrap_or(0.0) as u64)
                .collect();
            let (all, risky) = (n.iter().sum::<u64>() as f64, k.iter().sum::<u64>() as f64);
            let scored: f64 = rows.iter().filter_map(|r| r.num("scored")).sum();
            let in_section_3: Vec<bool> = rows
                .iter()
                .map(|r| hidden_segments.iter().any(|s| s == r.str("segment")))
                .collect();
            let (hide_n, hide_k) = hidden_cells(&n, &k, &in_section_3, min);
            for (i, r) in rows.iter().enumerate() {
                let (n, k) = (n[i] as f64, k[i] as f64);
                let size = if !hide_n[i] {
                    count(n)
                } else if small(n, min) {
                    count_or_fewer(None, min)
                } else {
                    NOT_SHOWN.into()
                };
                if hide_n[i] {
                    out.hidden.push(r.str("segment").to_string());
                }
                out.at_risk.push(AtRisk {
                    segment: r.str("segment").to_string(),
                    at_risk: if hide_n[i] {
                        size.clone()
                    } else if part_hidden(k, n, min) {
                        part_text(k, n, min)
                    } else if hide_k[i] {
                        NOT_SHOWN.into()
                    } else {
                        count(k)
                    },
                    customers: size,
                    share: if hide_k[i] || n == 0.0 {
                        "–".into()
                    } else {
                        pct(k / n, 0)
                    },
                });
            }
            if out
                .at_risk
                .iter()
                .any(|a| a.customers == NOT_SHOWN || a.at_risk == NOT_SHOWN)
            {
                out.withheld_note = format!(
                    "“{NOT_SHOWN}”: withheld although not small, because with the totals above it would give away a segment, or a number at risk, of {}.",
                    m.fewer()
                );
            }
            if scored > 0.0 {
                risk_share = Some(risky / all.max(1.0));
                // as the segments' rows: neither the at-risk nor the rest small,
                // and no share that would give the hidden count away
                risk_hidden = part_hidden(risky, all, min);
                out.figures.push(Figure {
                    label: "Customers at risk of leaving".into(),
                    value: part_text(risky, all, min),
                    note: if risk_hidden {
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
                // No churn model: no at-risk counts, not a table of zeros.
                // `hidden` stays for section 3: the CLTV figure below still
                // counts these customers.
                out.at_risk.clear();
                out.withheld_note.clear();
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
            "{} of your customers look likely to stop buying soon{}.",
            match out
                .figures
                .iter()
                .find(|f| f.label.starts_with("Customers at risk"))
            {
                // the figure's own words: a share would give the few back
                Some(f) if risk_hidden => capitalized(&f.value),
                _ => format!("About {}", pct(s, 0)),
            },
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

/// Which segment sizes (`n`) and at-risk counts (`k`) to hide.
///
/// Sizes add up to the customers who have bought, at-risk counts to the
/// customers at risk, and what remains of each segment to those not at
/// risk; the figure shows all three totals. So a size hidden for being
/// small (or because section 3 hides it: `hidden`) takes the smallest
/// shown sizes with it until the hidden ones hold `min_group_size`
/// together, and at-risk counts hidden for being small, or for leaving
/// few not at risk, do the same in their two families. A hidden size
/// hides the at-risk count too. Hidden cells that hold nobody together
/// are left so: the table shows a 0 as it is.
fn hidden_cells(n: &[u64], k: &[u64], hidden: &[bool], min: usize) -> (Vec<bool>, Vec<bool>) {
    let min = min as u64;
    let small = |x: u64| x > 0 && x < min;
    let mut hide_n: Vec<bool> = (0..n.len()).map(|i| hidden[i] || small(n[i])).collect();
    let more = crate::secondary_suppression::complements(&hide_n, n, min);
    for (h, m) in hide_n.iter_mut().zip(more) {
        *h |= m;
    }
    let rest: Vec<u64> = n.iter().zip(k).map(|(n, k)| n.saturating_sub(*k)).collect();
    let mut hide_k: Vec<bool> = (0..n.len())
        .map(|i| hide_n[i] || small(k[i]) || small(rest[i]))
        .collect();
    loop {
        let before = hide_k.clone();
        for sizes in [k, &rest[..]] {
            let held: u64 = sizes
                .iter()
                .zip(&hide_k)
                .filter(|(_, h)| **h)
                .map(|(s, _)| s)
                .sum();
            if held == 0 {
                continue;
            }
            let more = crate::secondary_suppression::complements(&hide_k, sizes, min);
            for (h, m) in hide_k.iter_mut().zip(more) {
                *h |= m;
            }
        }
        if hide_k == before {
            return (hide_n, hide_k);
        }
    }
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
        assert_eq!(part_text(3.0, 40.0, 10), "fewer than 10");
        assert_eq!(part_text(495.0, 500.0, 10), "all but fewer than 10");
        assert_eq!(part_text(30.0, 40.0, 10), "30");
        assert_eq!(
            part_text(0.0, 40.0, 10),
            "0",
            "nobody at risk singles out nobody"
        );
        assert!(part_hidden(3.0, 104.0, 10) && part_hidden(95.0, 100.0, 10));
        assert!(!part_hidden(15.0, 104.0, 10) && !part_hidden(100.0, 100.0, 10));
    }

    /// Segments (n customers, k at risk): whatever is hidden holds nobody or
    /// at least 10 in each of the three families the totals give.
    #[test]
    fn segment_cells_cannot_be_worked_back_from_the_totals() {
        let no = [false; 4];
        // A small segment (5) takes the next smallest (75) with it; both
        // at-risk counts go too, and the 21 of 120 stays.
        assert_eq!(
            hidden_cells(&[5, 75, 120], &[5, 75, 21], &no[..3], 10),
            (vec![true, true, false], vec![true, true, false])
        );
        // Sizes all shown, one at-risk count small (3 of 50): the next
        // smallest at-risk count (12) goes with it; what is not at risk
        // then holds 47 + 28: enough.
        assert_eq!(
            hidden_cells(&[50, 40, 200], &[3, 12, 90], &no[..3], 10),
            (vec![false; 3], vec![true, true, false])
        );
        // Few not at risk (5 of 100): hidden alone, the count at risk
        // would come back from the total, so the next smallest (30) goes
        // with it, and those not at risk then hold 5 + 30.
        assert_eq!(
            hidden_cells(&[100, 60, 300], &[95, 30, 100], &no[..3], 10),
            (vec![false; 3], vec![true, true, false])
        );
        // Hidden in section 3: hidden here, with a partner.
        assert_eq!(
            hidden_cells(
                &[40, 50, 60, 70],
                &[10, 10, 10, 10],
                &[true, false, false, false],
                10
            ),
            (
                vec![true, true, false, false],
                vec![true, true, false, false]
            )
        );
        assert_eq!(
            hidden_cells(&[40, 50], &[10, 20], &no[..2], 10),
            (vec![false; 2], vec![false; 2]),
            "nothing small, nothing hidden"
        );
    }
}
