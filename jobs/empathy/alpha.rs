//! Cronbach's alpha of the SERVQUAL empathy items, so an owner knows whether
//! "perceived empathy" is a reliable scale on their own customers' answers.
//!
//! α = k/(k−1) · (1 − Σ var(itemᵢ) / var(Σ items)), sample variances
//! (n − 1), over respondents who answered all k items (complete cases).
//! The 95% interval is Feldt's (1965), from the F distribution with
//! (n − 1, (n − 1)(k − 1)) degrees of freedom — what pingouin's
//! `cronbach_alpha` reports. Feldt's interval takes the n rows for n
//! independent respondents, so the job gives it one row per customer
//! ([`servqual_alpha`]).

use std::collections::BTreeMap;

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, FisherSnedecor};

use super::components::SurveyRow;

/// Cronbach's alpha with its interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alpha {
    pub alpha: f64,
    pub ci_lower: f64,
    pub ci_upper: f64,
    /// Respondents with every item answered (for the SERVQUAL items:
    /// distinct customers, see [`servqual_alpha`]).
    pub respondents: usize,
    pub items: usize,
    /// George & Mallery's (2003) wording: excellent ≥ 0.9, good ≥ 0.8,
    /// acceptable ≥ 0.7, questionable ≥ 0.6, poor ≥ 0.5, else unacceptable.
    pub wording: &'static str,
}

/// The conventional reading of an alpha.
pub fn wording(alpha: f64) -> &'static str {
    match alpha {
        a if a >= 0.9 => "excellent",
        a if a >= 0.8 => "good",
        a if a >= 0.7 => "acceptable",
        a if a >= 0.6 => "questionable",
        a if a >= 0.5 => "poor",
        _ => "unacceptable",
    }
}

fn sample_variance(x: impl Iterator<Item = f64> + Clone) -> f64 {
    let n = x.clone().count() as f64;
    let mean = x.clone().sum::<f64>() / n;
    x.map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)
}

/// Alpha of `rows` (one per respondent, `None` for an item not answered).
/// `None` with fewer than 3 complete respondents, fewer than 2 items, or no
/// variance in the totals.
pub fn cronbach_alpha<const K: usize>(rows: &[[Option<f64>; K]]) -> Option<Alpha> {
    let complete: Vec<[f64; K]> = rows
        .iter()
        .filter_map(|r| {
            let mut out = [0.0; K];
            for (o, x) in out.iter_mut().zip(r) {
                *o = (*x)?;
            }
            Some(out)
        })
        .collect();
    let n = complete.len();
    if K < 2 || n < 3 {
        return None;
    }
    let item_var: f64 = (0..K)
        .map(|i| sample_variance(complete.iter().map(move |r| r[i])))
        .sum();
    let total_var = sample_variance(complete.iter().map(|r| r.iter().sum::<f64>()));
    if total_var <= 0.0 {
        return None;
    }
    let k = K as f64;
    let alpha = k / (k - 1.0) * (1.0 - item_var / total_var);
    let df1 = n as f64 - 1.0;
    let f = FisherSnedecor::new(df1, df1 * (k - 1.0)).ok()?;
    // Feldt: 1 - (1 - α)·F quantile; the upper F quantile gives the lower bound.
    let ci_lower = 1.0 - (1.0 - alpha) * f.inverse_cdf(0.975);
    let ci_upper = 1.0 - (1.0 - alpha) * f.inverse_cdf(0.025);
    Some(Alpha {
        alpha,
        ci_lower,
        ci_upper,
        respondents: n,
        items: K,
        wording: wording(alpha),
    })
}

/// Alpha of the five SERVQUAL empathy items over customers: each
/// customer's latest complete survey (an anonymous survey is a respondent
/// of its own). A customer who answered ten times is one person, not ten
/// agreeing ones: counting every survey would inflate the respondents,
/// weight the loyal answerers' way of answering, and narrow Feldt's
/// interval, which assumes independent respondents. The latest, because it
/// is what that customer thinks of the service now.
pub fn servqual_alpha(surveys: &[SurveyRow]) -> Option<Alpha> {
    let complete = surveys
        .iter()
        .filter(|s| s.items.iter().all(Option::is_some));
    let mut latest: BTreeMap<u32, &SurveyRow> = BTreeMap::new();
    let mut anonymous = Vec::new();
    for s in complete {
        match s.customer {
            None => anonymous.push(s),
            Some(c) => {
                let kept = latest.entry(c).or_insert(s);
                // ties on the time go to the larger id: the same row whatever the input order
                if (s.at, &s.contact_id) > (kept.at, &kept.contact_id) {
                    *kept = s;
                }
            }
        }
    }
    // summed in contact id order: the customers' numbers follow the order
    // earlier inputs arrived in, which can change from run to run, and the
    // sums' last bits with it
    let mut kept: Vec<&SurveyRow> = latest.into_values().chain(anonymous).collect();
    kept.sort_unstable_by(|a, b| a.contact_id.cmp(&b.contact_id));
    let rows: Vec<[Option<f64>; 5]> = kept
        .into_iter()
        .map(|s| s.items.map(|x| x.map(f64::from)))
        .collect();
    cronbach_alpha(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: pingouin 0.7.0, `pg.cronbach_alpha(data=df,
    /// nan_policy='listwise', ci=0.95)` on these 13 rows (the last is
    /// incomplete and dropped) gives 0.9721128092011975; the interval from
    /// scipy 1.17, `1 - (1 - a) * f.isf(0.025, 11, 44)` and
    /// `f.isf(0.975, 11, 44)`: 0.9358169623040804 and 0.9908438192221241
    /// (pingouin prints them rounded: [0.938, 0.99]).
    #[test]
    fn matches_pingouin() {
        let raw: [[f64; 5]; 12] = [
            [6., 6., 5., 5., 4.],
            [7., 7., 6., 6., 5.],
            [3., 4., 3., 2., 2.],
            [5., 5., 5., 4., 4.],
            [4., 5., 4., 4., 3.],
            [6., 5., 6., 5., 3.],
            [2., 3., 2., 2., 1.],
            [7., 6., 7., 6., 6.],
            [5., 4., 5., 5., 3.],
            [4., 4., 3., 3., 3.],
            [6., 7., 6., 5., 4.],
            [3., 3., 4., 3., 2.],
        ];
        let mut rows: Vec<[Option<f64>; 5]> = raw.iter().map(|r| r.map(Some)).collect();
        rows.push([Some(5.), None, Some(4.), Some(4.), Some(3.)]);
        let a = cronbach_alpha(&rows).expect("alpha");
        assert!((a.alpha - 0.9721128092011975).abs() < 1e-12);
        assert!(
            (a.ci_lower - 0.9358169623040804).abs() < 1e-9,
            "{}",
            a.ci_lower
        );
        assert!(
            (a.ci_upper - 0.9908438192221241).abs() < 1e-9,
            "{}",
            a.ci_upper
        );
        assert_eq!((a.respondents, a.items, a.wording), (12, 5, "excellent"));
    }

    /// Hand computation: two items, three respondents (1,2), (2,1), (3,3):
    /// item variances 1 and 1, totals 3, 3, 6 with variance 3, so
    /// α = 2/1 · (1 − 2/3) = 2/3.
    #[test]
    fn matches_a_hand_computation() {
        let rows = [
            [Some(1.0), Some(2.0)],
            [Some(2.0), Some(1.0)],
            [Some(3.0), Some(3.0)],
        ];
        let a = cronbach_alpha(&rows).expect("alpha");
        assert!((a.alpha - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(a.wording, "questionable");
    }

    /// Three customers who answered five times each, the same way every
    /// time, are three respondents, not fifteen; a customer's latest
    /// complete survey is the one kept (customer 2 answered differently
    /// before; customer 0 left an item out after), and the alpha is that of
    /// the three rows kept.
    #[test]
    fn repeat_surveys_count_one_customer_once() {
        let answers: [[u8; 5]; 3] = [[2, 3, 2, 2, 3], [4, 4, 5, 4, 4], [7, 6, 7, 6, 6]];
        let survey = |customer: u32, at: f64, items: [Option<u8>; 5]| SurveyRow {
            contact_id: format!("R{customer}-{at}"),
            customer: Some(customer),
            at,
            touchpoint: Some("in_store".into()),
            items,
        };
        let mut surveys = Vec::new();
        for t in 0..5 {
            for (c, a) in answers.iter().enumerate() {
                surveys.push(survey(
                    c as u32,
                    1_740_000_000.0 + f64::from(t),
                    a.map(Some),
                ));
            }
        }
        let a = servqual_alpha(&surveys).expect("alpha");
        assert_eq!(a.respondents, 3);
        let rows: Vec<[Option<f64>; 5]> = answers
            .iter()
            .map(|r| r.map(|x| Some(f64::from(x))))
            .collect();
        assert_eq!(Some(a), cronbach_alpha(&rows));

        surveys.insert(0, survey(2, 1_739_000_000.0, [Some(1); 5]));
        surveys.push(survey(
            0,
            1_750_000_000.0,
            [Some(7), None, Some(1), Some(1), Some(1)],
        ));
        assert_eq!(servqual_alpha(&surveys), cronbach_alpha(&rows));
        let anonymous = SurveyRow {
            customer: None,
            ..survey(9, 1_740_000_000.0, [Some(5); 5])
        };
        surveys.extend([anonymous.clone(), anonymous]);
        assert_eq!(
            servqual_alpha(&surveys).map(|a| a.respondents),
            Some(5),
            "an anonymous survey is a respondent of its own"
        );
    }

    /// The customers' numbers come from the order earlier inputs arrived
    /// in, which DataFusion does not fix: numbering the same customers
    /// another way must not move the alpha's last bit. (Summed in the
    /// numbers' order, 0.9736361762961242 became ...244 between two nightly
    /// runs over the benchmark's lake.)
    #[test]
    fn the_alpha_does_not_depend_on_how_customers_are_numbered() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut answer = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 7) as u8 + 1
        };
        let surveys: Vec<SurveyRow> = (0..997u32)
            .map(|c| {
                let base = answer();
                SurveyRow {
                    contact_id: format!("R{c:04}"),
                    customer: Some(c),
                    at: 1_740_000_000.0,
                    touchpoint: None,
                    items: [0; 5].map(|_| Some(base.saturating_add(answer() % 2).min(7))),
                }
            })
            .collect();
        let renumbered: Vec<SurveyRow> = surveys
            .iter()
            .map(|s| SurveyRow {
                customer: s.customer.map(|c| (c * 7919) % 997),
                ..s.clone()
            })
            .collect();
        let a = servqual_alpha(&surveys).expect("alpha");
        let b = servqual_alpha(&renumbered).expect("alpha");
        assert_eq!(a.alpha.to_bits(), b.alpha.to_bits());
        assert_eq!(a, b);
    }

    #[test]
    fn undefined_cases() {
        assert!(cronbach_alpha::<5>(&[]).is_none());
        let same = [[Some(4.0), Some(4.0)]; 5];
        assert!(cronbach_alpha(&same).is_none(), "no variance");
        let two = [[Some(1.0), Some(2.0)], [Some(2.0), Some(3.0)]];
        assert!(cronbach_alpha(&two).is_none(), "two respondents");
    }
}
