//! From per-contact component scores to `marts/empathy_index`: cells of
//! (period, dimension, group), each component's mean with a 95% interval,
//! suppression of small groups, and the weighted index.
//!
//! **Index of a cell** = Σ w'ᵢ · meanᵢ over the components *included* in the
//! cell: available on the data, with at least `min_group_size` customers in
//! the cell, where w'ᵢ = wᵢ / Σ w of the included components (the configured
//! weights re-normalized). Each included component's `weight` column holds
//! w'ᵢ, so anyone can recompute the index from the mart's rows.
//!
//! **Intervals** (delta method, no resampling, clustered by customer): the
//! index is a weighted sum of means over overlapping sets of contacts (one
//! ticket carries several components), so its variance is taken from the
//! linearization: with zⱼ = Σᵢ w'ᵢ (xⱼᵢ − meanᵢ) / nᵢ over the components
//! contact j has, Var = G/(G−1) · Σ_customers (Σⱼ zⱼ)² (G customers; an
//! anonymous contact is a customer of its own). A component's interval is
//! the same with one component: mean ± 1.96·se. With one contact per
//! customer this is exactly s²/n; with several, one customer's contacts are
//! not taken as independent voices. Intervals are clamped to 0–100.
//!
//! **Suppression**: a cell with fewer than `min_group_size` distinct
//! customers (an anonymous review counts as one) shows no number at all —
//! value, interval and counts are NULL, `suppressed` is true. A component
//! below the threshold inside a shown cell is suppressed the same way and
//! left out of that cell's index. Then [`protect_complements`] hides the
//! groups that would give a hidden one away by subtraction.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, StringBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::components::{Component, Contact, Month};
use crate::Result;
use crate::config::EmpathyConfig;
use crate::customer_index::CustomerBits;
use crate::secondary_suppression::complements;

/// 97.5% quantile of the standard normal.
pub const Z95: f64 = 1.959_963_984_540_054;

/// How contacts are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    Overall,
    Touchpoint,
    Segment,
    AgeBand,
    Gender,
    Language,
    Region,
}

impl Dimension {
    pub const ALL: [Dimension; 7] = [
        Dimension::Overall,
        Dimension::Touchpoint,
        Dimension::Segment,
        Dimension::AgeBand,
        Dimension::Gender,
        Dimension::Language,
        Dimension::Region,
    ];

    /// The sensitive attributes, in `marts/customer_attributes` column order.
    pub const SENSITIVE: [Dimension; 4] = [
        Dimension::AgeBand,
        Dimension::Gender,
        Dimension::Language,
        Dimension::Region,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Dimension::Overall => "overall",
            Dimension::Touchpoint => "touchpoint",
            Dimension::Segment => "segment",
            Dimension::AgeBand => "age_band",
            Dimension::Gender => "gender",
            Dimension::Language => "language",
            Dimension::Region => "region",
        }
    }
}

/// A period of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    Month(Month),
    /// The twelve months ending with the run date's month.
    Last12Months,
}

impl Period {
    pub fn label(self) -> String {
        match self {
            Period::Month(m) => m.to_string(),
            Period::Last12Months => "last_12_months".into(),
        }
    }
}

/// One group name per number (a customer's, or a contact's for
/// touchpoints), kept as a code into a short list of names: the aggregation
/// asks for seven groups of each of two million contacts, and a hash map of
/// a million customers' strings missed the cache on nearly every one.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    names: Vec<String>,
    codes: HashMap<String, u32, foldhash::fast::RandomState>,
    /// By customer number; [`Labels::NONE`] for a customer without a group.
    by_customer: Vec<u32>,
}

impl Labels {
    const NONE: u32 = u32::MAX;

    /// Gives `customer` the group `name`, or none (the last call for a
    /// number wins).
    pub fn set(&mut self, customer: u32, name: Option<&str>) {
        let code = match name {
            None => Labels::NONE,
            Some(name) => match self.codes.get(name) {
                Some(&c) => c,
                None => {
                    let c = self.names.len() as u32;
                    self.names.push(name.to_string());
                    self.codes.insert(name.to_string(), c);
                    c
                }
            },
        };
        let k = customer as usize;
        if k >= self.by_customer.len() {
            self.by_customer.resize(k + 1, Labels::NONE);
        }
        self.by_customer[k] = code;
    }

    /// The code of a customer's group.
    pub fn code(&self, customer: u32) -> Option<u32> {
        self.by_customer
            .get(customer as usize)
            .copied()
            .filter(|&c| c != Labels::NONE)
    }

    /// The name of a customer's group.
    pub fn get(&self, customer: u32) -> Option<&str> {
        self.code(customer).map(|c| self.names[c as usize].as_str())
    }
}

/// Which group of each dimension a customer belongs to.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    /// Segment names; `None` when segments are not available.
    pub segment: Option<Labels>,
    /// age_band, gender, language, region ([`Dimension::SENSITIVE`] order);
    /// `None` when not available.
    pub attributes: Option<[Labels; 4]>,
}

impl Groups {
    /// The customers' labels of a dimension that is a property of the
    /// customer (segment and the sensitive attributes).
    fn labels(&self, d: Dimension) -> Option<&Labels> {
        let attr = |i: usize| self.attributes.as_ref().map(|a| &a[i]);
        match d {
            Dimension::Overall | Dimension::Touchpoint => None,
            Dimension::Segment => self.segment.as_ref(),
            Dimension::AgeBand => attr(0),
            Dimension::Gender => attr(1),
            Dimension::Language => attr(2),
            Dimension::Region => attr(3),
        }
    }

    /// Whether the dimension can be computed at all.
    pub fn has(&self, d: Dimension) -> bool {
        match d {
            Dimension::Overall | Dimension::Touchpoint => true,
            Dimension::Segment => self.segment.is_some(),
            _ => self.attributes.is_some(),
        }
    }
}

/// One row of `marts/empathy_index`. Counts are `None` wherever there is
/// nothing to count (suppressed, not available, no data): a count column
/// holds only counts of at least `min_group_size`, which the privacy job's
/// released-aggregates check relies on.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// `None` for the index itself.
    pub component: Option<Component>,
    /// Contacts with a score; `None` when suppressed or without data.
    pub n: Option<u64>,
    /// Distinct customers behind them; `None` when suppressed or without data.
    pub customers: Option<u64>,
    pub value: Option<f64>,
    /// Standard error of `value`.
    pub se: Option<f64>,
    pub ci: Option<(f64, f64)>,
    /// Effective (re-normalized) weight in the cell's index; 1 for the index row.
    pub weight: Option<f64>,
    pub suppressed: bool,
    pub note: Option<String>,
}

/// A cell: one period, dimension and group.
#[derive(Debug, Clone)]
pub struct Cell {
    pub period: Period,
    pub dimension: Dimension,
    pub group: String,
    /// Indices into the contact list.
    pub contacts: Vec<usize>,
    /// The index first, then the components in [`Component::ALL`] order.
    pub rows: Vec<Estimate>,
}

impl Cell {
    /// The index row.
    pub fn index(&self) -> &Estimate {
        &self.rows[0]
    }

    /// A component's row.
    pub fn component(&self, c: Component) -> &Estimate {
        &self.rows[1 + c.idx()]
    }
}

/// Mean, standard error and n of some scores, each with the customer it
/// came from (`None`: anonymous, a customer of its own). The standard error
/// is clustered by customer: one customer's contacts are not independent
/// (ten tickets of one unhappy customer are one voice, not ten), so the
/// residuals are summed per customer before they are squared. With one
/// contact per customer it is s/√n exactly.
pub fn mean_se(values: &[(Option<u32>, f64)]) -> (f64, Option<f64>, usize) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, None, 0);
    }
    let mean = values.iter().map(|(_, x)| x).sum::<f64>() / n as f64;
    let se = clustered_se(values.iter().map(|&(c, x)| (c, (x - mean) / n as f64)));
    (mean, se, n)
}

/// The cluster-robust standard error of a statistic from the influence
/// `z` of each contact on it: √(G/(G−1) · Σ_customers (Σ z)²), G the
/// customers (statsmodels' `cov_type="cluster"` on a constant). `None`
/// below two customers.
fn clustered_se(influence: impl Iterator<Item = (Option<u32>, f64)>) -> Option<f64> {
    let mut named: Vec<(u32, f64)> = Vec::new();
    let (mut ss, mut clusters) = (0.0, 0usize);
    for (customer, z) in influence {
        match customer {
            Some(c) => named.push((c, z)),
            None => {
                ss += z * z;
                clusters += 1;
            }
        }
    }
    // sorted, each customer's contacts are one run: summed without a map
    named.sort_unstable_by_key(|&(c, _)| c);
    for run in named.chunk_by(|a, b| a.0 == b.0) {
        let z: f64 = run.iter().map(|&(_, z)| z).sum();
        ss += z * z;
        clusters += 1;
    }
    (clusters >= 2).then(|| (ss * clusters as f64 / (clusters as f64 - 1.0)).sqrt())
}

/// The weighted index of per-contact scores and its delta-method standard
/// error, clustered by customer as in [`mean_se`]. `scores[j]` is contact
/// j's customer and its score on each component (or `None`), `weights[i]`
/// the (already re-normalized) weight, `None` for a component not
/// included. Returns (index, standard error, contacts used).
pub fn index_estimate(
    scores: &[(Option<u32>, [Option<f64>; 6])],
    weights: &[Option<f64>; 6],
) -> Option<(f64, Option<f64>, usize)> {
    let mut sums = [0.0; 6];
    let mut ns = [0usize; 6];
    for (_, row) in scores {
        for i in 0..6 {
            if let (Some(x), Some(_)) = (row[i], weights[i]) {
                sums[i] += x;
                ns[i] += 1;
            }
        }
    }
    let mut value = 0.0;
    let mut total_w = 0.0;
    let mut means = [0.0; 6];
    for i in 0..6 {
        if let Some(w) = weights[i]
            && ns[i] > 0
        {
            means[i] = sums[i] / ns[i] as f64;
            value += w * means[i];
            total_w += w;
        }
    }
    if total_w <= 0.0 {
        return None;
    }
    let mut influence = Vec::with_capacity(scores.len());
    for (customer, row) in scores {
        let mut z = 0.0;
        let mut any = false;
        for i in 0..6 {
            if let (Some(x), Some(w)) = (row[i], weights[i])
                && ns[i] > 0
            {
                z += w * (x - means[i]) / ns[i] as f64;
                any = true;
            }
        }
        if any {
            influence.push((*customer, z));
        }
    }
    let used = influence.len();
    Some((value, clustered_se(influence.into_iter()), used))
}

fn interval(value: f64, se: Option<f64>) -> Option<(f64, f64)> {
    se.map(|s| {
        (
            (value - Z95 * s).clamp(0.0, 100.0),
            (value + Z95 * s).clamp(0.0, 100.0),
        )
    })
}

/// Distinct customers behind some contacts (an anonymous contact counts as one).
pub fn distinct_customers<'a>(contacts: impl Iterator<Item = &'a Contact>) -> u64 {
    // The whole-business cells hold two million contacts at a million
    // customers: a tree set of their numbers was a tenth of the job.
    let mut seen = CustomerBits::default();
    contacts
        .filter(|c| c.customer.is_none_or(|id| seen.insert(id)))
        .count() as u64
}

/// What the aggregation needs besides the contacts.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    pub cfg: &'a EmpathyConfig,
    pub min_group_size: usize,
    /// Per component: `None` when available, else why not.
    pub unavailable: &'a [Option<String>; 6],
    /// The run date's month.
    pub run_month: Month,
}

/// A cell's (period, dimension, group).
type CellKey<'a> = (Period, Dimension, &'a str);

/// Every cell with at least one contact, sorted by period, dimension, group.
pub fn aggregate(contacts: &[Contact], groups: &Groups, s: &Settings) -> Vec<Cell> {
    // Cells are slots of one dense table, (dimension's group, period): the
    // groups are coded, the periods are the months since the first one, and
    // a contact's seven groups cost no hashing. A map keyed by the group
    // names was a fifth of the job at a million customers.
    let first_of_last12 = Month(s.run_month.0 - 11);
    let first_month = contacts
        .iter()
        .map(|c| c.month)
        .filter(|m| *m <= s.run_month)
        .min()
        .unwrap_or(s.run_month);
    let months = (s.run_month.0 - first_month.0 + 1) as usize;
    let periods = months + 1;
    let last12 = months;
    // Touchpoints belong to the contacts, not the customers: labelled by
    // contact number.
    let mut touchpoints = Labels::default();
    for (j, c) in contacts.iter().enumerate() {
        touchpoints.set(j as u32, c.touchpoint.as_deref());
    }
    let names_of = |d: Dimension| -> Vec<&str> {
        let labels = match d {
            Dimension::Overall => return vec!["all"],
            Dimension::Touchpoint => Some(&touchpoints),
            _ => groups.labels(d),
        };
        labels
            .map(|l| l.names.iter().map(String::as_str).collect())
            .unwrap_or_default()
    };
    let names: Vec<Vec<&str>> = Dimension::ALL.iter().map(|d| names_of(*d)).collect();
    let mut offset = Vec::with_capacity(Dimension::ALL.len());
    let mut groups_before = 0;
    for n in &names {
        offset.push(groups_before);
        groups_before += n.len();
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); groups_before * periods];
    for (j, c) in contacts.iter().enumerate() {
        if c.month > s.run_month {
            continue;
        }
        let month = (c.month.0 - first_month.0) as usize;
        let in_last12 = c.month >= first_of_last12;
        for (di, d) in Dimension::ALL.iter().enumerate() {
            let code = match d {
                Dimension::Overall => Some(0),
                Dimension::Touchpoint => touchpoints.code(j as u32),
                _ => c
                    .customer
                    .and_then(|k| groups.labels(*d).and_then(|l| l.code(k))),
            };
            let Some(code) = code else { continue };
            let slot = (offset[di] + code as usize) * periods;
            members[slot + month].push(j);
            if in_last12 {
                members[slot + last12].push(j);
            }
        }
    }
    let mut keyed: Vec<(CellKey, Vec<usize>)> = Vec::new();
    for (di, d) in Dimension::ALL.iter().enumerate() {
        for (code, name) in names[di].iter().enumerate() {
            let slot = (offset[di] + code) * periods;
            for p in 0..periods {
                let idx = std::mem::take(&mut members[slot + p]);
                if idx.is_empty() {
                    continue;
                }
                let period = if p == last12 {
                    Period::Last12Months
                } else {
                    Period::Month(Month(first_month.0 + p as i32))
                };
                keyed.push(((period, *d, name), idx));
            }
        }
    }
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    // Cells are estimated independently, on every core.
    let rows = crate::parallel::map(&keyed, crate::parallel::threads(), &|(_, idx)| {
        estimate_cell(contacts, idx, s, [false; 6])
    });
    let mut cells: Vec<Cell> = keyed
        .into_iter()
        .zip(rows)
        .map(|(((period, dimension, group), idx), rows)| Cell {
            period,
            dimension,
            group: group.to_string(),
            contacts: idx,
            rows,
        })
        .collect();
    protect_complements(&mut cells, contacts, s, first_of_last12);
    cells
}

/// Secondary suppression. The groups of a dimension in a period add up to
/// (nearly) the whole business, and the months of the last twelve to the
/// twelve-month cell, whose counts and means are published: one hidden
/// group (or a few hidden ones of fewer than `min_group_size` customers
/// together) would be the total minus the groups shown. So within each
/// such family the smallest shown groups are hidden too, whole cells first
/// and then each component, until the hidden ones hold at least
/// `min_group_size` customers together. A cell that loses a component is
/// estimated again without it.
fn protect_complements(
    cells: &mut [Cell],
    contacts: &[Contact],
    s: &Settings,
    first_of_last12: Month,
) {
    let min = s.min_group_size as u64;
    let mut families: BTreeMap<(u8, String, String), Vec<usize>> = BTreeMap::new();
    for (i, c) in cells.iter().enumerate() {
        if c.dimension != Dimension::Overall {
            // the groups of a dimension within a period
            let key = (0, format!("{:?}", c.period), format!("{:?}", c.dimension));
            families.entry(key).or_default().push(i);
        }
        let in_last12 = match c.period {
            Period::Month(m) => m >= first_of_last12,
            Period::Last12Months => false,
        };
        if in_last12 {
            // the months that make up a group's twelve-month cell
            let key = (1, format!("{:?}", c.dimension), c.group.clone());
            families.entry(key).or_default().push(i);
        }
    }
    let whole_customers = |c: &Cell| distinct_customers(c.contacts.iter().map(|&j| &contacts[j]));
    let component_customers = |c: &Cell, k: Component| {
        distinct_customers(
            c.contacts
                .iter()
                .map(|&j| &contacts[j])
                .filter(|x| x.scores[k.idx()].is_some()),
        )
    };
    // What each cell must hide besides its own small parts: the whole cell,
    // or components. Kept across families and rounds (a cell estimated
    // again must not show what another family hid), and repeated until no
    // family hides anything more.
    // Which components each cell has data for, from its first estimate (a
    // small cell's rows are all hidden: its few contacts are looked at).
    let has: Vec<[bool; 6]> = cells
        .iter()
        .map(|c| {
            Component::ALL.map(|k| {
                if c.index().suppressed {
                    c.contacts
                        .iter()
                        .any(|&j| contacts[j].scores[k.idx()].is_some())
                } else {
                    let r = c.component(k);
                    r.suppressed || r.n.is_some()
                }
            })
        })
        .collect();
    let mut marks = Marks {
        has,
        whole: vec![false; cells.len()],
        parts: vec![[false; 6]; cells.len()],
    };
    for _ in 0..cells.len() + 1 {
        let mut changed = false;
        for family in families.values() {
            changed |= protect_family(
                cells,
                family,
                min,
                &mut marks,
                &whole_customers,
                &component_customers,
            );
            let Marks { whole, parts, .. } = &marks;
            for &i in family {
                if whole[i] && !cells[i].index().suppressed {
                    cells[i].rows = suppressed_cell(
                        "suppressed: would let a smaller group be worked out from the totals",
                    );
                } else if !whole[i] && parts[i].contains(&true) {
                    let hidden_now = Component::ALL
                        .iter()
                        .all(|k| !parts[i][k.idx()] || cells[i].component(*k).suppressed);
                    if !hidden_now {
                        cells[i].rows = estimate_cell(contacts, &cells[i].contacts, s, parts[i]);
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
}

/// What [`protect_complements`] knows of each cell: the components it has
/// data for, and what it must hide besides its own small parts (the whole
/// cell, or components).
struct Marks {
    has: Vec<[bool; 6]>,
    whole: Vec<bool>,
    parts: Vec<[bool; 6]>,
}

/// One pass of [`protect_complements`] over one family of cells: marks
/// what its members must hide as well. Returns whether it marked anything
/// new.
fn protect_family(
    cells: &[Cell],
    family: &[usize],
    min: u64,
    marks: &mut Marks,
    whole_customers: &dyn Fn(&Cell) -> u64,
    component_customers: &dyn Fn(&Cell, Component) -> u64,
) -> bool {
    if family.len() < 2 {
        return false;
    }
    let Marks { has, whole, parts } = marks;
    let mut changed = false;
    // whole cells
    let hidden: Vec<bool> = family
        .iter()
        .map(|&i| whole[i] || cells[i].index().suppressed)
        .collect();
    if hidden.contains(&true) {
        let sizes: Vec<u64> = family.iter().map(|&i| whole_customers(&cells[i])).collect();
        for (pos, hide) in complements(&hidden, &sizes, min).into_iter().enumerate() {
            if hide {
                whole[family[pos]] = true;
                changed = true;
            }
        }
    }
    // each component, among the members that have it
    for k in Component::ALL {
        let with: Vec<usize> = family
            .iter()
            .copied()
            .filter(|&i| has[i][k.idx()])
            .collect();
        if with.len() < 2 {
            continue;
        }
        let hidden: Vec<bool> = with
            .iter()
            .map(|&i| whole[i] || parts[i][k.idx()] || cells[i].component(k).suppressed)
            .collect();
        if !hidden.contains(&true) {
            continue;
        }
        let sizes: Vec<u64> = with
            .iter()
            .map(|&i| component_customers(&cells[i], k))
            .collect();
        for (pos, hide) in complements(&hidden, &sizes, min).into_iter().enumerate() {
            if hide {
                parts[with[pos]][k.idx()] = true;
                changed = true;
            }
        }
    }
    changed
}

/// The rows of a cell that shows nothing: the index and every component.
fn suppressed_cell(note: &str) -> Vec<Estimate> {
    std::iter::once(None)
        .chain(Component::ALL.iter().copied().map(Some))
        .map(|c| suppressed_row(c, note.to_string()))
        .collect()
}

fn suppressed_row(component: Option<Component>, note: String) -> Estimate {
    Estimate {
        component,
        n: None,
        customers: None,
        value: None,
        se: None,
        ci: None,
        weight: None,
        suppressed: true,
        note: Some(note),
    }
}

/// The rows of one cell; `hide` marks components suppressed to protect
/// another cell ([`protect_complements`]), left out like small ones.
fn estimate_cell(
    contacts: &[Contact],
    idx: &[usize],
    s: &Settings,
    hide: [bool; 6],
) -> Vec<Estimate> {
    let min = s.min_group_size as u64;
    let cell_customers = distinct_customers(idx.iter().map(|&j| &contacts[j]));
    if cell_customers < min {
        return suppressed_cell(&format!("suppressed: fewer than {min} customers"));
    }
    let mut comps = Vec::with_capacity(6);
    let mut included = [None; 6];
    for c in Component::ALL {
        if let Some(why) = &s.unavailable[c.idx()] {
            comps.push(Estimate {
                component: Some(c),
                n: None,
                customers: None,
                value: None,
                se: None,
                ci: None,
                weight: None,
                suppressed: false,
                note: Some(format!("not available: {why}")),
            });
            continue;
        }
        let with: Vec<&Contact> = idx
            .iter()
            .map(|&j| &contacts[j])
            .filter(|x| x.scores[c.idx()].is_some())
            .collect();
        let customers = distinct_customers(with.iter().copied());
        if with.is_empty() {
            comps.push(Estimate {
                component: Some(c),
                n: None,
                customers: None,
                value: None,
                se: None,
                ci: None,
                weight: None,
                suppressed: false,
                note: Some("no data: no contact in this cell has this component".into()),
            });
            continue;
        }
        if customers < min {
            comps.push(suppressed_row(
                Some(c),
                format!("suppressed: fewer than {min} customers; left out of the index"),
            ));
            continue;
        }
        if hide[c.idx()] {
            comps.push(suppressed_row(
                Some(c),
                "suppressed: would let a smaller group be worked out from the totals; left out of the index".into(),
            ));
            continue;
        }
        let values: Vec<(Option<u32>, f64)> = with
            .iter()
            .filter_map(|x| x.scores[c.idx()].map(|v| (x.customer, v)))
            .collect();
        let (mean, se, n) = mean_se(&values);
        included[c.idx()] = Some(c.weight(s.cfg));
        comps.push(Estimate {
            component: Some(c),
            n: Some(n as u64),
            customers: Some(customers),
            value: Some(mean),
            se,
            ci: interval(mean, se),
            weight: None,
            suppressed: false,
            note: None,
        });
    }
    let total: f64 = included.iter().flatten().sum();
    let weights: [Option<f64>; 6] = if total > 0.0 {
        included.map(|w| w.map(|w| w / total))
    } else {
        [None; 6]
    };
    for (i, e) in comps.iter_mut().enumerate() {
        e.weight = weights[i];
    }
    let scores: Vec<(Option<u32>, [Option<f64>; 6])> = idx
        .iter()
        .map(|&j| (contacts[j].customer, contacts[j].scores))
        .collect();
    let index = match index_estimate(&scores, &weights) {
        Some((value, se, used)) => Estimate {
            component: None,
            n: Some(used as u64),
            customers: Some(cell_customers),
            value: Some(value),
            se,
            ci: interval(value, se),
            weight: Some(1.0),
            suppressed: false,
            note: None,
        },
        None => Estimate {
            component: None,
            n: None,
            customers: Some(cell_customers),
            value: None,
            se: None,
            ci: None,
            weight: None,
            suppressed: false,
            note: Some("no component can be shown for this cell".into()),
        },
    };
    std::iter::once(index).chain(comps).collect()
}

/// Schema of `marts/empathy_index`.
pub fn schema() -> SchemaRef {
    let f = |name: &str, ty: DataType, nullable: bool| Field::new(name, ty, nullable);
    Arc::new(Schema::new(vec![
        f("period", DataType::Utf8, false),
        f("dimension", DataType::Utf8, false),
        f("group_value", DataType::Utf8, false),
        f("component", DataType::Utf8, false),
        f("n", DataType::UInt64, true),
        f("customers", DataType::UInt64, true),
        f("value", DataType::Float64, true),
        f("ci_lower", DataType::Float64, true),
        f("ci_upper", DataType::Float64, true),
        f("weight", DataType::Float64, true),
        f("suppressed", DataType::Boolean, false),
        f("note", DataType::Utf8, true),
    ]))
}

/// Values are rounded to 4 decimals: more digits would only carry noise,
/// and rounding keeps the file byte-identical across platforms.
fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The cells as one batch of `marts/empathy_index`.
pub fn to_batch(cells: &[Cell]) -> Result<RecordBatch> {
    let mut period = StringBuilder::new();
    let mut dimension = StringBuilder::new();
    let mut group = StringBuilder::new();
    let mut component = StringBuilder::new();
    let mut n = UInt64Builder::new();
    let mut customers = UInt64Builder::new();
    let mut value = Float64Builder::new();
    let mut lo = Float64Builder::new();
    let mut hi = Float64Builder::new();
    let mut weight = Float64Builder::new();
    let mut suppressed = BooleanBuilder::new();
    let mut note = StringBuilder::new();
    for cell in cells {
        let p = cell.period.label();
        for e in &cell.rows {
            period.append_value(&p);
            dimension.append_value(cell.dimension.name());
            group.append_value(&cell.group);
            component.append_value(e.component.map_or("index", Component::name));
            n.append_option(e.n);
            customers.append_option(e.customers);
            value.append_option(e.value.map(round4));
            lo.append_option(e.ci.map(|c| round4(c.0)));
            hi.append_option(e.ci.map(|c| round4(c.1)));
            weight.append_option(e.weight.map(round4));
            suppressed.append_value(e.suppressed);
            note.append_option(e.note.as_deref());
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(period.finish()),
        Arc::new(dimension.finish()),
        Arc::new(group.finish()),
        Arc::new(component.finish()),
        Arc::new(n.finish()),
        Arc::new(customers.finish()),
        Arc::new(value.finish()),
        Arc::new(lo.finish()),
        Arc::new(hi.finish()),
        Arc::new(weight.finish()),
        Arc::new(suppressed.finish()),
        Arc::new(note.finish()),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

#[cfg(test)]
mod tests;
