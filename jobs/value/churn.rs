//! The churn model: logistic regression (linfa-logistic) on standardized
//! behavioural features.
//!
//! Features are the numeric columns of `customer_features` (no sensitive
//! attributes live there: those are in `customer_attributes`, which this
//! module never reads). Each is standardized with the training customers'
//! mean and standard deviation, so a coefficient is the change in the
//! log-odds of churning per standard deviation of its feature. A missing
//! value (no tickets, no NPS answer, fewer than two orders) is set to the
//! training mean, and the feature gets a `<name>_missing` indicator when
//! training customers both have and lack it.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use linfa::Dataset;
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, ShapeBuilder};
use serde::Serialize;

use crate::{Error, Result};

/// L2 penalty on the standardized coefficients (linfa's `alpha`, applied
/// to the summed log-loss): negligible next to hundreds of customers, but it
/// keeps the fit finite when shares that add up to one are all features.
pub const L2_PENALTY: f64 = 1.0;

/// Stop when the gradient of the mean log-loss is below this.
pub const GRADIENT_TOLERANCE: f64 = 1e-6;

/// Numeric features per customer, column-wise; NaN where missing.
#[derive(Debug, Clone, Default)]
pub struct FeatureTable {
    pub customer_id: Vec<String>,
    pub names: Vec<String>,
    /// `values[f][i]`: feature f of customer i.
    pub values: Vec<Vec<f64>>,
}

impl FeatureTable {
    /// Every integer or floating-point column except `customer_id`, in
    /// schema order, from `customer_features` batches.
    pub fn from_batches(batches: &[RecordBatch]) -> Result<FeatureTable> {
        let mut t = FeatureTable::default();
        let Some(first) = batches.first() else {
            return Ok(t);
        };
        let schema = first.schema();
        let numeric: Vec<(usize, String)> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                f.name() != "customer_id" && f.name() != "dt" && f.data_type().is_numeric()
            })
            .map(|(i, f)| (i, f.name().clone()))
            .collect();
        t.names = numeric.iter().map(|(_, n)| n.clone()).collect();
        t.values = vec![Vec::new(); numeric.len()];
        for b in batches {
            let ids = super::summary::string_column(b, "customer_id")?;
            for i in 0..b.num_rows() {
                t.customer_id.push(ids.value(i).to_string());
            }
            for (k, (col, _)) in numeric.iter().enumerate() {
                let v = cast(b.column(*col), &DataType::Float64)?;
                let v = v.as_primitive::<Float64Type>();
                t.values[k]
                    .extend((0..v.len()).map(|i| if v.is_null(i) { f64::NAN } else { v.value(i) }));
            }
        }
        Ok(t)
    }

    /// The table in customer id order: as it is when it is already (the
    /// transform writes customer_features sorted), else with its rows
    /// sorted (ties, which the model's unique test rules out, in the order
    /// read).
    pub fn into_sorted(self) -> FeatureTable {
        if self.customer_id.is_sorted() {
            return self;
        }
        let mut order: Vec<usize> = (0..self.customer_id.len()).collect();
        order.sort_by(|&a, &b| self.customer_id[a].cmp(&self.customer_id[b]));
        let FeatureTable {
            mut customer_id,
            names,
            values,
        } = self;
        FeatureTable {
            customer_id: order
                .iter()
                .map(|&i| std::mem::take(&mut customer_id[i]))
                .collect(),
            names,
            values: values
                .iter()
                .map(|v| order.iter().map(|&i| v[i]).collect())
                .collect(),
        }
    }

    /// Position of a customer (the table is sorted by customer id).
    pub fn position(&self, id: &str) -> Option<usize> {
        self.customer_id
            .binary_search_by(|c| c.as_str().cmp(id))
            .ok()
    }

    /// Positions of many customers at once, aligned with `ids`. A merge of
    /// two sorted lists when `ids` is sorted too: a binary search per id over
    /// a million strings chases a pointer at every step, seconds in all.
    pub fn positions(&self, ids: &[String]) -> Vec<Option<usize>> {
        if !ids.is_sorted() {
            return ids.iter().map(|id| self.position(id)).collect();
        }
        let mut j = 0;
        ids.iter()
            .map(|id| {
                while j < self.customer_id.len() && self.customer_id[j] < *id {
                    j += 1;
                }
                (j < self.customer_id.len() && self.customer_id[j] == *id).then_some(j)
            })
            .collect()
    }

    /// A feature by name.
    pub fn feature(&self, name: &str) -> Option<&[f64]> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| self.values[i].as_slice())
    }
}

#[derive(Debug, Clone, Serialize)]
enum Column {
    /// (source feature, mean, sd)
    Value(usize, f64, f64),
    /// Indicator that the source feature is missing.
    Missing(usize),
}

impl Column {
    /// This column's value for customer `i` of `table`.
    fn value(&self, table: &FeatureTable, i: usize) -> f64 {
        match *self {
            Column::Value(f, mean, sd) => {
                let v = table.values[f][i];
                if v.is_finite() { (v - mean) / sd } else { 0.0 }
            }
            Column::Missing(f) => f64::from(u8::from(!table.values[f][i].is_finite())),
        }
    }
}

/// The design: which features enter, how they are centred and scaled.
#[derive(Debug, Clone, Serialize)]
pub struct Standardizer {
    /// Names of the design columns, in order.
    pub names: Vec<String>,
    columns: Vec<Column>,
    /// Features left out, with the reason.
    pub dropped: Vec<(String, String)>,
}

impl Standardizer {
    /// Learns means and standard deviations from the `rows` of `table`.
    pub fn fit(table: &FeatureTable, rows: &[usize]) -> Standardizer {
        let mut names = Vec::new();
        let mut columns = Vec::new();
        let mut dropped = Vec::new();
        for (f, name) in table.names.iter().enumerate() {
            let present: Vec<f64> = rows
                .iter()
                .map(|&i| table.values[f][i])
                .filter(|v| v.is_finite())
                .collect();
            if present.is_empty() {
                dropped.push((name.clone(), "missing for every training customer".into()));
                continue;
            }
            let n = present.len() as f64;
            let mean = present.iter().sum::<f64>() / n;
            let var = present.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let sd = var.sqrt();
            if sd.is_nan() || sd <= 1e-12 * mean.abs().max(1.0) {
                dropped.push((name.clone(), "constant for the training customers".into()));
                continue;
            }
            names.push(name.clone());
            columns.push(Column::Value(f, mean, sd));
            if present.len() < rows.len() {
                names.push(format!("{name}_missing"));
                columns.push(Column::Missing(f));
            }
        }
        Standardizer {
            names,
            columns,
            dropped,
        }
    }

    /// The standardized design matrix of `rows`, stored column by column:
    /// linfa's gradient is `xᵀ·r`, which ndarray (without BLAS) computes as
    /// one dot product per row of `xᵀ`. Stored row by row, each of those read
    /// the whole matrix at a stride of one row (a third of the value job's
    /// CPU in `perf`); column by column, each reads one contiguous column.
    pub fn transform(&self, table: &FeatureTable, rows: &[usize]) -> Array2<f64> {
        let mut x = Array2::zeros((rows.len(), self.columns.len()).f());
        for (mut design, col) in x.columns_mut().into_iter().zip(&self.columns) {
            for (v, &i) in design.iter_mut().zip(rows) {
                *v = col.value(table, i);
            }
        }
        x
    }
}

/// A fitted churn model.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnModel {
    pub standardizer: Standardizer,
    /// Log-odds of churning at the training means.
    pub intercept: f64,
    /// Change in the log-odds of churning per standard deviation (or for an
    /// indicator: when missing), one per design column.
    pub coefficients: Vec<f64>,
}

impl ChurnModel {
    /// Fits on `rows` of `table` with outcomes `churned` (aligned with `rows`).
    pub fn fit(table: &FeatureTable, rows: &[usize], churned: &[bool]) -> Result<ChurnModel> {
        let failed = |reason: String| Error::Model {
            model: "churn_logistic".into(),
            reason,
        };
        let churners = churned.iter().filter(|&&y| y).count();
        if churners == 0 || churners == churned.len() {
            return Err(failed(format!(
                "{} training customers, {churners} churned: both outcomes are needed",
                churned.len()
            )));
        }
        let standardizer = Standardizer::fit(table, rows);
        if standardizer.names.is_empty() {
            return Err(failed("no usable feature".into()));
        }
        let x = standardizer.transform(table, rows);
        let y = Array1::from_iter(churned.iter().copied());
        let fitted = LogisticRegression::default()
            .alpha(L2_PENALTY)
            .max_iterations(1000)
            // linfa minimizes the summed log-loss, whose gradient grows with
            // the number of customers: a fixed 1e-6 ran every refit at a
            // million customers to its iteration cap (100 s each). 1e-6 per
            // customer is the usual tolerance on the mean loss.
            .gradient_tolerance(GRADIENT_TOLERANCE * rows.len().max(1) as f64)
            .fit(&Dataset::new(x, y))
            .map_err(|e| failed(e.to_string()))?;
        // linfa labels the more frequent outcome "positive": express the
        // model as the log-odds of churning whichever it is.
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        Ok(ChurnModel {
            intercept: sign * fitted.intercept(),
            coefficients: fitted.params().iter().map(|c| sign * c).collect(),
            standardizer,
        })
    }

    /// P(churn) for `rows` of `table`, a customer at a time: the design
    /// matrix of a million customers was 300 MB written a column at a time.
    pub fn predict(&self, table: &FeatureTable, rows: &[usize]) -> Vec<f64> {
        let columns = &self.standardizer.columns;
        rows.iter()
            .map(|&i| {
                let z = self.intercept
                    + columns
                        .iter()
                        .zip(&self.coefficients)
                        .map(|(col, c)| col.value(table, i) * c)
                        .sum::<f64>();
                1.0 / (1.0 + (-z).exp())
            })
            .collect()
    }
}

/// Most customers a churn model trains on. The fit's cost grows with the
/// rows (linfa's L-BFGS took 60-100 s per fit on 470,000-680,000 customers),
/// while 40-odd coefficients are pinned down long before: at 50,000 their
/// standard errors are about 0.01 on the standardized scale. The hold-out
/// evaluation still scores every held-out customer.
pub const MAX_TRAINING_CUSTOMERS: usize = 50_000;

/// `positions` when there are at most `max` (the job passes
/// [`MAX_TRAINING_CUSTOMERS`]), else a seeded sample of that many, sorted.
pub fn training_sample(positions: Vec<usize>, max: usize, seed: u64) -> Vec<usize> {
    if positions.len() <= max {
        return positions;
    }
    let share = max as f64 / positions.len() as f64;
    let (_, picked) = holdout_split(positions.len(), share, seed ^ 0x5eed_7a1e);
    picked.into_iter().map(|k| positions[k]).collect()
}

/// A seeded split of `0..n` into (training, held out) positions, both
/// sorted; the held-out share is `share` of n, rounded.
pub fn holdout_split(n: usize, share: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(seed);
    order.shuffle(&mut rng);
    let k = ((n as f64) * share).round() as usize;
    let mut held: Vec<usize> = order[..k.min(n)].to_vec();
    let mut train: Vec<usize> = order[k.min(n)..].to_vec();
    held.sort_unstable();
    train.sort_unstable();
    (train, held)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, StandardNormal};
    use rand_xoshiro::Xoshiro256Plus;

    use super::*;

    #[test]
    fn training_samples_are_capped_seeded_and_sorted() {
        let few: Vec<usize> = (0..1000).map(|i| i * 3).collect();
        assert_eq!(training_sample(few.clone(), MAX_TRAINING_CUSTOMERS, 7), few);
        let many: Vec<usize> = (0..MAX_TRAINING_CUSTOMERS * 3).map(|i| i * 2 + 1).collect();
        let a = training_sample(many.clone(), MAX_TRAINING_CUSTOMERS, 7);
        assert_eq!(a.len(), MAX_TRAINING_CUSTOMERS);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert!(a.iter().all(|p| p % 2 == 1), "only given positions");
        assert_eq!(
            a,
            training_sample(many.clone(), MAX_TRAINING_CUSTOMERS, 7),
            "same seed, same sample"
        );
        assert_ne!(
            a,
            training_sample(many, MAX_TRAINING_CUSTOMERS, 8),
            "another seed, another sample"
        );
        // spread over the whole range, not its start
        assert!(*a.last().expect("non-empty") > MAX_TRAINING_CUSTOMERS * 5);
    }

    fn table(n: usize, seed: u64) -> (FeatureTable, Vec<bool>) {
        // churn log-odds = -0.5 + 1.5·recency_z − 0.8·frequency_z; noise is
        // an irrelevant feature; csat is missing for a third of customers.
        let mut rng = Xoshiro256Plus::seed_from_u64(seed);
        let mut t = FeatureTable {
            names: vec![
                "recency_days".into(),
                "frequency".into(),
                "noise".into(),
                "avg_csat".into(),
                "constant".into(),
            ],
            values: vec![Vec::new(); 5],
            ..FeatureTable::default()
        };
        let mut y = Vec::new();
        for i in 0..n {
            let r: f64 = StandardNormal.sample(&mut rng);
            let f: f64 = StandardNormal.sample(&mut rng);
            let z: f64 = StandardNormal.sample(&mut rng);
            let logit = -0.5 + 1.5 * r - 0.8 * f;
            y.push(rng.random_bool(1.0 / (1.0 + (-logit).exp())));
            t.customer_id.push(format!("c{i:05}"));
            t.values[0].push(30.0 + 20.0 * r);
            t.values[1].push(10.0 + 4.0 * f);
            t.values[2].push(z);
            t.values[3].push(if i % 3 == 0 { f64::NAN } else { 4.0 + 0.1 * z });
            t.values[4].push(7.0);
        }
        (t, y)
    }

    #[test]
    fn recovers_standardized_coefficients_of_a_known_logit() {
        let (t, y) = table(20_000, 5);
        let rows: Vec<usize> = (0..t.customer_id.len()).collect();
        let m = ChurnModel::fit(&t, &rows, &y).expect("fit");
        let coef = |name: &str| {
            let j = m
                .standardizer
                .names
                .iter()
                .position(|n| n == name)
                .unwrap_or_else(|| panic!("{name} in design"));
            m.coefficients[j]
        };
        // Standardization with the sample sd, which is ≈ the true scale.
        assert!(
            (coef("recency_days") - 1.5).abs() < 0.1,
            "{}",
            coef("recency_days")
        );
        assert!(
            (coef("frequency") + 0.8).abs() < 0.08,
            "{}",
            coef("frequency")
        );
        assert!(coef("noise").abs() < 0.08, "{}", coef("noise"));
        assert!((m.intercept + 0.5).abs() < 0.1, "{}", m.intercept);
        assert!(
            m.standardizer
                .names
                .contains(&"avg_csat_missing".to_string())
        );
        assert!(m.standardizer.dropped.iter().any(|(n, _)| n == "constant"));
        let p = m.predict(&t, &rows);
        let auc = super::super::metrics::roc_auc(&p, &y).expect("both");
        assert!(auc > 0.75, "{auc}");
    }

    /// Differential, bit for bit: the design matrix against its column-at-a-
    /// time definition, and predictions a customer at a time against the
    /// matrix's rows, for customers in no particular order.
    #[test]
    fn predictions_equal_the_design_matrix_rows() {
        let (t, y) = table(3_000, 13);
        let rows: Vec<usize> = (0..2_000).collect();
        let m = ChurnModel::fit(&t, &rows, &y[..2_000]).expect("fit");
        let scored: Vec<usize> = (0..t.customer_id.len()).rev().step_by(3).collect();
        let x = m.standardizer.transform(&t, &scored);
        for (j, col) in m.standardizer.columns.iter().enumerate() {
            for (r, &i) in scored.iter().enumerate() {
                let want = match *col {
                    Column::Value(f, mean, sd) => {
                        let v = t.values[f][i];
                        if v.is_finite() { (v - mean) / sd } else { 0.0 }
                    }
                    Column::Missing(f) => f64::from(u8::from(!t.values[f][i].is_finite())),
                };
                assert_eq!(x[[r, j]].to_bits(), want.to_bits(), "row {r}, column {j}");
            }
        }
        let bits = |p: Vec<f64>| p.into_iter().map(f64::to_bits).collect::<Vec<u64>>();
        let want: Vec<f64> = x
            .rows()
            .into_iter()
            .map(|r| {
                let z = m.intercept
                    + r.iter()
                        .zip(&m.coefficients)
                        .map(|(v, c)| v * c)
                        .sum::<f64>();
                1.0 / (1.0 + (-z).exp())
            })
            .collect();
        assert_eq!(bits(m.predict(&t, &scored)), bits(want));
        assert!(m.standardizer.names.iter().any(|n| n.ends_with("_missing")));
    }

    #[test]
    fn the_sign_does_not_depend_on_which_outcome_is_more_frequent() {
        let (t, y) = table(4_000, 9);
        let rows: Vec<usize> = (0..t.customer_id.len()).collect();
        let flipped: Vec<bool> = y.iter().map(|v| !v).collect();
        let a = ChurnModel::fit(&t, &rows, &y).expect("fit");
        let b = ChurnModel::fit(&t, &rows, &flipped).expect("fit");
        for (ca, cb) in a.coefficients.iter().zip(&b.coefficients) {
            assert!((ca + cb).abs() < 1e-3, "{ca} vs {cb}");
        }
        let pa = a.predict(&t, &rows[..5]);
        let pb = b.predict(&t, &rows[..5]);
        for (x, z) in pa.iter().zip(&pb) {
            assert!((x + z - 1.0).abs() < 1e-3);
        }
    }

    #[test]
    fn one_outcome_only_is_refused() {
        let (t, _) = table(50, 1);
        let rows: Vec<usize> = (0..50).collect();
        let err = ChurnModel::fit(&t, &rows, &[false; 50]).expect_err("one class");
        assert!(err.to_string().contains("both outcomes"), "{err}");
    }

    #[test]
    fn split_is_seeded_and_complete() {
        let (a_train, a_held) = holdout_split(1000, 0.3, 42);
        let (b_train, b_held) = holdout_split(1000, 0.3, 42);
        assert_eq!((a_train.clone(), a_held.clone()), (b_train, b_held));
        assert_eq!(a_held.len(), 300);
        let mut all: Vec<usize> = a_train.iter().chain(&a_held).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_ne!(holdout_split(1000, 0.3, 43).1, a_held);
    }

    #[test]
    fn feature_table_takes_numeric_columns_only() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("frequency", DataType::Int64, false),
            Field::new("channel", DataType::Utf8, true),
            Field::new("avg_csat", DataType::Float64, true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
                Arc::new(Int64Array::from(vec![3, 0])),
                Arc::new(StringArray::from(vec![Some("x"), None])),
                Arc::new(Float64Array::from(vec![Some(4.5), None])),
            ],
        )
        .expect("batch");
        let t = FeatureTable::from_batches(&[b]).expect("table");
        assert_eq!(t.names, vec!["frequency", "avg_csat"]);
        assert_eq!(t.values[0], vec![3.0, 0.0]);
        assert!(t.values[1][1].is_nan());
        assert_eq!(t.position("b"), Some(1));
        let sorted = ["a", "aa", "b", "c", "d"].map(String::from);
        let unsorted = ["d", "b", "zz", "a"].map(String::from);
        for ids in [&sorted[..], &unsorted[..], &[][..]] {
            let want: Vec<Option<usize>> = ids.iter().map(|id| t.position(id)).collect();
            assert_eq!(t.positions(ids), want, "{ids:?}");
        }
        assert_eq!(t.feature("frequency"), Some(&[3.0, 0.0][..]));
    }
}
