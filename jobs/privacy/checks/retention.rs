//! Check 6, retention: the oldest partition of every landing, lake,
//! quarantine and mart table against `privacy.retention_days`.
//!
//! Nightly runs retention after this check, so a partition that expires
//! tonight is still here: only partitions that expired before tonight count
//! as overdue. Overdue data is advice (`warn`) while retention is switched
//! off, and a `fail` when it is on, because then the deletion did not work.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::{Finding, Status, plural};

/// Findings of check 6. `partitions`: dates per (area, table).
pub fn check(
    partitions: &BTreeMap<(String, String), Vec<NaiveDate>>,
    date: NaiveDate,
    retention_days: u32,
    retention_enabled: bool,
) -> Vec<Finding> {
    // Expired before tonight: older than the cut-off of the previous night.
    let overdue_before =
        crate::privacy::retention::cutoff(date, retention_days) - chrono::Duration::days(1);
    let mut out = Vec::new();
    for ((area, table), dates) in partitions {
        let Some(oldest) = dates.iter().min() else {
            continue;
        };
        let age = (date - *oldest).num_days();
        let overdue = dates.iter().filter(|d| **d < overdue_before).count() as u64;
        let f = if overdue == 0 {
            Finding::new(
                6,
                Status::Pass,
                dates.len() as u64,
                format!(
                    "Oldest partition {oldest} ({}), within the {retention_days}-day retention.",
                    plural(age.max(0) as u64, "day old", "days old")
                ),
            )
        } else {
            let status = if retention_enabled {
                Status::Fail
            } else {
                Status::Warn
            };
            let advice = if retention_enabled {
                "Retention is enabled but did not delete these: check the last `attune retention` run in runs/ and re-run it."
            } else {
                "Run `attune retention` (try `--dry-run` first), or set `retention_enabled = true` under [privacy] so nightly deletes expired data."
            };
            Finding::new(
                6,
                status,
                overdue,
                format!(
                    "{} older than the {retention_days}-day retention (oldest {oldest}, {}).",
                    plural(overdue, "partition is", "partitions are"),
                    plural(age.max(0) as u64, "day old", "days old")
                ),
            )
            .advice(advice)
        };
        out.push(f.at(area, table));
    }
    if out.is_empty() {
        out.push(Finding::new(6, Status::Pass, 0, "No dated partitions yet."));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn only_partitions_expired_before_tonight_are_overdue() {
        // Run date 2025-03-10, 7 days: tonight's retention deletes < 03-03;
        // last night's deleted < 03-02, so 03-02 is not yet overdue.
        let parts = BTreeMap::from([
            (
                ("lake".to_string(), "orders".to_string()),
                vec![d("2025-03-02"), d("2025-03-09")],
            ),
            (
                ("landing".to_string(), "orders".to_string()),
                vec![d("2025-02-28"), d("2025-03-01"), d("2025-03-05")],
            ),
        ]);
        let f = check(&parts, d("2025-03-10"), 7, false);
        assert_eq!(f.len(), 2);
        assert_eq!(
            (f[0].table.as_deref(), f[0].status),
            (Some("orders"), Status::Pass)
        );
        assert_eq!(f[0].area.as_deref(), Some("lake"));
        assert!(
            f[0].detail
                .contains("Oldest partition 2025-03-02 (8 days old)"),
            "{}",
            f[0].detail
        );
        assert_eq!((f[1].status, f[1].count), (Status::Warn, 2));
        assert!(f[1].advice.contains("attune retention"));
        let on = check(&parts, d("2025-03-10"), 7, true);
        assert_eq!(
            on[1].status,
            Status::Fail,
            "enabled but not done: a failure"
        );
    }
}
