//! The privacy checks: what each one looks at and the findings it reports.
//!
//! Every check is a pure function from facts gathered once by
//! [`super::run`] (the ingest audit, the lineage, a scan of every string
//! value, the partitions on disk, the attribute classes) to [`Finding`]s, so
//! each can be tested on small hand-made facts. A check reports at least one
//! finding: a `pass` says what was looked at, so a reader can tell "checked
//! and fine" from "not checked".

pub mod features;
pub mod inventory;
pub mod k_anonymity;
pub mod leaks;
pub mod released;
pub mod retention;
pub mod unused;

use serde::Serialize;

/// How bad a finding is. Ordered: `Pass < Warn < Fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Nothing to do.
    Pass,
    /// Advice: data is kept or collected that need not be, or could be coarser.
    Warn,
    /// Personal data is where it must not be.
    Fail,
}

impl Status {
    /// The word written to `marts/privacy_checks`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// A check: its number, a stable name and a plain-language title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckDef {
    pub id: u8,
    pub name: &'static str,
    pub title: &'static str,
}

/// Every check, in report order. Ids 1–9 follow the issue that asked for
/// them; 10 covers the erasure list the same way 5 covers consent.
pub const CHECKS: [CheckDef; 10] = [
    CheckDef {
        id: 1,
        name: "inventory",
        title: "What happens to every column you export",
    },
    CheckDef {
        id: 2,
        name: "collected_but_unused",
        title: "Data kept but never used",
    },
    CheckDef {
        id: 3,
        name: "pii_scan",
        title: "No personal details in stored tables",
    },
    CheckDef {
        id: 4,
        name: "pseudonymization",
        title: "Customer numbers are replaced by pseudonyms",
    },
    CheckDef {
        id: 5,
        name: "consent",
        title: "Customers who declined analytics are left out",
    },
    CheckDef {
        id: 6,
        name: "retention",
        title: "Old data is deleted on time",
    },
    CheckDef {
        id: 7,
        name: "k_anonymity",
        title: "Customers cannot be singled out by their attributes",
    },
    CheckDef {
        id: 8,
        name: "sensitive_features",
        title: "Models do not use sensitive attributes",
    },
    CheckDef {
        id: 9,
        name: "released_aggregates",
        title: "Published numbers hide small groups",
    },
    CheckDef {
        id: 10,
        name: "erasure",
        title: "Customers who asked to be forgotten stay forgotten",
    },
];

/// The definition of check `id`.
pub fn def(id: u8) -> CheckDef {
    CHECKS[usize::from(id) - 1]
}

/// One row of `marts/privacy_checks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check_id: u8,
    pub status: Status,
    /// `landing`, `lake`, `quarantine` or `marts`; `None` when not about one table.
    pub area: Option<String>,
    pub table: Option<String>,
    pub column: Option<String>,
    /// What was counted; the detail says what (rows, customers, partitions, cells…).
    pub count: u64,
    /// What was found, in plain language, with counts and never a value.
    pub detail: String,
    /// What to do about it.
    pub advice: String,
}

impl Finding {
    /// A finding of check `check_id`.
    pub fn new(check_id: u8, status: Status, count: u64, detail: impl Into<String>) -> Finding {
        Finding {
            check_id,
            status,
            area: None,
            table: None,
            column: None,
            count,
            detail: detail.into(),
            advice: if status == Status::Pass {
                "Nothing to do.".into()
            } else {
                String::new()
            },
        }
    }

    /// About `area/table`.
    pub fn at(mut self, area: &str, table: &str) -> Finding {
        self.area = Some(area.to_string());
        self.table = Some(table.to_string());
        self
    }

    /// About a column of the table.
    pub fn column(mut self, column: &str) -> Finding {
        self.column = Some(column.to_string());
        self
    }

    /// What to do.
    pub fn advice(mut self, advice: impl Into<String>) -> Finding {
        self.advice = advice.into();
        self
    }

    /// Sort key: check, then place, then status (worst last within a place).
    fn key(
        &self,
    ) -> (
        u8,
        &Option<String>,
        &Option<String>,
        &Option<String>,
        Status,
    ) {
        (
            self.check_id,
            &self.area,
            &self.table,
            &self.column,
            self.status,
        )
    }
}

/// Sorts findings into their published order (deterministic output).
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| a.key().cmp(&b.key()).then(a.detail.cmp(&b.detail)));
}

/// The status of each check: the worst of its findings.
pub fn statuses(findings: &[Finding]) -> Vec<(CheckDef, Status)> {
    CHECKS
        .iter()
        .map(|c| {
            let worst = findings
                .iter()
                .filter(|f| f.check_id == c.id)
                .map(|f| f.status)
                .max()
                .unwrap_or(Status::Pass);
            (*c, worst)
        })
        .collect()
}

/// `n` with thousands separators, for details an owner reads.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "1 row" / "2 rows".
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_ids_are_their_positions() {
        for (i, c) in CHECKS.iter().enumerate() {
            assert_eq!(usize::from(c.id), i + 1, "{}", c.name);
            assert_eq!(def(c.id), *c);
        }
    }

    #[test]
    fn a_check_is_as_bad_as_its_worst_finding() {
        let f = vec![
            Finding::new(3, Status::Pass, 0, "a"),
            Finding::new(3, Status::Fail, 2, "b"),
            Finding::new(3, Status::Warn, 1, "c"),
            Finding::new(5, Status::Warn, 1, "d"),
        ];
        let s = statuses(&f);
        assert_eq!(s[2].1, Status::Fail);
        assert_eq!(s[4].1, Status::Warn);
        assert_eq!(s[0].1, Status::Pass, "no findings: nothing against it");
    }

    #[test]
    fn numbers_read_well() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1234567, "1,234,567"),
        ];
        for (n, want) in cases {
            assert_eq!(thousands(n), want);
        }
        assert_eq!(plural(1, "row", "rows"), "1 row");
        assert_eq!(plural(1200, "row", "rows"), "1,200 rows");
    }
}
