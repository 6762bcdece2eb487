//! Tests of the aggregation: estimates against numpy, the index's
//! delta-method interval against a bootstrap, suppression and weights.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;

use super::*;
use crate::config::ValidConfig;
use crate::empathy::components::{Detail, Source};

/// Reference: numpy, `x = [0, 50, 100, 100, 75]`: `x.mean()` = 65,
/// `x.std(ddof=1) / sqrt(5)` = 18.708286933869708.
#[test]
fn mean_and_standard_error_match_numpy() {
    let (m, se, n) = mean_se(&one_each(&[0.0, 50.0, 100.0, 100.0, 75.0]));
    assert_eq!((m, n), (65.0, 5));
    assert!((se.expect("n >= 2") - 18.708286933869708).abs() < 1e-12);
    assert_eq!(mean_se(&one_each(&[42.0])).1, None);
}

/// Each value from a customer of its own.
fn one_each(values: &[f64]) -> Vec<(Option<u32>, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, &x)| (Some(i as u32), x))
        .collect()
}

/// Scores of the tone component alone.
fn tone_only(values: &[(Option<u32>, f64)]) -> Vec<Scores> {
    values
        .iter()
        .map(|&(c, x)| {
            let mut s = [None; 6];
            s[Component::Tone.idx()] = Some(x);
            (c, s)
        })
        .collect()
}

/// A weight of 1 on tone alone: the estimate is tone's mean.
fn tone_weight() -> [Option<f64>; 6] {
    let mut w = [None; 6];
    w[Component::Tone.idx()] = Some(1.0);
    w
}

/// The mean of one component's scores with its clustered standard error.
fn mean_se(values: &[(Option<u32>, f64)]) -> (f64, Option<f64>, usize) {
    index_estimate(&tone_only(values), &tone_weight()).expect("some scores")
}

/// One customer's many contacts are one voice. Reference: statsmodels
/// 0.15, `sm.OLS(y, np.ones_like(y)).fit(cov_type="cluster",
/// cov_kwds={"groups": g})`: for 91 tickets of customer 0 scored 0 and one
/// ticket of each of customers 1–9 scored 100, mean 9 and bse
/// 9.100000000000003 (unclustered s/√n would say 2.9); for y = [10, 20, 90,
/// 40, 55, 70, 100, 0] with g = [1, 1, 2, 3, 3, 3, 4, 5] (the last one
/// anonymous here: a customer of its own), mean 48.125 and bse
/// 15.035764654649256.
#[test]
fn standard_errors_are_clustered_by_customer_as_statsmodels() {
    let mut values: Vec<(Option<u32>, f64)> = vec![(Some(0), 0.0); 91];
    values.extend((1..10).map(|c| (Some(c), 100.0)));
    let (m, se, n) = mean_se(&values);
    assert!((m - 9.0).abs() < 1e-12);
    assert_eq!(n, 100);
    assert!((se.expect("se") - 9.100000000000003).abs() < 1e-9);

    let y = [10.0, 20.0, 90.0, 40.0, 55.0, 70.0, 100.0, 0.0];
    let g = [
        Some(1),
        Some(1),
        Some(2),
        Some(3),
        Some(3),
        Some(3),
        Some(4),
        None,
    ];
    let values: Vec<(Option<u32>, f64)> = g.iter().copied().zip(y).collect();
    let (m, se, used) = mean_se(&values);
    assert!((m - 48.125).abs() < 1e-12);
    assert!((se.expect("se") - 15.035764654649256).abs() < 1e-9);
    assert_eq!(used, 8);
}

/// Agresti and Coull (1998), "Approximate is better than 'exact' for
/// interval estimation of binomial proportions": add z²/2 successes and z²/2
/// failures, p̃ = (x + z²/2)/(n + z²), p̃ ± z·√(p̃(1 − p̃)/ñ). For 12 of 12
/// that is 0.71801 to 1 (statsmodels' `proportion_confint(12, 12,
/// method="agresti_coull")`; Wilson's lower bound is 12/(12 + z²) = 0.75751). Twelve
/// customers who all scored 100 are such a proportion, and the plain mean ±
/// z·se was [100, 100]. The interval here is Agresti–Coull's with every
/// standard error's sample variance (÷ ñ − 1 instead of ñ), and with one
/// contact per customer it is exactly that: checked by the closed form, and
/// through a cell of the mart.
#[test]
fn a_cell_where_everyone_scored_100_has_an_interval_below_100() {
    let z2 = Z95 * Z95;
    let agresti_coull = |x: f64, n: f64, sample_variance: bool| {
        let nt = n + z2;
        let p = (x + z2 / 2.0) / nt;
        let var = p * (1.0 - p) / if sample_variance { nt - 1.0 } else { nt };
        (100.0 * (p - Z95 * var.sqrt())).max(0.0)
    };
    assert!((agresti_coull(12.0, 12.0, false) - 71.801).abs() < 1e-3);
    let all_100 = tone_only(&one_each(&[100.0; 12]));
    let ((lo, hi), _) = bounded_interval(&all_100, &tone_weight()).expect("interval");
    assert!((lo - agresti_coull(12.0, 12.0, true)).abs() < 1e-9, "{lo}");
    assert!(lo < 75.751 && hi == 100.0, "({lo}, {hi})");
    // 9 of 12 at 100: the same closed form, away from the bound
    let mixed = one_each(&[[100.0; 9].as_slice(), &[0.0; 3]].concat());
    let ((lo, hi), _) = bounded_interval(&tone_only(&mixed), &tone_weight()).expect("interval");
    let nt = 12.0 + z2;
    let p = (9.0 + z2 / 2.0) / nt;
    let half = 100.0 * Z95 * (p * (1.0 - p) / (nt - 1.0)).sqrt();
    assert!((lo - (100.0 * p - half)).abs() < 1e-9 && (hi - (100.0 * p + half)).abs() < 1e-9);

    let m = Month(2025 * 12 + 2);
    let contacts: Vec<Contact> = (0..12)
        .map(|i| contact(i, m, "chat", ticket_scores(100.0, 100.0)))
        .collect();
    let cells = month_cells(&contacts, m, &Default::default());
    let all = cells
        .iter()
        .find(|c| c.period == Period::Month(m) && c.dimension == Dimension::Overall)
        .expect("overall");
    for row in [all.index(), all.component(Component::Responsiveness)] {
        let (lo, hi) = row.ci.expect("shown");
        assert_eq!(row.value, Some(100.0));
        assert!(lo < 75.751 && hi == 100.0, "{row:?}");
    }
}

/// Parameter recovery: 10 customers, each contact scoring 100 with
/// probability 0.95 (else 0), 4,000 seeded cells each with one contact a
/// customer and with one to four. A 95% interval must hold 95 in at least
/// 90% of the cells; mean ± z·se held it in about 40% (every cell of ten
/// 100s gave [100, 100]).
#[test]
fn intervals_cover_a_share_near_the_bound_at_ten_customers() {
    let mut rng = Xoshiro256Plus::seed_from_u64(95);
    for most in [1, 4] {
        let cells = 4_000;
        let mut covered = 0;
        for _ in 0..cells {
            let mut scores = Vec::new();
            for c in 0..10 {
                for _ in 0..rng.random_range(1..=most) {
                    let x = if rng.random_bool(0.95) { 100.0 } else { 0.0 };
                    scores.push((Some(c), x));
                }
            }
            let ((lo, hi), _) =
                bounded_interval(&tone_only(&scores), &tone_weight()).expect("interval");
            covered += usize::from(lo <= 95.0 && 95.0 <= hi);
        }
        let coverage = covered as f64 / cells as f64;
        assert!(
            coverage >= 0.90,
            "coverage {coverage:.3} with up to {most} contacts each"
        );
    }
}

/// When every contact has every included component, the linearized variance
/// is exactly the variance of the per-contact weighted sums. Reference:
/// numpy, `s = 0.4*resp + 0.6*tone` with the values below: `s.mean()` =
/// 61.166666666666664, `s.std(ddof=1)/sqrt(6)` = 13.397553673878098.
#[test]
fn index_standard_error_matches_numpy_when_contacts_have_all_components() {
    let resp = [100.0, 50.0, 100.0, 0.0, 100.0, 50.0];
    let tone = [80.0, 20.0, 65.0, 30.0, 100.0, 50.0];
    let scores: Vec<(Option<u32>, [Option<f64>; 6])> = resp
        .iter()
        .zip(tone)
        .enumerate()
        .map(|(i, (r, t))| {
            let mut s = [None; 6];
            s[Component::Responsiveness.idx()] = Some(*r);
            s[Component::Tone.idx()] = Some(t);
            (Some(i as u32), s)
        })
        .collect();
    let mut w = [None; 6];
    w[Component::Responsiveness.idx()] = Some(0.4);
    w[Component::Tone.idx()] = Some(0.6);
    let (v, se, used) = index_estimate(&scores, &w).expect("estimate");
    assert!((v - 61.166666666666664).abs() < 1e-9);
    assert!((se.expect("se") - 13.397553673878098).abs() < 1e-9);
    assert_eq!(used, 6);
}

/// Differential test: on contacts with overlapping, partly missing
/// components (as tickets and surveys are), the delta-method standard error
/// agrees with a bootstrap over contacts (2,000 resamples, fixed seed) within
/// 8%.
#[test]
fn index_standard_error_agrees_with_a_bootstrap() {
    let mut rng = Xoshiro256Plus::seed_from_u64(7);
    let mut scores = Vec::new();
    for i in 0..400u32 {
        let mut s = [None; 6];
        if rng.random_bool(0.7) {
            // a ticket: responsiveness, tone, sometimes closing the loop
            s[0] = Some(if rng.random_bool(0.85) { 100.0 } else { 0.0 });
            s[3] = Some(rng.random_range(0.0..100.0_f64).round());
            if rng.random_bool(0.2) {
                s[1] = Some(if rng.random_bool(0.4) { 100.0 } else { 0.0 });
            }
        } else {
            // a survey
            s[5] = Some(rng.random_range(20.0..100.0_f64));
        }
        scores.push((Some(i), s));
    }
    let w = [Some(0.25), Some(0.2), None, Some(0.3), None, Some(0.25)];
    let (_, se, _) = index_estimate(&scores, &w).expect("estimate");
    let se = se.expect("se");
    let b = 2000;
    let mut draws = Vec::with_capacity(b);
    for _ in 0..b {
        let sample: Vec<(Option<u32>, [Option<f64>; 6])> = (0..scores.len())
            .map(|_| scores[rng.random_range(0..scores.len())])
            .collect();
        draws.push(index_estimate(&sample, &w).expect("estimate").0);
    }
    let mean = draws.iter().sum::<f64>() / b as f64;
    let boot_se =
        (draws.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (b as f64 - 1.0)).sqrt();
    assert!(
        (se / boot_se - 1.0).abs() < 0.08,
        "delta {se:.4} vs bootstrap {boot_se:.4}"
    );
}

fn contact(customer: u32, month: Month, touchpoint: &str, scores: [Option<f64>; 6]) -> Contact {
    Contact {
        source: Source::Ticket,
        contact_id: format!("T{customer}-{}", month.0),
        customer: Some(customer),
        at: 0.0,
        month,
        touchpoint: Some(touchpoint.into()),
        handled_by: None,
        scores,
        charged: None,
        detail: Detail::default(),
    }
}

/// The cells of `contacts` as of `run_month`, with the default weights, no
/// attribute groups and a `min_group_size` of 10.
fn month_cells(
    contacts: &[Contact],
    run_month: Month,
    unavailable: &[Option<String>; 6],
) -> Vec<Cell> {
    let cfg = ValidConfig::default().empathy;
    let settings = Settings {
        cfg: &cfg,
        min_group_size: 10,
        unavailable,
        run_month,
    };
    aggregate(contacts, &Groups::default(), &settings)
}

fn ticket_scores(resp: f64, tone: f64) -> [Option<f64>; 6] {
    let mut s = [None; 6];
    s[Component::Responsiveness.idx()] = Some(resp);
    s[Component::Tone.idx()] = Some(tone);
    s
}

#[test]
fn small_groups_are_suppressed_and_weights_renormalized() {
    let m = Month(2025 * 12 + 2);
    let mut contacts = Vec::new();
    // 12 customers on chat, 9 on email (below the 10 of min_group_size).
    for i in 0..12 {
        contacts.push(contact(i, m, "chat", ticket_scores(100.0, 80.0)));
    }
    for i in 100..109 {
        contacts.push(contact(i, m, "email", ticket_scores(0.0, 20.0)));
    }
    // 11 on the phone: shown on its own, but the smallest group shown, so it
    // is hidden with email (else email = all − chat − phone).
    for i in 200..211 {
        contacts.push(contact(i, m, "phone", ticket_scores(100.0, 80.0)));
    }
    // Surveys from 4 chat customers: perceived empathy exists but is below 10 customers.
    for i in 0..4 {
        let mut s = [None; 6];
        s[Component::PerceivedEmpathy.idx()] = Some(50.0);
        contacts.push(contact(i, m, "chat", s));
    }
    let mut unavailable: [Option<String>; 6] = Default::default();
    unavailable[Component::HumanWhenItMatters.idx()] = Some("no emotions".into());
    let cells = month_cells(&contacts, m, &unavailable);
    let find = |p: Period, d: Dimension, g: &str| {
        cells
            .iter()
            .find(|c| c.period == p && c.dimension == d && c.group == g)
            .unwrap_or_else(|| panic!("cell {p:?} {d:?} {g}"))
    };
    let email = find(Period::Month(m), Dimension::Touchpoint, "email");
    assert!(
        email
            .rows
            .iter()
            .all(|r| r.suppressed && r.value.is_none() && r.n.is_none())
    );

    let phone = find(Period::Month(m), Dimension::Touchpoint, "phone");
    assert!(phone.rows.iter().all(|r| r.suppressed && r.value.is_none()));
    assert!(
        phone
            .index()
            .note
            .as_deref()
            .is_some_and(|n| n.contains("worked out from the totals")),
        "{:?}",
        phone.index().note
    );

    let chat = find(Period::Month(m), Dimension::Touchpoint, "chat");
    let pe = chat.component(Component::PerceivedEmpathy);
    assert!(pe.suppressed && pe.value.is_none() && pe.weight.is_none());
    let human = chat.component(Component::HumanWhenItMatters);
    assert!(!human.suppressed && human.value.is_none());
    assert_eq!(human.note.as_deref(), Some("not available: no emotions"));
    // responsiveness 0.20 and tone 0.20 are the only included: 0.5 each.
    assert_eq!(chat.component(Component::Responsiveness).weight, Some(0.5));
    assert_eq!(chat.component(Component::Tone).weight, Some(0.5));
    assert_eq!(chat.index().value, Some(90.0));
    // No variation among twelve customers is not certainty: the interval
    // is wide, and holds the value.
    let (lo, hi) = chat.index().ci.expect("interval");
    assert!(lo < 80.0 && 90.0 < hi && hi < 100.0, "({lo}, {hi})");

    // Overall: 32 customers; perceived empathy has only 4 customers -> suppressed there too.
    let all = find(Period::Month(m), Dimension::Overall, "all");
    assert_eq!(all.index().customers, Some(32));
    let resp = all.component(Component::Responsiveness);
    assert_eq!(resp.n, Some(32));
    let expected = (23.0 * 100.0) / 32.0;
    assert!((resp.value.expect("value") - expected).abs() < 1e-9);
    // The month is also in the last 12 months.
    let l12 = find(Period::Last12Months, Dimension::Overall, "all");
    assert_eq!(l12.index().value, all.index().value);
}

/// Invariant: in every shown cell, the index equals Σ weight × value over the
/// components with a weight, and the weights sum to 1.
#[test]
fn the_index_is_recomputable_from_the_rows() {
    let mut rng = Xoshiro256Plus::seed_from_u64(11);
    let mut contacts = Vec::new();
    for j in 0..600u32 {
        let m = Month(2025 * 12 + rng.random_range(0..4));
        let tp = ["email", "chat", "phone", "in_store"][rng.random_range(0..4)];
        let mut s = [None; 6];
        for v in s.iter_mut() {
            if rng.random_bool(0.5) {
                *v = Some(rng.random_range(0.0..=100.0_f64).round());
            }
        }
        contacts.push(contact(j % 150, m, tp, s));
    }
    let unavailable: [Option<String>; 6] = Default::default();
    let cells = month_cells(&contacts, Month(2025 * 12 + 3), &unavailable);
    assert!(cells.len() > 10);
    for cell in &cells {
        let Some(v) = cell.index().value else {
            continue;
        };
        let parts: Vec<(f64, f64)> = cell.rows[1..]
            .iter()
            .filter_map(|r| r.weight.zip(r.value))
            .collect();
        let wsum: f64 = parts.iter().map(|(w, _)| w).sum();
        let recomputed: f64 = parts.iter().map(|(w, x)| w * x).sum();
        assert!((wsum - 1.0).abs() < 1e-9, "{cell:?}");
        assert!((recomputed - v).abs() < 1e-9);
        // the pseudo-customers move the centre, never past the value
        for row in &cell.rows {
            if let (Some(v), Some((lo, hi))) = (row.value, row.ci) {
                assert!(lo <= v && v <= hi, "{row:?}");
            }
        }
        assert!(cell.index().ci.is_some());
    }
    let batch = to_batch(&cells).expect("batch");
    assert_eq!(batch.num_rows(), cells.len() * 7);
    crate::mart::doc("empathy_index")
        .expect("documented")
        .check(&batch.schema())
        .expect("the batch matches schemas/marts/empathy_index.toml");
}

/// The dense cell table against the plain definition: every contact up to
/// the run month in the cell of each of its groups, for its month and, within
/// the last twelve months, for `last_12_months`; cells sorted by key.
#[test]
fn cells_hold_the_contacts_of_each_group_and_period() {
    let cfg = ValidConfig::default().empathy;
    let run = Month(2026 * 12 + 3);
    let mut rng = Xoshiro256Plus::seed_from_u64(11);
    let pick = |rng: &mut Xoshiro256Plus, names: &[&'static str]| {
        let i = rng.random_range(0..=names.len());
        names.get(i).copied()
    };
    let mut groups = Groups {
        segment: Some(Labels::default()),
        attributes: Some(Default::default()),
    };
    for k in 0..300u32 {
        let seg = pick(&mut rng, &["loyal", "new", "at risk"]);
        groups.segment.as_mut().expect("set").set(k, seg);
        let attrs = groups.attributes.as_mut().expect("set");
        attrs[0].set(k, pick(&mut rng, &["18-34", "35-64", "65+"]));
        attrs[1].set(k, pick(&mut rng, &["f", "m"]));
        attrs[2].set(k, pick(&mut rng, &["en", "es", "de"]));
        attrs[3].set(k, pick(&mut rng, &["north", "south"]));
    }
    // the last call wins, a None included
    groups.segment.as_mut().expect("set").set(7, Some("new"));
    groups.segment.as_mut().expect("set").set(8, None);
    let mut contacts = Vec::new();
    for _ in 0..3_000 {
        let month = Month(run.0 - rng.random_range(-2..20));
        let tp = pick(&mut rng, &["email", "chat", "phone"]).unwrap_or("email");
        let mut c = contact(
            rng.random_range(0..320),
            month,
            tp,
            ticket_scores(50.0, 50.0),
        );
        if rng.random_range(0..10) == 0 {
            c.customer = None;
        }
        if rng.random_range(0..10) == 0 {
            c.touchpoint = None;
        }
        contacts.push(c);
    }
    let unavailable: [Option<String>; 6] = Default::default();
    let settings = Settings {
        cfg: &cfg,
        min_group_size: 5,
        unavailable: &unavailable,
        run_month: run,
    };
    let cells = aggregate(&contacts, &groups, &settings);

    let mut want: std::collections::BTreeMap<(Period, Dimension, String), Vec<usize>> =
        Default::default();
    for (j, c) in contacts.iter().enumerate() {
        if c.month > run {
            continue;
        }
        for d in Dimension::ALL {
            let g = match d {
                Dimension::Overall => Some("all".to_string()),
                Dimension::Touchpoint => c.touchpoint.as_deref().map(str::to_string),
                Dimension::Segment => c.customer.and_then(|k| {
                    groups
                        .segment
                        .as_ref()
                        .and_then(|s| s.get(k))
                        .map(String::from)
                }),
                _ => {
                    let i = Dimension::SENSITIVE
                        .iter()
                        .position(|x| *x == d)
                        .expect("sensitive");
                    let attrs = groups.attributes.as_ref().expect("set");
                    c.customer.and_then(|k| attrs[i].get(k)).map(String::from)
                }
            };
            // no group is a group of its own
            let g = g.unwrap_or_else(|| UNKNOWN.to_string());
            want.entry((Period::Month(c.month), d, g.clone()))
                .or_default()
                .push(j);
            if c.month.0 > run.0 - 12 {
                want.entry((Period::Last12Months, d, g))
                    .or_default()
                    .push(j);
            }
        }
    }
    let got: Vec<((Period, Dimension, String), Vec<usize>)> = cells
        .iter()
        .map(|c| {
            let contacts = c.contacts.iter().map(|&j| j as usize).collect();
            ((c.period, c.dimension, c.group.clone()), contacts)
        })
        .collect();
    assert_eq!(got, want.into_iter().collect::<Vec<_>>());
    assert_eq!(groups.segment.as_ref().and_then(|s| s.get(7)), Some("new"));
    assert_eq!(groups.segment.as_ref().and_then(|s| s.get(8)), None);
    assert_eq!(groups.segment.as_ref().and_then(|s| s.get(10_000)), None);
}

/// A component hidden in one group is hidden in the smallest other group
/// that shows it, whose index is then computed without it: else chat's
/// perceived empathy = overall − email.
#[test]
fn a_component_hidden_in_one_group_is_hidden_in_another() {
    let m = Month(2025 * 12 + 2);
    let mut contacts = Vec::new();
    for i in 0..12 {
        contacts.push(contact(i, m, "chat", ticket_scores(100.0, 80.0)));
    }
    for i in 100..115 {
        contacts.push(contact(i, m, "email", ticket_scores(50.0, 60.0)));
    }
    let survey = |i: u32, tp: &str| {
        let mut s = [None; 6];
        s[Component::PerceivedEmpathy.idx()] = Some(70.0);
        contact(i, m, tp, s)
    };
    contacts.extend((0..4).map(|i| survey(i, "chat")));
    contacts.extend((100..112).map(|i| survey(i, "email")));
    let unavailable: [Option<String>; 6] = Default::default();
    let cells = month_cells(&contacts, m, &unavailable);
    let find = |d: Dimension, g: &str| {
        cells
            .iter()
            .find(|c| c.period == Period::Month(m) && c.dimension == d && c.group == g)
            .expect("cell")
    };
    let pe = |c: &Cell| c.component(Component::PerceivedEmpathy).clone();
    assert!(pe(find(Dimension::Touchpoint, "chat")).suppressed);
    let email = find(Dimension::Touchpoint, "email");
    assert!(pe(email).suppressed, "hidden to protect chat's");
    assert_eq!(pe(email).weight, None);
    // email's index: responsiveness 50 and tone 60 at 0.2 each -> 55
    assert!((email.index().value.expect("shown") - 55.0).abs() < 1e-9);
    // the whole business still shows it (16 customers)
    assert_eq!(pe(find(Dimension::Overall, "all")).n, Some(16));
}

/// Every family of cells that add up to a published total (a dimension's
/// groups in a period and the period's overall cell; a group's months of the
/// last twelve and its twelve-month cell), as (name, total, members).
fn families(cells: &[Cell], run: Month) -> Vec<(String, &Cell, Vec<&Cell>)> {
    let find = |p: Period, d: Dimension, g: &str| {
        cells
            .iter()
            .find(|c| c.period == p && c.dimension == d && c.group == g)
            .expect("a total has a cell")
    };
    let mut out: BTreeMap<String, (&Cell, Vec<&Cell>)> = BTreeMap::new();
    for c in cells {
        if c.dimension != Dimension::Overall {
            out.entry(format!("groups {:?} {:?}", c.dimension, c.period))
                .or_insert_with(|| (find(c.period, Dimension::Overall, "all"), Vec::new()))
                .1
                .push(c);
        }
        if let Period::Month(m) = c.period
            && m.0 > run.0 - 12
        {
            out.entry(format!("months {:?} {}", c.dimension, c.group))
                .or_insert_with(|| {
                    (
                        find(Period::Last12Months, c.dimension, &c.group),
                        Vec::new(),
                    )
                })
                .1
                .push(c);
        }
    }
    out.into_iter().map(|(k, (t, m))| (k, t, m)).collect()
}

/// What secondary suppression must hold against someone who subtracts:
/// starting from the rows published, a row is worked out when its family's
/// total is known and it is the one member unknown, or when it is a total
/// whose members are all known, across every family, for the whole cells
/// and each component, until nothing more can be. Then no row known or
/// worked out is of fewer than `min` customers, and in every family with a
/// known total, the total minus the members known describes no customer or
/// at least `min` distinct ones (not a sum of sizes: customers are in
/// several months and touchpoints). Also: the members add up to the total,
/// no contact is in none of them.
fn assert_nothing_small_by_subtraction(
    cells: &[Cell],
    contacts: &[Contact],
    run: Month,
    min: u64,
    context: &str,
) {
    let index_of = |c: &Cell| {
        cells
            .iter()
            .position(|x| std::ptr::eq(x, c))
            .expect("a cell of the list")
    };
    let families: Vec<(String, usize, Vec<usize>)> = families(cells, run)
        .into_iter()
        .map(|(name, t, m)| (name, index_of(t), m.into_iter().map(index_of).collect()))
        .collect();
    for k in std::iter::once(None).chain(Component::ALL.map(Some)) {
        let with_k = |i: usize| -> Vec<usize> {
            cells[i]
                .contacts
                .iter()
                .map(|&j| j as usize)
                .filter(|&j| k.is_none_or(|k| contacts[j].scores[k.idx()].is_some()))
                .collect()
        };
        let customers = |i: usize| distinct_customers(with_k(i).iter().map(|&j| &contacts[j]));
        let row = |i: usize| match k {
            None => cells[i].index(),
            Some(k) => cells[i].component(k),
        };
        let mut known: Vec<bool> = (0..cells.len())
            .map(|i| !row(i).suppressed && !with_k(i).is_empty())
            .collect();
        loop {
            let mut more = false;
            for (_, total, members) in &families {
                let members: Vec<usize> = members
                    .iter()
                    .copied()
                    .filter(|&i| !with_k(i).is_empty())
                    .collect();
                let unknown: Vec<usize> = members.iter().copied().filter(|&i| !known[i]).collect();
                if known[*total] && unknown.len() == 1 {
                    known[unknown[0]] = true;
                    more = true;
                } else if !known[*total] && unknown.is_empty() && !members.is_empty() {
                    known[*total] = true;
                    more = true;
                }
            }
            if !more {
                break;
            }
        }
        for (i, _) in known.iter().enumerate().filter(|(_, k)| **k) {
            let c = &cells[i];
            assert!(
                customers(i) >= min,
                "{context}, {k:?}: {:?} {:?} {} of {} customers is known",
                c.period,
                c.dimension,
                c.group,
                customers(i)
            );
        }
        for (name, total, members) in &families {
            let mut in_total = with_k(*total);
            if known[*total] {
                let subtracted: std::collections::BTreeSet<usize> = members
                    .iter()
                    .filter(|&&i| known[i])
                    .flat_map(|&i| with_k(i))
                    .collect();
                let rest = distinct_customers(
                    in_total
                        .iter()
                        .filter(|j| !subtracted.contains(j))
                        .map(|&j| &contacts[j]),
                );
                assert!(
                    rest == 0 || rest >= min,
                    "{context}, {name}, {k:?}: the total minus the members known is {rest} customers"
                );
            }
            let mut in_members: Vec<usize> = members.iter().flat_map(|&i| with_k(i)).collect();
            in_members.sort_unstable();
            in_total.sort_unstable();
            assert_eq!(
                in_members, in_total,
                "{context}, {name}, {k:?}: not a partition"
            );
        }
    }
}

/// Labels of one attribute (age band) for customers `0..labels.len()`,
/// the other three attributes unknown for everyone.
fn age_bands(labels: &[Option<&str>]) -> Groups {
    let mut attrs: [Labels; 4] = Default::default();
    for (k, l) in labels.iter().enumerate() {
        attrs[0].set(k as u32, *l);
    }
    Groups {
        segment: None,
        attributes: Some(attrs),
    }
}

fn cells_of(contacts: &[Contact], groups: &Groups, run: Month) -> Vec<Cell> {
    let cfg = ValidConfig::default().empathy;
    let settings = Settings {
        cfg: &cfg,
        min_group_size: 10,
        unavailable: &Default::default(),
        run_month: run,
    };
    aggregate(contacts, groups, &settings)
}

/// A customer without a birth year is in no age band: left out of the
/// bands, the whole business minus the bands shown was that customer's
/// scores exactly. 20 customers aged 18-34, 19 aged 35-54 and one without
/// an age band, one ticket each and two for the last one, in one month.
#[test]
fn a_customer_in_no_group_cannot_be_worked_out_by_subtraction() {
    let m = Month(2025 * 12 + 2);
    let mut labels = vec![Some("18-34"); 20];
    labels.extend([Some("35-54"); 19]);
    labels.push(None);
    let mut contacts: Vec<Contact> = (0..40)
        .map(|i| contact(i, m, "chat", ticket_scores(100.0, 80.0)))
        .collect();
    let mut second = contact(39, m, "chat", ticket_scores(0.0, 10.0));
    second.contact_id = "T39-again".into();
    contacts.push(second);
    let cells = cells_of(&contacts, &age_bands(&labels), m);
    assert_nothing_small_by_subtraction(&cells, &contacts, m, 10, "one month");
    let band = |g: &str| {
        cells
            .iter()
            .find(|c| {
                c.period == Period::Month(m) && c.dimension == Dimension::AgeBand && c.group == g
            })
            .unwrap_or_else(|| panic!("{g}"))
    };
    // the customer is a group of their own, too small to show, and the
    // smaller band is hidden with it
    assert_eq!(band(UNKNOWN).contacts.len(), 2);
    assert!(band(UNKNOWN).index().suppressed);
    assert!(band("35-54").index().suppressed);
    assert_eq!(band("18-34").index().customers, Some(20));
}

/// The same six customers called and wrote: phone and email are hidden
/// with 6 customers each, 12 by their sizes but 6 people, and the 30 on
/// chat shown would leave the business minus chat describing those six.
#[test]
fn hidden_groups_count_each_customer_once() {
    let m = Month(2025 * 12 + 2);
    let mut contacts = Vec::new();
    for i in 0..6 {
        contacts.push(contact(i, m, "phone", ticket_scores(0.0, 20.0)));
        let mut c = contact(i, m, "email", ticket_scores(0.0, 20.0));
        c.contact_id = format!("E{i}");
        contacts.push(c);
    }
    for i in 100..130 {
        contacts.push(contact(i, m, "chat", ticket_scores(100.0, 80.0)));
    }
    let cells = month_cells(&contacts, m, &Default::default());
    let touchpoint = |g: &str| {
        cells
            .iter()
            .find(|c| {
                c.period == Period::Month(m) && c.dimension == Dimension::Touchpoint && c.group == g
            })
            .expect("cell")
    };
    assert!(touchpoint("phone").index().suppressed && touchpoint("email").index().suppressed);
    assert!(
        touchpoint("chat").index().suppressed,
        "the business minus chat is six people"
    );
    assert_nothing_small_by_subtraction(&cells, &contacts, m, 10, "one month");
}

/// A month hidden to protect a small one (the run month, three days old,
/// three phone calls) is the sum of its touchpoints: one of them must go
/// with it, or the small month is the twelve months minus the others.
#[test]
fn a_hidden_total_keeps_one_of_its_groups_hidden() {
    let (m, run) = (Month(2025 * 12 + 2), Month(2025 * 12 + 3));
    let mut contacts = Vec::new();
    for i in 0..40 {
        let tp = if i < 25 { "chat" } else { "email" };
        contacts.push(contact(i, m, tp, ticket_scores(100.0, 80.0)));
    }
    for i in 200..203 {
        contacts.push(contact(i, run, "phone", ticket_scores(0.0, 0.0)));
    }
    let cells = month_cells(&contacts, run, &Default::default());
    assert_nothing_small_by_subtraction(&cells, &contacts, run, 10, "two months");
    let cell = |p: Period, d: Dimension, g: &str| {
        cells
            .iter()
            .find(|c| c.period == p && c.dimension == d && c.group == g)
            .expect("cell")
    };
    assert!(
        cell(Period::Month(m), Dimension::Overall, "all")
            .index()
            .suppressed
    );
    assert!(
        cell(Period::Month(m), Dimension::Touchpoint, "email")
            .index()
            .suppressed
    );
}

/// Two anonymous reviews are the age band `unknown`, too few to show; the
/// smallest band (15 customers) is hidden whole with them. Its ticket
/// components, of 15 customers each, can then be worked out from the
/// totals, which gives nothing small away: the next band keeps them, where
/// counting them as hidden took the next band's responsiveness, resolution
/// and tone too.
#[test]
fn a_group_hidden_whole_does_not_cost_another_its_components() {
    let m = Month(2025 * 12 + 2);
    let mut labels = vec![Some("18-34"); 15];
    labels.extend([Some("35-54"); 30]);
    labels.extend([Some("55+"); 40]);
    let mut contacts: Vec<Contact> = (0..85)
        .map(|i| contact(i, m, "chat", ticket_scores(100.0, 80.0)))
        .collect();
    for n in 0..2 {
        let mut s = [None; 6];
        s[Component::ClosingTheLoop.idx()] = Some(0.0);
        let mut review = contact(0, m, "google", s);
        review.customer = None;
        review.contact_id = format!("V{n}");
        contacts.push(review);
    }
    let cells = cells_of(&contacts, &age_bands(&labels), m);
    assert_nothing_small_by_subtraction(&cells, &contacts, m, 10, "one month");
    let band = |g: &str| {
        cells
            .iter()
            .find(|c| {
                c.period == Period::Month(m) && c.dimension == Dimension::AgeBand && c.group == g
            })
            .unwrap_or_else(|| panic!("{g}"))
    };
    assert!(band(UNKNOWN).index().suppressed && band("18-34").index().suppressed);
    let next = band("35-54");
    assert_eq!(next.index().value, Some(90.0));
    assert_eq!(
        next.component(Component::Responsiveness).customers,
        Some(30)
    );
}

/// Property, on random contacts, some anonymous, some without a
/// touchpoint, of customers of whom some have no age band: no family
/// leaves fewer than `min_group_size` customers to subtraction
/// ([`assert_nothing_small_by_subtraction`]), however the families
/// overlap.
#[test]
fn no_family_leaves_a_hidden_member_to_subtraction() {
    let run = Month(2025 * 12 + 5);
    let mut rng = Xoshiro256Plus::seed_from_u64(3);
    let touchpoints = ["chat", "email", "phone", "in_store", "google"];
    let bands = [Some("18-34"), Some("35-54"), Some("55+"), None];
    for round in 0..300 {
        let labels: Vec<Option<&str>> = (0..70)
            .map(|_| bands[rng.random_range(0..bands.len())])
            .collect();
        let groups = age_bands(&labels);
        let mut contacts = Vec::new();
        for n in 0..rng.random_range(40..160) {
            let customer = rng.random_range(0..70u32);
            let month = Month(run.0 - rng.random_range(0..4));
            let tp = touchpoints[rng.random_range(0..touchpoints.len())];
            let mut s = [None; 6];
            for slot in s.iter_mut() {
                if rng.random_bool(0.5) {
                    *slot = Some(rng.random_range(0.0..100.0_f64).round());
                }
            }
            let mut c = contact(customer, month, tp, s);
            c.contact_id = format!("R{round}-{n}");
            if rng.random_bool(0.05) {
                c.customer = None;
            }
            if rng.random_bool(0.05) {
                c.touchpoint = None;
            }
            contacts.push(c);
        }
        let cells = cells_of(&contacts, &groups, run);
        assert_nothing_small_by_subtraction(&cells, &contacts, run, 10, &format!("round {round}"));
    }
}

/// The estimates of a cell share one clustering of its contacts: each gives
/// exactly (to the bit) what clustering the contacts it uses again did.
/// Reference: [`linearize_sorting_per_call`], the code before the sharing.
#[test]
fn shared_clusters_give_the_estimates_of_clustering_each_time() {
    let mut rng = Xoshiro256Plus::seed_from_u64(2027);
    for round in 0..200 {
        let n = rng.random_range(0..120usize);
        let customers = rng.random_range(1..40u32);
        let scores: Vec<Scores> = (0..n)
            .map(|_| {
                let customer =
                    (rng.random_range(0..10) > 0).then(|| rng.random_range(0..customers));
                let mut row = [None; 6];
                for x in row.iter_mut() {
                    if rng.random_range(0..3) == 0 {
                        *x = Some(f64::from(rng.random_range(0..=100u32)) + rng.random::<f64>());
                    }
                }
                (customer, row)
            })
            .collect();
        let clusters = Clusters::of(&scores);
        let mut each = Vec::new();
        for i in 0..6 {
            let mut w = [None; 6];
            w[i] = Some(1.0);
            each.push(w);
        }
        let mut mixed = [None; 6];
        for w in mixed.iter_mut() {
            if rng.random_range(0..2) == 0 {
                *w = Some(rng.random::<f64>());
            }
        }
        each.push(mixed);
        let as_bits = |l: Option<&Linearized>| {
            l.map(|l| {
                (
                    l.value.to_bits(),
                    l.centre.to_bits(),
                    l.se.map(f64::to_bits),
                    l.used,
                )
            })
        };
        for pseudo in [0.0, PSEUDO_CUSTOMERS] {
            // the six components alone in one pass: the bits of one at a time
            let fused = linearize_each(&clusters, pseudo);
            for w in &each {
                let got = linearize_in(&clusters, w, pseudo);
                let want = linearize_sorting_per_call(&scores, w, pseudo);
                assert_eq!(
                    as_bits(got.as_ref()),
                    as_bits(want.as_ref()),
                    "round {round}, weights {w:?}"
                );
            }
            for (i, alone) in each.iter().take(6).enumerate() {
                assert_eq!(
                    as_bits(fused[i].as_ref()),
                    as_bits(linearize_in(&clusters, alone, pseudo).as_ref()),
                    "round {round}, component {i} alone, pseudo {pseudo}"
                );
            }
        }
        let distinct = |f: &dyn Fn(&Scores) -> bool| {
            let mut seen = std::collections::HashSet::new();
            scores
                .iter()
                .filter(|s| f(s))
                .filter(|s| s.0.is_none_or(|c| seen.insert(c)))
                .count() as u64
        };
        assert_eq!(clusters.customers(), distinct(&|_| true));
        let with = clusters.customers_with();
        for (i, got) in with.iter().enumerate() {
            assert_eq!(*got, distinct(&|s| s.1[i].is_some()), "component {i}");
        }
    }
}

/// [`linearize`] as it was before [`Clusters`]: it sorted the contacts it
/// used on each call. Its sums run in that sorted order, the order
/// [`Clusters`] adds them in (contact order before session 45).
fn linearize_sorting_per_call(
    scores: &[Scores],
    weights: &[Option<f64>; 6],
    pseudo: f64,
) -> Option<Linearized> {
    let has = |j: u32, i: usize| weights[i].is_some() && scores[j as usize].1[i].is_some();
    let mut sums = [0.0; 6];
    let mut ns = [0usize; 6];
    // Sorted by customer, each customer's contacts are one run: clustered
    // without a map.
    let mut named: Vec<(u32, u32)> = Vec::new();
    let mut anonymous: Vec<u32> = Vec::new();
    for (j, (customer, _)) in scores.iter().enumerate() {
        if (0..6).any(|i| has(j as u32, i)) {
            match customer {
                Some(c) => named.push((*c, j as u32)),
                None => anonymous.push(j as u32),
            }
        }
    }
    named.sort_unstable();
    for j in named
        .iter()
        .map(|&(_, j)| j)
        .chain(anonymous.iter().copied())
    {
        for i in 0..6 {
            if let (Some(x), Some(_)) = (scores[j as usize].1[i], weights[i]) {
                sums[i] += x;
                ns[i] += 1;
            }
        }
    }
    let runs = || named.chunk_by(|a, b| a.0 == b.0);
    let mut customers_with = [0usize; 6];
    for run in runs() {
        for (i, g) in customers_with.iter_mut().enumerate() {
            *g += usize::from(run.iter().any(|&(_, j)| has(j, i)));
        }
    }
    for &j in &anonymous {
        for (i, g) in customers_with.iter_mut().enumerate() {
            *g += usize::from(has(j, i));
        }
    }
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
            let n = ns[i] as f64;
            size[i] = n / customers_with[i] as f64;
            denom[i] = n + 2.0 * pseudo * size[i];
            means[i] = (sums[i] + 100.0 * pseudo * size[i]) / denom[i];
            value += w * sums[i] / n;
            centre += w * means[i];
            total_w += w;
        }
    }
    if total_w <= 0.0 {
        return None;
    }
    let influence = |j: u32| -> f64 {
        let row = &scores[j as usize].1;
        (0..6)
            .filter_map(|i| Some(weights[i]? * (row[i]? - means[i]) / denom[i]))
            .sum()
    };
    let (mut ss, mut customers) = (0.0, 0usize);
    for run in runs() {
        let z: f64 = run.iter().map(|&(_, j)| influence(j)).sum();
        ss += z * z;
        customers += 1;
    }
    for &j in &anonymous {
        ss += influence(j).powi(2);
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
    let g = customers as f64 + 2.0 * pseudo;
    Some(Linearized {
        value,
        centre,
        se: (customers >= 2).then(|| (ss * g / (g - 1.0)).sqrt()),
        used: named.len() + anonymous.len(),
    })
}

/// Reference: [`Clusters::of`] over a cell's scores in contact order, which
/// sorts them by customer itself, and the sums of the scores sorted by
/// customer here. The whole contact list put in cluster order once gives
/// every cell the same clusters, in the same order, and the same sums.
#[test]
fn cluster_order_gives_each_cell_the_clusters_sorting_it_gives() {
    let mut rng = Xoshiro256Plus::seed_from_u64(7);
    let contacts: Vec<Contact> = (0..3_000)
        .map(|_| {
            let mut c = contact(
                rng.random_range(0..400),
                Month(0),
                "email",
                std::array::from_fn(|_| rng.random_bool(0.7).then(|| rng.random_range(0.0..100.0))),
            );
            if rng.random_bool(0.05) {
                c.customer = None;
            }
            c
        })
        .collect();
    let order = ClusterOrder::of(&contacts);
    for cell in 0..20 {
        let idx: Vec<u32> = (0..contacts.len() as u32)
            .filter(|_| cell == 0 || rng.random_bool(0.3))
            .collect();
        let got = order.clusters(&idx);
        let scores: Vec<Scores> = idx
            .iter()
            .map(|&j| (contacts[j as usize].customer, contacts[j as usize].scores))
            .collect();
        let sorted = Clusters::of(&scores);
        assert_eq!(got.rows, sorted.rows, "cell {cell}");
        assert_eq!(got.masks, sorted.masks);
        assert_eq!(got.ends, sorted.ends);
        assert_eq!(got.ns, sorted.ns);
        // by customer, anonymous contacts last, each in contact order
        let mut at: Vec<(bool, Option<u32>, usize)> = scores
            .iter()
            .enumerate()
            .map(|(k, s)| (s.0.is_none(), s.0, k))
            .collect();
        at.sort();
        let in_cluster_order: Vec<Scores> = at.iter().map(|&(_, _, k)| scores[k]).collect();
        assert_eq!(got.sums, Clusters::of(&in_cluster_order).sums);
        for i in 0..6 {
            assert!((got.sums[i] - sorted.sums[i]).abs() < 1e-9 * sorted.sums[i].abs().max(1.0));
        }
    }
}
