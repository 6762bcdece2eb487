//! Ingest on hand-written exports: every dirty-row kind, minimization,
//! pseudonymization, redaction, consent, dedupe, atomic and idempotent re-runs.

use attune::config::Key;
use attune::ingest::pseudonym::Pseudonymizer;
use datafusion::arrow::array::{Array, Float64Array, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;

use crate::common::{self, KEY, Root, files_under};

const DAY: &str = "2025-03-01";

const CUSTOMERS: &[u8] = b"customer_id,email,full_name,phone,postal_code,birth_year,gender,language,region,signup_date,consent_analytics,consent_updated_at,notes\n\
CUST-ALPHA-0001,alice@example.com,Alice Archer,+44 20 7946 0001,28013,1950,female,en,east,2024-01-05,true,2024-01-05 10:00:00,call on +34 612 345 678\n\
CUST-BRAVO-0002,bob@example.com,Bob Baker,+44 20 7946 0002,10115,1990,male,de,north,2024-02-01,true,2024-02-01 10:00:00,\n\
CUST-OPTOUT-0003,carol@example.com,Carol Cook,+44 20 7946 0003,75001,1985,female,es,south,2024-03-01,false,2024-03-01 10:00:00,\n";

fn orders() -> Vec<u8> {
    let mut o = b"order_id,customer_id,ordered_at,total_amount,discount_amount,currency,channel,item_count,refunded,card_last4\n".to_vec();
    o.extend_from_slice(
        b"O1,CUST-ALPHA-0001,2025-03-01 09:00:00,3.50,0,EUR,in_store,1,false,4242\n",
    ); // line 2: kept
    o.extend_from_slice(b"O2,CUST-ALPHA-0001,2025-03-01 09:05:00,twelve,0,EUR,in_store,1,false,\n"); // 3: wrong_type
    o.extend_from_slice(b"O3,CUST-ALPHA-0001,2025-03-01 09:06:00,-1,0,EUR,in_store,1,false,\n"); // 4: out_of_range
    o.extend_from_slice(b"O4,CUST-ALPHA-0001,,3.00,0,EUR,in_store,1,false,\n"); // 5: missing_required
    o.extend_from_slice(b"O5,CUST-ALPHA-0001,yesterday,3.00,0,EUR,in_store,1,false,\n"); // 6: bad_timestamp
    o.extend_from_slice(b"O6,CUST-ALPHA-0001,2025-03-01 09:07:00,3.00,0,EUR,fax,1,false,\n"); // 7: bad_enum
    o.extend_from_slice(b"O7,CUST-ALPHA-0001,2025-03-01 09:08:00,3.00,0,EUR,in_store\n"); // 8: ragged_row
    o.extend_from_slice(
        b"O8,CUST-ALPHA-0001,2025-03-01 09:09:00,3.00,0,E\xC3\x28R,in_store,1,false,\n",
    ); // 9: invalid_utf8
    o.extend_from_slice(b"O1,CUST-ALPHA-0001,2025-03-01 09:00:00,9.99,0,EUR,in_store,1,false,\n"); // 10: duplicate
    o.extend_from_slice(b"O9,CUST-ALPHA-0001,2025-03-01 09:10:00,3.00,0,eur,in_store,1,false,\n"); // 11: bad_pattern
    o.extend_from_slice(b"O10,CUST-OPTOUT-0003,2025-03-01 09:11:00,3.00,0,EUR,app,2,false,\n"); // 12: consent
    o.extend_from_slice(b"O11,CUST-BRAVO-0002,2025-03-01T09:12:00Z,4.25,0.50,EUR,online,2,true,\n"); // 13: kept
    o.extend_from_slice(b"O12,CUST-BRAVO-0002,2025-03-01 09:13:00,3.00,0,EUR,app,0,false,\n"); // 14: out_of_range (item_count)
    o
}

async fn landed() -> (Root, attune::ingest::IngestOutcome) {
    let root = Root::new();
    root.land("customers", DAY, "customers.csv", CUSTOMERS);
    root.land("orders", DAY, "orders.csv", &orders());
    let outcome = root.ingest(&["customers", "orders"], &[DAY]).await;
    (root, outcome)
}

#[tokio::test]
async fn every_dirty_row_kind_is_quarantined_with_line_and_reason() {
    let (root, outcome) = landed().await;
    let orders = outcome
        .tables
        .iter()
        .find(|t| t.table == "orders")
        .expect("orders ingested");
    assert_eq!(orders.rows_read, 13);
    assert_eq!(orders.rows_written, 2);
    assert_eq!(orders.duplicates, 1);
    assert_eq!(orders.consent_excluded, 1);
    assert_eq!(orders.quarantined, 9);
    let want: Vec<(&str, u64)> = vec![
        ("bad_enum", 1),
        ("bad_pattern", 1),
        ("bad_timestamp", 1),
        ("invalid_utf8", 1),
        ("missing_required", 1),
        ("out_of_range", 2),
        ("ragged_row", 1),
        ("wrong_type", 1),
    ];
    let got: Vec<(&str, u64)> = orders
        .quarantine_reasons
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(got, want);

    let reasons = root.strings("quarantine", "orders", DAY, "reason");
    let columns = root.strings("quarantine", "orders", DAY, "column");
    let files = root.strings("quarantine", "orders", DAY, "source_file");
    let raws = root.strings("quarantine", "orders", DAY, "raw_line");
    let batches = root.read("quarantine", "orders", DAY);
    let lines: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let a = common::column::<Int64Array>(b, "line");
            (0..a.len()).map(move |i| a.value(i))
        })
        .collect();
    let by_line: Vec<(i64, &str, Option<&str>)> = lines
        .iter()
        .zip(&reasons)
        .zip(&columns)
        .map(|((l, r), c)| (*l, r.as_deref().expect("reason"), c.as_deref()))
        .collect();
    assert_eq!(
        by_line,
        vec![
            (3, "wrong_type", Some("total_amount")),
            (4, "out_of_range", Some("total_amount")),
            (5, "missing_required", Some("ordered_at")),
            (6, "bad_timestamp", Some("ordered_at")),
            (7, "bad_enum", Some("channel")),
            (8, "ragged_row", None),
            (9, "invalid_utf8", Some("currency")),
            (11, "bad_pattern", Some("currency")),
            (14, "out_of_range", Some("item_count")),
        ]
    );
    assert!(
        files
            .iter()
            .all(|f| f.as_deref() == Some("landing/orders/2025-03-01/orders.csv"))
    );
    assert_eq!(
        raws[0].as_deref(),
        Some("O2,CUST-ALPHA-0001,2025-03-01 09:05:00,twelve,0,EUR,in_store,1,false,")
    );
    assert!(
        raws[6].as_deref().expect("raw").contains('\u{FFFD}'),
        "invalid bytes kept visibly"
    );

    for t in &outcome.tables {
        assert_eq!(
            t.rows_read,
            t.rows_written + t.quarantined + t.consent_excluded + t.duplicates,
            "{}",
            t.table
        );
    }
}

#[tokio::test]
async fn duplicates_keep_the_first_occurrence() {
    let (root, _) = landed().await;
    let ids = root.strings("lake", "orders", DAY, "order_id");
    assert_eq!(ids, vec![Some("O1".to_string()), Some("O11".to_string())]);
    let amounts: Vec<f64> = root
        .read("lake", "orders", DAY)
        .iter()
        .flat_map(|b| {
            let a = common::column::<Float64Array>(b, "total_amount");
            (0..a.len()).map(move |i| a.value(i))
        })
        .collect();
    assert_eq!(
        amounts,
        vec![3.50, 4.25],
        "O1's first row (3.50), not its duplicate (9.99)"
    );
}

#[tokio::test]
async fn identifiers_are_pseudonymized_stably_and_key_dependent() {
    let (root, _) = landed().await;
    let mut p = Pseudonymizer::new(&Key::new(KEY.as_bytes().to_vec()));
    let alpha = String::from_utf8(p.pseudonym(b"CUST-ALPHA-0001").to_vec()).expect("hex");
    let in_lake = root.strings("lake", "orders", DAY, "customer_id");
    assert_eq!(in_lake[0].as_deref(), Some(alpha.as_str()));
    let customers = root.strings("lake", "customers", DAY, "customer_id");
    assert!(
        customers.contains(&Some(alpha.clone())),
        "same pseudonym in every table: joins still work"
    );

    // A second root, same key: the same pseudonyms (stable across nights).
    let (again, _) = landed().await;
    assert_eq!(again.strings("lake", "orders", DAY, "customer_id"), in_lake);

    // Another key: different pseudonyms.
    let other = Root::new();
    other.land("customers", DAY, "customers.csv", CUSTOMERS);
    other.land("orders", DAY, "orders.csv", &orders());
    other
        .try_ingest(
            &["customers", "orders"],
            &[DAY],
            "a-completely-different-key-987",
        )
        .await
        .expect("ingest");
    let other_ids = other.strings("lake", "orders", DAY, "customer_id");
    assert_eq!(other_ids.len(), in_lake.len());
    assert!(other_ids.iter().zip(&in_lake).all(|(a, b)| a != b));
}

#[tokio::test]
async fn no_raw_identifier_direct_pii_or_undeclared_column_reaches_the_lake() {
    let (root, outcome) = landed().await;
    let secrets = [
        "CUST-ALPHA-0001",
        "CUST-BRAVO-0002",
        "CUST-OPTOUT-0003",
        "alice@example.com",
        "Alice Archer",
        "7946",
        "612 345 678",
        "4242",
    ];
    let lake_files: Vec<_> = files_under(&root.path().join("lake"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert!(!lake_files.is_empty());
    for file in &lake_files {
        for batch in crate::common::read_parquet(file) {
            for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
                let text = cast(col, &DataType::Utf8).expect("castable to text");
                let text = text
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::StringArray>()
                    .expect("utf8");
                for v in text.iter().flatten() {
                    for s in secrets {
                        assert!(
                            !v.contains(s),
                            "{} column {} holds {s}",
                            file.display(),
                            field.name()
                        );
                    }
                }
            }
        }
    }
    let customers_schema = root.read("lake", "customers", DAY)[0].schema();
    let names: Vec<&str> = customers_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            "customer_id",
            "postal_prefix",
            "age_band",
            "gender",
            "language",
            "region",
            "signup_date",
            "consent_analytics",
            "consent_updated_at"
        ]
    );
    assert_eq!(
        root.strings("lake", "customers", DAY, "age_band"),
        vec![Some("65+".into()), Some("35-44".into())]
    );
    assert_eq!(
        root.strings("lake", "customers", DAY, "postal_prefix"),
        vec![Some("28".into()), Some("10".into())]
    );
    let c = outcome
        .tables
        .iter()
        .find(|t| t.table == "customers")
        .expect("customers");
    assert!(c.undeclared_columns.contains("notes"));
    let o = outcome
        .tables
        .iter()
        .find(|t| t.table == "orders")
        .expect("orders");
    assert!(o.undeclared_columns.contains("card_last4"));

    // The audit table says what happened to every column that arrived.
    let cols = root.strings("lake", "ingest_audit", DAY, "column_name");
    let outcomes = root.strings("lake", "ingest_audit", DAY, "outcome");
    let pairs: Vec<(String, String)> = cols
        .iter()
        .zip(&outcomes)
        .filter_map(|(c, o)| Some((c.clone()?, o.clone()?)))
        .collect();
    for (col, want) in [
        ("notes", "undeclared_dropped"),
        ("card_last4", "undeclared_dropped"),
        ("email", "dropped"),
        ("customer_id", "pseudonymized"),
        ("birth_year", "generalized"),
        ("region", "kept"),
    ] {
        assert!(
            pairs.iter().any(|(c, o)| c == col && o == want),
            "{col} should be {want}"
        );
    }
}

#[tokio::test]
async fn opted_out_customers_leave_only_a_count() {
    let root = Root::new();
    root.land("customers", DAY, "customers.csv", CUSTOMERS);
    root.land("orders", DAY, "orders.csv", &orders());
    // The next day, the opted-out customer orders again: still excluded.
    root.land(
        "customers",
        "2025-03-02",
        "customers.csv",
        b"customer_id,consent_analytics,signup_date\n",
    );
    root.land(
        "orders",
        "2025-03-02",
        "orders.csv",
        // O22: theirs and malformed: not kept in quarantine with its raw line
        b"order_id,customer_id,ordered_at,total_amount,currency,channel\nO20,CUST-OPTOUT-0003,2025-03-02 10:00:00,5,EUR,app\nO21,CUST-BRAVO-0002,2025-03-02 10:00:00,5,EUR,app\nO22,CUST-OPTOUT-0003,2025-03-02 10:00:00,five,EUR,app\n",
    );
    let outcome = root
        .ingest(&["customers", "orders"], &[DAY, "2025-03-02"])
        .await;
    assert_eq!(outcome.opted_out_customers, 1);
    let customers = outcome
        .tables
        .iter()
        .find(|t| t.table == "customers")
        .expect("customers");
    assert_eq!((customers.rows_written, customers.consent_excluded), (2, 1));
    let orders = outcome
        .tables
        .iter()
        .find(|t| t.table == "orders")
        .expect("orders");
    assert_eq!(orders.consent_excluded, 3);
    assert_eq!(
        root.strings("lake", "orders", "2025-03-02", "order_id"),
        vec![Some("O21".into())]
    );
    let quarantined = root.strings("quarantine", "orders", "2025-03-02", "raw_line");
    assert!(
        quarantined.iter().flatten().all(|l| !l.contains("OPTOUT")),
        "{quarantined:?}"
    );

    // Withdrawal on a later day applies from then on; a later ingest run still remembers it.
    let later = "2025-03-03";
    root.land(
        "customers",
        later,
        "customers.csv",
        b"customer_id,signup_date,consent_analytics\nCUST-BRAVO-0002,2024-02-01,false\n",
    );
    root.land("orders", later, "orders.csv", b"order_id,customer_id,ordered_at,total_amount,currency,channel\nO30,CUST-BRAVO-0002,2025-03-03 10:00:00,5,EUR,app\n");
    root.ingest(&["customers", "orders"], &[later]).await;
    let next = "2025-03-04";
    root.land(
        "customers",
        next,
        "customers.csv",
        b"customer_id,signup_date,consent_analytics\n",
    );
    root.land("orders", next, "orders.csv", b"order_id,customer_id,ordered_at,total_amount,currency,channel\nO40,CUST-BRAVO-0002,2025-03-04 10:00:00,5,EUR,app\n");
    let o = root.ingest(&["customers", "orders"], &[next]).await;
    assert_eq!(o.opted_out_customers, 2);
    assert_eq!(root.rows("lake", "orders", next), 0);
}

/// Exports as spreadsheets and databases write them: a tab-separated file
/// next to comma-separated ones, ids and postal codes padded with Unicode
/// spaces, and PostgreSQL's `+01` offsets.
#[tokio::test]
async fn padded_values_tab_files_and_hour_offsets_are_read_as_meant() {
    let root = Root::new();
    root.land(
        "customers",
        DAY,
        "customers.tsv",
        "customer_id\tpostal_code\tsignup_date\tconsent_analytics\n\
         C1\t\u{2003}28013\t2024-01-05\ttrue\n\
         C2\t 10115 \t2024-01-05\ttrue\n\
         \u{a0}\t75001\t2024-01-05\ttrue\n"
            .as_bytes(),
    );
    root.land(
        "orders",
        DAY,
        "orders.csv",
        "order_id,customer_id,ordered_at,total_amount,currency,channel\n\
         O1,C1\u{a0},2025-03-01 10:00:00+01,3.50,EUR,app\n\
         O2,C1,2025-03-01 09:00:00,3.50,EUR,app\n"
            .as_bytes(),
    );
    let o = root.ingest(&["customers", "orders"], &[DAY]).await;
    let customers = &o.tables[0];
    assert_eq!((customers.rows_read, customers.rows_written), (3, 2));
    assert_eq!(
        customers.quarantine_reasons.get("missing_required"),
        Some(&1),
        "an id of only a no-break space is missing, not the customer \"\""
    );
    assert_eq!(
        root.strings("lake", "customers", DAY, "postal_prefix"),
        vec![Some("28".into()), Some("10".into())],
        "the prefix of the trimmed code"
    );
    let ids = root.strings("lake", "orders", DAY, "customer_id");
    let mut p = Pseudonymizer::new(&Key::new(KEY.as_bytes().to_vec()));
    let c1 = String::from_utf8(p.pseudonym(b"C1").to_vec()).expect("hex");
    assert_eq!(
        ids,
        vec![Some(c1.clone()), Some(c1)],
        "C1 and C1+NBSP are one customer"
    );
    let at = root.read("lake", "orders", DAY)[0]
        .column_by_name("ordered_at")
        .expect("ordered_at")
        .clone();
    let at = cast(&at, &DataType::Int64).expect("micros");
    let at = at.as_any().downcast_ref::<Int64Array>().expect("i64");
    assert_eq!(at.value(0), at.value(1), "10:00+01 is 09:00 UTC");
}

/// The contract's rule for customers: the latest row per customer wins,
/// also within a day (files in name order, rows in line order, a newer
/// consent_updated_at first): a change exported after the sign-up is kept.
#[tokio::test]
async fn the_latest_customer_row_of_a_day_wins() {
    let root = Root::new();
    let header = "customer_id,region,signup_date,consent_analytics,consent_updated_at\n";
    root.land(
        "customers",
        DAY,
        "a.csv",
        format!(
            "{header}C1,north,2024-01-05,true,\n\
             C1,south,2024-01-05,true,\n\
             C2,east,2024-01-05,true,2025-03-01 10:00:00\n\
             C2,west,2024-01-05,true,2025-02-01 10:00:00\n\
             C3,north,2024-01-05,true,\n"
        )
        .as_bytes(),
    );
    root.land(
        "customers",
        DAY,
        "b.csv",
        format!("{header}C3,central,2024-01-05,true,\nC4,Nowhere,2024-01-05,true,\n").as_bytes(),
    );
    let o = root.ingest(&["customers"], &[DAY]).await;
    let t = &o.tables[0];
    assert_eq!(
        (t.rows_read, t.rows_written, t.duplicates, t.quarantined),
        (7, 3, 3, 1)
    );
    let mut p = Pseudonymizer::new(&Key::new(KEY.as_bytes().to_vec()));
    let ids = root.strings("lake", "customers", DAY, "customer_id");
    let regions = root.strings("lake", "customers", DAY, "region");
    let mut region_of = |id: &str| {
        let want = String::from_utf8(p.pseudonym(id.as_bytes()).to_vec()).expect("hex");
        let i = ids
            .iter()
            .position(|x| x.as_deref() == Some(want.as_str()))
            .expect("kept");
        regions[i].clone()
    };
    assert_eq!(region_of("C1").as_deref(), Some("south"), "the later row");
    assert_eq!(
        region_of("C2").as_deref(),
        Some("east"),
        "the newer consent time"
    );
    assert_eq!(
        region_of("C3").as_deref(),
        Some("central"),
        "the later file"
    );
}

/// A "no" is heeded whichever row says it: a row quarantined for another
/// column, the later of two rows of a day (the first said yes), and a
/// re-run of an older day whose stale "yes" would otherwise undo it.
#[tokio::test]
async fn a_withdrawal_holds_against_bad_rows_duplicates_and_stale_reruns() {
    let root = Root::new();
    let header = "customer_id,gender,signup_date,consent_analytics,consent_updated_at\n";
    let day1 = "2025-03-01";
    let day2 = "2025-03-02";
    root.land(
        "customers",
        day1,
        "customers.csv",
        format!(
            "{header}C1,female,2024-01-05,true,2025-02-01 10:00:00\n\
             C2,female,2024-01-05,true,2025-02-01 10:00:00\n\
             C3,female,2024-01-05,true,2025-02-01 10:00:00\n"
        )
        .as_bytes(),
    );
    root.land(
        "customers",
        day2,
        "customers.csv",
        format!(
            // C1: malformed (gender is case-sensitive) but says no
            // C2: yes, then no in a later row of the same file
            // C3: yes, then a "no" that is older than the yes: stays in
            "{header}C1,Female,2024-01-05,false,2025-03-02 09:00:00\n\
             C2,female,2024-01-05,true,2025-03-02 08:00:00\n\
             C2,female,2024-01-05,false,2025-03-02 09:00:00\n\
             C3,female,2024-01-05,true,2025-03-02 09:00:00\n\
             C3,female,2024-01-05,false,2025-03-02 08:00:00\n"
        )
        .as_bytes(),
    );
    let orders = |day: &str| {
        format!(
            "order_id,customer_id,ordered_at,total_amount,currency,channel\n\
             A-{day},C1,{day} 10:00:00,5,EUR,app\n\
             B-{day},C2,{day} 10:00:00,5,EUR,app\n\
             C-{day},C3,{day} 10:00:00,5,EUR,app\n"
        )
    };
    root.land("orders", day1, "orders.csv", orders(day1).as_bytes());
    root.land("orders", day2, "orders.csv", orders(day2).as_bytes());
    let o = root.ingest(&["customers", "orders"], &[day1, day2]).await;
    assert_eq!(o.opted_out_customers, 2, "C1 and C2");
    let customers = o
        .partitions
        .iter()
        .find(|p| p.table == "customers" && p.date.to_string() == day2)
        .expect("customers of day 2");
    assert_eq!(
        (
            customers.quarantined,
            customers.consent_excluded,
            customers.rows_written,
            customers.duplicates
        ),
        (0, 3, 1, 1),
        "C1's malformed row says no: left out, not kept in quarantine; both rows of C2 left out; C3's first row kept and its second a duplicate"
    );
    assert_eq!(
        root.strings("lake", "orders", day2, "order_id"),
        vec![Some(format!("C-{day2}"))]
    );

    // Day 1 again (a corrected export re-landed): its yeses are older than
    // the withdrawals, so C1 and C2 stay out of everything from day 2 on.
    let again = root.ingest(&["customers", "orders"], &[day1]).await;
    assert_eq!(again.opted_out_customers, 2);
    let day3 = "2025-03-03";
    root.land("customers", day3, "customers.csv", header.as_bytes());
    root.land("orders", day3, "orders.csv", orders(day3).as_bytes());
    root.ingest(&["customers", "orders"], &[day3]).await;
    assert_eq!(
        root.strings("lake", "orders", day3, "order_id"),
        vec![Some(format!("C-{day3}"))]
    );

    // A newer yes lets a customer back in.
    let day4 = "2025-03-04";
    root.land(
        "customers",
        day4,
        "customers.csv",
        format!("{header}C2,female,2024-01-05,yes,2025-03-04 09:00:00\n").as_bytes(),
    );
    root.land("orders", day4, "orders.csv", orders(day4).as_bytes());
    let back = root.ingest(&["customers", "orders"], &[day4]).await;
    assert_eq!(back.opted_out_customers, 1);
    assert_eq!(
        root.strings("lake", "orders", day4, "order_id"),
        vec![Some(format!("B-{day4}")), Some(format!("C-{day4}"))]
    );
}

/// Customers partitions of several days are read on every worker, but each
/// is written with the consent list as its own day left it; the other
/// tables, with the list as the last day left it.
#[tokio::test]
async fn each_customers_day_is_written_with_the_list_as_of_that_day() {
    let root = Root::new();
    let header = "customer_id,signup_date,consent_analytics,consent_updated_at\n";
    let days = ["2025-03-01", "2025-03-02", "2025-03-03"];
    // C1: no, then yes; C2: yes, then no; C3: yes throughout
    let rows = [
        "C1,2024-01-05,false,2025-03-01 09:00:00\nC2,2024-01-05,true,2025-03-01 09:00:00\nC3,2024-01-05,true,\n",
        "C1,2024-01-05,true,2025-03-02 09:00:00\nC2,2024-01-05,false,2025-03-02 09:00:00\n",
        "C3,2024-01-05,true,\n",
    ];
    for (day, rows) in days.iter().zip(rows) {
        root.land(
            "customers",
            day,
            "customers.csv",
            format!("{header}{rows}").as_bytes(),
        );
        let orders = format!(
            "order_id,customer_id,ordered_at,total_amount,currency,channel\n\
             A-{day},C1,{day} 10:00:00,5,EUR,app\n\
             B-{day},C2,{day} 10:00:00,5,EUR,app\n"
        );
        root.land("orders", day, "orders.csv", orders.as_bytes());
    }
    let o = root.ingest(&["customers", "orders"], &days).await;
    assert_eq!(o.opted_out_customers, 1, "C2");
    let mut p = Pseudonymizer::new(&Key::new(KEY.as_bytes().to_vec()));
    let mut pseudonym =
        |id: &str| Some(String::from_utf8(p.pseudonym(id.as_bytes()).to_vec()).expect("hex"));
    let (c1, c2, c3) = (pseudonym("C1"), pseudonym("C2"), pseudonym("C3"));
    // with the last day's list C1 would be on day 1; C2's row of day 1
    // leaves with its withdrawal (the lake keeps no earlier row of theirs)
    assert_eq!(
        root.strings("lake", "customers", days[0], "customer_id"),
        vec![c3.clone()],
        "C1 declined on day 1"
    );
    assert_eq!(
        root.strings("lake", "customers", days[1], "customer_id"),
        vec![c1],
        "C1 consented on day 2, C2 declined"
    );
    assert!(
        !root
            .strings("lake", "customers", days[0], "customer_id")
            .contains(&c2)
    );
    assert_eq!(
        root.strings("lake", "customers", days[2], "customer_id"),
        vec![c3]
    );
    for day in days {
        assert_eq!(
            root.strings("lake", "orders", day, "order_id"),
            vec![Some(format!("A-{day}"))],
            "orders follow the list as the last day left it"
        );
    }
}

#[tokio::test]
async fn free_text_is_redacted_in_the_lake() {
    let root = Root::new();
    let feedback = "response_id,customer_id,responded_at,survey_type,score,comment,touchpoint\n\
R1,C1,2025-03-01 10:00:00,nps,3,\"Call me on +34 612 345 678 or mail ana@example.es, card 4111 1111 1111 1111\",in_store\n\
R2,C1,2025-03-01 10:00:00,nps,9,\"Order 4111 1111 1111 1112 was fine, IBAN DE89 3704 0044 0532 0130 00 from 10.1.2.3\",online\n\
R3,C1,2025-03-01 10:00:00,csat,4,Great croissants for 3.50 at 12:30 on 2025-03-01,in_store\n";
    root.land("feedback", DAY, "feedback.csv", feedback.as_bytes());
    root.ingest(&["feedback"], &[DAY]).await;
    let comments: Vec<String> = root
        .strings("lake", "feedback", DAY, "comment")
        .into_iter()
        .map(|c| c.expect("comment"))
        .collect();
    assert_eq!(
        comments[0],
        "Call me on [PHONE] or mail [EMAIL], card [CARD]"
    );
    assert_eq!(
        comments[1], "Order 4111 1111 1111 1112 was fine, IBAN [IBAN] from [IP]",
        "Luhn-invalid number is not a card"
    );
    assert_eq!(
        comments[2], "Great croissants for 3.50 at 12:30 on 2025-03-01",
        "prices, times and dates are not PII"
    );
}

#[tokio::test]
async fn scores_are_checked_against_their_survey_scale() {
    let root = Root::new();
    let feedback = "response_id,customer_id,responded_at,survey_type,score,touchpoint,item\n\
R1,C1,2025-03-01 10:00:00,nps,10,in_store,\n\
R2,C1,2025-03-01 10:00:00,csat,6,in_store,\n\
R3,C1,2025-03-01 10:00:00,nps,11,in_store,\n\
R4,C1,2025-03-01 10:00:00,empathy,7,support,3\n\
R5,C1,2025-03-01 10:00:00,empathy,7,support,6\n";
    root.land("feedback", DAY, "feedback.csv", feedback.as_bytes());
    let o = root.ingest(&["feedback"], &[DAY]).await;
    assert_eq!(
        root.strings("lake", "feedback", DAY, "response_id"),
        vec![Some("R1".into()), Some("R4".into())]
    );
    assert_eq!(o.tables[0].quarantine_reasons.get("out_of_range"), Some(&3));
}

/// A first response, resolution or follow-up before the ticket was opened
/// is quarantined with its column, not passed on to make a negative
/// duration that fails the transform's service-level tests for the night.
#[tokio::test]
async fn a_ticket_answered_before_it_was_opened_is_quarantined() {
    let root = Root::new();
    root.land(
        "tickets",
        DAY,
        "tickets.csv",
        b"ticket_id,customer_id,created_at,first_response_at,resolved_at,channel,handled_by\n\
T1,C1,2025-03-01 10:05:00,2025-03-01 10:00:00,2025-03-01 11:00:00,phone,human\n\
T2,C1,2025-03-01 10:05:00,2025-03-01 10:05:00,2025-03-01 10:04:59,phone,human\n\
T3,C1,2025-03-01 10:05:00,2025-03-01 10:06:00,2025-03-01 11:00:00,phone,human\n",
    );
    let o = root.ingest(&["tickets"], &[DAY]).await;
    let t = &o.tables[0];
    assert_eq!((t.rows_read, t.rows_written, t.quarantined), (3, 1, 2));
    assert_eq!(t.quarantine_reasons.get("out_of_range"), Some(&2));
    let columns = root.strings("quarantine", "tickets", DAY, "column");
    assert_eq!(
        columns,
        vec![Some("first_response_at".into()), Some("resolved_at".into())],
        "the same instant is fine; a second before is not"
    );
}

#[tokio::test]
async fn tickets_from_ndjson_and_gzip_csv() {
    let root = Root::new();
    let tickets = concat!(
        r#"{"ticket_id":"T1","customer_id":"C1","created_at":"2025-03-01T09:00:00Z","first_response_at":"2025-03-01T09:30:00Z","channel":"chat","handled_by":"bot","satisfaction":2,"reopened":false,"message":"my email is x@y.com","reply":"Sorry to hear that!","extra_field":1}"#,
        "\n",
        r#"{"ticket_id":"T2","customer_id":"C1","created_at":"2025-03-01T09:00:00Z","channel":"chat","handled_by":"bot","satisfaction":"five"}"#,
        "\n",
        r#"{"ticket_id":"T3","#,
        "\n"
    );
    root.land("tickets", DAY, "tickets.ndjson", tickets.as_bytes());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, b"review_id,posted_at,rating,text\nV1,2025-03-01 12:00:00,5,Lovely!\nV2,2025-03-01 12:00:00,5,\n").expect("gzip");
    root.land(
        "reviews",
        DAY,
        "reviews.csv.gz",
        &gz.finish().expect("gzip"),
    );
    let o = root.ingest(&["tickets", "reviews"], &[DAY]).await;
    let t = &o.tables[0];
    assert_eq!((t.rows_read, t.rows_written), (3, 1));
    assert_eq!(t.quarantine_reasons.get("wrong_type"), Some(&1));
    assert_eq!(t.quarantine_reasons.get("malformed_json"), Some(&1));
    assert!(t.undeclared_columns.contains("extra_field"));
    assert_eq!(
        root.strings("lake", "tickets", DAY, "message"),
        vec![Some("my email is [EMAIL]".into())]
    );
    assert_eq!(o.tables[1].rows_written, 2);
    assert_eq!(
        root.strings("lake", "reviews", DAY, "customer_id"),
        vec![None, None],
        "anonymous reviews stay anonymous"
    );
}

#[tokio::test]
async fn rerunning_a_date_replaces_it_byte_for_byte() {
    let (root, first) = landed().await;
    let lake = root.path().join("lake/orders/dt=2025-03-01/part-0.parquet");
    let before = std::fs::read(&lake).expect("lake file");
    let second = root.ingest(&["customers", "orders"], &[DAY]).await;
    assert_eq!(
        std::fs::read(&lake).expect("lake file"),
        before,
        "same input, same bytes"
    );
    assert_eq!(first.rows(), second.rows());
    assert_eq!(
        root.rows("lake", "orders", DAY),
        2,
        "replaced, not appended"
    );
    let parts: Vec<_> = files_under(&root.path().join("lake/orders"))
        .into_iter()
        .collect();
    assert_eq!(parts.len(), 1, "one file per partition: {parts:?}");
}

#[tokio::test]
async fn empty_and_header_only_files_are_fine() {
    let root = Root::new();
    root.land(
        "reviews",
        DAY,
        "reviews.csv",
        b"review_id,posted_at,rating\n",
    );
    root.land("reviews", DAY, "reviews-2.csv", b"");
    let o = root.ingest(&["reviews"], &[DAY]).await;
    assert_eq!(o.tables[0].rows_read, 0);
    assert_eq!(o.tables[0].empty_files, 1);
    assert!(
        o.warnings
            .iter()
            .any(|w| w.contains("reviews-2.csv") && w.contains("empty"))
    );
    assert_eq!(
        root.rows("lake", "reviews", DAY),
        0,
        "an empty partition still says the day was processed"
    );
}

#[tokio::test]
async fn a_missing_landing_folder_stops_with_the_folder_and_the_fix() {
    let root = Root::new();
    root.land(
        "orders",
        DAY,
        "orders.csv",
        b"order_id,customer_id,ordered_at,total_amount,currency,channel\n",
    );
    let err = root
        .try_ingest(&["customers", "orders"], &[DAY], KEY)
        .await
        .expect_err("customers missing")
        .to_string();
    assert!(err.contains("landing/customers/2025-03-01"), "{err}");
    assert!(err.contains("[ingest] tables"), "{err}");
    assert!(
        !root.path().join("lake/orders").exists(),
        "nothing written before the check"
    );
}

/// A run over many dates lists each table's landing folder whole and sorts
/// the files into their dates; it must find exactly what listing each
/// date's folder finds: files in a sub-folder of a date, none of a date
/// outside the run or loose in the table's folder, and a date without a
/// folder is still the error that names it.
#[tokio::test]
async fn a_long_range_finds_each_dates_files_as_its_folder_listing_does() {
    let root = Root::new();
    let days: Vec<String> = (1..=10).map(|d| format!("2025-03-{d:02}")).collect();
    let header = "order_id,customer_id,ordered_at,total_amount,currency,channel\n";
    for (i, day) in days.iter().enumerate() {
        root.land("customers", day, "customers.csv", CUSTOMERS);
        let row = format!("{header}O{i},CUST-ALPHA-0001,{day} 10:00:00,5,EUR,app\n");
        root.land("orders", day, "orders.csv", row.as_bytes());
    }
    // a second file of one date, in a sub-folder; a date after the run; a
    // file outside any date's folder
    root.land(
        "orders",
        "2025-03-04/late",
        "orders-2.csv",
        format!("{header}X1,CUST-ALPHA-0001,2025-03-04 11:00:00,5,EUR,app\n").as_bytes(),
    );
    root.land(
        "orders",
        "2025-03-11",
        "orders.csv",
        format!("{header}Y1,CUST-ALPHA-0001,2025-03-11 11:00:00,5,EUR,app\n").as_bytes(),
    );
    std::fs::write(root.path().join("landing/orders/stray.csv"), header).expect("stray");
    let dates: Vec<&str> = days.iter().map(String::as_str).collect();
    let o = root.ingest(&["customers", "orders"], &dates).await;
    let files = |table: &str, day: &str| -> Vec<String> {
        let p = (o.partitions.iter())
            .find(|p| p.table == table && p.date.to_string() == day)
            .expect("partition");
        p.files.iter().map(|f| f.report.file.clone()).collect()
    };
    for day in &days {
        // in path order, as a listing of the date's folder sorts them
        let mut want = vec![format!("landing/orders/{day}/orders.csv")];
        if day == "2025-03-04" {
            want.insert(0, "landing/orders/2025-03-04/late/orders-2.csv".into());
        }
        assert_eq!(files("orders", day), want, "{day}");
        assert_eq!(
            files("customers", day),
            vec![format!("landing/customers/{day}/customers.csv")]
        );
    }
    assert_eq!(o.partitions.len(), 20, "no partition for 2025-03-11");
    assert_eq!(
        root.strings("lake", "orders", "2025-03-04", "order_id"),
        vec![Some("X1".to_string()), Some("O3".to_string())]
    );

    std::fs::remove_dir_all(root.path().join("landing/customers/2025-03-07")).expect("remove");
    let err = root
        .try_ingest(&["customers", "orders"], &dates, KEY)
        .await
        .expect_err("a date's folder missing")
        .to_string();
    assert!(err.contains("landing/customers/2025-03-07"), "{err}");
}

/// A `.gz` export that is not gzip stops the ingest with the file and what
/// to do, and leaves no partition behind.
#[tokio::test]
async fn a_gz_file_that_is_not_gzip_names_the_file_and_the_fix() {
    let root = Root::new();
    root.land(
        "orders",
        DAY,
        "orders.csv.gz",
        b"order_id,customer_id,ordered_at,total_amount,currency,channel\nO1,C1,2025-03-01 10:00:00,5,EUR,app\n",
    );
    let err = root
        .try_ingest(&["orders"], &[DAY], KEY)
        .await
        .expect_err("not gzip")
        .to_string();
    assert!(err.contains("orders.csv.gz"), "{err}");
    assert!(
        err.contains("cannot decompress") && err.contains("Re-export the file"),
        "{err}"
    );
    assert!(
        !root.path().join("lake/orders/dt=2025-03-01").exists(),
        "no partition from a file that could not be read"
    );
}
