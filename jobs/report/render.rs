//! report.json → index.html with tera. The templates are compiled into the
//! binary (`reports/`), so the page needs nothing at run time, and every
//! value is HTML-escaped: autoescape is on for every template name, and no
//! template marks a value `safe`.

use tera::{Context, Tera};

use super::data::Report;
use crate::{Error, Result};

/// The templates, by name.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "index.html.tera",
        include_str!("../../reports/index.html.tera"),
    ),
    (
        "partials/chart.tera",
        include_str!("../../reports/partials/chart.tera"),
    ),
    (
        "partials/head.tera",
        include_str!("../../reports/partials/head.tera"),
    ),
    (
        "partials/figures.tera",
        include_str!("../../reports/partials/figures.tera"),
    ),
    (
        "partials/sources.tera",
        include_str!("../../reports/partials/sources.tera"),
    ),
    ("style.css", include_str!("../../reports/style.css")),
];

/// The template engine with every template loaded and autoescape on for all of them.
pub fn engine() -> Result<Tera> {
    let mut tera = Tera::default();
    tera.add_raw_templates(TEMPLATES.to_vec())
        .map_err(|e| Error::Internal(format!("report templates: {}", chain(&e))))?;
    // Tera escapes only names ending in .html/.htm/.xml by default; ours end
    // in .tera, so name the suffix explicitly (the CSS holds no {{ }} values).
    tera.autoescape_on(vec![".tera"]);
    Ok(tera)
}

/// Renders the page.
pub fn render(report: &Report) -> Result<String> {
    let tera = engine()?;
    let ctx = Context::from_serialize(report)
        .map_err(|e| Error::Internal(format!("report context: {}", chain(&e))))?;
    tera.render("index.html.tera", &ctx)
        .map_err(|e| Error::Internal(format!("rendering the report: {}", chain(&e))))
}

/// Tera puts the useful part of an error in its sources.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
