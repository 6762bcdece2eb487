//! The fairness audit: the engine against independent computations on a
//! fixed fixture (tests/fixtures/fairness/decisions.csv, made by
//! make_fixture.py beside it), suppression, the command line, and the
//! nightly job on the generated demo business with its planted biases.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use attune::config::ValidConfig;
use attune::context::{JobContext, KeyMode};
use attune::fairness::audit::{AuditParams, AuditReport, audit};
use attune::fairness::dims::Intersections;
use attune::fairness::file::{FileAudit, read_table};
use attune::fairness::findings::Finding;
use attune::fairness::table::{Codes, Comparison, DecisionTable, Direction, Outcome, Stat};
use attune::fairness::verdict::Verdict;
use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, UInt64Array,
};
use datafusion::arrow::datatypes::{Field, Schema};

use crate::common;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fairness/decisions.csv")
}

fn close(got: Option<f64>, want: f64, what: &str) {
    let got = got.unwrap_or_else(|| panic!("{what}: no value"));
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{what}: got {got:.15}, want {want:.15}"
    );
}

fn find<'a>(
    r: &'a AuditReport,
    dimension: &str,
    group: &str,
    outcome: &str,
    metric: &str,
) -> &'a Finding {
    let group = (!group.is_empty()).then_some(group);
    r.findings
        .iter()
        .find(|f| {
            f.dimension == dimension
                && f.group_name.as_deref() == group
                && f.outcome == outcome
                && f.metric == metric
        })
        .unwrap_or_else(|| panic!("no finding {dimension}/{group:?}/{outcome}/{metric}"))
}

fn file_audit(groups: &[&str], outcomes: &[&str], classifier: bool) -> FileAudit {
    FileAudit {
        input: fixture(),
        groups: groups.iter().map(|s| s.to_string()).collect(),
        label: classifier.then(|| "label".into()),
        prediction: classifier.then(|| "prediction".into()),
        score: classifier.then(|| "score".into()),
        outcomes: outcomes.iter().map(|s| s.to_string()).collect(),
        subject: Some("person_id".into()),
        out: PathBuf::from("unused.json"),
        params: AuditParams {
            min_group_size: 5,
            noun: "people".into(),
            ..AuditParams::default()
        },
    }
}

async fn audit_fixture(a: &FileAudit) -> AuditReport {
    let table = read_table(a).await.expect("fixture reads");
    audit(&[table], &a.params).expect("audit")
}

/// Per-group classifier metrics and the disparity aggregates, for each
/// attribute and their intersection, equal Fairlearn's.
#[tokio::test]
async fn classifier_metrics_match_fairlearn() {
    let r = audit_fixture(&file_audit(&["gender", "age_band"], &[], true)).await;
    // fairlearn 0.15.0: MetricFrame(metrics={selection_rate, true_positive_rate,
    // false_positive_rate, precision_score}, y_true=label, y_pred=prediction,
    // sensitive_features=...).by_group, and demographic_parity_difference(...) etc.
    // (make_fixture.py prints these lines).
    let want: &[(&str, &str, &str, f64)] = &[
        ("gender", "female", "selection_rate", 0.34),
        ("gender", "female", "true_positive_rate", 0.7777777777777778),
        ("gender", "female", "false_positive_rate", 0.09375),
        ("gender", "female", "precision", 0.8235294117647058),
        ("gender", "male", "selection_rate", 0.5),
        ("gender", "male", "true_positive_rate", 0.9090909090909091),
        ("gender", "male", "false_positive_rate", 0.2631578947368421),
        ("gender", "male", "precision", 0.6666666666666666),
        ("gender", "non_binary", "selection_rate", 0.4),
        ("gender", "non_binary", "true_positive_rate", 0.9),
        (
            "gender",
            "non_binary",
            "false_positive_rate",
            0.06666666666666667,
        ),
        ("gender", "non_binary", "precision", 0.9),
        (
            "gender",
            "",
            "demographic_parity_difference",
            0.15999999999999998,
        ),
        ("gender", "", "demographic_parity_ratio", 0.68),
        (
            "gender",
            "",
            "equalized_odds_difference",
            0.19649122807017544,
        ),
        ("gender", "", "equalized_odds_ratio", 0.25333333333333335),
        (
            "gender",
            "",
            "equal_opportunity_difference",
            0.13131313131313127,
        ),
        ("gender", "", "equal_opportunity_ratio", 0.8555555555555556),
        ("age_band", "18-34", "selection_rate", 0.35),
        (
            "age_band",
            "18-34",
            "true_positive_rate",
            0.8275862068965517,
        ),
        (
            "age_band",
            "18-34",
            "false_positive_rate",
            0.0784313725490196,
        ),
        ("age_band", "18-34", "precision", 0.8571428571428571),
        ("age_band", "35-64", "selection_rate", 0.2875),
        ("age_band", "35-64", "true_positive_rate", 0.782608695652174),
        (
            "age_band",
            "35-64",
            "false_positive_rate",
            0.08771929824561403,
        ),
        ("age_band", "35-64", "precision", 0.782608695652174),
        ("age_band", "65+", "selection_rate", 0.6),
        ("age_band", "65+", "true_positive_rate", 0.918918918918919),
        (
            "age_band",
            "65+",
            "false_positive_rate",
            0.32558139534883723,
        ),
        ("age_band", "65+", "precision", 0.7083333333333334),
        ("age_band", "", "demographic_parity_difference", 0.3125),
        (
            "age_band",
            "",
            "demographic_parity_ratio",
            0.47916666666666663,
        ),
        (
            "age_band",
            "",
            "equalized_odds_difference",
            0.24715002279981763,
        ),
        ("age_band", "", "equalized_odds_ratio", 0.24089635854341734),
        (
            "age_band",
            "",
            "equal_opportunity_difference",
            0.13631022326674502,
        ),
        (
            "age_band",
            "",
            "equal_opportunity_ratio",
            0.8516624040920716,
        ),
        (
            "gender & age_band",
            "female & 18-34",
            "selection_rate",
            0.2727272727272727,
        ),
        (
            "gender & age_band",
            "female & 18-34",
            "true_positive_rate",
            0.75,
        ),
        (
            "gender & age_band",
            "female & 18-34",
            "false_positive_rate",
            0.0,
        ),
        ("gender & age_band", "female & 18-34", "precision", 1.0),
        (
            "gender & age_band",
            "female & 35-64",
            "selection_rate",
            0.20588235294117646,
        ),
        (
            "gender & age_band",
            "female & 35-64",
            "true_positive_rate",
            0.6666666666666666,
        ),
        (
            "gender & age_band",
            "female & 35-64",
            "false_positive_rate",
            0.04,
        ),
        (
            "gender & age_band",
            "female & 35-64",
            "precision",
            0.8571428571428571,
        ),
        (
            "gender & age_band",
            "female & 65+",
            "selection_rate",
            0.5454545454545454,
        ),
        (
            "gender & age_band",
            "female & 65+",
            "true_positive_rate",
            0.8666666666666667,
        ),
        (
            "gender & age_band",
            "female & 65+",
            "false_positive_rate",
            0.2777777777777778,
        ),
        (
            "gender & age_band",
            "female & 65+",
            "precision",
            0.7222222222222222,
        ),
        (
            "gender & age_band",
            "male & 18-34",
            "selection_rate",
            0.4666666666666667,
        ),
        (
            "gender & age_band",
            "male & 18-34",
            "true_positive_rate",
            0.9090909090909091,
        ),
        (
            "gender & age_band",
            "male & 18-34",
            "false_positive_rate",
            0.21052631578947367,
        ),
        (
            "gender & age_band",
            "male & 18-34",
            "precision",
            0.7142857142857143,
        ),
        (
            "gender & age_band",
            "male & 35-64",
            "selection_rate",
            0.3333333333333333,
        ),
        (
            "gender & age_band",
            "male & 35-64",
            "true_positive_rate",
            0.8571428571428571,
        ),
        (
            "gender & age_band",
            "male & 35-64",
            "false_positive_rate",
            0.17391304347826086,
        ),
        ("gender & age_band", "male & 35-64", "precision", 0.6),
        ("gender & age_band", "male & 65+", "selection_rate", 0.7),
        (
            "gender & age_band",
            "male & 65+",
            "true_positive_rate",
            0.9333333333333333,
        ),
        (
            "gender & age_band",
            "male & 65+",
            "false_positive_rate",
            0.4666666666666667,
        ),
        (
            "gender & age_band",
            "male & 65+",
            "precision",
            0.6666666666666666,
        ),
        (
            "gender & age_band",
            "non_binary & 18-34",
            "selection_rate",
            0.29411764705882354,
        ),
        (
            "gender & age_band",
            "non_binary & 18-34",
            "true_positive_rate",
            0.8333333333333334,
        ),
        (
            "gender & age_band",
            "non_binary & 18-34",
            "false_positive_rate",
            0.0,
        ),
        ("gender & age_band", "non_binary & 18-34", "precision", 1.0),
        (
            "gender & age_band",
            "non_binary & 35-64",
            "selection_rate",
            0.375,
        ),
        (
            "gender & age_band",
            "non_binary & 35-64",
            "true_positive_rate",
            0.8571428571428571,
        ),
        (
            "gender & age_band",
            "non_binary & 35-64",
            "false_positive_rate",
            0.0,
        ),
        ("gender & age_band", "non_binary & 35-64", "precision", 1.0),
        (
            "gender & age_band",
            "non_binary & 65+",
            "selection_rate",
            0.5294117647058824,
        ),
        (
            "gender & age_band",
            "non_binary & 65+",
            "true_positive_rate",
            1.0,
        ),
        (
            "gender & age_band",
            "non_binary & 65+",
            "false_positive_rate",
            0.2,
        ),
        (
            "gender & age_band",
            "non_binary & 65+",
            "precision",
            0.7777777777777778,
        ),
        (
            "gender & age_band",
            "",
            "demographic_parity_difference",
            0.4941176470588235,
        ),
        (
            "gender & age_band",
            "",
            "demographic_parity_ratio",
            0.29411764705882354,
        ),
        (
            "gender & age_band",
            "",
            "equalized_odds_difference",
            0.4666666666666667,
        ),
        ("gender & age_band", "", "equalized_odds_ratio", 0.0),
        (
            "gender & age_band",
            "",
            "equal_opportunity_difference",
            0.33333333333333337,
        ),
        (
            "gender & age_band",
            "",
            "equal_opportunity_ratio",
            0.6666666666666666,
        ),
    ];
    for (dim, group, metric, value) in want {
        let f = find(&r, dim, group, "prediction", metric);
        assert!(!f.suppressed, "{dim}/{group}/{metric} is suppressed");
        close(f.value, *value, &format!("{dim}/{group}/{metric}"));
    }
    // The base rate (how often the label is 1) describes the people, not
    // the model: shown for context, never tested or judged, so groups that
    // differ in it raise no concern. 65+: 37 of 80 have the label
    // (counted from decisions.csv with Python's csv module).
    let base = find(&r, "age_band", "65+", "prediction", "base_rate");
    close(base.value, 37.0 / 80.0, "age_band/65+/base_rate");
    let base_rates: Vec<&Finding> = (r.findings.iter())
        .filter(|f| f.metric == "base_rate" && !f.suppressed)
        .collect();
    assert!(base_rates.len() >= 6, "{}", base_rates.len());
    for f in base_rates {
        assert!(
            f.verdict.is_none() && f.p_value.is_none() && f.test.is_none(),
            "{f:?}"
        );
    }
    assert!(
        base.explanation.starts_with("Context, not a decision"),
        "{}",
        base.explanation
    );
}

/// Intervals and tests of one dimension against independent libraries.
#[tokio::test]
async fn intervals_and_tests_match_statsmodels_and_scipy() {
    let r = audit_fixture(&file_audit(&["gender"], &[], true)).await;
    // statsmodels 0.15.0 proportion_confint(method="wilson"),
    // confint_proportions_2indep(compare="ratio", method="log"), proportions_ztest;
    // scipy 1.17.1 mannwhitneyu(method="asymptotic") of the score,
    // ttest_ind(equal_var=False) of score − label; female (100 rows) is the reference.
    let female = find(&r, "gender", "female", "prediction", "selection_rate");
    close(female.ci_low, 0.25461520797348164, "female wilson low");
    close(female.ci_high, 0.43722271145275377, "female wilson high");
    assert_eq!(
        female.reference_group.as_deref(),
        Some("female"),
        "the largest group"
    );
    let cases = [
        (
            "male",
            0.3988372282354734,
            0.6011627717645266,
            1.0441896666451447,
            2.0711081778215013,
            0.025462827076166192,
            0.0054210607832749615,
            0.09408964526131651,
        ),
        (
            "non_binary",
            0.2760838973025654,
            0.5381856225241064,
            0.7609735291591248,
            1.8188320512437666,
            0.47048642205878966,
            0.4941413436773707,
            0.8237865532204653,
        ),
    ];
    for (g, wl, wh, kl, kh, zp, mwp, welchp) in cases {
        let f = find(&r, "gender", g, "prediction", "selection_rate");
        close(f.ci_low, wl, &format!("{g} wilson low"));
        close(f.ci_high, wh, &format!("{g} wilson high"));
        close(f.ratio_ci_low, kl, &format!("{g} katz low"));
        close(f.ratio_ci_high, kh, &format!("{g} katz high"));
        close(f.p_value, zp, &format!("{g} z p"));
        assert_eq!(f.test.as_deref(), Some("two_proportion_z"));
        let m = find(&r, "gender", g, "prediction", "mean_score");
        close(m.p_value, mwp, &format!("{g} mann-whitney p"));
        assert_eq!(m.test.as_deref(), Some("mann_whitney_u"));
        let c = find(&r, "gender", g, "prediction", "calibration_gap");
        close(c.p_value, welchp, &format!("{g} welch p"));
        assert_eq!(c.test.as_deref(), Some("welch_t"));
        assert!(c.ratio.is_none(), "gaps are compared by difference");
    }
}

/// Every test of a run is corrected together: the p-values and the
/// Benjamini-Hochberg adjusted p-values of a whole audit equal statsmodels'.
#[tokio::test]
async fn the_whole_family_is_corrected_together() {
    let mut a = file_audit(&["gender"], &["approved", "discount", "channel"], false);
    a.params.intersections = Intersections::None;
    let r = audit_fixture(&a).await;
    assert_eq!(
        r.tests, 11,
        "2 rate tests, 2 Mann-Whitney, 6 category shares, 1 chi-square"
    );
    // scipy 1.17.1 / statsmodels 0.15.0 (make_fixture.py, "family"):
    // (outcome, metric, group, p, p_adjusted by multipletests(method="fdr_bh"))
    let family = [
        (
            "approved",
            "rate",
            "male",
            0.0003324065525888383,
            0.0018282360392386104,
        ),
        (
            "discount",
            "mean",
            "male",
            9.263497306077046e-05,
            0.001018984703668475,
        ),
        (
            "discount",
            "median",
            "male",
            9.263497306077046e-05,
            0.001018984703668475,
        ),
        (
            "channel",
            "share_chat",
            "male",
            0.027165230202440698,
            0.0996058440756159,
        ),
        (
            "channel",
            "share_email",
            "male",
            0.23246987194353186,
            0.31498631283825496,
        ),
        (
            "channel",
            "share_phone",
            "male",
            0.25771607414039044,
            0.31498631283825496,
        ),
        (
            "approved",
            "rate",
            "non_binary",
            0.09695854187855919,
            0.18429831852828438,
        ),
        (
            "discount",
            "mean",
            "non_binary",
            0.11238719566689241,
            0.18429831852828438,
        ),
        (
            "channel",
            "share_chat",
            "non_binary",
            0.3070664706191236,
            0.337773117681036,
        ),
        (
            "channel",
            "share_email",
            "non_binary",
            0.10547205032765775,
            0.18429831852828438,
        ),
        (
            "channel",
            "share_phone",
            "non_binary",
            0.41730416562740447,
            0.41730416562740447,
        ),
        (
            "channel",
            "chi_square",
            "",
            0.11728074815436279,
            0.18429831852828438,
        ),
    ];
    for (outcome, metric, group, p, adj) in family {
        let f = find(&r, "gender", group, outcome, metric);
        close(f.p_value, p, &format!("{outcome}/{metric}/{group} p"));
        close(
            f.p_adjusted,
            adj,
            &format!("{outcome}/{metric}/{group} adjusted p"),
        );
    }
    // pandas 3.0: mean and numpy.quantile(0.5) of discount per gender.
    for (g, mean, median) in [
        ("female", 11.805, 12.0),
        ("male", 9.955555555555556, 9.75),
        ("non_binary", 12.62, 12.5),
    ] {
        close(
            find(&r, "gender", g, "discount", "mean").value,
            mean,
            &format!("{g} mean"),
        );
        close(
            find(&r, "gender", g, "discount", "median").value,
            median,
            &format!("{g} median"),
        );
    }
    // The approval gap of men (45% against 60%) is outside the band and significant.
    let approved = find(&r, "gender", "male", "approved", "rate");
    assert_eq!(approved.verdict, Some(Verdict::Concern));
    assert!(
        approved.explanation.starts_with("Male people have approved = 1 0.61× as often as female people (95% CI 0.45–0.81×; 40% against 66%)"),
        "{}",
        approved.explanation
    );
}

/// Bootstrap intervals are reproducible from the seed, hold the estimate,
/// and change with the seed.
#[tokio::test]
async fn bootstrap_intervals_are_seeded() {
    let a = file_audit(&["gender"], &["discount"], false);
    let first = audit_fixture(&a).await;
    let again = audit_fixture(&a).await;
    assert_eq!(first.findings, again.findings, "same seed, same findings");
    let mut b = a.clone();
    b.params.seed += 1;
    let other = audit_fixture(&b).await;
    let m = find(&first, "gender", "male", "discount", "median");
    let m2 = find(&other, "gender", "male", "discount", "median");
    assert_eq!(m.value, m2.value);
    // unwrapped first: None <= None would pass on a suppressed row
    let (lo, v, hi) = (
        m.ci_low.expect("ci_low"),
        m.value.expect("value"),
        m.ci_high.expect("ci_high"),
    );
    assert!(lo <= v && v <= hi, "{lo} {v} {hi}");
    let (rlo, r, rhi) = (
        m.ratio_ci_low.expect("ratio_ci_low"),
        m.ratio.expect("ratio"),
        m.ratio_ci_high.expect("ratio_ci_high"),
    );
    assert!(rlo <= r && r <= rhi, "{rlo} {r} {rhi}");
    let mean = find(&first, "gender", "male", "discount", "mean");
    let mean2 = find(&other, "gender", "male", "discount", "mean");
    assert_ne!(
        (mean.ci_low, mean.ci_high),
        (mean2.ci_low, mean2.ci_high),
        "another seed, other resamples"
    );
}

/// A reference whose median is 0 in more than 2.5% of the resamples: the
/// ratio's replicates are then infinite there, and its upper bound is
/// unbounded. Dropping the infinite replicates gave a finite, too narrow
/// interval; now there is no interval, only the ratio.
#[test]
fn a_ratio_whose_reference_can_resample_to_zero_has_no_interval() {
    // north: 18 zeros and 22 positive waits (median 1, but a resample holds
    // 20 or more zeros about a quarter of the time); south: 40 positive.
    let (region, wait) = per_region(
        &[("north", 40, 18), ("south", 40, 0)],
        |r, i, zeros| match (r, i < zeros) {
            (_, true) => 0.0,
            ("north", false) => 1.0 + (i % 3) as f64,
            _ => 2.0 + (i % 5) as f64,
        },
    );
    let t = by_region(
        "service",
        &region,
        vec![Outcome::continuous(
            "wait_hours",
            wait,
            vec![Stat::Quantile(0.5)],
            Comparison::Ratio,
            Direction::HigherIsWorse,
            "wait",
            " hours",
        )],
        None,
    );
    let params = AuditParams {
        reference_groups: [("region".to_string(), "north".to_string())].into(),
        ..AuditParams::default()
    };
    let r = audit(std::slice::from_ref(&t), &params).expect("audit");
    let south = find(&r, "region", "south", "wait_hours", "median");
    assert_eq!(south.reference_group.as_deref(), Some("north"));
    let ratio = south.ratio.expect("north's median is 1: the ratio exists");
    assert!(ratio > 1.0, "{ratio}");
    assert_eq!(
        (south.ratio_ci_low, south.ratio_ci_high),
        (None, None),
        "{}",
        south.explanation
    );
    assert!(south.difference_ci_low.is_some() && south.difference_ci_high.is_some());
}

/// A classifier's `mean_score` and `calibration_gap` are both the mean of
/// a column: with every label 0 the two columns are equal, and their
/// intervals must still come from resamples of their own.
#[test]
fn mean_score_and_calibration_gap_resample_apart() {
    let (region, score) = per_region(&[("north", 60, 0), ("south", 50, 0)], |r, i, _| {
        let base = if r == "north" { 0.2 } else { 0.3 };
        base + 0.01 * (i % 17) as f64
    });
    let label = vec![0u8; score.len()];
    let prediction: Vec<u8> = score.iter().map(|s| u8::from(*s > 0.3)).collect();
    let t = by_region(
        "churn_model",
        &region,
        Vec::new(),
        Some(attune::fairness::table::Classifier::churn(
            label,
            prediction,
            Some(score),
        )),
    );
    let r = audit(std::slice::from_ref(&t), &AuditParams::default()).expect("audit");
    let mean = find(&r, "region", "south", "at_risk", "mean_score");
    let gap = find(&r, "region", "south", "at_risk", "calibration_gap");
    assert_eq!(mean.value, gap.value, "the same column");
    assert!(mean.ci_low.is_some() && gap.ci_low.is_some());
    assert_ne!(
        (mean.ci_low, mean.ci_high),
        (gap.ci_low, gap.ci_high),
        "the same resamples"
    );
}

/// A column with negative values (a margin) is compared by difference in
/// `attune fairness audit`: "−2× the reference" means nothing.
#[tokio::test]
async fn the_command_compares_a_column_with_negative_values_by_difference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("margins.csv");
    let mut csv = String::from("person_id,region,margin\n");
    for i in 0..80 {
        let (region, margin) = if i < 40 {
            ("north", 5.0 - (i % 9) as f64)
        } else {
            ("south", 2.0 - (i % 7) as f64)
        };
        csv.push_str(&format!("p{i},{region},{margin}\n"));
    }
    std::fs::write(&input, csv).expect("write");
    let a = FileAudit {
        input,
        groups: vec!["region".into()],
        label: None,
        prediction: None,
        score: None,
        outcomes: vec!["margin".into()],
        subject: Some("person_id".into()),
        out: PathBuf::from("unused.json"),
        params: AuditParams::default(),
    };
    let table = read_table(&a).await.expect("reads");
    assert_eq!(table.outcomes[0].comparison, Comparison::Difference);
    let r = audit(&[table], &a.params).expect("audit");
    let south = find(&r, "region", "south", "margin", "mean");
    assert!(south.ratio.is_none() && south.ratio_ci_low.is_none());
    assert!(south.difference.is_some() && south.difference_ci_low.is_some());
}

/// A table of `rows` people per (region, age) cell with a 0/1 outcome.
fn small_groups_table() -> DecisionTable {
    // region "islands" has 4 people: primary suppression; alone it could be
    // recovered from the total, so the next smallest region goes too.
    let cells: &[(&str, &str, usize)] = &[
        ("north", "young", 40),
        ("north", "old", 35),
        ("south", "young", 30),
        ("south", "old", 28),
        ("west", "young", 14),
        ("west", "old", 12),
        ("islands", "young", 3),
        ("islands", "old", 1),
    ];
    let (mut region, mut age, mut outcome) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (r, a, n)) in cells.iter().enumerate() {
        for k in 0..*n {
            region.push(Some(r.to_string()));
            age.push(Some(a.to_string()));
            outcome.push(u8::from((k + i) % 3 == 0));
        }
    }
    DecisionTable {
        name: "small".into(),
        rows: outcome.len(),
        subjects: None,
        groups: vec![
            ("region".into(), Codes::encode(&region)),
            ("age".into(), Codes::encode(&age)),
        ],
        outcomes: vec![Outcome::binary(
            "flagged",
            outcome,
            Direction::Neutral,
            "are flagged",
        )],
        classifier: None,
    }
}

/// A decision table grouped by region alone.
fn by_region(
    name: &str,
    region: &[Option<String>],
    outcomes: Vec<Outcome>,
    classifier: Option<attune::fairness::table::Classifier>,
) -> DecisionTable {
    DecisionTable {
        name: name.into(),
        rows: region.len(),
        subjects: None,
        groups: vec![("region".into(), Codes::encode(region))],
        outcomes,
        classifier,
    }
}

/// One row per person of each (region, people, k) entry: the region column
/// and `value(region, i, k)` for the region's i-th person.
fn per_region<T>(
    regions: &[(&str, usize, usize)],
    value: impl Fn(&str, usize, usize) -> T,
) -> (Vec<Option<String>>, Vec<T>) {
    let mut region = Vec::new();
    let mut values = Vec::new();
    for &(r, n, k) in regions {
        for i in 0..n {
            region.push(Some(r.to_string()));
            values.push(value(r, i, k));
        }
    }
    (region, values)
}

/// North is the largest region overall (400 customers) and the reference;
/// among the 88 customers the outcome applies to (say, follow-ups of
/// unhappy customers) north has 8 and south 5, both hidden. East (40) and
/// west (35) are shown and still compared: with the largest region shown
/// there, east, as the reference, not "no reference group large enough".
#[test]
fn a_reference_hidden_in_a_population_falls_back_to_the_largest_shown_there() {
    let regions: &[(&str, usize, usize)] = &[
        ("north", 400, 8),
        ("south", 200, 5),
        ("east", 60, 40),
        ("west", 50, 35),
    ];
    let (region, outcome) = per_region(regions, |r, k, with_outcome| match (k < with_outcome, r) {
        (false, _) => attune::fairness::table::NO_VALUE,
        (true, "west") => u8::from(k % 5 == 0),
        (true, _) => u8::from(k % 2 == 0),
    });
    let t = by_region(
        "service",
        &region,
        vec![Outcome::binary(
            "followed_up",
            outcome,
            Direction::HigherIsBetter,
            "are followed up",
        )],
        None,
    );
    let r = audit(std::slice::from_ref(&t), &AuditParams::default()).expect("audit");
    assert!(find(&r, "region", "north", "followed_up", "rate").suppressed);
    let west = find(&r, "region", "west", "followed_up", "rate");
    assert_eq!(west.reference_group.as_deref(), Some("east"));
    // west 7 of 35 = 0.2 against east 20 of 40 = 0.5
    close(west.ratio, 0.4, "ratio to east");
    assert!(west.verdict.is_some(), "{}", west.explanation);
    assert!(
        !west.explanation.contains("no reference group"),
        "{}",
        west.explanation
    );
}

/// A classifier's populations are parts of one another: west has 25
/// customers, 4 of whom churned. Its true positive rate (4 people) is
/// hidden; were its selection rate (n = 25) and false positive rate
/// (n = 21) shown, the flagged churners would be their difference. So a
/// group protected in one population is hidden in all of them.
#[test]
fn a_classifier_group_hidden_in_one_population_is_hidden_in_all() {
    let regions: &[(&str, usize, usize)] = &[
        ("north", 60, 30),
        ("south", 50, 25),
        ("east", 40, 20),
        ("west", 25, 4),
    ];
    let (region, rows) = per_region(regions, |_, k, positives| {
        (u8::from(k < positives), u8::from(k % 3 == 0))
    });
    let (label, prediction): (Vec<u8>, Vec<u8>) = rows.into_iter().unzip();
    let t = by_region(
        "churn_model",
        &region,
        Vec::new(),
        Some(attune::fairness::table::Classifier::churn(
            label, prediction, None,
        )),
    );
    let r = audit(std::slice::from_ref(&t), &AuditParams::default()).expect("audit");
    let metrics = [
        "selection_rate",
        "base_rate",
        "true_positive_rate",
        "false_positive_rate",
        "precision",
    ];
    assert!(find(&r, "region", "west", "at_risk", "true_positive_rate").suppressed);
    for (group, _, _) in regions {
        let hidden: Vec<bool> = metrics
            .iter()
            .map(|m| find(&r, "region", group, "at_risk", m).suppressed)
            .collect();
        assert!(
            hidden.iter().all(|h| *h == hidden[0]),
            "{group}: {metrics:?} hidden {hidden:?}"
        );
    }
    for m in metrics {
        let west = find(&r, "region", "west", "at_risk", m);
        assert!(
            west.suppressed && west.value.is_none() && west.n.is_none(),
            "{m}"
        );
    }
    assert!(
        !find(&r, "region", "north", "at_risk", "selection_rate").suppressed,
        "the large groups are still shown"
    );
}

#[test]
fn small_groups_are_suppressed_everywhere_and_cannot_be_recovered() {
    let t = small_groups_table();
    let total = t.rows as u64;
    let r = audit(std::slice::from_ref(&t), &AuditParams::default()).expect("audit");
    let islands = find(&r, "region", "islands", "flagged", "rate");
    assert!(islands.suppressed);
    assert_eq!(
        (
            islands.value,
            islands.n,
            islands.ci_low,
            islands.p_value,
            islands.verdict
        ),
        (None, None, None, None, None)
    );
    assert!(
        islands.explanation.starts_with("n < 10"),
        "{}",
        islands.explanation
    );
    let west = find(&r, "region", "west", "flagged", "rate");
    assert!(
        west.suppressed,
        "complementary suppression of the next smallest region"
    );
    assert!(
        !west.explanation.contains("n < 10"),
        "west has 26 people: {}",
        west.explanation
    );
    // Whatever is shown, the hidden remainder of every dimension holds at
    // least 10 people and more than one group.
    for dim in ["region", "age", "region & age"] {
        let rows: Vec<&Finding> = r
            .findings
            .iter()
            .filter(|f| f.dimension == dim && f.group_name.is_some())
            .collect();
        let shown: u64 = rows.iter().filter_map(|f| f.n).sum();
        let hidden = rows.iter().filter(|f| f.suppressed).count();
        assert!(
            hidden == 0 || (hidden >= 2 && total - shown >= 10),
            "{dim}: {hidden} hidden, {} people",
            total - shown
        );
    }
    // In the intersection, a row like "islands & *" or "west & *" never
    // has exactly one hidden cell next to a shown margin.
    for region in ["north", "south", "west", "islands"] {
        let margin_shown = !find(&r, "region", region, "flagged", "rate").suppressed;
        let hidden = r
            .findings
            .iter()
            .filter(|f| f.dimension == "region & age" && f.suppressed)
            .filter(|f| {
                f.group_name
                    .as_deref()
                    .is_some_and(|g| g.starts_with(&format!("{region} & ")))
            })
            .count();
        assert!(
            !(margin_shown && hidden == 1),
            "{region}: one hidden cell under a shown margin"
        );
    }
    // Suppressed groups never enter a comparison's reference.
    assert!(
        r.findings
            .iter()
            .all(|f| f.reference_group.as_deref() != Some("islands"))
    );
}

/// The command line: JSON and Parquet outputs, and the gate's exit code.
#[test]
fn the_command_audits_any_decision_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("audit.json");
    let args = |out: &Path| {
        let mut c = common::attune();
        c.current_dir(dir.path()).args([
            "fairness",
            "audit",
            "--input",
            fixture().to_str().expect("utf8"),
            "--group",
            "gender",
            "--group",
            "age_band",
            "--label",
            "label",
            "--prediction",
            "prediction",
            "--score",
            "score",
            "--outcome",
            "approved",
            "--outcome",
            "channel",
            "--subject",
            "person_id",
            "--min-group-size",
            "5",
            "--out",
            out.to_str().expect("utf8"),
        ]);
        c
    };
    let out = args(&json).output().expect("runs");
    crate::common::assert_succeeded(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        json.display().to_string()
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("valid json");
    assert_eq!(doc["rows"], 240);
    let findings = doc["findings"].as_array().expect("findings");
    assert!(
        findings
            .iter()
            .any(|f| f["metric"] == "equalized_odds_difference")
    );
    assert!(
        findings
            .iter()
            .any(|f| f["dimension"] == "gender & age_band")
    );
    assert!(
        doc["concerns"].as_u64().expect("count") >= 1,
        "men are approved less often"
    );

    let parquet = dir.path().join("audit.parquet");
    let out = args(&parquet)
        .arg("--fail-on")
        .arg("concern")
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(3),
        "a concern trips the gate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let batches = common::read_parquet(&parquet);
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(
        rows,
        findings.len(),
        "the gate fires after the output is written"
    );

    let bad = common::attune()
        .current_dir(dir.path())
        .args([
            "fairness",
            "audit",
            "--input",
            fixture().to_str().expect("utf8"),
            "--group",
            "shoe_size",
            "--outcome",
            "approved",
            "--out",
            "x.json",
        ])
        .output()
        .expect("runs");
    assert_eq!(bad.status.code(), Some(5), "an unusable input");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("shoe_size"));

    // a misspelt dimension is refused, not skipped without a word
    let typo = args(&dir.path().join("typo.json"))
        .args(["--reference", "agebnd=25-34"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert_eq!(typo.status.code(), Some(2), "a usage error: {stderr}");
    assert!(
        stderr.contains("`agebnd`") && stderr.contains("audited:"),
        "{stderr}"
    );
    assert!(!dir.path().join("typo.json").exists());
}

/// One row of marts/fairness_audit.
#[derive(Debug, Clone)]
struct MartRow {
    decision: String,
    dimension: String,
    group: Option<String>,
    reference: Option<String>,
    outcome: String,
    metric: String,
    value: Option<f64>,
    ratio: Option<f64>,
    n: Option<u64>,
    suppressed: bool,
    verdict: Option<String>,
    explanation: String,
}

fn read_mart(root: &Path, date: NaiveDate) -> Vec<MartRow> {
    let path = root.join(format!("marts/fairness_audit/dt={date}/part-0.parquet"));
    let mut out = Vec::new();
    for b in common::read_parquet(&path) {
        let s = |c: &str| {
            b.column_by_name(c)
                .expect(c)
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("utf8")
                .clone()
        };
        let f = |c: &str| {
            b.column_by_name(c)
                .expect(c)
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("f64")
                .clone()
        };
        let (dec, dim, grp, refg, out_c, met, ver, exp) = (
            s("decision"),
            s("dimension"),
            s("group_name"),
            s("reference_group"),
            s("outcome"),
            s("metric"),
            s("verdict"),
            s("explanation"),
        );
        let (val, rat) = (f("value"), f("ratio"));
        let n = common::column::<UInt64Array>(&b, "n");
        let sup = common::column::<BooleanArray>(&b, "suppressed");
        let opt_s = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
        let opt_f = |a: &Float64Array, i: usize| a.is_valid(i).then(|| a.value(i));
        for i in 0..b.num_rows() {
            out.push(MartRow {
                decision: dec.value(i).into(),
                dimension: dim.value(i).into(),
                group: opt_s(&grp, i),
                reference: opt_s(&refg, i),
                outcome: out_c.value(i).into(),
                metric: met.value(i).into(),
                value: opt_f(&val, i),
                ratio: opt_f(&rat, i),
                n: n.is_valid(i).then(|| n.value(i)),
                suppressed: sup.value(i),
                verdict: opt_s(&ver, i),
                explanation: exp.value(i).into(),
            });
        }
    }
    out
}

/// Which decisions and outcomes each planted bias of the generator shows
/// up in (the test's reading of ground_truth.json's `table` and `outcome`):
/// bot routing of 65+ customers also makes them wait longer, and resolution
/// time is counted from the ticket's creation, so it grows with the wait.
fn planted_outcomes(bias: &str) -> &'static [(&'static str, &'static str)] {
    match bias {
        "bot_routing_age" => &[
            ("service", "handled_by"),
            ("service", "first_response_hours"),
            ("service", "first_response_vs_channel"),
            ("service", "resolution_hours"),
            ("service", "resolution_vs_channel"),
        ],
        "discount_region" => &[("offers", "discount_pct")],
        "language_sentiment_instrument" => &[
            ("sentiment_instrument", "unscored"),
            ("sentiment_instrument", "sentiment_at_same_rating"),
        ],
        _ => &[],
    }
}

/// Whether a concern is explained by a planted bias: its decision and
/// outcome are the bias's, its dimension includes the bias's attribute, and
/// the group or the reference includes a planted group.
fn is_planted(row: &MartRow, truth: &attune::generate::GroundTruth) -> bool {
    truth.biases.iter().any(|b| {
        let attribute = b.attribute.split_whitespace().next().unwrap_or_default();
        let groups: Vec<&str> = b.group.split(',').map(str::trim).collect();
        let parts = |g: &Option<String>| -> Vec<String> {
            g.as_deref()
                .map(|g| g.split(" & ").map(String::from).collect())
                .unwrap_or_default()
        };
        let dims: Vec<&str> = row.dimension.split(" & ").collect();
        let Some(pos) = dims.iter().position(|d| *d == attribute) else {
            return false;
        };
        let hit = |g: &Option<String>| {
            parts(g)
                .get(pos)
                .is_some_and(|v| groups.contains(&v.as_str()))
        };
        planted_outcomes(&b.id).contains(&(row.decision.as_str(), row.outcome.as_str()))
            && (hit(&row.group) || hit(&row.reference))
    })
}

/// Whether a concern about an outcome a planted bias affects, in a
/// dimension without the bias's attribute, comes from composition: the
/// group and its reference differ in how many of their rows belong to the
/// planted group (a region with more ticket writers aged 65+ really is
/// sent to the bot more often). Compared like the audit compares: a share
/// ratio outside 0.8–1.25.
async fn is_composition(
    root: &Path,
    date: NaiveDate,
    row: &MartRow,
    truth: &attune::generate::GroundTruth,
) -> bool {
    let table = match row.decision.as_str() {
        "service" => "tickets",
        "offers" => "offers",
        _ => return false,
    };
    let storage = attune::storage::Storage::open(root.to_str().expect("utf8")).expect("root");
    let (ctx, _) = attune::catalog::session_with_all(&storage)
        .await
        .expect("session");
    let share = |group: &str, attribute: &str, planted: &[&str]| {
        let dims: Vec<&str> = row.dimension.split(" & ").collect();
        let filter: Vec<String> = dims
            .iter()
            .zip(group.split(" & "))
            .map(|(d, v)| format!("a.{d} = '{v}'"))
            .collect();
        let planted: Vec<String> = planted.iter().map(|g| format!("'{g}'")).collect();
        format!(
            "SELECT avg(CASE WHEN a.{attribute} IN ({}) THEN 1.0 ELSE 0.0 END) AS share \
             FROM (SELECT DISTINCT customer_id, {table}_key FROM (SELECT customer_id, {key} AS {table}_key FROM {table})) AS t \
             JOIN customer_attributes AS a ON a.customer_id = t.customer_id \
             WHERE a.dt = DATE '{date}' AND {}",
            planted.join(", "),
            filter.join(" AND "),
            key = if table == "tickets" {
                "ticket_id"
            } else {
                "offer_id"
            },
        )
    };
    for b in &truth.biases {
        let attribute = b.attribute.split_whitespace().next().unwrap_or_default();
        if !planted_outcomes(&b.id).contains(&(row.decision.as_str(), row.outcome.as_str()))
            || row.dimension.split(" & ").any(|d| d == attribute)
        {
            continue;
        }
        let planted: Vec<&str> = b.group.split(',').map(str::trim).collect();
        let (Some(g), Some(r)) = (&row.group, &row.reference) else {
            continue;
        };
        let mut shares = Vec::new();
        for group in [g, r] {
            let batches = ctx
                .sql(&share(group, attribute, &planted))
                .await
                .expect("plan")
                .collect()
                .await
                .expect("run");
            let col = batches[0]
                .column(0)
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("f64")
                .clone();
            shares.push(col.value(0));
        }
        let ratio = shares[0] / shares[1];
        if !(0.8..=1.25).contains(&ratio) {
            eprintln!(
                "composition: {} {} vs {}: {attribute} in {:?} is {:.0}% against {:.0}% of rows",
                row.dimension,
                g,
                r,
                planted,
                shares[0] * 100.0,
                shares[1] * 100.0
            );
            return true;
        }
    }
    false
}

fn truth(root: &Path) -> attune::generate::GroundTruth {
    serde_json::from_slice(&std::fs::read(root.join("ground_truth.json")).expect("ground truth"))
        .expect("valid")
}

/// Checks an audited demo business: the planted biases are concerns with
/// readable sentences, nothing unplanted is a concern, and suppressed rows
/// carry no numbers. Returns the concerns.
async fn check_demo_audit(root: &Path, date: NaiveDate) -> Vec<MartRow> {
    let rows = read_mart(root, date);
    let truth = truth(root);
    let concern = |decision: &str, dim: &str, group: &str, outcome: &str, metric: &str| {
        rows.iter().find(|r| {
            r.decision == decision
                && r.dimension == dim
                && r.group.as_deref() == Some(group)
                && r.outcome == outcome
                && r.metric == metric
        })
    };
    for (decision, dim, group, outcome, metric, words) in [
        (
            "service",
            "age_band",
            "65+",
            "handled_by",
            "share_bot",
            "sent to the chat bot",
        ),
        (
            "service",
            "age_band",
            "65+",
            "first_response_vs_channel",
            "median",
            "channel-adjusted first-response time",
        ),
        (
            "offers",
            "region",
            "east",
            "discount_pct",
            "mean",
            "discount",
        ),
        (
            "offers",
            "region",
            "east",
            "discount_pct",
            "median",
            "discount",
        ),
    ] {
        let r = concern(decision, dim, group, outcome, metric)
            .unwrap_or_else(|| panic!("no row {decision}/{dim}/{group}/{outcome}/{metric}"));
        assert_eq!(r.verdict.as_deref(), Some("concern"), "{r:?}");
        assert!(
            r.explanation.contains(words) && r.explanation.contains('×'),
            "{}",
            r.explanation
        );
        eprintln!("planted: {}", r.explanation);
    }
    let bot = concern("service", "age_band", "65+", "handled_by", "share_bot").expect("row");
    let ratio = bot.ratio.expect("ratio");
    assert!(
        (1.6..3.2).contains(&ratio),
        "planted 0.60 / 0.25 = 2.4, got {ratio}"
    );
    let wait = concern(
        "service",
        "age_band",
        "65+",
        "first_response_vs_channel",
        "median",
    )
    .expect("row");
    let ratio = wait.ratio.expect("ratio");
    assert!(
        (1.5..2.7).contains(&ratio),
        "planted 2× the wait in every channel, got {ratio}"
    );
    let discount = concern("offers", "region", "east", "discount_pct", "mean").expect("row");
    let ratio = discount.ratio.expect("ratio");
    assert!(
        (0.45..0.65).contains(&ratio),
        "planted 8 / 15 = 0.53, got {ratio}"
    );
    let concerns: Vec<MartRow> = rows
        .iter()
        .filter(|r| r.verdict.as_deref() == Some("concern"))
        .cloned()
        .collect();
    let mut unplanted = Vec::new();
    for r in concerns.iter().filter(|r| !is_planted(r, &truth)) {
        if !is_composition(root, date, r, &truth).await {
            unplanted.push(r);
        }
    }
    assert!(unplanted.is_empty(), "unplanted concerns: {unplanted:#?}");
    for r in rows.iter().filter(|r| r.suppressed) {
        assert!(
            r.value.is_none() && r.n.is_none() && r.verdict.is_none(),
            "{r:?}"
        );
    }
    for r in &rows {
        assert!(
            r.suppressed || r.group.is_none() || r.n.is_some_and(|n| n > 0),
            "{r:?}"
        );
        if r.verdict.is_some() {
            assert!(
                r.reference.is_some() && r.group.is_some(),
                "a verdict compares two groups: {r:?}"
            );
        }
    }
    concerns
}

/// The nightly job on the shared demo business (seed 42): the planted bot
/// routing of customers aged 65+ and the smaller discounts of region east
/// are concerns, nothing else is, and absent marts are warnings.
#[tokio::test]
async fn nightly_finds_the_planted_biases_and_nothing_else() {
    let (ctx, last) = common::demo_ctx();
    let o = attune::fairness::run(&ctx, last)
        .await
        .expect("fairness job");
    let decisions: Vec<&str> = o.decisions.iter().map(|d| d.decision.as_str()).collect();
    assert_eq!(decisions, vec!["service", "offers", "offer_reach"]);
    for absent in [
        "churn_evaluation",
        "customer_value",
        "feedback_scored",
        "segments",
    ] {
        assert!(
            o.warnings.iter().any(|w| w.contains(absent)),
            "{absent}: {:?}",
            o.warnings
        );
    }
    assert!(o.concerns >= 4 && o.concerns == o.concern_explanations.len());
    assert!(o.suppressed > 0, "small intersections are suppressed");
    assert_eq!(
        o.rows_out as usize,
        read_mart(common::demo_lake().0, last).len()
    );
    let concerns = check_demo_audit(common::demo_lake().0, last).await;
    eprintln!(
        "{} concerns, {} reviews, {} tests",
        concerns.len(),
        o.reviews,
        o.tests
    );
    // The gate: only when asked.
    assert!(attune::fairness::gate(o.concerns, o.reviews, ctx.cfg.fairness.fail_on).is_ok());
    assert!(
        attune::fairness::gate(
            o.concerns,
            o.reviews,
            attune::config::FairnessFailOn::Concern
        )
        .is_err()
    );
}

/// `attune fairness --date D` on the demo business, and its exit code 3
/// under `fail_on = "concern"`.
#[test]
fn the_fairness_command_gates_on_concerns() {
    let (root, last) = common::demo_lake();
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |config: &str| {
        let cfg = dir.path().join("attune.toml");
        std::fs::write(&cfg, config).expect("config");
        common::attune()
            .args([
                "--config",
                cfg.to_str().expect("utf8"),
                "--root",
                root.to_str().expect("utf8"),
            ])
            .args(["fairness", "--date", &last.to_string()])
            .output()
            .expect("runs")
    };
    let ok = run("");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        stdout.contains("concern: Customers aged 65+ are sent to the chat bot"),
        "{stdout}"
    );
    let gated = run("[fairness]\nfail_on = \"concern\"\n");
    assert_eq!(
        gated.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&gated.stderr)
    );
    assert!(String::from_utf8_lossy(&gated.stderr).contains("audit gate"));
}

/// Writes a mart partition from columns.
fn write_mart(root: &Path, table: &str, date: NaiveDate, columns: Vec<(&str, ArrayRef)>) {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .expect("batch");
    let dir = root.join(format!("marts/{table}/dt={date}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = std::fs::File::create(dir.join("part-0.parquet")).expect("create");
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

/// The optional inputs, when present, are audited: the churn model (with
/// a planted lower true positive rate for one region), the at-risk flags,
/// the segments, and the sentiment scorer (with es messages read 0.25 more
/// negative at the same rating). Built by hand in a fresh data root.
#[tokio::test]
async fn optional_marts_are_audited_when_present() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let date = NaiveDate::from_ymd_opt(2025, 6, 30).expect("date");
    let n = 1200usize;
    let ids: Vec<String> = (0..n).map(|i| format!("c{i:05}")).collect();
    // A fixed pseudo-random number in [0, 1) per (i, salt) (splitmix64), so
    // the planted patterns do not line up with the groups by arithmetic.
    let unit = |i: usize, salt: u64| {
        let mut z = (i as u64)
            .wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64
    };
    let pick = |i: usize, salt: u64, options: &[&'static str]| {
        options[(unit(i, salt) * options.len() as f64) as usize % options.len()]
    };
    let region = |i: usize| pick(i, 1, &["north", "north", "south", "south", "east"]);
    let language = |i: usize| pick(i, 2, &["en", "en", "es"]);
    let strings = |f: &dyn Fn(usize) -> String| -> ArrayRef {
        Arc::new(StringArray::from((0..n).map(f).collect::<Vec<_>>()))
    };
    write_mart(
        root,
        "customer_attributes",
        date,
        vec![
            ("customer_id", strings(&|i| ids[i].clone())),
            (
                "age_band",
                strings(&|i| pick(i, 3, &["25-34", "45-54"]).to_string()),
            ),
            (
                "gender",
                strings(&|i| pick(i, 4, &["female", "male"]).to_string()),
            ),
            ("language", strings(&|i| language(i).to_string())),
            ("region", strings(&|i| region(i).to_string())),
            ("postal_prefix", strings(&|_| "10".to_string())),
        ],
    );
    write_mart(
        root,
        "segments",
        date,
        vec![
            ("customer_id", strings(&|i| ids[i].clone())),
            (
                "segment",
                strings(&|i| pick(i, 5, &["regulars", "occasional"]).to_string()),
            ),
        ],
    );
    // Half the customers are held out; 40% churned; the model catches 80%
    // of churners except in region east, where it catches 30%.
    let held: Vec<usize> = (0..n).filter(|&i| unit(i, 6) < 0.5).collect();
    let churned = |i: usize| unit(i, 7) < 0.4;
    let flagged = |i: usize| {
        let u = unit(i, 8);
        if churned(i) {
            u < if region(i) == "east" { 0.3 } else { 0.8 }
        } else {
            u < 0.1
        }
    };
    write_mart(
        root,
        "churn_evaluation",
        date,
        vec![
            (
                "customer_id",
                Arc::new(StringArray::from(
                    held.iter().map(|&i| ids[i].clone()).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            (
                "churn_probability",
                Arc::new(Float64Array::from(
                    held.iter()
                        .map(|&i| if flagged(i) { 0.7 } else { 0.2 })
                        .collect::<Vec<_>>(),
                )),
            ),
            (
                "at_risk",
                Arc::new(BooleanArray::from(
                    held.iter().map(|&i| flagged(i)).collect::<Vec<_>>(),
                )),
            ),
            (
                "churned",
                Arc::new(BooleanArray::from(
                    held.iter().map(|&i| churned(i)).collect::<Vec<_>>(),
                )),
            ),
        ],
    );
    write_mart(
        root,
        "customer_value",
        date,
        vec![
            ("customer_id", strings(&|i| ids[i].clone())),
            (
                "segment",
                strings(&|_| "ignored: marts/segments wins".to_string()),
            ),
            (
                "at_risk",
                Arc::new(BooleanArray::from((0..n).map(flagged).collect::<Vec<_>>())),
            ),
        ],
    );
    // Three NPS messages per customer; sentiment follows the rating, but
    // Spanish writers' words score 0.25 lower for the same rating, and 10%
    // of their messages are left unscored.
    let m = n * 3;
    let cust = |k: usize| k / 3;
    let rating = |k: usize| (unit(k, 9) * 11.0).floor();
    let scored = |k: usize| !(language(cust(k)) == "es" && unit(k, 10) < 0.1);
    let sentiment = |k: usize| {
        let base = (rating(k) - 5.0) / 6.0 + (unit(k, 11) - 0.5) / 5.0;
        if language(cust(k)) == "es" {
            base - 0.25
        } else {
            base
        }
    };
    let ts = chrono::NaiveDate::from_ymd_opt(2025, 6, 1)
        .expect("d")
        .and_hms_opt(12, 0, 0)
        .expect("t")
        .and_utc()
        .timestamp_micros();
    write_mart(
        root,
        "feedback_scored",
        date,
        vec![
            (
                "source",
                Arc::new(StringArray::from(vec!["survey"; m])) as ArrayRef,
            ),
            (
                "customer_id",
                Arc::new(StringArray::from(
                    (0..m).map(|k| ids[cust(k)].clone()).collect::<Vec<_>>(),
                )),
            ),
            (
                "at",
                Arc::new(
                    datafusion::arrow::array::TimestampMicrosecondArray::from(vec![ts; m])
                        .with_timezone("UTC"),
                ),
            ),
            (
                "scored",
                Arc::new(BooleanArray::from((0..m).map(scored).collect::<Vec<_>>())),
            ),
            (
                "sentiment",
                Arc::new(Float64Array::from(
                    (0..m)
                        .map(|k| scored(k).then(|| sentiment(k)))
                        .collect::<Vec<_>>(),
                )),
            ),
            (
                "rating",
                Arc::new(Float64Array::from((0..m).map(rating).collect::<Vec<_>>())),
            ),
            ("rating_scale", Arc::new(StringArray::from(vec!["nps"; m]))),
        ],
    );
    let cfg = ValidConfig {
        root: root.to_string_lossy().into_owned(),
        ..ValidConfig::default()
    };
    let ctx = JobContext::open(cfg, KeyMode::NotNeeded).expect("context");
    let probe = vec![
        attune::fairness::instruments::ProbeGap {
            language: "en".into(),
            kind: "age".into(),
            word: "my grandmother".into(),
            reference: "my friend".into(),
            templates: 24,
            mean_score: 0.21,
            gap: -0.09,
        },
        attune::fairness::instruments::ProbeGap {
            language: "es".into(),
            kind: "name".into(),
            word: "Lucía".into(),
            reference: "Emily".into(),
            templates: 24,
            mean_score: 0.30,
            gap: 0.0,
        },
    ];
    let o = attune::fairness::run_with_probe(&ctx, date, Some(probe))
        .await
        .expect("audit");
    let decisions: Vec<&str> = o.decisions.iter().map(|d| d.decision.as_str()).collect();
    assert_eq!(
        decisions,
        vec!["churn_model", "churn_flags", "sentiment_instrument"]
    );
    assert!(
        o.decisions
            .iter()
            .all(|d| d.dimensions.contains(&"segment".to_string()))
    );
    assert!(
        o.warnings.iter().any(|w| w.contains("lake/tickets")),
        "{:?}",
        o.warnings
    );
    let rows = read_mart(root, date);
    let get = |decision: &str, dim: &str, group: &str, outcome: &str, metric: &str| {
        rows.iter()
            .find(|r| {
                r.decision == decision
                    && r.dimension == dim
                    && r.group.as_deref() == Some(group)
                    && r.outcome == outcome
                    && r.metric == metric
            })
            .unwrap_or_else(|| panic!("no row {decision}/{dim}/{group}/{outcome}/{metric}"))
    };
    let tpr = get(
        "churn_model",
        "region",
        "east",
        "at_risk",
        "true_positive_rate",
    );
    assert_eq!(tpr.verdict.as_deref(), Some("concern"), "{tpr:?}");
    assert!(
        tpr.explanation.contains("who churned are flagged at risk"),
        "{}",
        tpr.explanation
    );
    let fpr = get(
        "churn_model",
        "region",
        "south",
        "at_risk",
        "false_positive_rate",
    );
    assert_ne!(fpr.verdict.as_deref(), Some("concern"), "{fpr:?}");
    assert!(rows.iter().any(|r| r.decision == "churn_model"
        && r.metric == "equal_opportunity_difference"
        && r.dimension == "region"));
    let gap = get(
        "sentiment_instrument",
        "language",
        "es",
        "sentiment_at_same_rating",
        "mean",
    );
    assert_eq!(gap.verdict.as_deref(), Some("concern"), "{gap:?}");
    assert!(
        gap.explanation.contains("who write in Spanish"),
        "{}",
        gap.explanation
    );
    let unscored = get("sentiment_instrument", "language", "es", "unscored", "rate");
    assert_eq!(unscored.verdict.as_deref(), Some("concern"), "{unscored:?}");
    let seg = get("churn_flags", "segment", "regulars", "at_risk", "rate");
    assert!(!seg.suppressed && seg.n.is_some());
    let grandmother = get(
        "counterfactual_probe",
        "age_en",
        "my grandmother",
        "sentiment",
        "mean_score_gap",
    );
    assert_eq!(grandmother.verdict.as_deref(), Some("concern"));
    assert!(
        grandmother
            .explanation
            .contains("“my grandmother” instead of “my friend”"),
        "{}",
        grandmother.explanation
    );
    let name = get(
        "counterfactual_probe",
        "name_es",
        "Lucía",
        "sentiment",
        "mean_score_gap",
    );
    assert_eq!(name.verdict.as_deref(), Some("ok"));
    // Nothing about gender or age was planted.
    for r in rows
        .iter()
        .filter(|r| r.verdict.as_deref() == Some("concern") && r.decision != "counterfactual_probe")
    {
        assert!(
            r.dimension.contains("region") || r.dimension.contains("language"),
            "unplanted: {r:?}"
        );
    }
}

/// Other seeds of the demo business: the planted biases are found and no
/// unplanted concern appears. Slow (six businesses generated, ingested
/// and transformed): `cargo test --test it fairness::other_seeds -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn other_seeds_raise_no_false_alarms() {
    let mut total = 0;
    for seed in [1u64, 2, 3, 4, 5, 6] {
        let dir = tempfile::tempdir().expect("tempdir");
        let params = attune::generate::GenerateParams {
            out: dir.path().to_path_buf(),
            customers: 1500,
            days: 240,
            seed,
            ..attune::generate::GenerateParams::default()
        };
        attune::generate::generate(&params).expect("generate");
        let last = params.start + chrono::Duration::days(i64::from(params.days) - 1);
        let cfg = ValidConfig {
            root: dir.path().to_string_lossy().into_owned(),
            ..ValidConfig::default()
        };
        let mut ctx = JobContext::open(cfg, KeyMode::NotNeeded).expect("context");
        ctx.key = Some(attune::config::Key::new(common::KEY.as_bytes().to_vec()));
        let dates = attune::nightly::date_range(params.start, last).expect("dates");
        attune::nightly::run(
            &ctx,
            &attune::nightly::NightlyParams {
                dates,
                only: vec!["ingest".into(), "transform".into()],
                from_job: None,
                force: false,
            },
        )
        .await
        .expect("ingest + transform");
        let o = attune::fairness::run(&ctx, last).await.expect("audit");
        let concerns = check_demo_audit(dir.path(), last).await;
        eprintln!(
            "seed {seed}: {} concerns (all planted), {} reviews, {} tests",
            concerns.len(),
            o.reviews,
            o.tests
        );
        total += concerns.len();
    }
    assert!(total > 0);
}

/// Decision tables with the shapes and sizes of the generated business at
/// `customers` customers over two years (about 1.9 tickets, 1.9 offers and
/// 2 rated messages per customer; a 30% churn hold-out), with random groups
/// in the generator's proportions.
fn synthetic_tables(customers: usize, seed: u64) -> Vec<DecisionTable> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    fn pick<R: Rng>(rng: &mut R, weights: &[f64]) -> usize {
        let mut u: f64 = rng.random::<f64>() * weights.iter().sum::<f64>();
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                return i;
            }
            u -= w;
        }
        weights.len() - 1
    }
    let attrs: [(&str, Vec<&str>, Vec<f64>); 5] = [
        (
            "age_band",
            vec!["18-24", "25-34", "35-44", "45-54", "55-64", "65+"],
            vec![0.12, 0.22, 0.2, 0.17, 0.14, 0.15],
        ),
        (
            "gender",
            vec!["female", "male", "non_binary", "undisclosed"],
            vec![0.49, 0.46, 0.02, 0.03],
        ),
        ("language", vec!["en", "es", "de"], vec![0.75, 0.15, 0.1]),
        (
            "region",
            vec!["north", "south", "east", "west", "central"],
            vec![0.22, 0.2, 0.18, 0.2, 0.2],
        ),
        (
            "segment",
            vec!["regulars", "occasional", "lapsing", "new", "big_baskets"],
            vec![0.2, 0.3, 0.2, 0.2, 0.1],
        ),
    ];
    let people: Vec<[usize; 5]> = (0..customers)
        .map(|_| std::array::from_fn(|a| pick(&mut rng, &attrs[a].2)))
        .collect();
    let table = |name: &str, rows: Vec<u32>| -> DecisionTable {
        let groups = attrs
            .iter()
            .enumerate()
            .map(|(a, (col, labels, _))| {
                let values: Vec<Option<&str>> = rows
                    .iter()
                    .map(|&c| Some(labels[people[c as usize][a]]))
                    .collect();
                (col.to_string(), Codes::encode(&values))
            })
            .collect();
        DecisionTable {
            name: name.into(),
            rows: rows.len(),
            subjects: Some(rows),
            groups,
            outcomes: Vec::new(),
            classifier: None,
        }
    };
    let per_customer = |rng: &mut rand_xoshiro::Xoshiro256PlusPlus, mean: f64| -> Vec<u32> {
        let mut rows = Vec::new();
        for c in 0..customers as u32 {
            let k = (mean * 2.0 * rng.random::<f64>()).round() as usize;
            rows.extend(std::iter::repeat_n(c, k));
        }
        rows
    };
    let tickets = per_customer(&mut rng, 1.9);
    let mut service = table("service", tickets);
    let n = service.rows;
    let handled: Vec<Option<&str>> = (0..n)
        .map(|_| Some(["human", "bot", "bot_then_human"][pick(&mut rng, &[0.6, 0.28, 0.12])]))
        .collect();
    let hours = |rng: &mut rand_xoshiro::Xoshiro256PlusPlus, scale: f64| -> Vec<f64> {
        (0..n)
            .map(|_| {
                if rng.random_bool(0.95) {
                    scale * (rng.random::<f64>() * 3.0).exp()
                } else {
                    f64::NAN
                }
            })
            .collect()
    };
    let first = hours(&mut rng, 1.0);
    let resolution = hours(&mut rng, 8.0);
    let bin = |rng: &mut rand_xoshiro::Xoshiro256PlusPlus, p: f64, rows: usize| -> Vec<u8> {
        (0..rows).map(|_| u8::from(rng.random_bool(p))).collect()
    };
    let reopened = bin(&mut rng, 0.06, n);
    let followed: Vec<u8> = (0..n)
        .map(|_| {
            if rng.random_bool(0.12) {
                u8::from(rng.random_bool(0.6))
            } else {
                2
            }
        })
        .collect();
    service.outcomes = vec![
        Outcome::categorical(
            "handled_by",
            Codes::encode(&handled),
            "are handled by {category}",
        ),
        Outcome::continuous(
            "first_response_hours",
            first,
            vec![Stat::Quantile(0.5), Stat::Quantile(0.9)],
            Comparison::Ratio,
            Direction::HigherIsWorse,
            "first-response time",
            " hours",
        ),
        Outcome::continuous(
            "resolution_hours",
            resolution,
            vec![Stat::Quantile(0.5), Stat::Quantile(0.9)],
            Comparison::Ratio,
            Direction::HigherIsWorse,
            "resolution time",
            " hours",
        ),
        Outcome::binary(
            "reopened",
            reopened,
            Direction::HigherIsWorse,
            "have tickets reopened",
        ),
        Outcome::binary(
            "followed_up_48h",
            followed,
            Direction::HigherIsBetter,
            "get a follow-up",
        ),
    ];
    let offer_rows = per_customer(&mut rng, 1.9);
    let mut offers = table("offers", offer_rows);
    let n = offers.rows;
    let types: Vec<Option<&str>> = (0..n)
        .map(|_| Some(["discount", "free_item", "bundle"][pick(&mut rng, &[0.6, 0.25, 0.15])]))
        .collect();
    let by: Vec<Option<&str>> = (0..n)
        .map(|_| Some(["rule", "model", "human"][pick(&mut rng, &[0.5, 0.35, 0.15])]))
        .collect();
    let pct: Vec<f64> = (0..n)
        .map(|_| ((15.0 + 4.0 * (rng.random::<f64>() - 0.5) * 3.4) * 10.0).round() / 10.0)
        .collect();
    offers.outcomes = vec![
        Outcome::categorical("offer_type", Codes::encode(&types), "get {category}"),
        Outcome::continuous(
            "discount_pct",
            pct,
            vec![Stat::Mean, Stat::Quantile(0.5)],
            Comparison::Ratio,
            Direction::HigherIsBetter,
            "discount",
            "%",
        ),
        Outcome::categorical("decided_by", Codes::encode(&by), "decided by {category}"),
    ];
    let all: Vec<u32> = (0..customers as u32).collect();
    let mut reach = table("offer_reach", all.clone());
    reach.outcomes = [
        "received_any_offer",
        "received_discount",
        "received_free_item",
        "received_bundle",
    ]
    .iter()
    .map(|o| {
        Outcome::binary(
            o,
            bin(&mut rng, 0.5, customers),
            Direction::HigherIsBetter,
            "receive offers",
        )
    })
    .collect();
    let mut flags = table("churn_flags", all);
    flags.outcomes = vec![Outcome::binary(
        "at_risk",
        bin(&mut rng, 0.3, customers),
        Direction::Neutral,
        "are flagged",
    )];
    let held: Vec<u32> = (0..customers as u32)
        .filter(|_| rng.random_bool(0.3))
        .collect();
    let mut model = table("churn_model", held);
    let n = model.rows;
    let label = bin(&mut rng, 0.35, n);
    let score: Vec<f64> = label
        .iter()
        .map(|&l| (0.25 + 0.3 * f64::from(l) + 0.3 * (rng.random::<f64>() - 0.5)).clamp(0.0, 1.0))
        .collect();
    let prediction = score.iter().map(|&s| u8::from(s >= 0.5)).collect();
    model.classifier = Some(attune::fairness::table::Classifier::churn(
        label,
        prediction,
        Some(score),
    ));
    let messages = per_customer(&mut rng, 2.0);
    let n = messages.len();
    let mut feedback = table("sentiment_instrument", messages);
    let scored: Vec<u8> = bin(&mut rng, 0.9, n);
    let sentiment: Vec<f64> = (0..n)
        .map(|_| (rng.random::<f64>() * 2000.0).round() / 1000.0 - 1.0)
        .collect();
    let stratum: Vec<Option<String>> = (0..n)
        .map(|_| Some(format!("survey/nps/{}", rng.random_range(0..11))))
        .collect();
    feedback.outcomes =
        attune::fairness::instruments::sentiment_outcomes(&scored, &sentiment, &stratum);
    vec![service, offers, reach, flags, model, feedback]
}

/// The tables are prepared (sorted by subject, grouped) on several threads
/// and their units audited on several: the report is the one a single
/// thread makes, warnings in table order included.
#[test]
fn an_audit_of_six_tables_is_the_same_on_one_thread_and_on_four() {
    let tables = synthetic_tables(3000, 11);
    let at = |threads: usize| {
        let params = AuditParams {
            resamples: 200,
            threads,
            ..AuditParams::default()
        };
        audit(&tables, &params).expect("audit")
    };
    let one = at(1);
    assert!(one.tests > 0 && !one.findings.is_empty());
    for threads in [2, 4] {
        assert_eq!(at(threads), one, "{threads} threads");
    }
}

/// The nightly audits each table as soon as its query ends
/// (`audit_table`) and corrects the parts together (`combine_tables`): the
/// report is the one `audit` makes of all the tables at once, in whichever
/// order the parts were computed.
#[test]
fn tables_audited_one_at_a_time_and_combined_are_the_audit_of_all() {
    let tables = synthetic_tables(3000, 23);
    let params = AuditParams {
        resamples: 200,
        threads: 2,
        ..AuditParams::default()
    };
    let all = audit(&tables, &params).expect("audit");
    assert!(all.tests > 0 && !all.findings.is_empty());
    // the last table first, as a query that ends early would be
    let mut parts: Vec<(usize, attune::fairness::audit::TableAudit)> = tables
        .iter()
        .enumerate()
        .rev()
        .map(|(i, t)| {
            (
                i,
                attune::fairness::audit::audit_table(t, &params).expect("part"),
            )
        })
        .collect();
    parts.sort_by_key(|(i, _)| *i);
    let combined = attune::fairness::audit::combine_tables(
        parts.into_iter().map(|(_, p)| p).collect(),
        &params,
    );
    assert_eq!(combined, all);
}

/// Speed at the scale of a million customers (synthetic decision tables
/// with the sizes the generator produces at 1M customers and two years),
/// bootstrap included:
/// `cargo test --release --test it fairness::speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn speed_of_a_million_customer_audit() {
    let customers: usize = std::env::var("ATTUNE_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let built = std::time::Instant::now();
    let tables = synthetic_tables(customers, 7);
    let rows: usize = tables.iter().map(|t| t.rows).sum();
    eprintln!(
        "built {} tables, {rows} rows, in {:.1}s",
        tables.len(),
        built.elapsed().as_secs_f64()
    );
    let params = AuditParams::default();
    let started = std::time::Instant::now();
    let r = audit(&tables, &params).expect("audit");
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "audited {customers} customers: {rows} decision rows in {secs:.2}s ({} findings, {} tests, {} resamples, {} threads)",
        r.findings.len(),
        r.tests,
        params.resamples,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    assert!(r.tests > 0);
}

/// Several rows per person (tickets of one customer are alike) must not
/// pass for independent evidence: under no difference between two groups,
/// tests on clustered rows reject at about the nominal 5% with people as
/// subjects, and far more often when every row is taken as its own person.
#[test]
fn repeated_rows_per_person_do_not_inflate_significance() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(99);
    let (mut with, mut without, mut runs) = (0usize, 0usize, 0usize);
    let mut params = AuditParams {
        resamples: 100,
        intersections: Intersections::None,
        ..AuditParams::default()
    };
    params.threads = 1;
    for _ in 0..300 {
        // Two groups of 40 people; each has 1–12 rows, a personal rate of
        // being flagged and a personal level of the continuous outcome.
        let (mut subjects, mut groups, mut flag, mut level) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for person in 0..80u32 {
            let rate: f64 = (0.35 + 0.3 * (rng.random::<f64>() - 0.5) * 2.0).clamp(0.0, 1.0);
            let own: f64 = 3.0 * (rng.random::<f64>() - 0.5);
            for _ in 0..rng.random_range(1..=12) {
                subjects.push(person);
                groups.push(Some(if person < 40 { "a" } else { "b" }));
                flag.push(u8::from(rng.random_bool(rate)));
                level.push(own + rng.random::<f64>());
            }
        }
        let table = DecisionTable {
            name: "sim".into(),
            rows: subjects.len(),
            subjects: Some(subjects),
            groups: vec![("g".into(), Codes::encode(&groups))],
            outcomes: vec![
                Outcome::binary("flag", flag, Direction::Neutral, "are flagged"),
                Outcome::continuous(
                    "level",
                    level,
                    vec![Stat::Quantile(0.5)],
                    Comparison::Ratio,
                    Direction::Neutral,
                    "level",
                    "",
                ),
            ],
            classifier: None,
        };
        let naive = DecisionTable {
            subjects: None,
            ..table.clone()
        };
        let rejections = |t: &DecisionTable| {
            let r = audit(std::slice::from_ref(t), &params).expect("audit");
            r.findings
                .iter()
                .filter(|f| f.p_value.is_some_and(|p| p < 0.05))
                .count()
        };
        with += rejections(&table);
        without += rejections(&naive);
        runs += 2; // one rate test and one Mann-Whitney test per run
    }
    let (with, without) = (with as f64 / runs as f64, without as f64 / runs as f64);
    eprintln!(
        "rejections at 5% under no difference: {with:.3} with people as subjects, {without:.3} without"
    );
    assert!((0.02..=0.08).contains(&with), "clustered: {with}");
    assert!(without > 0.15, "rows as independent: {without}");
}
