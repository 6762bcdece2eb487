//! Churn labels and churn rates for a non-contractual business.
//!
//! A customer churned after a cut-off c when they made no purchase in
//! (c, c + inactive_days]; they were active at c when they made one in
//! (c − inactive_days, c]. Both follow from the first purchase day and the
//! customer's long gaps (consecutive purchase days more than inactive_days
//! apart, or the last purchase with nothing after): a handful per customer,
//! so every cut-off of every month is cheap to evaluate.
//!
//! Rates are given for two populations, because they answer different
//! questions: `customers` (everyone who had bought by c: "what share of the
//! customers we ever had did not come back", which grows as lapsed
//! customers accumulate) and `active` (those who had also bought in the
//! inactive_days before c: "what share of our current customers did we
//! lose", comparable month to month).

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use super::summary::{epoch_day, from_epoch_day};
use crate::secondary_suppression::{SumFamily, protect_sums};

/// A customer's purchase history reduced to what churn needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// First purchase day (days since 1970-01-01).
    pub first_day: i32,
    /// Long gaps: (purchase day, next purchase day or `None`), ascending.
    pub gaps: Vec<(i32, Option<i32>)>,
}

impl History {
    /// The history of a customer's purchase days (ascending, distinct).
    pub fn from_days(days: &[i32], inactive: i32) -> History {
        let mut gaps: Vec<(i32, Option<i32>)> = days
            .windows(2)
            .filter(|w| w[1] - w[0] > inactive)
            .map(|w| (w[0], Some(w[1])))
            .collect();
        if let Some(&last) = days.last() {
            gaps.push((last, None));
        }
        History {
            first_day: days.first().copied().unwrap_or(i32::MAX),
            gaps,
        }
    }

    /// Bought at least once on or before `c`.
    pub fn purchased_by(&self, c: i32) -> bool {
        self.first_day <= c
    }

    /// Bought on or before `c` and not in (c, c + inactive] (the last purchase
    /// on or before c starts a long gap reaching past c + inactive).
    pub fn churned_after(&self, c: i32, inactive: i32) -> bool {
        self.purchased_by(c)
            && self
                .gaps
                .iter()
                .any(|&(d, next)| d <= c && next.is_none_or(|n| n > c + inactive))
    }

    /// Bought in (c − inactive, c].
    pub fn active_at(&self, c: i32, inactive: i32) -> bool {
        self.purchased_by(c)
            && !self
                .gaps
                .iter()
                .any(|&(d, next)| d + inactive <= c && next.is_none_or(|n| n > c))
    }
}

/// One row of `marts/churn_rates` before suppression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateRow {
    /// Month of the cut-off, `YYYY-MM`.
    pub period: String,
    pub cutoff: NaiveDate,
    /// `customers` or `active`.
    pub population: &'static str,
    /// `month`, `segment` or `initiative_arm`.
    pub dimension: &'static str,
    pub group_value: String,
    pub customers: u64,
    pub churned: u64,
}

/// Month-end cut-offs whose outcome window has ended by `run_date`, from
/// the month of the earliest first purchase on.
pub fn month_end_cutoffs(first_purchase: i32, run_date: NaiveDate, inactive: i32) -> Vec<i32> {
    let last_allowed = epoch_day(run_date) - inactive;
    let mut out = Vec::new();
    let start = from_epoch_day(first_purchase);
    let (mut y, mut m) = (start.year(), start.month());
    loop {
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        let Some(next_first) = NaiveDate::from_ymd_opt(ny, nm, 1) else {
            break;
        };
        let end = epoch_day(next_first) - 1;
        if end > last_allowed {
            break;
        }
        out.push(end);
        (y, m) = (ny, nm);
    }
    out
}

/// Churn rates per month (at month ends), and per segment and initiative
/// arm at `latest_cutoff`, for both populations.
///
/// `segments[i]` is customer i's segment name; `arms[i]` the
/// `initiative arm` labels customer i belongs to.
pub fn churn_rates(
    histories: &[History],
    segments: &[Option<String>],
    arms: &[Vec<String>],
    cutoffs: &[i32],
    latest_cutoff: i32,
    inactive: i32,
) -> Vec<RateRow> {
    // (customers, churned) per population: [0] everyone who had bought by
    // the cut-off, [1] those also active at it. One pass over the customers
    // with every cut-off for each: a pass per cut-off and population read
    // every history from memory again (60 passes over a million).
    let mut by_month = vec![[(0u64, 0u64); 2]; cutoffs.len()];
    let mut by_segment: [BTreeMap<&str, (u64, u64)>; 2] = Default::default();
    let mut by_arm: [BTreeMap<&str, (u64, u64)>; 2] = Default::default();
    for (i, h) in histories.iter().enumerate() {
        for (counts, &c) in by_month.iter_mut().zip(cutoffs) {
            if !h.purchased_by(c) {
                continue;
            }
            let churned = u64::from(h.churned_after(c, inactive));
            counts[0].0 += 1;
            counts[0].1 += churned;
            if h.active_at(c, inactive) {
                counts[1].0 += 1;
                counts[1].1 += churned;
            }
        }
        if !h.purchased_by(latest_cutoff) {
            continue;
        }
        let churned = u64::from(h.churned_after(latest_cutoff, inactive));
        let active = h.active_at(latest_cutoff, inactive);
        if let Some(Some(s)) = segments.get(i) {
            count_in_group(&mut by_segment, s, churned, active);
        }
        for a in arms.get(i).map(Vec::as_slice).unwrap_or_default() {
            count_in_group(&mut by_arm, a, churned, active);
        }
    }
    let mut rows = Vec::new();
    let period = |c: i32| from_epoch_day(c).format("%Y-%m").to_string();
    for (p, population) in ["customers", "active"].into_iter().enumerate() {
        for (counts, &c) in by_month.iter().zip(cutoffs) {
            let (n, churned) = counts[p];
            rows.push(RateRow {
                period: period(c),
                cutoff: from_epoch_day(c),
                population,
                dimension: "month",
                group_value: "all".into(),
                customers: n,
                churned,
            });
        }
        for (dimension, groups) in [("segment", &by_segment[p]), ("initiative_arm", &by_arm[p])] {
            for (group_value, &(n, churned)) in groups {
                rows.push(RateRow {
                    period: period(latest_cutoff),
                    cutoff: from_epoch_day(latest_cutoff),
                    population,
                    dimension,
                    group_value: group_value.to_string(),
                    customers: n,
                    churned,
                });
            }
        }
    }
    rows
}

/// Counts a customer who had bought by the cut-off in group `name` of
/// both populations ([0] everyone, [1] when `active` at the cut-off).
fn count_in_group<'a>(
    groups: &mut [BTreeMap<&'a str, (u64, u64)>; 2],
    name: &'a str,
    churned: u64,
    active: bool,
) {
    for (group, member) in groups.iter_mut().zip([true, active]) {
        if member {
            let counts = group.entry(name).or_default();
            counts.0 += 1;
            counts.1 += churned;
        }
    }
}

/// Which rows of `marts/churn_rates` to hide: those of fewer than `min`
/// customers, and then the rows that would give a small group back by
/// subtraction. A group's active customers are some of its customers (the
/// rest, who had lapsed, are their difference), and at the latest cut-off
/// the segments add up to that month's row when the cut-off is a month end.
/// Customers outside every published part (lapsed, or without a segment)
/// are a part never published: fewer than `min` of them count as a hidden
/// part, so a shown row is hidden beside them.
pub fn hidden_rows(rows: &[RateRow], min: u64) -> Vec<bool> {
    let mut sizes: Vec<u64> = rows.iter().map(|r| r.customers).collect();
    let mut hidden: Vec<bool> = sizes.iter().map(|&n| n < min).collect();
    let find = |population: &str, dimension: &str, group: &str, cutoff: NaiveDate| {
        rows.iter().position(|r| {
            r.population == population
                && r.dimension == dimension
                && r.group_value == group
                && r.cutoff == cutoff
        })
    };
    let mut families: Vec<SumFamily> = Vec::new();
    for (i, r) in rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.population == "active")
    {
        if let Some(total) = find("customers", r.dimension, &r.group_value, r.cutoff) {
            families.push(SumFamily {
                total,
                members: vec![i],
            });
        }
    }
    for population in ["customers", "active"] {
        let segments: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].population == population && rows[i].dimension == "segment")
            .collect();
        let Some(&first) = segments.first() else {
            continue;
        };
        if let Some(total) = find(population, "month", "all", rows[first].cutoff) {
            families.push(SumFamily {
                total,
                members: segments,
            });
        }
    }
    for f in &mut families {
        let parts: u64 = f.members.iter().map(|&m| sizes[m]).sum();
        if let Some(rest) = sizes[f.total]
            .checked_sub(parts)
            .filter(|r| (1..min).contains(r))
        {
            f.members.push(sizes.len());
            sizes.push(rest);
            hidden.push(true);
        }
    }
    protect_sums(&sizes, &mut hidden, &families, min);
    hidden.truncate(rows.len());
    hidden
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(
        population: &'static str,
        dimension: &'static str,
        group: &str,
        customers: u64,
    ) -> RateRow {
        RateRow {
            period: "2025-06".into(),
            cutoff: NaiveDate::from_ymd_opt(2025, 6, 30).expect("date"),
            population,
            dimension,
            group_value: group.into(),
            customers,
            churned: customers / 3,
        }
    }

    /// A segment of 14 customers, 11 of them active: the 3 who had lapsed
    /// would be the two rows' difference, so the active row is hidden. The
    /// segments add up to the month's row (the cut-off is a month end): one
    /// small segment hidden, the next smallest goes too.
    #[test]
    fn no_small_group_is_the_difference_of_two_rows() {
        let rows = [
            rate("customers", "segment", "regulars", 14),
            rate("active", "segment", "regulars", 11),
            rate("customers", "segment", "big", 40),
            rate("active", "segment", "big", 40),
            rate("customers", "segment", "tiny", 4),
            rate("customers", "segment", "mid", 20),
            rate("active", "segment", "mid", 8),
            rate("customers", "month", "all", 78),
            rate("active", "month", "all", 59),
        ];
        let hidden = hidden_rows(&rows, 10);
        assert!(hidden[1], "regulars' active row: 14 − 11 = 3 lapsed");
        assert!(hidden[4], "tiny is small");
        assert!(
            hidden[0],
            "regulars, the smallest segment shown beside tiny"
        );
        assert!(!hidden[2] && !hidden[3] && !hidden[7]);
        assert!(hidden[6], "mid's 8 active are few");
        assert!(
            !hidden[5],
            "mid's 12 who lapsed are not few: its customers row stays: {hidden:?}"
        );
    }

    /// The rates as first written: a pass over every customer for each
    /// population and cut-off, and for each population at the latest.
    fn churn_rates_by_passes(
        histories: &[History],
        segments: &[Option<String>],
        arms: &[Vec<String>],
        cutoffs: &[i32],
        latest_cutoff: i32,
        inactive: i32,
    ) -> Vec<RateRow> {
        let mut rows = Vec::new();
        let period = |c: i32| from_epoch_day(c).format("%Y-%m").to_string();
        let populations: [(&'static str, bool); 2] = [("customers", false), ("active", true)];
        let member = |h: &History, c: i32, active_only: bool| {
            h.purchased_by(c) && (!active_only || h.active_at(c, inactive))
        };
        for (population, active_only) in populations {
            for &c in cutoffs {
                let (mut n, mut churned) = (0u64, 0u64);
                for h in histories {
                    if member(h, c, active_only) {
                        n += 1;
                        churned += u64::from(h.churned_after(c, inactive));
                    }
                }
                rows.push(RateRow {
                    period: period(c),
                    cutoff: from_epoch_day(c),
                    population,
                    dimension: "month",
                    group_value: "all".into(),
                    customers: n,
                    churned,
                });
            }
            let mut by_segment: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            let mut by_arm: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            for (i, h) in histories.iter().enumerate() {
                if !member(h, latest_cutoff, active_only) {
                    continue;
                }
                let churned = u64::from(h.churned_after(latest_cutoff, inactive));
                if let Some(Some(s)) = segments.get(i) {
                    let e = by_segment.entry(s.clone()).or_default();
                    e.0 += 1;
                    e.1 += churned;
                }
                for a in arms.get(i).map(Vec::as_slice).unwrap_or_default() {
                    let e = by_arm.entry(a.clone()).or_default();
                    e.0 += 1;
                    e.1 += churned;
                }
            }
            for (dimension, groups) in [("segment", by_segment), ("initiative_arm", by_arm)] {
                for (group_value, (n, churned)) in groups {
                    rows.push(RateRow {
                        period: period(latest_cutoff),
                        cutoff: from_epoch_day(latest_cutoff),
                        population,
                        dimension,
                        group_value,
                        customers: n,
                        churned,
                    });
                }
            }
        }
        rows
    }

    /// Differential: one pass over the customers against a pass per
    /// population and cut-off, on random histories with gaps on both sides
    /// of `inactive_days`, some customers without a segment or arm.
    #[test]
    fn rates_equal_a_pass_per_cutoff_on_random_histories() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(3);
        let inactive = 30;
        let (mut histories, mut segments, mut arms) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3000 {
            let mut days = vec![rng.random_range(0..400)];
            for _ in 0..rng.random_range(0..12) {
                let next = *days.last().expect("a first day") + rng.random_range(1..80);
                days.push(next);
            }
            histories.push(History::from_days(&days, inactive));
            segments.push(match rng.random_range(0..4) {
                0 => None,
                k => Some(format!("s{k}")),
            });
            let arm: Vec<String> = (0..rng.random_range(0..3))
                .map(|k| {
                    let side = if rng.random_bool(0.5) {
                        "treatment"
                    } else {
                        "control"
                    };
                    format!("I{k} {side}")
                })
                .collect();
            arms.push(arm);
        }
        let cutoffs: Vec<i32> = (0..20).map(|m| m * 30 - 1).collect();
        for latest in [-5, 200, 449, 600] {
            let want =
                churn_rates_by_passes(&histories, &segments, &arms, &cutoffs, latest, inactive);
            let got = churn_rates(&histories, &segments, &arms, &cutoffs, latest, inactive);
            assert_eq!(got, want, "latest cut-off {latest}");
        }
    }

    fn history(days: &[i32], inactive: i32) -> History {
        History::from_days(days, inactive)
    }

    /// The definitions, checked day by day against the purchase list.
    #[test]
    fn labels_equal_the_definition_for_every_cutoff() {
        let inactive = 10;
        let cases: [&[i32]; 5] = [
            &[0],
            &[0, 3, 5, 30, 31, 55],
            &[5, 16, 27],
            &[2, 12, 22, 40],
            &[0, 10, 11, 21, 32, 60, 61],
        ];
        for days in cases {
            let h = history(days, inactive);
            for c in -5..90 {
                let bought = days.iter().any(|&d| d <= c);
                let after = days.iter().any(|&d| d > c && d <= c + inactive);
                let before = days.iter().any(|&d| d > c - inactive && d <= c);
                assert_eq!(h.purchased_by(c), bought, "{days:?} c={c}");
                assert_eq!(
                    h.churned_after(c, inactive),
                    bought && !after,
                    "{days:?} c={c}"
                );
                assert_eq!(h.active_at(c, inactive), before, "{days:?} c={c}");
            }
        }
    }

    #[test]
    fn month_ends_stop_where_the_outcome_is_not_yet_known() {
        let first = epoch_day(NaiveDate::from_ymd_opt(2025, 1, 15).expect("date"));
        let run = NaiveDate::from_ymd_opt(2025, 8, 28).expect("date");
        let got: Vec<String> = month_end_cutoffs(first, run, 90)
            .into_iter()
            .map(|d| from_epoch_day(d).to_string())
            .collect();
        // 2025-05-31 + 90 = 2025-08-29 > run date.
        assert_eq!(
            got,
            vec!["2025-01-31", "2025-02-28", "2025-03-31", "2025-04-30"]
        );
    }

    #[test]
    fn rates_count_each_population_and_group() {
        let inactive = 10;
        let histories = vec![
            history(&[0, 25], inactive),  // churned after 12, lapsed at 12
            history(&[5, 30], inactive),  // active at 12, churned after (nothing in 13..=22)
            history(&[11, 20], inactive), // active at 12, came back
            history(&[40], inactive),     // not yet a customer at 12
        ];
        let segments = vec![Some("a".into()), Some("a".into()), Some("b".into()), None];
        let arms = vec![
            vec!["I1 treatment".into()],
            vec![],
            vec!["I1 control".into()],
            vec![],
        ];
        let rows = churn_rates(&histories, &segments, &arms, &[12], 12, inactive);
        let find = |pop: &str, dim: &str, g: &str| {
            rows.iter()
                .find(|r| r.population == pop && r.dimension == dim && r.group_value == g)
                .map(|r| (r.customers, r.churned))
        };
        assert_eq!(find("customers", "month", "all"), Some((3, 2)));
        assert_eq!(find("active", "month", "all"), Some((2, 1)));
        assert_eq!(find("customers", "segment", "a"), Some((2, 2)));
        assert_eq!(find("active", "segment", "a"), Some((1, 1)));
        assert_eq!(
            find("customers", "initiative_arm", "I1 control"),
            Some((1, 0))
        );
        assert_eq!(find("active", "initiative_arm", "I1 treatment"), None);
    }
}
