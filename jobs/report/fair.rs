//! Section 5, are we fair?: the fairness audit's concerns and reviews with
//! their explanations, ratios with intervals against the acceptable band,
//! then the full table. From marts/fairness_audit.

use serde::Serialize;

use super::charts::{self, RowMark, Scale};
use super::data::{Head, Light, Marts, MaybeChart, head};
use super::format::{count, num, pct, words};
use super::table::Row;
use crate::Result;

/// Rows drawn in the ratio chart.
const CHART_ROWS: usize = 12;
/// Findings written out in full (the strongest evidence first); the rest are in the table.
const FINDINGS_SHOWN: usize = 12;
/// Flagged comparisons listed in the table; an audit of a real business can flag
/// hundreds, and the page must stay light enough for a phone.
const TABLE_ROWS: usize = 150;

/// Section 5.
#[derive(Debug, Clone, Serialize)]
pub struct Fair {
    pub head: Head,
    /// The strongest concerns, then reviews, each with the audit's explanation.
    pub findings: Vec<Finding>,
    /// "and 611 more in the table below", when not every finding is written out.
    pub findings_more: String,
    /// Comparisons per decision and verdict.
    pub by_decision: Vec<DecisionCount>,
    pub chart: MaybeChart,
    /// The comparisons flagged concern or review (at most 150), strongest first.
    pub table: Vec<AuditRow>,
    /// What the table leaves out, and where it is.
    pub table_note: String,
    /// Group comparisons withheld because a group is too small.
    pub suppressed_rows: String,
}

/// How one kind of decision fared.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionCount {
    pub decision: String,
    pub concerns: String,
    pub reviews: String,
    pub ok: String,
}

/// A concern or review.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub verdict: String,
    pub decision: String,
    pub group: String,
    pub explanation: String,
}

/// One row of the full table.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub decision: String,
    pub dimension: String,
    pub group: String,
    pub reference: String,
    pub outcome: String,
    pub value: String,
    pub reference_value: String,
    pub ratio: String,
    pub p_adjusted: String,
    pub n: String,
    pub verdict: String,
}

fn is_rate(metric: &str) -> bool {
    metric == "rate"
        || metric == "precision"
        || metric.starts_with("share_")
        || metric.ends_with("_rate")
}

fn value_text(metric: &str, v: Option<f64>) -> String {
    match v {
        Some(v) if is_rate(metric) => pct(v, 1),
        Some(v) => num(v, 2),
        None => "–".into(),
    }
}

fn ratio_text(r: &Row) -> String {
    match r.num("ratio") {
        Some(x) => match (r.num("ratio_ci_low"), r.num("ratio_ci_high")) {
            (Some(l), Some(h)) => format!("{} ({}–{})", num(x, 2), num(l, 2), num(h, 2)),
            _ => num(x, 2),
        },
        None => "–".into(),
    }
}

/// Builds section 5.
pub async fn build(m: &Marts<'_>) -> Result<Fair> {
    let mut h = head(
        5,
        "fair",
        "Are we fair?",
        vec![m.source("fairness_audit").await?],
    );
    let mut out = Fair {
        head: h.clone(),
        findings: Vec::new(),
        findings_more: String::new(),
        by_decision: Vec::new(),
        chart: None,
        table: Vec::new(),
        table_note: String::new(),
        suppressed_rows: String::new(),
    };
    let Some(rows) = m
        .load(
            "fairness_audit",
            "decision, dimension, group_name, reference_group, outcome, metric, value, \
             reference_value, ratio, ratio_ci_low, ratio_ci_high, p_adjusted, n, suppressed, \
             verdict, explanation",
            "AND group_name IS NOT NULL ORDER BY decision, dimension, outcome, metric, group_name",
        )
        .await?
    else {
        h.job_missing("fairness", "fairness_audit");
        h.sentence = "The fairness audit is not available for this date.".into();
        out.head = h;
        return Ok(out);
    };
    let verdict = |r: &Row| r.str("verdict").to_string();
    let mut flagged: Vec<&Row> = rows
        .iter()
        .filter(|r| matches!(r.str("verdict"), "concern" | "review"))
        .collect();
    // Concerns first; within a verdict, differences between customer groups
    // (age, gender, language, region) before differences between behavioural
    // segments, which differ in how they buy by construction; then the evidence.
    flagged.sort_by(|a, b| {
        let rank = |r: &Row| {
            (
                u8::from(r.str("verdict") != "concern"),
                u8::from(r.str("dimension").contains("segment")),
            )
        };
        rank(a).cmp(&rank(b)).then(
            a.num("p_adjusted")
                .unwrap_or(1.0)
                .total_cmp(&b.num("p_adjusted").unwrap_or(1.0)),
        )
    });
    let concerns = flagged
        .iter()
        .filter(|r| r.str("verdict") == "concern")
        .count();
    let reviews = flagged.len() - concerns;
    for r in flagged.iter().take(FINDINGS_SHOWN) {
        out.findings.push(Finding {
            verdict: verdict(r),
            decision: words(r.str("decision")),
            group: r.str("group_name").to_string(),
            explanation: r.str("explanation").to_string(),
        });
    }
    // The chart: flagged ratios, else the comparisons furthest from equal.
    let mut drawn: Vec<&Row> = flagged
        .iter()
        .copied()
        .filter(|r| r.num("ratio").is_some())
        .collect();
    if drawn.is_empty() {
        drawn = rows
            .iter()
            .filter(|r| r.num("ratio").is_some() && !r.str("verdict").is_empty())
            .collect();
        drawn.sort_by(|a, b| {
            let d = |r: &Row| r.num("ratio").map_or(0.0, |x| x.max(1e-6).ln().abs());
            d(b).total_cmp(&d(a))
        });
    }
    drawn.truncate(CHART_ROWS);
    let marks: Vec<RowMark> = drawn
        .iter()
        .map(|r| {
            let v = verdict(r);
            RowMark {
                label: format!("{}: {}", r.str("group_name"), words(r.str("outcome"))),
                value: r.num("ratio"),
                low: r.num("ratio_ci_low"),
                high: r.num("ratio_ci_high"),
                colour: match v.as_str() {
                    "concern" => charts::VERMILLION,
                    "review" => charts::ORANGE,
                    _ => charts::BLUE,
                }
                .into(),
                title: format!(
                    "{} compared with {}: ratio {} ({})",
                    r.str("group_name"),
                    r.str("reference_group"),
                    ratio_text(r),
                    if v.is_empty() {
                        "no verdict".into()
                    } else {
                        v.clone()
                    }
                ),
                value_label: format!(
                    "{}×{}",
                    num(r.num("ratio").unwrap_or(0.0), 2),
                    if v.is_empty() || v == "ok" {
                        String::new()
                    } else {
                        format!(" {v}")
                    }
                ),
            }
        })
        .collect();
    if !marks.is_empty() {
        let mut c = charts::intervals(
            "chart-fairness",
            "Fairness ratios with 95% intervals",
            "Each row compares one group with its reference group: 1 means treated the same; the shaded band from 0.8 to 1.25 is the acceptable range.",
            &marks,
            "ratio to the reference group (log scale; 1 = the same)",
            Scale::Log,
            Some((0.8, 1.25)),
            &|v| num(v, 2),
        );
        c.legend.extend([
            charts::LegendItem {
                colour: charts::VERMILLION.into(),
                label: "concern".into(),
                kind: "dot".into(),
            },
            charts::LegendItem {
                colour: charts::ORANGE.into(),
                label: "review".into(),
                kind: "dot".into(),
            },
            charts::LegendItem {
                colour: charts::BLUE.into(),
                label: "ok".into(),
                kind: "dot".into(),
            },
        ]);
        out.chart = Some(c);
    }
    if flagged.len() > FINDINGS_SHOWN {
        out.findings_more = format!(
            "… and {} more in the table below.",
            count((flagged.len() - FINDINGS_SHOWN) as f64)
        );
    }
    let mut decisions: Vec<&str> = rows.iter().map(|r| r.str("decision")).collect();
    decisions.sort_unstable();
    decisions.dedup();
    for d in decisions {
        let of = |v: &str| {
            count(
                rows.iter()
                    .filter(|r| r.str("decision") == d && r.str("verdict") == v)
                    .count() as f64,
            )
        };
        out.by_decision.push(DecisionCount {
            decision: words(d),
            concerns: of("concern"),
            reviews: of("review"),
            ok: of("ok"),
        });
    }
    let suppressed = rows
        .iter()
        .filter(|r| r.flag("suppressed") == Some(true))
        .count();
    for r in flagged.iter().take(TABLE_ROWS) {
        let metric = r.str("metric");
        out.table.push(AuditRow {
            decision: words(r.str("decision")),
            dimension: words(r.str("dimension")),
            group: r.str("group_name").to_string(),
            reference: r.text("reference_group").unwrap_or("–").to_string(),
            outcome: format!("{} ({})", words(r.str("outcome")), words(metric)),
            value: value_text(metric, r.num("value")),
            reference_value: value_text(metric, r.num("reference_value")),
            ratio: ratio_text(r),
            p_adjusted: r.num("p_adjusted").map_or("–".into(), |p| {
                if p < 0.001 {
                    "< 0.001".into()
                } else {
                    num(p, 3)
                }
            }),
            n: r.num("n").map_or("–".into(), count),
            verdict: verdict(r),
        });
    }
    let ok = rows.iter().filter(|r| r.str("verdict") == "ok").count();
    let reference = rows
        .iter()
        .filter(|r| r.text("verdict").is_none() && r.flag("suppressed") != Some(true))
        .count();
    out.table_note = format!(
        "{}Comparisons judged ok: {}; reference-group rows: {}. All are in marts/fairness_audit, with every interval and test.",
        if flagged.len() > TABLE_ROWS {
            format!(
                "Showing the {TABLE_ROWS} strongest of {} flagged comparisons. ",
                count(flagged.len() as f64)
            )
        } else {
            String::new()
        },
        count(ok as f64),
        count(reference as f64)
    );
    if suppressed > 0 {
        out.suppressed_rows = format!(
            "{} comparison{} not shown because a group has {} customers (or could be worked out from the totals).",
            count(suppressed as f64),
            if suppressed == 1 { " is" } else { "s are" },
            m.fewer()
        );
    }
    let compared = count((ok + concerns + reviews) as f64);
    h.sentence = match (concerns, reviews) {
        (0, 0) => format!(
            "The audit made {compared} comparisons between customer groups and found no one treated clearly differently."
        ),
        (0, r) => format!(
            "No clear unfairness in {compared} comparisons, but {r} difference{} between groups deserve{} a look.",
            if r == 1 { "" } else { "s" },
            if r == 1 { "s" } else { "" }
        ),
        (c, r) => format!(
            "Of {compared} comparisons between customer groups, {c} show a group treated clearly differently{}: the strongest are explained below.",
            if r > 0 {
                format!(" and {r} more are worth a look")
            } else {
                String::new()
            }
        ),
    };
    h.light = if concerns > 0 {
        Light::red()
    } else if reviews > 0 {
        Light::amber()
    } else {
        Light::green()
    };
    out.head = h;
    Ok(out)
}
