//! Check 9, released aggregates: the marts the report is built from have no
//! cell counting fewer than `min_group_size` people (or answers, tickets…)
//! unless the row is marked suppressed.
//!
//! Which marts feed the report, with their count column, is
//! [`crate::privacy::RELEASED_TABLES`]. A table the report shows row by row
//! must suppress small cells itself (`fail`); a daily building block the
//! report re-aggregates (weekly, monthly) may hold small cells, but the
//! report must not show them as they are (`warn`).

use super::{Finding, Status, plural, thousands};

/// How the report uses a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportUse {
    /// Shown row by row: every cell must be at least `min_group_size`.
    AsIs,
    /// Re-aggregated by the report before it is shown.
    Aggregated,
}

/// A mart that feeds the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleasedTable {
    pub table: &'static str,
    /// The columns counting the people (or answers, tickets) behind a row;
    /// with several (the two arms of an experiment), the smallest counts.
    pub count_columns: &'static [&'static str],
    pub report_use: ReportUse,
    /// SQL condition selecting the rows that count people, when some rows
    /// count something else (the fairness audit's probe rows count template
    /// sentences). `None`: every row.
    pub people_rows: Option<&'static str>,
}

/// What the scan of one released table found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableCells {
    /// The table has no partition for the date.
    Absent,
    /// The count column is missing.
    NoCountColumn,
    Scanned {
        /// Rows with a count (suppressed rows excluded).
        cells: u64,
        /// Of which below `min_group_size`.
        small: u64,
        /// Smallest count, when any.
        min: Option<u64>,
    },
}

/// Findings of check 9.
pub fn check(tables: &[(ReleasedTable, TableCells)], k: usize) -> Vec<Finding> {
    let mut out = Vec::new();
    for (t, cells) in tables {
        let counted = t.count_columns.join(", ");
        let at = |f: Finding| f.at("marts", t.table).column(&counted);
        match cells {
            TableCells::Absent => {}
            TableCells::NoCountColumn => out.push(at(Finding::new(
                9,
                Status::Warn,
                0,
                format!(
                    "Not evaluated: {} lacks a column of `{counted}` to count the people behind each row.",
                    t.table
                ),
            )
            .advice(
                "Fix the entry of this table in privacy::RELEASED_TABLES (jobs/privacy/mod.rs)."
                    .to_string(),
            ))),
            TableCells::Scanned {
                cells,
                small: 0,
                min,
            } => out.push(at(Finding::new(
                9,
                Status::Pass,
                *cells,
                format!(
                    "{}; the smallest counts {}, at least the minimum group size of {k}.",
                    plural(*cells, "cell", "cells"),
                    min.map_or("nothing".to_string(), thousands)
                ),
            ))),
            TableCells::Scanned { cells, small, min } => {
                let (status, advice) = match t.report_use {
                    ReportUse::AsIs => (
                        Status::Fail,
                        format!(
                            "The job that writes {} must suppress rows with {counted} below {k} (blank their numbers and mark them suppressed) before the report shows them.",
                            t.table
                        ),
                    ),
                    ReportUse::Aggregated => (
                        Status::Warn,
                        format!(
                            "The report must aggregate {} (e.g. by week or month) or hide cells below {k} before showing them; never show its daily rows as they are.",
                            t.table
                        ),
                    ),
                };
                out.push(at(Finding::new(
                    9,
                    status,
                    *small,
                    format!(
                        "{} of {} count fewer than {k} (smallest: {}).",
                        plural(*small, "cell", "cells"),
                        thousands(*cells),
                        min.map_or("?".to_string(), thousands)
                    ),
                )
                .advice(advice)));
            }
        }
    }
    if out.is_empty() {
        out.push(Finding::new(
            9,
            Status::Pass,
            0,
            "No table that feeds the report exists yet for this date.",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAILY: ReleasedTable = ReleasedTable {
        table: "nps_daily",
        count_columns: &["responses"],
        report_use: ReportUse::Aggregated,
        people_rows: None,
    };
    const SHOWN: ReleasedTable = ReleasedTable {
        table: "segment_profiles",
        count_columns: &["customers"],
        report_use: ReportUse::AsIs,
        people_rows: None,
    };

    #[test]
    fn small_cells_fail_where_shown_as_is_and_warn_where_aggregated() {
        let small = TableCells::Scanned {
            cells: 40,
            small: 3,
            min: Some(2),
        };
        let f = check(&[(DAILY, small.clone()), (SHOWN, small)], 10);
        assert_eq!((f[0].status, f[0].count), (Status::Warn, 3));
        assert_eq!((f[1].status, f[1].count), (Status::Fail, 3));
        assert!(
            f[1].detail
                .contains("3 cells of 40 count fewer than 10 (smallest: 2)")
        );
        assert_eq!(f[1].column.as_deref(), Some("customers"));
    }

    #[test]
    fn large_cells_pass_and_missing_tables_are_skipped() {
        let ok = TableCells::Scanned {
            cells: 12,
            small: 0,
            min: Some(15),
        };
        let f = check(
            &[
                (DAILY, TableCells::Absent),
                (SHOWN, ok),
                (DAILY, TableCells::NoCountColumn),
            ],
            10,
        );
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].status, Status::Pass);
        assert_eq!(f[1].status, Status::Warn);
        assert_eq!(check(&[], 10)[0].status, Status::Pass);
    }
}
