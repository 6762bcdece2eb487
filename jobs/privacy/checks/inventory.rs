//! Check 1, inventory: every column that arrived in an export, what ingest
//! did with it, and the purpose its contract declares. Columns nobody
//! declared are dropped at the door, but they still travel from the
//! business's tools to attune: the advice is to stop exporting them.

use super::{Finding, Status, plural};
use crate::schema::Contracts;

/// One column as recorded in `lake/ingest_audit`, summed over files and dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrivedColumn {
    pub table: String,
    pub column: String,
    /// `kept`, `pseudonymized`, `generalized`, `redacted`, `dropped` or `undeclared_dropped`.
    pub outcome: String,
    /// Rows of the files that carried the column.
    pub rows: u64,
    /// Files that carried it.
    pub files: u64,
}

/// Findings of check 1.
pub fn check(arrived: &[ArrivedColumn], contracts: &Contracts) -> Vec<Finding> {
    if arrived.is_empty() {
        return vec![
            Finding::new(
                1,
                Status::Warn,
                0,
                "No ingest audit was found, so the columns that arrive cannot be listed.",
            )
            .advice("Run `attune ingest` (or the nightly run) before the privacy checks."),
        ];
    }
    let mut out = Vec::new();
    for a in arrived {
        let declared = contracts
            .get(&a.table)
            .ok()
            .and_then(|c| c.column_index(&a.column).map(|i| c.columns[i].clone()));
        let seen = format!(
            "Arrived in {} ({})",
            plural(a.files, "file", "files"),
            plural(a.rows, "row", "rows")
        );
        let finding = match (&declared, a.outcome.as_str()) {
            (None, _) | (_, "undeclared_dropped") => Finding::new(
                1,
                Status::Warn,
                a.rows,
                format!(
                    "{seen}; no contract declares it, so it has no purpose and was dropped at the door."
                ),
            )
            .advice(format!(
                "Stop exporting `{}` from the tool that writes the {} export: attune never uses it, and every copy of personal data is a risk.",
                a.column, a.table
            )),
            (Some(c), outcome) => {
                let what = match outcome {
                    "kept" => "kept as is".to_string(),
                    "pseudonymized" => "replaced by a keyed pseudonym".to_string(),
                    "generalized" => format!("generalized to `{}`", c.output),
                    "redacted" => "kept with emails, phones, cards, IBANs and IPs redacted".to_string(),
                    "dropped" => "dropped at the door (never stored)".to_string(),
                    other => other.to_string(),
                };
                let advice = if outcome == "dropped" {
                    format!(
                        "Nothing required; the {} export could leave `{}` out altogether.",
                        a.table, a.column
                    )
                } else {
                    "Nothing to do.".to_string()
                };
                Finding::new(
                    1,
                    Status::Pass,
                    a.rows,
                    format!("{seen}; {what}. Purpose: {}", c.purpose),
                )
                .advice(advice)
            }
        };
        out.push(finding.at("landing", &a.table).column(&a.column));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrived(table: &str, column: &str, outcome: &str) -> ArrivedColumn {
        ArrivedColumn {
            table: table.into(),
            column: column.into(),
            outcome: outcome.into(),
            rows: 1200,
            files: 3,
        }
    }

    #[test]
    fn undeclared_columns_warn_and_declared_ones_carry_their_purpose() {
        let contracts = Contracts::builtin().expect("contracts");
        let f = check(
            &[
                arrived("orders", "card_last4", "undeclared_dropped"),
                arrived("customers", "email", "dropped"),
                arrived("customers", "postal_code", "generalized"),
                arrived("orders", "total_amount", "kept"),
            ],
            &contracts,
        );
        assert_eq!(f.len(), 4);
        assert_eq!(f[0].status, Status::Warn);
        assert_eq!(f[0].column.as_deref(), Some("card_last4"));
        assert!(f[0].advice.contains("Stop exporting `card_last4`"));
        assert!(f[0].detail.contains("3 files (1,200 rows)"));
        assert_eq!(f[1].status, Status::Pass);
        assert!(f[1].detail.contains("dropped at the door"));
        assert!(f[2].detail.contains("generalized to `postal_prefix`"));
        assert!(f[3].detail.contains("Purpose: "));
        assert!(f.iter().all(|x| x.area.as_deref() == Some("landing")));
    }

    #[test]
    fn no_audit_is_not_a_pass() {
        let contracts = Contracts::builtin().expect("contracts");
        let f = check(&[], &contracts);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].status, Status::Warn);
    }
}
