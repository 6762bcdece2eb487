//! `marts/voice_closed_loop`: does the business get back to unhappy
//! customers, how fast, and does it matter?
//!
//! A ticket is negative when its satisfaction rating is 1–2 or its words
//! are scored negative. It is followed up when `tickets.follow_up_at` lies
//! within `followup_hours` (default 48) of the ticket being opened. Tickets
//! whose window had not closed by the end of the run date are left out of
//! the share (they may still be followed up); the median time counts every
//! follow-up known by the run date. The NPS of followed-up versus
//! not-followed-up customers is taken at their first NPS answer after the
//! window closed, one answer per negative ticket.
//!
//! Survey detractors (NPS 0–6) are counted, but their follow-ups are not
//! recorded in any export (`feedback` has no follow-up column, and the
//! generator plants none), so their follow-up share is written as NULL with
//! that reason rather than guessed from tickets.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;

use super::RunParams;
use super::columns::{self, opt_f64, opt_i64};
use super::scores::date32;
use super::stats::{Estimate, difference, median_with_interval, net_promoter_score, share_wilson};
use crate::secondary_suppression::complements_by_union;
use crate::{Error, Result};

/// The query behind the negative tickets.
pub const SQL: &str = include_str!("closed_loop.sql");

/// The query behind the NPS answers that follow them.
pub const ANSWERS_SQL: &str = include_str!("closed_loop_answers.sql");

/// Why survey detractors have no follow-up share.
pub const DETRACTOR_FOLLOW_UPS_NOT_RECORDED: &str = "not recorded: the survey export (feedback) has no follow-up column, so follow-ups of detractors cannot be measured";

/// One negative ticket, as `closed_loop.sql` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct NegativeTicket {
    /// Day the ticket was opened (UTC).
    pub opened: NaiveDate,
    /// When it was opened (µs since 1970, UTC): which of a customer's
    /// tickets came last before an answer, when two share a day.
    pub opened_at: i64,
    /// Hours from opening to the follow-up; `None` when there is none (yet).
    pub follow_up_hours: Option<f64>,
    /// Whether the follow-up window had closed by the end of the run date.
    pub window_closed: bool,
    /// The customer's first NPS answer after the window closed, and its id.
    pub next_nps: Option<i64>,
    pub answer_id: Option<String>,
    /// The customer (`customer_key`), when known.
    pub customer: Option<i64>,
}

impl NegativeTicket {
    fn followed_up(&self, hours: f64) -> bool {
        self.follow_up_hours
            .is_some_and(|h| (0.0..=hours).contains(&h))
    }
}

/// One row of `marts/voice_closed_loop`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopRow {
    /// `negative_tickets` or `nps_detractors`.
    pub population: String,
    /// `all` or `month`.
    pub period_type: String,
    pub period_start: Option<NaiveDate>,
    pub metric: String,
    /// `None` when suppressed.
    pub n: Option<u64>,
    pub value: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub suppressed: bool,
    pub detail: Option<String>,
}

fn row(
    population: &str,
    period: Option<NaiveDate>,
    metric: &str,
    n: u64,
    estimate: Option<Estimate>,
    suppressed: bool,
    detail: Option<String>,
) -> LoopRow {
    let shown = if suppressed { None } else { estimate };
    LoopRow {
        population: population.into(),
        period_type: if period.is_some() { "month" } else { "all" }.into(),
        period_start: period,
        metric: metric.into(),
        n: (!suppressed).then_some(n),
        value: shown.map(|e| e.value),
        ci_low: shown.map(|e| e.ci_low),
        ci_high: shown.map(|e| e.ci_high),
        suppressed,
        detail,
    }
}

/// Which periods' rows to hide, from their tickets (all time first, then
/// the months, which add up to it): those of fewer than `k` customers,
/// then the smallest months shown until the hidden months hold at least
/// `k` customers together, each counted once however many months they
/// complained in, since all time minus the months shown is theirs.
fn hidden_periods(tickets: &[Vec<&NegativeTicket>], k: usize) -> Vec<bool> {
    let customers: Vec<BTreeSet<Option<i64>>> = (tickets.iter())
        .map(|ts| ts.iter().map(|t| t.customer).collect())
        .collect();
    let min = k as u64;
    let mut hidden: Vec<bool> = customers.iter().map(|c| (c.len() as u64) < min).collect();
    // a month with none in the population adds nothing to all time and
    // protects nothing
    let months: Vec<usize> = (1..customers.len())
        .filter(|&i| !customers[i].is_empty())
        .collect();
    let sizes: Vec<u64> = months.iter().map(|&i| customers[i].len() as u64).collect();
    let months_hidden: Vec<bool> = months.iter().map(|&i| hidden[i]).collect();
    let union = |positions: &[usize]| -> u64 {
        let all: BTreeSet<&Option<i64>> = positions
            .iter()
            .flat_map(|&p| &customers[months[p]])
            .collect();
        all.len() as u64
    };
    let free = vec![false; months.len()];
    let (hide, hide_total) =
        complements_by_union(&months_hidden, &sizes, &free, min, hidden[0], &union);
    for (p, h) in hide.into_iter().enumerate() {
        hidden[months[p]] |= h;
    }
    hidden[0] |= hide_total;
    hidden
}

fn nps_of(answers: &[i64]) -> Option<Estimate> {
    let n = answers.len() as u64;
    let promoters = answers.iter().filter(|&&s| s >= 9).count() as u64;
    let detractors = answers.iter().filter(|&&s| s <= 6).count() as u64;
    net_promoter_score(n, promoters, detractors)
}

/// The closed-loop rows from the negative tickets and the number of
/// survey detractor answers, in a fixed order: all time first, then month
/// by month.
pub fn rows(
    tickets: &[NegativeTicket],
    detractor_answers: u64,
    followup_hours: u32,
    min_group_size: usize,
) -> Vec<LoopRow> {
    let hours = f64::from(followup_hours);
    let k = min_group_size;
    let mut out = Vec::new();
    let share_detail = format!(
        "% of negative tickets followed up within {followup_hours} h of being opened (Wilson 95% interval); tickets whose window is still open are left out"
    );
    let median_detail = "hours from opening to follow-up, over every follow-up known by the run date (order-statistic 95% interval)".to_string();
    let mut months: BTreeMap<NaiveDate, Vec<&NegativeTicket>> = BTreeMap::new();
    for t in tickets {
        if let Some(m) = t.opened.with_day(1) {
            months.entry(m).or_default().push(t);
        }
    }
    let periods: Vec<(Option<NaiveDate>, Vec<&NegativeTicket>)> =
        std::iter::once((None, tickets.iter().collect::<Vec<_>>()))
            .chain(months.into_iter().map(|(m, ts)| (Some(m), ts)))
            .collect();
    // Tickets whose window closed (the share) and tickets with a follow-up
    // (the median), with their customers, per period: all time first.
    let closed: Vec<Vec<&NegativeTicket>> = (periods.iter())
        .map(|(_, ts)| ts.iter().copied().filter(|t| t.window_closed).collect())
        .collect();
    let followed: Vec<Vec<&NegativeTicket>> = (periods.iter())
        .map(|(_, ts)| {
            (ts.iter().copied())
                .filter(|t| t.follow_up_hours.is_some_and(|h| h >= 0.0))
                .collect()
        })
        .collect();
    let hide_share = hidden_periods(&closed, k);
    let hide_median = hidden_periods(&followed, k);
    let mut all_time_rows = Vec::new();
    for (i, (period, _)) in periods.iter().enumerate() {
        let hits = closed[i].iter().filter(|t| t.followed_up(hours)).count() as u64;
        let n = closed[i].len() as u64;
        let target = if period.is_none() {
            &mut all_time_rows
        } else {
            &mut out
        };
        target.push(row(
            "negative_tickets",
            *period,
            "followed_up_share",
            n,
            share_wilson(n, hits),
            hide_share[i],
            Some(share_detail.clone()),
        ));
        let mut delays: Vec<f64> = followed[i]
            .iter()
            .filter_map(|t| t.follow_up_hours)
            .collect();
        target.push(row(
            "negative_tickets",
            *period,
            "median_hours_to_follow_up",
            delays.len() as u64,
            median_with_interval(&mut delays),
            hide_median[i],
            Some(median_detail.clone()),
        ));
    }
    // Each answer once, for the latest ticket before it: one customer's ten
    // unanswered tickets followed by one NPS answer are one answer, not ten,
    // and never in both groups. Groups are suppressed on their customers.
    let mut by_answer: BTreeMap<&str, &NegativeTicket> = BTreeMap::new();
    for t in tickets.iter().filter(|t| t.window_closed) {
        if let Some(a) = t.answer_id.as_deref() {
            let e = by_answer.entry(a).or_insert(t);
            if t.opened_at > e.opened_at {
                *e = t;
            }
        }
    }
    let answers = |followed_up: bool| -> (Vec<i64>, u64) {
        let group: Vec<&&NegativeTicket> = (by_answer.values())
            .filter(|t| t.followed_up(hours) == followed_up)
            .collect();
        let customers: BTreeSet<Option<i64>> = group.iter().map(|t| t.customer).collect();
        (
            group.iter().filter_map(|t| t.next_nps).collect(),
            customers.len() as u64,
        )
    };
    let ((yes, yes_customers), (no, no_customers)) = (answers(true), answers(false));
    let (nps_yes, nps_no) = (nps_of(&yes), nps_of(&no));
    let next_detail = "NPS at the customer's first answer after the follow-up window closed (adjusted Wald interval on the promoter/detractor difference)";
    all_time_rows.push(row(
        "negative_tickets",
        None,
        "next_nps_followed_up",
        yes_customers,
        nps_yes,
        yes_customers < k as u64,
        Some(next_detail.into()),
    ));
    all_time_rows.push(row(
        "negative_tickets",
        None,
        "next_nps_not_followed_up",
        no_customers,
        nps_no,
        no_customers < k as u64,
        Some(next_detail.into()),
    ));
    // The difference is shown only when both groups are.
    let both = yes_customers.min(no_customers);
    let diff = match (nps_yes, nps_no) {
        (Some(a), Some(b)) => Some(difference(&a, &b)),
        _ => None,
    };
    let diff_detail = diff.map(|d| {
        if d.ci_low > 0.0 || d.ci_high < 0.0 {
            "followed-up minus not followed-up NPS points; the 95% interval excludes 0 (likely real)"
        } else {
            "followed-up minus not followed-up NPS points; the 95% interval includes 0 (could be noise)"
        }
        .to_string()
    });
    let mut diff_row = row(
        "negative_tickets",
        None,
        "next_nps_difference",
        both,
        diff,
        both < k as u64,
        diff_detail,
    );
    if !diff_row.suppressed {
        diff_row.n = Some((yes.len() + no.len()) as u64);
    }
    all_time_rows.push(diff_row);
    let mut detractors = row(
        "nps_detractors",
        None,
        "followed_up_share",
        detractor_answers,
        None,
        detractor_answers < k as u64,
        Some(DETRACTOR_FOLLOW_UPS_NOT_RECORDED.into()),
    );
    detractors.value = None;
    all_time_rows.push(detractors);
    all_time_rows.extend(out);
    all_time_rows
}

/// Customers' NPS answers, sorted by customer, time and id: where the
/// first answer after a ticket's follow-up window is looked up.
#[derive(Debug, Default)]
pub struct Answers {
    /// (customer_key, answered at in µs, answer id, score)
    rows: Vec<(i64, i64, String, i64)>,
    /// Each customer's rows, as a range of `rows`: a binary search over
    /// all 600,000 answers of a million customers missed the cache at
    /// every step and took longer than the join it replaced.
    ranges: HashMap<i64, (u32, u32), foldhash::fast::RandomState>,
}

impl Answers {
    /// The answers, in any order.
    pub fn new(mut rows: Vec<(i64, i64, String, i64)>) -> Answers {
        rows.sort_unstable();
        let mut ranges: HashMap<i64, (u32, u32), _> = HashMap::default();
        for (i, r) in rows.iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 answers");
            ranges.entry(r.0).or_insert((i, i)).1 = i + 1;
        }
        Answers { rows, ranges }
    }

    /// The first answer (by time, then id, as `ORDER BY at, message_id`)
    /// of `customer` at or after `from` (µs): its score and id.
    pub fn first_from(&self, customer: i64, from: i64) -> Option<(i64, &str)> {
        let &(start, end) = self.ranges.get(&customer)?;
        let theirs = &self.rows[start as usize..end as usize];
        let r = theirs.get(theirs.partition_point(|r| r.1 < from))?;
        Some((r.3, r.2.as_str()))
    }
}

/// The negative tickets of `closed_loop.sql`, each with the customer's
/// first NPS answer of `closed_loop_answers.sql` given once its follow-up
/// window (`followup_hours` from opening) had closed (needs
/// `feedback_scored`).
pub async fn read_negative_tickets(
    session: &SessionContext,
    params: &RunParams,
) -> Result<Vec<NegativeTicket>> {
    let (tickets, answers) = tokio::join!(
        super::collect(session, SQL, params, "voice/closed_loop"),
        super::collect(session, ANSWERS_SQL, params, "voice/closed_loop_answers"),
    );
    let mut rows = Vec::new();
    for b in &answers? {
        let (customer, at) = (
            columns::ints(b, "customer_key")?,
            columns::timestamps(b, "at")?,
        );
        let (id, rating) = (
            columns::strings(b, "message_id")?,
            columns::ints(b, "rating")?,
        );
        for i in 0..b.num_rows() {
            if customer.is_valid(i) && at.is_valid(i) && rating.is_valid(i) {
                let id = columns::opt_str(&id, i).unwrap_or_default().to_string();
                rows.push((customer.value(i), at.value(i), id, rating.value(i)));
            }
        }
    }
    let answers = Answers::new(rows);
    // whole microseconds: the window ends exactly `followup_hours` after
    // the ticket was opened
    let window = i64::from(params.followup_hours) * 3_600_000_000;
    let mut out = Vec::new();
    for b in &tickets? {
        let at = columns::timestamps(b, "at")?;
        let hours = columns::floats(b, "follow_up_hours")?;
        let closed = columns::bools(b, "window_closed")?;
        let customer = columns::ints(b, "customer_key")?;
        for i in 0..b.num_rows() {
            let opened = DateTime::from_timestamp_micros(at.value(i))
                .map(|t| t.date_naive())
                .ok_or_else(|| Error::Internal("voice: ticket time out of range".into()))?;
            let customer = opt_i64(&customer, i);
            let next = customer.and_then(|c| answers.first_from(c, at.value(i) + window));
            out.push(NegativeTicket {
                opened,
                opened_at: at.value(i),
                follow_up_hours: opt_f64(&hours, i),
                window_closed: closed.is_valid(i) && closed.value(i),
                next_nps: next.map(|(score, _)| score),
                answer_id: next.map(|(_, id)| id.to_string()),
                customer,
            });
        }
    }
    Ok(out)
}

/// Schema of `marts/voice_closed_loop`.
pub fn schema() -> SchemaRef {
    let f = |name: &str, ty: DataType, nullable: bool| Field::new(name, ty, nullable);
    Arc::new(Schema::new(vec![
        f("population", DataType::Utf8, false),
        f("period_type", DataType::Utf8, false),
        f("period_start", DataType::Date32, true),
        f("metric", DataType::Utf8, false),
        f("n", DataType::Int64, true),
        f("value", DataType::Float64, true),
        f("ci_low", DataType::Float64, true),
        f("ci_high", DataType::Float64, true),
        f("suppressed", DataType::Boolean, false),
        f("detail", DataType::Utf8, true),
    ]))
}

/// The rows as one batch of [`schema`].
pub fn to_batch(rows: &[LoopRow]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            rows.iter()
                .map(|r| Some(r.population.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| Some(r.period_type.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.period_start.map(date32))
                .collect::<Date32Array>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| Some(r.metric.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.n.map(|n| n as i64))
                .collect::<Int64Array>(),
        ),
        Arc::new(rows.iter().map(|r| r.value).collect::<Float64Array>()),
        Arc::new(rows.iter().map(|r| r.ci_low).collect::<Float64Array>()),
        Arc::new(rows.iter().map(|r| r.ci_high).collect::<Float64Array>()),
        Arc::new(
            rows.iter()
                .map(|r| Some(r.suppressed))
                .collect::<BooleanArray>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.detail.as_deref())
                .collect::<StringArray>(),
        ),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ticket of its own customer (one per day), whose next answer is its own.
    fn t(day: &str, hours: Option<f64>, closed: bool, next: Option<i64>) -> NegativeTicket {
        let opened: NaiveDate = day.parse().expect("date");
        NegativeTicket {
            opened,
            opened_at: opened
                .and_hms_opt(9, 0, 0)
                .expect("time")
                .and_utc()
                .timestamp_micros(),
            follow_up_hours: hours,
            window_closed: closed,
            next_nps: next,
            answer_id: next.map(|_| format!("A-{day}")),
            customer: Some(i64::from(opened.ordinal())),
        }
    }

    /// The lookup against `closed_loop.sql`'s former join, written out: of
    /// the customer's answers at or after the window's end, the least by
    /// (time, id). Random answers of 20 customers, many at the same second.
    #[test]
    fn the_first_answer_is_the_one_the_join_picked() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(11);
        let rows: Vec<(i64, i64, String, i64)> = (0..2_000)
            .map(|i| {
                let id = format!("R{:04}", rng.random_range(0..5_000));
                let at = rng.random_range(0..200) * 1_000_000;
                (rng.random_range(0..20), at, format!("{id}-{i}"), i % 11)
            })
            .collect();
        let answers = Answers::new(rows.clone());
        for customer in -1..21 {
            for from in (-1..201).map(|s| s * 1_000_000 + rng.random_range(-1..2)) {
                let join = rows
                    .iter()
                    .filter(|r| r.0 == customer && r.1 >= from)
                    .min_by(|a, b| (a.1, &a.2).cmp(&(b.1, &b.2)))
                    .map(|r| (r.3, r.2.as_str()));
                assert_eq!(
                    answers.first_from(customer, from),
                    join,
                    "{customer} {from}"
                );
            }
        }
    }

    /// One customer's ten unanswered complaints, then one NPS answer of 0:
    /// one answer of one customer, below k = 3, not ten. A customer whose
    /// followed-up complaint is followed by an unanswered one before their
    /// answer counts once, for the later (not followed up).
    #[test]
    fn an_answer_counts_once_for_its_customer() {
        let one_customer =
            |day: &str, hours: Option<f64>, customer: i64, answer: &str| NegativeTicket {
                customer: Some(customer),
                answer_id: Some(answer.to_string()),
                ..t(day, hours, true, Some(0))
            };
        let tickets: Vec<NegativeTicket> = (1..=10)
            .map(|d| one_customer(&format!("2025-03-{d:02}"), None, 1, "A1"))
            .collect();
        let out = rows(&tickets, 1, 48, 3);
        let no = find(&out, None, "next_nps_not_followed_up");
        assert!(no.suppressed && no.value.is_none(), "{no:?}");

        let mut tickets = vec![
            one_customer("2025-03-01", Some(2.0), 7, "A7"),
            one_customer("2025-03-05", None, 7, "A7"),
        ];
        tickets.extend(
            (0..3).map(|i| one_customer("2025-03-02", Some(1.0), 20 + i, &format!("B{i}"))),
        );
        let rows = rows(&tickets, 1, 48, 1);
        assert_eq!(find(&rows, None, "next_nps_not_followed_up").n, Some(1));
        assert_eq!(
            find(&rows, None, "next_nps_followed_up").n,
            Some(3),
            "A7 is not in both"
        );
    }

    fn find<'a>(rows: &'a [LoopRow], period: Option<&str>, metric: &str) -> &'a LoopRow {
        let p = period.map(|s| s.parse::<NaiveDate>().expect("date"));
        rows.iter()
            .find(|r| {
                r.period_start == p && r.metric == metric && r.population == "negative_tickets"
            })
            .unwrap_or_else(|| panic!("no row {period:?} {metric}"))
    }

    /// A hand-built month of negative tickets (k = 3):
    ///
    /// | ticket | follow-up after | window closed | next NPS |
    /// | 1 | 5 h     | yes | 10 |
    /// | 2 | 30 h    | yes | 9  |
    /// | 3 | 47.5 h  | yes | 6  |
    /// | 4 | 60 h    | yes | 3  |  (too late: not followed up)
    /// | 5 | none    | yes | 2  |
    /// | 6 | none    | yes | 8  |
    /// | 7 | none    | no  | –  |  (window still open: left out of the share)
    /// | 8 | 12 h    | no  | –  |  (counts for the median only)
    ///
    /// Share: 3 of 6 closed tickets = 50%. Median of {5, 30, 47.5, 60, 12}
    /// = 30 h. Next NPS followed up: {10, 9, 6} → 2 promoters, 1 detractor
    /// = 33.3; not followed up: {3, 2, 8} → 0 promoters, 2 detractors =
    /// −66.7; difference 100 points.
    #[test]
    fn closed_loop_metrics_on_a_hand_built_month() {
        let tickets = [
            t("2025-03-02", Some(5.0), true, Some(10)),
            t("2025-03-03", Some(30.0), true, Some(9)),
            t("2025-03-04", Some(47.5), true, Some(6)),
            t("2025-03-05", Some(60.0), true, Some(3)),
            t("2025-03-06", None, true, Some(2)),
            t("2025-03-07", None, true, Some(8)),
            t("2025-03-30", None, false, None),
            t("2025-03-31", Some(12.0), false, None),
        ];
        let rows = rows(&tickets, 7, 48, 3);
        let share = find(&rows, None, "followed_up_share");
        assert_eq!((share.n, share.value), (Some(6), Some(50.0)));
        let wilson = share_wilson(6, 3).expect("n");
        assert_eq!(
            (share.ci_low, share.ci_high),
            (Some(wilson.ci_low), Some(wilson.ci_high))
        );
        let median = find(&rows, None, "median_hours_to_follow_up");
        assert_eq!((median.n, median.value), (Some(5), Some(30.0)));
        let yes = find(&rows, None, "next_nps_followed_up");
        assert_eq!(yes.n, Some(3));
        assert!((yes.value.expect("shown") - 100.0 / 3.0).abs() < 1e-9);
        let no = find(&rows, None, "next_nps_not_followed_up");
        assert!((no.value.expect("shown") + 200.0 / 3.0).abs() < 1e-9);
        let diff = find(&rows, None, "next_nps_difference");
        assert!((diff.value.expect("shown") - 100.0).abs() < 1e-9);
        assert_eq!(diff.n, Some(6));
        // The month row repeats the all-time share (one month only).
        let march = find(&rows, Some("2025-03-01"), "followed_up_share");
        assert_eq!(march.value, Some(50.0));
        // Detractors: counted, share not measurable.
        let det = rows
            .iter()
            .find(|r| r.population == "nps_detractors")
            .expect("detractor row");
        assert_eq!((det.n, det.value), (Some(7), None));
        assert_eq!(
            det.detail.as_deref(),
            Some(DETRACTOR_FOLLOW_UPS_NOT_RECORDED)
        );
    }

    /// Two tickets of one customer on the same day, the first at 09:00 not
    /// followed up, the second at 15:00 followed up after 2 h, then one
    /// answer: it follows the later ticket, the one followed up.
    #[test]
    fn an_answer_belongs_to_the_latest_ticket_of_the_day() {
        let at = |hour: u32| {
            "2025-03-03"
                .parse::<NaiveDate>()
                .expect("date")
                .and_hms_opt(hour, 0, 0)
                .expect("time")
                .and_utc()
                .timestamp_micros()
        };
        let ticket = |hour, hours| NegativeTicket {
            opened_at: at(hour),
            customer: Some(5),
            answer_id: Some("A5".into()),
            ..t("2025-03-03", hours, true, Some(9))
        };
        let rows = rows(&[ticket(9, None), ticket(15, Some(2.0))], 0, 48, 1);
        assert_eq!(find(&rows, None, "next_nps_followed_up").n, Some(1));
        let no = find(&rows, None, "next_nps_not_followed_up");
        assert_eq!((no.n, no.value), (None, None), "nobody in it");
    }

    /// One customer's ten complaints in a month are one person: the month
    /// is not shown at k = 10.
    #[test]
    fn rows_are_suppressed_on_customers_not_tickets() {
        let tickets: Vec<NegativeTicket> = (1..=10)
            .map(|d| NegativeTicket {
                customer: Some(1),
                ..t(&format!("2025-03-{d:02}"), Some(3.0), true, None)
            })
            .collect();
        let rows = rows(&tickets, 0, 48, 10);
        for metric in ["followed_up_share", "median_hours_to_follow_up"] {
            assert!(find(&rows, Some("2025-03-01"), metric).suppressed);
            assert!(find(&rows, None, metric).suppressed);
        }
    }

    /// January (12 customers), February (11) and March (3) add up to all
    /// time: March hidden alone would be all time minus the two shown, so
    /// February goes too, and the two hidden hold 14 customers.
    #[test]
    fn a_hidden_month_is_not_all_time_minus_the_shown_ones() {
        let mut tickets = Vec::new();
        let mut customer = 0;
        for (month, n) in [(1, 12), (2, 11), (3, 3)] {
            for i in 0..n {
                customer += 1;
                tickets.push(NegativeTicket {
                    customer: Some(customer),
                    ..t(
                        &format!("2025-{month:02}-{:02}", i + 1),
                        Some(3.0),
                        true,
                        None,
                    )
                });
            }
        }
        let rows = rows(&tickets, 0, 48, 10);
        for metric in ["followed_up_share", "median_hours_to_follow_up"] {
            let hidden: Vec<bool> = ["2025-01-01", "2025-02-01", "2025-03-01"]
                .iter()
                .map(|m| find(&rows, Some(m), metric).suppressed)
                .collect();
            assert_eq!(hidden, [false, true, true], "{metric}");
            assert!(!find(&rows, None, metric).suppressed);
        }
    }

    /// A run on the 1st: the new month's tickets are still in their
    /// follow-up window, so its share has nobody. That empty month must not
    /// make a month of 12 customers hide beside it.
    #[test]
    fn an_empty_month_hides_no_other() {
        let mut tickets: Vec<NegativeTicket> = (1..=12)
            .map(|i| NegativeTicket {
                customer: Some(i),
                ..t(&format!("2025-03-{:02}", i + 1), Some(3.0), true, None)
            })
            .collect();
        tickets.push(NegativeTicket {
            customer: Some(99),
            ..t("2025-04-01", None, false, None)
        });
        let rows = rows(&tickets, 0, 48, 10);
        assert!(!find(&rows, Some("2025-03-01"), "followed_up_share").suppressed);
        assert!(find(&rows, Some("2025-04-01"), "followed_up_share").suppressed);
    }

    #[test]
    fn small_groups_are_suppressed() {
        let tickets = [
            t("2025-03-02", Some(5.0), true, Some(10)),
            t("2025-03-03", None, true, Some(2)),
        ];
        let rows = rows(&tickets, 1, 48, 10);
        for r in &rows {
            assert!(r.suppressed, "{r:?}");
            assert_eq!(
                (r.n, r.value, r.ci_low, r.ci_high),
                (None, None, None, None)
            );
        }
        let batch = to_batch(&rows).expect("batch");
        assert_eq!(batch.num_rows(), rows.len());
        assert_eq!(batch.schema(), schema());
    }
}
