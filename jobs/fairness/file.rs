//! `attune fairness audit`: the audit of any decision table in a CSV or
//! Parquet file.
//!
//! Each `--outcome` column is read by its type: boolean or 0/1 → a rate;
//! other numbers → mean and median (compared by ratio, Mann-Whitney U);
//! text → the share of each category. `--label` with `--prediction` (and
//! optionally `--score`) audits a binary classifier with Fairlearn's
//! metrics; a `--prediction` or `--score` alone is audited as an outcome.

use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
use serde::Serialize;

use super::audit::{AuditParams, AuditReport, audit};
use super::findings::{self, Finding};
use super::table::{Classifier, Columns, Comparison, DecisionTable, Direction, Outcome, Stat};
use super::verdict::Verdict;
use crate::{Error, Result};

/// What to audit.
#[derive(Debug, Clone)]
pub struct FileAudit {
    pub input: PathBuf,
    /// Group columns (sensitive attributes); intersections per `params`.
    pub groups: Vec<String>,
    pub label: Option<String>,
    pub prediction: Option<String>,
    pub score: Option<String>,
    pub outcomes: Vec<String>,
    /// A column identifying the person a row is about (group sizes count
    /// distinct values); default: every row is a person.
    pub subject: Option<String>,
    /// `.json` or `.parquet`.
    pub out: PathBuf,
    pub params: AuditParams,
}

/// What the file audit found.
#[derive(Debug, Clone, Serialize)]
pub struct FileAuditOutcome {
    pub rows_in: u64,
    pub rows_out: u64,
    pub warnings: Vec<String>,
    pub tests: usize,
    pub concerns: usize,
    pub reviews: usize,
    pub out: PathBuf,
}

#[derive(Serialize)]
struct JsonOutput<'a> {
    input: String,
    rows: u64,
    tests: usize,
    concerns: usize,
    reviews: usize,
    warnings: &'a [String],
    findings: &'a [Finding],
}

/// Reads the file, audits it and writes the findings.
pub async fn run(a: &FileAudit) -> Result<FileAuditOutcome> {
    let out_kind = extension(&a.out);
    if out_kind != "json" && out_kind != "parquet" {
        return Err(Error::Config(format!(
            "--out {}: use a .json or .parquet file",
            a.out.display()
        )));
    }
    if a.groups.is_empty() {
        return Err(Error::Config("give at least one --group COLUMN".into()));
    }
    if a.outcomes.is_empty() && a.prediction.is_none() && a.score.is_none() {
        return Err(Error::Config(
            "nothing to audit: give --outcome COLUMN, or --prediction (with --label for error rates)".into(),
        ));
    }
    let table = read_table(a).await?;
    let name = table.name.clone();
    let rows = table.rows as u64;
    let params = a.params.clone();
    let report = tokio::task::spawn_blocking(move || audit(&[table], &params))
        .await
        .map_err(crate::nightly::panics::joined("the audit"))??;
    write(a, &name, rows, &report).await?;
    Ok(FileAuditOutcome {
        rows_in: rows,
        rows_out: report.findings.len() as u64,
        warnings: report.warnings.clone(),
        tests: report.tests,
        concerns: report.count(Verdict::Concern),
        reviews: report.count(Verdict::Review),
        out: a.out.clone(),
    })
}

/// Reads the input file into a decision table (named after the file).
pub async fn read_table(a: &FileAudit) -> Result<DecisionTable> {
    let batches = read(&a.input).await?;
    let name = a
        .input
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("input")
        .to_string();
    build(&name, &batches, a)
}

fn extension(p: &Path) -> String {
    p.extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

async fn read(input: &Path) -> Result<Vec<RecordBatch>> {
    if !input.exists() {
        return Err(Error::MissingInput {
            what: input.display().to_string(),
            hint: "give an existing CSV or Parquet file with --input".into(),
        });
    }
    let path = input
        .to_str()
        .ok_or_else(|| Error::input(input.display().to_string(), "the path is not UTF-8"))?;
    let ctx = SessionContext::new();
    let df = match extension(input).as_str() {
        "csv" => ctx.read_csv(path, CsvReadOptions::new()).await,
        "parquet" => ctx.read_parquet(path, ParquetReadOptions::default()).await,
        other => {
            return Err(Error::input(
                path,
                format!("unknown file type {other:?}: use .csv or .parquet"),
            ));
        }
    }
    .map_err(|e| Error::input(path, e.to_string()))?;
    df.collect()
        .await
        .map_err(|e| Error::input(path, e.to_string()))
}

fn build(name: &str, batches: &[RecordBatch], a: &FileAudit) -> Result<DecisionTable> {
    let source = a.input.display().to_string();
    let c = Columns::new(batches, &source);
    let mut groups = Vec::new();
    for g in &a.groups {
        groups.push((g.clone(), c.codes(g)?));
    }
    let mut outcomes = Vec::new();
    for o in &a.outcomes {
        outcomes.push(outcome(&c, o)?);
    }
    let classifier = match (&a.label, &a.prediction) {
        (Some(label), Some(prediction)) => Some(Classifier {
            name: prediction.clone(),
            flagged: format!("predicted positive ({prediction} = 1)"),
            positive: format!("had {label} = 1"),
            negative: format!("had {label} = 0"),
            positive_plain: format!("have {label} = 1"),
            direction: Direction::Neutral,
            label: c.binary(label)?,
            prediction: c.binary(prediction)?,
            score: a.score.as_ref().map(|s| c.floats(s)).transpose()?,
        }),
        (Some(label), None) => {
            return Err(Error::Config(format!(
                "--label {label} needs --prediction COLUMN (the decision to compare with the label)"
            )));
        }
        (None, Some(p)) => {
            outcomes.push(outcome(&c, p)?);
            None
        }
        (None, None) => None,
    };
    if a.label.is_none()
        && let Some(s) = &a.score
    {
        outcomes.push(outcome(&c, s)?);
    }
    Ok(DecisionTable {
        name: name.to_string(),
        rows: c.rows(),
        subjects: a.subject.as_ref().map(|s| c.subjects(s)).transpose()?,
        groups,
        outcomes,
        classifier,
    })
}

fn outcome(c: &Columns, column: &str) -> Result<Outcome> {
    let ty = c.data_type(column)?;
    if c.is_binary(column)? {
        return Ok(Outcome::binary(
            column,
            c.binary(column)?,
            Direction::Neutral,
            &format!("have {column} = 1"),
        ));
    }
    if ty.is_numeric() {
        let values = c.floats(column)?;
        // "1.4× the reference" means nothing for a quantity that can be
        // negative (a margin, a balance): such a column is compared by
        // difference.
        let comparison = if values.iter().any(|v| *v < 0.0) {
            Comparison::Difference
        } else {
            Comparison::Ratio
        };
        return Ok(Outcome::continuous(
            column,
            values,
            vec![Stat::Mean, Stat::Quantile(0.5)],
            comparison,
            Direction::Neutral,
            column,
            "",
        ));
    }
    match ty {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            Ok(Outcome::categorical(
                column,
                c.codes(column)?,
                &format!("have {column} = {{category}}"),
            ))
        }
        other => Err(Error::Config(format!(
            "--outcome {column}: a {other} column is neither a decision (boolean, 0/1), a number nor a category"
        ))),
    }
}

async fn write(a: &FileAudit, name: &str, rows: u64, report: &AuditReport) -> Result<()> {
    let bytes = match extension(&a.out).as_str() {
        "json" => {
            let doc = JsonOutput {
                input: name.to_string(),
                rows,
                tests: report.tests,
                concerns: report.count(Verdict::Concern),
                reviews: report.count(Verdict::Review),
                warnings: &report.warnings,
                findings: &report.findings,
            };
            let mut v = serde_json::to_vec_pretty(&doc)
                .map_err(|e| Error::Internal(format!("findings do not serialize: {e}")))?;
            v.push(b'\n');
            v
        }
        _ => {
            let batch = findings::to_batch(&report.findings, None)?;
            let mut buf = Vec::new();
            let mut w = parquet::arrow::ArrowWriter::try_new(
                &mut buf,
                findings::schema(false),
                Some(crate::parquet_io::export_properties()),
            )?;
            w.write(&batch)?;
            w.close()?;
            buf
        }
    };
    // Write beside the target, then rename: a reader never sees half a file.
    let tmp = a.out.with_extension("partial");
    std::fs::write(&tmp, &bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &a.out).map_err(|e| Error::io(&a.out, e))?;
    Ok(())
}
