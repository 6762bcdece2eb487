//! The audit engine: any set of decision tables in, findings out.
//!
//! For every table, dimension (group column or intersection) and outcome:
//! per group n, the metric and its 95% interval (Wilson for rates,
//! seeded bootstrap for means and quantiles); against the reference group
//! (configured, else the largest) the difference and ratio with intervals
//! (Katz for rate ratios, bootstrap percentiles otherwise) and a test
//! (two-proportion z, Mann-Whitney U, or Welch's t for signed gaps, plus a
//! chi-square test per categorical outcome and dimension); for classifiers
//! also Fairlearn's disparity aggregates. Every test of the run is then
//! corrected together (Benjamini-Hochberg) and each comparison gets its
//! verdict and sentence. Small groups are suppressed with complementary
//! protection ([`super::suppress`]) before any number is computed for them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::bootstrap::{
    mean_replicates, percentile_interval, quantile_replicates, rng, stream_seed,
};
use super::cluster::{ClusterSums, SubjectClusters, cluster_sums_multi};
use super::dims::{Dimension, Intersections, dimensions};
use super::findings::{Finding, Pending};
use super::metrics;
use super::stats::{
    MannWhitneyReference, Moments, Welford, benjamini_hochberg, chi_square_independence_deff,
    katz_ratio_interval_deff, mann_whitney_u_deff_against, quantile_sorted, two_proportion_z_deff,
    welch_t_deff, wilson_effective,
};
use super::suppress::{Hidden, Sizes, SubjectIndex, protect, sizes};
use super::table::{
    Classifier, Comparison, DecisionTable, Direction, MISSING, NO_VALUE, Outcome, OutcomeValues,
    Stat,
};
use super::verdict::{self, Scale, Thresholds, describe_group, fmt_pct, fmt_value, sentence};
use crate::Result;
use crate::customer_index::{AHEAD, prefetch};

/// Confidence level of every interval.
pub const CONFIDENCE: f64 = 0.95;

/// Settings of one audit.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditParams {
    /// Groups with fewer people are suppressed. Default 10.
    pub min_group_size: u64,
    pub thresholds: Thresholds,
    /// Bootstrap resamples per statistic. Default 1000.
    pub resamples: usize,
    /// Seed of every bootstrap stream. Default 20250101.
    pub seed: u64,
    pub intersections: Intersections,
    /// Reference group per dimension name; default: the largest group.
    pub reference_groups: BTreeMap<String, String>,
    /// What the rows' subjects are called in sentences ("customers").
    pub noun: String,
    /// Worker threads (0 = one per core).
    pub threads: usize,
}

impl Default for AuditParams {
    fn default() -> Self {
        AuditParams {
            min_group_size: 10,
            thresholds: Thresholds::default(),
            resamples: 1000,
            seed: 20_250_101,
            intersections: Intersections::Pairwise,
            reference_groups: BTreeMap::new(),
            noun: "customers".into(),
            threads: 0,
        }
    }
}

/// What an audit found.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditReport {
    /// Sorted by decision, dimension, outcome, metric, group.
    pub findings: Vec<Finding>,
    pub warnings: Vec<String>,
    /// Tests corrected together.
    pub tests: usize,
}

impl AuditReport {
    /// Findings with this verdict.
    pub fn count(&self, v: verdict::Verdict) -> usize {
        self.findings
            .iter()
            .filter(|f| f.verdict == Some(v))
            .count()
    }
}

/// Audits the tables together: one correction over all their tests.
pub fn audit(tables: &[DecisionTable], params: &AuditParams) -> Result<AuditReport> {
    // Each table is sorted by subject and grouped on its own thread, the
    // largest first: one after another they kept one core busy for 2 s
    // of the audit's 4.7 at a million customers.
    // by index: a prepared table borrows from `tables`, which the closure's
    // own argument could not lend for long enough
    let indices: Vec<usize> = (0..tables.len()).collect();
    let ready = crate::parallel::map_costliest_first(
        &indices,
        |&i| tables[i].rows,
        threads(params.threads),
        &|&i: &usize| {
            let mut warnings = Vec::new();
            (Prepared::new(&tables[i], params, &mut warnings), warnings)
        },
    );
    let mut warnings = Vec::new();
    let mut prepared: Vec<Prepared> = Vec::with_capacity(tables.len());
    for (p, w) in ready {
        prepared.push(p?);
        warnings.extend(w);
    }
    let outputs = run_all_units(&prepared, params)?;
    Ok(combine(outputs, warnings, params))
}

/// One table audited on its own ([`audit_table`]): its findings, with
/// tests not yet corrected together with the other tables' ([`combine_tables`]).
pub struct TableAudit {
    outputs: Vec<UnitOut>,
    warnings: Vec<String>,
}

/// What [`audit`] does for one of its tables, before the correction: a
/// caller that gets its tables one at a time audits each as it comes, and
/// [`combine_tables`] of the parts, in the order of the tables, is
/// [`audit`] of them all.
pub fn audit_table(table: &DecisionTable, params: &AuditParams) -> Result<TableAudit> {
    let mut warnings = Vec::new();
    let prepared = [Prepared::new(table, params, &mut warnings)?];
    let outputs = run_all_units(&prepared, params)?;
    Ok(TableAudit { outputs, warnings })
}

/// The audits of several tables, in their order, corrected together
/// (Benjamini-Hochberg over every test).
pub fn combine_tables(parts: Vec<TableAudit>, params: &AuditParams) -> AuditReport {
    let mut outputs = Vec::new();
    let mut warnings = Vec::new();
    for part in parts {
        outputs.extend(part.outputs);
        warnings.extend(part.warnings);
    }
    combine(outputs, warnings, params)
}

/// Every outcome and classifier of `prepared`, table by table, in order.
fn run_all_units(prepared: &[Prepared], params: &AuditParams) -> Result<Vec<UnitOut>> {
    let mut units = Vec::new();
    for (ti, p) in prepared.iter().enumerate() {
        units.extend((0..p.table.outcomes.len()).map(|oi| Unit::Outcome(ti, oi)));
        if p.table.classifier.is_some() {
            units.push(Unit::Classifier(ti));
        }
    }
    let costs: Vec<usize> = units.iter().map(|u| u.cost(prepared)).collect();
    run_units(&units, &costs, params.threads, |u| match *u {
        Unit::Outcome(ti, oi) => {
            outcome_unit(&prepared[ti], &prepared[ti].table.outcomes[oi], params)
        }
        Unit::Classifier(ti) => classifier_unit(
            &prepared[ti],
            prepared[ti]
                .table
                .classifier
                .as_ref()
                .expect("unit made only for classifiers"),
            params,
        ),
    })
}

/// The units' findings with their tests numbered in one sequence,
/// corrected together, finished and sorted.
fn combine(outputs: Vec<UnitOut>, warnings: Vec<String>, params: &AuditParams) -> AuditReport {
    let mut findings = Vec::new();
    let mut p_values = Vec::new();
    for out in outputs {
        let offset = p_values.len();
        p_values.extend(out.p_values);
        for mut f in out.findings {
            if let Some(p) = f.pending.as_mut()
                && let Some(t) = p.test.as_mut()
            {
                *t += offset;
            }
            findings.push(f);
        }
    }
    let adjusted = benjamini_hochberg(&p_values);
    for f in &mut findings {
        finish(f, &adjusted, params);
    }
    findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    AuditReport {
        findings,
        warnings,
        tests: p_values.len(),
    }
}

enum Unit {
    Outcome(usize, usize),
    Classifier(usize),
}

impl Unit {
    /// Rough work: rows times passes over them. It orders the units, and
    /// nothing else.
    fn cost(&self, prepared: &[Prepared]) -> usize {
        match *self {
            Unit::Outcome(ti, oi) => {
                let table = &prepared[ti].table;
                let outcome = &table.outcomes[oi];
                let passes = match &outcome.values {
                    OutcomeValues::Binary(_) => 1,
                    OutcomeValues::Categorical(c) => 1 + c.labels.len(),
                    OutcomeValues::Continuous(_) => 4 + outcome.stats.len(),
                };
                table.rows * passes
            }
            Unit::Classifier(ti) => {
                let table = &prepared[ti].table;
                let scored = (table.classifier.as_ref()).is_some_and(|c| c.score.is_some());
                // five rates, and two continuous outcomes of the score
                table.rows * (5 + if scored { 10 } else { 0 })
            }
        }
    }
}

/// Runs the units on `threads` workers (0: one per core), the costliest
/// first: in table order the sentiment table's units (2.7M messages at a
/// million customers, the most rows) came last, and one could be left
/// running alone at the end. Outputs come back in unit order.
fn run_units<F>(units: &[Unit], costs: &[usize], threads: usize, work: F) -> Result<Vec<UnitOut>>
where
    F: Fn(&Unit) -> Result<UnitOut> + Sync,
{
    let indices: Vec<usize> = (0..units.len()).collect();
    crate::parallel::map_costliest_first(&indices, |&i| costs[i], self::threads(threads), &|&i| {
        work(&units[i])
    })
    .into_iter()
    .collect()
}

/// `[fairness] threads`: 0 is one per core.
fn threads(configured: usize) -> usize {
    match configured {
        0 => crate::parallel::threads(),
        n => n,
    }
}

/// Findings and the p-values of their tests (indices in `Pending::test`).
#[derive(Default)]
struct UnitOut {
    findings: Vec<Finding>,
    p_values: Vec<f64>,
}

impl UnitOut {
    fn test(&mut self, p: f64) -> usize {
        self.p_values.push(p);
        self.p_values.len() - 1
    }
}

/// A table with its dimensions, whole-population suppression and
/// reference groups.
struct Prepared<'a> {
    /// The table, its rows in subject order (so a person's rows are adjacent).
    table: Cow<'a, DecisionTable>,
    dims: Vec<Dimension>,
    subjects: Option<SubjectIndex>,
    /// Whether some person has several rows (else design effects are 1).
    repeated: bool,
    base: Vec<Vec<Hidden>>,
    references: Vec<Option<usize>>,
    /// `[dim][group]`: the group in words.
    words: Vec<Vec<String>>,
}

impl<'a> Prepared<'a> {
    fn new(
        table: &'a DecisionTable,
        params: &AuditParams,
        warnings: &mut Vec<String>,
    ) -> Result<Prepared<'a>> {
        table.check()?;
        let table = match table.sorted_by_subject() {
            Some(sorted) => Cow::Owned(sorted),
            None => Cow::Borrowed(table),
        };
        let dims = dimensions(&table, &params.intersections)?;
        let subjects = table
            .subjects
            .as_deref()
            .map(|s| SubjectIndex::new(s, &dims));
        let all = vec![true; table.rows];
        let s = sizes(&dims, &all, subjects.as_ref());
        let base = protect(&dims, &s, params.min_group_size, None);
        let references = dims
            .iter()
            .enumerate()
            .map(|(d, dim)| choose_reference(&table, dim, &s, d, &base[d], params, warnings))
            .collect();
        let words = dims
            .iter()
            .map(|dim| {
                (0..dim.groups())
                    .map(|g| describe_group(&dim.attributes, &dim.values[g], &params.noun))
                    .collect()
            })
            .collect();
        let repeated = table
            .subjects
            .as_ref()
            .is_some_and(|s| s.windows(2).any(|w| w[0] == w[1]));
        Ok(Prepared {
            table,
            dims,
            subjects,
            repeated,
            base,
            references,
            words,
        })
    }

    /// Sizes and suppression of a population (rows where `mask` is true),
    /// inheriting the whole table's suppression.
    fn population(&self, mask: &[bool], params: &AuditParams) -> (Sizes, Vec<Vec<Hidden>>) {
        let s = sizes(&self.dims, mask, self.subjects.as_ref());
        let hidden = protect(&self.dims, &s, params.min_group_size, Some(&self.base));
        (s, hidden)
    }

    /// The reference of a dimension in a population (`rows`: its rows per
    /// group): the whole table's, or, when that group is too small to show
    /// here (the largest region overall can be tiny among unhappy
    /// customers), the largest group shown here, so the groups shown are
    /// still compared; each sentence names its reference.
    fn reference(&self, d: usize, hidden: &[Hidden], rows: &[u64]) -> Option<usize> {
        match self.references[d] {
            Some(r) if !hidden[r].hidden() => Some(r),
            _ => (0..hidden.len())
                .filter(|&g| !hidden[g].hidden() && rows.get(g).is_some_and(|&n| n > 0))
                .max_by(|&a, &b| rows[a].cmp(&rows[b]).then(b.cmp(&a))),
        }
    }

    /// The people (clusters) of the rows of `mask` with their totals of
    /// `k` row variables (`fill`), made once and split by every dimension
    /// in [`clusters`](Self::clusters); `None` when nobody has several rows
    /// (every design effect is then 1).
    fn people(
        &self,
        mask: &[bool],
        k: usize,
        fill: impl Fn(usize, &mut [f64]),
    ) -> Option<SubjectClusters> {
        let subjects = self.table.subjects.as_ref().filter(|_| self.repeated)?;
        Some(SubjectClusters::new(subjects, mask, k, fill))
    }

    /// Per variable and group of dimension `d`, cluster sums (people as
    /// clusters) of the row variables of `people` over the rows of `mask`
    /// (`fill` must be the one `people` was made with); `None` without
    /// `people`.
    fn clusters(
        &self,
        d: usize,
        people: Option<&SubjectClusters>,
        mask: &[bool],
        fill: impl Fn(usize, &mut [f64]),
    ) -> Option<Vec<Vec<ClusterSums>>> {
        self.clusters_with(d, people, mask, fill, 0, |_, _, _| {})
    }

    /// [`clusters`](Self::clusters), followed by `k` more variables whose
    /// row values depend on the row's group (`grouped(row, group, values)`).
    fn clusters_with(
        &self,
        d: usize,
        people: Option<&SubjectClusters>,
        mask: &[bool],
        fill: impl Fn(usize, &mut [f64]),
        k: usize,
        grouped: impl Fn(usize, usize, &mut [f64]),
    ) -> Option<Vec<Vec<ClusterSums>>> {
        let people = people?;
        let dim = &self.dims[d];
        let groups = dim.groups();
        // A dimension of the people, not of their rows (every attribute of
        // the nightly's tables, and so every intersection): split the
        // people's totals rather than add up the rows again.
        if let Some(group_of) = self
            .subjects
            .as_ref()
            .filter(|_| people.shares_totals())
            .and_then(|s| s.group_of_subjects(d))
        {
            let mut sums = people.by_group(group_of, groups);
            if k > 0 {
                sums.extend(people.by_group_with(group_of, groups, mask, k, &grouped));
            }
            return Some(sums);
        }
        let subjects = self.table.subjects.as_ref()?;
        let shared = people.variables();
        Some(cluster_sums_multi(
            subjects,
            &dim.codes,
            groups,
            mask,
            shared + k,
            |r, out| {
                fill(r, &mut out[..shared]);
                grouped(r, dim.codes[r] as usize, &mut out[shared..]);
            },
        ))
    }

    /// Design effects of the rates `counts / totals` of a 0/1 row variable,
    /// from `people` made with [`rate_variable`] of it.
    fn rate_deffs(
        &self,
        d: usize,
        people: Option<&SubjectClusters>,
        mask: &[bool],
        counts: &[u64],
        totals: &[u64],
        rate: impl Fn(usize, &mut [f64]),
    ) -> Vec<f64> {
        match self.clusters(d, people, mask, rate) {
            Some(mut sums) => rate_deffs(&sums.swap_remove(0), counts, totals),
            None => vec![1.0; counts.len()],
        }
    }
}

/// A 0/1 row variable (`y`) as the one variable of cluster sums.
fn rate_variable(y: impl Fn(usize) -> bool) -> impl Fn(usize, &mut [f64]) {
    move |r: usize, out: &mut [f64]| out[0] = f64::from(u8::from(y(r)))
}

/// Design effects of rates from their cluster sums.
fn rate_deffs(sums: &[ClusterSums], counts: &[u64], totals: &[u64]) -> Vec<f64> {
    sums.iter()
        .enumerate()
        .map(|(g, c)| {
            if totals[g] == 0 {
                return 1.0;
            }
            let p = counts[g] as f64 / totals[g] as f64;
            c.design_effect(p, p * (1.0 - p) / totals[g] as f64)
        })
        .collect()
}

/// The design effect of comparing the means of y of two groups: the
/// robust variances of the two means over their variances for independent
/// rows, at least 1, and 1 when neither group repeats people.
fn combined_deff(a: &ClusterSums, b: &ClusterSums) -> f64 {
    if !a.clustered() && !b.clustered() {
        return 1.0;
    }
    let robust = |c: &ClusterSums| {
        if c.clustered() {
            c.robust_variance(c.mean())
                .unwrap_or_else(|| c.simple_variance())
        } else {
            c.simple_variance()
        }
    };
    let simple = a.simple_variance() + b.simple_variance();
    if simple <= 0.0 || !simple.is_finite() {
        return 1.0;
    }
    ((robust(a) + robust(b)) / simple).max(1.0)
}

/// The mean design effect of a table's cells, each given as (design
/// effect, count, group total): the first-order Rao–Scott correction of its
/// chi-square. A cell no one or everyone of its group is in has no variance
/// to inflate (its design effect is 1 by definition), so it is left out:
/// averaged in, it would shrink the correction. 1 when no cell is left.
fn mean_cell_deff(cells: &[(f64, u64, u64)]) -> f64 {
    let varied: Vec<f64> = cells
        .iter()
        .filter(|(_, count, total)| *count > 0 && count < total)
        .map(|(deff, _, _)| *deff)
        .collect();
    if varied.is_empty() {
        1.0
    } else {
        varied.iter().sum::<f64>() / varied.len() as f64
    }
}

/// Widens bootstrap replicates around the estimate by √deff, so their
/// spread is the clustered one, within the sample's range (`sorted`'s
/// first and last values): a mean or a quantile of the rows cannot leave
/// it, so stretching must not give a negative median wait or a ratio to a
/// reference below zero.
fn widen(replicates: &mut [f64], estimate: f64, deff: f64, sorted: &[f64]) {
    if let (true, Some(&min), Some(&max)) = (deff > 1.0, sorted.first(), sorted.last()) {
        let k = deff.sqrt();
        for r in replicates {
            *r = (estimate + k * (*r - estimate)).clamp(min, max);
        }
    }
}

fn choose_reference(
    table: &DecisionTable,
    dim: &Dimension,
    s: &Sizes,
    d: usize,
    hidden: &[Hidden],
    params: &AuditParams,
    warnings: &mut Vec<String>,
) -> Option<usize> {
    if let Some(want) = params.reference_groups.get(&dim.name) {
        match (0..dim.groups()).find(|&g| &dim.group_name(g) == want) {
            Some(g) if !hidden[g].hidden() => return Some(g),
            Some(_) => warnings.push(format!(
                "{}: the configured reference group {want:?} of {} is too small to show; using the largest group",
                table.name, dim.name
            )),
            None => warnings.push(format!(
                "{}: the configured reference group {want:?} of {} does not occur; using the largest group",
                table.name, dim.name
            )),
        }
    }
    (0..dim.groups())
        .filter(|&g| !hidden[g].hidden())
        .max_by(|&a, &b| {
            (s.groups[d][a], s.rows[d][a])
                .cmp(&(s.groups[d][b], s.rows[d][b]))
                .then(b.cmp(&a))
        })
}

/// A row for a group: suppressed, or with its value and interval.
#[allow(clippy::too_many_arguments)]
fn group_finding(
    prep: &Prepared,
    d: usize,
    g: usize,
    reference: Option<usize>,
    outcome: &str,
    metric: &str,
    hidden: Hidden,
    params: &AuditParams,
) -> Finding {
    let dim = &prep.dims[d];
    let mut f = Finding::new(&prep.table.name, &dim.name, outcome, metric);
    f.group_name = Some(dim.group_name(g));
    f.reference_group = reference.map(|r| dim.group_name(r));
    if hidden.hidden() {
        f.suppressed = true;
        let (min, noun) = (params.min_group_size, &params.noun);
        f.explanation = match hidden {
            Hidden::Small => format!("n < {min}: fewer than {min} {noun}, not shown."),
            Hidden::Empty => format!("No {noun} of this group have this measure."),
            _ => format!(
                "Not shown, so that a group of fewer than {min} {noun} cannot be worked out from the totals."
            ),
        };
    }
    f
}

struct RateWords<'a> {
    verb: String,
    /// Appended to group descriptions ("who churned").
    qualifier: &'a str,
    direction: Direction,
    /// Whether the rate is a decision to judge. A classifier's base rate
    /// describes the customers, not the model: it is shown beside its
    /// reference as context, with no test and no verdict, so a population
    /// whose groups churn at different rates raises no concern.
    judged: bool,
}

impl RateWords<'_> {
    fn subject(&self, base: &str) -> String {
        if self.qualifier.is_empty() {
            base.to_string()
        } else {
            format!("{base} {}", self.qualifier)
        }
    }
}

/// Rows of one rate metric of one dimension, from counts per group.
#[allow(clippy::too_many_arguments)]
fn rate_findings(
    out: &mut UnitOut,
    prep: &Prepared,
    d: usize,
    hidden: &[Hidden],
    counts: &[u64],
    totals: &[u64],
    deffs: &[f64],
    outcome: &str,
    metric: &str,
    words: &RateWords,
    params: &AuditParams,
) {
    let reference = prep.reference(d, hidden, totals);
    for g in 0..prep.dims[d].groups() {
        let mut f = group_finding(prep, d, g, reference, outcome, metric, hidden[g], params);
        if f.suppressed {
            out.findings.push(f);
            continue;
        }
        let (k, n) = (counts[g], totals[g]);
        let value = k as f64 / n as f64;
        f.value = Some(value);
        f.n = Some(n);
        if let Some(ci) = wilson_effective(value, n as f64 / deffs[g], CONFIDENCE) {
            f.ci_low = Some(ci.low);
            f.ci_high = Some(ci.high);
        }
        let subject = words.subject(&prep.words[d][g]);
        match reference {
            Some(r) if r == g => {
                f.reference_value = Some(value);
                f.explanation = sentence(&format!(
                    "reference group: {subject} {} in {} of cases (95% CI {}–{}).",
                    words.verb,
                    fmt_pct(value),
                    fmt_pct(f.ci_low.unwrap_or(value)),
                    fmt_pct(f.ci_high.unwrap_or(value))
                ));
            }
            Some(r) => {
                let (kr, nr) = (counts[r], totals[r]);
                let rv = kr as f64 / nr as f64;
                f.reference_value = Some(rv);
                f.difference = Some(value - rv);
                f.ratio = (rv > 0.0).then(|| value / rv);
                if let Some(ci) =
                    katz_ratio_interval_deff(k, n, deffs[g], kr, nr, deffs[r], CONFIDENCE)
                {
                    f.ratio_ci_low = Some(ci.low);
                    f.ratio_ci_high = Some(ci.high);
                }
                if !words.judged {
                    f.explanation = sentence(&format!(
                        "context, not a decision: {subject} {} in {} of cases, against {} for {}.",
                        words.verb,
                        fmt_pct(value),
                        fmt_pct(rv),
                        words.subject(&prep.words[d][r]),
                    ));
                    out.findings.push(f);
                    continue;
                }
                let test = two_proportion_z_deff(k, n, deffs[g], kr, nr, deffs[r]).map(|t| {
                    f.test = Some("two_proportion_z".into());
                    f.p_value = Some(t.p_value);
                    out.test(t.p_value)
                });
                f.pending = Some(Pending {
                    scale: Scale::Rate,
                    subject,
                    reference: words.subject(&prep.words[d][r]),
                    phrase: words.verb.clone(),
                    unit: String::new(),
                    direction: words.direction,
                    test,
                    omnibus: None,
                });
            }
            None => {
                f.explanation = sentence(&format!(
                    "{subject} {} in {} of cases; there is no reference group large enough to compare with.",
                    words.verb,
                    fmt_pct(value)
                ));
            }
        }
        out.findings.push(f);
    }
}

/// Counts of a 0/1 column per group of a dimension, among `mask` rows.
fn binary_counts(dim: &Dimension, mask: &[bool], values: &[u8]) -> (Vec<u64>, Vec<u64>) {
    let mut k = vec![0u64; dim.groups()];
    let mut n = vec![0u64; dim.groups()];
    for (r, (&c, &m)) in dim.codes.iter().zip(mask).enumerate() {
        if m && c != MISSING {
            n[c as usize] += 1;
            k[c as usize] += u64::from(values[r] == 1);
        }
    }
    (k, n)
}

fn outcome_unit(prep: &Prepared, outcome: &Outcome, params: &AuditParams) -> Result<UnitOut> {
    let mut out = UnitOut::default();
    match &outcome.values {
        OutcomeValues::Binary(values) => {
            let mask: Vec<bool> = values.iter().map(|&v| v != NO_VALUE).collect();
            let (_, hidden) = prep.population(&mask, params);
            let words = RateWords {
                verb: outcome.wording.rate_verb.replace("{category}", "1"),
                qualifier: "",
                direction: outcome.direction,
                judged: true,
            };
            let rate = rate_variable(|r| values[r] == 1);
            let people = prep.people(&mask, 1, &rate);
            for (d, dim) in prep.dims.iter().enumerate() {
                let (k, n) = binary_counts(dim, &mask, values);
                let deffs = prep.rate_deffs(d, people.as_ref(), &mask, &k, &n, &rate);
                rate_findings(
                    &mut out,
                    prep,
                    d,
                    &hidden[d],
                    &k,
                    &n,
                    &deffs,
                    &outcome.name,
                    "rate",
                    &words,
                    params,
                );
            }
        }
        OutcomeValues::Categorical(codes) => {
            let mask: Vec<bool> = codes.codes.iter().map(|&c| c != MISSING).collect();
            let (_, hidden) = prep.population(&mask, params);
            let cats = codes.labels.len();
            let one_hot = |r: usize, out: &mut [f64]| {
                out.fill(0.0);
                out[codes.codes[r] as usize] = 1.0;
            };
            let people = prep.people(&mask, cats, one_hot);
            for (d, dim) in prep.dims.iter().enumerate() {
                let mut table = vec![vec![0u64; cats]; dim.groups()];
                for (&g, &c) in dim.codes.iter().zip(&codes.codes) {
                    if g != MISSING && c != MISSING {
                        table[g as usize][c as usize] += 1;
                    }
                }
                let totals: Vec<u64> = table.iter().map(|r| r.iter().sum()).collect();
                let per_category = prep.clusters(d, people.as_ref(), &mask, one_hot);
                // (design effect, count, total) of the shown cells, for the omnibus test
                let mut cells = Vec::new();
                for (c, label) in codes.labels.iter().enumerate() {
                    let counts: Vec<u64> = table.iter().map(|r| r[c]).collect();
                    let deffs = match &per_category {
                        Some(sums) => rate_deffs(&sums[c], &counts, &totals),
                        None => vec![1.0; dim.groups()],
                    };
                    for g in (0..dim.groups()).filter(|&g| !hidden[d][g].hidden()) {
                        cells.push((deffs[g], counts[g], totals[g]));
                    }
                    let words = RateWords {
                        verb: outcome.wording.verb_for(label),
                        qualifier: "",
                        direction: outcome.direction,
                        judged: true,
                    };
                    rate_findings(
                        &mut out,
                        prep,
                        d,
                        &hidden[d],
                        &counts,
                        &totals,
                        &deffs,
                        &outcome.name,
                        &format!("share_{label}"),
                        &words,
                        params,
                    );
                }
                let shown: Vec<Vec<u64>> = (0..dim.groups())
                    .filter(|&g| !hidden[d][g].hidden())
                    .map(|g| table[g].clone())
                    .collect();
                if let Some((t, df)) = chi_square_independence_deff(&shown, mean_cell_deff(&cells))
                {
                    let mut f =
                        Finding::new(&prep.table.name, &dim.name, &outcome.name, "chi_square");
                    f.value = Some(t.statistic);
                    f.n = Some(shown.iter().flatten().sum());
                    f.test = Some("chi_square".into());
                    f.p_value = Some(t.p_value);
                    f.pending = Some(Pending {
                        scale: Scale::Rate,
                        subject: String::new(),
                        reference: String::new(),
                        phrase: String::new(),
                        unit: String::new(),
                        direction: outcome.direction,
                        test: Some(out.test(t.p_value)),
                        omnibus: Some((
                            format!(
                                "across the {} {} groups shown, {}",
                                shown.len(),
                                dim.name,
                                outcome.wording.measure
                            ),
                            format!("chi-square {:.1} with {df} degrees of freedom", t.statistic),
                        )),
                    });
                    out.findings.push(f);
                }
            }
        }
        OutcomeValues::Continuous(values) => {
            continuous_findings(&mut out, prep, outcome, values, "", params);
        }
    }
    Ok(out)
}

/// Dimensions whose buckets one pass over the sorted rows fills: each
/// holds a copy of the outcome's values, so not all of a table's fifteen
/// (2.7M messages: 173 MB for eight).
const BUCKET_DIMS: usize = 8;

/// Sorted values per group of each dimension of `dims`, from rows sorted
/// by value and their values in that order (`rows`: per dimension, the
/// group sizes, to allocate once), with the groups' moments when `moments`
/// is set (empty otherwise): updated as the rows go by, one group's update
/// need not wait for the last, as it would group by group.
///
/// Rows sorted by value are rows in no order: looking up a row's group,
/// dimension by dimension, missed the cache on nearly every row (70% of
/// the continuous outcomes' time, 15% of the audit's, at a million
/// customers). The groups of [`BUCKET_DIMS`] dimensions are first laid
/// side by side per row, in row order, so a row's lookup is one cache line
/// for all of them: in `perf`, the continuous outcomes' samples went from
/// 4,316 to 2,629 (about 3.4 of the job's 33 CPU-seconds).
fn buckets(
    dims: &[Dimension],
    sorted_rows: &[u32],
    sorted_values: &[f64],
    rows: &[Vec<u64>],
    moments: bool,
) -> Vec<(Vec<Vec<f64>>, Vec<Moments>)> {
    let k = dims.len();
    let n = dims.first().map_or(0, |d| d.codes.len());
    // Written row by row, reading the dimensions' codes side by side: a
    // dimension at a time wrote every row's line once per dimension.
    let codes: Vec<&[u32]> = dims.iter().map(|d| &d.codes[..n]).collect();
    let mut side_by_side = Vec::with_capacity(n * k);
    for r in 0..n {
        side_by_side.extend(codes.iter().map(|c| c[r]));
    }
    let mut b: Vec<Vec<Vec<f64>>> = rows
        .iter()
        .map(|sizes| {
            sizes
                .iter()
                .map(|&n| Vec::with_capacity(n as usize))
                .collect()
        })
        .collect();
    let mut running: Vec<Vec<Welford>> = rows
        .iter()
        .map(|sizes| vec![Welford::default(); if moments { sizes.len() } else { 0 }])
        .collect();
    // The rows come in value order, their codes in row order: each row's
    // line is a cache miss (half of the audit's time in `perf`), asked for
    // `AHEAD` rows before it is needed so that several are in flight.
    for (i, (&r, &v)) in sorted_rows.iter().zip(sorted_values).enumerate() {
        if let Some(&next) = sorted_rows.get(i + AHEAD) {
            prefetch(&side_by_side[next as usize * k]);
        }
        let at = r as usize * k;
        for (d, &c) in side_by_side[at..at + k].iter().enumerate() {
            if c != MISSING {
                b[d][c as usize].push(v);
                if moments {
                    running[d][c as usize].push(v);
                }
            }
        }
    }
    b.into_iter()
        .zip(running)
        .map(|(b, running)| (b, running.iter().map(Welford::moments).collect()))
        .collect()
}

/// `v`'s bits as an integer that orders like [`f64::total_cmp`] (the
/// same transformation it makes).
fn total_order_key(v: f64) -> i64 {
    let bits = v.to_bits() as i64;
    bits ^ ((((bits >> 63) as u64) >> 1) as i64)
}

fn stat_value(sorted: &[f64], stat: Stat) -> f64 {
    match stat {
        Stat::Mean => sorted.iter().sum::<f64>() / sorted.len() as f64,
        Stat::Quantile(q) => quantile_sorted(sorted, q),
    }
}

fn replicates(sorted: &[f64], stat: Stat, params: &AuditParams, seed: u64) -> Vec<f64> {
    let mut r = rng(seed);
    match stat {
        Stat::Mean => mean_replicates(sorted, params.resamples, &mut r),
        Stat::Quantile(q) => quantile_replicates(sorted, q, params.resamples, &mut r),
    }
}

/// Rows of a continuous outcome. `stream` names the bootstrap streams apart
/// when two outcomes share a name and a statistic (a classifier's
/// `mean_score` and `calibration_gap` are both the mean of a column of the
/// classifier); empty for an outcome of its own.
fn continuous_findings(
    out: &mut UnitOut,
    prep: &Prepared,
    outcome: &Outcome,
    values: &[f64],
    stream: &str,
    params: &AuditParams,
) {
    let mask: Vec<bool> = values.iter().map(|v| !v.is_nan()).collect();
    let (sizes, hidden) = prep.population(&mask, params);
    // Sorted as (key, row) pairs, not rows compared through `values`: the
    // keys sit in the array, not all over memory. Equal values are
    // identical bits (under total_cmp), so what is computed from the order
    // (each group's values in order, mid-ranks) does not depend on how
    // ties fall.
    let mut keyed: Vec<(i64, u32)> = (0..values.len())
        .filter(|&r| mask[r])
        .map(|r| (total_order_key(values[r]), r as u32))
        .collect();
    keyed.sort_unstable();
    let order: Vec<u32> = keyed.iter().map(|&(_, r)| r).collect();
    drop(keyed);
    let sorted_values: Vec<f64> = order.iter().map(|&r| values[r as usize]).collect();
    let scale = match outcome.comparison {
        Comparison::Ratio => Scale::Location,
        Comparison::Difference => Scale::Gap,
    };
    let words = RateWords {
        verb: String::new(),
        qualifier: "",
        direction: outcome.direction,
        judged: true,
    };
    let clustered = prep.repeated;
    // Mid-ranks of every row among all the outcome's rows, scaled to (0, 1]:
    // the rank-based comparisons' design effects are those of mean ranks.
    let ranks: Vec<f64> = if clustered {
        let mut ranks = vec![f64::NAN; values.len()];
        let n = order.len() as f64;
        let mut i = 0;
        while i < order.len() {
            let v = sorted_values[i];
            let mut j = i;
            while j < order.len() && sorted_values[j] == v {
                j += 1;
            }
            let mid = (i + j + 1) as f64 / 2.0 / n;
            for &r in &order[i..j] {
                ranks[r as usize] = mid;
            }
            i = j;
        }
        ranks
    } else {
        Vec::new()
    };
    // A row's value and rank are the same in every dimension: summed per
    // person once.
    let shared = |r: usize, out: &mut [f64]| {
        out[0] = values[r];
        out[1] = ranks[r];
    };
    let people = prep.people(&mask, 2, shared);
    let mut filled = Vec::new().into_iter();
    for (d, dim) in prep.dims.iter().enumerate() {
        // Welch's test compares moments; Mann-Whitney's ranks.
        if d % BUCKET_DIMS == 0 {
            let chunk = d..(d + BUCKET_DIMS).min(prep.dims.len());
            filled = buckets(
                &prep.dims[chunk.clone()],
                &order,
                &sorted_values,
                &sizes.rows[chunk],
                outcome.comparison == Comparison::Difference,
            )
            .into_iter();
        }
        let (samples, moments) = filled
            .next()
            .expect("each chunk fills the buckets of its dimensions");
        let reference = prep.reference(d, &hidden[d], &sizes.rows[d]);
        // Every design effect of this dimension from the variables [value,
        // rank, 1{value <= q-quantile of its group} per quantile statistic]
        // (Woodruff's linearization for quantiles).
        let quantiles: Vec<(usize, Vec<f64>)> = outcome
            .stats
            .iter()
            .enumerate()
            .filter_map(|(si, stat)| match stat {
                Stat::Quantile(q) => {
                    Some((si, samples.iter().map(|s| quantile_sorted(s, *q)).collect()))
                }
                Stat::Mean => None,
            })
            .collect();
        let sums = prep.clusters_with(
            d,
            people.as_ref(),
            &mask,
            shared,
            quantiles.len(),
            |r, g, out| {
                for (slot, (_, cut)) in out.iter_mut().zip(&quantiles) {
                    *slot = f64::from(u8::from(values[r] <= cut[g]));
                }
            },
        );
        let stat_deffs: Vec<Vec<f64>> = outcome
            .stats
            .iter()
            .enumerate()
            .map(|(si, stat)| {
                let Some(sums) = &sums else {
                    return vec![1.0; dim.groups()];
                };
                let v = match stat {
                    Stat::Mean => 0,
                    Stat::Quantile(_) => {
                        2 + quantiles.iter().position(|(i, _)| *i == si).unwrap_or(0)
                    }
                };
                sums[v]
                    .iter()
                    .map(|c| {
                        if c.rows == 0 {
                            return 1.0;
                        }
                        c.design_effect(c.mean(), c.simple_variance())
                    })
                    .collect()
            })
            .collect();
        let pair_deff = |v: usize, g: usize, r: usize| match &sums {
            Some(sums) => combined_deff(&sums[v][g], &sums[v][r]),
            None => 1.0,
        };
        let seed_of = |g: usize, stat: Stat| {
            let (group, stat) = (dim.group_name(g), stat.name());
            let mut parts = vec![
                prep.table.name.as_str(),
                dim.name.as_str(),
                group.as_str(),
                outcome.name.as_str(),
                stat.as_str(),
            ];
            if !stream.is_empty() {
                parts.push(stream);
            }
            stream_seed(params.seed, &parts)
        };
        // One test per group, shared by its statistics.
        let mut tests: Vec<Option<(usize, f64, &'static str)>> = vec![None; dim.groups()];
        if let Some(r) = reference {
            // Ratios by Mann-Whitney against the reference, prepared once
            // for all groups; differences by Welch's t.
            let ranked = (outcome.comparison == Comparison::Ratio)
                .then(|| MannWhitneyReference::new(&samples[r]));
            for g in (0..dim.groups()).filter(|&g| g != r && !hidden[d][g].hidden()) {
                let t = match &ranked {
                    Some(ranked) => {
                        mann_whitney_u_deff_against(&samples[g], ranked, pair_deff(1, g, r))
                            .map(|t| (t, "mann_whitney_u"))
                    }
                    None => welch_t_deff(moments[g], moments[r], pair_deff(0, g, r))
                        .map(|t| (t, "welch_t")),
                };
                tests[g] = t.map(|(t, name)| (out.test(t.p_value), t.p_value, name));
            }
        }
        for (si, &stat) in outcome.stats.iter().enumerate() {
            let deffs = &stat_deffs[si];
            // Once, not for each group compared with it: a mean of the
            // largest group is the longest sum of the dimension.
            let reference_value = reference.map_or(f64::NAN, |r| stat_value(&samples[r], stat));
            let reference_reps = reference.map(|r| {
                let mut reps = replicates(&samples[r], stat, params, seed_of(r, stat));
                widen(&mut reps, reference_value, deffs[r], &samples[r]);
                reps
            });
            for g in 0..dim.groups() {
                let mut f = group_finding(
                    prep,
                    d,
                    g,
                    reference,
                    &outcome.name,
                    &stat.name(),
                    hidden[d][g],
                    params,
                );
                if f.suppressed {
                    out.findings.push(f);
                    continue;
                }
                let s = &samples[g];
                let value = stat_value(s, stat);
                let reps = if Some(g) == reference {
                    reference_reps.clone().unwrap_or_default()
                } else {
                    let mut reps = replicates(s, stat, params, seed_of(g, stat));
                    widen(&mut reps, value, deffs[g], s);
                    reps
                };
                f.value = Some(value);
                f.n = Some(s.len() as u64);
                if let Some(ci) = percentile_interval(&reps, CONFIDENCE) {
                    f.ci_low = Some(ci.low);
                    f.ci_high = Some(ci.high);
                }
                let subject = words.subject(&prep.words[d][g]);
                let phrase = format!("{} {}", stat.words(), outcome.wording.measure);
                let unit = &outcome.wording.unit;
                match (reference, &reference_reps) {
                    (Some(r), _) if r == g => {
                        f.reference_value = Some(value);
                        f.explanation = sentence(&format!(
                            "reference group: the {phrase} of {subject} is {}{unit} (95% CI {}–{}).",
                            fmt_value(value),
                            fmt_value(f.ci_low.unwrap_or(value)),
                            fmt_value(f.ci_high.unwrap_or(value))
                        ));
                    }
                    (Some(r), Some(rr)) => {
                        let rv = reference_value;
                        f.reference_value = Some(rv);
                        f.difference = Some(value - rv);
                        let diffs: Vec<f64> = reps.iter().zip(rr).map(|(a, b)| a - b).collect();
                        if let Some(ci) = percentile_interval(&diffs, CONFIDENCE) {
                            f.difference_ci_low = Some(ci.low);
                            f.difference_ci_high = Some(ci.high);
                        }
                        if scale == Scale::Location {
                            f.ratio = (rv != 0.0).then(|| value / rv);
                            let ratios: Vec<f64> =
                                reps.iter().zip(rr).map(|(a, b)| a / b).collect();
                            if f.ratio.is_some()
                                && let Some(ci) = percentile_interval(&ratios, CONFIDENCE)
                            {
                                f.ratio_ci_low = Some(ci.low);
                                f.ratio_ci_high = Some(ci.high);
                            }
                        }
                        let test = tests[g].map(|(i, p, name)| {
                            f.test = Some(name.into());
                            f.p_value = Some(p);
                            i
                        });
                        f.pending = Some(Pending {
                            scale,
                            subject,
                            reference: words.subject(&prep.words[d][r]),
                            phrase,
                            unit: unit.clone(),
                            direction: outcome.direction,
                            test,
                            omnibus: None,
                        });
                    }
                    _ => {
                        f.explanation = sentence(&format!(
                            "the {phrase} of {subject} is {}{unit}; there is no reference group large enough to compare with.",
                            fmt_value(value)
                        ));
                    }
                }
                out.findings.push(f);
            }
        }
    }
}

fn classifier_unit(prep: &Prepared, c: &Classifier, params: &AuditParams) -> Result<UnitOut> {
    let mut out = UnitOut::default();
    let known: Vec<bool> = c
        .label
        .iter()
        .zip(&c.prediction)
        .map(|(&l, &p)| l != NO_VALUE && p != NO_VALUE)
        .collect();
    let flagged = format!("are {}", c.flagged);
    // (metric, population filter, what is counted, subject qualifier, verb)
    let who_pos = format!("who {}", c.positive);
    let who_neg = format!("who {}", c.negative);
    let flagged_q = c.flagged.clone();
    type Filter<'f> = Box<dyn Fn(usize) -> bool + 'f>;
    let specs: [(&str, Filter<'_>, &[u8], &str, String); 5] = [
        (
            "selection_rate",
            Box::new(|_| true),
            c.prediction.as_slice(),
            "",
            flagged.clone(),
        ),
        (
            "base_rate",
            Box::new(|_| true),
            c.label.as_slice(),
            "",
            c.positive.clone(),
        ),
        (
            "true_positive_rate",
            Box::new(|r| c.label[r] == 1),
            c.prediction.as_slice(),
            who_pos.as_str(),
            flagged.clone(),
        ),
        (
            "false_positive_rate",
            Box::new(|r| c.label[r] == 0),
            c.prediction.as_slice(),
            who_neg.as_str(),
            flagged.clone(),
        ),
        (
            "precision",
            Box::new(|r| c.prediction[r] == 1),
            c.label.as_slice(),
            flagged_q.as_str(),
            c.positive.clone(),
        ),
    ];
    // The metrics' populations are parts of one another (the labelled ones
    // at 1 and at 0 make up the selection rate's): a group's count hidden
    // in one is the difference of two shown in others. So a group protected
    // in any of them (too small, or hidden so a small one cannot be
    // recovered) is hidden in all of them.
    let masks: Vec<Vec<bool>> = (specs.iter())
        .map(|(_, filter, ..)| (0..known.len()).map(|r| known[r] && filter(r)).collect())
        .collect();
    let populations: Vec<Vec<Vec<Hidden>>> = (masks.iter())
        .map(|mask| prep.population(mask, params).1)
        .collect();
    let protected = |d: usize, g: usize| {
        (populations.iter()).any(|h| matches!(h[d][g], Hidden::Small | Hidden::Complementary))
    };
    // Per metric: [dim] -> per group Some(rate) when shown, for the aggregates.
    let mut shown: BTreeMap<&str, Vec<Vec<Option<f64>>>> = BTreeMap::new();
    for (((metric, _, counted, qualifier, verb), mask), own) in
        specs.iter().zip(&masks).zip(&populations)
    {
        let mut hidden = own.clone();
        for (d, groups) in hidden.iter_mut().enumerate() {
            for (g, h) in groups.iter_mut().enumerate() {
                if !h.hidden() && protected(d, g) {
                    *h = Hidden::Complementary;
                }
            }
        }
        let mask = mask.as_slice();
        let rate = rate_variable(|r| counted[r] == 1);
        let people = prep.people(mask, 1, &rate);
        let words = RateWords {
            verb: verb.clone(),
            qualifier,
            direction: if *metric == "base_rate" {
                Direction::Neutral
            } else {
                c.direction
            },
            judged: *metric != "base_rate",
        };
        let mut per_dim = Vec::new();
        for (d, dim) in prep.dims.iter().enumerate() {
            let (k, n) = binary_counts(dim, mask, counted);
            let deffs = prep.rate_deffs(d, people.as_ref(), mask, &k, &n, &rate);
            rate_findings(
                &mut out, prep, d, &hidden[d], &k, &n, &deffs, &c.name, metric, &words, params,
            );
            per_dim.push(
                (0..dim.groups())
                    .map(|g| {
                        (!hidden[d][g].hidden() && n[g] > 0).then(|| k[g] as f64 / n[g] as f64)
                    })
                    .collect(),
            );
        }
        shown.insert(metric, per_dim);
    }
    if let Some(score) = &c.score {
        let scored: Vec<f64> = score
            .iter()
            .zip(&c.label)
            .map(|(&s, &l)| if l == NO_VALUE { f64::NAN } else { s })
            .collect();
        let mean_score = Outcome::continuous(
            &c.name,
            scored.clone(),
            vec![Stat::Mean],
            Comparison::Ratio,
            Direction::Neutral,
            &format!("predicted probability that they {}", c.positive_plain),
            "",
        );
        let mut o = UnitOut::default();
        continuous_findings(&mut o, prep, &mean_score, &scored, "mean_score", params);
        merge(&mut out, o, "mean_score");
        let gaps: Vec<f64> = scored
            .iter()
            .zip(&c.label)
            .map(|(&s, &l)| s - f64::from(l))
            .collect();
        let gap = Outcome::continuous(
            &c.name,
            gaps.clone(),
            vec![Stat::Mean],
            Comparison::Difference,
            Direction::Neutral,
            "calibration error (predicted probability minus what happened)",
            "",
        );
        let mut o = UnitOut::default();
        continuous_findings(&mut o, prep, &gap, &gaps, "calibration_gap", params);
        merge(&mut out, o, "calibration_gap");
    }
    for (d, dim) in prep.dims.iter().enumerate() {
        let n_shown: u64 = out
            .findings
            .iter()
            .filter(|f| f.dimension == dim.name && f.metric == "selection_rate" && !f.suppressed)
            .filter_map(|f| f.n)
            .sum();
        for a in metrics::aggregates(
            &shown["selection_rate"][d],
            &shown["true_positive_rate"][d],
            &shown["false_positive_rate"][d],
        ) {
            let mut f = Finding::new(&prep.table.name, &dim.name, &c.name, a.metric);
            f.value = Some(a.value);
            f.n = Some(n_shown);
            f.explanation = sentence(&a.explain(&dim.name, &c.flagged));
            out.findings.push(f);
        }
    }
    Ok(out)
}

/// Moves a continuous unit's rows into `out` under another metric name
/// (`mean` of the score becomes `mean_score`).
fn merge(out: &mut UnitOut, other: UnitOut, metric: &str) {
    let offset = out.p_values.len();
    out.p_values.extend(other.p_values);
    for mut f in other.findings {
        f.metric = metric.to_string();
        if let Some(p) = f.pending.as_mut()
            && let Some(t) = p.test.as_mut()
        {
            *t += offset;
        }
        out.findings.push(f);
    }
}

/// Adds the adjusted p-value, the verdict and the sentence of a comparison.
fn finish(f: &mut Finding, adjusted: &[f64], params: &AuditParams) {
    let Some(p) = f.pending.take() else { return };
    f.p_adjusted = p.test.map(|t| adjusted[t]);
    if let Some((what, stat)) = &p.omnibus {
        let significant = f.p_adjusted.is_some_and(|q| q < params.thresholds.alpha);
        let p_words = f
            .p_adjusted
            .map(|q| format!("adjusted p {}", verdict::fmt_p(q)))
            .unwrap_or_default();
        f.explanation = sentence(&format!(
            "{what} {} ({stat}, {p_words}).",
            if significant {
                "differs more than chance would explain"
            } else {
                "does not differ beyond chance"
            }
        ));
        return;
    }
    let (Some(value), Some(reference_value), Some(difference)) =
        (f.value, f.reference_value, f.difference)
    else {
        return;
    };
    let (v, reason) = verdict::decide(
        p.scale,
        value,
        f.ratio,
        difference,
        f.p_adjusted,
        &params.thresholds,
    );
    f.verdict = Some(v);
    f.explanation = verdict::explain(&verdict::Comparison {
        scale: p.scale,
        subject: &p.subject,
        reference: &p.reference,
        phrase: &p.phrase,
        unit: &p.unit,
        direction: p.direction,
        value,
        reference_value,
        ratio: f.ratio,
        ratio_ci: f.ratio_ci_low.zip(f.ratio_ci_high),
        difference,
        difference_ci: f.difference_ci_low.zip(f.difference_ci_high),
        p_adjusted: f.p_adjusted,
        reason,
        thresholds: &params.thresholds,
    });
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;
    use crate::fairness::bootstrap::rng;
    use crate::fairness::cluster::bits;
    use crate::fairness::table::Codes;

    /// The groups of several dimensions filled in one pass are each
    /// dimension's values in sorted order, as one dimension at a time gives
    /// them, with the same moments bit for bit (Welford over the same order).
    #[test]
    fn buckets_of_dimensions_side_by_side_equal_one_dimension_at_a_time() {
        let mut r = rng(5);
        let n = 3000;
        let dims: Vec<Dimension> = (0..BUCKET_DIMS + 3)
            .map(|d| {
                let groups = 2 + d % 5;
                Dimension {
                    name: format!("d{d}"),
                    attributes: vec![format!("d{d}")],
                    values: (0..groups).map(|g| vec![g.to_string()]).collect(),
                    codes: (0..n)
                        .map(|_| {
                            if r.random_bool(0.1) {
                                MISSING
                            } else {
                                r.random_range(0..groups as u32)
                            }
                        })
                        .collect(),
                    parents: None,
                }
            })
            .collect();
        let values: Vec<f64> = (0..n)
            .map(|_| f64::from(r.random_range(0..500u32)) / 7.0)
            .collect();
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by(|&x, &y| values[x as usize].total_cmp(&values[y as usize]));
        let sorted: Vec<f64> = order.iter().map(|&x| values[x as usize]).collect();
        let sizes: Vec<Vec<u64>> = dims
            .iter()
            .map(|d| {
                let mut s = vec![0u64; d.groups()];
                for &c in d.codes.iter().filter(|&&c| c != MISSING) {
                    s[c as usize] += 1;
                }
                s
            })
            .collect();
        for moments in [false, true] {
            let mut together = Vec::new();
            for start in (0..dims.len()).step_by(BUCKET_DIMS) {
                let chunk = start..(start + BUCKET_DIMS).min(dims.len());
                together.extend(buckets(
                    &dims[chunk.clone()],
                    &order,
                    &sorted,
                    &sizes[chunk],
                    moments,
                ));
            }
            assert_eq!(together.len(), dims.len());
            for (d, (samples, m)) in dims.iter().zip(&together) {
                let mut want: Vec<Vec<f64>> = vec![Vec::new(); d.groups()];
                let mut running = vec![Welford::default(); d.groups()];
                for &row in &order {
                    let c = d.codes[row as usize];
                    if c != MISSING {
                        want[c as usize].push(values[row as usize]);
                        running[c as usize].push(values[row as usize]);
                    }
                }
                assert_eq!(samples, &want, "{}", d.name);
                if moments {
                    let want: Vec<Moments> = running.iter().map(Welford::moments).collect();
                    for (got, want) in m.iter().zip(&want) {
                        assert_eq!(got.n, want.n);
                        assert_eq!(got.mean.to_bits(), want.mean.to_bits());
                        assert_eq!(got.variance.to_bits(), want.variance.to_bits());
                    }
                } else {
                    assert!(m.is_empty());
                }
            }
        }
    }

    /// 400 people with 1–5 rows each: attributes `a` (sometimes missing)
    /// and `b` of the person, `c` of the row; an outcome with ties and
    /// missing values.
    fn clustered_table(seed: u64) -> DecisionTable {
        let mut r = rng(seed);
        let (mut subjects, mut a, mut b, mut c, mut y) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for person in 0..400u32 {
            let of_a = [None, Some("x"), Some("y"), Some("z")][r.random_range(0..4)];
            let of_b = [Some("u"), Some("v"), Some("w")][r.random_range(0..3)];
            for _ in 0..r.random_range(1..=5) {
                c.push([Some("p"), Some("q")][subjects.len() % 2]);
                subjects.push(person);
                a.push(of_a);
                b.push(of_b);
                y.push(if r.random_bool(0.1) {
                    f64::NAN
                } else {
                    f64::from(r.random_range(0..30u8)) / 3.0
                });
            }
        }
        DecisionTable {
            name: "t".into(),
            rows: subjects.len(),
            subjects: Some(subjects),
            groups: vec![
                ("a".into(), Codes::encode(&a)),
                ("b".into(), Codes::encode(&b)),
                ("c".into(), Codes::encode(&c)),
            ],
            outcomes: vec![Outcome::continuous(
                "y",
                y,
                vec![Stat::Quantile(0.5), Stat::Quantile(0.9)],
                Comparison::Ratio,
                Direction::Neutral,
                "y",
                "",
            )],
            classifier: None,
        }
    }

    /// Differential test: cluster sums split from the people's totals
    /// equal a pass over the rows of each dimension (the reference, as the
    /// audit summed them before), bit for bit, for the dimensions of the
    /// people and for those of their rows.
    #[test]
    fn clusters_split_from_people_equal_a_pass_over_the_rows() {
        let params = AuditParams::default();
        for seed in 0..5 {
            let table = clustered_table(seed);
            let prep = Prepared::new(&table, &params, &mut Vec::new()).expect("prepared");
            assert!(prep.repeated);
            let OutcomeValues::Continuous(y) = &prep.table.outcomes[0].values else {
                panic!("a continuous outcome");
            };
            let mask: Vec<bool> = y.iter().map(|v| !v.is_nan()).collect();
            let shared = |r: usize, out: &mut [f64]| {
                out[0] = y[r];
                out[1] = y[r] * y[r] - 3.0;
            };
            let below = |r: usize, g: usize| f64::from(u8::from(y[r] <= g as f64 * 1.5));
            let people = prep.people(&mask, 2, shared);
            let subjects = prep.table.subjects.as_ref().expect("subjects");
            let mut of_people = Vec::new();
            for (d, dim) in prep.dims.iter().enumerate() {
                let split = prep
                    .clusters_with(d, people.as_ref(), &mask, shared, 1, |r, g, out| {
                        out[0] = below(r, g)
                    })
                    .expect("people with several rows");
                let rows =
                    cluster_sums_multi(subjects, &dim.codes, dim.groups(), &mask, 3, |r, out| {
                        shared(r, &mut out[..2]);
                        out[2] = below(r, dim.codes[r] as usize);
                    });
                assert_eq!(bits(&split), bits(&rows), "seed {seed}, {}", dim.name);
                let index = prep.subjects.as_ref().expect("subjects");
                if index.group_of_subjects(d).is_some() {
                    of_people.push(dim.name.as_str());
                }
            }
            assert_eq!(of_people, ["a", "b", "a & b"], "both paths are compared");
        }
    }

    /// A categorical outcome with more labels than the people's totals are
    /// kept for (16 bytes per person and label) adds up its rows for each
    /// dimension instead, with the same sums.
    #[test]
    fn many_categories_sum_the_rows_per_dimension() {
        let params = AuditParams::default();
        let table = clustered_table(3);
        let prep = Prepared::new(&table, &params, &mut Vec::new()).expect("prepared");
        let mask = vec![true; table.rows];
        let k = crate::fairness::cluster::MAX_SHARED_VARIABLES + 1;
        let one_hot = |r: usize, out: &mut [f64]| {
            out.fill(0.0);
            out[r % k] = 1.0;
        };
        let people = prep.people(&mask, k, one_hot).expect("repeated people");
        assert!(!people.shares_totals());
        let subjects = prep.table.subjects.as_ref().expect("subjects");
        for (d, dim) in prep.dims.iter().enumerate() {
            let got = prep
                .clusters(d, Some(&people), &mask, one_hot)
                .expect("people with several rows");
            let want = cluster_sums_multi(subjects, &dim.codes, dim.groups(), &mask, k, one_hot);
            assert_eq!(bits(&got), bits(&want), "{}", dim.name);
        }
    }

    #[test]
    fn total_order_keys_order_like_total_cmp() {
        let values = [
            f64::NEG_INFINITY,
            -3.5,
            -1e-310,
            -0.0,
            0.0,
            1e-310,
            f64::MIN_POSITIVE,
            2.0,
            f64::INFINITY,
            f64::NAN,
            -f64::NAN,
        ];
        for a in values {
            for b in values {
                assert_eq!(
                    total_order_key(a).cmp(&total_order_key(b)),
                    a.total_cmp(&b),
                    "{a} against {b}"
                );
            }
        }
    }

    /// The costliest units run first; their outputs still come back in
    /// unit order, whatever the threads.
    #[test]
    fn units_come_back_in_order_whatever_their_cost() {
        let units: Vec<Unit> = (0..9).map(|i| Unit::Outcome(i, 0)).collect();
        let costs = [3, 9, 1, 9, 0, 7, 2, 8, 5];
        for threads in [1, 2, 4] {
            let outs = run_units(&units, &costs, threads, |u| {
                let Unit::Outcome(i, _) = *u else {
                    panic!("outcomes only");
                };
                Ok(UnitOut {
                    findings: Vec::new(),
                    p_values: vec![i as f64],
                })
            })
            .expect("no unit fails");
            let order: Vec<f64> = outs.iter().flat_map(|o| o.p_values.clone()).collect();
            assert_eq!(order, (0..9).map(f64::from).collect::<Vec<_>>());
        }
    }

    #[test]
    fn the_omnibus_design_effect_leaves_out_cells_without_variance() {
        // (deff, count, total): an empty cell and a full one have deff 1 by
        // definition and would pull the mean of 3.0 and 2.0 down to 1.75.
        let cells = [(3.0, 5, 10), (1.0, 0, 10), (2.0, 4, 12), (1.0, 12, 12)];
        assert_eq!(mean_cell_deff(&cells), 2.5);
        assert_eq!(mean_cell_deff(&[(1.0, 0, 10)]), 1.0);
        assert_eq!(mean_cell_deff(&[]), 1.0);
    }

    /// A clustered median of values that cannot be negative: stretched by
    /// √deff around the estimate, a replicate below it went below zero.
    #[test]
    fn widened_replicates_stay_within_the_sample() {
        let sorted = [0.0, 0.0, 0.5, 1.0, 3.0];
        let mut reps = vec![0.0, 0.5, 1.0, 3.0];
        widen(&mut reps, 0.5, 4.0, &sorted);
        assert_eq!(reps, vec![0.0, 0.5, 1.5, 3.0]);
        let mut unclustered = vec![0.0, 3.0];
        widen(&mut unclustered, 0.5, 1.0, &sorted);
        assert_eq!(unclustered, vec![0.0, 3.0]);
    }
}
