//! The outcome check: does a higher index (or component) in a month go with
//! better outcomes the month after? Validated, not assumed.
//!
//! Cells are (month m, group) of the index for the overall business and
//! each touchpoint, where the cell is shown (not suppressed) and month m + 1
//! is complete by the run date. Segment cells are not validated: they hold
//! the customers in each segment *today*, drawn on recent buying, so their
//! next month's outcomes are decided by the labels (see [`Family::of`]).
//! For each cell:
//!
//! - **next-month NPS**: 100 × (promoters − detractors) / answers over the
//!   NPS answers given in m + 1 by the cell's population — everyone for the
//!   overall cell, and for a touchpoint the customers who had a contact
//!   there in m — when there are at least `min_group_size` answers;
//! - **next-month retention**: the share (%) of the customers with a contact
//!   in the cell in m who placed a non-refunded order in m + 1.
//!
//! Across the cells of one family (months; months × touchpoints) we report
//! Pearson's r with a Fisher-z 95% interval (SE = 1/√(n−3)) and Spearman's
//! ρ with the Fieller–Hartley–Pearson (1957) interval (SE = √(1.06/(n−3))).
//! Across touchpoints, a pooled correlation mostly compares groups that
//! differ by construction, so the grouped family is also reported *within*
//! groups: x and y centred on
//! their group's mean (groups with one cell dropped), the g − 1 group means
//! taking g − 1 degrees of freedom off the interval (SE = 1/√(n−g−2)). This
//! asks the question the index is for: when a group's empathy rises, do its
//! outcomes follow? Cells share customers across months, so the intervals
//! are, if anything, too narrow; an interval that covers 0 is reported as
//! "no clear relation on this data".

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use serde::Serialize;

use super::components::{Component, Contact, Month};
use super::index::{Cell, Dimension, Period, UNKNOWN, Z95};
use crate::customer_index::CustomerBits;

/// A correlation with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Correlation {
    pub r: f64,
    pub ci_lower: f64,
    pub ci_upper: f64,
    pub n: usize,
}

/// `absorbed`: degrees of freedom already used by centring on group means.
fn fisher_interval(r: f64, n: usize, absorbed: usize, se_scale: f64) -> Correlation {
    // atanh(±1) is infinite: keep the interval finite and at the bound.
    let z = r.clamp(-0.999_999_999, 0.999_999_999).atanh();
    let se = (se_scale / (n as f64 - absorbed as f64 - 3.0)).sqrt();
    Correlation {
        r,
        ci_lower: (z - Z95 * se).tanh(),
        ci_upper: (z + Z95 * se).tanh(),
        n,
    }
}

/// Pearson's r; `None` with fewer than 4 pairs or a constant variable.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<Correlation> {
    pearson_absorbed(x, y, 0)
}

/// Pearson's r of data whose group means took `absorbed` degrees of freedom.
fn pearson_absorbed(x: &[f64], y: &[f64], absorbed: usize) -> Option<Correlation> {
    let n = x.len();
    if n != y.len() || n < 4 + absorbed {
        return None;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    let r = (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0);
    Some(fisher_interval(r, n, absorbed, 1.0))
}

/// Ranks 1..n, ties given their average rank.
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut out = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            out[order[k]] = avg;
        }
        i = j + 1;
    }
    out
}

/// Spearman's ρ (Pearson's r of the average ranks).
pub fn spearman(x: &[f64], y: &[f64]) -> Option<Correlation> {
    spearman_absorbed(x, y, 0)
}

fn spearman_absorbed(x: &[f64], y: &[f64], absorbed: usize) -> Option<Correlation> {
    let c = pearson_absorbed(&ranks(x), &ranks(y), absorbed)?;
    Some(fisher_interval(c.r, c.n, absorbed, 1.06))
}

/// x and y centred on their group's mean, groups with a single pair
/// dropped; returns them with the number of groups kept.
pub fn centre_within_groups(pairs: &[(String, f64, f64)]) -> (Vec<f64>, Vec<f64>, usize) {
    let mut sums: BTreeMap<&str, (f64, f64, usize)> = BTreeMap::new();
    for (g, x, y) in pairs {
        let e = sums.entry(g.as_str()).or_default();
        e.0 += x;
        e.1 += y;
        e.2 += 1;
    }
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for (g, x, y) in pairs {
        let (sx, sy, n) = sums[g.as_str()];
        if n >= 2 {
            xs.push(x - sx / n as f64);
            ys.push(y - sy / n as f64);
        }
    }
    let groups = sums.values().filter(|(_, _, n)| *n >= 2).count();
    (xs, ys, groups)
}

/// A family of validation cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Months,
    MonthsByTouchpoint,
    MonthsWithinTouchpoint,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Months => "months",
            Family::MonthsByTouchpoint => "months_by_touchpoint",
            Family::MonthsWithinTouchpoint => "months_within_touchpoint",
        }
    }

    /// The within-group reading of a pooled grouped family.
    fn within(self) -> Option<Family> {
        match self {
            Family::MonthsByTouchpoint => Some(Family::MonthsWithinTouchpoint),
            _ => None,
        }
    }

    /// Segment cells are not validated: a month's segment cell holds the
    /// customers in that segment *today*, and today's segments are drawn
    /// on recent buying ("Lapsed": no order since a date), so their next
    /// month's retention (and the surveys that follow orders) is decided
    /// by the labels themselves, not by the service. Validating segments
    /// would need each month's own segments.
    fn of(d: Dimension) -> Option<Family> {
        match d {
            Dimension::Overall => Some(Family::Months),
            Dimension::Touchpoint => Some(Family::MonthsByTouchpoint),
            _ => None,
        }
    }
}

/// The outcomes the check needs.
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    /// NPS answers: (customer, month, score 0–10).
    pub nps: Vec<(u32, Month, u8)>,
    /// (customer, month) with at least one non-refunded order.
    pub ordered: OrderMonths,
}

/// Which customers ordered in which month: per month, a bit per customer.
/// Tens of millions of orders are folded in; a hash set of (customer,
/// month) pairs missed the cache on nearly every one of them.
#[derive(Debug, Clone, Default)]
pub struct OrderMonths {
    months: HashMap<Month, CustomerBits, foldhash::fast::RandomState>,
}

impl OrderMonths {
    pub fn insert(&mut self, customer: u32, month: Month) {
        self.months.entry(month).or_default().insert(customer);
    }

    pub fn contains(&self, customer: u32, month: Month) -> bool {
        self.months
            .get(&month)
            .is_some_and(|bits| bits.contains(customer))
    }

    /// Adds every (customer, month) of `other`: folds of parts of the
    /// orders are merged so.
    pub fn union(&mut self, other: OrderMonths) {
        for (month, bits) in other.months {
            self.months.entry(month).or_default().union_with(&bits);
        }
    }
}

/// One correlation of a measure with an outcome across a family's cells.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Validation {
    pub family: Family,
    /// `index` or a component name.
    pub measure: String,
    /// `next_month_nps` or `next_month_retention`.
    pub outcome: &'static str,
    pub cells: usize,
    pub pearson: Option<Correlation>,
    pub spearman: Option<Correlation>,
    /// The plain reading.
    pub wording: String,
}

/// NPS of some scores, if there are at least `min` of them.
fn nps(scores: impl Iterator<Item = u8>, min: usize) -> Option<f64> {
    let (mut n, mut promoters, mut detractors) = (0usize, 0usize, 0usize);
    for s in scores {
        n += 1;
        promoters += usize::from(s >= 9);
        detractors += usize::from(s <= 6);
    }
    (n >= min && n > 0).then(|| 100.0 * (promoters as f64 - detractors as f64) / n as f64)
}

/// The plain reading of a correlation.
pub fn wording(measure: &str, outcome: &str, c: Option<&Correlation>, cells: usize) -> String {
    let outcome_words = match outcome {
        "next_month_nps" => "next month's NPS",
        "next_month_retention" => "next month's retention",
        other => other,
    };
    let Some(c) = c else {
        return format!(
            "{measure} vs {outcome_words}: too few cells ({cells}) or no variation to tell"
        );
    };
    let figures = format!(
        "r = {:.2}, 95% CI {:.2} to {:.2}, {} cells",
        c.r, c.ci_lower, c.ci_upper, c.n
    );
    if c.ci_lower > 0.0 {
        format!("higher {measure} went with higher {outcome_words} ({figures})")
    } else if c.ci_upper < 0.0 {
        format!(
            "higher {measure} went with LOWER {outcome_words} ({figures}): the opposite of what the index assumes"
        )
    } else {
        format!("{measure} vs {outcome_words}: no clear relation on this data ({figures})")
    }
}

/// Correlates the index and each component of month m with next-month NPS
/// and retention, per family. Rows sorted by family, measure, outcome.
pub fn validate(
    cells: &[Cell],
    contacts: &[Contact],
    outcomes: &Outcomes,
    run_date: NaiveDate,
    min_group_size: usize,
) -> Vec<Validation> {
    // (family, measure (None = index)) -> per outcome (0 nps, 1 retention): (group, x, y)
    type Pairs = [Vec<(String, f64, f64)>; 2];
    let mut pairs: BTreeMap<(Family, Option<Component>), Pairs> = BTreeMap::new();
    let mut nps_by_month: HashMap<Month, Vec<(u32, u8)>> = HashMap::new();
    for (c, m, s) in &outcomes.nps {
        nps_by_month.entry(*m).or_default().push((*c, *s));
    }
    for cell in cells {
        let (Period::Month(m), Some(family)) = (cell.period, Family::of(cell.dimension)) else {
            continue;
        };
        if cell.index().value.is_none() || m.next().last_day() > run_date {
            continue;
        }
        // contacts without a touchpoint are not a place whose service
        // could change from one month to the next
        if cell.dimension == Dimension::Touchpoint && cell.group == UNKNOWN {
            continue;
        }
        let next = m.next();
        let population: HashSet<u32> = cell
            .contacts
            .iter()
            .filter_map(|&j| contacts[j as usize].customer)
            .collect();
        let answers = nps_by_month
            .get(&next)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let next_nps = match cell.dimension {
            Dimension::Overall => nps(answers.iter().map(|(_, s)| *s), min_group_size),
            _ => nps(
                answers
                    .iter()
                    .filter(|(c, _)| population.contains(c))
                    .map(|(_, s)| *s),
                min_group_size,
            ),
        };
        let retention = (population.len() >= min_group_size).then(|| {
            let kept = population
                .iter()
                .filter(|c| outcomes.ordered.contains(**c, next))
                .count();
            100.0 * kept as f64 / population.len() as f64
        });
        let measures = std::iter::once((None, cell.index().value)).chain(
            Component::ALL
                .iter()
                .map(|c| (Some(*c), cell.component(*c).value)),
        );
        for (measure, x) in measures {
            let Some(x) = x else { continue };
            let entry = pairs.entry((family, measure)).or_default();
            if let Some(y) = next_nps {
                entry[0].push((cell.group.clone(), x, y));
            }
            if let Some(y) = retention {
                entry[1].push((cell.group.clone(), x, y));
            }
        }
    }
    let mut out = Vec::new();
    for ((family, measure), by_outcome) in pairs {
        let name = measure.map_or("index", Component::name).to_string();
        for (k, outcome) in ["next_month_nps", "next_month_retention"]
            .into_iter()
            .enumerate()
        {
            let x: Vec<f64> = by_outcome[k].iter().map(|p| p.1).collect();
            let y: Vec<f64> = by_outcome[k].iter().map(|p| p.2).collect();
            let p = pearson(&x, &y);
            out.push(Validation {
                family,
                wording: wording(&name, outcome, p.as_ref(), x.len()),
                measure: name.clone(),
                outcome,
                cells: x.len(),
                pearson: p,
                spearman: spearman(&x, &y),
            });
            if let Some(within) = family.within() {
                let (xc, yc, g) = centre_within_groups(&by_outcome[k]);
                let absorbed = g.saturating_sub(1);
                let p = pearson_absorbed(&xc, &yc, absorbed);
                out.push(Validation {
                    family: within,
                    wording: wording(&name, outcome, p.as_ref(), xc.len()),
                    measure: name.clone(),
                    outcome,
                    cells: xc.len(),
                    pearson: p,
                    spearman: spearman_absorbed(&xc, &yc, absorbed),
                });
            }
        }
    }
    out.sort_by(|a, b| (a.family, &a.measure, a.outcome).cmp(&(b.family, &b.measure, b.outcome)));
    out
}

/// One sentence on the check as a whole: how many correlations look clear
/// against the one in twenty a 95% interval lets through by chance.
pub fn summary(rows: &[Validation]) -> String {
    let tested: Vec<&Correlation> = rows.iter().filter_map(|v| v.pearson.as_ref()).collect();
    let clear = tested
        .iter()
        .filter(|c| c.ci_lower > 0.0 || c.ci_upper < 0.0)
        .count();
    if tested.is_empty() {
        return "The outcome check needs at least four months with a complete next month.".into();
    }
    format!(
        "{clear} of {} correlations checked show a clear relation; with 95% intervals about {:.1} would by chance alone, so read single clear results with care.",
        tested.len(),
        tested.len() as f64 / 20.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Differential: the bitsets against a plain set of pairs, on random
    /// customers and months (months before year 0 included).
    #[test]
    fn order_months_agree_with_a_set_of_pairs() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(5);
        let mut bits = OrderMonths::default();
        let mut pairs = HashSet::new();
        for _ in 0..20_000 {
            let (c, m) = (
                rng.random_range(0..3000u32),
                Month(rng.random_range(-3..40)),
            );
            bits.insert(c, m);
            pairs.insert((c, m));
        }
        for c in 0..3100u32 {
            for m in -5..45 {
                assert_eq!(
                    bits.contains(c, Month(m)),
                    pairs.contains(&(c, Month(m))),
                    "{c} {m}"
                );
            }
        }
    }

    /// Differential: pairs folded into three parts (of different sizes,
    /// customers and months) and merged, against all of them folded into
    /// one.
    #[test]
    fn merged_order_months_equal_one_fold_of_every_pair() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(6);
        let mut whole = OrderMonths::default();
        let mut parts = vec![OrderMonths::default(); 3];
        for _ in 0..20_000 {
            let part = rng.random_range(0..3usize);
            // part 0 has the low customer numbers only: bitsets of unequal length
            let top: u32 = if part == 0 { 200 } else { 3000 };
            let (c, m) = (rng.random_range(0..top), Month(rng.random_range(-3..40)));
            whole.insert(c, m);
            parts[part].insert(c, m);
        }
        let mut merged = OrderMonths::default();
        for part in parts {
            merged.union(part);
        }
        for c in 0..3100u32 {
            for m in -5..45 {
                assert_eq!(
                    merged.contains(c, Month(m)),
                    whole.contains(c, Month(m)),
                    "{c} {m}"
                );
            }
        }
    }

    const X: [f64; 10] = [62.0, 70.5, 55.0, 80.0, 66.0, 71.0, 59.5, 75.0, 68.0, 71.0];
    const Y: [f64; 10] = [20.0, 35.0, 10.0, 48.0, 30.0, 25.0, 18.0, 40.0, 30.0, 33.0];

    /// Reference: scipy 1.17, `r = stats.pearsonr(X, Y)`: statistic
    /// 0.9558433339875092, `r.confidence_interval(0.95)` (Fisher z):
    /// (0.8192787040696167, 0.9897900975944723).
    #[test]
    fn pearson_matches_scipy() {
        let c = pearson(&X, &Y).expect("r");
        assert!((c.r - 0.9558433339875092).abs() < 1e-12);
        assert!((c.ci_lower - 0.8192787040696167).abs() < 1e-9);
        assert!((c.ci_upper - 0.9897900975944723).abs() < 1e-9);
        assert_eq!(c.n, 10);
    }

    /// Reference: scipy 1.17, `stats.spearmanr(X, Y).statistic` =
    /// 0.8841463414634148 (X and Y have ties: average ranks); interval from
    /// numpy: `tanh(arctanh(rho) ± 1.959964 * sqrt(1.06 / 7))` =
    /// (0.5592589425482316, 0.9736011884838854).
    #[test]
    fn spearman_matches_scipy() {
        let c = spearman(&X, &Y).expect("rho");
        assert!((c.r - 0.8841463414634148).abs() < 1e-12);
        assert!((c.ci_lower - 0.5592589425482316).abs() < 1e-9);
        assert!((c.ci_upper - 0.9736011884838854).abs() < 1e-9);
    }

    /// Two groups: A with low x and high y, B the reverse, and within each a
    /// rising relation. Reference: scipy 1.17 — pooled `pearsonr(x, y)` =
    /// -0.8366234810759635; on the group-centred data 0.9871331309310907,
    /// interval `tanh(arctanh(r) ± 1.959964 / sqrt(10 - 2 - 2))` =
    /// (0.9378322365601804, 0.9973896090573157).
    #[test]
    fn within_group_correlation_removes_the_group_difference() {
        let a = [
            (40.0, 80.0),
            (45.0, 82.0),
            (50.0, 85.0),
            (55.0, 86.0),
            (60.0, 90.0),
        ];
        let b = [
            (70.0, 30.0),
            (75.0, 33.0),
            (80.0, 34.0),
            (85.0, 38.0),
            (90.0, 40.0),
        ];
        let mut pairs: Vec<(String, f64, f64)> = Vec::new();
        pairs.extend(a.iter().map(|(x, y)| ("A".to_string(), *x, *y)));
        pairs.extend(b.iter().map(|(x, y)| ("B".to_string(), *x, *y)));
        pairs.push(("C".to_string(), 10.0, 10.0)); // a single cell: dropped
        let x: Vec<f64> = pairs[..10].iter().map(|p| p.1).collect();
        let y: Vec<f64> = pairs[..10].iter().map(|p| p.2).collect();
        let pooled = pearson(&x, &y).expect("r");
        assert!((pooled.r + 0.8366234810759635).abs() < 1e-12);
        let (xc, yc, g) = centre_within_groups(&pairs);
        assert_eq!((xc.len(), g), (10, 2));
        let w = pearson_absorbed(&xc, &yc, g - 1).expect("r");
        assert!((w.r - 0.9871331309310907).abs() < 1e-12);
        assert!((w.ci_lower - 0.9378322365601804).abs() < 1e-9);
        assert!((w.ci_upper - 0.9973896090573157).abs() < 1e-9);
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn degenerate_inputs_give_none() {
        assert!(
            pearson(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]).is_none(),
            "n < 4"
        );
        assert!(
            pearson(&[1.0; 5], &[1.0, 2.0, 3.0, 4.0, 5.0]).is_none(),
            "constant"
        );
        let perfect = pearson(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 4.0, 6.0, 8.0, 10.0]).expect("r");
        assert!((perfect.r - 1.0).abs() < 1e-12 && perfect.ci_lower.is_finite());
    }

    #[test]
    fn wording_follows_the_interval() {
        let c = |r, lo, hi| Correlation {
            r,
            ci_lower: lo,
            ci_upper: hi,
            n: 20,
        };
        assert!(
            wording("index", "next_month_nps", Some(&c(0.1, -0.3, 0.5)), 20)
                .contains("no clear relation on this data")
        );
        assert!(
            wording("index", "next_month_nps", Some(&c(0.6, 0.2, 0.8)), 20)
                .starts_with("higher index went with higher next month's NPS")
        );
        assert!(
            wording(
                "tone",
                "next_month_retention",
                Some(&c(-0.6, -0.8, -0.2)),
                20
            )
            .contains("LOWER")
        );
        assert!(wording("tone", "next_month_nps", None, 2).contains("too few cells (2)"));
    }

    /// End to end through `index::aggregate`: six months × four touchpoints,
    /// 30 customers per cell; the share of a cell's customers who buy again
    /// next month is planted equal to the cell's responsiveness / 100, and
    /// every NPS answer is the same whatever the cell. The check must find
    /// the planted relation with retention and report nothing for NPS.
    #[test]
    fn finds_a_planted_relation_and_no_relation_where_there_is_none() {
        use crate::config::ValidConfig;
        use crate::empathy::components::{Detail, Source};
        use crate::empathy::index::{Settings, aggregate};
        let cfg = ValidConfig::default().empathy;
        let jan = Month(2025 * 12);
        let mut contacts = Vec::new();
        let mut outcomes = Outcomes::default();
        for m in 0..6 {
            for tp in 0..4 {
                // responsiveness 40..100, varying by cell
                let level = 40.0 + 10.0 * f64::from((m * 3 + tp * 5) % 7);
                for k in 0..30u32 {
                    let customer = (m * 1000 + tp * 100) as u32 + k;
                    let mut scores = [None; 6];
                    // 30 customers, round(level * 30 / 100) of them met the target
                    let met = f64::from(k) < (level * 0.3).round();
                    scores[Component::Responsiveness.idx()] = Some(if met { 100.0 } else { 0.0 });
                    contacts.push(Contact {
                        source: Source::Ticket,
                        contact_id: format!("T{customer}"),
                        customer: Some(customer),
                        at: 0.0,
                        month: Month(jan.0 + m),
                        touchpoint: Some(["email", "chat", "phone", "web"][tp as usize].into()),
                        handled_by: None,
                        scores,
                        charged: None,
                        detail: Detail::default(),
                    });
                    if f64::from(k) < (level * 0.3).round() {
                        outcomes.ordered.insert(customer, Month(jan.0 + m + 1));
                    }
                    outcomes.nps.push((customer, Month(jan.0 + m + 1), 8));
                }
            }
        }
        let unavailable: [Option<String>; 6] = Default::default();
        let run_date = NaiveDate::from_ymd_opt(2025, 7, 31).expect("date");
        let settings = Settings {
            cfg: &cfg,
            min_group_size: 10,
            unavailable: &unavailable,
            run_month: Month::of_date(run_date),
        };
        let groups = crate::empathy::index::Groups::default();
        let cells = aggregate(&contacts, &groups, &settings);
        let v = validate(&cells, &contacts, &outcomes, run_date, 10);
        let get = |family: Family, measure: &str, outcome: &str| {
            v.iter()
                .find(|x| x.family == family && x.measure == measure && x.outcome == outcome)
                .unwrap_or_else(|| panic!("{family:?} {measure} {outcome}"))
        };
        let ret = get(Family::MonthsByTouchpoint, "index", "next_month_retention");
        assert_eq!(ret.cells, 24);
        let r = ret.pearson.expect("r");
        assert!(r.r > 0.99 && r.ci_lower > 0.9, "{r:?}");
        assert!(
            ret.wording
                .starts_with("higher index went with higher next month's retention")
        );
        // Every NPS answer is 8 (a passive): NPS 0 everywhere, no variation.
        let nps = get(Family::MonthsByTouchpoint, "index", "next_month_nps");
        assert!(
            nps.pearson.is_none() && nps.wording.contains("too few cells (24) or no variation")
        );
        // Components without data have no rows; the overall family has six months.
        assert!(!v.iter().any(|x| x.measure == "tone"));
        assert_eq!(
            get(Family::Months, "responsiveness", "next_month_retention").cells,
            6
        );
        let tested = v.iter().filter(|x| x.pearson.is_some()).count();
        let clear = v
            .iter()
            .filter_map(|x| x.pearson)
            .filter(|c| c.ci_lower > 0.0 || c.ci_upper < 0.0)
            .count();
        assert!(summary(&v).starts_with(&format!("{clear} of {tested} correlations checked")));
        assert!(
            clear >= 2,
            "index and responsiveness vs retention, touchpoints and months"
        );
    }

    #[test]
    fn nps_needs_enough_answers() {
        // 3 promoters, 1 passive, 2 detractors: 100 * (3 - 2) / 6
        let s = [10u8, 9, 9, 8, 3, 6];
        assert!((nps(s.iter().copied(), 6).expect("nps") - 100.0 / 6.0).abs() < 1e-12);
        assert!(nps(s.iter().copied(), 7).is_none());
    }
}
