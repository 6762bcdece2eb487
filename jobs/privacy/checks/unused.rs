//! Check 2, collected but unused: columns the lake keeps that no SQL model
//! uses (from `marts/lineage`, which the transform derives from the models'
//! logical plans) and no Rust job declares it reads
//! ([`crate::privacy::rust_job_reads`]). Keeping data nobody uses has only a
//! downside, so each one is advice to stop keeping it.
//!
//! "Used by SQL" means reaching a materialized model ([`used_by_sql`]): an
//! output of a `table` model is computed from the column, or the logic
//! (filter, join, grouping, ordering, de-duplication) of a table model or of
//! a staging view that a table model reads depends on it. A column that a
//! staging view merely passes on, and no table model takes, reaches nothing.

use std::collections::{BTreeMap, BTreeSet};

use super::features::{Lineage, Source};
use super::{Finding, Status, plural};
use crate::schema::Contracts;

/// What check 2 needs to know of a SQL model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub name: String,
    /// `materialized: table` (written to marts) rather than a view.
    pub table: bool,
    /// Tables and models its SQL reads.
    pub references: BTreeSet<String>,
}

/// The lake columns that reach a materialized model (see the module docs).
pub fn used_by_sql(models: &[ModelInfo], lineage: &Lineage) -> BTreeSet<Source> {
    // Views read, directly or through other views, by a table model.
    let mut live: BTreeSet<&str> = models
        .iter()
        .filter(|m| m.table)
        .map(|m| m.name.as_str())
        .collect();
    loop {
        let more: BTreeSet<&str> = models
            .iter()
            .filter(|m| live.contains(m.name.as_str()))
            .flat_map(|m| m.references.iter().map(String::as_str))
            .filter(|r| models.iter().any(|m| m.name == *r) && !live.contains(r))
            .collect();
        if more.is_empty() {
            break;
        }
        live.extend(more);
    }
    let is_table = |name: &str| models.iter().any(|m| m.table && m.name == name);
    let mut used = BTreeSet::new();
    for ((model, _), sources) in &lineage.outputs {
        if is_table(model) {
            used.extend(sources.iter().cloned());
        }
    }
    for (model, sources) in &lineage.logic {
        if live.contains(model.as_str()) {
            used.extend(sources.iter().cloned());
        }
    }
    used
}

/// What is known about column use.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// (lake table, column) read by any SQL model; `None` when the run date
    /// has no lineage (the transform did not run).
    pub sql: Option<BTreeSet<(String, String)>>,
    /// (job, lake table, column) declared by Rust jobs.
    pub rust: Vec<(String, String, String)>,
}

/// Findings of check 2. `lake_rows` gives rows per lake table (for counts).
pub fn check(
    contracts: &Contracts,
    usage: &Usage,
    lake_rows: &BTreeMap<String, u64>,
) -> Vec<Finding> {
    let Some(sql) = &usage.sql else {
        return vec![
            Finding::new(
                2,
                Status::Warn,
                0,
                "Not evaluated: there is no lineage for this date, so it is unknown which columns the SQL models read.",
            )
            .advice("Run `attune transform` for this date (it writes marts/lineage), then the privacy checks."),
        ];
    };
    let mut kept = 0u64;
    let mut out = Vec::new();
    for contract in contracts.iter() {
        let table = contract.table.as_str();
        for col in contract.columns.iter().filter(|c| c.is_kept()) {
            kept += 1;
            let name = col.output.as_str();
            let in_sql = sql.contains(&(table.to_string(), name.to_string()));
            let in_rust = usage.rust.iter().any(|(_, t, c)| t == table && c == name);
            if in_sql || in_rust {
                continue;
            }
            let rows = lake_rows.get(table).copied().unwrap_or(0);
            out.push(
                Finding::new(
                    2,
                    Status::Warn,
                    rows,
                    format!(
                        "You keep `{table}.{name}` ({} in the lake) but nothing uses it: no SQL model reads it and no job declares it.",
                        plural(rows, "row", "rows")
                    ),
                )
                .advice(format!(
                    "Stop keeping it: set `handling = \"drop\"` for `{}` in schemas/{table}.toml (and stop exporting it), or remove it from the contract; if a job does read it, declare it in that job's LAKE_COLUMNS_READ.",
                    col.name
                ))
                .at("lake", table)
                .column(name),
            );
        }
    }
    if out.is_empty() {
        out.push(Finding::new(
            2,
            Status::Pass,
            kept,
            format!(
                "Every one of the {kept} columns kept in the lake is read by a SQL model or a job."
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept_columns(contracts: &Contracts) -> Vec<(String, String)> {
        contracts
            .iter()
            .flat_map(|c| {
                c.columns
                    .iter()
                    .filter(|x| x.is_kept())
                    .map(|x| (c.table.clone(), x.output.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn a_column_is_used_by_sql_or_by_a_declared_job_read() {
        let contracts = Contracts::builtin().expect("contracts");
        let mut sql: BTreeSet<(String, String)> = kept_columns(&contracts).into_iter().collect();
        sql.remove(&("web_sessions".into(), "duration_s".into()));
        sql.remove(&("orders".into(), "item_count".into()));
        let usage = Usage {
            sql: Some(sql.clone()),
            rust: vec![("voice".into(), "orders".into(), "item_count".into())],
        };
        let rows = BTreeMap::from([("web_sessions".to_string(), 42u64)]);
        let f = check(&contracts, &usage, &rows);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].status, Status::Warn);
        assert_eq!(
            (f[0].table.as_deref(), f[0].column.as_deref()),
            (Some("web_sessions"), Some("duration_s"))
        );
        assert!(f[0].detail.contains("`web_sessions.duration_s`"));
        assert_eq!(f[0].count, 42);

        let all_used = Usage {
            sql: Some(kept_columns(&contracts).into_iter().collect()),
            rust: vec![],
        };
        let f = check(&contracts, &all_used, &rows);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].status, Status::Pass);
    }

    fn src(t: &str, c: &str) -> Source {
        (t.to_string(), c.to_string())
    }

    #[test]
    fn only_what_reaches_a_table_model_is_used() {
        let model = |name: &str, table: bool, refs: &[&str]| ModelInfo {
            name: name.into(),
            table,
            references: refs.iter().map(|r| r.to_string()).collect(),
        };
        let models = [
            model("stg_orders", false, &["orders", "run_context"]),
            model("stg_offers", false, &["offers"]),
            model("daily", true, &["stg_orders"]),
        ];
        let mut l = Lineage::default();
        // The view passes on amount and items, and de-duplicates by id.
        l.outputs.insert(
            ("stg_orders".into(), "amount".into()),
            [src("orders", "amount")].into(),
        );
        l.outputs.insert(
            ("stg_orders".into(), "items".into()),
            [src("orders", "items")].into(),
        );
        l.logic
            .insert("stg_orders".into(), [src("orders", "order_id")].into());
        // The table model takes only the amount, filtered by channel.
        l.outputs.insert(
            ("daily".into(), "revenue".into()),
            [src("orders", "amount")].into(),
        );
        l.logic
            .insert("daily".into(), [src("orders", "channel")].into());
        // A view no table model reads: its logic reaches nothing.
        l.outputs.insert(
            ("stg_offers".into(), "offer_type".into()),
            [src("offers", "offer_type")].into(),
        );
        l.logic
            .insert("stg_offers".into(), [src("offers", "offer_id")].into());
        let used = used_by_sql(&models, &l);
        assert_eq!(
            used,
            [
                src("orders", "amount"),
                src("orders", "channel"),
                src("orders", "order_id")
            ]
            .into()
        );
    }

    #[test]
    fn without_lineage_the_check_says_it_did_not_run() {
        let contracts = Contracts::builtin().expect("contracts");
        let f = check(&contracts, &Usage::default(), &BTreeMap::new());
        assert_eq!(f[0].status, Status::Warn);
        assert!(f[0].detail.starts_with("Not evaluated"));
    }
}
