//! Section 6, do we keep only what we need?: the privacy checks, each with
//! its status in words and what to do. From marts/privacy_checks.

use serde::Serialize;

use super::data::{Head, Light, Marts, head};
use crate::Result;

/// Findings listed per check before "and N more".
const FINDINGS_PER_CHECK: usize = 6;

/// Section 6.
#[derive(Debug, Clone, Serialize)]
pub struct Privacy {
    pub head: Head,
    pub checks: Vec<Check>,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub number: u32,
    pub title: String,
    /// pass, warn or fail.
    pub status: String,
    pub light: Light,
    /// What was found (warnings and failures; the summary for a pass), each with what to do.
    pub findings: Vec<CheckFinding>,
    pub more: String,
}

/// One finding of a check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckFinding {
    pub detail: String,
    /// What to do; empty for a pass, or when it repeats the finding before.
    pub action: String,
}

/// Builds section 6.
pub async fn build(m: &Marts<'_>) -> Result<Privacy> {
    let mut h = head(
        6,
        "privacy",
        "Do we keep only what we need?",
        vec![m.source("privacy_checks").await?],
    );
    let mut out = Privacy {
        head: h.clone(),
        checks: Vec::new(),
    };
    let Some(rows) = m
        .load(
            "privacy_checks",
            "check_id, title, status, table_name, column_name, detail, advice",
            "ORDER BY check_id, area, table_name, column_name, detail",
        )
        .await?
    else {
        h.job_missing("privacy", "privacy_checks");
        h.sentence = "The privacy checks are not available for this date.".into();
        out.head = h;
        return Ok(out);
    };
    let rank = |s: &str| match s {
        "fail" => 2,
        "warn" => 1,
        _ => 0,
    };
    let mut ids: Vec<u32> = rows
        .iter()
        .filter_map(|r| r.num("check_id"))
        .map(|v| v as u32)
        .collect();
    ids.dedup();
    for id in ids {
        let of: Vec<_> = rows
            .iter()
            .filter(|r| r.num("check_id").map(|v| v as u32) == Some(id))
            .collect();
        let worst = of.iter().map(|r| rank(r.str("status"))).max().unwrap_or(0);
        let status = ["pass", "warn", "fail"][worst];
        let shown: Vec<_> = of
            .iter()
            .filter(|r| rank(r.str("status")) == worst)
            .collect();
        let mut findings: Vec<CheckFinding> = Vec::new();
        // A pass needs one line of evidence; warnings and failures list what to fix.
        let listed = if worst == 0 { 1 } else { FINDINGS_PER_CHECK };
        for r in shown.iter().take(listed) {
            let detail = match (r.text("table_name"), r.text("column_name")) {
                (Some(t), Some(c)) => format!("{t}.{c}: {}", r.str("detail")),
                (Some(t), None) => format!("{t}: {}", r.str("detail")),
                _ => r.str("detail").to_string(),
            };
            let advice = r.str("advice");
            let repeated = findings.last().is_some_and(|f| f.action == advice);
            let action = if worst == 0 || repeated { "" } else { advice };
            findings.push(CheckFinding {
                detail,
                action: action.to_string(),
            });
        }
        out.checks.push(Check {
            number: id,
            title: of
                .first()
                .map(|r| r.str("title").to_string())
                .unwrap_or_default(),
            status: status.into(),
            light: match worst {
                2 => Light::red(),
                1 => Light::amber(),
                _ => Light::green(),
            },
            more: if shown.len() > listed {
                format!(
                    "… and {} more in marts/privacy_checks.",
                    shown.len() - listed
                )
            } else {
                String::new()
            },
            findings,
        });
    }
    let fails = out.checks.iter().filter(|c| c.status == "fail").count();
    let warns = out.checks.iter().filter(|c| c.status == "warn").count();
    h.sentence = match (fails, warns) {
        (0, 0) => format!(
            "All {} privacy checks pass: you keep only what the analyses need.",
            out.checks.len()
        ),
        (0, w) => format!(
            "Nothing is exposed, but {w} of {} checks found data you could keep less of.",
            out.checks.len()
        ),
        (f, _) => format!(
            "{f} privacy check{} found personal data where it must not be: act on the advice below today.",
            if f == 1 { "" } else { "s" }
        ),
    };
    h.light = if fails > 0 {
        Light::red()
    } else if warns > 0 {
        Light::amber()
    } else {
        Light::green()
    };
    out.head = h;
    Ok(out)
}
