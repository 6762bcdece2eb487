use std::collections::{BTreeMap, HashSet};
use std::io::Read as _;
use std::path::Path;

use super::*;

fn params(out: &Path, customers: u64, days: u32, seed: u64) -> GenerateParams {
    GenerateParams {
        out: out.to_path_buf(),
        customers,
        days,
        seed,
        ..GenerateParams::default()
    }
}

/// Every file under `root`, by path relative to it.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("readable dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                out.insert(
                    rel.to_string_lossy().into_owned(),
                    std::fs::read(&path).expect("readable file"),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn plain(name: &str, bytes: &[u8]) -> Vec<u8> {
    if name.ends_with(".gz") && !bytes.is_empty() {
        let mut v = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut v)
            .expect("valid gzip");
        v
    } else {
        bytes.to_vec()
    }
}

fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn same_params_give_the_same_bytes() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    generate(&params(a.path(), 300, 30, 11)).expect("generate a");
    generate(&params(b.path(), 300, 30, 11)).expect("generate b");
    let fa = files(a.path());
    let fb = files(b.path());
    assert!(fa.len() > 9 * 30, "only {} files", fa.len());
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(bytes == &fb[name], "{name} differs between runs");
    }
    let c = tempfile::tempdir().expect("tempdir");
    generate(&params(c.path(), 300, 30, 12)).expect("generate c");
    let fc = files(c.path());
    assert_ne!(
        fa["ground_truth_customers.csv"],
        fc["ground_truth_customers.csv"]
    );
}

#[test]
fn ground_truth_matches_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let truth = generate(&params(dir.path(), 300, 30, 3)).expect("generate");
    let on_disk: GroundTruth = serde_json::from_slice(
        &std::fs::read(dir.path().join("ground_truth.json")).expect("ground_truth.json"),
    )
    .expect("ground truth parses");
    assert_eq!(
        on_disk.tables["orders"].data_rows,
        truth.tables["orders"].data_rows
    );
    assert_eq!(truth.params.end, "2025-01-30");

    let all = files(dir.path());
    for (table, t) in &truth.tables {
        let mut rows = 0u64;
        let mut n_files = 0u64;
        let mut empty = 0u64;
        let mut folders = HashSet::new();
        for (name, bytes) in all
            .iter()
            .filter(|(n, _)| n.starts_with(&format!("landing/{table}/")))
        {
            n_files += 1;
            empty += u64::from(bytes.is_empty());
            folders.insert(name.rsplit_once('/').expect("in a folder").0.to_string());
            let body = plain(name, bytes);
            let n = lines(&body).len() as u64;
            let header = u64::from(!name.ends_with(".ndjson") && !body.is_empty());
            rows += n - header;
        }
        assert_eq!(folders.len(), 30, "{table}: one folder per day");
        assert_eq!(rows, t.data_rows, "{table}: data lines");
        assert_eq!(n_files, t.files, "{table}: files");
        assert_eq!(empty, t.empty_files, "{table}: empty files");
        let dirty: u64 = t.dirty.values().sum();
        assert_eq!(
            t.data_rows,
            t.expected_clean_rows + t.consent_excluded_rows + t.duplicates + dirty,
            "{table}: accounting"
        );
    }
    assert!(truth.tables["orders"].data_rows > 200);
    assert_eq!(
        truth.tables["feedback"].undeclared_columns,
        ["respondent_email"]
    );
    assert_eq!(
        truth.tables["customers"].data_rows,
        truth.customers.total
            + truth.tables["customers"].duplicates
            + truth.tables["customers"].dirty.values().sum::<u64>()
    );

    // Opted-out customers: counted exactly, ~3%.
    let per_file = String::from_utf8_lossy(&all["ground_truth_customers.csv"])
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(6) == Some("false"))
        .count() as u64;
    assert_eq!(per_file, truth.opted_out_customers);
    let big = tempfile::tempdir().expect("tempdir");
    let t = generate(&params(big.path(), 3000, 20, 5)).expect("generate");
    assert!(
        (0.01..=0.06).contains(&t.opted_out_share),
        "{}",
        t.opted_out_share
    );
    assert_eq!(
        t.customers.existing_at_start + t.customers.signed_up_in_period,
        3000
    );
}

fn realized(truth: &GroundTruth, bias: &str, group: &str, metric: &str) -> f64 {
    let b = truth
        .biases
        .iter()
        .find(|b| b.id == bias)
        .expect("bias recorded");
    b.realized[group][metric]
}

#[test]
fn planted_effects_show_in_realized_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = generate(&params(dir.path(), 6000, 300, 8)).expect("generate");

    let bot = |g| realized(&t, "bot_routing_age", g, "bot_share");
    assert!(
        bot("65+") > bot("under_65") + 0.2,
        "{} vs {}",
        bot("65+"),
        bot("under_65")
    );
    let wait = |g| realized(&t, "bot_routing_age", g, "mean_first_response_hours");
    assert!(
        wait("65+") > 1.4 * wait("under_65"),
        "{} vs {}",
        wait("65+"),
        wait("under_65")
    );

    let pct = |g| realized(&t, "discount_region", g, "mean_discount_pct");
    for other in ["north", "south", "west", "central"] {
        assert!(
            pct("east") + 4.0 < pct(other),
            "east {} vs {other} {}",
            pct("east"),
            pct(other)
        );
    }

    let warm = |g| realized(&t, "reply_warmth_channel", g, "warm_share");
    assert!(warm("email") + 0.3 < warm("chat") && warm("email") + 0.3 < warm("phone"));

    // Same score distribution whatever the language.
    let nps = |g| realized(&t, "language_sentiment_instrument", g, "mean_nps_score");
    assert!((nps("es") - nps("en")).abs() < 1.0 && (nps("de") - nps("en")).abs() < 1.0);

    let loyalty = &t.initiatives[0];
    assert_eq!(loyalty.initiative_id, "I0001");
    let treated = loyalty.realized["treatment_customers"];
    let control = loyalty.realized["control_customers"];
    assert!(treated > 300.0 && control > 300.0);
    assert!((treated / (treated + control) - 0.5).abs() < 0.05);
    assert!(
        loyalty.realized["retention_uplift"] > 0.0,
        "{:?}",
        loyalty.realized
    );

    let training = &t.initiatives[1];
    assert!(
        training.realized["in_store_empathy_after"] > training.realized["in_store_empathy_before"]
    );
    assert!((0.08..0.25).contains(&(t.customers.aged_65_plus as f64 / t.customers.total as f64)));
}

#[test]
fn dirty_rows_have_exactly_their_defect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = generate(&params(dir.path(), 1500, 120, 21)).expect("generate");
    let orders = &t.tables["orders"];
    for (kind, n) in &orders.dirty {
        assert!(*n >= 1, "orders: no {kind} row");
    }
    assert!(orders.duplicates >= 1);
    assert!(
        orders.dirty.contains_key("ragged_row") && !orders.dirty.contains_key("malformed_json")
    );

    let all = files(dir.path());
    let (mut ragged, mut bad_utf8, mut dups) = (0u64, 0u64, 0u64);
    for (name, bytes) in all.iter().filter(|(n, _)| n.starts_with("landing/orders/")) {
        let rows = lines(bytes);
        let Some((header, data)) = rows.split_first() else {
            continue;
        };
        let width = header.split(|&b| b == b',').count();
        let mut seen = HashSet::new();
        for row in data {
            // Orders hold no free text, so a comma always separates fields.
            if row.split(|&b| b == b',').count() != width {
                ragged += 1;
            }
            if std::str::from_utf8(row).is_err() {
                bad_utf8 += 1;
                assert!(row.windows(2).any(|w| w == [0xC3, 0x28]), "{name}");
            }
            if !seen.insert(*row) {
                dups += 1;
            }
        }
    }
    assert_eq!(ragged, orders.dirty["ragged_row"]);
    assert_eq!(bad_utf8, orders.dirty["invalid_utf8"]);
    assert_eq!(dups, orders.duplicates);

    let tickets = &t.tables["tickets"];
    let (mut malformed, mut bad_utf8) = (0u64, 0u64);
    for (_, bytes) in all
        .iter()
        .filter(|(n, _)| n.starts_with("landing/tickets/"))
    {
        for line in lines(bytes) {
            match std::str::from_utf8(line) {
                Err(_) => bad_utf8 += 1,
                Ok(s) => {
                    malformed += u64::from(serde_json::from_str::<serde_json::Value>(s).is_err())
                }
            }
        }
    }
    assert_eq!(malformed, tickets.dirty["malformed_json"]);
    assert_eq!(bad_utf8, tickets.dirty["invalid_utf8"]);
}

#[test]
fn rejects_impossible_params() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (customers, days) in [(0, 10), (10, 0), (MAX_CUSTOMERS + 1, 10)] {
        match generate(&params(dir.path(), customers, days, 1)) {
            Err(Error::Config(_)) => {}
            other => panic!("{customers}/{days}: expected a config error, got {other:?}"),
        }
    }
}
