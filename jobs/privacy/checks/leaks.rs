//! Checks 3, 4, 5 and 10: what one scan of every string value in lake and
//! marts found.
//!
//! - 3, PII scan: ingest's own detectors (emails, phones, Luhn-valid cards,
//!   mod-97 IBANs, IPs) on every value that is not a pseudonym.
//! - 4, pseudonymization: no value equals a raw customer identifier read
//!   from landing.
//! - 5, consent: no value equals the pseudonym of an opted-out customer;
//!   the rows ingest left out, per table.
//! - 10, erasure: the same for customers who asked to be forgotten, and no
//!   erasure request left half done.

use std::collections::BTreeMap;

use super::{Finding, Status, plural, thousands};
use crate::privacy::scan::{ColumnFacts, ScanFacts};

/// What the leak checks know besides the scan.
#[derive(Debug, Clone, Default)]
pub struct LeakFacts {
    pub scan: ScanFacts,
    /// What the raw identifiers were read from; `None` when landing had none.
    pub raw_ids: Option<RawIdSource>,
    /// Customers on the consent exclusion list.
    pub opted_out_customers: u64,
    /// Lake table → rows ingest excluded for consent (all dates).
    pub consent_excluded: BTreeMap<String, u64>,
    /// Customers on the erasure list.
    pub erased_customers: u64,
    /// Lake table → rows ingest excluded because of the erasure list.
    pub erased_at_ingest: BTreeMap<String, u64>,
    /// Erasure requests that started but did not complete.
    pub pending_erasures: Vec<String>,
    /// Erasure requests of another key than the lake's that no re-ingest
    /// carried over: (key id, requests, customers). Their customers are not
    /// recognized if an export brings them back.
    pub uncarried_erasures: Vec<(String, u64, u64)>,
    /// The run date (for the scan's description).
    pub date: String,
}

/// Where check 4's identifiers came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawIdSource {
    pub identifiers: u64,
    pub files: u64,
    pub customer_export_days: u64,
}

fn what_was_scanned(s: &ScanFacts, date: &str) -> String {
    let values: u64 = s.columns.values().map(|c| c.values).sum();
    let keys = s.columns.values().filter(|c| c.record_key).count() as u64;
    format!(
        "{} in {} string columns of {} ({}; lake: every partition, marts: dt={date}; {} such as order_id only checked for pseudonyms)",
        plural(values, "value", "values"),
        thousands(s.columns.len() as u64),
        plural(s.table_rows.len() as u64, "table", "tables"),
        plural(s.files, "file", "files"),
        plural(keys, "record-key column", "record-key columns"),
    )
}

fn kinds(c: &ColumnFacts) -> String {
    let name = |k: &str, n: u64| -> String {
        let (one, many) = match k {
            "email" => ("e-mail address", "e-mail addresses"),
            "phone" => ("phone number", "phone numbers"),
            "card" => ("card number", "card numbers"),
            "iban" => ("IBAN", "IBANs"),
            "ip" => ("IP address", "IP addresses"),
            other => (other, other),
        };
        plural(n, one, many)
    };
    c.pii_items
        .iter()
        .map(|(k, n)| name(k, *n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Findings of check 3.
pub fn pii_scan(f: &LeakFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    for ((area, table, column), c) in &f.scan.columns {
        if c.pii_values == 0 {
            continue;
        }
        out.push(
            Finding::new(
                3,
                Status::Fail,
                c.pii_values,
                format!(
                    "{} of {} hold personal data: {}.",
                    plural(c.pii_values, "value", "values"),
                    thousands(c.values),
                    kinds(c)
                ),
            )
            .advice(format!(
                "Find how it got into {area}/{table}.{column} (a new export column, a model copying text, a job writing raw input), fix that, then rebuild the table; run `attune forget` for affected customers if they asked to be erased."
            ))
            .at(area, table)
            .column(column),
        );
    }
    if out.is_empty() {
        out.push(Finding::new(
            3,
            Status::Pass,
            f.scan.columns.values().map(|c| c.values).sum(),
            format!(
                "Scanned {}: no e-mail address, phone number, card number, IBAN or IP address.",
                what_was_scanned(&f.scan, &f.date)
            ),
        ));
    }
    out
}

/// Findings of check 4.
pub fn pseudonymization(f: &LeakFacts) -> Vec<Finding> {
    let Some(src) = &f.raw_ids else {
        return vec![
            Finding::new(
                4,
                Status::Warn,
                0,
                "Not evaluated: no landing export with customer identifiers was found (retention may have deleted it).",
            )
            .advice("Run the privacy checks while the day's exports are still in landing/ (nightly does)."),
        ];
    };
    let mut out = Vec::new();
    for ((area, table, column), c) in &f.scan.columns {
        if c.raw_ids == 0 {
            continue;
        }
        out.push(
            Finding::new(
                4,
                Status::Fail,
                c.raw_ids,
                format!(
                    "{} equal a customer number as it arrives in the exports: the identifier was not pseudonymized.",
                    plural(c.raw_ids, "value", "values")
                ),
            )
            .advice(format!(
                "Find what writes raw identifiers into {area}/{table}.{column} (a contract column with `handling = \"keep\"` instead of \"pseudonymize\", or a job reading landing directly), fix it and rebuild the table."
            ))
            .at(area, table)
            .column(column),
        );
    }
    if out.is_empty() {
        out.push(Finding::new(
            4,
            Status::Pass,
            src.identifiers,
            format!(
                "None of the {} customer numbers in landing ({} customers exports, every export of {}; {}) appears in {}.",
                thousands(src.identifiers),
                thousands(src.customer_export_days),
                f.date,
                plural(src.files, "file", "files"),
                what_was_scanned(&f.scan, &f.date)
            ),
        ));
    }
    out
}

/// Findings of check 5.
pub fn consent(f: &LeakFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    for ((area, table, column), c) in &f.scan.columns {
        if c.opted_out == 0 {
            continue;
        }
        out.push(
            Finding::new(
                5,
                Status::Fail,
                c.opted_out,
                format!(
                    "{} belong to customers who declined analytics.",
                    plural(c.opted_out, "value", "values")
                ),
            )
            .advice(format!(
                "Rebuild {area}/{table} (re-run the job that writes it); if it is a lake table, re-run `attune ingest` for the dates that hold these values, which applies control/consent (ingest removes the earlier rows of a customer only on the night the withdrawal arrives, and only when a customers record of theirs was in the lake)."
            ))
            .at(area, table)
            .column(column),
        );
    }
    let leaked = !out.is_empty();
    for (table, rows) in &f.consent_excluded {
        out.push(
            Finding::new(
                5,
                Status::Pass,
                *rows,
                format!(
                    "{} of customers who declined analytics were left out at ingest.",
                    plural(*rows, "row", "rows")
                ),
            )
            .at("lake", table),
        );
    }
    let (status, detail) = if leaked {
        (
            Status::Fail,
            format!(
                "{} declined analytics; some of their data is still stored (see the rows above).",
                plural(f.opted_out_customers, "customer", "customers")
            ),
        )
    } else {
        (
            Status::Pass,
            format!(
                "{} declined analytics; none of them appears in lake or marts.",
                plural(f.opted_out_customers, "customer", "customers")
            ),
        )
    };
    let mut summary = Finding::new(5, status, f.opted_out_customers, detail);
    if leaked {
        summary = summary.advice("Rebuild the tables listed above.");
    }
    out.push(summary);
    out
}

/// Findings of check 10.
pub fn erasure(f: &LeakFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    for ((area, table, column), c) in &f.scan.columns {
        if c.erased == 0 {
            continue;
        }
        out.push(
            Finding::new(
                10,
                Status::Fail,
                c.erased,
                format!(
                    "{} belong to customers who asked to be forgotten.",
                    plural(c.erased, "value", "values")
                ),
            )
            .advice(format!(
                "Run `attune forget` again (it completes every request), then find what brought the rows back into {area}/{table}."
            ))
            .at(area, table)
            .column(column),
        );
    }
    for id in &f.pending_erasures {
        out.push(
            Finding::new(
                10,
                Status::Warn,
                1,
                format!("Erasure request {id} started but did not complete."),
            )
            .advice("Run `attune forget` (with any id, or the same ids): it completes interrupted requests first."),
        );
    }
    for (key_id, requests, customers) in &f.uncarried_erasures {
        out.push(
            Finding::new(
                10,
                Status::Warn,
                *customers,
                format!(
                    "{} ({}) were made under key id {key_id}, not the key the lake's pseudonyms are of, and were not carried over to it: these customers are not recognized if an export brings them back.",
                    plural(*requests, "erasure request", "erasure requests"),
                    plural(*customers, "customer", "customers")
                ),
            )
            .advice("Re-ingest every date with the old key in ATTUNE_PREVIOUS_KEY (`attune nightly --from FIRST --to LAST --force`): the erased customers are kept out and carried over to the current key. If the old key is lost, `attune forget` these customers again under the current key."),
        );
    }
    for (table, rows) in &f.erased_at_ingest {
        if *rows > 0 {
            out.push(
                Finding::new(
                    10,
                    Status::Pass,
                    *rows,
                    format!(
                        "{} of erased customers arrived again and were kept out at ingest.",
                        plural(*rows, "row", "rows")
                    ),
                )
                .advice(format!(
                    "Nothing required; the {table} export still contains these customers, so the source system may need its own erasure."
                ))
                .at("lake", table),
            );
        }
    }
    if out.iter().all(|x| x.status == Status::Pass) {
        out.push(Finding::new(
            10,
            Status::Pass,
            f.erased_customers,
            format!(
                "{} asked to be forgotten; none of them appears in lake or marts.",
                plural(f.erased_customers, "customer", "customers")
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(column: ColumnFacts) -> LeakFacts {
        let mut scan = ScanFacts::default();
        scan.columns
            .insert(("marts".into(), "leaky".into(), "note".into()), column);
        scan.columns.insert(
            ("lake".into(), "orders".into(), "customer_id".into()),
            ColumnFacts {
                values: 10,
                ..ColumnFacts::default()
            },
        );
        scan.files = 2;
        scan.table_rows.insert(("marts".into(), "leaky".into()), 5);
        scan.table_rows.insert(("lake".into(), "orders".into()), 10);
        LeakFacts {
            scan,
            raw_ids: Some(RawIdSource {
                identifiers: 3,
                files: 2,
                customer_export_days: 1,
            }),
            opted_out_customers: 2,
            consent_excluded: BTreeMap::from([("orders".to_string(), 7)]),
            erased_customers: 1,
            date: "2025-03-01".into(),
            ..LeakFacts::default()
        }
    }

    #[test]
    fn a_clean_scan_passes_every_leak_check_and_says_what_it_read() {
        let f = facts(ColumnFacts {
            values: 5,
            ..ColumnFacts::default()
        });
        let p3 = pii_scan(&f);
        assert_eq!(p3.len(), 1);
        assert_eq!(p3[0].status, Status::Pass);
        assert!(
            p3[0]
                .detail
                .contains("15 values in 2 string columns of 2 tables"),
            "{}",
            p3[0].detail
        );
        assert_eq!(pseudonymization(&f)[0].status, Status::Pass);
        let c = consent(&f);
        assert!(c.iter().all(|x| x.status == Status::Pass));
        assert_eq!(c[0].count, 7, "excluded rows per table");
        assert_eq!(c.last().expect("summary").count, 2, "opted-out customers");
        assert_eq!(erasure(&f).last().expect("summary").status, Status::Pass);
    }

    #[test]
    fn each_kind_of_leak_fails_its_check_with_counts_not_values() {
        let f = facts(ColumnFacts {
            values: 5,
            pii_values: 2,
            pii_items: BTreeMap::from([("email", 2), ("phone", 1)]),
            raw_ids: 1,
            opted_out: 3,
            erased: 4,
            record_key: false,
        });
        let p3 = pii_scan(&f);
        assert_eq!(p3.len(), 1);
        assert_eq!(p3[0].status, Status::Fail);
        assert_eq!(p3[0].count, 2);
        assert_eq!(
            (
                p3[0].area.as_deref(),
                p3[0].table.as_deref(),
                p3[0].column.as_deref()
            ),
            (Some("marts"), Some("leaky"), Some("note"))
        );
        assert!(p3[0].detail.contains("2 e-mail addresses, 1 phone number"));
        let p4 = pseudonymization(&f);
        assert_eq!((p4[0].status, p4[0].count), (Status::Fail, 1));
        let p5 = consent(&f);
        assert_eq!((p5[0].status, p5[0].count), (Status::Fail, 3));
        assert_eq!(p5.last().expect("summary").status, Status::Fail);
        let p10 = erasure(&f);
        assert_eq!((p10[0].status, p10[0].count), (Status::Fail, 4));
    }

    #[test]
    fn without_landing_ids_check_4_is_not_a_pass() {
        let mut f = facts(ColumnFacts::default());
        f.raw_ids = None;
        assert_eq!(pseudonymization(&f)[0].status, Status::Warn);
    }

    #[test]
    fn requests_under_a_key_not_carried_over_warn_with_the_way_out() {
        let mut f = facts(ColumnFacts::default());
        f.uncarried_erasures = vec![("a1b2c3".into(), 2, 3)];
        let p10 = erasure(&f);
        assert_eq!(p10.len(), 1, "no pass line beside a warning");
        assert_eq!((p10[0].status, p10[0].count), (Status::Warn, 3));
        assert!(p10[0].detail.contains("2 erasure requests (3 customers)"));
        assert!(p10[0].detail.contains("key id a1b2c3"));
        assert!(p10[0].advice.contains("ATTUNE_PREVIOUS_KEY"));
    }

    #[test]
    fn an_interrupted_erasure_warns() {
        let mut f = facts(ColumnFacts::default());
        f.pending_erasures = vec!["20250301T000000Z-00000001".into()];
        let p10 = erasure(&f);
        assert_eq!(p10.len(), 1);
        assert_eq!(p10[0].status, Status::Warn);
    }
}
