//! `marts/voice_scores`: NPS, CSAT, CES and mean sentiment per period, per
//! touchpoint, language and segment, each with n, a 95% interval and the
//! change from the previous period with a significance flag.
//!
//! SQL (`scores.sql`) counts at the finest grain (metric × day ×
//! touchpoint × language × segment); Rust rolls the counts up to periods
//! and dimensions and does the statistics ([`super::stats`]):
//! NPS with the trinomial adjusted Wald interval, CSAT with Wilson, CES and
//! sentiment with a t interval. A cell with fewer than `min_group_size`
//! observations is written as suppressed, with NULL n, value and interval
//! (never 0), and so is a cell that would give a suppressed one back by
//! subtraction ([`hidden_cells`]); neither is used as the previous period
//! of another cell.
//! The previous period is the calendar one (the day, ISO week or month
//! before); when it has no answers the change is NULL.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{Datelike, Days, Months, NaiveDate};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;

use super::RunParams;
use super::columns::{self, opt_str};
use super::stats::{Estimate, change_z, mean_t, net_promoter_score, share_wilson, significant};
use crate::secondary_suppression::{SumFamily, protect_sums};
use crate::{Error, Result};

/// The query behind the cells.
pub const SQL: &str = include_str!("scores.sql");

/// Counts and sums at the finest grain, as `scores.sql` returns them.
#[derive(Debug, Clone, PartialEq)]
pub struct FineCell {
    pub metric: String,
    pub day: NaiveDate,
    pub touchpoint: Option<String>,
    pub language: Option<String>,
    pub segment: Option<String>,
    pub n: u64,
    pub sum_a: f64,
    pub sum_b: f64,
}

/// The period types, in output order.
pub const PERIODS: [&str; 4] = ["all", "day", "week", "month"];
/// The dimensions.
pub const DIMENSIONS: [&str; 4] = ["all", "touchpoint", "language", "segment"];

/// The first day of the period of `period_type` holding `day` (ISO weeks
/// start on Monday); `None` for `all`.
pub fn period_start(period_type: &str, day: NaiveDate) -> Option<NaiveDate> {
    match period_type {
        "day" => Some(day),
        "week" => day.checked_sub_days(Days::new(u64::from(day.weekday().num_days_from_monday()))),
        "month" => day.with_day(1),
        _ => None,
    }
}

/// Rolls the fine cells up to every period type and dimension. Sums are
/// added in the order of `fine`, so a sorted input gives the same floats
/// every run.
pub fn rollup(fine: &[FineCell]) -> Vec<Cell> {
    type Sums = (u64, f64, f64);
    // Keys borrow their text from `fine` and the constants: each fine cell
    // adds to 16 cells, and five strings allocated for every one of them
    // (then compared as owned) were a tenth of the voice job. Hashed, not
    // kept sorted: a tree compared the keys' strings on every one of those
    // additions (4% of the job at a million customers); the cells are
    // sorted once at the end, in the order the tree gave.
    type Key<'a> = (&'a str, &'a str, Option<NaiveDate>, &'a str, &'a str);
    let mut acc: HashMap<Key, Sums, foldhash::fast::RandomState> = HashMap::default();
    for f in fine {
        for period in PERIODS {
            let start = period_start(period, f.day);
            for dimension in DIMENSIONS {
                let group = match dimension {
                    "all" => Some("all"),
                    "touchpoint" => f.touchpoint.as_deref(),
                    "language" => f.language.as_deref(),
                    _ => f.segment.as_deref(),
                };
                let Some(group) = group else {
                    continue;
                };
                let e = acc
                    .entry((f.metric.as_str(), period, start, dimension, group))
                    .or_insert((0, 0.0, 0.0));
                e.0 += f.n;
                e.1 += f.sum_a;
                e.2 += f.sum_b;
            }
        }
    }
    let mut acc: Vec<(Key, Sums)> = acc.into_iter().collect();
    acc.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    acc.into_iter()
        .map(
            |((metric, period_type, period_start, dimension, group_value), (n, sum_a, sum_b))| {
                Cell {
                    metric: metric.to_string(),
                    period_type: period_type.to_string(),
                    period_start,
                    dimension: dimension.to_string(),
                    group_value: group_value.to_string(),
                    n,
                    sum_a,
                    sum_b,
                }
            },
        )
        .collect()
}

/// Counts and sums of one cell of `voice_scores`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// `nps`, `csat`, `ces` or `sentiment`.
    pub metric: String,
    /// `all`, `day`, `week` or `month`.
    pub period_type: String,
    /// First day of the period; `None` for `all`.
    pub period_start: Option<NaiveDate>,
    /// `all`, `touchpoint`, `language` or `segment`.
    pub dimension: String,
    pub group_value: String,
    pub n: u64,
    pub sum_a: f64,
    pub sum_b: f64,
}

/// The estimate of a cell's metric (see `scores.sql` for the sums).
pub fn estimate(c: &Cell) -> Option<Estimate> {
    // Counts arrive as sums of 0.0/1.0: exact in f64, rounding only drops the type.
    let count = |x: f64| x.round().max(0.0) as u64;
    match c.metric.as_str() {
        "nps" => net_promoter_score(c.n, count(c.sum_a), count(c.sum_b)),
        "csat" => share_wilson(c.n, count(c.sum_a)),
        "ces" | "sentiment" => mean_t(c.n, c.sum_a, c.sum_b),
        _ => None,
    }
}

/// One row of `marts/voice_scores`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    pub metric: String,
    pub period_type: String,
    pub period_start: Option<NaiveDate>,
    pub period_end: NaiveDate,
    /// Whether the period had ended by the run date.
    pub complete: bool,
    pub dimension: String,
    pub group_value: String,
    /// `None` when suppressed.
    pub n: Option<u64>,
    /// `None` when suppressed.
    pub estimate: Option<Estimate>,
    pub suppressed: bool,
    pub previous_value: Option<f64>,
    pub change: Option<f64>,
    pub change_significant: Option<bool>,
}

/// The period before the one starting at `start`.
fn previous_start(period_type: &str, start: NaiveDate) -> Option<NaiveDate> {
    match period_type {
        "day" => start.checked_sub_days(Days::new(1)),
        "week" => start.checked_sub_days(Days::new(7)),
        "month" => start.checked_sub_months(Months::new(1)),
        _ => None,
    }
}

/// The last day of the period starting at `start`.
fn period_end(period_type: &str, start: Option<NaiveDate>, run_date: NaiveDate) -> NaiveDate {
    let Some(start) = start else {
        return run_date;
    };
    match period_type {
        "week" => start + Days::new(6),
        "month" => start
            .with_day(1)
            .and_then(|d| d.checked_add_months(Months::new(1)))
            .and_then(|d| d.pred_opt())
            .unwrap_or(start),
        _ => start,
    }
}

type Key<'a> = (&'a str, &'a str, &'a str, &'a str, Option<NaiveDate>);

fn key(c: &Cell) -> Key<'_> {
    (
        &c.metric,
        &c.period_type,
        &c.dimension,
        &c.group_value,
        c.period_start,
    )
}

/// Which cells to hide: those with fewer than `min` answers, and then the
/// cells whose shown neighbours would give a hidden one back by
/// subtraction. A metric's cells add up along two axes: a period's groups
/// of one dimension add up to its overall cell, and a group's days add up
/// to their week and their month, its months and its weeks to all time.
pub fn hidden_cells(cells: &[Cell], min: u64) -> Vec<bool> {
    let sizes: Vec<u64> = cells.iter().map(|c| c.n).collect();
    let mut hidden: Vec<bool> = sizes.iter().map(|&n| n < min).collect();
    let index: HashMap<Key<'_>, usize> =
        cells.iter().enumerate().map(|(i, c)| (key(c), i)).collect();
    let find = |c: &Cell, period_type: &str, dimension: &str, group: &str, start| {
        index
            .get(&(c.metric.as_str(), period_type, dimension, group, start))
            .copied()
    };
    // (total cell, what its members are) → members; BTreeMap for a stable order
    let mut families: BTreeMap<(usize, &str), Vec<usize>> = BTreeMap::new();
    for (i, c) in cells.iter().enumerate() {
        let (dim, group) = (c.dimension.as_str(), c.group_value.as_str());
        let mut totals = Vec::new();
        match (c.period_type.as_str(), c.period_start) {
            ("day", Some(d)) => {
                for period in ["week", "month"] {
                    totals.push((find(c, period, dim, group, period_start(period, d)), "days"));
                }
            }
            (period @ ("week" | "month"), Some(_)) => {
                totals.push((find(c, "all", dim, group, None), period));
            }
            _ => {}
        }
        if dim != "all" {
            let overall = find(c, &c.period_type, "all", "all", c.period_start);
            totals.push((overall, dim));
        }
        for (total, kind) in totals {
            if let Some(total) = total {
                families.entry((total, kind)).or_default().push(i);
            }
        }
    }
    // Answers without a group (no touchpoint, no segment) are in the total
    // but in no member: a member never published. Fewer than `min` of them
    // would be the total minus the groups shown, so they count as a hidden
    // member; more, and they are a group that may be worked out (and that
    // covers a hidden group only together with it).
    let mut sizes = sizes;
    let families: Vec<SumFamily> = families
        .into_iter()
        .map(|((total, _), mut members)| {
            let grouped: u64 = members.iter().map(|&m| sizes[m]).sum();
            if let Some(rest) = (sizes[total].checked_sub(grouped)).filter(|r| (1..min).contains(r))
            {
                members.push(sizes.len());
                sizes.push(rest);
                hidden.push(true);
            }
            SumFamily { total, members }
        })
        .collect();
    protect_sums(&sizes, &mut hidden, &families, min);
    hidden.truncate(cells.len());
    hidden
}

/// The rows of `marts/voice_scores` from the cells, sorted by metric,
/// period type, dimension, group and period.
pub fn rows(cells: &[Cell], run_date: NaiveDate, min_group_size: usize) -> Vec<ScoreRow> {
    let hidden = hidden_cells(cells, min_group_size as u64);
    let index: HashMap<Key<'_>, usize> =
        cells.iter().enumerate().map(|(i, c)| (key(c), i)).collect();
    let mut out: Vec<ScoreRow> = cells
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let suppressed = hidden[i];
            let est = if suppressed { None } else { estimate(c) };
            let previous = c
                .period_start
                .and_then(|s| previous_start(&c.period_type, s))
                .and_then(|p| {
                    index.get(&(
                        c.metric.as_str(),
                        c.period_type.as_str(),
                        c.dimension.as_str(),
                        c.group_value.as_str(),
                        Some(p),
                    ))
                })
                .filter(|&&p| !hidden[p])
                .and_then(|&p| estimate(&cells[p]));
            let (previous_value, change, change_significant) = match (&est, &previous) {
                (Some(cur), Some(prev)) => (
                    Some(prev.value),
                    Some(cur.value - prev.value),
                    change_z(cur, prev).map(significant),
                ),
                _ => (None, None, None),
            };
            let end = period_end(&c.period_type, c.period_start, run_date);
            ScoreRow {
                metric: c.metric.clone(),
                period_type: c.period_type.clone(),
                period_start: c.period_start,
                period_end: end,
                complete: end <= run_date,
                dimension: c.dimension.clone(),
                group_value: c.group_value.clone(),
                n: (!suppressed).then_some(c.n),
                estimate: est,
                suppressed,
                previous_value,
                change,
                change_significant,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (
            &a.metric,
            &a.period_type,
            &a.dimension,
            &a.group_value,
            a.period_start,
        )
            .cmp(&(
                &b.metric,
                &b.period_type,
                &b.dimension,
                &b.group_value,
                b.period_start,
            ))
    });
    out
}

/// The metrics of `scores.sql`, in the order their rows sort.
const METRICS: [&str; 4] = ["ces", "csat", "nps", "sentiment"];

/// Runs `scores.sql` and rolls its result up (needs `feedback_scored`
/// and `voice_segments` registered).
pub async fn read_cells(session: &SessionContext, params: &RunParams) -> Result<Vec<Cell>> {
    let batches = super::collect(session, SQL, params, "voice/scores").await?;
    let mut fine = Vec::new();
    for b in &batches {
        let day = columns::dates(b, "day")?;
        let touchpoint = columns::strings(b, "touchpoint")?;
        let language = columns::strings(b, "language")?;
        let segment = columns::strings(b, "segment")?;
        // per metric: its count and two sums (a count is a sum of ones, as
        // exact in a float as the integer)
        let mut sums = Vec::new();
        for metric in METRICS {
            let n = columns::ints(b, &format!("{metric}_n"))?;
            let count_or_sum = |part: &str| -> Result<Option<Float64Array>> {
                let name = format!("{metric}_{part}");
                Ok(match b.schema().field_with_name(&name) {
                    Ok(f) if f.data_type() == &DataType::Int64 => Some(
                        columns::ints(b, &name)?
                            .iter()
                            .map(|v| v.map(|v| v as f64))
                            .collect(),
                    ),
                    Ok(_) => Some(columns::floats(b, &name)?),
                    Err(_) => None,
                })
            };
            sums.push((metric, n, count_or_sum("a")?, count_or_sum("b")?));
        }
        for i in 0..b.num_rows() {
            let owned = |a: &StringArray| opt_str(a, i).map(str::to_string);
            let Some(d) = day.value_as_date(i) else {
                return Err(Error::Internal("voice: a message without a day".into()));
            };
            for (metric, n, a, b) in &sums {
                let n = n.value(i).max(0) as u64;
                if n == 0 {
                    continue;
                }
                let sum = |s: &Option<Float64Array>| {
                    s.as_ref()
                        .and_then(|s| columns::opt_f64(s, i))
                        .unwrap_or(0.0)
                };
                fine.push(FineCell {
                    metric: (*metric).to_string(),
                    day: d,
                    touchpoint: owned(&touchpoint),
                    language: owned(&language),
                    segment: owned(&segment),
                    n,
                    sum_a: sum(a),
                    sum_b: sum(b),
                });
            }
        }
    }
    // `rollup` adds in this order: metric, day, then the groups with the
    // missing ones last, as `ORDER BY` put them when the query sorted
    fine.sort_by(|x, y| {
        (x.metric.cmp(&y.metric))
            .then(x.day.cmp(&y.day))
            .then(nulls_last(&x.touchpoint, &y.touchpoint))
            .then(nulls_last(&x.language, &y.language))
            .then(nulls_last(&x.segment, &y.segment))
    });
    Ok(rollup(&fine))
}

/// SQL's ascending order, with `NULLS LAST`.
fn nulls_last(a: &Option<String>, b: &Option<String>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(b),
        (a, b) => a.is_none().cmp(&b.is_none()),
    }
}

/// Schema of `marts/voice_scores`.
pub fn schema() -> SchemaRef {
    let f = |name: &str, ty: DataType, nullable: bool| Field::new(name, ty, nullable);
    Arc::new(Schema::new(vec![
        f("metric", DataType::Utf8, false),
        f("period_type", DataType::Utf8, false),
        f("period_start", DataType::Date32, true),
        f("period_end", DataType::Date32, false),
        f("complete", DataType::Boolean, false),
        f("dimension", DataType::Utf8, false),
        f("group_value", DataType::Utf8, false),
        f("n", DataType::Int64, true),
        f("value", DataType::Float64, true),
        f("ci_low", DataType::Float64, true),
        f("ci_high", DataType::Float64, true),
        f("suppressed", DataType::Boolean, false),
        f("previous_value", DataType::Float64, true),
        f("change", DataType::Float64, true),
        f("change_significant", DataType::Boolean, true),
    ]))
}

/// Days since 1970-01-01, as Arrow's Date32 stores them.
pub fn date32(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days() as i32
}

/// The rows as one batch of [`schema`].
pub fn to_batch(rows: &[ScoreRow]) -> Result<RecordBatch> {
    let s = |f: fn(&ScoreRow) -> &str| -> ArrayRef {
        Arc::new(rows.iter().map(|r| Some(f(r))).collect::<StringArray>())
    };
    let e = |f: fn(&Estimate) -> f64| -> ArrayRef {
        Arc::new(
            rows.iter()
                .map(|r| r.estimate.as_ref().map(f))
                .collect::<Float64Array>(),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        s(|r| &r.metric),
        s(|r| &r.period_type),
        Arc::new(
            rows.iter()
                .map(|r| r.period_start.map(date32))
                .collect::<Date32Array>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| Some(date32(r.period_end)))
                .collect::<Date32Array>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| Some(r.complete))
                .collect::<BooleanArray>(),
        ),
        s(|r| &r.dimension),
        s(|r| &r.group_value),
        Arc::new(
            rows.iter()
                .map(|r| r.n.map(|n| n as i64))
                .collect::<Int64Array>(),
        ),
        e(|x| x.value),
        e(|x| x.ci_low),
        e(|x| x.ci_high),
        Arc::new(
            rows.iter()
                .map(|r| Some(r.suppressed))
                .collect::<BooleanArray>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.previous_value)
                .collect::<Float64Array>(),
        ),
        Arc::new(rows.iter().map(|r| r.change).collect::<Float64Array>()),
        Arc::new(
            rows.iter()
                .map(|r| r.change_significant)
                .collect::<BooleanArray>(),
        ),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    fn cell(metric: &str, period: &str, start: Option<&str>, n: u64, a: f64, b: f64) -> Cell {
        Cell {
            metric: metric.into(),
            period_type: period.into(),
            period_start: start.map(d),
            dimension: "touchpoint".into(),
            group_value: "delivery".into(),
            n,
            sum_a: a,
            sum_b: b,
        }
    }

    #[test]
    fn small_cells_are_suppressed_with_nulls_never_zero() {
        let cells = [
            cell("nps", "week", Some("2025-03-03"), 9, 2.0, 5.0),
            cell("nps", "week", Some("2025-03-10"), 40, 20.0, 8.0),
        ];
        let rows = rows(&cells, d("2025-03-31"), 10);
        let small = &rows[0];
        assert!(small.suppressed);
        assert_eq!((small.n, small.estimate), (None, None));
        // The week after has no usable previous week.
        let next = &rows[1];
        assert!(!next.suppressed);
        assert_eq!(next.n, Some(40));
        assert_eq!(
            (next.previous_value, next.change, next.change_significant),
            (None, None, None)
        );
        let batch = to_batch(&rows).expect("batch");
        let value = columns::floats(&batch, "value").expect("value");
        assert!(
            datafusion::arrow::array::Array::is_null(&value, 0),
            "NULL, not 0"
        );
        assert_eq!(value.value(1), 30.0);
        let n = columns::ints(&batch, "n").expect("n");
        assert!(datafusion::arrow::array::Array::is_null(&n, 0));
    }

    /// The hidden cells no shown total gives back: for every shown total
    /// (a week, a month, all time, a period's overall cell) and the shown
    /// rows that add up to it, found by their dates and dimensions, one
    /// hidden member alone, or hidden members holding fewer than `min`
    /// answers together with nothing else in the total, is recoverable.
    fn recoverable(rows: &[ScoreRow], cells: &[Cell], min: u64) -> Vec<String> {
        let n_of = |r: &ScoreRow| {
            cells
                .iter()
                .find(|c| {
                    (
                        &c.metric,
                        &c.period_type,
                        c.period_start,
                        &c.dimension,
                        &c.group_value,
                    ) == (
                        &r.metric,
                        &r.period_type,
                        r.period_start,
                        &r.dimension,
                        &r.group_value,
                    )
                })
                .map_or(0, |c| c.n)
        };
        let mut found = Vec::new();
        for t in rows.iter().filter(|t| !t.suppressed) {
            let same_group = |r: &&ScoreRow| {
                r.metric == t.metric && r.dimension == t.dimension && r.group_value == t.group_value
            };
            let mut families: Vec<Vec<&ScoreRow>> = Vec::new();
            let within = |r: &ScoreRow| {
                r.period_start
                    .is_some_and(|s| Some(s) >= t.period_start && s <= t.period_end)
            };
            match t.period_type.as_str() {
                "week" | "month" => families.push(
                    rows.iter()
                        .filter(same_group)
                        .filter(|r| r.period_type == "day" && within(r))
                        .collect(),
                ),
                "all" => {
                    for p in ["week", "month"] {
                        families.push(
                            rows.iter()
                                .filter(same_group)
                                .filter(|r| r.period_type == p)
                                .collect(),
                        );
                    }
                }
                _ => {}
            }
            if t.dimension == "all" {
                for dim in ["touchpoint", "language", "segment"] {
                    families.push(
                        rows.iter()
                            .filter(|r| {
                                r.metric == t.metric
                                    && r.period_type == t.period_type
                                    && r.period_start == t.period_start
                                    && r.dimension == dim
                            })
                            .collect(),
                    );
                }
            }
            for members in families {
                let hidden: Vec<&&ScoreRow> = members.iter().filter(|r| r.suppressed).collect();
                let rest = n_of(t) - members.iter().map(|r| n_of(r)).sum::<u64>();
                let together: u64 = hidden.iter().map(|r| n_of(r)).sum();
                if hidden.len() == 1 || (!hidden.is_empty() && rest == 0 && together < min) {
                    found.push(format!(
                        "{} {:?} {}={} gives back {} {:?} {}",
                        t.period_type,
                        t.period_start,
                        t.dimension,
                        t.group_value,
                        hidden[0].period_type,
                        hidden[0].period_start,
                        hidden[0].group_value
                    ));
                }
            }
        }
        found
    }

    /// A week of NPS answers at two touchpoints (delivery 15 a day, shop 20
    /// a day) where delivery had 3 answers on Sunday: hidden, and neither
    /// the delivery week minus its other days nor Sunday's overall cell
    /// minus the shop may give it back.
    #[test]
    fn no_shown_total_gives_a_hidden_cell_back() {
        let mut fine = Vec::new();
        for day in 3..=9 {
            for (touchpoint, n) in [("delivery", if day == 9 { 3 } else { 15 }), ("shop", 20)] {
                fine.push(FineCell {
                    metric: "nps".into(),
                    day: d(&format!("2025-03-{day:02}")),
                    touchpoint: Some(touchpoint.into()),
                    language: Some("en".into()),
                    segment: None,
                    n,
                    sum_a: (n / 2) as f64,
                    sum_b: (n / 5) as f64,
                });
            }
        }
        let cells = rollup(&fine);
        let rows = rows(&cells, d("2025-03-31"), 10);
        let sunday = rows
            .iter()
            .find(|r| {
                r.period_type == "day"
                    && r.period_start == Some(d("2025-03-09"))
                    && r.group_value == "delivery"
            })
            .expect("sunday");
        assert!(sunday.suppressed);
        assert_eq!(recoverable(&rows, &cells, 10), Vec::<String>::new());
        assert!(
            rows.iter().filter(|r| !r.suppressed).count() > rows.len() / 2,
            "most cells are still shown"
        );
    }

    /// March: 100 answers, 50 promoters, 20 detractors → NPS 30,
    /// var = (0.7 − 0.09)/100 = 0.0061. April: 100 answers, 30 promoters,
    /// 30 detractors → NPS 0, var = 0.6/100 = 0.006. Change −30, z = −30 /
    /// (100·√0.0121) = −2.727 → significant. May: 100 answers, 32
    /// promoters, 29 detractors → NPS 3, change +3, not significant.
    #[test]
    fn the_trend_compares_with_the_previous_calendar_period() {
        let cells = [
            cell("nps", "month", Some("2025-03-01"), 100, 50.0, 20.0),
            cell("nps", "month", Some("2025-04-01"), 100, 30.0, 30.0),
            cell("nps", "month", Some("2025-05-01"), 100, 32.0, 29.0),
            cell("nps", "month", Some("2025-07-01"), 100, 32.0, 29.0),
        ];
        let rows = rows(&cells, d("2025-07-15"), 10);
        assert_eq!(rows[0].previous_value, None);
        assert_eq!(rows[1].previous_value, Some(30.0));
        assert!((rows[1].change.expect("change") + 30.0).abs() < 1e-9);
        assert_eq!(rows[1].change_significant, Some(true));
        assert!((rows[2].change.expect("change") - 3.0).abs() < 1e-9);
        assert_eq!(rows[2].change_significant, Some(false));
        // July's previous month (June) had no answers.
        assert_eq!(rows[3].change, None);
        assert_eq!(rows[3].period_end, d("2025-07-31"));
        assert!(!rows[3].complete, "July is not over on the 15th");
        assert!(rows[2].complete);
    }

    /// Two days of NPS answers at two touchpoints, one with an unknown
    /// language: 2025-03-09 is a Sunday (week of Monday 03-03), 03-10 a
    /// Monday (week of 03-10), both in March.
    #[test]
    fn rollup_adds_fine_cells_into_periods_and_dimensions() {
        let fine = |day: &str, tp: &str, lang: Option<&str>, n: u64, a: f64, b: f64| FineCell {
            metric: "nps".into(),
            day: d(day),
            touchpoint: Some(tp.into()),
            language: lang.map(str::to_string),
            segment: None,
            n,
            sum_a: a,
            sum_b: b,
        };
        let cells = rollup(&[
            fine("2025-03-09", "in_store", Some("en"), 10, 5.0, 2.0),
            fine("2025-03-09", "online", None, 4, 1.0, 1.0),
            fine("2025-03-10", "in_store", Some("en"), 6, 3.0, 0.0),
        ]);
        let get = |period: &str, start: Option<&str>, dim: &str, group: &str| {
            cells
                .iter()
                .find(|c| {
                    c.period_type == period
                        && c.period_start == start.map(d)
                        && c.dimension == dim
                        && c.group_value == group
                })
                .map(|c| (c.n, c.sum_a, c.sum_b))
        };
        assert_eq!(get("all", None, "all", "all"), Some((20, 9.0, 3.0)));
        assert_eq!(
            get("month", Some("2025-03-01"), "all", "all"),
            Some((20, 9.0, 3.0))
        );
        assert_eq!(
            get("week", Some("2025-03-03"), "all", "all"),
            Some((14, 6.0, 3.0))
        );
        assert_eq!(
            get("week", Some("2025-03-10"), "all", "all"),
            Some((6, 3.0, 0.0))
        );
        assert_eq!(
            get("day", Some("2025-03-09"), "touchpoint", "online"),
            Some((4, 1.0, 1.0))
        );
        assert_eq!(get("all", None, "language", "en"), Some((16, 8.0, 2.0)));
        assert_eq!(get("all", None, "segment", "all"), None, "no segments");
        // Every period type and dimension adds up to the same total n.
        for period in ["all", "day", "week", "month"] {
            let total: u64 = cells
                .iter()
                .filter(|c| c.period_type == period && c.dimension == "touchpoint")
                .map(|c| c.n)
                .sum();
            assert_eq!(total, 20, "{period}");
        }
        assert_eq!(period_start("week", d("2025-03-03")), Some(d("2025-03-03")));
        assert_eq!(period_start("week", d("2024-12-31")), Some(d("2024-12-30")));
    }

    #[test]
    fn periods_end_where_they_should() {
        let run = d("2025-03-14");
        assert_eq!(
            period_end("day", Some(d("2025-02-28")), run),
            d("2025-02-28")
        );
        assert_eq!(
            period_end("week", Some(d("2025-03-10")), run),
            d("2025-03-16")
        );
        assert_eq!(
            period_end("month", Some(d("2024-02-01")), run),
            d("2024-02-29")
        );
        assert_eq!(
            period_end("month", Some(d("2025-12-01")), run),
            d("2025-12-31")
        );
        assert_eq!(period_end("all", None, run), run);
        assert_eq!(
            previous_start("month", d("2025-03-01")),
            Some(d("2025-02-01"))
        );
        assert_eq!(
            previous_start("week", d("2025-03-10")),
            Some(d("2025-03-03"))
        );
        assert_eq!(previous_start("all", d("2025-03-10")), None);
    }

    #[test]
    fn every_metric_has_its_estimator() {
        let nps = estimate(&cell("nps", "all", None, 20, 9.0, 5.0)).expect("nps");
        assert_eq!(nps, net_promoter_score(20, 9, 5).expect("nps"));
        let csat = estimate(&cell("csat", "all", None, 60, 45.0, 0.0)).expect("csat");
        assert_eq!(csat.value, 75.0);
        let ces = estimate(&cell("ces", "all", None, 8, 43.0, 245.0)).expect("ces");
        assert_eq!(ces.value, 5.375);
        assert!(estimate(&cell("unknown", "all", None, 8, 1.0, 1.0)).is_none());
    }
}
