//! The `attune` binary: help, exit codes, whole-file errors, the lock, crashes.

use std::process::Stdio;
use std::time::Duration;

use crate::common::{Root, attune, files_under};

fn write_config(root: &Root, extra: &str) -> std::path::PathBuf {
    let path = root.path().join("attune.toml");
    let text = format!("root = {:?}\n{extra}", root.path().to_string_lossy());
    std::fs::write(&path, text).expect("config");
    path
}

#[test]
fn help_explains_commands_and_exit_codes() {
    let out = attune().arg("--help").output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in [
        "ingest",
        "nightly",
        "generate",
        "demo",
        "init",
        "Exit codes",
        "lock",
    ] {
        assert!(text.contains(want), "--help lacks {want}");
    }
    for sub in [
        "init",
        "generate",
        "ingest",
        "transform",
        "empathy",
        "segment",
        "roi",
        "nightly",
        "query",
        "tables",
        "privacy",
        "retention",
        "forget",
        "voice",
        "report",
        "runs",
        "doctor",
        "value",
        "fairness",
        "demo",
    ] {
        let out = attune().args([sub, "--help"]).output().expect("runs");
        assert!(out.status.success(), "{sub} --help");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Example"),
            "{sub} --help has an example"
        );
    }
}

#[test]
fn init_writes_a_config_that_loads_and_unknown_keys_fail() {
    let root = Root::new();
    let path = root.path().join("attune.toml");
    let out = attune()
        .args(["init", "--path"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let text = std::fs::read_to_string(&path).expect("written");
    assert!(text.contains("retention_days = 730"));
    let again = attune()
        .args(["init", "--path"])
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(again.status.code(), Some(2), "refuses to overwrite");
    std::fs::write(&path, format!("{text}\ncolour = \"blue\"\n")).expect("write");
    let out = attune()
        .arg("--config")
        .arg(&path)
        .args(["ingest", "--date", "2025-03-01"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("colour") && err.contains("line"), "{err}");
}

#[test]
fn exit_codes_for_missing_input_bad_files_and_missing_key() {
    let root = Root::new();
    let config = write_config(&root, "[ingest]\ntables = [\"orders\"]\n");
    let out = attune()
        .arg("--config")
        .arg(&config)
        .args(["ingest", "--date", "2025-03-01"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("landing/orders/2025-03-01"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    root.land(
        "orders",
        "2025-03-01",
        "orders.csv",
        b"order_id;customer_id;ordered_at\nO1;C1;2025-03-01\n",
    );
    let out = attune()
        .arg("--config")
        .arg(&config)
        .args(["ingest", "--date", "2025-03-01"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("orders.csv") && err.contains("delimiter"),
        "{err}"
    );

    let out = attune()
        .env_remove("ATTUNE_KEY")
        .arg("--config")
        .arg(&config)
        .args(["ingest", "--date", "2025-03-01"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ATTUNE_KEY"));
}

#[test]
fn a_second_run_is_refused_while_the_lock_is_held() {
    let root = Root::new();
    let config = write_config(&root, "");
    std::fs::create_dir_all(root.path().join("runs")).expect("mkdir");
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.path().join("runs/.lock"))
        .expect("open");
    lock.try_lock().expect("test takes the lock");
    let out = attune()
        .arg("--config")
        .arg(&config)
        .args(["nightly", "--date", "2025-03-01"])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("another attune run"));
    // every command that writes takes the same lock: an `attune ingest` or
    // `attune transform` started by hand during the nightly waits its turn
    for args in [
        vec!["ingest", "--date", "2025-03-01"],
        vec!["transform", "--date", "2025-03-01"],
        vec!["report", "--date", "2025-03-01"],
    ] {
        let out = attune()
            .arg("--config")
            .arg(&config)
            .args(&args)
            .env("ATTUNE_KEY", "a-test-key-of-sufficient-length-0123")
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(4), "{args:?}");
    }
    drop(lock);
    let out = attune()
        .arg("--config")
        .arg(&config)
        .args(["nightly", "--date", "2025-03-01"])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(5),
        "lock released: now it fails only for missing landing data"
    );
}

fn big_orders(rows: usize, amount: &str) -> Vec<u8> {
    let mut s = String::from("order_id,customer_id,ordered_at,total_amount,currency,channel\n");
    for i in 0..rows {
        s.push_str(&format!(
            "O{i},C{},2025-03-01 10:00:00,{amount},EUR,app\n",
            i % 5000
        ));
    }
    s.into_bytes()
}

fn visible_parts(root: &Root) -> Vec<String> {
    files_under(&root.path().join("lake/orders"))
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet"))
        .collect()
}

/// A crash mid-partition (abort, as kill -9) leaves the previous partition
/// readable and complete; a re-run finishes the job.
#[test]
fn a_crash_mid_ingest_leaves_the_previous_state_and_a_rerun_completes() {
    let root = Root::new();
    let config = write_config(
        &root,
        "[ingest]\ntables = [\"orders\"]\nbatch_rows = 1024\n",
    );
    root.land(
        "orders",
        "2025-03-01",
        "orders.csv",
        &big_orders(20_000, "1.00"),
    );
    let ok = attune()
        .arg("--config")
        .arg(&config)
        .args(["ingest", "--date", "2025-03-01"])
        .output()
        .expect("runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(root.rows("lake", "orders", "2025-03-01"), 20_000);

    // New data for the same day, and a crash after 5 batches.
    root.land(
        "orders",
        "2025-03-01",
        "orders.csv",
        &big_orders(30_000, "2.00"),
    );
    let crashed = attune()
        .env("ATTUNE_FAULT", "ingest-abort-after-batches=5")
        .arg("--config")
        .arg(&config)
        .args(["ingest", "--date", "2025-03-01"])
        .output()
        .expect("runs");
    assert!(!crashed.status.success(), "the fault aborts the process");
    assert_eq!(
        root.rows("lake", "orders", "2025-03-01"),
        20_000,
        "old partition intact and readable"
    );
    assert_eq!(
        visible_parts(&root),
        vec!["part-0.parquet"],
        "no half-written file is visible"
    );

    let rerun = attune()
        .arg("--config")
        .arg(&config)
        .args(["ingest", "--date", "2025-03-01"])
        .output()
        .expect("runs");
    assert!(
        rerun.status.success(),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    assert_eq!(root.rows("lake", "orders", "2025-03-01"), 30_000);
}

/// The same with a real SIGKILL at an arbitrary moment: whatever state is
/// visible is a complete partition (old or new), and a re-run completes.
#[test]
fn a_sigkill_at_any_moment_never_leaves_a_partial_partition() {
    let root = Root::new();
    let config = write_config(
        &root,
        "[ingest]\ntables = [\"orders\"]\nbatch_rows = 1024\n",
    );
    for day in 1..=6 {
        root.land(
            "orders",
            &format!("2025-03-0{day}"),
            "orders.csv",
            &big_orders(15_000, "1.00"),
        );
    }
    for delay_ms in [30u64, 120, 300] {
        let mut child = attune()
            .arg("--config")
            .arg(&config)
            .args(["ingest", "--from", "2025-03-01", "--to", "2025-03-06"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        for day in 1..=6 {
            let p = root
                .path()
                .join(format!("lake/orders/dt=2025-03-0{day}/part-0.parquet"));
            if p.exists() {
                assert_eq!(
                    crate::common::read_parquet(&p)
                        .iter()
                        .map(|b| b.num_rows())
                        .sum::<usize>(),
                    15_000
                );
            }
        }
    }
    let rerun = attune()
        .arg("--config")
        .arg(&config)
        .args(["ingest", "--from", "2025-03-01", "--to", "2025-03-06"])
        .output()
        .expect("runs");
    assert!(rerun.status.success());
    for day in 1..=6 {
        assert_eq!(
            root.rows("lake", "orders", &format!("2025-03-0{day}")),
            15_000
        );
    }
}

/// The README's first command, smaller: generate + nightly through the real
/// binary, then the lake agrees with the planted ground truth and the marts exist.
#[test]
fn demo_runs_end_to_end() {
    let root = Root::new();
    let dir = root.path().join("demo");
    let out = attune()
        .env_remove("ATTUNE_KEY")
        .env("ATTUNE_LOG", "attune=debug")
        .args(["demo", "--customers", "400", "--days", "60", "--dir"])
        .arg(&dir)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    crate::common::assert_succeeded(&out);
    for want in [
        "lake (Parquet)",
        "marts (Parquet)",
        "run manifest",
        "ground_truth.json",
    ] {
        assert!(stdout.contains(want), "demo output lacks {want}:\n{stdout}");
    }
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("ground_truth.json")).expect("truth"))
            .expect("json");
    let manifest = files_under(&dir.join("runs"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("manifest");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest).expect("read")).expect("json");
    assert_eq!(manifest["status"], "ok");
    assert_eq!(
        manifest["demo_key"], true,
        "the demo key is labelled as such"
    );
    let ingest = &manifest["jobs"][0];
    let planted: u64 = truth["tables"]
        .as_object()
        .expect("tables")
        .values()
        .filter_map(|t| t["expected_clean_rows"].as_u64())
        .sum();
    assert_eq!(
        ingest["rows_out"].as_u64(),
        Some(planted),
        "lake rows = clean rows planted"
    );
    for mart in [
        "customer_features",
        "nps_daily",
        "service_levels",
        "lineage",
    ] {
        let p = dir
            .join("marts")
            .join(mart)
            .join("dt=2025-03-01")
            .join("part-0.parquet");
        assert!(p.exists(), "{} missing", p.display());
    }
    // staging models stay inside the run: a view, and one held in memory
    for staging in ["stg_orders", "stg_customers"] {
        assert!(
            !dir.join("marts").join(staging).exists(),
            "{staging} was written to marts"
        );
    }
    no_personal_data_in(&String::from_utf8_lossy(&out.stderr), &dir);
}

/// The log of a whole demo at debug level holds no customer number, e-mail,
/// name or phone number of the exports and no pseudonym of the lake. (The
/// values are never printed: a failure says which kind leaked.)
fn no_personal_data_in(log: &str, dir: &std::path::Path) {
    assert!(log.contains("DEBUG"), "the log is at debug level");
    // single words: compared with the log's words; names and phone numbers
    // (several words) with the log itself
    let words: std::collections::HashSet<&str> = log
        .split(|c: char| c.is_whitespace() || "\"'`,;:=()[]{}<>|".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    let mut checked = 0;
    for f in files_under(&dir.join("landing/customers")) {
        let bytes = std::fs::read(&f).expect("export");
        let text = if f.extension().is_some_and(|e| e == "gz") {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
                .expect("gunzip");
            out
        } else {
            bytes
        };
        let mut rows = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(&text[..]);
        let header = rows.byte_headers().expect("header").clone();
        let at = |name: &str| header.iter().position(|h| h == name.as_bytes());
        let columns = ["customer_id", "email", "full_name", "phone"].map(|c| (c, at(c)));
        for (n, row) in rows.byte_records().flatten().enumerate() {
            for (kind, i) in columns {
                let Some(v) = i.and_then(|i| row.get(i)) else {
                    continue;
                };
                let v = String::from_utf8_lossy(v).trim().to_string();
                if v.len() < 5 {
                    continue;
                }
                let leaked = if v.contains(' ') {
                    // a sample: each is a scan of the whole log
                    n % 10 == 0 && log.contains(v.as_str())
                } else {
                    words.contains(v.as_str())
                };
                assert!(!leaked, "a {kind} of the customers export is in the log");
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "{checked} values checked");
    let lake = dir.join("lake/customers");
    let mut pseudonyms = 0;
    for f in files_under(&lake) {
        for b in crate::common::read_parquet(&f) {
            let ids = datafusion::arrow::compute::cast(
                b.column_by_name("customer_id").expect("customer_id"),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .expect("utf8");
            let ids = ids
                .as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>()
                .expect("strings");
            for id in ids.iter().flatten() {
                assert!(!words.contains(id), "a pseudonym of the lake is in the log");
                pseudonyms += 1;
            }
        }
    }
    assert!(pseudonyms > 300, "{pseudonyms} pseudonyms checked");
}

/// `attune tables` over an ingested and transformed lake lists each table
/// with its rows, partitions and columns; `attune tables --docs` documents
/// every column it lists.
#[test]
fn tables_lists_every_table_and_the_docs_cover_every_column() {
    let (root, last) = crate::common::demo_lake();
    let root = root.to_str().expect("utf8");
    let out = attune()
        .args(["--root", root, "tables"])
        .output()
        .expect("runs");
    crate::common::assert_succeeded(&out);
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = |table: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(&format!("{table}  ")))
            .unwrap_or_else(|| panic!("{table} not listed:\n{listing}"))
    };
    assert!(
        line("lake/orders").ends_with(&format!("(dt 2025-01-01 … {last})")),
        "{}",
        line("lake/orders")
    );
    assert!(
        line("marts/customer_features").ends_with(&format!("(dt {last} … {last})")),
        "{}",
        line("marts/customer_features")
    );
    let out = attune().args(["tables", "--docs"]).output().expect("runs");
    assert!(out.status.success());
    let docs = String::from_utf8_lossy(&out.stdout).into_owned();
    let section = |table: &str| -> &str {
        docs.split(&format!("### {table}\n"))
            .nth(1)
            .and_then(|s| s.split("\n### ").next())
            .unwrap_or_else(|| panic!("{table} has no section in tables --docs"))
    };
    let mut table = String::new();
    let mut checked = 0;
    for l in listing.lines() {
        if !l.starts_with(' ') {
            table = l.split_whitespace().next().expect("name").to_string();
            continue;
        }
        let column = l.split_whitespace().next().expect("column");
        if column == "dt" {
            continue;
        }
        assert!(
            section(&table).contains(&format!("\n| {column} |")),
            "{table}.{column} is not documented"
        );
        checked += 1;
    }
    assert!(checked > 150, "{checked} columns checked");
    let orders_daily = section("marts/orders_daily");
    assert!(
        orders_daily
            .contains("Incremental: each night computes again only the values of `order_date`"),
        "{orders_daily}"
    );
    assert!(
        !section("marts/customer_features").contains("Incremental"),
        "computed whole every night"
    );
}

/// `attune ingest` on its own records its run in `runs/` as a nightly does:
/// per table the rows read, written, quarantined and removed as duplicates,
/// with seconds; a failed ingest is recorded as failed, with its error.
#[test]
fn a_standalone_ingest_records_its_run_with_the_accounting() {
    let root = Root::new();
    let config = write_config(&root, "[ingest]\ntables = [\"orders\"]\n");
    let ingest = || {
        attune()
            .arg("--config")
            .arg(&config)
            .args(["ingest", "--date", "2025-03-01"])
            .output()
            .expect("runs")
    };
    assert_eq!(ingest().status.code(), Some(5), "no landing folder yet");
    root.land(
        "orders",
        "2025-03-01",
        "orders.csv",
        b"order_id,customer_id,ordered_at,total_amount,currency,channel\n\
          O1,C1,2025-03-01 10:00:00,5,EUR,app\n\
          O1,C1,2025-03-01 10:00:00,5,EUR,app\n\
          O2,C2,not a time,7.5,EUR,online\n\
          O3,C3,2025-03-01 12:00:00,4,EUR,in_store\n",
    );
    let out = ingest();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("run manifest: "), "{err}");

    let mut manifests: Vec<serde_json::Value> = files_under(&root.path().join("runs"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("json"))
        .collect();
    manifests.sort_by_key(|m| m["started_at"].as_str().expect("started_at").to_string());
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    let (failed, ok) = (&manifests[0], &manifests[1]);
    assert_eq!(failed["command"], "ingest");
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["jobs"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("landing/orders/2025-03-01")),
        "{failed}"
    );
    assert_eq!(ok["status"], "ok");
    assert_eq!(ok["dates"][0], "2025-03-01");
    let job = &ok["jobs"][0];
    assert_eq!(
        (job["job"].as_str(), job["status"].as_str()),
        (Some("ingest"), Some("ok"))
    );
    let orders = &job["details"]["tables"][0];
    assert_eq!(orders["table"], "orders");
    let n = |k: &str| {
        orders[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k}: {orders}"))
    };
    assert_eq!(
        (
            n("rows_read"),
            n("rows_written"),
            n("quarantined"),
            n("duplicates"),
            n("consent_excluded")
        ),
        (4, 2, 1, 1, 0)
    );
    assert!(
        orders["seconds"].as_f64().is_some_and(|s| s > 0.0),
        "{orders}"
    );
    assert_eq!(
        (job["rows_in"].as_u64(), job["rows_out"].as_u64()),
        (Some(4), Some(2))
    );
}

/// On a terminal the nightly draws a spinner per job and, under ingest, a
/// bar per table that is left as a line with where its rows went; under
/// cron (no terminal) stderr has none of it. `script` (util-linux, on every
/// Debian) runs the binary on a pseudo-terminal.
#[test]
fn a_terminal_shows_a_line_per_job_and_per_table() {
    let root = Root::new();
    let out = attune()
        .args([
            "generate",
            "--customers",
            "300",
            "--days",
            "2",
            "--seed",
            "7",
        ])
        .arg("--out")
        .arg(root.path())
        .output()
        .expect("generate runs");
    crate::common::assert_succeeded(&out);
    let nightly = format!(
        "stty cols 200 rows 50; exec {} nightly --date 2025-01-02 --only ingest --only transform",
        env!("CARGO_BIN_EXE_attune")
    );
    let typescript = root.path().join("terminal.txt");
    let out = std::process::Command::new("script")
        .args(["-qec", &nightly])
        .arg(&typescript)
        .env_remove("ATTUNE_LOG")
        // indicatif draws nothing on a "dumb" terminal; `script` runs the
        // command through $SHELL
        .env("TERM", "xterm")
        .env("SHELL", "/bin/sh")
        .env("ATTUNE_ROOT", root.path())
        .env("ATTUNE_KEY", crate::common::KEY)
        .stdin(Stdio::null())
        .output()
        .expect("`script` (util-linux) runs");
    crate::common::assert_succeeded(&out);
    let raw = std::fs::read_to_string(&typescript).expect("typescript");
    // the screen's text, split where the cursor moves or a line is cleared
    let escapes = regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").expect("regex");
    let screen = escapes.replace_all(&raw, "\n").replace('\r', "\n");
    // indicatif pads each line to the width instead of ending it
    let shows = |pattern: &str| regex::Regex::new(pattern).expect("regex").is_match(&screen);
    for job in ["ingest", "transform"] {
        assert!(
            shows(&format!(r"{job} +ok +[0-9,]+ rows in, [0-9,]+ out")),
            "no line for the {job} job:\n{screen}"
        );
    }
    assert!(
        !shows("(fairness|segment) +[0-9]+s"),
        "a spinner for a job not run:\n{screen}"
    );
    for table in ["customers", "orders", "tickets", "initiative_assignments"] {
        assert!(
            shows(&format!(
                r"{table} +[0-9.]+ [KMG]?i?B +[0-9,]+ rows?: [0-9,]+ to the lake"
            )),
            "no finished bar for {table}:\n{screen}"
        );
    }
    assert!(
        shows(r"customers +\[[=> ]{20}\] +[0-9.]+ [KMG]?i?B of [0-9.]+ [KMG]?i?B"),
        "no bar counting the customers' bytes:\n{screen}"
    );
    // (which model the transform's spinner names is checked in
    // nightly::progress: a model of a small business may be done before
    // the next redraw)

    // the same night again, as cron runs it: nothing but logs on stderr
    let out = attune()
        .args([
            "nightly",
            "--date",
            "2025-01-02",
            "--force",
            "--only",
            "ingest",
        ])
        .env("ATTUNE_ROOT", root.path())
        .output()
        .expect("nightly runs");
    crate::common::assert_succeeded(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("to the lake") && !stderr.contains("rows in,"),
        "progress drawn without a terminal:\n{stderr}"
    );
}
