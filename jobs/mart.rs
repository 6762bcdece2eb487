//! Marts written by Rust jobs (voice, segment, value, empathy, roi,
//! fairness, privacy): their documentation and the one way to publish them.
//!
//! A SQL model documents itself in its header; a Rust job's mart is
//! documented in `schemas/marts/<table>.toml` (purpose, grain, one entry per
//! column), compiled into the binary. [`publish`] refuses a batch whose
//! columns differ from that documentation, so `attune tables --docs` can
//! never drift from what is written.
//!
//! `marts/model_metrics` is shared: each job writes its own file
//! (`marts/model_metrics/dt=<D>/<job>.parquet`), so jobs never overwrite each
//! other's metrics and a re-run of one job replaces only its own.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{ArrayRef, Float64Builder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use object_store::path::Path;
use serde::Deserialize;

use crate::parquet_io::write_batches;
use crate::storage::{Storage, partition_dir};
use crate::{Error, Result};

include!(concat!(env!("OUT_DIR"), "/builtin_mart_docs.rs"));

/// Documentation of one mart written by a Rust job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MartDoc {
    pub table: String,
    /// The job (module under `jobs/`) that writes it.
    pub job: String,
    pub purpose: String,
    /// "one row per …".
    pub grain: String,
    /// (column, meaning), in output order.
    pub columns: Vec<(String, String)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMartDoc {
    table: String,
    job: String,
    purpose: String,
    grain: String,
    columns: Vec<RawColumnDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumnDoc {
    name: String,
    doc: String,
}

impl MartDoc {
    fn parse(stem: &str, text: &str) -> Result<MartDoc> {
        let bad = |reason: String| Error::Config(format!("schemas/marts/{stem}.toml: {reason}"));
        let raw: RawMartDoc = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        if raw.table != stem {
            return Err(bad(format!(
                "table = {:?} must equal the file stem",
                raw.table
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &raw.columns {
            if !seen.insert(c.name.as_str()) {
                return Err(bad(format!("column `{}` is documented twice", c.name)));
            }
            if c.doc.trim().is_empty() {
                return Err(bad(format!("column `{}` has an empty doc", c.name)));
            }
        }
        Ok(MartDoc {
            table: raw.table,
            job: raw.job,
            purpose: raw.purpose,
            grain: raw.grain,
            columns: raw.columns.into_iter().map(|c| (c.name, c.doc)).collect(),
        })
    }

    /// Checks that `schema` has exactly the documented columns, in order.
    pub fn check(&self, schema: &Schema) -> Result<()> {
        let returned: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let documented: Vec<&str> = self.columns.iter().map(|(c, _)| c.as_str()).collect();
        if returned != documented {
            return Err(Error::Internal(format!(
                "marts/{} is documented with columns [{}] in schemas/marts/{}.toml but the job writes [{}]",
                self.table,
                documented.join(", "),
                self.table,
                returned.join(", ")
            )));
        }
        Ok(())
    }
}

/// Every documented Rust-job mart, sorted by table.
pub fn docs() -> Result<Vec<MartDoc>> {
    BUILTIN_MART_DOCS
        .iter()
        .map(|(stem, text)| MartDoc::parse(stem, text))
        .collect()
}

/// The documentation of one mart.
pub fn doc(table: &str) -> Result<MartDoc> {
    let text = BUILTIN_MART_DOCS
        .iter()
        .find(|(stem, _)| *stem == table)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            Error::Internal(format!(
                "marts/{table} has no documentation: add schemas/marts/{table}.toml"
            ))
        })?;
    MartDoc::parse(table, text)
}

/// Publishes `marts/<table>/dt=<date>/part-0.parquet` atomically, after
/// checking the batches against the mart's documentation. Returns rows written.
pub async fn publish(
    storage: &Storage,
    table: &str,
    date: NaiveDate,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<u64> {
    publish_file(storage, table, date, "part-0", schema, batches).await
}

/// Like [`publish`], for a mart several jobs share: the file is
/// `marts/<table>/dt=<date>/<file>.parquet`.
pub async fn publish_file(
    storage: &Storage,
    table: &str,
    date: NaiveDate,
    file: &str,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<u64> {
    doc(table)?.check(&schema)?;
    let path = Path::from(format!(
        "{}/{file}.parquet",
        partition_dir("marts", table, date)
    ));
    write_batches(storage, &path, schema, batches).await
}

/// One row of `marts/model_metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The model or analysis (`kmeans`, `churn_logistic`, `bg_nbd`, `sentiment`, …).
    pub model: String,
    /// The metric (`silhouette`, `roc_auc`, `log_likelihood`, `coefficient`, …).
    pub metric: String,
    /// What the value is for, when a metric has several (`k=4`, a feature
    /// name, a calibration bin); `None` otherwise.
    pub key: Option<String>,
    /// The number; `None` when it could not be computed (the detail says why).
    pub value: Option<f64>,
    /// A short note in words (units, convergence state, why a value is missing).
    pub detail: Option<String>,
}

impl Metric {
    /// A plain metric with a value.
    pub fn new(model: &str, metric: &str, value: f64) -> Metric {
        Metric {
            model: model.to_string(),
            metric: metric.to_string(),
            key: None,
            value: Some(value),
            detail: None,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<String>) -> Metric {
        self.key = Some(key.into());
        self
    }

    /// Sets the detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Metric {
        self.detail = Some(detail.into());
        self
    }
}

/// Schema of `marts/model_metrics`.
pub fn model_metrics_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("job", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, true),
        Field::new("value", DataType::Float64, true),
        Field::new("detail", DataType::Utf8, true),
    ]))
}

/// Writes `job`'s metrics to `marts/model_metrics/dt=<date>/<job>.parquet`,
/// replacing that job's previous metrics for the date and nobody else's.
pub async fn publish_model_metrics(
    storage: &Storage,
    date: NaiveDate,
    job: &str,
    metrics: &[Metric],
) -> Result<u64> {
    let (mut j, mut m, mut me, mut k, mut v, mut d) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Float64Builder::new(),
        StringBuilder::new(),
    );
    for x in metrics {
        j.append_value(job);
        m.append_value(&x.model);
        me.append_value(&x.metric);
        k.append_option(x.key.as_deref());
        v.append_option(x.value.filter(|f| f.is_finite()));
        d.append_option(x.detail.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(j.finish()),
        Arc::new(m.finish()),
        Arc::new(me.finish()),
        Arc::new(k.finish()),
        Arc::new(v.finish()),
        Arc::new(d.finish()),
    ];
    let schema = model_metrics_schema();
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    publish_file(storage, "model_metrics", date, job, schema, &[batch]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_docs_parse_and_match_their_file_names() {
        let all = docs().expect("schemas/marts/*.toml are valid");
        assert!(all.iter().any(|d| d.table == "model_metrics"));
        let mm = doc("model_metrics").expect("documented");
        mm.check(&model_metrics_schema())
            .expect("model_metrics doc matches its schema");
    }

    #[test]
    fn a_doc_that_disagrees_is_refused() {
        let text = "table = \"x\"\njob = \"voice\"\npurpose = \"p\"\ngrain = \"g\"\n[[columns]]\nname = \"a\"\ndoc = \"the a\"\n";
        let d = MartDoc::parse("x", text).expect("valid");
        let schema = Schema::new(vec![Field::new("b", DataType::Utf8, true)]);
        let err = d.check(&schema).expect_err("b is not documented");
        assert!(err.to_string().contains("[a]") && err.to_string().contains("[b]"));
        assert!(MartDoc::parse("y", text).is_err(), "stem must match");
        let twice = text.to_string() + "[[columns]]\nname = \"a\"\ndoc = \"again\"\n";
        assert!(MartDoc::parse("x", &twice).is_err(), "duplicate column");
        assert!(MartDoc::parse("x", &(text.to_string() + "colour = 1\n")).is_err());
    }

    #[tokio::test]
    async fn model_metrics_of_two_jobs_live_side_by_side() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path().to_str().expect("utf8")).expect("open");
        let date = NaiveDate::from_ymd_opt(2025, 3, 1).expect("date");
        let a = [Metric::new("kmeans", "silhouette", 0.41).key("k=3")];
        let b = [Metric::new("bg_nbd", "log_likelihood", -9582.4).detail("converged")];
        publish_model_metrics(&storage, date, "segment", &a)
            .await
            .expect("segment");
        publish_model_metrics(&storage, date, "value", &b)
            .await
            .expect("value");
        let listed = storage
            .list(&partition_dir("marts", "model_metrics", date))
            .await
            .expect("list");
        let names: Vec<String> = listed.iter().map(|m| m.location.to_string()).collect();
        assert_eq!(
            names,
            vec![
                "marts/model_metrics/dt=2025-03-01/segment.parquet",
                "marts/model_metrics/dt=2025-03-01/value.parquet"
            ]
        );
    }
}
