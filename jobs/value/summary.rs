//! Per-customer purchase summary for the lifetime-value models: x (repeat
//! purchases), t_x (time of the last purchase), T (age) and the mean value of
//! the repeat purchases, all from the first purchase, plus repeat purchases
//! after the calibration end when there is a holdout.
//!
//! `purchase_days.sql` streams every purchase up to the holdout end; this
//! module folds them per customer into the models' units, keeping each
//! customer's purchase days for the churn labels. A purchase without an
//! amount (the value job's orders in another currency than the one
//! modelled) is a purchase day all the same, but no value: a repeat day
//! enters the mean value only when one of its orders has an amount.

use std::cmp::Ordering;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Decimal128Type};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::customer_index::{AHEAD, CustomerIndex, Key, prefetch};
use crate::{Error, Result};

const PURCHASE_DAYS_SQL: &str = include_str!("purchase_days.sql");

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

pub use crate::utc_dates::{epoch_day, from_epoch_day};

/// Per-customer summaries, column-wise, sorted by customer id.
#[derive(Debug, Clone, Default, PartialEq)]
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
    /// Repeat purchase days up to the calibration end with a value (at
    /// least one order with an amount): Gamma-Gamma's x. Equals `x` when
    /// every order has an amount.
    pub valued_x: Vec<u32>,
    /// Mean value of those days; `None` when `valued_x` = 0.
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
}

/// Decimal places of the DECIMAL(38, 6) day sums.
const AMOUNT_SCALE: f64 = 1e6;

/// A purchase day as the fold keeps it: twice the day, plus one when the
/// purchase has no amount. Sorted, a day's valued entry comes before its
/// unvalued one, so keeping the first entry of each day keeps whether any
/// of its orders had a value, at no cost in memory. (chrono's dates end in
/// year 262,143, 9.6e7 days from 1970: twice that fits an i32.)
fn tag(day: i32, valued: bool) -> i32 {
    day * 2 + i32::from(!valued)
}

/// The day of a [`tag`]ged purchase day.
pub(super) fn day_of(tagged: i32) -> i32 {
    tagged >> 1
}

/// Whether a [`tag`]ged purchase day has a value.
fn is_valued(tagged: i32) -> bool {
    tagged & 1 == 0
}

/// What the fold keeps per customer besides its purchase days:
/// order-independent, so purchases may arrive in any order. Amounts stay
/// exact integers (millionths); a purchase without one adds 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Totals {
    /// Every order on `first_day`, summed.
    pub(super) first_amount: i128,
    pub(super) calibration_amount: i128,
    pub(super) first_day: i32,
}

impl Totals {
    const EMPTY: Totals = Totals {
        first_amount: 0,
        calibration_amount: 0,
        first_day: i32::MAX,
    };

    /// The totals of one purchase.
    fn of(day: i32, amount: i128, end: i32) -> Totals {
        Totals {
            first_amount: amount,
            calibration_amount: if day <= end { amount } else { 0 },
            first_day: day,
        }
    }

    /// Adds other totals of the same customer (one purchase, or another
    /// partition's).
    fn merge(&mut self, other: Totals) {
        if other.first_day < self.first_day {
            self.first_day = other.first_day;
            self.first_amount = other.first_amount;
        } else if other.first_day == self.first_day {
            self.first_amount += other.first_amount;
        }
        self.calibration_amount += other.calibration_amount;
    }
}

/// The fold of one stream of purchases. Purchase days go to one list of
/// (customer, day) in arrival order and are grouped per customer once, at
/// the end: a growing list per customer cost a cache miss and now and then
/// a reallocation on every one of tens of millions of rows.
#[derive(Default)]
struct Partial {
    index: CustomerIndex,
    /// By customer number.
    totals: Vec<Totals>,
    /// (customer number, [`tag`]ged day) of every purchase up to the
    /// holdout end.
    purchases: Vec<(u32, i32)>,
}

/// A row without a customer or a day.
const SKIP: u32 = u32::MAX;

impl Partial {
    /// Folds one batch in two passes, each asking for the memory of the row
    /// `AHEAD` rows on: first the customers' numbers, then their totals.
    fn add_batch(
        &mut self,
        ids: &datafusion::arrow::array::StringArray,
        days: &Date32Array,
        amounts: &datafusion::arrow::array::Decimal128Array,
        end: i32,
    ) {
        let n = ids.len();
        let hex: Vec<Option<u128>> = (0..n)
            .map(|i| {
                if ids.is_null(i) {
                    None
                } else {
                    Key::hex(ids.value(i))
                }
            })
            .collect();
        let mut numbers = Vec::with_capacity(n);
        for i in 0..n {
            if let Some(Some(v)) = hex.get(i + AHEAD) {
                self.index.prefetch(*v);
            }
            if ids.is_null(i) || days.is_null(i) {
                numbers.push(SKIP);
                continue;
            }
            let k = match hex[i] {
                Some(v) => self.index.number_hex(v),
                None => self.index.number(ids.value(i)),
            };
            if k as usize == self.totals.len() {
                self.totals.push(Totals::EMPTY);
            }
            numbers.push(k);
        }
        for i in 0..n {
            if let Some(&k) = numbers.get(i + AHEAD)
                && k != SKIP
            {
                prefetch(&self.totals[k as usize]);
            }
            let k = numbers[i];
            if k == SKIP {
                continue;
            }
            let valued = amounts.is_valid(i);
            let amount = if valued { amounts.value(i) } else { 0 };
            let day = days.value(i);
            self.totals[k as usize].merge(Totals::of(day, amount, end));
            self.purchases.push((k, tag(day, valued)));
        }
    }

    /// This stream's customers sorted by id, each with its totals and its
    /// purchase days (sorted, one per day), grouped by a counting sort on
    /// the customer's rank. Runs in the fold's own task, so each core
    /// groups its share; only the merge of the sorted runs is serial.
    fn into_run(self) -> Run {
        let Partial {
            index,
            totals,
            purchases,
        } = self;
        let order = index.into_sorted_entries();
        let mut rank = vec![0u32; order.len()];
        for (r, (_, k)) in order.iter().enumerate() {
            rank[*k as usize] = r as u32;
        }
        // Grouped by rank in two passes that stay in cache: first into at
        // most 256 blocks of consecutive ranks (as many sequential write
        // streams), then by rank within each block, whose counters and days
        // fit in L2. One pass with a counter per customer missed the cache
        // on nearly every purchase (half of this function's time).
        let n = order.len();
        let bits = usize::BITS - n.leading_zeros();
        let shift = bits.saturating_sub(8);
        let mut block_start = vec![0usize; (n >> shift) + 2];
        for &(k, _) in &purchases {
            block_start[(rank[k as usize] as usize >> shift) + 1] += 1;
        }
        for b in 1..block_start.len() {
            block_start[b] += block_start[b - 1];
        }
        let mut next = block_start.clone();
        let mut staged = vec![(0u32, 0i32); purchases.len()];
        for &(k, day) in &purchases {
            let r = rank[k as usize];
            let b = r as usize >> shift;
            staged[next[b]] = (r, day);
            next[b] += 1;
        }
        drop(purchases);
        let mut start = vec![0usize; n + 1];
        let mut days = vec![0i32; staged.len()];
        for b in 0..block_start.len() - 1 {
            let (lo, hi) = (block_start[b], block_start[b + 1]);
            let first = b << shift;
            let last = ((b + 1) << shift).min(n);
            if first >= n {
                break;
            }
            for &(r, _) in &staged[lo..hi] {
                start[r as usize + 1] += 1;
            }
            start[first] = lo;
            for r in first..last {
                start[r + 1] += start[r];
            }
            let mut at = start[first..last].to_vec();
            for &(r, day) in &staged[lo..hi] {
                let i = &mut at[r as usize - first];
                days[*i] = day;
                *i += 1;
            }
        }
        drop(staged);
        // Sort each customer's days and drop repeats in place, keeping the
        // first (valued, if any) entry of each day.
        let mut kept = 0;
        let mut run = Run {
            keys: Vec::with_capacity(order.len()),
            totals: Vec::with_capacity(order.len()),
            start: Vec::with_capacity(order.len() + 1),
            days: Vec::new(),
        };
        run.start.push(0);
        for (r, (key, k)) in order.into_iter().enumerate() {
            let mine = &mut days[start[r]..start[r + 1]];
            mine.sort_unstable();
            for i in start[r]..start[r + 1] {
                if kept == run.start[r] || day_of(days[kept - 1]) != day_of(days[i]) {
                    days[kept] = days[i];
                    kept += 1;
                }
            }
            run.keys.push(key);
            run.totals.push(totals[k as usize]);
            run.start.push(kept);
        }
        days.truncate(kept);
        run.days = days;
        run
    }
}

/// One stream's customers in id order, with their [`tag`]ged days flat in
/// `days` (customer i's are `days[start[i]..start[i + 1]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Run {
    pub(super) keys: Vec<Key>,
    pub(super) totals: Vec<Totals>,
    pub(super) start: Vec<usize>,
    pub(super) days: Vec<i32>,
}

impl Run {
    pub(super) fn days(&self, i: usize) -> &[i32] {
        &self.days[self.start[i]..self.start[i + 1]]
    }
}

/// Merges the streams' runs into one run in id order: a customer seen by
/// several streams gets its totals merged and the union of its days. Flat
/// like the runs: a list of days per customer cost a million allocations
/// and as many frees.
fn merge_runs(mut runs: Vec<Run>) -> Run {
    if runs.len() == 1 {
        return runs.remove(0);
    }
    let customers = runs.iter().map(|r| r.keys.len()).max().unwrap_or(0);
    let days = runs.iter().map(|r| r.days.len()).max().unwrap_or(0);
    let mut out = Run {
        keys: Vec::with_capacity(customers),
        totals: Vec::with_capacity(customers),
        start: Vec::with_capacity(customers + 1),
        days: Vec::with_capacity(days),
    };
    out.start.push(0);
    let mut at = vec![0usize; runs.len()];
    // the runs whose next customer is the smallest
    let mut mine: Vec<usize> = Vec::with_capacity(runs.len());
    loop {
        mine.clear();
        for (r, run) in runs.iter().enumerate() {
            let Some(key) = run.keys.get(at[r]) else {
                continue;
            };
            match mine.first().map(|&m| key.cmp(&runs[m].keys[at[m]])) {
                None | Some(Ordering::Equal) => mine.push(r),
                Some(Ordering::Less) => {
                    mine.clear();
                    mine.push(r);
                }
                Some(Ordering::Greater) => {}
            }
        }
        let Some(&first) = mine.first() else {
            break;
        };
        let key = std::mem::replace(&mut runs[first].keys[at[first]], Key::Hex(0));
        let mut totals = Totals::EMPTY;
        for &r in &mine {
            totals.merge(runs[r].totals[at[r]]);
        }
        match *mine.as_slice() {
            [r] => out.days.extend_from_slice(runs[r].days(at[r])),
            [a, b] => push_union(runs[a].days(at[a]), runs[b].days(at[b]), &mut out.days),
            _ => {
                let from = out.days.len();
                for &r in &mine {
                    out.days.extend_from_slice(runs[r].days(at[r]));
                }
                out.days[from..].sort_unstable();
                let mut kept = from;
                for i in from..out.days.len() {
                    if kept == from || day_of(out.days[kept - 1]) != day_of(out.days[i]) {
                        out.days[kept] = out.days[i];
                        kept += 1;
                    }
                }
                out.days.truncate(kept);
            }
        }
        for &r in &mine {
            at[r] += 1;
        }
        out.keys.push(key);
        out.totals.push(totals);
        out.start.push(out.days.len());
    }
    out
}

/// Pushes the union of one customer's days from two runs (each sorted, one
/// entry a day) onto `days`, sorted, keeping each day's first entry: its
/// valued one, if any. A merge, where sorting the two lists together cost
/// a sort per customer in the serial tail.
fn push_union(a: &[i32], b: &[i32], days: &mut Vec<i32>) {
    let from = days.len();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let d = if j == b.len() || (i < a.len() && a[i] <= b[j]) {
            i += 1;
            a[i - 1]
        } else {
            j += 1;
            b[j - 1]
        };
        if days.len() == from || day_of(days[days.len() - 1]) != day_of(d) {
            days.push(d);
        }
    }
}

/// Folds one partition's purchases.
async fn fold_stream(
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    end: i32,
) -> Result<Run> {
    let mut part = Partial::default();
    while let Some(batch) = stream.next().await {
        let b = batch?;
        let ids = string_column(&b, "customer_id")?;
        let days = date_column(&b, "order_date")?;
        let amounts = b
            .column_by_name("amount")
            .and_then(|a| a.as_primitive_opt::<Decimal128Type>())
            .ok_or_else(|| Error::Internal("purchase_days.sql: amount is not DECIMAL".into()))?;
        part.add_batch(&ids, &days, amounts, end);
    }
    Ok(part.into_run())
}

/// Per-customer summaries and, for churn, every purchase day (ascending)
/// up to the holdout end, aligned with the summaries: customer i's are
/// `days[start[i]..start[i + 1]]` ([`Histories::days_of`]), flat, where a
/// list per customer cost a million allocations.
#[derive(Debug, Clone, PartialEq)]
pub struct Histories {
    pub summaries: Summaries,
    pub start: Vec<usize>,
    pub days: Vec<i32>,
}

impl Histories {
    /// Customer i's purchase days.
    pub fn days_of(&self, i: usize) -> &[i32] {
        &self.days[self.start[i]..self.start[i + 1]]
    }
}

/// Summarizes `purchases(customer_id, order_date DATE, amount DOUBLE)`,
/// which must be registered in `session` (`amount` NULL for a purchase
/// without a value: a purchase day, not in the mean value), for a
/// calibration period ending on `calibration_end` (inclusive) and a holdout
/// ending on `holdout_end` (inclusive; equal to `calibration_end` for none).
/// Customers whose first purchase is after the calibration end are left out.
pub async fn load(
    session: &SessionContext,
    calibration_end: NaiveDate,
    holdout_end: NaiveDate,
    unit: TimeUnit,
) -> Result<Histories> {
    load_in_folds(
        session,
        calibration_end,
        holdout_end,
        unit,
        crate::parallel::threads(),
    )
    .await
}

/// [`load`] with the purchases folded by at most `folds` tasks.
async fn load_in_folds(
    session: &SessionContext,
    calibration_end: NaiveDate,
    holdout_end: NaiveDate,
    unit: TimeUnit,
    folds: usize,
) -> Result<Histories> {
    let runs = fold(session, "purchases", calibration_end, holdout_end, folds).await?;
    Ok(histories(
        &merge_runs(runs),
        epoch_day(calibration_end),
        unit,
    ))
}

/// [`load`] for a night, which has no holdout: the purchases up to `date`
/// are those of `carried` (an earlier night's, see [`super::carry`]) and
/// those `source` (a table shaped as `purchases`) adds; without `carried`,
/// `source` is every purchase. Returns the purchases as a run too, for the
/// nights after.
pub(super) async fn load_night(
    session: &SessionContext,
    date: NaiveDate,
    unit: TimeUnit,
    source: &str,
    carried: Option<Run>,
) -> Result<(Histories, Run)> {
    let mut runs = fold(session, source, date, date, crate::parallel::threads()).await?;
    runs.extend(carried);
    let run = merge_runs(runs);
    Ok((histories(&run, epoch_day(date), unit), run))
}

/// `purchase_days.sql` over `source` instead of `purchases`.
fn purchase_days_sql(source: &str) -> String {
    PURCHASE_DAYS_SQL.replace("FROM purchases AS p", &format!("FROM {source} AS p"))
}

/// Folds the purchases of `source` up to `holdout_end` into at most `folds`
/// runs.
async fn fold(
    session: &SessionContext,
    source: &str,
    calibration_end: NaiveDate,
    holdout_end: NaiveDate,
    folds: usize,
) -> Result<Vec<Run>> {
    if holdout_end < calibration_end {
        return Err(Error::Config(format!(
            "the holdout end {holdout_end} is before the calibration end {calibration_end}"
        )));
    }
    // A constant function, not a one-row table joined to every purchase:
    // DataFusion plans that join as a nested loop that buffers the orders.
    session.deregister_udf("holdout_end");
    session.register_udf(crate::transform::date_constant_udf(
        "holdout_end",
        holdout_end,
    ));
    let end = epoch_day(calibration_end);
    // One fold per core, each over its share of the plan's partitions,
    // merged after (the fold is order-independent). A fold per partition
    // (sixteen in the model sessions, each a few weeks of orders) met most
    // customers in each: sixteen tables of them, sixteen sorts, and on one
    // core a merge of sixteen runs that sorted each customer's days again.
    let df = session.sql(&purchase_days_sql(source)).await?;
    crate::catalog::fold_partitions_in(df, folds, "a purchase fold", |s| fold_stream(s, end)).await
}

/// The summaries and purchase days of a run's customers whose first
/// purchase is by `end`, the calibration end.
fn histories(run: &Run, end: i32, unit: TimeUnit) -> Histories {
    let mut out = Histories {
        summaries: Summaries::default(),
        start: vec![0],
        days: Vec::with_capacity(run.days.len()),
    };
    let s = &mut out.summaries;
    for (i, (id, totals)) in run.keys.iter().zip(&run.totals).enumerate() {
        if totals.first_day > end {
            continue;
        }
        let days = run.days(i);
        let calibration = days.partition_point(|&d| day_of(d) <= end);
        let x = (calibration - 1) as u32;
        let last = day_of(days[calibration - 1]);
        // Gamma-Gamma averages the repeat days, as x counts them: not the first.
        let valued_x = days[1..calibration]
            .iter()
            .filter(|&&d| is_valued(d))
            .count() as u32;
        s.customer_id.push(id.to_text());
        s.first_day.push(totals.first_day);
        s.x.push(x);
        s.t_x.push(f64::from(last - totals.first_day) / unit.days());
        s.t.push(f64::from(end - totals.first_day) / unit.days());
        s.valued_x.push(valued_x);
        s.monetary.push((valued_x > 0).then(|| {
            (totals.calibration_amount - totals.first_amount) as f64
                / AMOUNT_SCALE
                / f64::from(valued_x)
        }));
        s.holdout_x.push((days.len() - calibration) as u32);
        out.days.extend(days.iter().map(|&d| day_of(d)));
        out.start.push(out.days.len());
    }
    out
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

fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    b.column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("query result has no column `{name}`")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use datafusion::arrow::array::{Float64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256Plus;

    use super::*;

    /// (x, t_x, T, valued x, mean value, holdout x) of a customer.
    type Want = (u32, f64, f64, u32, Option<f64>, u32);

    /// The plain definition, one customer at a time: combine days, drop the
    /// first, count the rest and average those with an amount.
    fn reference(
        rows: &[(String, i32, Option<f64>)],
        end: i32,
        holdout_end: i32,
        unit: TimeUnit,
    ) -> BTreeMap<String, Want> {
        // Per day: the sum of the amounts, None when no order had one.
        let mut days: BTreeMap<String, BTreeMap<i32, Option<f64>>> = BTreeMap::new();
        for (c, d, a) in rows {
            if *d <= holdout_end {
                let day = days.entry(c.clone()).or_default().entry(*d).or_default();
                if let Some(a) = a {
                    *day = Some(day.unwrap_or(0.0) + a);
                }
            }
        }
        let mut out = BTreeMap::new();
        for (c, per_day) in days {
            let cal: Vec<(i32, Option<f64>)> = per_day
                .iter()
                .filter(|(d, _)| **d <= end)
                .map(|(d, a)| (*d, *a))
                .collect();
            let Some(&(first, _)) = cal.first() else {
                continue;
            };
            let last = cal.last().expect("non-empty").0;
            let x = (cal.len() - 1) as u32;
            let valued: Vec<f64> = cal[1..].iter().filter_map(|(_, a)| *a).collect();
            let valued_x = valued.len() as u32;
            let monetary = (valued_x > 0).then(|| valued.iter().sum::<f64>() / f64::from(valued_x));
            let holdout = per_day.keys().filter(|d| **d > end).count() as u32;
            out.insert(
                c,
                (
                    x,
                    f64::from(last - first) / unit.days(),
                    f64::from(end - first) / unit.days(),
                    valued_x,
                    monetary,
                    holdout,
                ),
            );
        }
        out
    }

    /// The first day of [`random_purchases`].
    fn first_day() -> i32 {
        epoch_day(NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"))
    }

    /// Purchases (customer, day, amount) of 3,000 customers over a year
    /// from [`first_day`], in random order.
    fn random_purchases(rng: &mut Xoshiro256Plus) -> Vec<(String, i32, Option<f64>)> {
        let start = first_day();
        // Pseudonyms (32 lowercase hex digits, kept as numbers) mixed with
        // ids kept as text, some of which sort between them.
        let id = |c: u128| match c % 4 {
            0 => format!(
                "{:032x}",
                c.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
            ),
            1 => format!("c{c:04}"),
            2 => format!("{:032X}", c * 7919),
            _ => format!("{:031x}", c * 104_729),
        };
        let mut rows = Vec::new();
        // Enough customers that each stream's grouping uses several blocks.
        for c in 0..3000u128 {
            let n = rng.random_range(1..12);
            let first = start + rng.random_range(0..200);
            for _ in 0..n {
                // Same-day repeats are common on purpose.
                let d = first + rng.random_range(0..6) * rng.random_range(0..40);
                // One purchase in eight without an amount (another currency).
                let amount = (rng.random_range(0..8) > 0)
                    .then(|| f64::from(rng.random_range(100..5000u32)) / 100.0);
                rows.push((id(c), d, amount));
            }
        }
        // Customers' purchases spread over every stream.
        rows.shuffle(rng);
        rows
    }

    /// A session with `rows` as `purchases`, in `partitions` partitions of
    /// the plan, so a customer's purchases are split between streams.
    fn purchases_in(rows: &[(String, i32, Option<f64>)], partitions: usize) -> SessionContext {
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("order_date", DataType::Date32, false),
            Field::new("amount", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.0.as_str()),
                )) as ArrayRef,
                Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(rows.iter().map(|r| r.2).collect::<Float64Array>()),
            ],
        )
        .expect("batch");
        let n = batch.num_rows();
        let parts = (0..partitions)
            .map(|i| {
                let from = i * n / partitions;
                vec![batch.slice(from, (i + 1) * n / partitions - from)]
            })
            .collect();
        let session = SessionContext::new();
        session
            .register_table(
                "purchases",
                Arc::new(MemTable::try_new(schema, parts).expect("table")),
            )
            .expect("register");
        session
    }

    #[tokio::test]
    async fn sql_summary_equals_the_plain_definition_on_random_orders() {
        let mut rng = Xoshiro256Plus::seed_from_u64(11);
        let start = first_day();
        let rows = random_purchases(&mut rng);
        // three partitions: a customer's purchases are split between folds
        // and merged (`merge_runs`)
        let session = purchases_in(&rows, 3);
        for (unit, end_offset, holdout) in [
            (TimeUnit::Days, 150, 0),
            (TimeUnit::Weeks, 120, 60),
            (TimeUnit::Days, 400, 0),
        ] {
            let end = from_epoch_day(start + end_offset);
            let hend = from_epoch_day(start + end_offset + holdout);
            let histories = load(&session, end, hend, unit).await.expect("summary");
            let got = &histories.summaries;
            let want = reference(&rows, epoch_day(end), epoch_day(hend), unit);
            assert_eq!(got.len(), want.len(), "customers");
            let mut sorted = got.customer_id.clone();
            sorted.sort();
            assert_eq!(sorted, got.customer_id, "sorted by customer");
            for (i, id) in got.customer_id.iter().enumerate() {
                let (x, t_x, t, valued_x, m, h) = want[id];
                let days = histories.days_of(i);
                assert!(
                    days.windows(2).all(|w| w[0] < w[1]),
                    "{id}: days sorted, distinct"
                );
                assert_eq!(
                    days.len() as u32,
                    x + 1 + h,
                    "{id}: every purchase day kept"
                );
                assert_eq!(got.x[i], x, "{id} x");
                assert_eq!(got.valued_x[i], valued_x, "{id} valued x");
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

    /// Differential: the purchases of a plan of sixteen partitions (as many
    /// as the model sessions plan) folded by one to sixteen tasks, each over
    /// its share of them, against a fold per partition, the way they were
    /// folded before: the same histories, exactly.
    #[tokio::test]
    async fn folds_over_shares_of_the_partitions_equal_a_fold_per_partition() {
        let mut rng = Xoshiro256Plus::seed_from_u64(12);
        let rows = random_purchases(&mut rng);
        let session = purchases_in(&rows, 16);
        for (unit, end_offset, holdout) in [(TimeUnit::Days, 150, 0), (TimeUnit::Weeks, 120, 60)] {
            let end = from_epoch_day(first_day() + end_offset);
            let hend = from_epoch_day(first_day() + end_offset + holdout);
            let per_partition = load_in_folds(&session, end, hend, unit, usize::MAX)
                .await
                .expect("a fold per partition");
            assert!(per_partition.summaries.len() > 1000, "customers");
            for folds in [1, 2, 3, 5, 16] {
                let got = load_in_folds(&session, end, hend, unit, folds)
                    .await
                    .expect("summary");
                // not assert_eq: a difference would print every customer
                assert!(got == per_partition, "{folds} folds, {unit:?}");
            }
        }
    }

    /// A customer's key, totals and purchase days, as the tests compare them.
    type Merged = (Key, (i128, i128, i32), Vec<i32>);

    /// The merge as it was: each customer's days from every run
    /// concatenated, sorted and cut to one entry a day.
    fn merge_by_sorting(runs: &[Run]) -> Vec<Merged> {
        let mut at = vec![0usize; runs.len()];
        let mut out = Vec::new();
        while let Some(min) = runs
            .iter()
            .zip(&at)
            .filter_map(|(r, &i)| r.keys.get(i))
            .min()
            .cloned()
        {
            let mut totals = Totals::EMPTY;
            let mut days = Vec::new();
            for (r, i) in runs.iter().zip(at.iter_mut()) {
                if r.keys.get(*i) != Some(&min) {
                    continue;
                }
                totals.merge(r.totals[*i]);
                days.extend_from_slice(r.days(*i));
                *i += 1;
            }
            days.sort_unstable();
            days.dedup_by_key(|d| day_of(*d));
            let t = (
                totals.first_amount,
                totals.calibration_amount,
                totals.first_day,
            );
            out.push((min, t, days));
        }
        out
    }

    /// A stream's run of about 60% of `customers` customers (hex and text
    /// ids), each with a few tagged days in one month.
    fn random_run(rng: &mut Xoshiro256Plus, customers: u128) -> Run {
        let mut keys: Vec<Key> = (0..customers)
            .filter(|_| rng.random_bool(0.6))
            .map(|c| match c % 5 {
                0 => Key::Text(format!("c{c}").into()),
                _ => Key::Hex(c.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)),
            })
            .collect();
        keys.sort();
        let mut run = Run {
            keys,
            totals: Vec::new(),
            start: vec![0],
            days: Vec::new(),
        };
        for _ in 0..run.keys.len() {
            let mut days: Vec<i32> = (0..rng.random_range(1..8))
                .map(|_| tag(rng.random_range(0..30), rng.random_bool(0.8)))
                .collect();
            days.sort_unstable();
            days.dedup_by_key(|d| day_of(*d));
            run.totals.push(Totals {
                first_amount: rng.random_range(0..1000),
                calibration_amount: rng.random_range(0..5000),
                first_day: day_of(days[0]),
            });
            run.days.extend(days);
            run.start.push(run.days.len());
        }
        run
    }

    /// Differential: the flat merge against merging by sorting, for no run,
    /// one, two (the union of two sorted lists) and three.
    /// A carried night folds only the new purchases: were the source not
    /// replaced (the SQL's `FROM` line edited), it would fold every purchase
    /// and add them to the carried ones.
    #[test]
    fn the_purchase_days_query_reads_the_source_it_is_given() {
        let sql = purchase_days_sql("purchases_since");
        assert!(sql.contains("FROM purchases_since AS p"), "{sql}");
        assert!(!sql.contains("FROM purchases AS p"), "{sql}");
        assert_eq!(purchase_days_sql("purchases"), PURCHASE_DAYS_SQL);
    }

    #[test]
    fn merged_runs_equal_merging_by_sorting() {
        let mut rng = Xoshiro256Plus::seed_from_u64(5);
        for streams in 0..4 {
            let runs: Vec<Run> = (0..streams).map(|_| random_run(&mut rng, 400)).collect();
            let want = merge_by_sorting(&runs);
            let merged = merge_runs(runs);
            let got: Vec<Merged> = (0..merged.keys.len())
                .map(|i| {
                    let t = &merged.totals[i];
                    (
                        merged.keys[i].clone(),
                        (t.first_amount, t.calibration_amount, t.first_day),
                        merged.days(i).to_vec(),
                    )
                })
                .collect();
            assert_eq!(got, want, "{streams} streams");
            assert_eq!(merged.start.len(), merged.keys.len() + 1);
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
