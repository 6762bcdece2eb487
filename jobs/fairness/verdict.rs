//! Verdicts (`ok`, `review`, `concern`) and the plain-language sentences
//! that explain them.
//!
//! The rule, for a comparison of a group with the reference group, with the
//! Benjamini-Hochberg adjusted p-value of its test:
//!
//! - **Rates, means, medians, percentiles** (compared by ratio):
//!   `concern` when the ratio lies outside the fair band (default
//!   0.8–1.25, as Aequitas) *and* the adjusted p is below `alpha` (0.01);
//!   `review` when the ratio is outside the band and the adjusted p is
//!   below `review_alpha` (0.2: probably real, not yet established), or when
//!   a rate's difference is significant and at least `review_difference`
//!   (5 percentage points) although the ratio is inside the band; `ok`
//!   otherwise — including a ratio outside the band that chance explains
//!   (small groups swing widely; flagging each would bury the real
//!   findings). A ratio that does not exist because the reference is 0
//!   counts as outside the band when the group's value is not 0.
//! - **Gaps** (calibration error, sentiment at the same rating; compared by
//!   difference): the same with "the difference is at least `gap_tolerance`
//!   (0.05) in size" in place of "outside the band".
//!
//! Whether higher is better or worse changes only the wording.

use serde::Serialize;

use super::table::Direction;

/// The outcome of one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Review,
    Concern,
}

impl Verdict {
    /// `ok`, `review`, `concern`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Review => "review",
            Verdict::Concern => "concern",
        }
    }
}

/// Thresholds of the verdict rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Lower end of the fair ratio band. Default 0.8.
    pub ratio_min: f64,
    /// Upper end of the fair ratio band. Default 1.25.
    pub ratio_max: f64,
    /// Significance level for adjusted p-values. Default 0.01: a concern
    /// trips the nightly's alert, and under no bias at all Benjamini-Hochberg
    /// still alerts on a fraction `alpha` of nights — 0.05 would be about 18
    /// false alarms a year.
    pub alpha: f64,
    /// Adjusted p-values below this (and at least `alpha`) make a disparity
    /// `review`. Default 0.2.
    pub review_alpha: f64,
    /// A significant rate difference at least this large (as a proportion)
    /// is `review` even inside the band. Default 0.05.
    pub review_difference: f64,
    /// The tolerated size of a gap difference. Default 0.05.
    pub gap_tolerance: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            ratio_min: 0.8,
            ratio_max: 1.25,
            alpha: 0.01,
            review_alpha: 0.2,
            review_difference: 0.05,
            gap_tolerance: 0.05,
        }
    }
}

/// How a compared metric is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// A proportion in [0, 1].
    Rate,
    /// A positive quantity compared by ratio.
    Location,
    /// A signed gap compared by difference.
    Gap,
}

/// Why a verdict was given (drives the wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Outside the band (or gap too large) and significant.
    Clear,
    /// Outside the band (or gap too large), adjusted p below `review_alpha`.
    Suggestive,
    /// Outside the band (or gap too large) but consistent with chance.
    Chance,
    /// A rate inside the band with a significant, large absolute difference.
    LargeDifference,
    /// Inside the band (or gap small).
    WithinBand,
}

/// How far below a threshold a value may fall by floating-point rounding
/// and still count as reaching it.
const THRESHOLD_SLACK: f64 = 1e-9;

/// The verdict for one comparison.
pub fn decide(
    scale: Scale,
    value: f64,
    ratio: Option<f64>,
    difference: f64,
    p_adjusted: Option<f64>,
    t: &Thresholds,
) -> (Verdict, Reason) {
    let below = |level: f64| p_adjusted.is_some_and(|p| p < level);
    // Thresholds are decimal: 0.35 − 0.30 is 0.04999999999999999 in
    // binary, and "at least 5 points" must include it.
    let at_least = |x: f64, threshold: f64| x >= threshold - THRESHOLD_SLACK;
    let outside = match scale {
        Scale::Gap => at_least(difference.abs(), t.gap_tolerance),
        Scale::Rate | Scale::Location => match ratio {
            Some(r) => !at_least(r, t.ratio_min) || !at_least(t.ratio_max, r),
            None => value != 0.0,
        },
    };
    if outside {
        if below(t.alpha) {
            (Verdict::Concern, Reason::Clear)
        } else if below(t.review_alpha) {
            (Verdict::Review, Reason::Suggestive)
        } else {
            (Verdict::Ok, Reason::Chance)
        }
    } else if scale == Scale::Rate
        && below(t.alpha)
        && at_least(difference.abs(), t.review_difference)
    {
        (Verdict::Review, Reason::LargeDifference)
    } else {
        (Verdict::Ok, Reason::WithinBand)
    }
}

/// Describes a group in words: `customers aged 65+ in the east region`.
/// Known attributes (age_band, gender, language, region, segment) read
/// naturally; any other column reads `with column = value`.
pub fn describe_group(attributes: &[String], values: &[String], noun: &str) -> String {
    let mut adjectives: Vec<String> = Vec::new();
    let mut qualifiers: Vec<String> = Vec::new();
    let mut who_used = false;
    let mut who = |clause: &str| -> String {
        let s = if who_used {
            format!("and {clause}")
        } else {
            format!("who {clause}")
        };
        who_used = true;
        s
    };
    for (a, v) in attributes.iter().zip(values) {
        match a.as_str() {
            "age_band" => qualifiers.push(format!("aged {}", age_words(v))),
            "gender" => match v.as_str() {
                "female" | "male" => adjectives.push(v.clone()),
                "non_binary" => adjectives.push("non-binary".into()),
                "undisclosed" => qualifiers.push(who("did not disclose their gender")),
                other => qualifiers.push(format!("of gender {other}")),
            },
            "language" => qualifiers.push(who(&format!("write in {}", language_name(v)))),
            "region" => qualifiers.push(format!("in the {v} region")),
            "segment" => qualifiers.push(format!("in the {v} segment")),
            other => qualifiers.push(format!("with {other} = {v}")),
        }
    }
    let mut parts = adjectives;
    parts.push(noun.to_string());
    parts.extend(qualifiers);
    parts.join(" ")
}

fn age_words(band: &str) -> String {
    match band {
        "under_18" => "under 18".into(),
        b => b.replace('-', "–"),
    }
}

/// English name of a two-letter language code.
pub fn language_name(code: &str) -> String {
    match code {
        "en" => "English",
        "es" => "Spanish",
        "de" => "German",
        "fr" => "French",
        "it" => "Italian",
        "nl" => "Dutch",
        "pt" => "Portuguese",
        "pl" => "Polish",
        "tr" => "Turkish",
        "ar" => "Arabic",
        other => return format!("language “{other}”"),
    }
    .to_string()
}

/// Uppercases the first letter.
pub fn sentence(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// A ratio with two significant digits: `2.4`, `0.53`, `12`.
pub fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() {
        return "∞".into();
    }
    let a = r.abs();
    if a >= 10.0 {
        format!("{r:.0}")
    } else if a >= 1.0 {
        format!("{r:.1}")
    } else if a >= 0.1 {
        format!("{r:.2}")
    } else {
        format!("{r:.3}")
    }
}

/// A threshold: up to two decimals, no trailing zeros (`0.8`, `1.25`).
pub fn fmt_bound(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A proportion as a percentage: `42%`, `4.2%`.
pub fn fmt_pct(p: f64) -> String {
    let v = p * 100.0;
    if v == 0.0 || v.abs() >= 10.0 {
        format!("{v:.0}%")
    } else {
        format!("{v:.1}%")
    }
}

/// A measured value: three significant digits at most.
pub fn fmt_value(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A p-value: `< 0.001` or two significant digits.
pub fn fmt_p(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else if p < 0.01 {
        format!("= {p:.4}")
    } else {
        format!("= {p:.2}")
    }
}

/// What the explanation of a comparison needs.
#[derive(Debug, Clone)]
pub struct Comparison<'a> {
    pub scale: Scale,
    /// "customers aged 65+" (with any qualifier: "… who churned").
    pub subject: &'a str,
    pub reference: &'a str,
    /// Rates: the verb phrase ("are sent to the chat bot").
    /// Others: the measure ("median first-response time").
    pub phrase: &'a str,
    /// Unit after values of continuous measures (" hours", "%", "").
    pub unit: &'a str,
    pub direction: Direction,
    pub value: f64,
    pub reference_value: f64,
    pub ratio: Option<f64>,
    pub ratio_ci: Option<(f64, f64)>,
    pub difference: f64,
    pub difference_ci: Option<(f64, f64)>,
    pub p_adjusted: Option<f64>,
    pub reason: Reason,
    pub thresholds: &'a Thresholds,
}

/// One sentence explaining a comparison and its verdict.
pub fn explain(c: &Comparison) -> String {
    let ci_ratio = c
        .ratio_ci
        .map(|(lo, hi)| format!("95% CI {}–{}×", fmt_ratio(lo), fmt_ratio(hi)));
    let head = match c.scale {
        Scale::Rate => {
            let values = format!(
                "{} against {}",
                fmt_pct(c.value),
                fmt_pct(c.reference_value)
            );
            match c.ratio {
                Some(r) => format!(
                    "{} {} {}× as often as {} ({}{})",
                    c.subject,
                    c.phrase,
                    fmt_ratio(r),
                    c.reference,
                    ci_ratio.map(|s| s + "; ").unwrap_or_default(),
                    values
                ),
                None => format!(
                    "{} {} in {} of cases, {} in {} of cases",
                    c.subject,
                    c.phrase,
                    fmt_pct(c.value),
                    c.reference,
                    fmt_pct(c.reference_value)
                ),
            }
        }
        Scale::Location => {
            let v = format!("{}{}", fmt_value(c.value), c.unit);
            let rv = format!("{}{}", fmt_value(c.reference_value), c.unit);
            match c.ratio {
                Some(r) => format!(
                    "the {} of {} is {}, {}× that of {} ({}{})",
                    c.phrase,
                    c.subject,
                    v,
                    fmt_ratio(r),
                    c.reference,
                    rv,
                    ci_ratio.map(|s| format!("; {s}")).unwrap_or_default()
                ),
                None => format!(
                    "the {} of {} is {}, against {} for {}",
                    c.phrase, c.subject, v, rv, c.reference
                ),
            }
        }
        Scale::Gap => {
            let ci = c
                .difference_ci
                .map(|(lo, hi)| format!(", 95% CI {lo:+.2} to {hi:+.2}"))
                .unwrap_or_default();
            format!(
                "the {} of {} is {:+.2}{} against {:+.2}{} for {} (difference {:+.2}{})",
                c.phrase,
                c.subject,
                c.value,
                c.unit,
                c.reference_value,
                c.unit,
                c.reference,
                c.difference,
                ci
            )
        }
    };
    let p = c
        .p_adjusted
        .map(|p| format!("adjusted p {}", fmt_p(p)))
        .unwrap_or_else(|| "no test possible".into());
    let band = format!(
        "{}–{}×",
        fmt_bound(c.thresholds.ratio_min),
        fmt_bound(c.thresholds.ratio_max)
    );
    // Which way the difference cuts, when the outcome has a good direction.
    let higher = match c.scale {
        Scale::Gap => c.difference > 0.0,
        _ => c.ratio.map_or(c.value > c.reference_value, |r| r > 1.0),
    };
    let side = match (c.direction, higher) {
        (Direction::Neutral, _) => "",
        (Direction::HigherIsWorse, true) | (Direction::HigherIsBetter, false) => {
            ": a disadvantage for them"
        }
        _ => ": an advantage for them",
    };
    let tail = match (c.reason, c.scale) {
        (Reason::Clear, Scale::Gap) => format!(
            ", beyond the tolerated {} and unlikely to be chance ({p}){side}",
            c.thresholds.gap_tolerance
        ),
        (Reason::Clear, _) => {
            format!(", outside the fair band of {band} and unlikely to be chance ({p}){side}")
        }
        (Reason::Suggestive, Scale::Gap) => format!(
            ", beyond the tolerated {}; probably real but not yet conclusive ({p}): worth a look{side}",
            c.thresholds.gap_tolerance
        ),
        (Reason::Suggestive, _) => format!(
            ", outside the fair band of {band}; probably real but not yet conclusive ({p}): worth a look{side}"
        ),
        (Reason::Chance, Scale::Gap) => format!(
            ", beyond the tolerated {} but consistent with chance for groups this size ({p})",
            c.thresholds.gap_tolerance
        ),
        (Reason::Chance, _) => format!(
            ", outside the fair band of {band} but consistent with chance for groups this size ({p})"
        ),
        (Reason::LargeDifference, _) => format!(
            ", inside the fair band but a clear gap of {:.0} percentage points ({p})",
            c.difference.abs() * 100.0
        ),
        (Reason::WithinBand, Scale::Gap) => {
            format!(", within the tolerated {}", c.thresholds.gap_tolerance)
        }
        (Reason::WithinBand, _) => format!(", within the fair band of {band}"),
    };
    sentence(&format!("{head}{tail}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Thresholds are reached as written, not as binary floats round them:
    /// 3,500 of 10,000 against 3,000 of 10,000 is a difference of 5
    /// points (0.04999999999999999 in f64), and 0.4 against 0.5 a ratio of
    /// 0.8, on the band's edge (inside).
    #[test]
    fn decimal_thresholds_hold_at_their_edges() {
        let t = Thresholds::default();
        let difference = 3500.0 / 10000.0 - 3000.0 / 10000.0;
        assert!(difference < 0.05, "the float falls short: {difference}");
        let (v, r) = decide(
            Scale::Rate,
            0.35,
            Some(0.35 / 0.30),
            difference,
            Some(1e-6),
            &t,
        );
        assert_eq!((v, r), (Verdict::Review, Reason::LargeDifference));
        let (v, _) = decide(Scale::Rate, 0.4, Some(0.4 / 0.5), -0.1, Some(1e-6), &t);
        assert_eq!(v, Verdict::Review, "on the band's edge is inside it");
        let gap = 0.85 - 0.8;
        let (v, _) = decide(Scale::Gap, 0.85, None, gap, Some(1e-6), &t);
        assert_eq!(v, Verdict::Concern, "a gap of 0.05 reaches the tolerance");
    }

    #[test]
    fn the_rule_as_a_table() {
        let t = Thresholds::default();
        let cases = [
            // scale, value, ratio, difference, p_adjusted, verdict
            (
                Scale::Rate,
                0.6,
                Some(2.4),
                0.35,
                Some(0.0001),
                Verdict::Concern,
            ),
            (
                Scale::Rate,
                0.6,
                Some(2.4),
                0.35,
                Some(0.19),
                Verdict::Review,
            ),
            (Scale::Rate, 0.6, Some(2.4), 0.35, Some(0.2), Verdict::Ok),
            (Scale::Rate, 0.6, Some(2.4), 0.35, None, Verdict::Ok),
            (
                Scale::Rate,
                0.55,
                Some(1.1),
                0.05,
                Some(0.001),
                Verdict::Review,
            ),
            (
                Scale::Rate,
                0.52,
                Some(1.04),
                0.02,
                Some(0.001),
                Verdict::Ok,
            ),
            (Scale::Rate, 0.52, Some(1.04), 0.02, Some(0.5), Verdict::Ok),
            (Scale::Rate, 0.1, None, 0.1, Some(0.001), Verdict::Concern),
            (Scale::Rate, 0.0, None, 0.0, Some(1.0), Verdict::Ok),
            (
                Scale::Location,
                8.0,
                Some(0.53),
                -7.0,
                Some(1e-9),
                Verdict::Concern,
            ),
            (
                Scale::Location,
                12.0,
                Some(1.2),
                2.0,
                Some(1e-9),
                Verdict::Ok,
            ),
            (
                Scale::Location,
                12.0,
                Some(0.79),
                2.0,
                Some(0.0099),
                Verdict::Concern,
            ),
            (
                Scale::Location,
                12.0,
                Some(0.79),
                2.0,
                Some(0.01),
                Verdict::Review,
            ),
            (
                Scale::Location,
                12.0,
                Some(0.5),
                2.0,
                Some(0.7),
                Verdict::Ok,
            ),
            (Scale::Gap, -0.2, None, -0.15, Some(0.001), Verdict::Concern),
            (Scale::Gap, -0.2, None, -0.15, Some(0.1), Verdict::Review),
            (Scale::Gap, -0.2, None, -0.15, Some(0.3), Verdict::Ok),
            (Scale::Gap, -0.02, None, -0.01, Some(0.001), Verdict::Ok),
        ];
        for (scale, value, ratio, diff, p, want) in cases {
            let (got, _) = decide(scale, value, ratio, diff, p, &t);
            assert_eq!(got, want, "{scale:?} ratio {ratio:?} diff {diff} p {p:?}");
        }
    }

    #[test]
    fn groups_read_naturally() {
        let s = |a: &[&str], v: &[&str]| {
            describe_group(
                &a.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
                &v.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
                "customers",
            )
        };
        assert_eq!(s(&["age_band"], &["65+"]), "customers aged 65+");
        assert_eq!(s(&["age_band"], &["25-34"]), "customers aged 25–34");
        assert_eq!(
            s(&["age_band", "region"], &["65+", "east"]),
            "customers aged 65+ in the east region"
        );
        assert_eq!(
            s(&["gender", "language"], &["female", "es"]),
            "female customers who write in Spanish"
        );
        assert_eq!(
            s(&["language", "gender"], &["de", "undisclosed"]),
            "customers who write in German and did not disclose their gender"
        );
        assert_eq!(s(&["plan"], &["basic"]), "customers with plan = basic");
    }

    #[test]
    fn the_issue_example_sentence() {
        let t = Thresholds::default();
        let c = Comparison {
            scale: Scale::Rate,
            subject: "customers aged 65+",
            reference: "customers aged 25–34",
            phrase: "are sent to the chat bot",
            unit: "",
            direction: Direction::HigherIsWorse,
            value: 0.57,
            reference_value: 0.3,
            ratio: Some(1.9),
            ratio_ci: Some((1.6, 2.2)),
            difference: 0.27,
            difference_ci: None,
            p_adjusted: Some(0.0002),
            reason: Reason::Clear,
            thresholds: &t,
        };
        assert_eq!(
            explain(&c),
            "Customers aged 65+ are sent to the chat bot 1.9× as often as customers aged 25–34 \
             (95% CI 1.6–2.2×; 57% against 30%), outside the fair band of 0.8–1.25× and unlikely \
             to be chance (adjusted p < 0.001): a disadvantage for them."
        );
        let m = Comparison {
            scale: Scale::Location,
            phrase: "median first-response time",
            unit: " hours",
            value: 9.84,
            reference_value: 4.9,
            ratio: Some(2.008),
            ratio_ci: Some((1.7, 2.31)),
            reason: Reason::Clear,
            ..c.clone()
        };
        assert_eq!(
            explain(&m),
            "The median first-response time of customers aged 65+ is 9.84 hours, 2.0× that of \
             customers aged 25–34 (4.90 hours; 95% CI 1.7–2.3×), outside the fair band of \
             0.8–1.25× and unlikely to be chance (adjusted p < 0.001): a disadvantage for them."
        );
    }

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(fmt_ratio(2.41), "2.4");
        assert_eq!(fmt_ratio(0.534), "0.53");
        assert_eq!(fmt_ratio(12.3), "12");
        assert_eq!(fmt_pct(0.423), "42%");
        assert_eq!(fmt_pct(0.0421), "4.2%");
        assert_eq!(fmt_p(0.0004), "< 0.001");
        assert_eq!(fmt_p(0.034), "= 0.03");
        assert_eq!(fmt_p(0.0042), "= 0.0042");
        assert_eq!(fmt_bound(0.8), "0.8");
        assert_eq!(fmt_bound(1.25), "1.25");
    }
}
