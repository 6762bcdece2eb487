//! Ingest of generated demo data finds exactly what the generator planted
//! (ground_truth.json): row counts, every dirty-row kind, duplicates,
//! consent exclusions and undeclared columns.

use attune::generate::{GenerateParams, generate};
use attune::schema::TABLES;
use chrono::NaiveDate;
use serde_json::Value;

use crate::common::Root;

#[tokio::test]
async fn ingest_accounts_for_every_planted_row() {
    let root = Root::new();
    let start = NaiveDate::from_ymd_opt(2025, 1, 1).expect("date");
    let days = 45;
    let params = GenerateParams {
        out: root.path().to_path_buf(),
        customers: 1500,
        days,
        seed: 11,
        start,
    };
    generate(&params).expect("generate");
    let truth: Value = serde_json::from_slice(
        &std::fs::read(root.path().join("ground_truth.json")).expect("truth"),
    )
    .expect("json");
    let dates: Vec<String> = (0..days)
        .map(|d| (start + chrono::Duration::days(d.into())).to_string())
        .collect();
    let date_refs: Vec<&str> = dates.iter().map(String::as_str).collect();
    let outcome = root.ingest(&TABLES, &date_refs).await;

    let mut planted_dirt = 0;
    for t in &outcome.tables {
        let want = &truth["tables"][&t.table];
        assert!(want.is_object(), "ground truth has {}", t.table);
        let n = |k: &str| {
            want[k]
                .as_u64()
                .unwrap_or_else(|| panic!("{}.{k} in ground truth", t.table))
        };
        assert_eq!(t.rows_read, n("data_rows"), "{} rows read", t.table);
        assert_eq!(t.duplicates, n("duplicates"), "{} duplicates", t.table);
        assert_eq!(
            t.consent_excluded,
            n("consent_excluded_rows"),
            "{} consent",
            t.table
        );
        assert_eq!(t.empty_files, n("empty_files"), "{} empty files", t.table);
        let dirty = want["dirty"].as_object().expect("dirty map");
        for (kind, count) in dirty {
            let count = count.as_u64().expect("count");
            planted_dirt += count;
            assert_eq!(
                t.quarantine_reasons.get(kind).copied().unwrap_or(0),
                count,
                "{} {kind}",
                t.table
            );
        }
        let planted: u64 = dirty.values().filter_map(Value::as_u64).sum();
        assert_eq!(
            t.quarantined, planted,
            "{}: nothing quarantined that was not planted",
            t.table
        );
        assert_eq!(
            t.rows_written,
            n("expected_clean_rows"),
            "{} clean rows",
            t.table
        );
        let undeclared: Vec<&str> = want["undeclared_columns"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for u in &undeclared {
            assert!(
                t.undeclared_columns.contains(*u),
                "{}: undeclared {u} reported",
                t.table
            );
        }
        assert_eq!(
            t.rows_read,
            t.rows_written + t.quarantined + t.consent_excluded + t.duplicates
        );
    }
    assert!(planted_dirt > 0, "the generator plants dirty rows");
    assert_eq!(
        outcome.opted_out_customers,
        truth["opted_out_customers"].as_u64().expect("opted out")
    );
}
