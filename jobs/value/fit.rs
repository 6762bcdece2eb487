//! `attune value fit`: the lifetime-value models on any transaction export,
//! without a data root.
//!
//! Reads a CSV (header line; every column read as text, then the three
//! named columns converted) or Parquet file, combines transactions per
//! customer and calendar day, summarizes the calibration period, fits
//! BG/NBD and Gamma-Gamma, and writes to the output folder:
//!
//! - `summary.csv`: customer_id, x, t_x, t, monetary (and holdout_x with a holdout)
//! - `parameters.json`: both fits with log-likelihoods, standard errors and
//!   the optimizer's state, the frequency–value correlation, the settings
//! - `predictions.csv`: customer_id, p_alive, expected_purchases (over the
//!   holdout length, else 365 days), expected_order_value, cltv_12m (and
//!   actual_purchases with a holdout)
//! - `holdout.csv` (with a holdout): predicted versus actual repeat purchases
//!   per calibration frequency, the comparison of Fader, Hardie & Lee's fig. 3
//!
//! A fit that does not converge still writes `summary.csv` and
//! `parameters.json` (with the optimizer's state) and then fails.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit as ArrowTimeUnit};
use datafusion::logical_expr::{cast, ident};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, col};
use serde::Serialize;
use tracing::info;

use super::clv::{self, ClvModels, ClvSettings, Scores};
use super::summary::{self, Summaries, TimeUnit};
use crate::{Error, Result};

/// What to fit and where to write.
#[derive(Debug, Clone)]
pub struct FitParams {
    /// A `.csv` (or `.csv.gz`) or `.parquet` file of transactions.
    pub transactions: PathBuf,
    pub customer_column: String,
    /// ISO dates (`1997-01-01`) or timestamps; the calendar day counts.
    pub date_column: String,
    pub amount_column: String,
    /// Last day of the calibration period (inclusive).
    pub calibration_end: NaiveDate,
    /// Last day of the holdout period (inclusive), if any.
    pub holdout_end: Option<NaiveDate>,
    pub time_unit: TimeUnit,
    pub out: PathBuf,
    pub gross_margin: f64,
    pub annual_discount_rate: f64,
    pub max_iterations: u64,
}

/// Predicted versus actual repeat purchases in the holdout, for customers
/// with a given calibration frequency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldoutRow {
    /// `0` … `6`, `7+`, or `all`.
    pub x: String,
    pub customers: u64,
    pub predicted_mean: f64,
    pub actual_mean: f64,
}

/// What `value fit` produced.
#[derive(Debug, Clone, Serialize)]
pub struct FitOutcome {
    pub rows_read: u64,
    /// Rows without a customer, a date or an amount.
    pub rows_skipped: u64,
    pub customers: u64,
    pub horizon_days: f64,
    pub models: ClvModels,
    pub holdout: Vec<HoldoutRow>,
    pub files: Vec<PathBuf>,
}

#[derive(Serialize)]
struct ParametersFile<'a> {
    transactions: String,
    calibration_end: NaiveDate,
    holdout_end: Option<NaiveDate>,
    time_unit: &'static str,
    gross_margin: f64,
    annual_discount_rate: f64,
    rows_read: u64,
    rows_skipped: u64,
    customers: u64,
    #[serde(flatten)]
    models: &'a ClvModels,
}

/// Runs the fit and writes the files.
pub async fn run(p: &FitParams) -> Result<FitOutcome> {
    let session = datafusion::prelude::SessionContext::new();
    let file = p.transactions.display().to_string();
    register_transactions(&session, p).await?;
    let rows_read = session.table("transactions").await?.count().await? as u64;
    let purchases = session
        .table("transactions")
        .await?
        .select(vec![
            cast(ident(&p.customer_column), DataType::Utf8).alias("customer_id"),
            date_expr(&session, p).await?.alias("order_date"),
            cast(ident(&p.amount_column), DataType::Float64).alias("amount"),
        ])?
        // A purchase without an amount cannot be valued: counted as 0 it
        // would pull the customer's mean repeat value down; it is skipped
        // and counted, with the rows without a customer or a date.
        .filter(
            col("customer_id")
                .is_not_null()
                .and(col("order_date").is_not_null())
                .and(col("amount").is_not_null()),
        )?;
    session.register_table("purchases", purchases.into_view())?;
    let rows_used = session
        .table("purchases")
        .await?
        .count()
        .await
        .map_err(|e| Error::input(&file, format!("cannot convert the columns: {e}")))?
        as u64;
    let holdout_end = p.holdout_end.unwrap_or(p.calibration_end);
    let s = summary::load(&session, p.calibration_end, holdout_end, p.time_unit)
        .await
        .map_err(|e| match e {
            Error::DataFusion(e) => Error::input(&file, format!("cannot convert the columns: {e}")),
            other => other,
        })?
        .summaries;
    if s.is_empty() {
        return Err(Error::input(
            &file,
            format!(
                "no customer has a transaction on or before the calibration end {}",
                p.calibration_end
            ),
        ));
    }
    info!(customers = s.len(), rows_read, "transactions summarized");
    let settings = ClvSettings {
        time_unit: p.time_unit,
        gross_margin: p.gross_margin,
        annual_discount_rate: p.annual_discount_rate,
        max_iterations: p.max_iterations,
    };
    let models = clv::fit_models(&s, &settings)?;
    std::fs::create_dir_all(&p.out).map_err(|e| Error::io(&p.out, e))?;
    let mut files = Vec::new();
    files.push(write_summary(&p.out, &s, p.holdout_end.is_some())?);
    let params_file = ParametersFile {
        transactions: file.clone(),
        calibration_end: p.calibration_end,
        holdout_end: p.holdout_end,
        time_unit: p.time_unit.name(),
        gross_margin: p.gross_margin,
        annual_discount_rate: p.annual_discount_rate,
        rows_read,
        rows_skipped: rows_read - rows_used,
        customers: s.len() as u64,
        models: &models,
    };
    let path = p.out.join("parameters.json");
    let json = serde_json::to_string_pretty(&params_file)
        .map_err(|e| Error::Internal(format!("parameters.json: {e}")))?;
    std::fs::write(&path, json + "\n").map_err(|e| Error::io(&path, e))?;
    files.push(path);
    if !models.bg_nbd.optimizer.converged {
        return Err(Error::Model {
            model: "bg_nbd".into(),
            reason: format!(
                "{} (the optimizer's state is in {})",
                models.bg_nbd.optimizer.describe(),
                p.out.join("parameters.json").display()
            ),
        });
    }
    let horizon_days = match p.holdout_end {
        Some(h) => (h - p.calibration_end).num_days() as f64,
        None => 365.0,
    };
    let scores = clv::score(&s, &models, &[horizon_days], &settings);
    files.push(write_predictions(
        &p.out,
        &s,
        &scores,
        p.holdout_end.is_some(),
    )?);
    let holdout = if p.holdout_end.is_some() {
        let rows = holdout_comparison(&s, &scores.expected_purchases[0]);
        files.push(write_holdout(&p.out, &rows)?);
        rows
    } else {
        Vec::new()
    };
    Ok(FitOutcome {
        rows_read,
        rows_skipped: rows_read - rows_used,
        customers: s.len() as u64,
        horizon_days,
        models,
        holdout,
        files,
    })
}

/// Registers the file as `transactions`; CSV columns are all read as text.
async fn register_transactions(
    session: &datafusion::prelude::SessionContext,
    p: &FitParams,
) -> Result<()> {
    let path = &p.transactions;
    let file = path.display().to_string();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let location = path
        .to_str()
        .ok_or_else(|| Error::input(&file, "the path is not valid UTF-8"))?;
    if !path.is_file() {
        return Err(Error::MissingInput {
            what: file,
            hint: "give --transactions an existing .csv or .parquet file".into(),
        });
    }
    let columns = if name.ends_with(".parquet") {
        session
            .register_parquet("transactions", location, ParquetReadOptions::default())
            .await?;
        session
            .table("transactions")
            .await?
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>()
    } else if name.ends_with(".csv") || name.ends_with(".csv.gz") {
        let header = csv_header(path)?;
        let schema = Schema::new(
            header
                .iter()
                .map(|h| Field::new(h, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        );
        let mut options = CsvReadOptions::new().has_header(true).schema(&schema);
        if name.ends_with(".gz") {
            options = options
                .file_extension(".csv.gz")
                .file_compression_type(datafusion::datasource::file_format::file_compression_type::FileCompressionType::GZIP);
        }
        session
            .register_csv("transactions", location, options)
            .await?;
        header
    } else {
        return Err(Error::input(
            &file,
            "unknown format: use a .csv, .csv.gz or .parquet file",
        ));
    };
    for (flag, c) in [
        ("--customer-column", &p.customer_column),
        ("--date-column", &p.date_column),
        ("--amount-column", &p.amount_column),
    ] {
        if !columns.iter().any(|h| h == c) {
            return Err(Error::input(
                &file,
                format!(
                    "{flag} {c:?} is not a column (columns: {})",
                    columns.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn csv_header(path: &Path) -> Result<Vec<String>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader: Box<dyn std::io::Read> = if path.to_string_lossy().ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(reader);
    let header = r
        .headers()
        .map_err(|e| Error::input(path.display().to_string(), format!("bad CSV header: {e}")))?;
    Ok(header.iter().map(str::to_string).collect())
}

/// The date column as a DATE: text and timestamps through TIMESTAMP (which
/// accepts `1997-01-01` and `1997-01-01T10:00:00`), dates as they are.
async fn date_expr(
    session: &datafusion::prelude::SessionContext,
    p: &FitParams,
) -> Result<datafusion::prelude::Expr> {
    let df = session.table("transactions").await?;
    let field = df
        .schema()
        .field_with_unqualified_name(&p.date_column)
        .map_err(|e| Error::input(p.transactions.display().to_string(), e.to_string()))?;
    let e = ident(&p.date_column);
    match field.data_type() {
        DataType::Date32 | DataType::Date64 => Ok(cast(e, DataType::Date32)),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Timestamp(_, _) => {
            Ok(cast(
                cast(e, DataType::Timestamp(ArrowTimeUnit::Nanosecond, None)),
                DataType::Date32,
            ))
        }
        other => Err(Error::input(
            p.transactions.display().to_string(),
            format!(
                "--date-column {:?} has type {other}; give dates as text (1997-01-01), DATE or TIMESTAMP",
                p.date_column
            ),
        )),
    }
}

/// Mean predicted and actual holdout purchases per calibration frequency
/// (0 … 6, 7+) and overall.
pub fn holdout_comparison(s: &Summaries, predicted: &[Option<f64>]) -> Vec<HoldoutRow> {
    let mut groups: Vec<(u64, f64, f64)> = vec![(0, 0.0, 0.0); 9];
    for ((&x, &holdout), pred) in s.x.iter().zip(&s.holdout_x).zip(predicted) {
        let Some(pred) = *pred else {
            continue;
        };
        let actual = f64::from(holdout);
        for g in [x.min(7) as usize, 8] {
            groups[g].0 += 1;
            groups[g].1 += pred;
            groups[g].2 += actual;
        }
    }
    groups
        .into_iter()
        .enumerate()
        .filter(|(_, g)| g.0 > 0)
        .map(|(k, (n, p, a))| HoldoutRow {
            x: match k {
                7 => "7+".into(),
                8 => "all".into(),
                k => k.to_string(),
            },
            customers: n,
            predicted_mean: p / n as f64,
            actual_mean: a / n as f64,
        })
        .collect()
}

fn csv_writer(path: &Path) -> Result<csv::Writer<std::fs::File>> {
    csv::Writer::from_path(path).map_err(|e| Error::Internal(format!("{}: {e}", path.display())))
}

fn csv_error(path: &Path) -> impl Fn(csv::Error) -> Error + use<> {
    let shown = path.display().to_string();
    move |e| Error::Internal(format!("{shown}: {e}"))
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn write_summary(dir: &Path, s: &Summaries, holdout: bool) -> Result<PathBuf> {
    let path = dir.join("summary.csv");
    let mut w = csv_writer(&path)?;
    let e = csv_error(&path);
    let mut header = vec!["customer_id", "x", "t_x", "t", "monetary"];
    if holdout {
        header.push("holdout_x");
    }
    w.write_record(&header).map_err(&e)?;
    for i in 0..s.len() {
        let mut row = vec![
            s.customer_id[i].clone(),
            s.x[i].to_string(),
            s.t_x[i].to_string(),
            s.t[i].to_string(),
            opt(s.monetary[i]),
        ];
        if holdout {
            row.push(s.holdout_x[i].to_string());
        }
        w.write_record(&row).map_err(&e)?;
    }
    w.flush().map_err(|err| Error::io(&path, err))?;
    Ok(path)
}

fn write_predictions(dir: &Path, s: &Summaries, sc: &Scores, holdout: bool) -> Result<PathBuf> {
    let path = dir.join("predictions.csv");
    let mut w = csv_writer(&path)?;
    let e = csv_error(&path);
    let mut header = vec![
        "customer_id",
        "p_alive",
        "expected_purchases",
        "expected_order_value",
        "cltv_12m",
    ];
    if holdout {
        header.push("actual_purchases");
    }
    w.write_record(&header).map_err(&e)?;
    for i in 0..s.len() {
        let mut row = vec![
            s.customer_id[i].clone(),
            opt(sc.p_alive[i]),
            opt(sc.expected_purchases[0][i]),
            opt(sc.expected_value[i]),
            opt(sc.cltv_12m[i]),
        ];
        if holdout {
            row.push(s.holdout_x[i].to_string());
        }
        w.write_record(&row).map_err(&e)?;
    }
    w.flush().map_err(|err| Error::io(&path, err))?;
    Ok(path)
}

fn write_holdout(dir: &Path, rows: &[HoldoutRow]) -> Result<PathBuf> {
    let path = dir.join("holdout.csv");
    let mut w = csv_writer(&path)?;
    let e = csv_error(&path);
    w.write_record(["x", "customers", "predicted_mean", "actual_mean"])
        .map_err(&e)?;
    for r in rows {
        w.write_record([
            r.x.clone(),
            r.customers.to_string(),
            r.predicted_mean.to_string(),
            r.actual_mean.to_string(),
        ])
        .map_err(&e)?;
    }
    w.flush().map_err(|err| Error::io(&path, err))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdout_groups_by_frequency_with_a_total() {
        let s = Summaries {
            customer_id: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            first_day: vec![0; 4],
            x: vec![0, 0, 3, 12],
            t_x: vec![0.0, 0.0, 5.0, 9.0],
            t: vec![10.0; 4],
            valued_x: vec![0, 0, 3, 12],
            monetary: vec![None, None, Some(1.0), Some(2.0)],
            holdout_x: vec![1, 0, 2, 6],
        };
        let rows = holdout_comparison(&s, &[Some(0.2), Some(0.4), Some(1.5), None]);
        let by = |k: &str| rows.iter().find(|r| r.x == k).cloned();
        let zero = by("0").expect("x = 0");
        assert_eq!(zero.customers, 2);
        assert!((zero.predicted_mean - 0.3).abs() < 1e-12);
        assert!((zero.actual_mean - 0.5).abs() < 1e-12);
        assert!(by("7+").is_none(), "no prediction for the x = 12 customer");
        let all = by("all").expect("total");
        assert_eq!(all.customers, 3);
        assert!((all.actual_mean - 1.0).abs() < 1e-12);
    }
}
