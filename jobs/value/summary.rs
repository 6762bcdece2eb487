//! Per-customer purchase summary for the lifetime-value models: x (repeat
//! purchases), t_x (time of the last purchase), T (age) and the mean value of
//! the repeat purchases, all from the first purchase, plus repeat purchases
//! after the calibration end when there is a holdout.
//!
//! The heavy part (grouping millions of orders by customer and day) is
//! `summary.sql` on DataFusion; this module turns its per-customer
//! aggregates into the models' units.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int64Array, RecordBatch,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const SUMMARY_SQL: &str = include_str!("summary.sql");

/// The unit t_x, T and α are measured in. Predictions (expected purchases
/// over 90 or 365 days, P(alive), CLTV) do not depend on it; the fitted α
/// does (it scales with the unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    Days,
    Weeks,
}

impl TimeUnit {
    /// Days per unit.
    pub fn days(self) -> f64 {
        match self {
            TimeUnit::Days => 1.0,
            TimeUnit::Weeks => 7.0,
        }
    }

    /// "days" or "weeks".
    pub fn name(self) -> &'static str {
        match self {
            TimeUnit::Days => "days",
            TimeUnit::Weeks => "weeks",
        }
    }

    /// Parses "days" or "weeks".
    pub fn parse(s: &str) -> Option<TimeUnit> {
        match s {
            "days" => Some(TimeUnit::Days),
            "weeks" => Some(TimeUnit::Weeks),
            _ => None,
        }
    }
}

/// Days since 1970-01-01 (Arrow's Date32).
pub fn epoch_day(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - 719_163
}

/// The date of an Arrow Date32 value.
pub fn from_epoch_day(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days + 719_163).unwrap_or(NaiveDate::MIN)
}

/// Per-customer summaries, column-wise, sorted by customer id.
#[derive(Debug, Clone, Default)]
pub struct Summaries {
    pub customer_id: Vec<String>,
    /// First purchase day (days since 1970-01-01).
    pub first_day: Vec<i32>,
    /// Repeat purchase days up to the calibration end.
    pub x: Vec<u32>,
    /// Last purchase minus first purchase, in the time unit.
    pub t_x: Vec<f64>,
    /// Calibration end minus first purchase, in the time unit.
    pub t: Vec<f64>,
    /// Mean value of the repeat purchase days; `None` when x = 0.
    pub monetary: Vec<Option<f64>>,
    /// Purchase days after the calibration end up to the holdout end.
    pub holdout_x: Vec<u32>,
}

impl Summaries {
    /// Number of customers.
    pub fn len(&self) -> usize {
        self.customer_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.customer_id.is_empty()
    }

    fn push(&mut self, id: &str, agg: &Aggregate, end: i32, unit: TimeUnit) -> Result<()> {
        let row = self.customer_id.len();
        let bad = move |why: &str| {
            Error::Internal(format!(
                "summary.sql returned an inconsistent row ({why}) for customer #{row}"
            ))
        };
        if agg.purchase_days < 1 || agg.last_day < agg.first_day || agg.last_day > end {
            return Err(bad("day order"));
        }
        let x = u32::try_from(agg.purchase_days - 1).map_err(|_| bad("purchase count"))?;
        self.customer_id.push(id.to_string());
        self.first_day.push(agg.first_day);
        self.x.push(x);
        self.t_x
            .push(f64::from(agg.last_day - agg.first_day) / unit.days());
        self.t.push(f64::from(end - agg.first_day) / unit.days());
        self.monetary
            .push((x > 0).then(|| (agg.amount - agg.first_day_amount) / f64::from(x)));
        self.holdout_x
            .push(u32::try_from(agg.holdout_days).map_err(|_| bad("holdout count"))?);
        Ok(())
    }
}

struct Aggregate {
    first_day: i32,
    last_day: i32,
    purchase_days: i64,
    amount: f64,
    first_day_amount: f64,
    holdout_days: i64,
}

/// Summarizes `purchases(customer_id, order_date DATE, amount DOUBLE)`,
/// which must be registered in `session`, for a calibration period ending
/// on `calibration_end` (inclusive) and a holdout ending on `holdout_end`
/// (inclusive; equal to `calibration_end` for none).
pub async fn load(
    session: &SessionContext,
    calibration_end: NaiveDate,
    holdout_end: NaiveDate,
    unit: TimeUnit,
) -> Result<Summaries> {
    if holdout_end < calibration_end {
        return Err(Error::Config(format!(
            "the holdout end {holdout_end} is before the calibration end {calibration_end}"
        )));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("calibration_end", DataType::Date32, false),
        Field::new("holdout_end", DataType::Date32, false),
    ]));
    let window = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Date32Array::from(vec![epoch_day(calibration_end)])) as ArrayRef,
            Arc::new(Date32Array::from(vec![epoch_day(holdout_end)])),
        ],
    )?;
    session.deregister_table("value_window")?;
    session.register_table(
        "value_window",
        Arc::new(MemTable::try_new(schema, vec![vec![window]])?),
    )?;
    let batches = session.sql(SUMMARY_SQL).await?.collect().await?;
    let end = epoch_day(calibration_end);
    let mut out = Summaries::default();
    for b in &batches {
        let ids = string_column(b, "customer_id")?;
        let first = date_column(b, "first_day")?;
        let last = date_column(b, "last_day")?;
        let days = int_column(b, "purchase_days")?;
        let amount = float_column(b, "amount")?;
        let first_amount = float_column(b, "first_day_amount")?;
        let holdout = int_column(b, "holdout_days")?;
        for i in 0..b.num_rows() {
            if ids.is_null(i) {
                // Orders without a customer carry no history to model.
                continue;
            }
            let agg = Aggregate {
                first_day: first.value(i),
                last_day: last.value(i),
                purchase_days: days.value(i),
                amount: if amount.is_null(i) {
                    0.0
                } else {
                    amount.value(i)
                },
                first_day_amount: if first_amount.is_null(i) {
                    0.0
                } else {
                    first_amount.value(i)
                },
                holdout_days: holdout.value(i),
            };
            out.push(ids.value(i), &agg, end, unit)?;
        }
    }
    Ok(out)
}

/// A column as strings (any string type).
pub fn string_column(b: &RecordBatch, name: &str) -> Result<datafusion::arrow::array::StringArray> {
    let col = column(b, name)?;
    Ok(cast(col, &DataType::Utf8)?.as_string::<i32>().clone())
}

/// A column as Date32.
pub fn date_column(b: &RecordBatch, name: &str) -> Result<Date32Array> {
    let col = column(b, name)?;
    Ok(cast(col, &DataType::Date32)?
        .as_primitive::<Date32Type>()
        .clone())
}

/// A column as Int64.
pub fn int_column(b: &RecordBatch, name: &str) -> Result<Int64Array> {
    let col = column(b, name)?;
    Ok(cast(col, &DataType::Int64)?
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
        .clone())
}

/// A column as Float64.
pub fn float_column(b: &RecordBatch, name: &str) -> Result<Float64Array> {
    let col = column(b, name)?;
    Ok(cast(col, &DataType::Float64)?
        .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
        .clone())
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    b.column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("query result has no column `{name}`")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use datafusion::arrow::array::StringArray;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256Plus;

    use super::*;

    /// The plain definition, one customer at a time: combine days, drop the
    /// first, count and average the rest.
    fn reference(
        rows: &[(String, i32, f64)],
        end: i32,
        holdout_end: i32,
        unit: TimeUnit,
    ) -> BTreeMap<String, (u32, f64, f64, Option<f64>, u32)> {
        let mut days: BTreeMap<String, BTreeMap<i32, f64>> = BTreeMap::new();
        for (c, d, a) in rows {
            if *d <= holdout_end {
                *days.entry(c.clone()).or_default().entry(*d).or_default() += a;
            }
        }
        let mut out = BTreeMap::new();
        for (c, per_day) in days {
            let cal: Vec<(i32, f64)> = per_day
                .iter()
                .filter(|(d, _)| **d <= end)
                .map(|(d, a)| (*d, *a))
                .collect();
            let Some(&(first, _)) = cal.first() else {
                continue;
            };
            let last = cal.last().expect("non-empty").0;
            let x = (cal.len() - 1) as u32;
            let monetary =
                (x > 0).then(|| cal[1..].iter().map(|(_, a)| a).sum::<f64>() / f64::from(x));
            let holdout = per_day.keys().filter(|d| **d > end).count() as u32;
            out.insert(
                c,
                (
                    x,
                    f64::from(last - first) / unit.days(),
                    f64::from(end - first) / unit.days(),
                    monetary,
                    holdout,
                ),
            );
        }
        out
    }

    #[tokio::test]
    async fn sql_summary_equals_the_plain_definition_on_random_orders() {
        let mut rng = Xoshiro256Plus::seed_from_u64(11);
        let start = epoch_day(NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"));
        let mut rows = Vec::new();
        for c in 0..300 {
            let n = rng.random_range(1..12);
            let first = start + rng.random_range(0..200);
            for _ in 0..n {
                // Same-day repeats are common on purpose.
                let d = first + rng.random_range(0..6) * rng.random_range(0..40);
                let amount = f64::from(rng.random_range(100..5000u32)) / 100.0;
                rows.push((format!("c{c:04}"), d, amount));
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("order_date", DataType::Date32, false),
            Field::new("amount", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.0.as_str()),
                )) as ArrayRef,
                Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .expect("batch");
        let session = SessionContext::new();
        session
            .register_table(
                "purchases",
                Arc::new(MemTable::try_new(schema, vec![vec![batch]]).expect("table")),
            )
            .expect("register");
        for (unit, end_offset, holdout) in [
            (TimeUnit::Days, 150, 0),
            (TimeUnit::Weeks, 120, 60),
            (TimeUnit::Days, 400, 0),
        ] {
            let end = from_epoch_day(start + end_offset);
            let hend = from_epoch_day(start + end_offset + holdout);
            let got = load(&session, end, hend, unit).await.expect("summary");
            let want = reference(&rows, epoch_day(end), epoch_day(hend), unit);
            assert_eq!(got.len(), want.len(), "customers");
            let mut sorted = got.customer_id.clone();
            sorted.sort();
            assert_eq!(sorted, got.customer_id, "sorted by customer");
            for (i, id) in got.customer_id.iter().enumerate() {
                let (x, t_x, t, m, h) = want[id];
                assert_eq!(got.x[i], x, "{id} x");
                assert_eq!(got.t_x[i], t_x, "{id} t_x");
                assert_eq!(got.t[i], t, "{id} T");
                assert_eq!(got.holdout_x[i], h, "{id} holdout");
                match (got.monetary[i], m) {
                    (None, None) => {}
                    (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{id} {a} {b}"),
                    other => panic!("{id}: monetary {other:?}"),
                }
            }
        }
    }

    #[test]
    fn epoch_days_round_trip() {
        let d = NaiveDate::from_ymd_opt(1997, 9, 30).expect("date");
        assert_eq!(
            epoch_day(NaiveDate::from_ymd_opt(1970, 1, 1).expect("date")),
            0
        );
        assert_eq!(from_epoch_day(epoch_day(d)), d);
        assert_eq!(TimeUnit::parse("weeks"), Some(TimeUnit::Weeks));
        assert_eq!(TimeUnit::parse("months"), None);
    }
}
