//! Customer lifetime value from the fitted models: P(alive), expected
//! purchases over a horizon, expected purchase value and a discounted
//! 12-month CLTV per customer. Shared by the nightly job and `attune value fit`.
//!
//! CLTV over 12 months = gross margin × E[value of a purchase] ×
//! Σₘ₌₁..₁₂ (E[purchases by month m] − E[purchases by month m−1]) / (1 + d)ᵐ,
//! a month being 365/12 days and d = (1 + annual rate)^(1/12) − 1, so
//! purchases expected in month m are discounted from its end.

use std::collections::HashMap;

use serde::Serialize;
use tracing::warn;

use super::bgnbd::{self, BgNbdData, BgNbdFit};
use super::gamma_gamma::{self, GammaGammaData, GammaGammaFit};
use super::summary::{Summaries, TimeUnit};
use crate::Result;

/// Settings of the lifetime-value models.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClvSettings {
    pub time_unit: TimeUnit,
    pub gross_margin: f64,
    pub annual_discount_rate: f64,
    pub max_iterations: u64,
}

/// Both fitted models and what was checked about them.
#[derive(Debug, Clone, Serialize)]
pub struct ClvModels {
    pub time_unit: TimeUnit,
    pub bg_nbd: BgNbdFit,
    /// `None` when too few customers have repeat purchases.
    pub gamma_gamma: Option<GammaGammaFit>,
    /// Repeat customers left out of Gamma-Gamma for a non-positive mean value.
    pub gamma_gamma_excluded: u64,
    /// Pearson correlation of x and the mean repeat value over repeat
    /// customers: Gamma-Gamma assumes none.
    pub frequency_monetary_correlation: Option<f64>,
    pub warnings: Vec<String>,
}

/// Fits BG/NBD on every customer and Gamma-Gamma on the customers with a
/// valued repeat purchase day (their `valued_x` days, of mean `monetary`).
pub fn fit_models(s: &Summaries, settings: &ClvSettings) -> Result<ClvModels> {
    let mut warnings = Vec::new();
    let data = BgNbdData::new(&s.x, &s.t_x, &s.t)?;
    let bg_nbd = bgnbd::fit(&data, settings.max_iterations);
    if !bg_nbd.optimizer.converged {
        let w = format!(
            "BG/NBD fit {}; P(alive), expected purchases and CLTV are left empty",
            bg_nbd.optimizer.describe()
        );
        warn!(model = "bg_nbd", "{w}");
        warnings.push(w);
    }
    let mut xs = Vec::new();
    let mut ms = Vec::new();
    let mut excluded = 0u64;
    for (x, m) in s.valued_x.iter().zip(&s.monetary) {
        match m {
            Some(v) if *v > 0.0 && v.is_finite() => {
                xs.push(*x);
                ms.push(*v);
            }
            Some(_) => excluded += 1,
            None => {}
        }
    }
    if excluded > 0 {
        warnings.push(format!(
            "{excluded} repeat customers with a zero mean purchase value are left out of Gamma-Gamma"
        ));
    }
    let frequency_monetary_correlation =
        gamma_gamma::pearson(&xs.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(), &ms);
    if let Some(r) = frequency_monetary_correlation
        && r.abs() > 0.3
    {
        warnings.push(format!(
            "purchase frequency and mean purchase value are correlated (Pearson {r:.2}); Gamma-Gamma assumes they are independent, so expected purchase values are less reliable"
        ));
    }
    let gamma_gamma = match GammaGammaData::new(&xs, &ms) {
        Ok(d) => {
            let fit = gamma_gamma::fit(&d, settings.max_iterations);
            if !fit.optimizer.converged {
                let w = format!(
                    "Gamma-Gamma fit {}; expected purchase values and CLTV are left empty",
                    fit.optimizer.describe()
                );
                warn!(model = "gamma_gamma", "{w}");
                warnings.push(w);
            } else if fit.params.q <= 1.0 {
                warnings.push(format!(
                    "Gamma-Gamma q = {:.3} <= 1: the population's mean purchase value is infinite; expected purchase values and CLTV are left empty",
                    fit.params.q
                ));
            }
            Some(fit)
        }
        Err(e) => {
            warnings.push(format!("Gamma-Gamma not fitted: {e}"));
            None
        }
    };
    Ok(ClvModels {
        time_unit: settings.time_unit,
        bg_nbd,
        gamma_gamma,
        gamma_gamma_excluded: excluded,
        frequency_monetary_correlation,
        warnings,
    })
}

/// Per-customer predictions, aligned with the summaries; `None` where the
/// model that produces a value did not converge.
#[derive(Debug, Clone, Default)]
pub struct Scores {
    pub p_alive: Vec<Option<f64>>,
    /// One vector per requested horizon, in request order.
    pub expected_purchases: Vec<Vec<Option<f64>>>,
    pub expected_value: Vec<Option<f64>>,
    pub cltv_12m: Vec<Option<f64>>,
    /// Customers whose expectation could not be evaluated (₂F₁ failures).
    pub failures: u64,
}

const MONTH_DAYS: f64 = 365.0 / 12.0;

/// Scores every customer of `s` with expected purchases over each of
/// `horizons_days`, and the 12-month CLTV.
pub fn score(
    s: &Summaries,
    models: &ClvModels,
    horizons_days: &[f64],
    settings: &ClvSettings,
) -> Scores {
    let n = s.len();
    let bg = &models.bg_nbd;
    let mut out = Scores {
        p_alive: vec![None; n],
        expected_purchases: vec![vec![None; n]; horizons_days.len()],
        expected_value: vec![None; n],
        cltv_12m: vec![None; n],
        failures: 0,
    };
    let gg = models
        .gamma_gamma
        .as_ref()
        .filter(|g| g.optimizer.converged && g.params.q > 1.0)
        .map(|g| g.params);
    if let Some(g) = gg {
        for i in 0..n {
            // Gamma-Gamma's x: the repeat days whose value was observed.
            let x = s.valued_x[i];
            out.expected_value[i] = match s.monetary[i] {
                // no valued repeat purchase: the model's population mean
                None => g.conditional_expected_value(0, 0.0),
                Some(m) if m > 0.0 && m.is_finite() => g.conditional_expected_value(x, m),
                // left out of the fit (see the warning): outside the model
                Some(_) => None,
            };
        }
    }
    if !bg.optimizer.converged {
        return out;
    }
    let p = bg.params;
    let unit = settings.time_unit.days();
    // Horizons in the model's unit: the requested ones, then months 1..=12.
    let mut horizons: Vec<f64> = horizons_days.iter().map(|h| h / unit).collect();
    let months_from = horizons.len();
    horizons.extend((1..=12).map(|m| f64::from(m) * MONTH_DAYS / unit));
    // E[purchases | alive] depends on (x, T) only: once per distinct pair.
    let mut pair_of: HashMap<(u32, u64), usize> = HashMap::new();
    let mut pairs: Vec<(u32, f64)> = Vec::new();
    let customer_pair: Vec<usize> = (0..n)
        .map(|i| {
            *pair_of
                .entry((s.x[i], s.t[i].to_bits()))
                .or_insert_with(|| {
                    pairs.push((s.x[i], s.t[i]));
                    pairs.len() - 1
                })
        })
        .collect();
    let chunk = pairs.len().div_ceil(64).max(1);
    let chunks: Vec<&[(u32, f64)]> = pairs.chunks(chunk).collect();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let eval = |c: &&[(u32, f64)]| -> Vec<Option<Vec<f64>>> {
        c.iter()
            .map(|&(x, t)| {
                horizons
                    .iter()
                    .map(|&h| bgnbd::expected_purchases_if_alive(&p, x, t, h).ok())
                    .collect::<Option<Vec<f64>>>()
            })
            .collect()
    };
    let per_pair: Vec<Option<Vec<f64>>> = if pairs.len() < 2_000 || threads < 2 {
        chunks.iter().flat_map(&eval).collect()
    } else {
        crate::parallel::map(&chunks, threads.min(chunks.len()), &eval)
            .into_iter()
            .flatten()
            .collect()
    };
    let monthly_rate = (1.0 + settings.annual_discount_rate).powf(1.0 / 12.0) - 1.0;
    let discount: Vec<f64> = (1..=12).map(|m| (1.0 + monthly_rate).powi(-m)).collect();
    for i in 0..n {
        let alive = bgnbd::p_alive(&p, s.x[i], s.t_x[i], s.t[i]);
        out.p_alive[i] = Some(alive);
        let Some(e) = &per_pair[customer_pair[i]] else {
            out.failures += 1;
            continue;
        };
        for (k, col) in out.expected_purchases.iter_mut().enumerate() {
            col[i] = Some(alive * e[k]);
        }
        if let Some(value) = out.expected_value[i] {
            let mut previous = 0.0;
            let mut discounted = 0.0;
            for m in 0..12 {
                let cumulative = e[months_from + m];
                discounted += (cumulative - previous) * discount[m];
                previous = cumulative;
            }
            out.cltv_12m[i] = Some(settings.gross_margin * value * alive * discounted);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::bgnbd::BgNbdParams;
    use crate::value::optim::OptimReport;

    fn converged() -> OptimReport {
        OptimReport {
            theta: vec![],
            cost: 0.0,
            gradient_norm: 0.0,
            converged: true,
            unidentified: None,
            iterations: 1,
            method: "test".into(),
            termination: "test".into(),
        }
    }

    fn models(unit: TimeUnit, alpha: f64) -> ClvModels {
        ClvModels {
            time_unit: unit,
            bg_nbd: BgNbdFit {
                params: BgNbdParams {
                    r: 0.9,
                    alpha,
                    a: 0.7,
                    b: 14.0,
                },
                log_likelihood: 0.0,
                standard_errors: None,
                customers: 2,
                distinct_tuples: 2,
                optimizer: converged(),
            },
            gamma_gamma: Some(GammaGammaFit {
                params: gamma_gamma::GammaGammaParams {
                    p: 6.0,
                    q: 4.0,
                    gamma: 15.0,
                },
                log_likelihood: 0.0,
                standard_errors: None,
                customers: 1,
                optimizer: converged(),
            }),
            gamma_gamma_excluded: 0,
            frequency_monetary_correlation: None,
            warnings: vec![],
        }
    }

    fn summaries(unit: TimeUnit) -> Summaries {
        Summaries {
            customer_id: vec!["a".into(), "b".into()],
            first_day: vec![0, 0],
            x: vec![0, 12],
            t_x: vec![0.0, 80.0 / unit.days()],
            t: vec![30.0 / unit.days(), 100.0 / unit.days()],
            valued_x: vec![0, 12],
            monetary: vec![None, Some(9.5)],
            holdout_x: vec![0, 0],
        }
    }

    #[test]
    fn predictions_do_not_depend_on_the_time_unit() {
        let settings = |u| ClvSettings {
            time_unit: u,
            gross_margin: 0.6,
            annual_discount_rate: 0.1,
            max_iterations: 10,
        };
        // α scales with the unit: 4 days = 4/7 weeks.
        let d = score(
            &summaries(TimeUnit::Days),
            &models(TimeUnit::Days, 4.0),
            &[90.0, 365.0],
            &settings(TimeUnit::Days),
        );
        let w = score(
            &summaries(TimeUnit::Weeks),
            &models(TimeUnit::Weeks, 4.0 / 7.0),
            &[90.0, 365.0],
            &settings(TimeUnit::Weeks),
        );
        for i in 0..2 {
            for k in 0..2 {
                let (a, b) = (
                    d.expected_purchases[k][i].expect("ok"),
                    w.expected_purchases[k][i].expect("ok"),
                );
                assert!((a - b).abs() < 1e-9 * a, "{a} {b}");
            }
            let (a, b) = (d.cltv_12m[i].expect("ok"), w.cltv_12m[i].expect("ok"));
            assert!((a - b).abs() < 1e-9 * a, "{a} {b}");
        }
    }

    #[test]
    fn cltv_is_margin_times_value_times_discounted_purchases() {
        let settings = ClvSettings {
            time_unit: TimeUnit::Days,
            gross_margin: 0.6,
            annual_discount_rate: 0.0,
            max_iterations: 10,
        };
        let s = summaries(TimeUnit::Days);
        let m = models(TimeUnit::Days, 4.0);
        let sc = score(&s, &m, &[365.0], &settings);
        for i in 0..2 {
            // Without discounting, 12 months of purchases = the 365-day expectation.
            let want = 0.6
                * sc.expected_value[i].expect("q > 1")
                * sc.expected_purchases[0][i].expect("ok");
            let got = sc.cltv_12m[i].expect("ok");
            assert!((got - want).abs() < 1e-9 * want, "{got} vs {want}");
        }
        let discounted = score(
            &s,
            &m,
            &[365.0],
            &ClvSettings {
                annual_discount_rate: 0.1,
                ..settings
            },
        );
        for i in 0..2 {
            let (d, u) = (
                discounted.cltv_12m[i].expect("ok"),
                sc.cltv_12m[i].expect("ok"),
            );
            // Discounting at 10% a year takes off between 0 and 10%.
            assert!(d < u && d > u / 1.1, "{d} vs {u}");
        }
    }

    #[test]
    fn a_fit_that_did_not_converge_leaves_predictions_empty() {
        let mut m = models(TimeUnit::Days, 4.0);
        m.bg_nbd.optimizer.converged = false;
        let settings = ClvSettings {
            time_unit: TimeUnit::Days,
            gross_margin: 0.6,
            annual_discount_rate: 0.1,
            max_iterations: 10,
        };
        let sc = score(&summaries(TimeUnit::Days), &m, &[90.0], &settings);
        assert!(sc.p_alive.iter().all(Option::is_none));
        assert!(sc.cltv_12m.iter().all(Option::is_none));
        assert!(
            sc.expected_value.iter().all(Option::is_some),
            "Gamma-Gamma still converged"
        );
    }

    /// One day of data: every customer bought for the first time on the
    /// last day (x = 0, t_x = 0, T = 0). The BG/NBD likelihood is 1 for
    /// every parameter (FHL 2005 eq. 6 with x = T = 0), so its gradient is 0
    /// at the start: nothing was estimated, and P(alive) = 1 with
    /// E[purchases in 90 days] = ln 91 for everyone (the start's r = α = a =
    /// b = 1) must not be written.
    #[test]
    fn a_fit_on_one_day_of_data_is_not_converged_and_scores_nothing() {
        let n = 50;
        let s = Summaries {
            customer_id: (0..n).map(|i| format!("c{i:02}")).collect(),
            first_day: vec![100; n],
            x: vec![0; n],
            t_x: vec![0.0; n],
            t: vec![0.0; n],
            valued_x: vec![0; n],
            monetary: vec![None; n],
            holdout_x: vec![0; n],
        };
        let settings = ClvSettings {
            time_unit: TimeUnit::Days,
            gross_margin: 0.6,
            annual_discount_rate: 0.1,
            max_iterations: 1000,
        };
        let m = fit_models(&s, &settings).expect("fit runs");
        assert!(
            !m.bg_nbd.optimizer.converged,
            "{}",
            m.bg_nbd.optimizer.describe()
        );
        assert!(
            m.warnings
                .iter()
                .any(|w| w.contains("BG/NBD fit NOT converged")
                    && w.contains("first purchase on the last day")),
            "{:?}",
            m.warnings
        );
        let sc = score(&s, &m, &[90.0, 365.0], &settings);
        assert!(sc.p_alive.iter().all(Option::is_none));
        assert!(sc.expected_purchases.iter().flatten().all(Option::is_none));
        assert!(sc.cltv_12m.iter().all(Option::is_none));
    }

    /// A repeat customer whose mean repeat value is not positive was left
    /// out of the Gamma-Gamma fit: no value or CLTV is made up for them
    /// (E[M] = p(γ + m·x)/(px + q − 1) would go negative for m < 0).
    #[test]
    fn customers_left_out_of_gamma_gamma_get_no_value() {
        let settings = ClvSettings {
            time_unit: TimeUnit::Days,
            gross_margin: 0.6,
            annual_discount_rate: 0.1,
            max_iterations: 10,
        };
        let mut s = summaries(TimeUnit::Days);
        s.customer_id.push("c".into());
        s.first_day.push(0);
        s.x.push(2);
        s.t_x.push(50.0);
        s.t.push(100.0);
        s.valued_x.push(2);
        s.monetary.push(Some(-10.0));
        s.holdout_x.push(0);
        let sc = score(&s, &models(TimeUnit::Days, 4.0), &[90.0], &settings);
        assert!(
            sc.expected_value[0].is_some(),
            "no repeat: the population mean"
        );
        assert!(sc.expected_value[1].is_some());
        assert_eq!((sc.expected_value[2], sc.cltv_12m[2]), (None, None));
        assert!(sc.p_alive[2].is_some(), "BG/NBD still covers them");
    }
}
