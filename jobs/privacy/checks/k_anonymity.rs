//! Check 7, k-anonymity of `marts/customer_attributes`: how many customers
//! share each combination of age band × gender × language × region ×
//! postal prefix (the quasi-identifiers and sensitive attributes kept for the
//! fairness audit: every column of the mart but the pseudonym). A customer
//! alone in a small combination can be recognized by anyone who knows those
//! facts about them, which also reveals the rest of their row (Sweeney, "k-anonymity: a model for protecting privacy",
//! 2002: k = `min_group_size`).
//!
//! When some combinations are smaller than k, the check tries a ladder of
//! generalizations, least information lost first, and recommends the first
//! that leaves no combination below k.

use std::collections::BTreeMap;

use super::{Finding, Status, plural, thousands};

/// One equivalence class: the attribute values (`None` = missing) and its size.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Class {
    pub age_band: Option<String>,
    pub gender: Option<String>,
    pub language: Option<String>,
    pub region: Option<String>,
    pub postal_prefix: Option<String>,
    pub customers: u64,
}

/// A generalization: what it does, in words, and how it maps a class.
struct Step {
    name: &'static str,
    how: &'static str,
    apply: fn(&Class) -> Class,
}

fn wide_age(band: &Option<String>) -> Option<String> {
    band.as_deref().map(|b| {
        match b {
            "under_18" | "18-24" | "25-34" => "under_35",
            "35-44" | "45-54" | "55-64" => "35-64",
            other => other, // 65+ stays: the fairness audit compares it
        }
        .to_string()
    })
}

const LADDER: [Step; 6] = [
    Step {
        name: "postal prefix cut to 1 character",
        how: "set `length = 1` in the postal_code `generalize` entry of schemas/customers.toml",
        apply: |c| Class {
            postal_prefix: c
                .postal_prefix
                .as_ref()
                .map(|p| p.chars().take(1).collect()),
            ..c.clone()
        },
    },
    Step {
        name: "postal prefix dropped",
        how: "remove postal_prefix from sql/customer_attributes.sql (or set the postal_code column to `handling = \"drop\"`)",
        apply: |c| Class {
            postal_prefix: None,
            ..c.clone()
        },
    },
    Step {
        name: "postal prefix dropped and age bands widened to under 35 / 35-64 / 65+",
        how: "drop postal_prefix and map age_band to under_35, 35-64 and 65+ in sql/customer_attributes.sql",
        apply: |c| Class {
            postal_prefix: None,
            age_band: wide_age(&c.age_band),
            ..c.clone()
        },
    },
    Step {
        name: "postal prefix and region dropped, age bands widened",
        how: "drop postal_prefix and region and widen age_band in sql/customer_attributes.sql (the fairness audit then cannot compare regions)",
        apply: |c| Class {
            postal_prefix: None,
            region: None,
            age_band: wide_age(&c.age_band),
            ..c.clone()
        },
    },
    Step {
        name: "postal prefix, region and language dropped, age bands widened",
        how: "drop postal_prefix, region and language and widen age_band in sql/customer_attributes.sql (the fairness audit then compares age groups and genders only)",
        apply: |c| Class {
            postal_prefix: None,
            region: None,
            language: None,
            age_band: wide_age(&c.age_band),
            ..c.clone()
        },
    },
    Step {
        name: "only widened age bands kept",
        how: "keep only a widened age_band in sql/customer_attributes.sql (the fairness audit then compares age groups only)",
        apply: |c| Class {
            postal_prefix: None,
            region: None,
            gender: None,
            language: None,
            age_band: wide_age(&c.age_band),
            customers: c.customers,
        },
    },
];

/// Size of the smallest class, customers in classes below `k`, and the
/// number of such classes.
pub fn exposure(classes: &[Class], k: u64) -> (u64, u64, u64) {
    let min = classes.iter().map(|c| c.customers).min().unwrap_or(0);
    let small: Vec<&Class> = classes.iter().filter(|c| c.customers < k).collect();
    (
        min,
        small.iter().map(|c| c.customers).sum(),
        small.len() as u64,
    )
}

/// Merges classes that became equal under a generalization.
fn generalize(classes: &[Class], step: &Step) -> Vec<Class> {
    let mut merged: BTreeMap<Class, u64> = BTreeMap::new();
    for c in classes {
        let g = Class {
            customers: 0,
            ..(step.apply)(c)
        };
        *merged.entry(g).or_default() += c.customers;
    }
    merged
        .into_iter()
        .map(|(class, customers)| Class { customers, ..class })
        .collect()
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 || part == 0 {
        return "0%".into();
    }
    let p = 100.0 * part as f64 / whole as f64;
    if p > 0.0 && p < 0.1 {
        "<0.1%".into()
    } else {
        format!("{p:.1}%")
    }
}

/// Findings of check 7; `classes` is `None` when the mart is absent.
pub fn check(classes: Option<&[Class]>, k: usize) -> Vec<Finding> {
    let k = k as u64;
    let at = |f: Finding| f.at("marts", "customer_attributes");
    let Some(classes) = classes.filter(|c| !c.is_empty()) else {
        return vec![at(Finding::new(
            7,
            Status::Warn,
            0,
            "Not evaluated: marts/customer_attributes has no rows for this date.",
        )
        .advice(
            "Run `attune transform` for this date, then the privacy checks.",
        ))];
    };
    let total: u64 = classes.iter().map(|c| c.customers).sum();
    let (min, exposed, small) = exposure(classes, k);
    if exposed == 0 {
        return vec![at(Finding::new(
            7,
            Status::Pass,
            0,
            format!(
                "{} customers fall into {} combinations of age band, gender, language, region and postal prefix; the smallest has {min} customers, at least the minimum group size of {k}.",
                thousands(total),
                thousands(classes.len() as u64)
            ),
        ))];
    }
    let mut tried = Vec::new();
    let mut fix = None;
    for step in &LADDER {
        let g = generalize(classes, step);
        let (gmin, gexposed, _) = exposure(&g, k);
        tried.push(format!("{}: {} exposed", step.name, pct(gexposed, total)));
        if gexposed == 0 {
            fix = Some((step, gmin));
            break;
        }
    }
    // The last step that keeps region, language and gender, which the
    // fairness audit compares: blanking the few customers it leaves exposed may cost less
    // than dropping an attribute for everyone.
    const KEEPS_AUDIT_ATTRIBUTES: usize = 2;
    let suppress_instead = |fix_index: usize| -> String {
        if fix_index <= KEEPS_AUDIT_ATTRIBUTES {
            return String::new();
        }
        let step = &LADDER[KEEPS_AUDIT_ATTRIBUTES];
        let (_, rest, _) = exposure(&generalize(classes, step), k);
        format!(
            " Or, to keep region, language and gender for the fairness audit: {} and leave the attributes of the {} still in smaller groups ({}) empty.",
            step.name,
            plural(rest, "customer", "customers"),
            pct(rest, total)
        )
    };
    let advice = match fix {
        Some((step, gmin)) => {
            let index = LADDER.iter().position(|s| s.name == step.name).unwrap_or(0);
            format!(
                "Generalize further: {}. How: {}. Then the smallest group has {gmin} customers.{}",
                step.name,
                step.how,
                suppress_instead(index)
            )
        }
        None => {
            let last = &LADDER[LADDER.len() - 1];
            let (_, rest, _) = exposure(&generalize(classes, last), k);
            format!(
                "Even with {}, {} stay in groups below {k}: generalize that far ({}) and leave those customers' attributes empty (unknown) in customer_attributes.",
                last.name,
                plural(rest, "customer", "customers"),
                last.how
            )
        }
    };
    vec![at(Finding::new(
        7,
        Status::Warn,
        exposed,
        format!(
            "The smallest group sharing age band, gender, language, region and postal prefix has {}; {} of {} ({}) are in {} smaller than the minimum group size of {k}, so they could be singled out. Tried: {}.",
            plural(min, "customer", "customers"),
            plural(exposed, "customer", "customers"),
            thousands(total),
            pct(exposed, total),
            plural(small, "group", "groups"),
            tried.join("; ")
        ),
    )
    .advice(advice))]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(age: &str, gender: &str, region: &str, postal: &str, n: u64) -> Class {
        Class {
            age_band: Some(age.into()),
            gender: Some(gender.into()),
            language: Some("en".into()),
            region: Some(region.into()),
            postal_prefix: Some(postal.into()),
            customers: n,
        }
    }

    #[test]
    fn large_classes_pass() {
        let c = [
            class("25-34", "female", "north", "28", 12),
            class("65+", "male", "east", "10", 10),
        ];
        let f = check(Some(&c), 10);
        assert_eq!(f[0].status, Status::Pass);
        assert!(f[0].detail.contains("the smallest has 10 customers"));
    }

    /// Hand-computed: with k = 10, the four female classes (4, 7, 9, 3) are
    /// below k: 23 of 40 customers exposed (57.5%) in 4 groups. Cutting the
    /// postal prefix to one character merges 28/28x/29 into "2" (4 + 7 + 9 =
    /// 20) but leaves "1" with 3 customers; dropping the prefix merges all
    /// female customers (23) and leaves the male class of 17: no class below 10.
    #[test]
    fn the_least_lossy_generalization_that_fixes_it_is_recommended() {
        let c = [
            class("25-34", "female", "north", "28", 4),
            class("25-34", "female", "north", "28x", 7),
            class("25-34", "female", "north", "29", 9),
            class("25-34", "female", "north", "10", 3),
            class("25-34", "male", "north", "28", 17),
        ];
        let f = check(Some(&c), 10);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].status, Status::Warn);
        assert_eq!(f[0].count, 23);
        assert!(f[0].detail.contains("has 3 customers"), "{}", f[0].detail);
        assert!(f[0].detail.contains("(57.5%)"), "{}", f[0].detail);
        assert!(f[0].detail.contains("in 4 groups"), "{}", f[0].detail);
        assert!(
            f[0].advice
                .starts_with("Generalize further: postal prefix dropped. How:"),
            "{}",
            f[0].advice
        );
        assert!(f[0].advice.contains("smallest group has 17 customers"));
        assert!(
            !f[0].advice.contains("Or, to keep"),
            "region and gender are kept anyway"
        );
    }

    /// Hand-computed: two regions of 30 and 12 customers, plus one customer
    /// alone in a third region. Only dropping region fixes it (smallest group
    /// 43); keeping region leaves that 1 customer exposed (1 of 43, 2.3%).
    #[test]
    fn suppression_is_offered_when_the_fix_drops_an_audit_attribute() {
        let c = [
            class("25-34", "female", "north", "28", 30),
            class("25-34", "female", "south", "28", 12),
            class("25-34", "female", "east", "28", 1),
        ];
        let f = check(Some(&c), 10);
        assert!(
            f[0].advice.starts_with(
                "Generalize further: postal prefix and region dropped, age bands widened."
            ),
            "{}",
            f[0].advice
        );
        assert!(f[0].advice.contains("smallest group has 43 customers"));
        assert!(
            f[0].advice.contains(
                "leave the attributes of the 1 customer still in smaller groups (2.3%) empty"
            ),
            "{}",
            f[0].advice
        );
    }

    #[test]
    fn when_nothing_helps_the_remaining_customers_are_counted() {
        let c = [
            class("25-34", "female", "north", "28", 30),
            class("65+", "male", "east", "10", 2),
        ];
        let f = check(Some(&c), 10);
        assert!(
            f[0].advice
                .starts_with("Even with only widened age bands kept, 2 customers"),
            "{}",
            f[0].advice
        );
    }

    /// Hand-computed: 30 English and 12 Spanish speakers, and the one
    /// Finnish speaker, all else equal: alone in their group, until
    /// language is dropped with region (smallest group 43).
    #[test]
    fn a_lone_language_is_a_small_group() {
        let mut finn = class("25-34", "female", "north", "28", 1);
        finn.language = Some("fi".into());
        let mut es = class("25-34", "female", "north", "28", 12);
        es.language = Some("es".into());
        let c = [class("25-34", "female", "north", "28", 30), es, finn];
        let f = check(Some(&c), 10);
        assert_eq!((f[0].status, f[0].count), (Status::Warn, 1));
        assert!(
            f[0].advice.starts_with(
                "Generalize further: postal prefix, region and language dropped, age bands widened."
            ),
            "{}",
            f[0].advice
        );
        assert!(f[0].advice.contains("smallest group has 43 customers"));
    }

    #[test]
    fn widening_keeps_65_plus_apart() {
        assert_eq!(wide_age(&Some("18-24".into())).as_deref(), Some("under_35"));
        assert_eq!(wide_age(&Some("55-64".into())).as_deref(), Some("35-64"));
        assert_eq!(wide_age(&Some("65+".into())).as_deref(), Some("65+"));
        assert_eq!(wide_age(&None), None);
    }

    #[test]
    fn a_missing_mart_is_not_a_pass() {
        assert_eq!(check(None, 10)[0].status, Status::Warn);
        assert_eq!(check(Some(&[]), 10)[0].status, Status::Warn);
    }
}
