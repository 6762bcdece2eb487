//! The BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005, "Counting
//! your customers the easy way", Marketing Science 24(2)).
//!
//! While alive, customer i buys at Poisson rate λᵢ ~ Gamma(r, α); after each
//! purchase they drop out for good with probability pᵢ ~ Beta(a, b). A
//! customer is summarized by x (repeat purchases: the first is not counted),
//! t_x (time of the last purchase) and T (time since the first purchase),
//! both measured from the first purchase.
//!
//! The likelihood (eq. 6 of the paper) is evaluated in log space:
//!
//! ```text
//! ln L = ln Γ(r+x) − ln Γ(r) + r ln α + ln B(a, b+x) − ln B(a, b)
//!        + ln[ (α+T)^−(r+x) + 1{x>0} · a/(b+x−1) · (α+t_x)^−(r+x) ]
//! ```
//!
//! with the last line a log-sum-exp. Customers with identical (x, t_x, T)
//! share one term with a weight, the terms that depend only on x are
//! computed once per distinct x, and ln(α+T), ln(α+t_x) once per distinct
//! value: the cost of one evaluation grows with the number of distinct
//! tuples, not customers, and is split over the cores in a fixed number of
//! chunks summed in a fixed order, so the result does not depend on the
//! number of threads.

use serde::Serialize;

use super::optim::{self, Objective, OptimReport};
use super::special::{digamma, hyp2f1_scaled_deficit, ln_gamma};
use crate::{Error, Result};

/// Fitted BG/NBD parameters. r and a, b are unitless; α is in the time
/// unit of the data (λ has mean r/α purchases per unit).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BgNbdParams {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

impl BgNbdParams {
    fn from_log(theta: &[f64]) -> BgNbdParams {
        BgNbdParams {
            r: theta[0].exp(),
            alpha: theta[1].exp(),
            a: theta[2].exp(),
            b: theta[3].exp(),
        }
    }

    fn to_log(self) -> Vec<f64> {
        vec![self.r.ln(), self.alpha.ln(), self.a.ln(), self.b.ln()]
    }

    /// (name, value) in a stable order, for reports.
    pub fn named(&self) -> [(&'static str, f64); 4] {
        [
            ("r", self.r),
            ("alpha", self.alpha),
            ("a", self.a),
            ("b", self.b),
        ]
    }
}

/// Customers grouped by identical (x, t_x, T).
#[derive(Debug, Clone)]
pub struct BgNbdData {
    /// Distinct x values, ascending.
    xs: Vec<f64>,
    /// Customers per distinct x.
    x_weight: Vec<f64>,
    /// Distinct t_x values and distinct T values, ascending.
    tx_values: Vec<f64>,
    t_values: Vec<f64>,
    /// One entry per distinct tuple: indices into the tables above and the
    /// number of customers sharing it.
    tuples: Vec<Tuple>,
    customers: f64,
}

#[derive(Debug, Clone, Copy)]
struct Tuple {
    x: u32,
    tx: u32,
    t: u32,
    n: f64,
}

/// Chunks the tuples are split into: fixed, so sums never depend on the
/// thread count.
const CHUNKS: usize = 16;
/// Below this many tuples one thread does all chunks (threads cost more).
const PARALLEL_FROM: usize = 20_000;

impl BgNbdData {
    /// Groups per-customer (x, t_x, T). Requires 0 ≤ t_x ≤ T, t_x = 0 when
    /// x = 0, all finite.
    pub fn new(x: &[u32], t_x: &[f64], t: &[f64]) -> Result<BgNbdData> {
        if x.len() != t_x.len() || x.len() != t.len() {
            return Err(Error::Internal(
                "BG/NBD input columns differ in length".into(),
            ));
        }
        if x.is_empty() {
            return Err(Error::Model {
                model: "bg_nbd".into(),
                reason: "no customers with a purchase to fit on".into(),
            });
        }
        for i in 0..x.len() {
            let ok = t_x[i].is_finite()
                && t[i].is_finite()
                && t_x[i] >= 0.0
                && t_x[i] <= t[i]
                && (x[i] > 0 || t_x[i] == 0.0);
            if !ok {
                return Err(Error::Internal(format!(
                    "BG/NBD input row {i} is inconsistent (needs 0 <= t_x <= T, t_x = 0 when x = 0)"
                )));
            }
        }
        let distinct = |v: &[f64]| {
            let mut d: Vec<f64> = v.to_vec();
            d.sort_by(f64::total_cmp);
            d.dedup();
            d
        };
        let tx_values = distinct(t_x);
        let t_values = distinct(t);
        let mut xs_u: Vec<u32> = x.to_vec();
        xs_u.sort_unstable();
        xs_u.dedup();
        let index_f = |table: &[f64], v: f64| {
            table
                .binary_search_by(|p| p.total_cmp(&v))
                .expect("value is in its own table") as u32
        };
        let mut keys: Vec<(u32, u32, u32)> = (0..x.len())
            .map(|i| {
                (
                    xs_u.binary_search(&x[i]).expect("x is in its own table") as u32,
                    index_f(&tx_values, t_x[i]),
                    index_f(&t_values, t[i]),
                )
            })
            .collect();
        keys.sort_unstable();
        let mut tuples: Vec<Tuple> = Vec::new();
        let mut x_weight = vec![0.0; xs_u.len()];
        for (xi, tx, ti) in keys {
            x_weight[xi as usize] += 1.0;
            match tuples.last_mut() {
                Some(last) if last.x == xi && last.tx == tx && last.t == ti => last.n += 1.0,
                _ => tuples.push(Tuple {
                    x: xi,
                    tx,
                    t: ti,
                    n: 1.0,
                }),
            }
        }
        Ok(BgNbdData {
            xs: xs_u.iter().map(|&v| f64::from(v)).collect(),
            x_weight,
            tx_values,
            t_values,
            tuples,
            customers: x.len() as f64,
        })
    }

    /// Customers in the data.
    pub fn customers(&self) -> u64 {
        self.customers as u64
    }

    /// Distinct (x, t_x, T) tuples: the unit of work of one evaluation.
    pub fn distinct_tuples(&self) -> usize {
        self.tuples.len()
    }

    /// Why these data cannot estimate the model at all, in an owner's
    /// words; `None` when they can. With every T = 0 the likelihood is 1 for
    /// any parameters; without a repeat purchase it is Π (α/(α+Tᵢ))^r,
    /// which leaves a and b (the dropout) undetermined. The gradient can
    /// vanish on such data (at the start, on the first), but no point of a
    /// flat likelihood is an estimate.
    pub fn uninformative(&self) -> Option<&'static str> {
        if self.t_values.last().is_none_or(|&t| t <= 0.0) {
            Some(
                "every customer made their first purchase on the last day of the data, so there has been no time to see anyone come back; lifetime value needs a longer history",
            )
        } else if self.xs.last().is_none_or(|&x| x <= 0.0) {
            Some(
                "no customer has bought on a second day yet, so nothing shows how often customers come back or when they stop; lifetime value needs customers who came back",
            )
        } else {
            None
        }
    }

    /// Total log-likelihood and its gradient in (r, α, a, b).
    pub fn log_likelihood(&self, p: &BgNbdParams) -> (f64, [f64; 4]) {
        let BgNbdParams { r, alpha, a, b } = *p;
        // Terms that depend only on x.
        let per_x: Vec<PerX> = self
            .xs
            .iter()
            .map(|&x| PerX {
                rx: r + x,
                c4: if x > 0.0 {
                    a.ln() - (b + x - 1.0).ln()
                } else {
                    f64::NEG_INFINITY
                },
                inv_bx1: if x > 0.0 { 1.0 / (b + x - 1.0) } else { 0.0 },
            })
            .collect();
        let mut ll = 0.0;
        let mut g = [0.0; 4];
        let (psi_r, psi_ab, psi_b) = (digamma(r), digamma(a + b), digamma(b));
        let (lg_r, lg_ab, lg_b) = (ln_gamma(r), ln_gamma(a + b), ln_gamma(b));
        for (i, &x) in self.xs.iter().enumerate() {
            let n = self.x_weight[i];
            let a1 = ln_gamma(r + x) - lg_r + r * alpha.ln();
            let a2 = lg_ab + ln_gamma(b + x) - lg_b - ln_gamma(a + b + x);
            ll += n * (a1 + a2);
            g[0] += n * (digamma(r + x) - psi_r + alpha.ln());
            g[1] += n * r / alpha;
            let psi_abx = digamma(a + b + x);
            g[2] += n * (psi_ab - psi_abx);
            g[3] += n * (psi_ab + digamma(b + x) - psi_b - psi_abx);
        }
        let ln_t: Vec<(f64, f64)> = self
            .t_values
            .iter()
            .map(|&t| ((alpha + t).ln(), 1.0 / (alpha + t)))
            .collect();
        let ln_tx: Vec<(f64, f64)> = self
            .tx_values
            .iter()
            .map(|&t| ((alpha + t).ln(), 1.0 / (alpha + t)))
            .collect();
        let partials = self.map_chunks(|tuples| {
            let mut acc = [0.0; 5];
            for tp in tuples {
                let px = &per_x[tp.x as usize];
                let (lt, it) = ln_t[tp.t as usize];
                let a3 = -px.rx * lt;
                if px.c4 == f64::NEG_INFINITY {
                    acc[0] += tp.n * a3;
                    acc[1] -= tp.n * lt;
                    acc[2] -= tp.n * px.rx * it;
                    continue;
                }
                let (ltx, itx) = ln_tx[tp.tx as usize];
                let a4 = px.c4 - px.rx * ltx;
                // log-sum-exp of (a3, a4) and the softmax weight of a4 from
                // one exp: e = exp(lower - higher) serves both. This loop is
                // the fit's time, and exp its largest part.
                let (hi, lo) = if a3 >= a4 { (a3, a4) } else { (a4, a3) };
                let e = (lo - hi).exp();
                let lse = hi + e.ln_1p();
                let w4 = if a4 > a3 {
                    1.0 / (1.0 + e)
                } else {
                    e / (1.0 + e)
                };
                let w3 = 1.0 - w4;
                acc[0] += tp.n * lse;
                acc[1] -= tp.n * (w3 * lt + w4 * ltx);
                acc[2] -= tp.n * px.rx * (w3 * it + w4 * itx);
                acc[3] += tp.n * w4;
                acc[4] -= tp.n * w4 * px.inv_bx1;
            }
            acc
        });
        for acc in partials {
            ll += acc[0];
            g[0] += acc[1];
            g[1] += acc[2];
            g[2] += acc[3] / a;
            g[3] += acc[4];
        }
        (ll, g)
    }

    /// Applies `f` to each of [`CHUNKS`] chunks of the tuples, on up to two
    /// or more threads, returning the results in chunk order.
    fn map_chunks<T: Send, F: Fn(&[Tuple]) -> T + Sync>(&self, f: F) -> Vec<T> {
        let size = self.tuples.len().div_ceil(CHUNKS).max(1);
        let chunks: Vec<&[Tuple]> = self.tuples.chunks(size).collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(chunks.len());
        if self.tuples.len() < PARALLEL_FROM || threads < 2 {
            return chunks.iter().map(|c| f(c)).collect();
        }
        crate::parallel::map(&chunks, threads, &|c: &&[Tuple]| f(c))
    }
}

struct PerX {
    rx: f64,
    c4: f64,
    inv_bx1: f64,
}

impl Objective for BgNbdData {
    fn cost_gradient(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let p = BgNbdParams::from_log(theta);
        let (ll, g) = self.log_likelihood(&p);
        let n = self.customers;
        // d/d ln θ = θ · d/dθ; minimize the mean negative log-likelihood.
        let grad = vec![
            -g[0] * p.r / n,
            -g[1] * p.alpha / n,
            -g[2] * p.a / n,
            -g[3] * p.b / n,
        ];
        (-ll / n, grad)
    }
}

/// A fitted BG/NBD model with the optimizer's account.
#[derive(Debug, Clone, Serialize)]
pub struct BgNbdFit {
    pub params: BgNbdParams,
    pub log_likelihood: f64,
    /// Standard errors of (r, α, a, b) from the observed information; `None`
    /// when the Hessian is not positive definite.
    pub standard_errors: Option<[f64; 4]>,
    pub customers: u64,
    pub distinct_tuples: usize,
    pub optimizer: OptimReport,
}

/// Fits by maximum likelihood, starting from r = 1, a = 1, b = 1 and α set
/// so that the mean rate r/α matches the data's (x + 1) / (T + 1) on average.
/// Not converged, whatever the gradient, on [uninformative](BgNbdData::uninformative)
/// data or where the observed information is not positive definite: a
/// flat likelihood's stationary point is no estimate to predict from.
pub fn fit(data: &BgNbdData, max_iterations: u64) -> BgNbdFit {
    let mean_t = data
        .tuples
        .iter()
        .map(|tp| tp.n * data.t_values[tp.t as usize])
        .sum::<f64>()
        / data.customers;
    let mean_x = data
        .xs
        .iter()
        .zip(&data.x_weight)
        .map(|(x, n)| x * n)
        .sum::<f64>()
        / data.customers;
    let start = BgNbdParams {
        r: 1.0,
        alpha: ((mean_t + 1.0) / (mean_x + 1.0)).max(1e-3),
        a: 1.0,
        b: 1.0,
    };
    let mut report = optim::minimize(data, start.to_log(), max_iterations);
    let params = BgNbdParams::from_log(&report.theta);
    let standard_errors = optim::standard_errors_or_reject(data, &mut report, data.customers)
        .map(|v| [v[0], v[1], v[2], v[3]]);
    if let Some(why) = data.uninformative() {
        report.reject(why);
    }
    BgNbdFit {
        params,
        log_likelihood: -report.cost * data.customers,
        standard_errors,
        customers: data.customers(),
        distinct_tuples: data.distinct_tuples(),
        optimizer: report,
    }
}

/// P(alive | x, t_x, T) (FHL 2005 eq. 12): 1 when x = 0.
pub fn p_alive(p: &BgNbdParams, x: u32, t_x: f64, t: f64) -> f64 {
    if x == 0 {
        return 1.0;
    }
    1.0 / (1.0 + log_dropout_odds(p, x, t_x, t).exp())
}

/// ln[ a/(b+x−1) · ((α+T)/(α+t_x))^(r+x) ]: the log-odds of having dropped
/// out at the last purchase, given the history (x > 0).
fn log_dropout_odds(p: &BgNbdParams, x: u32, t_x: f64, t: f64) -> f64 {
    let x = f64::from(x);
    // ln((α+T)/(α+t_x)) as ln(1 + (T−t_x)/(α+t_x)): the difference of two
    // logarithms would lose digits that the factor r+x then multiplies.
    p.a.ln() - (p.b + x - 1.0).ln() + (p.r + x) * ((t - t_x) / (p.alpha + t_x)).ln_1p()
}

/// E[purchases in (T, T + h] | alive, x, T]: FHL 2005 eq. 10 without its
/// P(alive) denominator, which depends on t_x; the caller multiplies.
///
/// Eq. 10's bracket, (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+h))^(r+x) ·
/// ₂F₁(r+x, b+x; a+b+x−1; z)], z = h/(α+T+h), overflows for large x and is
/// 0/0 at a = 1. With Euler's transformation the product of the power and
/// ₂F₁ is (1−z)^(a−1) ₂F₁(a+b−1−r, a−1; c; z), c = a+b+x−1, and with
/// ₂F₁ = 1 + (a−1)·D/c (c·D from [`hyp2f1_scaled_deficit`]) the bracket becomes
///
/// ```text
/// c · (−expm1((a−1)·L)/(a−1)) − e^((a−1)·L) · (c·D),   L = ln(1−z) = −ln(1 + h/(α+T))
/// ```
///
/// finite for every x and T and exact through a = 1. This equals the
/// integral over p ~ Beta(a, b+x) of (1 − (1 + p·h/(α+T))^−(r+x)) / p, which
/// the tests use as an independent check.
pub fn expected_purchases_if_alive(
    p: &BgNbdParams,
    x: u32,
    t: f64,
    horizon: f64,
) -> std::result::Result<f64, super::special::Hyp2f1Error> {
    if horizon <= 0.0 {
        return Ok(0.0);
    }
    let x = f64::from(x);
    let c = p.a + p.b + x - 1.0;
    let u = horizon / (p.alpha + t);
    let z = u / (1.0 + u);
    let l = -u.ln_1p();
    let e = p.a - 1.0;
    // −expm1(e·L)/e, with its limit −L at e = 0.
    let first = if (e * l).abs() < 1e-12 {
        -l * (1.0 + 0.5 * e * l)
    } else {
        -(e * l).exp_m1() / e
    };
    // c > −1 always (a + b > 0), so c·D has no pole; it is 0/0-free at c = 0.
    let cd = hyp2f1_scaled_deficit(p.a + p.b - 1.0 - p.r, e, c, z)?;
    Ok(c * first - (e * l).exp() * cd)
}

/// E[purchases in (T, T + h] | x, t_x, T] (FHL 2005 eq. 10).
pub fn conditional_expected_purchases(
    p: &BgNbdParams,
    x: u32,
    t_x: f64,
    t: f64,
    horizon: f64,
) -> std::result::Result<f64, super::special::Hyp2f1Error> {
    Ok(p_alive(p, x, t_x, t) * expected_purchases_if_alive(p, x, t, horizon)?)
}

#[cfg(test)]
// Reference values are pasted with every digit their source printed.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;

    const CDNOW: BgNbdParams = BgNbdParams {
        r: 0.2426,
        alpha: 4.4136,
        a: 0.7929,
        b: 2.4259,
    };

    /// (r, α, a, b, x, t_x, T, h, E[purchases in (T, T+h]], P(alive)).
    /// Expected values from mpmath at 40 digits, as the integral over
    /// p ~ Beta(a, b+x) of (1 − (1 + p·h/(α+T))^−(r+x))/p divided by the
    /// P(alive) denominator; where a ≠ 1 FHL's eq. 10 with mpmath.hyp2f1
    /// agrees to 1e-14 or better, and so does lifetimes' formula with
    /// scipy.special.hyp2f1 (to 1e-11) except at a = 1, where it is 0/0.
    /// Script: tests/fixtures/value/README.md.
    type Case = (f64, f64, f64, f64, u32, f64, f64, f64, f64, f64);
    const CASES: [Case; 11] = [
        (
            0.2426,
            4.4136,
            0.7929,
            2.4259,
            2,
            30.43,
            38.86,
            39.0,
            1.225922657987033,
            0.72661404485424712,
        ),
        (
            0.2426,
            4.4136,
            0.7929,
            2.4259,
            0,
            0.0,
            38.86,
            39.0,
            0.19478676916062003,
            1.0,
        ),
        (
            0.2426,
            4.4136,
            0.7929,
            2.4259,
            7,
            35.0,
            38.86,
            39.0,
            4.3875235149741372,
            0.84378694320964954,
        ),
        (
            0.2426,
            4.4136,
            0.7929,
            2.4259,
            1,
            1.71,
            38.86,
            52.0,
            0.25991730117954943,
            0.21223426371008022,
        ),
        (
            0.9,
            4.0,
            0.7,
            14.0,
            300,
            700.0,
            730.0,
            365.0,
            0.20401501814837498,
            0.0015719248847906205,
        ),
        (
            0.9,
            4.0,
            0.7,
            14.0,
            0,
            0.0,
            0.0,
            365.0,
            30.800450716649869,
            1.0,
        ),
        (
            0.9,
            4.0,
            0.7,
            14.0,
            40,
            90.0,
            400.0,
            90.0,
            8.2100735278940606e-24,
            9.5303578668723787e-25,
        ),
        (
            0.5,
            2.0,
            1.0,
            3.0,
            3,
            10.0,
            20.0,
            30.0,
            1.2922342518021138,
            0.37471603297843321,
        ),
        (
            0.5,
            2.0,
            0.3,
            0.4,
            0,
            0.0,
            5.0,
            20.0,
            0.91698445400834188,
            1.0,
        ),
        (
            0.5,
            0.01,
            0.6,
            2.0,
            0,
            0.0,
            0.0,
            365.0,
            140.02962824497643,
            1.0,
        ),
        (
            0.9,
            4.0,
            0.7,
            14.0,
            2000,
            7000.0,
            7300.0,
            365.0,
            1.0130965401576019e-31,
            1.030619465501202e-33,
        ),
    ];

    #[test]
    fn conditional_expectation_and_p_alive_match_high_precision_references() {
        for (r, alpha, a, b, x, t_x, t, h, want_e, want_p) in CASES {
            let p = BgNbdParams { r, alpha, a, b };
            let got_p = p_alive(&p, x, t_x, t);
            assert!(
                (got_p - want_p).abs() <= 1e-12 * want_p,
                "P(alive) {p:?} x={x}: {got_p} vs {want_p}"
            );
            let got_e = conditional_expected_purchases(&p, x, t_x, t, h).expect("finite");
            assert!(
                (got_e - want_e).abs() <= 1e-10 * want_e,
                "E {p:?} x={x} t_x={t_x} T={t} h={h}: {got_e} vs {want_e}"
            );
        }
    }

    #[test]
    fn expectation_is_smooth_through_a_equal_one() {
        let base = BgNbdParams {
            r: 0.5,
            alpha: 2.0,
            a: 1.0,
            b: 3.0,
        };
        let at = expected_purchases_if_alive(&base, 3, 20.0, 30.0).expect("ok");
        for eps in [1e-9, 1e-7, 1e-5] {
            for s in [-1.0, 1.0] {
                let p = BgNbdParams {
                    a: 1.0 + s * eps,
                    ..base
                };
                let near = expected_purchases_if_alive(&p, 3, 20.0, 30.0).expect("ok");
                assert!(
                    (near - at).abs() < 1e-3 * eps.sqrt() * at,
                    "{eps}: {near} vs {at}"
                );
            }
        }
    }

    #[test]
    fn expectation_grows_with_the_horizon_and_starts_at_rate_times_h() {
        let p = CDNOW;
        let mut last = 0.0;
        for h in [0.0, 1.0, 5.0, 20.0, 52.0, 104.0, 520.0] {
            let e = expected_purchases_if_alive(&p, 2, 38.0, h).expect("ok");
            assert!(e >= last, "{h}: {e} < {last}");
            last = e;
        }
        // Small horizon: E ≈ posterior mean rate (r+x)/(α+T) × h.
        let h = 1e-4;
        let e = expected_purchases_if_alive(&p, 2, 38.0, h).expect("ok");
        let want = (p.r + 2.0) / (p.alpha + 38.0) * h;
        assert!((e - want).abs() < 1e-6 * want, "{e} vs {want}");
    }

    /// The analytic gradient against central differences of the likelihood.
    #[test]
    fn gradient_matches_finite_differences() {
        let x = [0, 1, 2, 7, 0, 30, 1];
        let t_x = [0.0, 1.71, 30.43, 35.0, 0.0, 36.0, 20.0];
        let t = [38.86, 38.86, 38.86, 38.86, 10.0, 38.86, 20.0];
        let data = BgNbdData::new(&x, &t_x, &t).expect("valid");
        let theta = CDNOW.to_log();
        let (_, g) = data.cost_gradient(&theta);
        for i in 0..4 {
            let h = 1e-6;
            let mut up = theta.clone();
            let mut down = theta.clone();
            up[i] += h;
            down[i] -= h;
            let fd = (data.cost_gradient(&up).0 - data.cost_gradient(&down).0) / (2.0 * h);
            assert!((fd - g[i]).abs() < 1e-7, "param {i}: {fd} vs {}", g[i]);
        }
    }

    #[test]
    fn grouping_does_not_change_the_likelihood() {
        let x = [0, 0, 1, 1, 3, 0];
        let t_x = [0.0, 0.0, 5.0, 5.0, 9.0, 0.0];
        let t = [10.0, 10.0, 12.0, 12.0, 12.0, 7.0];
        let data = BgNbdData::new(&x, &t_x, &t).expect("valid");
        assert_eq!(data.distinct_tuples(), 4);
        let one_by_one: f64 = (0..6)
            .map(|i| {
                BgNbdData::new(&x[i..=i], &t_x[i..=i], &t[i..=i])
                    .expect("valid")
                    .log_likelihood(&CDNOW)
                    .0
            })
            .sum();
        let grouped = data.log_likelihood(&CDNOW).0;
        assert!(
            (grouped - one_by_one).abs() < 1e-10,
            "{grouped} vs {one_by_one}"
        );
    }

    #[test]
    fn likelihood_stays_finite_for_huge_counts_and_ages() {
        let data = BgNbdData::new(&[0, 5_000, 100_000], &[0.0, 1e4, 9.9e5], &[1e6, 1e6, 1e6])
            .expect("valid");
        for p in [
            CDNOW,
            BgNbdParams {
                r: 1e-6,
                alpha: 1e6,
                a: 1e-6,
                b: 1e6,
            },
            BgNbdParams {
                r: 1e5,
                alpha: 1e-5,
                a: 1e4,
                b: 1e-4,
            },
        ] {
            let (ll, g) = data.log_likelihood(&p);
            assert!(ll.is_finite(), "{p:?}: {ll}");
            assert!(g.iter().all(|v| v.is_finite()), "{p:?}: {g:?}");
            let e = conditional_expected_purchases(&p, 100_000, 9.9e5, 1e6, 365.0).expect("ok");
            assert!(e.is_finite() && e >= 0.0, "{p:?}: {e}");
        }
    }

    /// Without a repeat purchase the likelihood is (α/(α+T))^r for every
    /// customer (FHL 2005 eq. 6 with x = 0): it does not involve a or b,
    /// which stay wherever they started, and with T = 0 too it is 1
    /// everywhere. Neither is an estimate, whatever the gradient says.
    #[test]
    fn data_without_repeat_purchases_is_not_an_estimate() {
        let cases: [(&str, Vec<f64>, &str); 2] = [
            (
                "one day of data",
                vec![0.0; 50],
                "first purchase on the last day",
            ),
            (
                "no repeat buyers",
                (0..50).map(|i| f64::from(i % 10) * 7.0).collect(),
                "no customer has bought on a second day",
            ),
        ];
        for (name, t, why) in cases {
            let data = BgNbdData::new(&[0; 50], &[0.0; 50], &t).expect("valid");
            let f = fit(&data, 1000);
            assert!(!f.optimizer.converged, "{name}: {}", f.optimizer.describe());
            assert!(
                f.optimizer.describe().contains(why),
                "{name}: {}",
                f.optimizer.describe()
            );
        }
    }

    /// One customer of 50 came back once: L-BFGS walks towards the edge
    /// (a → ∞, b → 0) until the gradient is below tolerance, where the
    /// likelihood is flat and the observed information not positive
    /// definite. A point the data do not pin down is no estimate.
    #[test]
    fn a_stationary_point_without_positive_definite_information_is_not_converged() {
        let mut x = vec![0; 49];
        let mut t_x = vec![0.0; 49];
        let mut t: Vec<f64> = (0..49).map(f64::from).collect();
        x.push(1);
        t_x.push(3.0);
        t.push(10.0);
        let f = fit(&BgNbdData::new(&x, &t_x, &t).expect("valid"), 1000);
        assert!(
            f.optimizer.gradient_norm < optim::GRADIENT_TOLERANCE,
            "{}",
            f.optimizer.describe()
        );
        assert_eq!(f.standard_errors, None);
        assert!(!f.optimizer.converged);
        assert_eq!(
            f.optimizer.unidentified.as_deref(),
            Some(optim::FLAT_LIKELIHOOD)
        );
    }

    #[test]
    fn inconsistent_rows_are_refused() {
        assert!(BgNbdData::new(&[1], &[5.0], &[4.0]).is_err());
        assert!(BgNbdData::new(&[0], &[1.0], &[4.0]).is_err());
        assert!(BgNbdData::new(&[1], &[f64::NAN], &[4.0]).is_err());
        assert!(BgNbdData::new(&[], &[], &[]).is_err());
    }
}
