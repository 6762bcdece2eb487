//! A decision table in memory: who (group columns), what was decided
//! (outcome columns, optionally a classifier's label, prediction and
//! score), and for whom (an optional subject id, so a group's size counts
//! people, not rows).
//!
//! Columns are converted once from Arrow into compact codes (strings
//! become dictionary codes, booleans 0/1, numbers f64 with NaN for
//! missing), which is what the metrics loop over.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;

use crate::{Error, Result};

/// Code of a missing value in [`Codes`].
pub const MISSING: u32 = u32::MAX;
/// A missing binary value.
pub const NO_VALUE: u8 = 2;

/// A string column as dictionary codes; `labels` are sorted, so codes sort
/// like the labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Codes {
    pub labels: Vec<String>,
    /// One per row; [`MISSING`] for NULL.
    pub codes: Vec<u32>,
}

impl Codes {
    /// Encodes optional strings.
    pub fn encode<S: AsRef<str>>(values: &[Option<S>]) -> Codes {
        Codes::encode_iter(values.iter().map(|v| v.as_ref().map(AsRef::as_ref)))
    }

    /// Encodes optional strings without copying them: distinct values are
    /// numbered as first seen, then renumbered in sorted order, so the codes
    /// are the labels' ranks. Copying and sorting every row's string took
    /// most of the fairness job's input time at a million customers.
    pub fn encode_iter<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Codes {
        let mut index: HashMap<&'a str, u32, foldhash::fast::RandomState> = HashMap::default();
        let mut seen: Vec<&'a str> = Vec::new();
        let provisional: Vec<u32> = values
            .map(|v| match v {
                None => MISSING,
                Some(s) => *index.entry(s).or_insert_with(|| {
                    seen.push(s);
                    (seen.len() - 1) as u32
                }),
            })
            .collect();
        let mut order: Vec<u32> = (0..seen.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| seen[a as usize].cmp(seen[b as usize]));
        let mut rank = vec![0u32; seen.len()];
        for (r, &p) in order.iter().enumerate() {
            rank[p as usize] = r as u32;
        }
        Codes {
            labels: order
                .iter()
                .map(|&p| seen[p as usize].to_string())
                .collect(),
            codes: provisional
                .into_iter()
                .map(|c| {
                    if c == MISSING {
                        MISSING
                    } else {
                        rank[c as usize]
                    }
                })
                .collect(),
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
}

/// The values of one outcome column.
#[derive(Debug, Clone, PartialEq)]
pub enum OutcomeValues {
    /// 0 or 1 per row, [`NO_VALUE`] when missing: a rate.
    Binary(Vec<u8>),
    /// A number per row, NaN when missing: means and quantiles.
    Continuous(Vec<f64>),
    /// A category per row: the share of each category is a rate.
    Categorical(Codes),
}

/// Which statistics describe a continuous outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    Mean,
    /// The q-quantile (0.5 = median).
    Quantile(f64),
}

impl Stat {
    /// The metric name: `mean`, `median`, `p90`, `p25`.
    pub fn name(&self) -> String {
        match self {
            Stat::Mean => "mean".into(),
            Stat::Quantile(q) if (*q - 0.5).abs() < 1e-12 => "median".into(),
            Stat::Quantile(q) => format!("p{}", (q * 100.0).round()),
        }
    }

    /// In words: "mean", "median", "90th percentile".
    pub fn words(&self) -> String {
        match self {
            Stat::Mean => "mean".into(),
            Stat::Quantile(q) if (*q - 0.5).abs() < 1e-12 => "median".into(),
            Stat::Quantile(q) => format!("{}th percentile", (q * 100.0).round()),
        }
    }
}

/// How a continuous outcome is compared with the reference group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// A positive quantity (times, discounts): ratio to the reference,
    /// Mann-Whitney U test.
    Ratio,
    /// A signed gap around zero (calibration error, sentiment at the same
    /// rating): difference from the reference, Welch's t-test.
    Difference,
}

/// Whether more of an outcome is good, bad or neither for the people it
/// describes; it changes only the wording of explanations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    HigherIsBetter,
    HigherIsWorse,
    Neutral,
}

/// Plain-language pieces for explanations.
#[derive(Debug, Clone, PartialEq)]
pub struct Wording {
    /// For rates: what the group does, after the group's name, in the
    /// present tense ("are sent to the chat bot"). `{category}` is replaced
    /// by the category for categorical outcomes.
    pub rate_verb: String,
    /// For continuous outcomes: what is measured ("first-response time").
    pub measure: String,
    /// Unit after a continuous value ("hours", "%", ""), for explanations.
    pub unit: String,
    /// For categorical outcomes: a verb phrase per category, overriding
    /// `rate_verb` (("bot", "are sent to the chat bot")).
    pub category_verbs: Vec<(String, String)>,
}

impl Wording {
    /// Generic wording from a column name.
    pub fn generic(column: &str) -> Wording {
        Wording {
            rate_verb: format!("have {column} = {{category}}"),
            measure: format!("the mix of {column}"),
            unit: String::new(),
            category_verbs: Vec::new(),
        }
    }

    /// The verb phrase of a category.
    pub fn verb_for(&self, category: &str) -> String {
        self.category_verbs
            .iter()
            .find(|(c, _)| c == category)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| self.rate_verb.replace("{category}", category))
    }
}

/// One outcome of a decision table.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub name: String,
    pub values: OutcomeValues,
    /// Statistics of a continuous outcome (ignored for rates).
    pub stats: Vec<Stat>,
    pub comparison: Comparison,
    pub direction: Direction,
    pub wording: Wording,
}

impl Outcome {
    /// A binary outcome.
    pub fn binary(name: &str, values: Vec<u8>, direction: Direction, rate_verb: &str) -> Outcome {
        Outcome {
            name: name.to_string(),
            values: OutcomeValues::Binary(values),
            stats: Vec::new(),
            comparison: Comparison::Ratio,
            direction,
            wording: Wording {
                rate_verb: rate_verb.to_string(),
                ..Wording::generic(name)
            },
        }
    }

    /// A categorical outcome; `rate_verb` may contain `{category}`.
    pub fn categorical(name: &str, values: Codes, rate_verb: &str) -> Outcome {
        Outcome {
            name: name.to_string(),
            values: OutcomeValues::Categorical(values),
            stats: Vec::new(),
            comparison: Comparison::Ratio,
            direction: Direction::Neutral,
            wording: Wording {
                rate_verb: rate_verb.to_string(),
                ..Wording::generic(name)
            },
        }
    }

    /// A continuous outcome.
    pub fn continuous(
        name: &str,
        values: Vec<f64>,
        stats: Vec<Stat>,
        comparison: Comparison,
        direction: Direction,
        measure: &str,
        unit: &str,
    ) -> Outcome {
        Outcome {
            name: name.to_string(),
            values: OutcomeValues::Continuous(values),
            stats,
            comparison,
            direction,
            wording: Wording {
                measure: measure.to_string(),
                unit: unit.to_string(),
                ..Wording::generic(name)
            },
        }
    }
}

/// A binary classifier's decisions with the truth where it is known.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    /// The outcome name in the output (the prediction column, `at_risk`).
    pub name: String,
    /// Being predicted positive, as an adjective phrase ("flagged at risk").
    pub flagged: String,
    /// A positive label as a past-tense verb phrase ("churned").
    pub positive: String,
    /// A negative label as a verb phrase ("did not churn").
    pub negative: String,
    /// The positive event in the present ("churn"), for the score's wording.
    pub positive_plain: String,
    /// Whether being predicted positive is good or bad for people (wording only).
    pub direction: Direction,
    /// The true outcome, 0/1 ([`NO_VALUE`] when unknown).
    pub label: Vec<u8>,
    /// The decision, 0/1 ([`NO_VALUE`] when missing).
    pub prediction: Vec<u8>,
    /// The predicted probability, when there is one (NaN when missing).
    pub score: Option<Vec<f64>>,
}

impl Classifier {
    /// The churn model's `at_risk` flag against whether the customer churned,
    /// in the words the audit's sentences use.
    pub fn churn(label: Vec<u8>, prediction: Vec<u8>, score: Option<Vec<f64>>) -> Classifier {
        Classifier {
            name: "at_risk".into(),
            flagged: "flagged at risk".into(),
            positive: "churned".into(),
            negative: "did not churn".into(),
            positive_plain: "churn".into(),
            direction: Direction::Neutral,
            label,
            prediction,
            score,
        }
    }
}

/// Everything the engine audits about one kind of decision.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionTable {
    /// Name in the output's `decision` column (`service`, `offers`, …).
    pub name: String,
    pub rows: usize,
    /// A code per row for the person the row is about (tickets of the same
    /// customer share one); group sizes count distinct subjects. `None`:
    /// every row is its own subject.
    pub subjects: Option<Vec<u32>>,
    /// The group columns (sensitive attributes, segment), by name.
    pub groups: Vec<(String, Codes)>,
    pub outcomes: Vec<Outcome>,
    pub classifier: Option<Classifier>,
}

impl DecisionTable {
    /// Checks that every column has one value per row.
    pub fn check(&self) -> Result<()> {
        let bad = |what: &str, len: usize| {
            Err(Error::Internal(format!(
                "decision table {}: {what} has {len} values for {} rows",
                self.name, self.rows
            )))
        };
        if let Some(s) = &self.subjects
            && s.len() != self.rows
        {
            return bad("the subject column", s.len());
        }
        for (g, c) in &self.groups {
            if c.len() != self.rows {
                return bad(g, c.len());
            }
        }
        for o in &self.outcomes {
            let len = match &o.values {
                OutcomeValues::Binary(v) => v.len(),
                OutcomeValues::Continuous(v) => v.len(),
                OutcomeValues::Categorical(c) => c.len(),
            };
            if len != self.rows {
                return bad(&o.name, len);
            }
        }
        if let Some(c) = &self.classifier {
            let score_len = c.score.as_ref().map_or(self.rows, Vec::len);
            if c.label.len() != self.rows
                || c.prediction.len() != self.rows
                || score_len != self.rows
            {
                return bad("the classifier", c.label.len());
            }
        }
        Ok(())
    }
}

impl DecisionTable {
    /// The table with its rows in subject order (stable), so each person's
    /// rows are adjacent; `None` when there are no subjects or they are
    /// already in order.
    pub fn sorted_by_subject(&self) -> Option<DecisionTable> {
        let subjects = self.subjects.as_ref()?;
        if subjects.windows(2).all(|w| w[0] <= w[1]) {
            return None;
        }
        let mut perm: Vec<usize> = (0..self.rows).collect();
        perm.sort_by_key(|&r| subjects[r]);
        fn take<T: Copy>(v: &[T], perm: &[usize]) -> Vec<T> {
            perm.iter().map(|&r| v[r]).collect()
        }
        let codes = |c: &Codes| Codes {
            labels: c.labels.clone(),
            codes: take(&c.codes, &perm),
        };
        Some(DecisionTable {
            name: self.name.clone(),
            rows: self.rows,
            subjects: Some(take(subjects, &perm)),
            groups: self
                .groups
                .iter()
                .map(|(n, c)| (n.clone(), codes(c)))
                .collect(),
            outcomes: self
                .outcomes
                .iter()
                .map(|o| Outcome {
                    values: match &o.values {
                        OutcomeValues::Binary(v) => OutcomeValues::Binary(take(v, &perm)),
                        OutcomeValues::Continuous(v) => OutcomeValues::Continuous(take(v, &perm)),
                        OutcomeValues::Categorical(c) => OutcomeValues::Categorical(codes(c)),
                    },
                    ..o.clone()
                })
                .collect(),
            classifier: self.classifier.as_ref().map(|c| Classifier {
                label: take(&c.label, &perm),
                prediction: take(&c.prediction, &perm),
                score: c.score.as_ref().map(|s| take(s, &perm)),
                ..c.clone()
            }),
        })
    }
}

/// Columns of a set of batches, concatenated, by name.
pub struct Columns<'a> {
    batches: &'a [RecordBatch],
    /// What the batches are, for error messages.
    source: String,
}

impl<'a> Columns<'a> {
    /// Wraps batches that share one schema.
    pub fn new(batches: &'a [RecordBatch], source: &str) -> Columns<'a> {
        Columns {
            batches,
            source: source.to_string(),
        }
    }

    /// Total rows.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The data type of a column, or an error naming the columns there are.
    pub fn data_type(&self, column: &str) -> Result<DataType> {
        match self.batches.first() {
            None => Ok(DataType::Null),
            Some(b) => b
                .schema()
                .field_with_name(column)
                .map(|f| f.data_type().clone())
                .map_err(|_| self.missing(column)),
        }
    }

    fn missing(&self, column: &str) -> Error {
        let names: Vec<String> = self
            .batches
            .first()
            .map(|b| {
                b.schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect()
            })
            .unwrap_or_default();
        Error::Input {
            file: self.source.clone(),
            reason: format!("no column `{column}` (columns: {})", names.join(", ")),
        }
    }

    fn arrays(&self, column: &str, to: &DataType) -> Result<Vec<ArrayRef>> {
        self.batches
            .iter()
            .map(|b| {
                let a = b
                    .column_by_name(column)
                    .ok_or_else(|| self.missing(column))?;
                cast(a, to).map_err(|e| Error::Input {
                    file: self.source.clone(),
                    reason: format!("column `{column}`: {e}"),
                })
            })
            .collect()
    }

    /// A column as optional strings (any type is cast to text).
    pub fn strings(&self, column: &str) -> Result<Vec<Option<String>>> {
        let mut out = Vec::with_capacity(self.rows());
        for a in self.arrays(column, &DataType::Utf8)? {
            let s = a.as_string::<i32>();
            out.extend((0..s.len()).map(|i| s.is_valid(i).then(|| s.value(i).to_string())));
        }
        Ok(out)
    }

    /// A string column as codes (any type is cast to text).
    pub fn codes(&self, column: &str) -> Result<Codes> {
        let arrays = self.arrays(column, &DataType::Utf8)?;
        Ok(Codes::encode_iter(arrays.iter().flat_map(|a| {
            let s = a.as_string::<i32>();
            (0..s.len()).map(move |i| s.is_valid(i).then(|| s.value(i)))
        })))
    }

    /// A column of numbers that are never empty (the decision queries'
    /// `customer_row`), as u32.
    pub fn numbers(&self, column: &str) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(self.rows());
        for a in self.arrays(column, &DataType::UInt32)? {
            if a.null_count() > 0 {
                return Err(Error::Input {
                    file: self.source.clone(),
                    reason: format!("column `{column}` has empty values"),
                });
            }
            out.extend_from_slice(
                a.as_primitive::<datafusion::arrow::datatypes::UInt32Type>()
                    .values(),
            );
        }
        Ok(out)
    }

    /// A numeric column as f64 (NaN for NULL).
    pub fn floats(&self, column: &str) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(self.rows());
        for a in self.arrays(column, &DataType::Float64)? {
            let f = a.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
            out.extend((0..f.len()).map(|i| if f.is_valid(i) { f.value(i) } else { f64::NAN }));
        }
        Ok(out)
    }

    /// A boolean or 0/1 column as 0/1 ([`NO_VALUE`] for NULL). Refuses other
    /// numbers, so a score is never mistaken for a decision.
    pub fn binary(&self, column: &str) -> Result<Vec<u8>> {
        let ty = self.data_type(column)?;
        if ty == DataType::Boolean {
            let mut out = Vec::with_capacity(self.rows());
            for a in self.arrays(column, &DataType::Boolean)? {
                let b = a.as_boolean();
                out.extend((0..b.len()).map(|i| {
                    if b.is_valid(i) {
                        u8::from(b.value(i))
                    } else {
                        NO_VALUE
                    }
                }));
            }
            return Ok(out);
        }
        let floats = self.floats(column)?;
        floats
            .iter()
            .map(|&v| match v {
                v if v.is_nan() => Ok(NO_VALUE),
                0.0 => Ok(0),
                1.0 => Ok(1),
                _ => Err(Error::Input {
                    file: self.source.clone(),
                    reason: format!(
                        "column `{column}` must be boolean or 0/1 for a label or prediction"
                    ),
                }),
            })
            .collect()
    }

    /// Whether a column is binary (boolean, or numbers that are all 0 or 1).
    pub fn is_binary(&self, column: &str) -> Result<bool> {
        let ty = self.data_type(column)?;
        if ty == DataType::Boolean {
            return Ok(true);
        }
        if !ty.is_numeric() {
            return Ok(false);
        }
        Ok(self
            .floats(column)?
            .iter()
            .all(|&v| v.is_nan() || v == 0.0 || v == 1.0))
    }

    /// Subject codes of an id column (distinct ids get distinct codes).
    pub fn subjects(&self, column: &str) -> Result<Vec<u32>> {
        let codes = self.codes(column)?;
        let missing = codes.labels.len() as u32;
        // Rows without an id are each their own (unknown) subject: give
        // them fresh codes so they never merge into one person.
        let mut next = missing;
        Ok(codes
            .codes
            .into_iter()
            .map(|c| {
                if c == MISSING {
                    next += 1;
                    next
                } else {
                    c
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: the labels sorted and de-duplicated, each row coded by
    /// its label's position (what `encode` did by copying every row).
    #[test]
    fn codes_are_the_ranks_of_the_sorted_labels() {
        let words = ["pear", "apple", "fig", "apple", "", "Zed", "fig"];
        let values: Vec<Option<&str>> = (0..500)
            .map(|i| (i % 9 != 4).then(|| words[(i * 5 + i / 7) % words.len()]))
            .collect();
        let mut labels: Vec<String> = values.iter().flatten().map(|s| s.to_string()).collect();
        labels.sort();
        labels.dedup();
        let codes: Vec<u32> = values
            .iter()
            .map(|v| {
                v.map_or(MISSING, |s| {
                    labels.iter().position(|l| l == s).unwrap() as u32
                })
            })
            .collect();
        let got = Codes::encode(&values);
        assert_eq!(got.labels, labels);
        assert_eq!(got.codes, codes);
        assert!(got.codes.contains(&MISSING));
    }
    use std::sync::Arc;

    use datafusion::arrow::array::{BooleanArray, Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("i", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("b"),
                    None,
                    Some("a"),
                    Some("b"),
                ])),
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    Some(false),
                    None,
                    Some(true),
                ])),
                Arc::new(Int64Array::from(vec![Some(0), Some(1), None, Some(1)])),
                Arc::new(Float64Array::from(vec![
                    Some(0.5),
                    None,
                    Some(2.0),
                    Some(1.0),
                ])),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn columns_convert_with_missing_values() {
        let b = [batch(), batch()];
        let c = Columns::new(&b, "t");
        assert_eq!(c.rows(), 8);
        let g = c.codes("g").expect("g");
        assert_eq!(g.labels, vec!["a", "b"]);
        assert_eq!(&g.codes[..4], &[1, MISSING, 0, 1]);
        assert_eq!(&c.binary("b").expect("b")[..4], &[1, 0, NO_VALUE, 1]);
        assert_eq!(&c.binary("i").expect("i")[..4], &[0, 1, NO_VALUE, 1]);
        assert!(c.is_binary("i").expect("i"));
        assert!(!c.is_binary("x").expect("x"));
        assert!(c.binary("x").is_err(), "0.5 is not a decision");
        let x = c.floats("x").expect("x");
        assert!(x[1].is_nan() && x[2] == 2.0);
        let err = c.codes("nope").expect_err("missing").to_string();
        assert!(
            err.contains("nope") && err.contains("columns: g, b, i, x"),
            "{err}"
        );
        let s = c.subjects("g").expect("subjects");
        assert_eq!(s[0], s[3]);
        assert_ne!(s[1], s[5], "rows without an id are distinct subjects");
    }

    #[test]
    fn sorting_by_subject_keeps_rows_whole() {
        let t = DecisionTable {
            name: "t".into(),
            rows: 4,
            subjects: Some(vec![3, 1, 3, 0]),
            groups: vec![(
                "g".into(),
                Codes::encode(&[Some("a"), Some("b"), Some("c"), Some("d")]),
            )],
            outcomes: vec![Outcome::binary(
                "o",
                vec![1, 0, 2, 1],
                Direction::Neutral,
                "do",
            )],
            classifier: None,
        };
        let s = t.sorted_by_subject().expect("unsorted");
        assert_eq!(s.subjects, Some(vec![0, 1, 3, 3]));
        assert_eq!(s.groups[0].1.codes, vec![3, 1, 0, 2], "d b a c");
        assert_eq!(
            s.outcomes[0].values,
            OutcomeValues::Binary(vec![1, 0, 1, 2])
        );
        assert!(s.sorted_by_subject().is_none());
    }

    #[test]
    fn stat_names() {
        assert_eq!(Stat::Quantile(0.5).name(), "median");
        assert_eq!(Stat::Quantile(0.9).name(), "p90");
        assert_eq!(Stat::Mean.name(), "mean");
        assert_eq!(Stat::Quantile(0.9).words(), "90th percentile");
    }
}
