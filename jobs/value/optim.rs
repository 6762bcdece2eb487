//! Maximum-likelihood fitting shared by BG/NBD and Gamma-Gamma: minimize
//! the mean negative log-likelihood over log-parameters with argmin.
//!
//! L-BFGS with the analytic gradient first: at a million customers one
//! likelihood evaluation costs milliseconds, and L-BFGS needs tens of them
//! where Nelder-Mead needs hundreds. If L-BFGS stops without converging (a
//! failed line search far from the optimum, the iteration budget), Nelder-Mead
//! continues from where it stopped, with the rest of the budget. Whatever the
//! solver reports, the verdict is ours: converged means the gradient of the
//! mean log-likelihood is below [`GRADIENT_TOLERANCE`] at the returned point,
//! so a fit that merely ran out of iterations is never called converged. A
//! zero gradient is not enough either: on data that say nothing about a
//! parameter the likelihood is flat and every point is stationary, so the
//! models also [`reject`](OptimReport::reject) a point whose observed
//! information is not positive definite (see [`standard_errors`]).

use std::sync::Mutex;

use argmin::core::{CostFunction, Executor, Gradient, State, TerminationReason};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::neldermead::NelderMead;
use argmin::solver::quasinewton::LBFGS;
use serde::Serialize;

/// Largest |∂(mean log-likelihood)/∂ ln θ| accepted as an optimum. A
/// parameter's error from stopping here is about this divided by its
/// per-customer Fisher information: far below its standard error.
pub const GRADIENT_TOLERANCE: f64 = 1e-6;

/// A smooth objective in log-parameters: mean negative log-likelihood and
/// its gradient.
pub trait Objective: Sync {
    /// (cost, gradient) at `theta`. Non-finite costs are allowed (they make
    /// the line search back off).
    fn cost_gradient(&self, theta: &[f64]) -> (f64, Vec<f64>);
}

/// How an optimization ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptimReport {
    /// The best point found (log-parameters).
    pub theta: Vec<f64>,
    /// Mean negative log-likelihood there.
    pub cost: f64,
    /// max |gradient| there.
    pub gradient_norm: f64,
    /// Whether `gradient_norm` < [`GRADIENT_TOLERANCE`] (with a finite
    /// cost) and the point was not rejected (`unidentified` is `None`).
    pub converged: bool,
    /// Why the point is no estimate although the gradient vanishes there:
    /// the data carry no information on some parameter, or the observed
    /// information is not positive definite. `None` when neither.
    pub unidentified: Option<String>,
    /// Iterations used, all solvers together.
    pub iterations: u64,
    /// "L-BFGS" or "L-BFGS, then Nelder-Mead".
    pub method: String,
    /// The last solver's termination reason, in its words.
    pub termination: String,
}

impl OptimReport {
    /// Marks the point as no estimate, for `why` (in words an owner reads:
    /// it goes into the job's warnings).
    pub fn reject(&mut self, why: impl Into<String>) {
        self.converged = false;
        self.unidentified = Some(why.into());
    }

    /// A one-line account for logs, warnings and `model_metrics.detail`.
    pub fn describe(&self) -> String {
        if let Some(why) = &self.unidentified {
            return format!(
                "NOT converged: {why} (the optimizer stopped after {} iterations ({}); max |gradient| {:.2e}; mean -log-likelihood {:.6})",
                self.iterations, self.termination, self.gradient_norm, self.cost
            );
        }
        format!(
            "{} after {} iterations ({}); max |gradient| {:.2e} (tolerance {:.0e}); mean -log-likelihood {:.6}",
            if self.converged {
                "converged"
            } else {
                "NOT converged"
            },
            self.iterations,
            self.termination,
            self.gradient_norm,
            GRADIENT_TOLERANCE,
            self.cost
        )
    }
}

/// Minimizes `objective` from `start` with at most `max_iterations`
/// iterations in total.
pub fn minimize<O: Objective>(objective: &O, start: Vec<f64>, max_iterations: u64) -> OptimReport {
    let problem = Cached::new(objective);
    let lbfgs_budget = max_iterations.max(1);
    let (mut theta, mut iterations, mut termination) =
        match run_lbfgs(&problem, start.clone(), lbfgs_budget) {
            Ok(v) => v,
            Err(e) => (start, 0, format!("L-BFGS failed: {e}")),
        };
    let (mut cost, grad) = problem.eval(&theta);
    let mut norm = inf_norm(&grad);
    let mut method = "L-BFGS".to_string();
    let remaining = max_iterations.saturating_sub(iterations);
    if !(norm < GRADIENT_TOLERANCE && cost.is_finite()) && remaining > 0 {
        method = "L-BFGS, then Nelder-Mead".into();
        match run_nelder_mead(&problem, theta.clone(), remaining) {
            Ok((t, it, why)) => {
                iterations += it;
                termination = why;
                let (c, g) = problem.eval(&t);
                if c <= cost || !cost.is_finite() {
                    theta = t;
                    cost = c;
                    norm = inf_norm(&g);
                }
            }
            Err(e) => termination = format!("Nelder-Mead failed: {e}"),
        }
    }
    OptimReport {
        converged: norm < GRADIENT_TOLERANCE && cost.is_finite(),
        unidentified: None,
        theta,
        cost,
        gradient_norm: norm,
        iterations,
        method,
        termination,
    }
}

fn inf_norm(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, g| {
        if g.is_nan() {
            f64::INFINITY
        } else {
            m.max(g.abs())
        }
    })
}

fn reason_text(reason: Option<&TerminationReason>) -> String {
    reason.map_or_else(
        || "not terminated".to_string(),
        |r| match r {
            TerminationReason::SolverExit(why) => why.clone(),
            other => other.text().to_string(),
        },
    )
}

type Run = (Vec<f64>, u64, String);

fn run_lbfgs<O: Objective>(
    problem: &Cached<'_, O>,
    start: Vec<f64>,
    max_iterations: u64,
) -> Result<Run, argmin::core::Error> {
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
        .with_tolerance_grad(GRADIENT_TOLERANCE)?
        // Stop on the gradient only: a cost change below machine precision
        // is not evidence of an optimum.
        .with_tolerance_cost(0.0)?;
    let result = Executor::new(problem.clone(), solver)
        .configure(|s| s.param(start).max_iters(max_iterations))
        .run()?;
    let state = result.state();
    let theta = state
        .get_best_param()
        .or(state.get_param())
        .cloned()
        .unwrap_or_default();
    Ok((
        theta,
        state.get_iter(),
        format!("L-BFGS: {}", reason_text(state.get_termination_reason())),
    ))
}

fn run_nelder_mead<O: Objective>(
    problem: &Cached<'_, O>,
    start: Vec<f64>,
    max_iterations: u64,
) -> Result<Run, argmin::core::Error> {
    let mut simplex = vec![start.clone()];
    for i in 0..start.len() {
        let mut p = start.clone();
        p[i] += 0.1;
        simplex.push(p);
    }
    let solver = NelderMead::new(simplex).with_sd_tolerance(1e-15)?;
    let result = Executor::new(problem.clone(), solver)
        .configure(|s| s.max_iters(max_iterations))
        .run()?;
    let state = result.state();
    let theta = state
        .get_best_param()
        .or(state.get_param())
        .cloned()
        .unwrap_or(start);
    Ok((
        theta,
        state.get_iter(),
        format!(
            "Nelder-Mead: {}",
            reason_text(state.get_termination_reason())
        ),
    ))
}

/// (point, cost, gradient).
type Evaluation = (Vec<f64>, f64, Vec<f64>);

/// The objective with the last evaluation remembered: argmin asks for the
/// cost and then the gradient at the same point, and one pass computes both.
struct Cached<'a, O> {
    objective: &'a O,
    last: std::sync::Arc<Mutex<Option<Evaluation>>>,
}

impl<O> Clone for Cached<'_, O> {
    fn clone(&self) -> Self {
        Cached {
            objective: self.objective,
            last: self.last.clone(),
        }
    }
}

impl<'a, O: Objective> Cached<'a, O> {
    fn new(objective: &'a O) -> Self {
        Cached {
            objective,
            last: std::sync::Arc::new(Mutex::new(None)),
        }
    }

    fn eval(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, c, g)) = last.as_ref()
            && t.as_slice() == theta
        {
            return (*c, g.clone());
        }
        let (c, g) = self.objective.cost_gradient(theta);
        // A NaN cost would poison the solvers' comparisons; +∞ makes them
        // back off instead.
        let c = if c.is_nan() { f64::INFINITY } else { c };
        *last = Some((theta.to_vec(), c, g.clone()));
        (c, g)
    }
}

impl<O: Objective> CostFunction for Cached<'_, O> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, theta: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        Ok(self.eval(theta).0)
    }
}

impl<O: Objective> Gradient for Cached<'_, O> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, theta: &Vec<f64>) -> Result<Vec<f64>, argmin::core::Error> {
        let (_, g) = self.eval(theta);
        if g.iter().any(|v| !v.is_finite()) {
            return Err(argmin::core::Error::msg(
                "the gradient is not finite at this point",
            ));
        }
        Ok(g)
    }
}

/// Why a stationary point whose observed information is not positive
/// definite is no estimate, in words an owner reads.
pub const FLAT_LIKELIHOOD: &str = "the data do not pin the model's parameters down (the likelihood is flat at its maximum: the observed information is not positive definite); a longer history or more customers who came back are needed";

/// [`standard_errors`] at the point `report` ended on; a converged report
/// whose observed information there is not positive definite is
/// [rejected](OptimReport::reject): a zero gradient on a flat likelihood
/// (no information on some parameter) says nothing about where the optimum is.
pub fn standard_errors_or_reject<O: Objective>(
    objective: &O,
    report: &mut OptimReport,
    n: f64,
) -> Option<Vec<f64>> {
    let se = standard_errors(objective, &report.theta, n);
    if se.is_none() && report.converged {
        report.reject(FLAT_LIKELIHOOD);
    }
    se
}

/// Standard errors of the parameters (not their logarithms) from the
/// observed information: the Hessian of the total negative log-likelihood in
/// log-parameters by central differences of the analytic gradient, inverted,
/// then the delta method (SE(θ) = θ · SE(ln θ)). `None` when the Hessian is
/// not positive definite (a flat or non-optimal point).
// Index loops read like the matrix algebra they implement.
#[allow(clippy::needless_range_loop)]
pub fn standard_errors<O: Objective>(objective: &O, theta: &[f64], n: f64) -> Option<Vec<f64>> {
    let k = theta.len();
    let h = 1e-5;
    let mut hess = vec![vec![0.0; k]; k];
    for j in 0..k {
        let mut up = theta.to_vec();
        let mut down = theta.to_vec();
        up[j] += h;
        down[j] -= h;
        let (_, gu) = objective.cost_gradient(&up);
        let (_, gd) = objective.cost_gradient(&down);
        for i in 0..k {
            hess[i][j] = (gu[i] - gd[i]) / (2.0 * h) * n;
        }
    }
    for i in 0..k {
        for j in 0..i {
            let m = 0.5 * (hess[i][j] + hess[j][i]);
            hess[i][j] = m;
            hess[j][i] = m;
        }
    }
    let cov = invert_spd(hess)?;
    Some((0..k).map(|i| theta[i].exp() * cov[i][i].sqrt()).collect())
}

/// Inverse of a symmetric positive-definite matrix by Cholesky; `None` when
/// it is not positive definite.
#[allow(clippy::needless_range_loop)]
fn invert_spd(a: Vec<Vec<f64>>) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|m| l[i][m] * l[j][m]).sum();
            if i == j {
                let d = a[i][i] - s;
                if d.is_nan() || d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i][i] = d.sqrt();
            } else {
                l[i][j] = (a[i][j] - s) / l[j][j];
            }
        }
    }
    // Columns of L⁻¹, then A⁻¹ = L⁻ᵀ L⁻¹.
    let mut linv = vec![vec![0.0; n]; n];
    for i in 0..n {
        linv[i][i] = 1.0 / l[i][i];
        for j in 0..i {
            let s: f64 = (j..i).map(|m| l[i][m] * linv[m][j]).sum();
            linv[i][j] = -s / l[i][i];
        }
    }
    let mut inv = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..n {
            inv[i][j] = (i.max(j)..n).map(|m| linv[m][i] * linv[m][j]).sum();
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean negative log-likelihood of Exponential(λ) data in ln λ:
    /// optimum λ = 1 / mean, information n / λ² … in ln λ: n.
    struct Exponential(Vec<f64>);

    impl Objective for Exponential {
        fn cost_gradient(&self, theta: &[f64]) -> (f64, Vec<f64>) {
            let lambda = theta[0].exp();
            let n = self.0.len() as f64;
            let mean = self.0.iter().sum::<f64>() / n;
            (-(lambda.ln() - lambda * mean), vec![-(1.0 - lambda * mean)])
        }
    }

    /// Rosenbrock in two variables: a hard valley for any solver.
    struct Rosenbrock;

    impl Objective for Rosenbrock {
        fn cost_gradient(&self, t: &[f64]) -> (f64, Vec<f64>) {
            let (x, y) = (t[0], t[1]);
            (
                (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2),
                vec![
                    -2.0 * (1.0 - x) - 400.0 * x * (y - x * x),
                    200.0 * (y - x * x),
                ],
            )
        }
    }

    #[test]
    fn finds_the_closed_form_optimum_with_its_standard_error() {
        let data = vec![0.5, 1.5, 2.0, 4.0];
        let obj = Exponential(data);
        let r = minimize(&obj, vec![0.0], 100);
        assert!(r.converged, "{}", r.describe());
        assert!((r.theta[0].exp() - 0.5).abs() < 1e-8, "{:?}", r.theta);
        // Var(λ̂) = λ² / n → SE = 0.5 / 2.
        let se = standard_errors(&obj, &r.theta, 4.0).expect("positive definite");
        assert!((se[0] - 0.25).abs() < 1e-5, "{se:?}");
    }

    #[test]
    fn a_tiny_budget_is_reported_as_not_converged() {
        let r = minimize(&Rosenbrock, vec![-1.2, 1.0], 2);
        assert!(!r.converged);
        assert!(r.iterations <= 2, "{}", r.describe());
        assert!(r.describe().contains("NOT converged"));
        let r = minimize(&Rosenbrock, vec![-1.2, 1.0], 500);
        assert!(r.converged, "{}", r.describe());
        assert!((r.theta[0] - 1.0).abs() < 1e-5 && (r.theta[1] - 1.0).abs() < 1e-5);
    }

    /// Depends on θ₀ only: θ₁ is not identified, and the gradient is 0 in
    /// its direction everywhere.
    struct FlatInSecond;

    impl Objective for FlatInSecond {
        fn cost_gradient(&self, t: &[f64]) -> (f64, Vec<f64>) {
            ((t[0] - 1.0).powi(2), vec![2.0 * (t[0] - 1.0), 0.0])
        }
    }

    #[test]
    fn a_stationary_point_of_a_flat_likelihood_is_rejected() {
        let mut r = minimize(&FlatInSecond, vec![0.0, 0.0], 100);
        assert!(r.converged, "the gradient alone vanishes: {}", r.describe());
        assert!(standard_errors_or_reject(&FlatInSecond, &mut r, 10.0).is_none());
        assert!(!r.converged);
        assert_eq!(r.unidentified.as_deref(), Some(FLAT_LIKELIHOOD));
        assert!(
            r.describe()
                .starts_with("NOT converged: the data do not pin")
        );
        // An identified optimum is kept.
        let obj = Exponential(vec![0.5, 1.5, 2.0, 4.0]);
        let mut r = minimize(&obj, vec![0.0], 100);
        assert!(standard_errors_or_reject(&obj, &mut r, 4.0).is_some());
        assert!(r.converged && r.unidentified.is_none());
    }

    #[test]
    fn inverse_of_spd_matrix() {
        let a = vec![vec![4.0, 2.0], vec![2.0, 3.0]];
        let inv = invert_spd(a).expect("spd");
        // [[3, -2], [-2, 4]] / 8
        let want = [[0.375, -0.25], [-0.25, 0.5]];
        for i in 0..2 {
            for j in 0..2 {
                assert!((inv[i][j] - want[i][j]).abs() < 1e-12);
            }
        }
        assert!(invert_spd(vec![vec![1.0, 2.0], vec![2.0, 1.0]]).is_none());
    }
}
