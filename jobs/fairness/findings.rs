//! The audit's output rows (`marts/fairness_audit`, `attune fairness audit
//! --out`), as Arrow batches and JSON.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, StringBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use serde::Serialize;

use super::verdict::{Scale, Verdict};
use crate::Result;

/// One row of the audit: a group's metric, its comparison with the
/// reference group, the test and the verdict — or a dimension-level
/// number (Fairlearn's disparity aggregates, a chi-square test) with
/// `group_name` empty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Which decision (`service`, `offers`, `churn_model`, …, or the input file's for the CLI).
    pub decision: String,
    /// `age_band`, or an intersection `age_band & region`.
    pub dimension: String,
    /// `65+`, `65+ & east`; `None` for a dimension-level row.
    pub group_name: Option<String>,
    pub reference_group: Option<String>,
    /// The outcome column (`handled_by`, `first_response_hours`, `at_risk`, …).
    pub outcome: String,
    /// `rate`, `share_<category>`, `mean`, `median`, `p90`, `true_positive_rate`, …
    pub metric: String,
    pub value: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub reference_value: Option<f64>,
    pub difference: Option<f64>,
    pub difference_ci_low: Option<f64>,
    pub difference_ci_high: Option<f64>,
    pub ratio: Option<f64>,
    pub ratio_ci_low: Option<f64>,
    pub ratio_ci_high: Option<f64>,
    /// `two_proportion_z`, `mann_whitney_u`, `welch_t`, `chi_square`.
    pub test: Option<String>,
    pub p_value: Option<f64>,
    /// Benjamini-Hochberg over every test of the run.
    pub p_adjusted: Option<f64>,
    /// Rows behind the value; `None` when suppressed.
    pub n: Option<u64>,
    pub suppressed: bool,
    pub verdict: Option<Verdict>,
    pub explanation: String,
    /// What the engine needs to finish the row after the correction.
    #[serde(skip)]
    pub(crate) pending: Option<Pending>,
}

/// The parts of a comparison's explanation known before the correction.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pending {
    pub scale: Scale,
    pub subject: String,
    pub reference: String,
    pub phrase: String,
    pub unit: String,
    pub direction: super::table::Direction,
    /// Index into the run's list of tests.
    pub test: Option<usize>,
    /// Omnibus tests: the sentence before and after the p-value.
    pub omnibus: Option<(String, String)>,
}

impl Finding {
    /// An empty row for a dimension, outcome and metric.
    pub fn new(decision: &str, dimension: &str, outcome: &str, metric: &str) -> Finding {
        Finding {
            decision: decision.to_string(),
            dimension: dimension.to_string(),
            group_name: None,
            reference_group: None,
            outcome: outcome.to_string(),
            metric: metric.to_string(),
            value: None,
            ci_low: None,
            ci_high: None,
            reference_value: None,
            difference: None,
            difference_ci_low: None,
            difference_ci_high: None,
            ratio: None,
            ratio_ci_low: None,
            ratio_ci_high: None,
            test: None,
            p_value: None,
            p_adjusted: None,
            n: None,
            suppressed: false,
            verdict: None,
            explanation: String::new(),
            pending: None,
        }
    }

    /// The sort key of the output: decision, dimension, outcome, metric,
    /// then dimension-level rows before groups, groups by name.
    pub fn sort_key(&self) -> (&str, &str, &str, &str, Option<&str>) {
        (
            &self.decision,
            &self.dimension,
            &self.outcome,
            &self.metric,
            self.group_name.as_deref(),
        )
    }
}

/// Columns of the findings, optionally led by `run_date` (the mart).
pub fn schema(with_run_date: bool) -> SchemaRef {
    let mut fields = Vec::new();
    if with_run_date {
        fields.push(Field::new("run_date", DataType::Date32, false));
    }
    let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    let f = |n: &str| Field::new(n, DataType::Float64, true);
    fields.extend([
        s("decision", false),
        s("dimension", false),
        s("group_name", true),
        s("reference_group", true),
        s("outcome", false),
        s("metric", false),
        f("value"),
        f("ci_low"),
        f("ci_high"),
        f("reference_value"),
        f("difference"),
        f("difference_ci_low"),
        f("difference_ci_high"),
        f("ratio"),
        f("ratio_ci_low"),
        f("ratio_ci_high"),
        s("test", true),
        f("p_value"),
        f("p_adjusted"),
        Field::new("n", DataType::UInt64, true),
        Field::new("suppressed", DataType::Boolean, false),
        s("verdict", true),
        s("explanation", false),
    ]);
    Arc::new(Schema::new(fields))
}

/// The findings as one batch (with `run_date` when given).
pub fn to_batch(findings: &[Finding], run_date: Option<NaiveDate>) -> Result<RecordBatch> {
    let schema = schema(run_date.is_some());
    let strings = |get: &dyn Fn(&Finding) -> Option<&str>| -> ArrayRef {
        let mut b = StringBuilder::new();
        for x in findings {
            b.append_option(get(x));
        }
        Arc::new(b.finish())
    };
    let floats = |get: &dyn Fn(&Finding) -> Option<f64>| -> ArrayRef {
        let mut b = Float64Builder::new();
        for x in findings {
            b.append_option(get(x).filter(|v| v.is_finite()));
        }
        Arc::new(b.finish())
    };
    let mut columns: Vec<ArrayRef> = Vec::new();
    if let Some(d) = run_date {
        let days = (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")).num_days() as i32;
        let mut b = Date32Builder::new();
        for _ in findings {
            b.append_value(days);
        }
        columns.push(Arc::new(b.finish()));
    }
    columns.push(strings(&|x| Some(x.decision.as_str())));
    columns.push(strings(&|x| Some(x.dimension.as_str())));
    columns.push(strings(&|x| x.group_name.as_deref()));
    columns.push(strings(&|x| x.reference_group.as_deref()));
    columns.push(strings(&|x| Some(x.outcome.as_str())));
    columns.push(strings(&|x| Some(x.metric.as_str())));
    columns.push(floats(&|x| x.value));
    columns.push(floats(&|x| x.ci_low));
    columns.push(floats(&|x| x.ci_high));
    columns.push(floats(&|x| x.reference_value));
    columns.push(floats(&|x| x.difference));
    columns.push(floats(&|x| x.difference_ci_low));
    columns.push(floats(&|x| x.difference_ci_high));
    columns.push(floats(&|x| x.ratio));
    columns.push(floats(&|x| x.ratio_ci_low));
    columns.push(floats(&|x| x.ratio_ci_high));
    columns.push(strings(&|x| x.test.as_deref()));
    columns.push(floats(&|x| x.p_value));
    columns.push(floats(&|x| x.p_adjusted));
    let mut n = UInt64Builder::new();
    let mut suppressed = BooleanBuilder::new();
    for x in findings {
        n.append_option(x.n);
        suppressed.append_value(x.suppressed);
    }
    columns.push(Arc::new(n.finish()));
    columns.push(Arc::new(suppressed.finish()));
    columns.push(strings(&|x| x.verdict.map(Verdict::as_str)));
    columns.push(strings(&|x| Some(x.explanation.as_str())));
    Ok(RecordBatch::try_new(schema, columns)?)
}
