//! The owner's report: `reports/<date>/index.html` and `report.json`.
//!
//! ```text
//! marts/* of the date ─ data (one module per section) ─ report.json ─ render (tera) ─ index.html
//! ```
//!
//! Every number comes from the marts of the run date through `report.json`;
//! the templates in `reports/` (compiled into the binary) place text and
//! computed SVG coordinates and compute nothing. A section whose mart is
//! missing says so in plain words instead of failing, so the report renders
//! with any subset of jobs having run. Only counts and aggregates are read:
//! no customer id and no message text ever reaches the report, and cells
//! below `min_group_size` show "fewer than N".
//!
//! # Layout
//! - [`data`]: the report.json structs shared by every section, and mart loading
//! - [`feel`], [`customers`], [`leaving`], [`fair`], [`privacy`], [`initiatives`], [`made`]: sections 2–8
//! - [`charts`]: SVG geometry computed in Rust
//! - [`format`]: how numbers read
//! - [`render`]: tera, autoescaping everything
//! - [`table`]: query results as plain rows

pub mod charts;
pub mod customers;
pub mod data;
pub mod fair;
pub mod feel;
pub mod format;
pub mod initiatives;
pub mod leaving;
pub mod made;
pub mod privacy;
pub mod render;
pub mod table;

use bytes::Bytes;
use chrono::NaiveDate;
use object_store::path::Path;
use serde::Serialize;
use tracing::{info, instrument};

use self::data::{Brief, Bullet, Head, Level, Light, Marts, Report};
use crate::context::JobContext;
use crate::{Error, Result, catalog};

/// The lake columns this job reads (input counts for section 8).
pub const LAKE_COLUMNS_READ: &[(&str, &str)] = &[
    ("ingest_audit", "table_name"),
    ("ingest_audit", "column_name"),
    ("ingest_audit", "outcome"),
    ("ingest_audit", "rows"),
];

/// What the report job did.
#[derive(Debug, Clone, Serialize)]
pub struct ReportOutcome {
    /// Mart tables of the date the report read.
    pub rows_in: u64,
    /// Files written (report.json and index.html).
    pub rows_out: u64,
    /// One per missing mart, in the report's own words.
    pub warnings: Vec<String>,
    /// Location of index.html.
    pub html_path: String,
    /// Location of report.json.
    pub json_path: String,
    pub html_bytes: u64,
    pub json_bytes: u64,
}

/// `reports/<date>/<file>`.
pub fn report_path(date: NaiveDate, file: &str) -> Path {
    Path::from(format!("reports/{date}/{file}"))
}

/// Builds report.json and index.html for `date` and writes them (each
/// object atomically, the JSON first so the page never points past it).
#[instrument(skip_all, fields(job = "report", run_id = %ctx.run_id))]
pub async fn run(ctx: &JobContext, date: NaiveDate) -> Result<ReportOutcome> {
    let report = build(ctx, date).await?;
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| Error::Internal(format!("report.json: {e}")))?;
    let html = render::render(&report)?;
    let (json_path, html_path) = (
        report_path(date, "report.json"),
        report_path(date, "index.html"),
    );
    let (json_bytes, html_bytes) = (json.len() as u64, html.len() as u64);
    ctx.storage.put(&json_path, Bytes::from(json)).await?;
    ctx.storage.put(&html_path, Bytes::from(html)).await?;
    let sections = [
        &report.feel.head,
        &report.customers.head,
        &report.leaving.head,
        &report.fair.head,
        &report.privacy.head,
        &report.initiatives.head,
        &report.made.head,
    ];
    let warnings: Vec<String> = sections.iter().flat_map(|h| h.missing.clone()).collect();
    let rows_in = sections
        .iter()
        .flat_map(|h| &h.sources)
        .filter(|s| s.present)
        .map(|s| &s.table)
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u64;
    info!(
        marts = rows_in,
        missing = warnings.len(),
        html_bytes,
        "report written"
    );
    Ok(ReportOutcome {
        rows_in,
        rows_out: 2,
        warnings,
        html_path: ctx.storage.display(&html_path),
        json_path: ctx.storage.display(&json_path),
        html_bytes,
        json_bytes,
    })
}

/// Builds the report of `date` from the marts (nothing is written).
pub async fn build(ctx: &JobContext, date: NaiveDate) -> Result<Report> {
    let (session, _) = catalog::session_with_all(&ctx.storage).await?;
    let m = Marts {
        session,
        storage: &ctx.storage,
        date,
        min_group_size: ctx.cfg.min_group_size,
    };
    let feel = feel::build(&m).await?;
    // Sections 3 and 4 show the same segments' sizes against two totals
    // (all customers; those who have bought): a size hidden in one must be
    // hidden in the other, or the two together give it back. Section 4
    // starts from what section 3 hides on its own; section 3 then hides
    // whatever section 4 added.
    let alone = customers::build(&m, &[]).await?;
    let leaving = leaving::build(&m, &alone.hidden).await?;
    let customers = customers::build(&m, &leaving.hidden).await?;
    let fair = fair::build(&m).await?;
    let privacy = privacy::build(&m).await?;
    let initiatives = initiatives::build(&m).await?;
    let mut made = made::build(&m, &ctx.run_id).await?;
    made.trace = [
        &feel.head,
        &customers.head,
        &leaving.head,
        &fair.head,
        &privacy.head,
        &initiatives.head,
        &made.head,
    ]
    .iter()
    .map(|h| made::Trace {
        number: h.number,
        title: h.title.clone(),
        anchor: h.id.clone(),
        sources: h.sources.clone(),
    })
    .collect();
    let brief = brief(
        date,
        &[
            &feel.head,
            &leaving.head,
            &fair.head,
            &privacy.head,
            &initiatives.head,
        ],
    );
    Ok(Report {
        version: data::REPORT_VERSION,
        title: "How your customers are doing".into(),
        date: date.to_string(),
        run_id: ctx.run_id.clone(),
        min_group_size: ctx.cfg.min_group_size,
        suppressed_label: format::fewer_than(ctx.cfg.min_group_size),
        brief,
        feel,
        customers,
        leaving,
        fair,
        privacy,
        initiatives,
        made,
    })
}

/// Section 1: one bullet per question the owner asks (how customers feel,
/// who is drifting away, fairness, privacy, initiatives), each with its light.
fn brief(date: NaiveDate, heads: &[&Head]) -> Brief {
    let bullets: Vec<Bullet> = heads
        .iter()
        .map(|h| Bullet {
            light: h.light.clone(),
            question: h.title.clone(),
            text: if h.missing.is_empty() || h.light.level != Level::Grey {
                h.sentence.clone()
            } else {
                h.missing.join(" ")
            },
            anchor: h.id.clone(),
        })
        .collect();
    let red = bullets
        .iter()
        .filter(|b| b.light.level == Level::Red)
        .count();
    let amber = bullets
        .iter()
        .filter(|b| b.light.level == Level::Amber)
        .count();
    let grey = bullets
        .iter()
        .filter(|b| b.light.level == Level::Grey)
        .count();
    let light = if red > 0 {
        Light::red()
    } else if amber > 0 {
        Light::amber()
    } else if grey == bullets.len() {
        Light::grey()
    } else {
        Light::green()
    };
    let mut sentence = match (red, amber) {
        (0, 0) => format!("Good morning: as of {date}, nothing needs your attention."),
        (0, a) => format!(
            "Good morning: as of {date}, nothing is urgent, but {a} thing{} deserve{} a look.",
            if a == 1 { "" } else { "s" },
            if a == 1 { "s" } else { "" }
        ),
        (r, a) => format!(
            "Good morning: as of {date}, {r} thing{} need{} your attention{}.",
            if r == 1 { "" } else { "s" },
            if r == 1 { "s" } else { "" },
            if a > 0 {
                format!(" and {a} more to keep an eye on")
            } else {
                String::new()
            }
        ),
    };
    if grey > 0 {
        sentence.push_str(&format!(
            " {grey} of the five questions cannot be answered for this date (see below)."
        ));
    }
    Brief {
        head: Head {
            number: 1,
            id: "brief".into(),
            title: "This morning in brief".into(),
            sentence,
            light,
            missing: Vec::new(),
            sources: Vec::new(),
        },
        bullets,
    }
}
