//! The value job: published CDNOW estimates, parameter recovery on simulated
//! BG/NBD + Gamma-Gamma data, convergence reporting, and the job on the
//! shared demo lake (churn model quality, the planted loyalty uplift in
//! churn rates by arm, documented marts, determinism).

// Reference values are pasted with every digit their source printed.
#![allow(clippy::excessive_precision)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use attune::value::bgnbd::{self, BgNbdData, BgNbdParams};
use attune::value::fit::{FitParams, run as fit_run};
use attune::value::gamma_gamma::{self, GammaGammaData, GammaGammaParams};
use attune::value::summary::TimeUnit;
use attune::value::{self, ValueOutcome};
use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use rand::{Rng, SeedableRng};
use rand_distr::{Beta, Distribution, Exp, Gamma};
use rand_xoshiro::Xoshiro256Plus;

use crate::common::{attune, copy_tree, demo_ctx, demo_lake, read_parquet};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/value/cdnow_sample.csv")
}

fn date(s: &str) -> NaiveDate {
    s.parse().expect("date")
}

fn cdnow_params(out: &Path, max_iterations: u64) -> FitParams {
    FitParams {
        transactions: fixture(),
        customer_column: "sample_id".into(),
        date_column: "date".into(),
        amount_column: "amount".into(),
        calibration_end: date("1997-09-30"),
        holdout_end: Some(date("1998-06-30")),
        time_unit: TimeUnit::Weeks,
        out: out.to_path_buf(),
        gross_margin: 0.6,
        annual_discount_rate: 0.1,
        max_iterations,
    }
}

/// Rounds to `digits` significant digits.
fn sig(v: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits - 1 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// The published estimates on the CDNOW sample (2,357 customers who first
/// bought in Q1 1997, 39-week calibration period, weeks):
/// BG/NBD r = 0.243, α = 4.414, a = 0.793, b = 2.426, LL = −9582.4 (Fader,
/// Hardie & Lee 2005, "Counting your customers the easy way", table/§5);
/// Gamma-Gamma p = 6.25, q = 3.74, γ = 15.44 on the 946 repeat customers
/// (Fader & Hardie 2013, "The Gamma-Gamma model of monetary value").
/// The calibration end that reproduces them is 1997-09-30 inclusive (T =
/// days from the first purchase to 1997-09-30, over 7): with 09-28, 09-29 or
/// 10-01, scipy's optimum moves off the published values (checked with the
/// script in tests/fixtures/value/README.md).
///
/// The holdout figures (1997-10-01 to 1998-06-30, 39 weeks) were computed
/// with scipy 1.17 at the same optimum with scipy.special.hyp2f1 and FHL
/// eq. 10: 1653.4087 repeat purchase days predicted in total, 1882 observed;
/// mean predicted / observed per calibration frequency listed below.
#[tokio::test]
async fn cdnow_reproduces_the_published_estimates() {
    let out = tempfile::tempdir().expect("tempdir");
    let o = fit_run(&cdnow_params(out.path(), 1000)).await.expect("fit");
    assert_eq!(o.customers, 2357);
    assert_eq!(o.rows_read, 6919);
    assert_eq!(o.rows_skipped, 0);
    let bg = &o.models.bg_nbd;
    assert!(bg.optimizer.converged, "{}", bg.optimizer.describe());
    let p = bg.params;
    assert_eq!(sig(p.r, 3), 0.243, "r = {}", p.r);
    assert_eq!(sig(p.alpha, 3), 4.41, "alpha = {}", p.alpha);
    assert_eq!(sig(p.a, 3), 0.793, "a = {}", p.a);
    assert_eq!(sig(p.b, 3), 2.43, "b = {}", p.b);
    // Published to four digits, and our optimum is scipy's to 1e-4.
    assert!(
        (p.alpha - 4.414).abs() < 5e-4 && (p.b - 2.426).abs() < 5e-4,
        "{p:?}"
    );
    assert!(
        (bg.log_likelihood - -9582.4).abs() < 0.05,
        "LL {}",
        bg.log_likelihood
    );
    let gg = o.models.gamma_gamma.as_ref().expect("Gamma-Gamma fitted");
    assert!(gg.optimizer.converged, "{}", gg.optimizer.describe());
    assert_eq!(gg.customers, 946);
    assert_eq!(sig(gg.params.p, 3), 6.25, "{:?}", gg.params);
    assert_eq!(sig(gg.params.q, 3), 3.74, "{:?}", gg.params);
    assert!((gg.params.gamma - 15.44).abs() < 0.005, "{:?}", gg.params);
    // scipy: the correlation of x and mean repeat value is 0.1139.
    let r = o.models.frequency_monetary_correlation.expect("computed");
    assert!((r - 0.11388791939125482).abs() < 1e-9, "{r}");

    assert_eq!(o.horizon_days, 273.0);
    let expected: [(&str, u64, f64, f64); 9] = [
        ("0", 1411, 0.22508733122674987, 0.23671155209071582),
        ("1", 439, 0.523131178765456, 0.6970387243735763),
        ("2", 214, 1.0441341177161545, 1.3925233644859814),
        ("3", 100, 1.5202794983989825, 1.56),
        ("4", 62, 2.1638657707985702, 2.532258064516129),
        ("5", 38, 2.65384584626154, 2.9473684210526314),
        ("6", 29, 3.5040422425092688, 3.8620689655172415),
        ("7+", 64, 6.1571903948437345, 6.359375),
        ("all", 2357, 1653.4086931203524 / 2357.0, 1882.0 / 2357.0),
    ];
    assert_eq!(o.holdout.len(), expected.len());
    for (row, (x, n, pred, actual)) in o.holdout.iter().zip(expected) {
        assert_eq!((row.x.as_str(), row.customers), (x, n));
        assert!(
            (row.predicted_mean - pred).abs() < 1e-4 * pred,
            "x={x}: {} vs {pred}",
            row.predicted_mean
        );
        assert!((row.actual_mean - actual).abs() < 1e-12, "x={x}");
    }
    let names: Vec<String> = o
        .files
        .iter()
        .map(|f| f.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "summary.csv",
            "parameters.json",
            "predictions.csv",
            "holdout.csv"
        ]
    );
    // Customer 0001's summary matches the published one (x = 2, t_x = 30.43, T = 38.86).
    let summary = std::fs::read_to_string(out.path().join("summary.csv")).expect("summary");
    let first: Vec<&str> = summary.lines().nth(1).expect("a row").split(',').collect();
    assert_eq!(first[0], "0001");
    assert_eq!(first[1], "2");
    assert_eq!(sig(first[2].parse().expect("t_x"), 4), 30.43);
    assert_eq!(sig(first[3].parse().expect("T"), 4), 38.86);
    let predictions = std::fs::read_to_string(out.path().join("predictions.csv")).expect("p");
    let first: Vec<&str> = predictions
        .lines()
        .nth(1)
        .expect("a row")
        .split(',')
        .collect();
    // scipy at the same optimum: P(alive) 0.72662, E[39 weeks] 1.22599.
    assert!((first[1].parse::<f64>().expect("p") - 0.7266203114863382).abs() < 1e-4);
    assert!((first[2].parse::<f64>().expect("e") - 1.2259944466485273).abs() < 1e-4);
}

#[test]
fn value_fit_command_writes_its_files_and_reports_parameters() {
    let out = tempfile::tempdir().expect("tempdir");
    let run = attune()
        .args(["value", "fit", "--transactions"])
        .arg(fixture())
        .args([
            "--customer-column",
            "sample_id",
            "--date-column",
            "date",
            "--amount-column",
            "amount",
            "--calibration-end",
            "1997-09-30",
            "--time-unit",
            "weeks",
            "--out",
        ])
        .arg(out.path())
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("r 0.2426") && stdout.contains("converged"),
        "{stdout}"
    );
    for f in ["summary.csv", "parameters.json", "predictions.csv"] {
        assert!(out.path().join(f).is_file(), "{f}");
    }
    assert!(
        !out.path().join("holdout.csv").exists(),
        "no holdout asked for"
    );
    let params: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("parameters.json")).expect("json"))
            .expect("valid json");
    assert_eq!(params["bg_nbd"]["optimizer"]["converged"], true);
    assert_eq!(params["time_unit"], "weeks");

    let bad = attune()
        .args(["value", "fit", "--transactions"])
        .arg(fixture())
        .args([
            "--customer-column",
            "client",
            "--date-column",
            "date",
            "--amount-column",
            "amount",
            "--calibration-end",
            "1997-09-30",
            "--out",
        ])
        .arg(out.path())
        .output()
        .expect("runs");
    assert_eq!(bad.status.code(), Some(5), "unknown column is bad input");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--customer-column \"client\""));
}

/// Rows without an amount are skipped and counted, not valued at 0: the
/// CDNOW sample with three such rows appended (one a new purchase day of a
/// repeat customer) gives exactly the fit of the sample itself.
#[tokio::test]
async fn purchases_without_an_amount_are_skipped_not_valued_at_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = std::fs::read_to_string(fixture()).expect("fixture");
    text.push_str("00004,0001,1997-02-03,1,\n00004,0001,1997-03-03,1,\n00099,0099,1997-01-05,1,\n");
    let with_gaps = dir.path().join("gaps.csv");
    std::fs::write(&with_gaps, text).expect("write");
    let base = fit_run(&cdnow_params(&dir.path().join("a"), 1000))
        .await
        .expect("fit");
    let gaps = fit_run(&FitParams {
        transactions: with_gaps,
        ..cdnow_params(&dir.path().join("b"), 1000)
    })
    .await
    .expect("fit");
    assert_eq!((gaps.rows_read, gaps.rows_skipped), (base.rows_read + 3, 3));
    assert_eq!(gaps.customers, base.customers);
    assert_eq!(gaps.models.bg_nbd.params, base.models.bg_nbd.params);
    assert_eq!(
        gaps.models.gamma_gamma.as_ref().map(|g| g.params),
        base.models.gamma_gamma.as_ref().map(|g| g.params)
    );
}

/// A fit stopped by a tiny iteration budget is reported as not converged,
/// with the optimizer's state in parameters.json, and writes no predictions.
#[tokio::test]
async fn a_fit_that_does_not_converge_is_reported_not_written() {
    let out = tempfile::tempdir().expect("tempdir");
    let err = fit_run(&cdnow_params(out.path(), 2))
        .await
        .expect_err("two iterations cannot converge");
    let msg = err.to_string();
    assert!(
        msg.contains("NOT converged") && msg.contains("iterations"),
        "{msg}"
    );
    let params: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.path().join("parameters.json")).expect("written"),
    )
    .expect("json");
    let opt = &params["bg_nbd"]["optimizer"];
    assert_eq!(opt["converged"], false);
    assert!(opt["iterations"].as_u64().expect("count") <= 2);
    assert!(opt["gradient_norm"].as_f64().expect("norm") > 1e-6);
    assert!(!out.path().join("predictions.csv").exists());
}

struct Simulated {
    x: Vec<u32>,
    t_x: Vec<f64>,
    t: Vec<f64>,
    /// Mean of the repeat transactions' values (0 when x = 0).
    m: Vec<f64>,
    holdout: Vec<u32>,
}

/// Simulates BG/NBD purchasing and Gamma-Gamma spend, in weeks: customer i
/// first buys at 0 and is observed for Tᵢ ~ U(20, 80) weeks, then a holdout
/// of `h` weeks; λ ~ Gamma(r, scale 1/α), p ~ Beta(a, b), dropout after each
/// repeat purchase; spend per transaction ~ Gamma(shape p, rate ν),
/// ν ~ Gamma(q, scale 1/γ).
fn simulate(n: usize, bg: BgNbdParams, gg: GammaGammaParams, h: f64, seed: u64) -> Simulated {
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    let lambda_d = Gamma::new(bg.r, 1.0 / bg.alpha).expect("gamma");
    let p_d = Beta::new(bg.a, bg.b).expect("beta");
    let nu_d = Gamma::new(gg.q, 1.0 / gg.gamma).expect("gamma");
    let mut s = Simulated {
        x: Vec::new(),
        t_x: Vec::new(),
        t: Vec::new(),
        m: Vec::new(),
        holdout: Vec::new(),
    };
    for _ in 0..n {
        let big_t: f64 = rng.random_range(20.0..80.0);
        let lambda: f64 = lambda_d.sample(&mut rng);
        let p: f64 = p_d.sample(&mut rng);
        let nu: f64 = nu_d.sample(&mut rng);
        let spend = Gamma::new(gg.p, 1.0 / nu).expect("gamma");
        let gap = Exp::new(lambda).expect("exp");
        let (mut t, mut x, mut t_x, mut total, mut hold) = (0.0, 0u32, 0.0, 0.0, 0u32);
        loop {
            t += gap.sample(&mut rng);
            if t > big_t + h {
                break;
            }
            if t <= big_t {
                x += 1;
                t_x = t;
                total += spend.sample(&mut rng);
            } else {
                hold += 1;
            }
            if rng.random_bool(p) {
                break;
            }
        }
        s.x.push(x);
        s.t_x.push(t_x);
        s.t.push(big_t);
        s.m.push(if x > 0 { total / f64::from(x) } else { 0.0 });
        s.holdout.push(hold);
    }
    s
}

/// Parameter recovery at n = 20,000: every estimate within three of its
/// standard errors (from the observed information) of the value simulated
/// from, and the standard errors small enough for that to mean something;
/// then the conditional expectation, summed over customers, predicts the
/// simulated holdout purchases. (Seed 2024 is the one first written; seeds
/// 1–5 were also checked by hand and land closer. scipy's optimizer on this
/// seed's Gamma-Gamma data finds the same optimum, q = 3.566.)
#[test]
fn parameters_are_recovered_from_simulated_data() {
    let truth = BgNbdParams {
        r: 0.5,
        alpha: 6.0,
        a: 0.7,
        b: 3.0,
    };
    let spend = GammaGammaParams {
        p: 6.25,
        q: 3.74,
        gamma: 15.44,
    };
    let h = 26.0;
    let s = simulate(20_000, truth, spend, h, 2024);
    let data = BgNbdData::new(&s.x, &s.t_x, &s.t).expect("valid");
    let fit = bgnbd::fit(&data, 1000);
    assert!(fit.optimizer.converged, "{}", fit.optimizer.describe());
    let se = fit.standard_errors.expect("positive definite");
    eprintln!(
        "recovery BG/NBD: {:?} SE {se:?}; {}",
        fit.params,
        fit.optimizer.describe()
    );
    let est = fit.params.named();
    for (k, (name, want)) in truth.named().iter().enumerate() {
        let got = est[k].1;
        assert!(
            (got - want).abs() < 3.0 * se[k],
            "{name}: {got} vs {want} (SE {})",
            se[k]
        );
        assert!(
            se[k] < 0.12 * want,
            "{name}: SE {} too large to test",
            se[k]
        );
    }
    assert!(
        (fit.params.r - truth.r).abs() < 0.1 * truth.r,
        "{:?}",
        fit.params
    );
    assert!(
        (fit.params.alpha - truth.alpha).abs() < 0.1 * truth.alpha,
        "{:?}",
        fit.params
    );

    let predicted: f64 = (0..s.x.len())
        .map(|i| {
            bgnbd::conditional_expected_purchases(&fit.params, s.x[i], s.t_x[i], s.t[i], h)
                .expect("finite")
        })
        .sum();
    let actual: u32 = s.holdout.iter().sum();
    let rel = (predicted - f64::from(actual)).abs() / f64::from(actual);
    eprintln!("recovery holdout: predicted {predicted:.1}, simulated {actual}");
    assert!(
        rel < 0.05,
        "holdout: predicted {predicted:.0}, simulated {actual}"
    );

    let (xs, ms): (Vec<u32>, Vec<f64>) =
        s.x.iter()
            .zip(&s.m)
            .filter(|(x, _)| **x > 0)
            .map(|(x, m)| (*x, *m))
            .unzip();
    let gg = gamma_gamma::fit(&GammaGammaData::new(&xs, &ms).expect("valid"), 1000);
    assert!(gg.optimizer.converged, "{}", gg.optimizer.describe());
    let se = gg.standard_errors.expect("positive definite");
    eprintln!("recovery Gamma-Gamma: {:?} SE {se:?}", gg.params);
    for (k, (name, want)) in spend.named().iter().enumerate() {
        let got = gg.params.named()[k].1;
        assert!(
            (got - want).abs() < 3.0 * se[k],
            "{name}: {got} vs {want} (SE {})",
            se[k]
        );
        assert!(se[k] < 0.2 * want, "{name}: SE {} too large to test", se[k]);
    }
}

/// The value job, run once on the shared demo lake.
fn job() -> &'static (ValueOutcome, NaiveDate) {
    static OUT: OnceLock<(ValueOutcome, NaiveDate)> = OnceLock::new();
    OUT.get_or_init(|| {
        std::thread::spawn(|| {
            let (ctx, last) = demo_ctx();
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            (
                rt.block_on(value::run(&ctx, last)).expect("value job"),
                last,
            )
        })
        .join()
        .expect("value job thread")
    })
}

fn mart(table: &str, date: NaiveDate) -> Vec<RecordBatch> {
    let (root, _) = demo_lake();
    read_parquet(
        &root
            .join("marts")
            .join(table)
            .join(format!("dt={date}"))
            .join("part-0.parquet"),
    )
}

fn strings(b: &RecordBatch, c: &str) -> Vec<Option<String>> {
    let a = b.column_by_name(c).unwrap_or_else(|| panic!("{c}"));
    let a = datafusion::arrow::compute::cast(a, &datafusion::arrow::datatypes::DataType::Utf8)
        .expect("text");
    let a = a.as_string::<i32>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
        .collect()
}

fn floats(b: &RecordBatch, c: &str) -> Vec<Option<f64>> {
    let a = b.column_by_name(c).unwrap_or_else(|| panic!("{c}"));
    let a = a.as_primitive::<Float64Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}

#[test]
fn demo_lake_churn_model_is_evaluated_on_held_out_customers() {
    let (o, last) = job();
    let c = o.churn.as_ref().expect("churn model fitted");
    let auc = c.roc_auc.expect("both outcomes");
    eprintln!(
        "demo lake churn model: AUC {auc:.3}, active-at-cutoff AUC {:?}, Brier {:?}, lift {:?}, base rate {:?}, {} held out",
        c.roc_auc_active_at_cutoff,
        c.brier_score,
        c.top_decile_lift,
        c.base_rate,
        c.holdout_customers
    );
    assert!(auc > 0.7, "AUC {auc}");
    assert!(c.roc_auc_active_at_cutoff.expect("both outcomes") > 0.55);
    // A useful model beats the base rate's Brier score p(1 − p).
    let base = c.base_rate.expect("customers held out");
    assert!(c.brier_score.expect("computed") < base * (1.0 - base));
    assert!(c.top_decile_lift.expect("churners") > 1.0);
    assert_eq!(c.cutoff, value::churn_cutoff(*last, 90));
    assert_eq!(
        c.cutoff.weekday(),
        chrono::Weekday::Mon,
        "the nights of a week share the cut-off"
    );
    assert!((*last - c.cutoff).num_days() >= 90 && (*last - c.cutoff).num_days() < 97);
    let held: usize = mart("churn_evaluation", *last)
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(held as u64, c.holdout_customers);
    let share = c.holdout_customers as f64 / (c.holdout_customers + c.training_customers) as f64;
    assert!((share - 0.3).abs() < 0.01, "{share}");
}

#[test]
fn demo_lake_customer_value_is_complete_and_consistent() {
    let (o, last) = job();
    let batches = mart("customer_value", *last);
    let doc = attune::mart::doc("customer_value").expect("documented");
    doc.check(&batches[0].schema())
        .expect("columns as documented");
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows as u64, o.customers_scored);
    assert!(
        o.clv.bg_nbd.optimizer.converged,
        "{}",
        o.clv.bg_nbd.optimizer.describe()
    );
    let mut ids = Vec::new();
    let mut risk = 0u64;
    for b in &batches {
        ids.extend(strings(b, "customer_id"));
        let x = b
            .column_by_name("x")
            .expect("x")
            .as_primitive::<Int64Type>();
        let p_alive = floats(b, "p_alive");
        let e90 = floats(b, "expected_purchases_90d");
        let e365 = floats(b, "expected_purchases_365d");
        let cltv = floats(b, "cltv_12m");
        let value = floats(b, "expected_order_value");
        let churn = floats(b, "churn_probability");
        let at_risk = b.column_by_name("at_risk").expect("at_risk").as_boolean();
        for i in 0..b.num_rows() {
            let (pa, e90, e365) = (
                p_alive[i].expect("p"),
                e90[i].expect("e90"),
                e365[i].expect("e365"),
            );
            assert!((0.0..=1.0).contains(&pa));
            if x.value(i) == 0 {
                assert_eq!(pa, 1.0, "P(alive) is 1 without repeat purchases");
            }
            assert!(e90 >= 0.0 && e365 >= e90, "{e90} {e365}");
            let (v, c) = (value[i].expect("value"), cltv[i].expect("cltv"));
            // Discounted CLTV is below the undiscounted 0.6 · value · E365.
            assert!(
                c > 0.0 && c <= 0.6 * v * e365 * (1.0 + 1e-9),
                "{c} {v} {e365}"
            );
            let p = churn[i].expect("every customer has today's features");
            assert_eq!(at_risk.value(i), p >= 0.5);
            risk += u64::from(at_risk.value(i));
        }
    }
    assert_eq!(risk, o.at_risk_customers);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "one row per customer, sorted");
    // BG/NBD on the bakery: λ ~ Gamma(0.9, scale 0.25) orders per day and
    // p ~ Beta(0.7, 14) are planted, on a seasonal clock, with a loyalty arm
    // lowering p and a third of the customers' history before the first
    // export unseen, so the fit lands near, not on, the planted process. It
    // counts purchase days, not orders: a customer buying at rate λ buys on
    // a share 1 − e^(−λ) of days, whose mean over the planted Gamma is
    // 1 − (1 + 0.25)^(−0.9) = 0.182.
    let p = o.clv.bg_nbd.params;
    eprintln!(
        "demo lake BG/NBD: {p:?}; Gamma-Gamma {:?}",
        o.clv.gamma_gamma.as_ref().map(|g| g.params)
    );
    let mean_rate = p.r / p.alpha;
    let planted = 1.0 - 1.25f64.powf(-0.9);
    assert!(
        (mean_rate - planted).abs() < 0.2 * planted,
        "mean purchase-day rate {mean_rate} vs {planted}"
    );
}

/// The generator randomized the loyalty initiative and planted a lower
/// dropout in the treatment arm; ground_truth.json records the realized
/// retention uplift (share with an order in the last 90 days, treatment
/// minus control). churn_rates, over every customer who had bought by the
/// cut-off 90 days before the last day, is its complement: the control
/// arm's churn rate minus the treatment arm's must equal it (up to refunded
/// orders, which ground truth counts and attune does not).
#[test]
fn demo_lake_churn_rates_show_the_planted_loyalty_uplift() {
    let (_, last) = job();
    let (root, _) = demo_lake();
    let truth: attune::generate::GroundTruth =
        serde_json::from_slice(&std::fs::read(root.join("ground_truth.json")).expect("truth"))
            .expect("json");
    let loyalty = truth
        .initiatives
        .iter()
        .find(|i| i.initiative_id == "I0001")
        .expect("loyalty initiative");
    let uplift = loyalty.realized["retention_uplift"];
    let batches = mart("churn_rates", *last);
    attune::mart::doc("churn_rates")
        .expect("documented")
        .check(&batches[0].schema())
        .expect("columns as documented");
    let mut rate = std::collections::BTreeMap::new();
    for b in &batches {
        let (pop, dim, group) = (
            strings(b, "population"),
            strings(b, "dimension"),
            strings(b, "group_value"),
        );
        let r = floats(b, "churn_rate");
        let n = b
            .column_by_name("customers")
            .expect("n")
            .as_primitive::<Int64Type>();
        let suppressed = b.column_by_name("suppressed").expect("s").as_boolean();
        for i in 0..b.num_rows() {
            assert_eq!(suppressed.value(i), r[i].is_none());
            if let Some(v) = r[i] {
                assert!(
                    n.value(i) >= 10,
                    "groups below min_group_size are suppressed"
                );
                rate.insert(
                    (
                        pop[i].clone().expect("p"),
                        dim[i].clone().expect("d"),
                        group[i].clone().expect("g"),
                    ),
                    v,
                );
            }
        }
    }
    let arm = |a: &str| {
        rate[&(
            "customers".to_string(),
            "initiative_arm".to_string(),
            format!("I0001 {a}"),
        )]
    };
    let measured = arm("control") - arm("treatment");
    eprintln!(
        "loyalty: churn control {:.4} treatment {:.4}; uplift measured {measured:.4}, planted {uplift:.4}",
        arm("control"),
        arm("treatment")
    );
    assert!(measured > 0.0, "the treatment arm churns less");
    assert!((measured - uplift).abs() < 0.01, "{measured} vs {uplift}");
    assert!(
        rate.keys().any(|(p, d, _)| p == "active" && d == "month"),
        "monthly rates among active customers"
    );
}

#[test]
fn demo_lake_model_metrics_report_fits_and_coefficients() {
    let (_, last) = job();
    let (root, _) = demo_lake();
    let batches = read_parquet(
        &root
            .join("marts/model_metrics")
            .join(format!("dt={last}"))
            .join("value.parquet"),
    );
    let mut seen = std::collections::BTreeSet::new();
    for b in &batches {
        let (model, metric, key) = (strings(b, "model"), strings(b, "metric"), strings(b, "key"));
        for i in 0..b.num_rows() {
            seen.insert((
                model[i].clone().expect("m"),
                metric[i].clone().expect("m"),
                key[i].clone(),
            ));
        }
    }
    for (model, metric, key) in [
        ("bg_nbd", "parameter", Some("r")),
        ("bg_nbd", "parameter", Some("alpha")),
        ("bg_nbd", "standard_error", Some("b")),
        ("bg_nbd", "log_likelihood", None),
        ("bg_nbd", "converged", None),
        ("gamma_gamma", "parameter", Some("gamma")),
        ("gamma_gamma", "frequency_monetary_correlation", None),
        ("churn_logistic", "roc_auc", None),
        ("churn_logistic", "brier_score", None),
        ("churn_logistic", "top_decile_lift", None),
        ("churn_logistic", "coefficient", Some("recency_days")),
        ("churn_logistic", "coefficient", Some("frequency")),
    ] {
        assert!(
            seen.contains(&(
                model.to_string(),
                metric.to_string(),
                key.map(str::to_string)
            )),
            "{model} {metric} {key:?} missing"
        );
    }
    assert!(
        seen.iter()
            .any(|(m, me, _)| m == "churn_logistic" && me.starts_with("calibration")),
        "calibration table"
    );
    assert!(
        !seen.iter().any(|(_, _, k)| k
            .as_deref()
            .is_some_and(|k| k.contains("age") || k.contains("gender") || k.contains("region"))),
        "no sensitive attribute is a feature"
    );
}

#[test]
fn demo_lake_without_segments_warns_and_the_job_is_deterministic() {
    let (o, last) = job();
    // The segment tests share the demo lake and may write segments for the
    // date at any time: without a warning, the segments must be there.
    let segments = demo_lake()
        .0
        .join("marts/segments")
        .join(format!("dt={last}"))
        .exists();
    assert!(
        segments || o.warnings.iter().any(|w| w.contains("no marts/segments")),
        "{:?}",
        o.warnings
    );
    let before = std::fs::read(
        demo_lake()
            .0
            .join("marts/customer_value")
            .join(format!("dt={last}"))
            .join("part-0.parquet"),
    )
    .expect("written");
    let (ctx, _) = demo_ctx();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(value::run(&ctx, *last)).expect("second run");
    let path = demo_lake()
        .0
        .join("marts/customer_value")
        .join(format!("dt={last}"))
        .join("part-0.parquet");
    let after = std::fs::read(&path).expect("written");
    if before != after {
        let copy = tempfile::NamedTempFile::new().expect("tmp");
        std::fs::write(copy.path(), &before).expect("copy");
        let (a, b) = (read_parquet(copy.path()), read_parquet(&path));
        let differing: Vec<String> = a[0]
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let ca: Vec<_> = a.iter().map(|x| x.column(*i).to_data()).collect();
                let cb: Vec<_> = b.iter().map(|x| x.column(*i).to_data()).collect();
                ca != cb
            })
            .map(|(_, f)| f.name().clone())
            .collect();
        panic!("the same inputs must give byte-identical marts; columns differing: {differing:?}");
    }
}

/// The speed target: per-customer summary, BG/NBD and Gamma-Gamma fits and
/// scoring of every customer, on a data root already generated and ingested
/// (`attune generate` + `attune ingest`; the SQL models need not have run).
/// Run in release on the 1M-customer business:
///
/// ```sh
/// ATTUNE_VALUE_BENCH_ROOT=/data/bench ATTUNE_VALUE_BENCH_DATE=2026-12-31 \
///   cargo test --release --test it value::lifetime_value_at_scale -- --ignored --nocapture
/// ```
///
/// With `ATTUNE_VALUE_BENCH_NO_DEDUP=1` the orders are read as the lake has
/// them, without `stg_orders`' de-duplication across export days.
#[test]
#[ignore = "needs a generated and ingested data root; see the doc comment"]
fn lifetime_value_at_scale() {
    let root = std::env::var("ATTUNE_VALUE_BENCH_ROOT").expect("ATTUNE_VALUE_BENCH_ROOT");
    let day = date(&std::env::var("ATTUNE_VALUE_BENCH_DATE").expect("ATTUNE_VALUE_BENCH_DATE"));
    let cfg = attune::config::ValidConfig {
        root,
        ..attune::config::ValidConfig::default()
    };
    let ctx = attune::context::JobContext::open(cfg, attune::context::KeyMode::NotNeeded)
        .expect("context");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let settings = attune::value::clv::ClvSettings {
        time_unit: TimeUnit::Days,
        gross_margin: 0.6,
        annual_discount_rate: 0.1,
        max_iterations: 1000,
    };
    let started = std::time::Instant::now();
    let cpu0 = cpu_seconds();
    let (session, _) = rt
        .block_on(value::purchases_session(&ctx, day))
        .expect("session");
    let session_seconds = started.elapsed().as_secs_f64();
    if std::env::var("ATTUNE_VALUE_BENCH_NO_DEDUP").is_ok() {
        // The lake's orders as they are, without stg_orders' de-duplication
        // across export days: isolates the cost of the summary itself.
        session.deregister_table("purchases").expect("deregister");
        let raw = rt
            .block_on(session.sql(
                "SELECT customer_id, CAST(ordered_at AS DATE) AS order_date, total_amount AS amount \
                 FROM orders WHERE NOT COALESCE(refunded, FALSE)",
            ))
            .expect("sql");
        session
            .register_table("purchases", raw.into_view())
            .expect("register");
    }
    let s = rt
        .block_on(attune::value::summary::load(
            &session,
            day,
            day,
            TimeUnit::Days,
        ))
        .expect("summary")
        .summaries;
    let summary = started.elapsed().as_secs_f64();
    let cpu1 = cpu_seconds();
    let t = std::time::Instant::now();
    let models = attune::value::clv::fit_models(&s, &settings).expect("fit");
    let fit = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let scores = attune::value::clv::score(&s, &models, &[90.0, 365.0], &settings);
    let score = t.elapsed().as_secs_f64();
    let cpu2 = cpu_seconds();
    eprintln!(
        "wall: session {session_seconds:.2}s of the summary; CPU (all threads): summary {:.2}s, fits + scoring {:.2}s",
        cpu1 - cpu0,
        cpu2 - cpu1
    );
    eprintln!(
        "{} customers, {} distinct (x, t_x, T): summary {summary:.2}s, fits {fit:.2}s (BG/NBD {} iterations, Gamma-Gamma {:?}), scoring {score:.2}s, total {:.2}s",
        s.len(),
        models.bg_nbd.distinct_tuples,
        models.bg_nbd.optimizer.iterations,
        models.gamma_gamma.as_ref().map(|g| g.optimizer.iterations),
        summary + fit + score
    );
    assert!(models.bg_nbd.optimizer.converged);
    assert_eq!(scores.failures, 0);
}

/// On a copy of the demo lake: with an iteration budget of 2 the fits are
/// reported as not converged in model_metrics (with the optimizer's state)
/// and the values that depend on them are left empty; and segments written
/// by the segment job reach customer_value and churn_rates.
#[test]
fn job_reports_a_fit_that_did_not_converge_and_uses_segments() {
    let (_, last) = demo_ctx();
    let dir = tempfile::tempdir().expect("tempdir");
    for area in ["lake", "marts"] {
        copy_tree(&demo_lake().0.join(area), &dir.path().join(area));
    }
    // A segments partition as the segment job writes it: two segments by
    // the parity of the pseudonym's last hex digit.
    let features = read_parquet(
        &dir.path()
            .join("marts/customer_features")
            .join(format!("dt={last}"))
            .join("part-0.parquet"),
    );
    let ids: Vec<String> = features
        .iter()
        .flat_map(|b| strings(b, "customer_id"))
        .map(|s| s.expect("id"))
        .collect();
    let segment = |id: &str| {
        if u8::from_str_radix(&id[id.len() - 1..], 16)
            .expect("hex")
            .is_multiple_of(2)
        {
            ("regulars", 0i64)
        } else {
            ("occasional", 1)
        }
    };
    let schema = std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
        datafusion::arrow::datatypes::Field::new(
            "customer_id",
            datafusion::arrow::datatypes::DataType::Utf8,
            false,
        ),
        datafusion::arrow::datatypes::Field::new(
            "segment",
            datafusion::arrow::datatypes::DataType::Utf8,
            false,
        ),
        datafusion::arrow::datatypes::Field::new(
            "segment_id",
            datafusion::arrow::datatypes::DataType::Int64,
            false,
        ),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            std::sync::Arc::new(datafusion::arrow::array::StringArray::from_iter_values(
                ids.iter(),
            )),
            std::sync::Arc::new(datafusion::arrow::array::StringArray::from_iter_values(
                ids.iter().map(|i| segment(i).0),
            )),
            std::sync::Arc::new(datafusion::arrow::array::Int64Array::from_iter_values(
                ids.iter().map(|i| segment(i).1),
            )),
        ],
    )
    .expect("batch");
    // and the segments of the churn cut-off (90 days before), named apart:
    // churn_rates groups by those, customer_value by today's
    let cutoff = last - chrono::Duration::days(90);
    let earlier = |name: &str| format!("{name} in spring");
    let cutoff_batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            batch.column(0).clone(),
            std::sync::Arc::new(datafusion::arrow::array::StringArray::from_iter_values(
                ids.iter().map(|i| earlier(segment(i).0)),
            )),
            batch.column(2).clone(),
        ],
    )
    .expect("batch");
    for (day, b) in [(last, &batch), (cutoff, &cutoff_batch)] {
        let seg_dir = dir.path().join("marts/segments").join(format!("dt={day}"));
        std::fs::create_dir_all(&seg_dir).expect("mkdir");
        let file = std::fs::File::create(seg_dir.join("part-0.parquet")).expect("create");
        let mut w =
            parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).expect("writer");
        w.write(b).expect("write");
        w.close().expect("close");
    }

    let mut cfg = attune::config::ValidConfig {
        root: dir.path().to_string_lossy().into_owned(),
        ..attune::config::ValidConfig::default()
    };
    cfg.value.max_iterations = 2;
    let ctx = attune::context::JobContext::open(cfg, attune::context::KeyMode::NotNeeded)
        .expect("context");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let o = rt
        .block_on(value::run(&ctx, last))
        .expect("the job completes");
    assert!(!o.clv.bg_nbd.optimizer.converged);
    assert!(
        o.warnings
            .iter()
            .any(|w| w.contains("BG/NBD fit NOT converged")),
        "{:?}",
        o.warnings
    );
    assert!(!o.warnings.iter().any(|w| w.contains("no marts/segments")));

    let read = |table: &str, file: &str| {
        read_parquet(
            &dir.path()
                .join("marts")
                .join(table)
                .join(format!("dt={last}"))
                .join(file),
        )
    };
    for b in read("customer_value", "part-0.parquet") {
        assert_eq!(
            b.column_by_name("p_alive").expect("p").null_count(),
            b.num_rows()
        );
        assert_eq!(
            b.column_by_name("cltv_12m").expect("c").null_count(),
            b.num_rows()
        );
        assert_eq!(
            b.column_by_name("churn_probability")
                .expect("c")
                .null_count(),
            0,
            "churn model unaffected"
        );
        for (id, seg) in strings(&b, "customer_id")
            .iter()
            .zip(strings(&b, "segment"))
        {
            let id = id.as_deref().expect("id");
            assert_eq!(seg.as_deref(), Some(segment(id).0));
        }
    }
    let metrics = read("model_metrics", "value.parquet");
    let mut converged_row = None;
    for b in &metrics {
        let (model, metric, detail) = (
            strings(b, "model"),
            strings(b, "metric"),
            strings(b, "detail"),
        );
        let value = floats(b, "value");
        for i in 0..b.num_rows() {
            if model[i].as_deref() == Some("bg_nbd") && metric[i].as_deref() == Some("converged") {
                converged_row = Some((value[i], detail[i].clone().expect("state")));
            }
        }
    }
    let (v, detail) = converged_row.expect("bg_nbd converged row");
    assert_eq!(v, Some(0.0));
    assert!(
        detail.contains("NOT converged") && detail.contains("gradient"),
        "{detail}"
    );
    let segment_groups: Vec<String> = read("churn_rates", "part-0.parquet")
        .iter()
        .flat_map(|b| {
            strings(b, "dimension")
                .into_iter()
                .zip(strings(b, "group_value"))
                .filter(|(d, _)| d.as_deref() == Some("segment"))
                .map(|(_, g)| g.expect("group"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(segment_groups.len(), 4, "two segments, two populations");
    assert!(
        segment_groups.iter().all(|g| g.ends_with(" in spring")),
        "churn is grouped by the segments of the cut-off: {segment_groups:?}"
    );
}

/// (customer_id, x, monetary) of every row of `customer_value` batches.
fn repeat_values(batches: &[RecordBatch]) -> Vec<(String, (i64, Option<f64>))> {
    let mut out = Vec::new();
    for b in batches {
        let x = b
            .column_by_name("x")
            .expect("x")
            .as_primitive::<Int64Type>();
        for ((i, id), m) in strings(b, "customer_id")
            .iter()
            .enumerate()
            .zip(floats(b, "monetary"))
        {
            out.push((id.clone().expect("id"), (x.value(i), m)));
        }
    }
    out
}

/// Orders in two currencies, on a copy of the demo lake (all EUR): one
/// repeat order of a customer is rewritten to CHF in every export that
/// carries it. It is still a purchase day (x as before), but no longer in
/// the customer's mean repeat value: m' = (m·x − a)/(x − 1), with m and x
/// from the demo's own customer_value and a the order's amount; no other
/// customer's value moves. The job warns, counting the order, and
/// model_metrics names the currency the values are in.
#[test]
fn an_order_in_another_currency_is_a_purchase_but_not_a_value() {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{DataType, Date32Type};
    let (_, last) = job();
    let before = mart("customer_value", *last);
    let dir = tempfile::tempdir().expect("tempdir");
    for area in ["lake", "marts"] {
        copy_tree(&demo_lake().0.join(area), &dir.path().join(area));
    }
    /// One export's copy of an order.
    struct OrderCopy {
        file: PathBuf,
        order: String,
        customer: String,
        day: i32,
        amount: f64,
        refunded: bool,
    }
    let mut copies = Vec::new();
    let orders_dir = dir.path().join("lake/orders");
    for file in crate::common::files_under(&orders_dir) {
        if file.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        for (k, b) in read_parquet(&file).iter().enumerate() {
            assert_eq!(k, 0, "one batch per export file");
            let day = datafusion::arrow::compute::cast(
                b.column_by_name("ordered_at").expect("ordered_at"),
                &DataType::Date32,
            )
            .expect("date");
            let day = day.as_primitive::<Date32Type>();
            let amount = floats(b, "total_amount");
            let refunded = b.column_by_name("refunded").expect("refunded").as_boolean();
            for (i, (order, customer)) in strings(b, "order_id")
                .into_iter()
                .zip(strings(b, "customer_id"))
                .enumerate()
            {
                copies.push(OrderCopy {
                    file: file.clone(),
                    order: order.expect("order"),
                    customer: customer.expect("customer"),
                    day: day.value(i),
                    amount: amount[i].expect("amount"),
                    refunded: refunded.is_valid(i) && refunded.value(i),
                });
            }
        }
    }
    // A customer with repeat purchases, and an order of theirs that is the
    // only one on its day, after a day with an order never refunded, with
    // every copy alike and not refunded.
    let value_before: std::collections::BTreeMap<String, (i64, Option<f64>)> =
        repeat_values(&before).into_iter().collect();
    let last_day = attune::value::summary::epoch_day(*last);
    let of =
        |order: &str| -> Vec<&OrderCopy> { copies.iter().filter(|o| o.order == order).collect() };
    let (order, customer, amount) = copies
        .iter()
        .filter(|c| {
            c.day <= last_day && value_before.get(&c.customer).is_some_and(|(x, _)| *x >= 3)
        })
        .find(|c| {
            let alone = !copies
                .iter()
                .any(|o| o.customer == c.customer && o.day == c.day && o.order != c.order);
            let earlier = copies.iter().any(|o| {
                o.customer == c.customer
                    && o.day < c.day
                    && of(&o.order).iter().all(|p| !p.refunded)
            });
            alone
                && earlier
                && of(&c.order).iter().all(|o| {
                    o.customer == c.customer
                        && o.day == c.day
                        && o.amount == c.amount
                        && !o.refunded
                })
        })
        .map(|c| (c.order.clone(), c.customer.clone(), c.amount))
        .expect("such an order in the demo lake");
    let mut files: Vec<&PathBuf> = of(&order).iter().map(|c| &c.file).collect();
    files.dedup();
    for file in files {
        let b = read_parquet(file).remove(0);
        let ids = strings(&b, "order_id");
        let currency: StringArray = strings(&b, "currency")
            .into_iter()
            .zip(&ids)
            .map(|(c, id)| {
                if id.as_deref() == Some(order.as_str()) {
                    Some("CHF".into())
                } else {
                    c
                }
            })
            .collect();
        let mut columns = b.columns().to_vec();
        let at = b.schema().index_of("currency").expect("currency");
        columns[at] = std::sync::Arc::new(currency);
        let b = RecordBatch::try_new(b.schema(), columns).expect("batch");
        let mut w = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(file).expect("rewrite"),
            b.schema(),
            None,
        )
        .expect("writer");
        w.write(&b).expect("write");
        w.close().expect("close");
    }

    let cfg = attune::config::ValidConfig {
        root: dir.path().to_string_lossy().into_owned(),
        ..attune::config::ValidConfig::default()
    };
    let ctx = attune::context::JobContext::open(cfg, attune::context::KeyMode::NotNeeded)
        .expect("context");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let o = rt
        .block_on(value::run(&ctx, *last))
        .expect("the job completes");
    assert!(
        o.warnings.iter().any(|w| w.starts_with("1 orders up to")
            && w.contains("not in EUR")
            && w.contains("(CHF 1)")),
        "{:?}",
        o.warnings
    );
    let after = read_parquet(
        &dir.path()
            .join("marts/customer_value")
            .join(format!("dt={last}"))
            .join("part-0.parquet"),
    );
    let mut moved = Vec::new();
    for (id, (x, m)) in repeat_values(&after) {
        let (x0, m0) = value_before[&id];
        assert_eq!(x, x0, "{id}: purchase days");
        if id == customer {
            let m0 = m0.expect("a repeat customer's value");
            let want = (m0 * x0 as f64 - amount) / (x0 - 1) as f64;
            let got = m.expect("other repeat days are EUR");
            assert!((got - want).abs() < 1e-9 * want, "{got} vs {want}");
        } else if m != m0 {
            moved.push(id);
        }
    }
    assert!(
        moved.is_empty(),
        "values of other customers moved: {moved:?}"
    );
    let metrics = read_parquet(
        &dir.path()
            .join("marts/model_metrics")
            .join(format!("dt={last}"))
            .join("value.parquet"),
    );
    let currency_rows: Vec<(Option<String>, Option<f64>)> = metrics
        .iter()
        .flat_map(|b| {
            let (model, metric, key, value) = (
                strings(b, "model"),
                strings(b, "metric"),
                strings(b, "key"),
                floats(b, "value"),
            );
            (0..b.num_rows())
                .filter(|&i| {
                    model[i].as_deref() == Some("clv") && metric[i].as_deref() == Some("currency")
                })
                .map(|i| (key[i].clone(), value[i]))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(currency_rows, [(Some("EUR".to_string()), Some(1.0))]);
}

/// User + system CPU seconds of this process so far, all threads (Linux
/// /proc; 0 elsewhere): wall time on a shared machine says little.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// The churn model's features as of its cut-off: the cut-off's own
/// customer_features partition is read when the lake up to the cut-off is
/// as it was when the transform wrote it, and equals the model computed
/// again; a lake partition up to the cut-off written since makes it stale,
/// one after the cut-off does not. The value job, finding it stale,
/// computes the features and keeps them, with a record, for the next
/// nights of the week, once their data tests pass in the session that
/// computed them (differential: the verdicts of a session of their own).
#[test]
fn cutoff_features_are_read_back_only_while_the_lake_up_to_then_is_unchanged() {
    use attune::transform::{self, models, provenance};
    let (_, last) = demo_ctx();
    let cutoff = value::churn_cutoff(last, 90);
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&demo_lake().0.join("lake"), &dir.path().join("lake"));
    let ctx = ctx_at(dir.path(), true);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let all = models::load(None).expect("models");
    let reuse = || {
        rt.block_on(provenance::reuse(&ctx, &all, "customer_features", cutoff))
            .expect("reuse")
    };
    assert!(
        reuse().is_none(),
        "nothing recorded before the transform ran"
    );
    rt.block_on(transform::run(&ctx, cutoff))
        .expect("transform as of the cut-off");
    let read = reuse().expect("recorded and unchanged");
    let (computed, session) = rt
        .block_on(transform::model_as_of(
            &ctx,
            "customer_features",
            cutoff,
            last,
        ))
        .expect("computed");
    let rows = |b: &[RecordBatch]| {
        datafusion::arrow::compute::concat_batches(&b[0].schema(), b).expect("concat")
    };
    let (read, computed) = (rows(&read), rows(&computed));

    // The data tests in the session that computed the rows, against a
    // session of their own, as they ran before: the same verdicts, for the
    // rows and for the rows with one repeated (its customer twice).
    let model = all
        .iter()
        .find(|m| m.name == "customer_features")
        .expect("model");
    let repeated = [computed.clone(), computed.slice(0, 1)];
    let mut verdicts = Vec::new();
    for batches in [std::slice::from_ref(&computed), &repeated[..]] {
        let here = rt
            .block_on(transform::data_tests_in(&session, model, batches))
            .expect("tests ran");
        let own = rt
            .block_on(transform::session_as_of(&ctx, cutoff, last))
            .expect("session");
        let apart = rt
            .block_on(transform::data_tests_in(&own, model, batches))
            .expect("tests ran");
        assert_eq!(here, apart);
        verdicts.push(here);
    }
    assert!(verdicts[0].is_none(), "{:?}", verdicts[0]);
    assert!(
        verdicts[1]
            .as_deref()
            .is_some_and(|v| v.contains("customer_id")),
        "{:?}",
        verdicts[1]
    );
    assert!(read.num_rows() > 100);
    assert_eq!(read.num_rows(), computed.num_rows());
    let differing: Vec<&String> = read
        .schema_ref()
        .fields()
        .iter()
        .zip(computed.schema_ref().fields())
        .enumerate()
        .filter(|(i, (a, b))| {
            a.name() != b.name() || read.column(*i).as_ref() != computed.column(*i).as_ref()
        })
        .map(|(_, (a, _))| a.name())
        .collect();
    assert!(differing.is_empty(), "columns differing: {differing:?}");

    // Rewritten with the same bytes: the listing (and so the digest) changes.
    let rewrite = |day: NaiveDate| crate::common::rewrite_partition(dir.path(), "orders", day);
    rewrite(cutoff + chrono::Duration::days(1));
    assert!(
        reuse().is_some(),
        "a partition after the cut-off is not read"
    );
    rewrite(cutoff - chrono::Duration::days(3));
    assert!(reuse().is_none(), "a partition up to the cut-off changed");

    rt.block_on(transform::run(&ctx, last)).expect("transform");
    rt.block_on(value::run(&ctx, last)).expect("value");
    let kept = rows(&reuse().expect("kept by the value job, recorded"));
    let again = rows(
        &rt.block_on(transform::model_as_of(
            &ctx,
            "customer_features",
            cutoff,
            last,
        ))
        .expect("computed")
        .0,
    );
    assert_eq!(kept, again);
}

/// A job context on the data root `root` (default settings, no key), whose
/// jobs carry what they can from night to night when `incremental`.
fn ctx_at(root: &Path, incremental: bool) -> attune::context::JobContext {
    let cfg = attune::config::ValidConfig {
        root: root.to_string_lossy().into_owned(),
        transform_incremental: incremental,
        ..Default::default()
    };
    attune::context::JobContext::open(cfg, attune::context::KeyMode::NotNeeded).expect("context")
}

/// The value marts of `date` under `root`, as bytes: what a night that
/// starts from carried purchase histories must write.
fn value_bytes(root: &Path, date: NaiveDate) -> Vec<(&'static str, Vec<u8>)> {
    crate::common::mart_bytes(
        root,
        &["customer_value", "churn_rates", "churn_evaluation"],
        date,
    )
}

/// [`value_bytes`] of a value job that folds every order
/// (`transform.incremental = false`) on a copy of `root`.
fn full_fold_bytes(root: &Path, date: NaiveDate) -> Vec<(&'static str, Vec<u8>)> {
    let copy = tempfile::tempdir().expect("tempdir");
    copy_tree(root, copy.path());
    let ctx = ctx_at(copy.path(), false);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let out = rt.block_on(value::run(&ctx, date)).expect("value job");
    assert_eq!(out.histories_from, None, "every order folded");
    value_bytes(copy.path(), date)
}

/// The generated business, night after night: each value night starts
/// from the purchase histories of the night before and writes the bytes a
/// night that folds every order writes. Then an earlier day's orders are
/// exported again, refunded, on a new night: purchases leave the view, so
/// that night folds every order (and still matches).
#[test]
fn carried_purchase_histories_give_the_marts_of_a_full_fold() {
    let (lake, last) = demo_lake();
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(lake, dir.path());
    let ctx = ctx_at(dir.path(), true);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let first = last - chrono::Duration::days(2);
    let mut from = Vec::new();
    for n in 0..=2 {
        let date = first + chrono::Duration::days(n);
        rt.block_on(attune::transform::run(&ctx, date))
            .expect("transform");
        let out = rt.block_on(value::run(&ctx, date)).expect("value job");
        from.push(out.histories_from);
        if n > 0 {
            assert_eq!(
                value_bytes(dir.path(), date),
                full_fold_bytes(dir.path(), date),
                "{date}"
            );
        }
    }
    let nights: Vec<Option<NaiveDate>> = (-1..2)
        .map(|n| (n >= 0).then(|| first + chrono::Duration::days(n)))
        .collect();
    assert_eq!(from, nights);
    // the last night and the one it started from stay
    let kept = dir.path().join("marts/_value_histories");
    let mut days: Vec<String> = std::fs::read_dir(&kept)
        .expect("kept")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    days.sort();
    assert_eq!(
        days,
        [
            format!("dt={}", last - chrono::Duration::days(1)),
            format!("dt={last}")
        ]
    );

    // A day's orders exported again on the next night, every one refunded.
    let next = last + chrono::Duration::days(1);
    let source = dir.path().join(format!(
        "lake/orders/dt={}",
        last - chrono::Duration::days(20)
    ));
    let batches = read_parquet(&source.join("part-0.parquet"));
    let refunded: Vec<RecordBatch> = batches
        .iter()
        .map(|b| {
            let at = b.schema().index_of("refunded").expect("refunded column");
            let mut columns = b.columns().to_vec();
            columns[at] = std::sync::Arc::new(datafusion::arrow::array::BooleanArray::from(
                vec![true; b.num_rows()],
            ));
            RecordBatch::try_new(b.schema(), columns).expect("batch")
        })
        .collect();
    assert!(refunded.iter().map(RecordBatch::num_rows).sum::<usize>() > 0);
    let target = dir.path().join(format!("lake/orders/dt={next}"));
    std::fs::create_dir_all(&target).expect("partition folder");
    let file = std::fs::File::create(target.join("part-0.parquet")).expect("file");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, refunded[0].schema(), None).expect("writer");
    for b in &refunded {
        writer.write(b).expect("write");
    }
    writer.close().expect("close");
    rt.block_on(attune::transform::run(&ctx, next))
        .expect("transform");
    let out = rt.block_on(value::run(&ctx, next)).expect("value job");
    assert_eq!(
        value_bytes(dir.path(), next),
        full_fold_bytes(dir.path(), next)
    );
    assert_eq!(out.histories_from, None, "a purchase left the view");
    assert!(kept.join(format!("dt={next}")).exists());
}
