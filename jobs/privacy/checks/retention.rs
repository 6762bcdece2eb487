//! Check 6, retention: the oldest partition of every landing, lake,
//! quarantine and mart table against `privacy.retention_days`.
//!
//! Nightly runs retention after this check, so a partition that expires
//! tonight is still here: only partitions that expired before tonight count
//! as overdue. Overdue data is a `fail` when a retention run completed with
//! a cut-off after it (the deletion did not work), and advice (`warn`)
//! otherwise: retention is off, or has not run since the data expired (the
//! first night it is switched on, or nights without a nightly), and the
//! next run deletes it.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::{Finding, Status, plural};

/// Findings of check 6. `partitions`: dates per (area, table).
pub fn check(
    partitions: &BTreeMap<(String, String), Vec<NaiveDate>>,
    date: NaiveDate,
    retention_days: u32,
    retention_enabled: bool,
    last_retention_cutoff: Option<NaiveDate>,
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
        let keeps_current = crate::privacy::current_records::is_record_table(area, table)
            && (retention_enabled || last_retention_cutoff.is_some());
        let f = if overdue == 0 || keeps_current {
            let why = if overdue == 0 {
                format!(", within the {retention_days}-day retention.")
            } else {
                format!(
                    ": a record table, whose partitions past the {retention_days}-day retention keep only the current copy of each record."
                )
            };
            Finding::new(
                6,
                Status::Pass,
                dates.len() as u64,
                format!(
                    "Oldest partition {oldest} ({}){why}",
                    plural(age.max(0) as u64, "day old", "days old")
                ),
            )
        } else {
            let missed =
                last_retention_cutoff.map_or(0, |c| dates.iter().filter(|d| **d < c).count());
            let (status, advice) = if missed > 0 {
                (
                    Status::Fail,
                    format!(
                        "Retention completed with the cut-off {} but these are still here: check that run in runs/ and re-run `attune retention`.",
                        last_retention_cutoff.expect("missed implies a cut-off")
                    ),
                )
            } else if retention_enabled {
                (
                    Status::Warn,
                    "No retention run has completed since these expired; the nightly's retention deletes them after this check (or run `attune retention`).".to_string(),
                )
            } else {
                (
                    Status::Warn,
                    "Run `attune retention` (try `--dry-run` first), or set `retention_enabled = true` under [privacy] so nightly deletes expired data.".to_string(),
                )
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
    fn record_tables_keep_their_current_rows_past_retention() {
        let parts = BTreeMap::from([(
            ("lake".to_string(), "customers".to_string()),
            vec![d("2024-01-02"), d("2025-03-09")],
        )]);
        let on = check(&parts, d("2025-03-10"), 7, true, Some(d("2025-03-02")));
        assert_eq!(on[0].status, Status::Pass);
        assert!(on[0].detail.contains("current copy"), "{}", on[0].detail);
        let off = check(&parts, d("2025-03-10"), 7, false, None);
        assert_eq!(
            off[0].status,
            Status::Warn,
            "no retention: old copies pile up"
        );
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
        let f = check(&parts, d("2025-03-10"), 7, false, None);
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
        let on = check(&parts, d("2025-03-10"), 7, true, None);
        assert_eq!(
            on[1].status,
            Status::Warn,
            "enabled but not run since they expired (its first night): tonight's run deletes them"
        );
        let missed = check(&parts, d("2025-03-10"), 7, true, Some(d("2025-03-01")));
        assert_eq!(
            (missed[1].status, missed[1].count),
            (Status::Fail, 2),
            "a run with the cut-off 03-01 should have deleted 02-28"
        );
        assert!(missed[1].advice.contains("cut-off 2025-03-01"));
        let earlier = check(&parts, d("2025-03-10"), 7, false, Some(d("2025-02-20")));
        assert_eq!(
            earlier[1].status,
            Status::Warn,
            "expired after the last run's cut-off: not a failure of that run"
        );
    }
}
