//! Check 8, sensitive attributes are not model features.
//!
//! Sensitive attributes and quasi-identifiers (age band, gender, language,
//! region, postal prefix: every contract column of privacy class
//! `sensitive` or `quasi_identifier`) are kept for the fairness audit only.
//! The check looks at two things:
//!
//! - every registered model feature list
//!   ([`crate::privacy::model_feature_lists`]): no feature is such an
//!   attribute by name, or is computed from one (column lineage of the
//!   feature tables);
//! - the feature tables themselves ([`crate::privacy::FEATURE_TABLES`]): no
//!   column is computed from such an attribute (`fail`), and the table's
//!   logic does not filter or join on one (`warn`: a feature table that
//!   leaves out a region shapes every model trained on it).

use std::collections::{BTreeMap, BTreeSet};

use super::{Finding, Status, plural};
use crate::schema::{Contracts, Privacy};

/// (lake table, column).
pub type Source = (String, String);

/// Column lineage of the models, from `marts/lineage`.
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    /// (model, output column) → lake columns it is computed from.
    pub outputs: BTreeMap<(String, String), BTreeSet<Source>>,
    /// model → lake columns read only to filter, join, group or order.
    pub logic: BTreeMap<String, BTreeSet<Source>>,
}

/// The sensitive lake columns: (table, lake column name).
pub fn sensitive_columns(contracts: &Contracts) -> BTreeSet<Source> {
    contracts
        .iter()
        .flat_map(|c| {
            c.columns
                .iter()
                .filter(|x| {
                    x.is_kept()
                        && matches!(x.privacy, Privacy::Sensitive | Privacy::QuasiIdentifier)
                })
                .map(|x| (c.table.clone(), x.output.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn names(sources: &BTreeSet<&Source>) -> String {
    sources
        .iter()
        .map(|(t, c)| format!("{t}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Findings of check 8.
pub fn check(
    sensitive: &BTreeSet<Source>,
    feature_lists: &[(&str, &[&str])],
    feature_tables: &[&str],
    lineage: Option<&Lineage>,
) -> Vec<Finding> {
    let sensitive_names: BTreeSet<&str> = sensitive.iter().map(|(_, c)| c.as_str()).collect();
    let mut out = Vec::new();
    // The sensitive sources a feature of a feature table derives from.
    let derived = |feature: &str| -> BTreeSet<&Source> {
        let Some(l) = lineage else {
            return BTreeSet::new();
        };
        feature_tables
            .iter()
            .filter_map(|t| l.outputs.get(&(t.to_string(), feature.to_string())))
            .flatten()
            .filter(|s| sensitive.contains(*s))
            .collect()
    };
    for (model, features) in feature_lists {
        let mut bad = Vec::new();
        for f in features.iter() {
            let from = derived(f);
            if sensitive_names.contains(f) {
                bad.push(format!("`{f}` is a sensitive attribute"));
            } else if !from.is_empty() {
                bad.push(format!("`{f}` is computed from {}", names(&from)));
            }
        }
        let f = if bad.is_empty() {
            Finding::new(
                8,
                Status::Pass,
                features.len() as u64,
                format!(
                    "Model `{model}` uses {}; none is or derives from age band, gender, language, region or postal prefix.",
                    plural(features.len() as u64, "feature", "features")
                ),
            )
        } else {
            Finding::new(
                8,
                Status::Fail,
                bad.len() as u64,
                format!("Model `{model}`: {}.", bad.join("; ")),
            )
            .advice(format!(
                "Remove these from the feature list of `{model}`: sensitive attributes are kept for the fairness audit, which checks the model's outcomes across them; a model that uses them decides by them."
            ))
        };
        out.push(f);
    }
    let Some(l) = lineage else {
        out.push(
            Finding::new(
                8,
                Status::Warn,
                0,
                "Feature tables not evaluated: there is no lineage for this date.",
            )
            .advice("Run `attune transform` for this date, then the privacy checks."),
        );
        return out;
    };
    for table in feature_tables {
        let columns: Vec<(&String, &BTreeSet<Source>)> = l
            .outputs
            .iter()
            .filter(|((m, _), _)| m == table)
            .map(|((_, c), s)| (c, s))
            .collect();
        if columns.is_empty() {
            continue;
        }
        let mut clean = true;
        for (column, sources) in &columns {
            let from: BTreeSet<&Source> =
                sources.iter().filter(|s| sensitive.contains(*s)).collect();
            if !from.is_empty() {
                clean = false;
                out.push(
                    Finding::new(
                        8,
                        Status::Fail,
                        from.len() as u64,
                        format!("Feature column `{column}` is computed from {}.", names(&from)),
                    )
                    .advice(format!(
                        "Remove `{column}` from sql/{table}.sql: sensitive attributes belong in customer_attributes, which only the fairness audit reads."
                    ))
                    .at("marts", table)
                    .column(column),
                );
            }
        }
        let logic: BTreeSet<&Source> = l
            .logic
            .get(*table)
            .map(|s| s.iter().filter(|x| sensitive.contains(*x)).collect())
            .unwrap_or_default();
        if !logic.is_empty() {
            clean = false;
            out.push(
                Finding::new(
                    8,
                    Status::Warn,
                    logic.len() as u64,
                    format!(
                        "The feature table filters, joins or groups on {}: which customers get features depends on them.",
                        names(&logic)
                    ),
                )
                .advice(format!(
                    "Check why sql/{table}.sql reads these; if it need not, remove them."
                ))
                .at("marts", table),
            );
        }
        if clean {
            out.push(
                Finding::new(
                    8,
                    Status::Pass,
                    columns.len() as u64,
                    format!(
                        "None of the {} columns of this feature table is computed from, or selected by, a sensitive attribute.",
                        columns.len()
                    ),
                )
                .at("marts", table),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(t: &str, c: &str) -> Source {
        (t.to_string(), c.to_string())
    }

    fn lineage() -> Lineage {
        let mut l = Lineage::default();
        l.outputs.insert(
            ("customer_features".into(), "frequency".into()),
            [src("orders", "order_id")].into(),
        );
        l.outputs.insert(
            ("customer_features".into(), "is_senior".into()),
            [src("customers", "age_band")].into(),
        );
        l
    }

    #[test]
    fn the_shipped_contracts_name_the_sensitive_attributes() {
        let c = Contracts::builtin().expect("contracts");
        let s = sensitive_columns(&c);
        for col in ["age_band", "gender", "language", "region", "postal_prefix"] {
            assert!(s.contains(&src("customers", col)), "{col}");
        }
        assert!(!s.contains(&src("customers", "signup_date")));
    }

    #[test]
    fn features_that_are_or_derive_from_sensitive_attributes_fail() {
        let c = Contracts::builtin().expect("contracts");
        let s = sensitive_columns(&c);
        let ok: &[&str] = &["frequency"];
        let by_name: &[&str] = &["frequency", "region"];
        let derived: &[&str] = &["is_senior"];
        let f = check(
            &s,
            &[("segment", ok), ("churn", by_name), ("clv", derived)],
            &["customer_features"],
            Some(&lineage()),
        );
        assert_eq!(f[0].status, Status::Pass);
        assert_eq!((f[1].status, f[1].count), (Status::Fail, 1));
        assert!(f[1].detail.contains("`region` is a sensitive attribute"));
        assert_eq!(f[2].status, Status::Fail);
        assert!(f[2].detail.contains("computed from customers.age_band"));
        // The feature table itself carries a derived sensitive column.
        let table: Vec<&Finding> = f.iter().filter(|x| x.table.is_some()).collect();
        assert_eq!(table.len(), 1);
        assert_eq!(table[0].column.as_deref(), Some("is_senior"));
        assert_eq!(table[0].status, Status::Fail);
    }

    #[test]
    fn a_clean_feature_table_passes_and_logic_use_warns() {
        let c = Contracts::builtin().expect("contracts");
        let s = sensitive_columns(&c);
        let mut l = lineage();
        l.outputs
            .remove(&("customer_features".to_string(), "is_senior".to_string()));
        let f = check(&s, &[], &["customer_features"], Some(&l));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].status, Status::Pass);
        l.logic.insert(
            "customer_features".into(),
            [src("customers", "region")].into(),
        );
        let f = check(&s, &[], &["customer_features"], Some(&l));
        assert_eq!(f[0].status, Status::Warn);
        assert!(f[0].detail.contains("customers.region"));
    }
}
