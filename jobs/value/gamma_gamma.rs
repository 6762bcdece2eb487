//! The Gamma-Gamma model of spend per transaction (Fader & Hardie 2013,
//! "The Gamma-Gamma Model of Monetary Value"; Colombo & Jiang 1999).
//!
//! A customer's transaction values are Gamma(p, ν) with a customer-specific
//! scale ν ~ Gamma(q, γ); what is observed is m_x, the mean of the customer's
//! x repeat transactions. Integrating ν out, with s = x·m_x,
//!
//! ```text
//! ln L = ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln γ + px ln x + (px−1) ln m_x − (px+q) ln(γ + s)
//! ```
//!
//! Only the last term needs a logarithm per customer: the ln Γ terms are
//! computed once per distinct x and Σ ln m_x, Σ x ln m_x once for all. The
//! model assumes spend is independent of purchase frequency; [`pearson`]
//! measures how far the data departs from that.

use serde::Serialize;

use super::optim::{self, Objective, OptimReport};
use super::special::{digamma, ln_gamma};
use crate::{Error, Result};

/// Fitted Gamma-Gamma parameters (γ in currency units).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GammaGammaParams {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

impl GammaGammaParams {
    fn from_log(theta: &[f64]) -> GammaGammaParams {
        GammaGammaParams {
            p: theta[0].exp(),
            q: theta[1].exp(),
            gamma: theta[2].exp(),
        }
    }

    /// (name, value) in a stable order, for reports.
    pub fn named(&self) -> [(&'static str, f64); 3] {
        [("p", self.p), ("q", self.q), ("gamma", self.gamma)]
    }

    /// Mean transaction value of the population, γp/(q − 1); `None` when
    /// q ≤ 1 (the mean is infinite).
    pub fn population_mean(&self) -> Option<f64> {
        (self.q > 1.0).then(|| self.gamma * self.p / (self.q - 1.0))
    }

    /// E[transaction value | x, m_x] (FH 2013 eq. 5): a weighted average of
    /// the population mean and the customer's own mean, the customer's
    /// weight growing with x; the population mean when x = 0. `None` when
    /// q ≤ 1.
    pub fn conditional_expected_value(&self, x: u32, m_x: f64) -> Option<f64> {
        let x = f64::from(x);
        if self.q <= 1.0 {
            return None;
        }
        if x == 0.0 {
            return self.population_mean();
        }
        Some((self.gamma + m_x * x) * self.p / (self.p * x + self.q - 1.0))
    }
}

/// Repeat customers with their mean repeat-transaction value.
#[derive(Debug, Clone)]
pub struct GammaGammaData {
    xs: Vec<f64>,
    x_weight: Vec<f64>,
    /// Per customer: s = x·m_x and which distinct x.
    s: Vec<f64>,
    x_of: Vec<f64>,
    sum_ln_m: f64,
    sum_x_ln_m: f64,
    customers: f64,
}

impl GammaGammaData {
    /// Customers with x ≥ 1 and m_x > 0 (others carry no information on
    /// spend or break the model's support; the caller counts them).
    pub fn new(x: &[u32], m_x: &[f64]) -> Result<GammaGammaData> {
        if x.len() != m_x.len() {
            return Err(Error::Internal(
                "Gamma-Gamma input columns differ in length".into(),
            ));
        }
        let mut xs: Vec<u32> = Vec::new();
        let mut s = Vec::new();
        let mut x_of = Vec::new();
        let (mut sum_ln_m, mut sum_x_ln_m) = (0.0, 0.0);
        for (&xi, &m) in x.iter().zip(m_x) {
            if xi == 0 || m.is_nan() || m <= 0.0 || !m.is_finite() {
                return Err(Error::Internal(
                    "Gamma-Gamma needs x >= 1 and a positive finite mean value for every customer"
                        .into(),
                ));
            }
            let xf = f64::from(xi);
            xs.push(xi);
            s.push(xf * m);
            x_of.push(xf);
            sum_ln_m += m.ln();
            sum_x_ln_m += xf * m.ln();
        }
        if s.len() < 3 {
            return Err(Error::Model {
                model: "gamma_gamma".into(),
                reason: format!(
                    "{} customers with repeat purchases: too few to fit spend",
                    s.len()
                ),
            });
        }
        xs.sort_unstable();
        let mut distinct: Vec<f64> = Vec::new();
        let mut weight: Vec<f64> = Vec::new();
        for v in xs {
            let v = f64::from(v);
            if distinct.last() == Some(&v) {
                *weight.last_mut().expect("pushed with distinct") += 1.0;
            } else {
                distinct.push(v);
                weight.push(1.0);
            }
        }
        Ok(GammaGammaData {
            xs: distinct,
            x_weight: weight,
            customers: s.len() as f64,
            s,
            x_of,
            sum_ln_m,
            sum_x_ln_m,
        })
    }

    /// Customers in the fit.
    pub fn customers(&self) -> u64 {
        self.customers as u64
    }

    /// Total log-likelihood and its gradient in (p, q, γ).
    pub fn log_likelihood(&self, par: &GammaGammaParams) -> (f64, [f64; 3]) {
        let GammaGammaParams { p, q, gamma } = *par;
        let mut ll = p * self.sum_x_ln_m - self.sum_ln_m;
        let mut g = [self.sum_x_ln_m, 0.0, 0.0];
        let (lg_q, psi_q) = (ln_gamma(q), digamma(q));
        for (&x, &n) in self.xs.iter().zip(&self.x_weight) {
            let px = p * x;
            ll += n * (ln_gamma(px + q) - ln_gamma(px) - lg_q + q * gamma.ln() + px * x.ln());
            let psi_pxq = digamma(px + q);
            g[0] += n * x * (psi_pxq - digamma(px) + x.ln());
            g[1] += n * (psi_pxq - psi_q + gamma.ln());
            g[2] += n * q / gamma;
        }
        for (&s, &x) in self.s.iter().zip(&self.x_of) {
            let l = (gamma + s).ln();
            let w = p * x + q;
            ll -= w * l;
            g[0] -= x * l;
            g[1] -= l;
            g[2] -= w / (gamma + s);
        }
        (ll, g)
    }
}

impl Objective for GammaGammaData {
    fn cost_gradient(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let par = GammaGammaParams::from_log(theta);
        let (ll, g) = self.log_likelihood(&par);
        let n = self.customers;
        (
            -ll / n,
            vec![-g[0] * par.p / n, -g[1] * par.q / n, -g[2] * par.gamma / n],
        )
    }
}

/// A fitted Gamma-Gamma model with the optimizer's account.
#[derive(Debug, Clone, Serialize)]
pub struct GammaGammaFit {
    pub params: GammaGammaParams,
    pub log_likelihood: f64,
    /// Standard errors of (p, q, γ); `None` when the Hessian is not positive
    /// definite.
    pub standard_errors: Option<[f64; 3]>,
    pub customers: u64,
    pub optimizer: OptimReport,
}

/// Fits by maximum likelihood from p = 1, q = 2 and γ = the mean of m_x, so
/// the starting population mean γp/(q−1) is the sample's. Not converged
/// where the observed information is not positive definite, as BG/NBD.
pub fn fit(data: &GammaGammaData, max_iterations: u64) -> GammaGammaFit {
    let mean_m = data
        .s
        .iter()
        .zip(&data.x_of)
        .map(|(s, x)| s / x)
        .sum::<f64>()
        / data.customers;
    let start = vec![0.0, 2f64.ln(), mean_m.max(1e-6).ln()];
    let mut report = optim::minimize(data, start, max_iterations);
    let standard_errors = optim::standard_errors_or_reject(data, &mut report, data.customers)
        .map(|v| [v[0], v[1], v[2]]);
    GammaGammaFit {
        params: GammaGammaParams::from_log(&report.theta),
        log_likelihood: -report.cost * data.customers,
        standard_errors,
        customers: data.customers(),
        optimizer: report,
    }
}

/// Pearson correlation of two equally long samples; `None` with fewer than
/// two points or no variation.
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len().min(b.len());
    if n < 2 {
        return None;
    }
    let ma = a[..n].iter().sum::<f64>() / n as f64;
    let mb = b[..n].iter().sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (da, db) = (a[i] - ma, b[i] - mb);
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}

#[cfg(test)]
// Reference values are pasted with every digit their source printed.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_finite_differences() {
        let data =
            GammaGammaData::new(&[1, 2, 2, 5, 9], &[10.0, 22.5, 7.0, 35.2, 14.1]).expect("valid");
        let theta = vec![6.25f64.ln(), 3.74f64.ln(), 15.44f64.ln()];
        let (_, g) = data.cost_gradient(&theta);
        for i in 0..3 {
            let h = 1e-6;
            let mut up = theta.clone();
            let mut down = theta.clone();
            up[i] += h;
            down[i] -= h;
            let fd = (data.cost_gradient(&up).0 - data.cost_gradient(&down).0) / (2.0 * h);
            assert!((fd - g[i]).abs() < 1e-7, "param {i}: {fd} vs {}", g[i]);
        }
    }

    /// Total log-likelihood of three customers at p = 6.25, q = 3.74,
    /// γ = 15.44, against scipy: the formula in the module docs summed with
    /// scipy.special.gammaln over (x, m) = (2, 22.5), (1, 10.0), (5, 35.2)
    /// gives -11.524585693793405 (lifetimes' GammaGammaFitter uses the same
    /// likelihood).
    #[test]
    fn log_likelihood_matches_scipy() {
        let data = GammaGammaData::new(&[2, 1, 5], &[22.5, 10.0, 35.2]).expect("valid");
        let par = GammaGammaParams {
            p: 6.25,
            q: 3.74,
            gamma: 15.44,
        };
        let got = data.log_likelihood(&par).0;
        assert!((got - -11.524585693793405).abs() < 1e-10, "{got}");
        assert!(
            GammaGammaData::new(&[1, 1], &[1.0, 1.0]).is_err(),
            "too few"
        );
        assert!(
            GammaGammaData::new(&[1, 0, 2], &[1.0, 1.0, 1.0]).is_err(),
            "x = 0"
        );
        assert!(
            GammaGammaData::new(&[1, 1, 2], &[1.0, 0.0, 1.0]).is_err(),
            "m = 0"
        );
    }

    #[test]
    fn conditional_value_shrinks_towards_the_population_mean() {
        let par = GammaGammaParams {
            p: 6.25,
            q: 3.74,
            gamma: 15.44,
        };
        let pop = par.population_mean().expect("q > 1");
        assert!((pop - 15.44 * 6.25 / 2.74).abs() < 1e-12);
        assert_eq!(par.conditional_expected_value(0, 0.0), Some(pop));
        let one = par.conditional_expected_value(1, 100.0).expect("q > 1");
        let many = par.conditional_expected_value(50, 100.0).expect("q > 1");
        assert!(
            pop < one && one < many && many < 100.0,
            "{pop} {one} {many}"
        );
        let heavy = GammaGammaParams { q: 0.9, ..par };
        assert_eq!(heavy.population_mean(), None);
        assert_eq!(heavy.conditional_expected_value(3, 10.0), None);
    }

    #[test]
    fn pearson_known_values() {
        assert_eq!(pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]), Some(1.0));
        let r = pearson(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]).expect("varies");
        // numpy.corrcoef([1,2,3,4],[1,3,2,4])[0,1] = 0.8
        assert!((r - 0.8).abs() < 1e-12, "{r}");
        assert_eq!(pearson(&[1.0, 1.0], &[1.0, 2.0]), None);
    }
}
