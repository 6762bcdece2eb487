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
//! anonymous contact is a customer of its own). A component's variance is
//! the same with one component. With one contact per customer this is
//! exactly s²/n; with several, one customer's contacts are not taken as
//! independent voices. The scores are bounded, and many are 0 or 100:
//! twelve customers who all scored 100 have no variance, and mean ± 1.96·se
//! would be [100, 100]. So the interval is Agresti and Coull's (1998) for a
//! proportion carried over to these means ([`bounded_interval`]): z²/2
//! pseudo-customers who scored 0 on every component and z²/2 who scored 100
//! are added before the mean and its clustered variance are taken, and the
//! interval is centre ± 1.96·se, clamped to 0–100. `value` stays the plain
//! mean.
//!
//! **Suppression**: a cell with fewer than `min_group_size` distinct
//! customers (an anonymous review counts as one) shows no number at all —
//! value, interval and counts are NULL, `suppressed` is true. A component
//! below the threshold inside a shown cell is suppressed the same way and
//! left out of that cell's index. The contacts a dimension has no group for
//! (a customer without the attribute or segment, an anonymous review, a
//! survey without a touchpoint) make a group of their own, [`UNKNOWN`], so
//! a dimension's groups always add up to the whole business. Then
//! [`protect_complements`] hides the groups that would give a hidden one
//! away by subtraction.

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
use crate::secondary_suppression::complements_by_union;

/// 97.5% quantile of the standard normal.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The group of the contacts a dimension has no group for. Published like
/// any other group rather than left out: the groups shown would otherwise
/// add up to the whole business minus these contacts, and the whole
/// business minus the groups shown would be exactly them, however few.
pub const UNKNOWN: &str = "unknown";

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
    /// Standard error behind `ci` (with its pseudo-customers: a little
    /// above that of `value` in a small cell, the same in a large one).
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
    /// Indices into the contact list (32 bits: a cell list per dimension and
    /// period holds every contact up to fourteen times, 20M at a million
    /// customers).
    pub contacts: Vec<u32>,
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

/// One contact's scores: its customer (`None`: anonymous, a customer of
/// its own) and its 0–100 score on each component in [`Component::ALL`]
/// order, or `None`.
pub type Scores = (Option<u32>, [Option<f64>; 6]);

/// A weighted sum of component means, linearized for its clustered
/// standard error.
struct Linearized {
    /// Σ w · mean over the components.
    value: f64,
    /// The same with the pseudo-customers in: the interval's centre.
    centre: f64,
    se: Option<f64>,
    /// Contacts with a score on an included component.
    used: usize,
}

/// The weighted sum of the component means of `scores` (`weights` already
/// re-normalized, `None` for a component left out) and its standard error
/// clustered by customer: one customer's contacts are not independent (ten
/// tickets of one unhappy customer are one voice, not ten), so their
/// influences are summed per customer before they are squared,
/// √(G/(G−1) · Σ_customers (Σ z)²) as statsmodels' `cov_type="cluster"`.
/// `None` below two customers.
///
/// `pseudo` adds that many pseudo-customers who scored 0 on every included
/// component and as many who scored 100 (0: the plain delta method). A
/// pseudo-customer has the average number of contacts per customer of each
/// component (nᵢ/Gᵢ): the width is set by customers, and z²/2 contacts
/// would hardly move a cell whose customers have ten each.
fn linearize(scores: &[Scores], weights: &[Option<f64>; 6], pseudo: f64) -> Option<Linearized> {
    linearize_in(&Clusters::of(scores), weights, pseudo)
}

/// A cell's contacts clustered by customer once: a cell's seven estimates
/// (six components alone, then the index) share it. Sorting the contacts
/// for each, and reading their scores at random, was a tenth of the job at
/// a million customers.
pub struct Clusters {
    /// Per component: Σ score and contacts with one, in cluster order.
    sums: [f64; 6],
    ns: [usize; 6],
    /// Every contact's scores, 0 where it has none, grouped by customer
    /// (sorted by customer, in contact order within one), then the
    /// anonymous contacts in order, each a customer of its own.
    rows: Vec<[f64; 6]>,
    /// Bit i: the contact of `rows` has a score on component i.
    masks: Vec<u8>,
    /// Where each customer's contacts end in `rows`.
    ends: Vec<u32>,
}

impl Clusters {
    /// `scores` clustered by customer.
    pub fn of(scores: &[Scores]) -> Clusters {
        let packed: Vec<Packed> = scores.iter().map(|(c, row)| Packed::of(*c, row)).collect();
        let order = cluster_order(scores.iter().map(|(c, _)| *c));
        Clusters::in_order(order.iter().map(|&j| &packed[j as usize]))
    }

    /// Contacts already in cluster order, in one forward pass.
    fn in_order<'a>(rows: impl ExactSizeIterator<Item = &'a Packed>) -> Clusters {
        let mut c = Clusters {
            sums: [0.0; 6],
            ns: [0; 6],
            rows: Vec::with_capacity(rows.len()),
            masks: Vec::with_capacity(rows.len()),
            ends: Vec::new(),
        };
        let mut customer = None;
        for r in rows {
            // a cluster ends before another customer and around an
            // anonymous contact, a customer of its own
            if !c.rows.is_empty() && (r.customer.is_none() || r.customer != customer) {
                c.ends.push(c.rows.len() as u32);
            }
            customer = r.customer;
            for i in 0..6 {
                if r.has >> i & 1 == 1 {
                    c.sums[i] += r.values[i];
                    c.ns[i] += 1;
                }
            }
            c.rows.push(r.values);
            c.masks.push(r.has);
        }
        if !c.rows.is_empty() {
            c.ends.push(c.rows.len() as u32);
        }
        c
    }

    /// Each customer's contacts, as ranges of `rows`.
    fn runs(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|&e| e as usize));
        starts
            .zip(self.ends.iter())
            .map(|(start, &end)| start..end as usize)
    }

    /// Customers (an anonymous contact counting as one) with a score on
    /// each component: what `distinct_customers` counts over the contacts
    /// with that component.
    pub fn customers_with(&self) -> [u64; 6] {
        let mut out = [0u64; 6];
        for run in self.runs() {
            let any = self.masks[run].iter().fold(0u8, |a, &m| a | m);
            for (i, g) in out.iter_mut().enumerate() {
                *g += u64::from(any >> i & 1);
            }
        }
        out
    }

    /// Customers, an anonymous contact counting as one.
    pub fn customers(&self) -> u64 {
        self.ends.len() as u64
    }
}

/// [`linearize`] over contacts already clustered by customer.
fn linearize_in(
    clusters: &Clusters,
    weights: &[Option<f64>; 6],
    pseudo: f64,
) -> Option<Linearized> {
    let mut included = 0u8;
    for (i, w) in weights.iter().enumerate() {
        included |= u8::from(w.is_some()) << i;
    }
    // Contacts with no included component count for nothing: a customer
    // with only such contacts is no customer of this estimate.
    let mut used = 0usize;
    let mut customers_with = [0usize; 6];
    for run in clusters.runs() {
        let mut any = 0u8;
        for &m in &clusters.masks[run] {
            let m = m & included;
            used += usize::from(m != 0);
            any |= m;
        }
        for (i, g) in customers_with.iter_mut().enumerate() {
            *g += usize::from(any >> i & 1);
        }
    }
    let (sums, ns) = (&clusters.sums, &clusters.ns);
    let (mut value, mut centre, mut total_w) = (0.0, 0.0, 0.0);
    // per component: the mean with the pseudo-customers, its denominator
    // (real and pseudo contacts) and a pseudo-customer's contacts
    let mut means = [0.0; 6];
    let mut denom = [0.0; 6];
    let mut size = [0.0; 6];
    for i in 0..6 {
        if let Some(w) = weights[i]
            && ns[i] > 0
        {
            (size[i], denom[i], means[i]) = pseudo_mean(ns[i], customers_with[i], sums[i], pseudo);
            value += w * sums[i] / ns[i] as f64;
            centre += w * means[i];
            total_w += w;
        }
    }
    if total_w <= 0.0 {
        return None;
    }
    let influence = |k: usize| -> f64 {
        let (row, mask) = (&clusters.rows[k], clusters.masks[k]);
        (0..6)
            .filter(|&i| mask >> i & 1 == 1)
            .filter_map(|i| Some(weights[i]? * (row[i] - means[i]) / denom[i]))
            .sum()
    };
    let (mut ss, mut customers) = (0.0, 0usize);
    for run in clusters.runs() {
        let mut counted = run
            .filter(|&k| clusters.masks[k] & included != 0)
            .peekable();
        if counted.peek().is_none() {
            continue;
        }
        let z: f64 = counted.map(influence).sum();
        ss += z * z;
        customers += 1;
    }
    // a pseudo-customer is one customer: its contacts on every component
    // are summed, as a real customer's are
    let pseudo_influence = |bound: f64| -> f64 {
        (0..6)
            .filter(|&i| ns[i] > 0)
            .filter_map(|i| Some(weights[i]? * size[i] * (bound - means[i]) / denom[i]))
            .sum()
    };
    ss += pseudo * (pseudo_influence(0.0).powi(2) + pseudo_influence(100.0).powi(2));
    Some(Linearized {
        value,
        centre,
        se: clustered_se(ss, customers, pseudo),
        used,
    })
}

/// One component's (contacts per pseudo-customer, denominator with the
/// pseudo-customers' contacts, mean with them) from its `n` contacts of
/// `customers` customers, whose scores add up to `sum`.
fn pseudo_mean(n: usize, customers: usize, sum: f64, pseudo: f64) -> (f64, f64, f64) {
    let n = n as f64;
    let size = n / customers as f64;
    let denom = n + 2.0 * pseudo * size;
    (size, denom, (sum + 100.0 * pseudo * size) / denom)
}

/// The clustered standard error from the sum of squared cluster influences
/// `ss` over `customers` real and `2 · pseudo` pseudo-customers, with the
/// small-sample factor g / (g − 1); `None` below two real customers.
fn clustered_se(ss: f64, customers: usize, pseudo: f64) -> Option<f64> {
    let g = customers as f64 + 2.0 * pseudo;
    (customers >= 2).then(|| (ss * g / (g - 1.0)).sqrt())
}

/// [`linearize_in`] of each component alone (weight 1 on it), all six in
/// one pass over the contacts: a cell asked for them one at a time, two
/// passes each, and those passes were a tenth of the job at a million
/// customers. The same arithmetic in the same order, so the same bits
/// (tested against `linearize_in`; a weight of 1 multiplies exactly).
fn linearize_each(clusters: &Clusters, pseudo: f64) -> [Option<Linearized>; 6] {
    let customers_with = clusters.customers_with();
    let (sums, ns) = (&clusters.sums, &clusters.ns);
    let terms: [(f64, f64, f64); 6] =
        std::array::from_fn(|i| pseudo_mean(ns[i], customers_with[i] as usize, sums[i], pseudo));
    let mut ss = [0.0; 6];
    let mut customers = [0usize; 6];
    for run in clusters.runs() {
        let mut z = [0.0; 6];
        let mut any = 0u8;
        for k in run {
            let (row, mask) = (&clusters.rows[k], clusters.masks[k]);
            any |= mask;
            for i in (0..6).filter(|&i| mask >> i & 1 == 1) {
                let (_, denom, mean) = terms[i];
                z[i] += (row[i] - mean) / denom;
            }
        }
        for i in (0..6).filter(|&i| any >> i & 1 == 1) {
            ss[i] += z[i] * z[i];
            customers[i] += 1;
        }
    }
    std::array::from_fn(|i| {
        if ns[i] == 0 {
            return None;
        }
        let (size, denom, mean) = terms[i];
        let pseudo_influence = |bound: f64| size * (bound - mean) / denom;
        let ss = ss[i] + pseudo * (pseudo_influence(0.0).powi(2) + pseudo_influence(100.0).powi(2));
        Some(Linearized {
            value: sums[i] / ns[i] as f64,
            centre: mean,
            se: clustered_se(ss, customers[i], pseudo),
            used: ns[i],
        })
    })
}

/// The weighted index of per-contact scores and its delta-method standard
/// error, clustered by customer ([`linearize`]). `weights[i]` is the
/// (already re-normalized) weight, `None` for a component not included.
/// Returns (index, standard error, contacts used). One component with
/// weight 1 gives its mean.
pub fn index_estimate(
    scores: &[Scores],
    weights: &[Option<f64>; 6],
) -> Option<(f64, Option<f64>, usize)> {
    linearize(scores, weights, 0.0).map(|l| (l.value, l.se, l.used))
}

/// The 95% interval of the weighted index of 0–100 scores (of one
/// component's mean: weight 1 on it alone), with its standard error. Agresti
/// and Coull's (1998) interval for a proportion, carried over to these
/// means and clustered: z²/2 pseudo-customers who scored 0 and z²/2 who
/// scored 100 are added ([`linearize`]), and the interval is their centre ±
/// z·se, clamped to 0–100. A plain mean ± z·se collapses to a point when
/// every customer gave the same score, and a cell of ten customers at 100
/// is far from proof that the next ten will all score 100. The interval
/// always holds the plain mean: the pseudo-customers move the centre by at
/// most what they add to the half-width.
pub fn bounded_interval(
    scores: &[Scores],
    weights: &[Option<f64>; 6],
) -> Option<((f64, f64), f64)> {
    linearize(scores, weights, PSEUDO_CUSTOMERS)?.interval()
}

/// Pseudo-customers at each bound in [`bounded_interval`]: z²/2.
const PSEUDO_CUSTOMERS: f64 = Z95 * Z95 / 2.0;

impl Linearized {
    /// centre ± z·se, clamped to 0–100, and se.
    fn interval(&self) -> Option<((f64, f64), f64)> {
        let se = self.se?;
        let bound = |x: f64| x.clamp(0.0, 100.0);
        Some((
            (bound(self.centre - Z95 * se), bound(self.centre + Z95 * se)),
            se,
        ))
    }
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
    let clustered = ClusterOrder::of(contacts);
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
            Dimension::Touchpoint => &touchpoints,
            _ => match groups.labels(d) {
                Some(l) => l,
                None => return Vec::new(),
            },
        };
        let mut names: Vec<&str> = labels.names.iter().map(String::as_str).collect();
        // a group that is called "unknown" already is one with it
        if !names.contains(&UNKNOWN) {
            names.push(UNKNOWN);
        }
        names
    };
    let names: Vec<Vec<&str>> = Dimension::ALL.iter().map(|d| names_of(*d)).collect();
    let unknown: Vec<Option<u32>> = names
        .iter()
        .zip(Dimension::ALL)
        .map(|(n, d)| {
            let at = n.iter().position(|g| *g == UNKNOWN);
            at.filter(|_| d != Dimension::Overall).map(|p| p as u32)
        })
        .collect();
    let mut offset = Vec::with_capacity(Dimension::ALL.len());
    let mut groups_before = 0;
    for n in &names {
        offset.push(groups_before);
        groups_before += n.len();
    }
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); groups_before * periods];
    let n = u32::try_from(contacts.len()).expect("fewer than 2^32 contacts");
    for (j, c) in (0..n).zip(contacts) {
        if c.month > s.run_month {
            continue;
        }
        let month = (c.month.0 - first_month.0) as usize;
        let in_last12 = c.month >= first_of_last12;
        for (di, d) in Dimension::ALL.iter().enumerate() {
            let code = match d {
                Dimension::Overall => Some(0),
                Dimension::Touchpoint => touchpoints.code(j),
                _ => c
                    .customer
                    .and_then(|k| groups.labels(*d).and_then(|l| l.code(k))),
            };
            let Some(code) = code.or(unknown[di]) else {
                continue;
            };
            let slot = (offset[di] + code as usize) * periods;
            members[slot + month].push(j);
            if in_last12 {
                members[slot + last12].push(j);
            }
        }
    }
    let mut keyed: Vec<(CellKey, Vec<u32>)> = Vec::new();
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
        estimate_cell(&clustered, idx, s, [false; 6])
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
    protect_complements(&mut cells, contacts, &clustered, s, first_of_last12);
    cells
}

/// Every contact's scores in cluster order (by customer, anonymous
/// contacts last, each in contact order), and each contact's place in it.
/// A cell's contacts come in contact order; gathering their scores and
/// clustering them read each at random, one cache miss each, twice (a
/// sixth of the job's CPU at a million customers, whose whole-business
/// cells hold a million contacts each). Read from here in cluster order, a
/// cell's scores are one forward pass: the job's aggregation took 2.7–2.9 s
/// instead of 3.2–3.7 s, its means' last bits now those of this order.
struct ClusterOrder {
    /// Place in `rows` of each contact.
    place: Vec<u32>,
    rows: Vec<Packed>,
}

/// [`Scores`] in 64 bytes instead of 104.
#[derive(Clone, Copy)]
struct Packed {
    customer: Option<u32>,
    /// Bit i: whether component i has a score.
    has: u8,
    values: [f64; 6],
}

impl Packed {
    fn of(customer: Option<u32>, scores: &[Option<f64>; 6]) -> Packed {
        let mut has = 0u8;
        for (i, x) in scores.iter().enumerate() {
            has |= u8::from(x.is_some()) << i;
        }
        Packed {
            customer,
            has,
            values: scores.map(|x| x.unwrap_or(0.0)),
        }
    }
}

/// The positions of `customers` in cluster order: by customer, the
/// anonymous ones last, each in the order given.
fn cluster_order(customers: impl Iterator<Item = Option<u32>>) -> Vec<u32> {
    let mut order: Vec<(bool, u32, u32)> = customers
        .zip(0..)
        .map(|(c, j)| (c.is_none(), c.unwrap_or(0), j))
        .collect();
    order.sort_unstable();
    order.into_iter().map(|(_, _, j)| j).collect()
}

/// How many rows ahead [`ClusterOrder::clusters`] asks for a row.
const PREFETCH_AHEAD: usize = 8;

impl ClusterOrder {
    fn of(contacts: &[Contact]) -> ClusterOrder {
        u32::try_from(contacts.len()).expect("fewer than 2^32 contacts");
        let order = cluster_order(contacts.iter().map(|c| c.customer));
        let mut place = vec![0u32; contacts.len()];
        let rows = order
            .iter()
            .zip(0..)
            .map(|(&j, p)| {
                place[j as usize] = p;
                let c = &contacts[j as usize];
                Packed::of(c.customer, &c.scores)
            })
            .collect();
        ClusterOrder { place, rows }
    }

    /// The contacts `idx` clustered by customer, as [`Clusters::of`] their
    /// scores: the cell's places sorted, then one forward pass.
    fn clusters(&self, idx: &[u32]) -> Clusters {
        let mut at: Vec<u32> = idx.iter().map(|&j| self.place[j as usize]).collect();
        at.sort_unstable();
        // A cell's contacts are scattered over the 2M rows, a cache miss
        // each, which the forward pass waited on (half of `estimate_cell`
        // in `perf`): each row is asked for a few rows ahead of its turn.
        Clusters::in_order(at.iter().enumerate().map(|(k, &p)| {
            if let Some(&ahead) = at.get(k + PREFETCH_AHEAD) {
                crate::customer_index::prefetch(&self.rows[ahead as usize]);
            }
            &self.rows[p as usize]
        }))
    }
}

/// Secondary suppression. The groups of a dimension in a period add up to
/// the whole business ([`UNKNOWN`] included), and the months of the last
/// twelve to the twelve-month cell, whose counts and means are published:
/// one hidden group (or a few hidden ones of fewer than `min_group_size`
/// customers together) would be the total minus the groups shown. So
/// within each such family the smallest shown groups are hidden too, whole
/// cells first and then each component, until the hidden ones hold at least
/// `min_group_size` distinct customers together; a total hidden in another
/// family keeps at least one of its groups hidden, or it would be their
/// sum ([`protect_family`]). A cell that loses a component is estimated
/// again without it.
fn protect_complements(
    cells: &mut [Cell],
    contacts: &[Contact],
    clustered: &ClusterOrder,
    s: &Settings,
    first_of_last12: Month,
) {
    let min = s.min_group_size as u64;
    let mut overall: BTreeMap<Period, usize> = BTreeMap::new();
    let mut twelve_months: BTreeMap<(Dimension, &str), usize> = BTreeMap::new();
    for (i, c) in cells.iter().enumerate() {
        if c.dimension == Dimension::Overall {
            overall.insert(c.period, i);
        }
        if c.period == Period::Last12Months {
            twelve_months.insert((c.dimension, c.group.as_str()), i);
        }
    }
    let mut families: BTreeMap<(u8, String, String), Family> = BTreeMap::new();
    for (i, c) in cells.iter().enumerate() {
        if c.dimension != Dimension::Overall {
            // the groups of a dimension within a period
            let key = (0, format!("{:?}", c.period), format!("{:?}", c.dimension));
            families
                .entry(key)
                .or_insert_with(|| Family {
                    total: *overall
                        .get(&c.period)
                        .expect("a period with contacts has an overall cell"),
                    members: Vec::new(),
                })
                .members
                .push(i);
        }
        let in_last12 = match c.period {
            Period::Month(m) => m >= first_of_last12,
            Period::Last12Months => false,
        };
        if in_last12 {
            // the months that make up a group's twelve-month cell
            let key = (1, format!("{:?}", c.dimension), c.group.clone());
            families
                .entry(key)
                .or_insert_with(|| Family {
                    total: *twelve_months
                        .get(&(c.dimension, c.group.as_str()))
                        .expect("a group's months of the last twelve are in its twelve-month cell"),
                    members: Vec::new(),
                })
                .members
                .push(i);
        }
    }
    // What each cell must hide besides its own small parts: the whole cell,
    // or components. Kept across families and rounds (a cell estimated
    // again must not show what another family hid), and repeated until no
    // family hides anything more.
    // Each cell's customers from its first estimate where it shows them;
    // counted only where it does not, in small cells and components: the
    // families ask for them round after round, and a count over the whole
    // business's contacts each time would be most of the job.
    let customers: Vec<[u64; 7]> = cells
        .iter()
        .map(|c| {
            let count = |k| customers_in(contacts, std::iter::once(c), k);
            let mut out = [0; 7];
            out[0] = c.index().customers.unwrap_or_else(|| count(None));
            for k in Component::ALL {
                let r = c.component(k);
                out[1 + k.idx()] = match r.customers {
                    Some(n) => n,
                    None if r.suppressed => count(Some(k)),
                    // not available, or no contact of the cell has it
                    None => 0,
                };
            }
            out
        })
        .collect();
    let mut marks = Marks {
        customers,
        whole: vec![false; cells.len()],
        parts: vec![[false; 6]; cells.len()],
    };
    for _ in 0..cells.len() + 1 {
        let mut changed = false;
        for family in families.values() {
            changed |= protect_family(cells, contacts, family, min, &mut marks);
            let Marks { whole, parts, .. } = &marks;
            for &i in family.members.iter().chain([&family.total]) {
                if whole[i] && !cells[i].index().suppressed {
                    cells[i].rows = suppressed_cell(
                        "suppressed: would let a smaller group be worked out from the totals",
                    );
                } else if !whole[i] && parts[i].contains(&true) {
                    let hidden_now = Component::ALL
                        .iter()
                        .all(|k| !parts[i][k.idx()] || cells[i].component(*k).suppressed);
                    if !hidden_now {
                        cells[i].rows = estimate_cell(clustered, &cells[i].contacts, s, parts[i]);
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
}

/// Cells that add up to another: a dimension's groups in a period and the
/// period's overall cell; a group's months of the last twelve and its
/// twelve-month cell.
struct Family {
    total: usize,
    members: Vec<usize>,
}

/// What [`protect_complements`] knows of each cell: its customers (in the
/// cell, then with each component in [`Component::ALL`] order: none where
/// it has no data), and what it must hide besides its own small parts (the
/// whole cell, or components).
struct Marks {
    customers: Vec<[u64; 7]>,
    whole: Vec<bool>,
    parts: Vec<[bool; 6]>,
}

/// Distinct customers behind some cells' contacts with component `k` (any
/// contact for `None`), each customer once however many of the cells hold
/// them.
fn customers_in<'a>(
    contacts: &[Contact],
    cells: impl Iterator<Item = &'a Cell>,
    k: Option<Component>,
) -> u64 {
    distinct_customers(
        cells
            .flat_map(|c| c.contacts.iter())
            .map(|&j| &contacts[j as usize])
            .filter(|x| k.is_none_or(|k| x.scores[k.idx()].is_some())),
    )
}

/// One pass of [`protect_complements`] over one family of cells, for the
/// whole cells and then for each component among the members that have it:
/// with the total shown, the hidden members must be none, or at least two
/// holding `min` distinct customers together ([`complements_by_union`]);
/// with the total hidden, at least one member must be hidden too. Marks
/// what must go; returns whether it marked anything new.
///
/// A component counts as hidden when it is small or was marked to protect
/// another one; not merely because its cell is hidden whole to protect
/// another cell. Such a component, of at least `min` customers, may be
/// worked out from the totals, and that gives nothing small away, while
/// counting it as hidden would take the same component from a second group
/// in every family (a few anonymous reviews in no age band would cost the
/// next band all its ticket components). Hiding one of those is free, so
/// they go first when a component must be hidden somewhere.
fn protect_family(
    cells: &[Cell],
    contacts: &[Contact],
    family: &Family,
    min: u64,
    marks: &mut Marks,
) -> bool {
    let Marks {
        customers,
        whole,
        parts,
    } = marks;
    let mut changed = false;
    for k in std::iter::once(None).chain(Component::ALL.map(Some)) {
        let size = |i: usize| customers[i][k.map_or(0, |k| 1 + k.idx())];
        let hidden = |i: usize| match k {
            None => whole[i] || cells[i].index().suppressed,
            Some(k) => parts[i][k.idx()] || size(i) < min,
        };
        let with: Vec<usize> = family
            .members
            .iter()
            .copied()
            .filter(|&i| size(i) > 0)
            .collect();
        if with.is_empty() {
            continue;
        }
        let sizes: Vec<u64> = with.iter().map(|&i| size(i)).collect();
        let members_hidden: Vec<bool> = with.iter().map(|&i| hidden(i)).collect();
        // members whose rows are all hidden already: hiding a component
        // there shows nothing less
        let free: Vec<bool> = with
            .iter()
            .map(|&i| k.is_some() && (whole[i] || cells[i].index().suppressed))
            .collect();
        let union = |positions: &[usize]| {
            customers_in(contacts, positions.iter().map(|&p| &cells[with[p]]), k)
        };
        let (hide, hide_total) = complements_by_union(
            &members_hidden,
            &sizes,
            &free,
            min,
            hidden(family.total),
            &union,
        );
        let targets = hide
            .iter()
            .zip(&with)
            .filter(|(h, _)| **h)
            .map(|(_, &i)| i)
            .chain(hide_total.then_some(family.total));
        for i in targets {
            match k {
                None => whole[i] = true,
                Some(k) => parts[i][k.idx()] = true,
            }
            changed = true;
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
    clustered: &ClusterOrder,
    idx: &[u32],
    s: &Settings,
    hide: [bool; 6],
) -> Vec<Estimate> {
    let min = s.min_group_size as u64;
    let clusters = clustered.clusters(idx);
    let cell_customers = clusters.customers();
    if cell_customers < min {
        return suppressed_cell(&format!("suppressed: fewer than {min} customers"));
    }
    let customers_with = clusters.customers_with();
    let alone = linearize_each(&clusters, PSEUDO_CUSTOMERS);
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
        let n = clusters.ns[c.idx()];
        let customers = customers_with[c.idx()];
        if n == 0 {
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
        let mean = clusters.sums[c.idx()] / n as f64;
        let (ci, se) = alone[c.idx()]
            .as_ref()
            .and_then(Linearized::interval)
            .unzip();
        included[c.idx()] = Some(c.weight(s.cfg));
        comps.push(Estimate {
            component: Some(c),
            n: Some(n as u64),
            customers: Some(customers),
            value: Some(mean),
            se,
            ci,
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
    let index = match linearize_in(&clusters, &weights, PSEUDO_CUSTOMERS) {
        Some(l) => {
            let (ci, se) = l.interval().unzip();
            Estimate {
                component: None,
                n: Some(l.used as u64),
                customers: Some(cell_customers),
                value: Some(l.value),
                se,
                ci,
                weight: Some(1.0),
                suppressed: false,
                note: None,
            }
        }
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
