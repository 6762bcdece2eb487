//! Special functions the lifetime-value models need: log-gamma and digamma
//! (from statrs), a stable log-sum-exp, and the Gauss hypergeometric
//! function ₂F₁ with the transformations that keep it finite.
//!
//! ₂F₁(a, b; c; z) = Σₖ (a)ₖ (b)ₖ / ((c)ₖ k!) zᵏ converges for |z| < 1. The
//! BG/NBD conditional expectation evaluates it at z = t / (α + T + t), close
//! to 1 for young customers and long horizons, with a and b growing with the
//! customer's purchase count: summed naively its terms first grow like
//! k^(a+b−c−1) and overflow for frequent buyers. [`hyp2f1`] therefore
//! applies Pfaff's transformation for z < 0 and Euler's,
//! ₂F₁(a, b; c; z) = (1 − z)^(c−a−b) ₂F₁(c − a, c − b; c; z), when a + b > c,
//! so that the summed terms decrease; [`hyp2f1_scaled_deficit`] returns
//! c·(₂F₁(a, b; c; z) − 1)/b with the divisions done analytically, which the
//! BG/NBD expectation needs at its removable singularities (a = 1, and
//! a + b = 1 for customers without repeat purchases).

use statrs::function::gamma;

/// ln Γ(x) for x > 0 (Lanczos approximation, about 16 digits).
pub fn ln_gamma(x: f64) -> f64 {
    gamma::ln_gamma(x)
}

/// ψ(x) = d/dx ln Γ(x).
pub fn digamma(x: f64) -> f64 {
    gamma::digamma(x)
}

/// ln(eᵃ + eᵇ) without overflow or underflow; ln(0 + eᵇ) when a = −∞.
pub fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// Why a ₂F₁ evaluation has no result.
#[derive(Debug, Clone, PartialEq)]
pub enum Hyp2f1Error {
    /// c is zero or a negative integer: the series has a pole.
    Pole { c: f64 },
    /// z ≥ 1 or not a number: outside the region this implementation covers.
    Domain { z: f64 },
    /// The series had not converged after the maximum number of terms
    /// (z extremely close to 1 with slowly decaying terms).
    NotConverged { terms: usize, z: f64 },
    /// A term or the sum became infinite or NaN.
    Overflow,
}

impl std::fmt::Display for Hyp2f1Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hyp2f1Error::Pole { c } => write!(f, "2F1 has a pole: c = {c}"),
            Hyp2f1Error::Domain { z } => write!(f, "2F1 evaluated outside z < 1 (z = {z})"),
            Hyp2f1Error::NotConverged { terms, z } => {
                write!(f, "2F1 series not converged after {terms} terms (z = {z})")
            }
            Hyp2f1Error::Overflow => write!(f, "2F1 overflowed"),
        }
    }
}

/// Most terms a series may take: at z = 1 − 10⁻⁵ with slowly decaying terms
/// about 3·10⁶ are needed for full precision, which takes milliseconds.
pub const MAX_TERMS: usize = 1 << 24;

/// Relative precision at which a series stops.
const TOLERANCE: f64 = 1e-16;

/// ₂F₁(a, b; c; z) for real parameters and z < 1.
///
/// Exact (a terminating series) when a or b is a non-positive integer.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Result<f64, Hyp2f1Error> {
    check(c, z)?;
    if z == 0.0 || a == 0.0 || b == 0.0 {
        return Ok(1.0);
    }
    if z < 0.0 {
        // Pfaff: ₂F₁(a, b; c; z) = (1 − z)^(−a) ₂F₁(a, c − b; c; z / (z − 1)),
        // which maps z < 0 onto (0, 1) and avoids an alternating series.
        let w = z / (z - 1.0);
        return Ok((-a * (-z).ln_1p()).exp() * hyp2f1(a, c - b, c, w)?);
    }
    if a + b > c && !is_non_positive_integer(a) && !is_non_positive_integer(b) {
        // Euler: the transformed series has decreasing terms near z = 1.
        let factor = ((c - a - b) * (-z).ln_1p()).exp();
        let f = factor * (1.0 + series(c - a, c - b, c, z, (c - a) * (c - b) * z / c)?);
        return finite(f);
    }
    finite(1.0 + series(a, b, c, z, a * b * z / c)?)
}

/// c · (₂F₁(a, b; c; z) − 1) / b for 0 ≤ z < 1, summed directly as
/// Σₖ≥₁ (a)ₖ (b + 1)ₖ₋₁ / ((c + 1)ₖ₋₁ k!) zᵏ. The divisions by b and by c are
/// done analytically, so the result is finite and exact as b → 0 or c → 0,
/// where computing ₂F₁ first would give 0/0 or a pole. Needs c ∉ {−1, −2, …}.
pub fn hyp2f1_scaled_deficit(a: f64, b: f64, c: f64, z: f64) -> Result<f64, Hyp2f1Error> {
    if z.is_nan() || !(0.0..1.0).contains(&z) {
        return Err(Hyp2f1Error::Domain { z });
    }
    if c <= -1.0 && c.fract() == 0.0 {
        return Err(Hyp2f1Error::Pole { c });
    }
    if z == 0.0 {
        return Ok(0.0);
    }
    finite(series(a, b, c, z, a * z)?)
}

fn check(c: f64, z: f64) -> Result<(), Hyp2f1Error> {
    if z.is_nan() || z >= 1.0 {
        return Err(Hyp2f1Error::Domain { z });
    }
    if is_non_positive_integer(c) {
        return Err(Hyp2f1Error::Pole { c });
    }
    Ok(())
}

fn is_non_positive_integer(v: f64) -> bool {
    v <= 0.0 && v.fract() == 0.0
}

fn finite(v: f64) -> Result<f64, Hyp2f1Error> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Hyp2f1Error::Overflow)
    }
}

/// Σₖ≥₁ tₖ with t₁ = `first` and tₖ₊₁ = tₖ (a + k)(b + k) z / ((c + k)(k + 1)),
/// for 0 < z < 1, with Neumaier compensation.
///
/// Stops when the rest of the series is provably below the tolerance. The
/// term ratio tⱼ₊₁/tⱼ is z·g(j) with g(j) − 1 = (s·j + d) / ((c + j)(j + 1)),
/// s = a + b − c − 1, d = ab − c. Once j is past −a, −b and −c every factor
/// is positive, and then either s·j + d ≤ 0 from here on (g ≤ 1, so every
/// later ratio is at most z) or, for j > 2(|c| + 1), |g − 1| ≤ 2|s|/j + 2|d|/j².
/// Either gives a bound ρ < 1 on all later ratios, so the terms not yet
/// added sum to at most |tₖ₊₁| / (1 − ρ).
fn series(a: f64, b: f64, c: f64, z: f64, first: f64) -> Result<f64, Hyp2f1Error> {
    let s = a + b - c - 1.0;
    let d = a * b - c;
    let positive_after = (-a).max(-b).max(-c).max(0.0);
    let mut term = first;
    let mut sum = Neumaier::default();
    for k in 1..=MAX_TERMS {
        sum.add(term);
        let kf = k as f64;
        let next = term * (a + kf) * (b + kf) * z / ((c + kf) * (kf + 1.0));
        if next == 0.0 {
            return Ok(sum.value());
        }
        if !next.is_finite() {
            return Err(Hyp2f1Error::Overflow);
        }
        let j = kf + 1.0;
        if j > positive_after {
            let rho = if s <= 0.0 && s * j + d <= 0.0 {
                z
            } else if j > 2.0 * (c.abs() + 1.0) {
                z * (1.0 + 2.0 * s.abs() / j + 2.0 * d.abs() / (j * j))
            } else {
                1.0
            };
            if rho < 1.0 {
                let tail = next.abs() / (1.0 - rho);
                let total = sum.value();
                if tail <= TOLERANCE * total.abs() || tail < f64::MIN_POSITIVE {
                    return Ok(total);
                }
            }
        }
        term = next;
    }
    Err(Hyp2f1Error::NotConverged {
        terms: MAX_TERMS,
        z,
    })
}

/// Neumaier's compensated sum: series with terms of both signs keep their
/// precision.
#[derive(Debug, Default, Clone, Copy)]
struct Neumaier {
    sum: f64,
    compensation: f64,
}

impl Neumaier {
    fn add(&mut self, v: f64) {
        let t = self.sum + v;
        self.compensation += if self.sum.abs() >= v.abs() {
            (self.sum - t) + v
        } else {
            (v - t) + self.sum
        };
        self.sum = t;
    }

    fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

#[cfg(test)]
// Reference values are pasted with every digit their source printed.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, rel: f64) -> bool {
        (got - want).abs() <= rel * want.abs().max(f64::MIN_POSITIVE)
    }

    /// Reference values from mpmath.hyp2f1 at 50 digits (mpmath 1.3); scipy
    /// 1.16's scipy.special.hyp2f1 agrees with every one to 1.3e-14 or better
    /// (the worst: the last two rows near z = 1). Script: tests/fixtures/value/README.md.
    #[test]
    fn hyp2f1_matches_mpmath_and_scipy() {
        let cases: [(f64, f64, f64, f64, f64); 12] = [
            (1.0, 1.0, 2.0, 0.5, 1.3862943611198906),
            (0.5, 0.5, 1.5, 0.25, 1.0471975511965977),
            (2.5, 3.2, 4.1, 0.9, 65.425664203718024),
            (2.243, 4.426, 4.219, 0.5, 5.161693901383613),
            (10.5, 12.3, 13.1, 0.95, 4990276966923.2207),
            (300.2, 302.4, 302.2, 0.6, 3.4740233902261021e+119),
            (1.5, 2.0, 3.5, -0.7, 0.62021257205487109),
            (1.5, 2.0, 3.5, -5.0, 0.16729536118865492),
            (-3.0, 2.0, 1.5, 0.7, -0.075200000000000001),
            (0.3, -0.2, 0.9, 0.99, 0.88439299627118558),
            (2.0, 3.0, 1.2, 0.999, 541038651542.52254),
            (0.7, 0.4, 2.6, 0.9999, 1.1955560629384064),
        ];
        for (a, b, c, z, want) in cases {
            let got = hyp2f1(a, b, c, z).expect("converges");
            assert!(
                close(got, want, 1e-12),
                "2F1({a}, {b}; {c}; {z}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn closed_forms_and_edges() {
        // ₂F₁(1, 1; 2; z) = −ln(1 − z) / z, ₂F₁(a, b; b; z) = (1 − z)^(−a).
        for z in [-3.0f64, -0.5, 0.1, 0.5, 0.9, 0.999] {
            let want = -(-z).ln_1p() / z;
            assert!(close(hyp2f1(1.0, 1.0, 2.0, z).expect("ok"), want, 1e-13));
            let want = (1.0 - z).powf(-2.5);
            assert!(close(hyp2f1(2.5, 4.0, 4.0, z).expect("ok"), want, 1e-12));
        }
        assert_eq!(hyp2f1(2.0, 3.0, 4.0, 0.0), Ok(1.0));
        assert!(matches!(
            hyp2f1(1.0, 1.0, -2.0, 0.5),
            Err(Hyp2f1Error::Pole { .. })
        ));
        assert!(matches!(
            hyp2f1(1.0, 1.0, 2.0, 1.0),
            Err(Hyp2f1Error::Domain { .. })
        ));
        assert!(matches!(
            hyp2f1(1.0, 1.0, 2.0, f64::NAN),
            Err(Hyp2f1Error::Domain { .. })
        ));
    }

    #[test]
    fn scaled_deficit_is_the_difference_quotient_and_finite_at_b_and_c_zero() {
        for (a, b, c, z) in [
            (2.2, 0.7, 3.1, 0.6),
            (0.4, -0.3, 1.9, 0.95),
            (5.0, 1e-3, 7.0, 0.3),
            (0.6, 0.2, -0.4, 0.8),
        ] {
            let want = c * (hyp2f1(a, b, c, z).expect("ok") - 1.0) / b;
            let got = hyp2f1_scaled_deficit(a, b, c, z).expect("ok");
            assert!(close(got, want, 1e-9), "{a} {b} {c} {z}: {got} vs {want}");
        }
        // c → 0 is continuous: compare c = 0 with c = ±1e-9.
        let at = hyp2f1_scaled_deficit(0.7, 0.3, 0.0, 0.9).expect("ok");
        let near = hyp2f1_scaled_deficit(0.7, 0.3, 1e-9, 0.9).expect("ok");
        assert!(close(near, at, 1e-7), "{near} vs {at}");
        assert!(hyp2f1_scaled_deficit(0.7, 0.3, -1.0, 0.9).is_err());
        // b → 0: c·(₂F₁ − 1)/b → c·Σ (a)ₖ (k−1)! / ((c)ₖ k!) zᵏ; for a = c
        // this is c·Σ zᵏ / k = −c·ln(1 − z).
        let got = hyp2f1_scaled_deficit(3.0, 0.0, 3.0, 0.5).expect("ok") / 3.0;
        assert!(close(got, 2f64.ln(), 1e-14), "{got}");
    }

    #[test]
    fn log_add_exp_is_stable() {
        assert!(close(log_add_exp(0.0, 0.0), 2f64.ln(), 1e-15));
        assert_eq!(log_add_exp(1000.0, f64::NEG_INFINITY), 1000.0);
        assert!(close(
            log_add_exp(-1000.0, -1001.0),
            -1000.0 + (-1f64).exp().ln_1p(),
            1e-15
        ));
        assert!(log_add_exp(800.0, 799.0).is_finite());
    }
}
