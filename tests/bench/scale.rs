//! Scale benchmark: generate a business, run the nightly jobs over every day,
//! print a table per step (rows, seconds, rows per second, peak RSS).
//!
//! `cargo bench --bench scale` runs the 1M-customer, two-year business: a
//! full first nightly over every day, then the incremental case (one more
//! day on top of that lake), then an analyst's query.
//! Smaller: `ATTUNE_BENCH_CUSTOMERS=20000 ATTUNE_BENCH_DAYS=60 cargo bench --bench scale`;
//! `ATTUNE_BENCH_SMOKE=1` is a smoke size (2,000 customers, 30 days).
//! `ATTUNE_BENCH_DIR` keeps the data (default: a temp dir, removed after).
//! Steps run as separate processes of the real binary under `/usr/bin/time -v`,
//! so each peak RSS is that step's own.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Step {
    name: String,
    rows_in: u64,
    rows_out: u64,
    seconds: f64,
    peak_rss_kib: u64,
}

/// Runs `attune args…` under GNU time; returns (seconds, peak RSS KiB, stdout).
fn timed(args: &[&str], root: &Path) -> (f64, u64, String) {
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_attune"))
        .args(args)
        .env("ATTUNE_KEY", "benchmark-key-0123456789abcdef")
        .env("ATTUNE_ROOT", root)
        .output()
        .expect("run attune under /usr/bin/time (apt-get install time)");
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "attune {args:?} failed:\n{stderr}");
    let rss = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (
        seconds,
        rss,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The per-job steps of a nightly's manifest (the path it printed last).
fn manifest_steps(stdout: &str, label: &str) -> Vec<Step> {
    let manifest_path = stdout
        .lines()
        .last()
        .expect("manifest path printed last")
        .trim()
        .to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("manifest")).expect("json");
    manifest["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|job| Step {
            name: format!(
                "{label}: {}{}",
                job["job"].as_str().unwrap_or("?"),
                if job["status"] == "ok" {
                    String::new()
                } else {
                    format!(" ({})", job["status"].as_str().unwrap_or("?"))
                }
            ),
            rows_in: job["rows_in"].as_u64().unwrap_or(0),
            rows_out: job["rows_out"].as_u64().unwrap_or(0),
            seconds: job["seconds"].as_f64().unwrap_or(0.0),
            // The job's own sampled peak; older manifests have only the
            // process's high-water mark.
            peak_rss_kib: job["job_peak_rss_bytes"]
                .as_u64()
                .or_else(|| job["peak_rss_bytes"].as_u64())
                .unwrap_or(0)
                / 1024,
        })
        .collect()
}

/// Runs `attune nightly ARGS` as one process; its jobs' steps, then the
/// process's own (wall time and peak RSS from GNU time).
fn nightly(args: &[&str], root: &Path, label: &str) -> Vec<Step> {
    let mut all = vec!["nightly"];
    all.extend_from_slice(args);
    let (s, rss, stdout) = timed(&all, root);
    let mut steps = manifest_steps(&stdout, label);
    steps.push(Step {
        name: format!("{label}: whole process"),
        rows_in: steps.iter().map(|s| s.rows_in).sum(),
        rows_out: steps.iter().map(|s| s.rows_out).sum(),
        seconds: s,
        peak_rss_kib: rss,
    });
    steps
}

fn main() {
    // A smoke size for CI and quick checks; explicit sizes still win.
    let smoke = std::env::var("ATTUNE_BENCH_SMOKE").is_ok_and(|v| v == "1");
    let customers: u64 = env_or(
        "ATTUNE_BENCH_CUSTOMERS",
        if smoke { 2_000 } else { 1_000_000 },
    );
    let days: u32 = env_or("ATTUNE_BENCH_DAYS", if smoke { 30 } else { 730 });
    let start = "2025-01-01";
    let tmp;
    let root = match std::env::var("ATTUNE_BENCH_DIR") {
        Ok(d) => std::path::PathBuf::from(d),
        Err(_) => {
            tmp = tempfile::tempdir().expect("tempdir");
            tmp.path().to_path_buf()
        }
    };
    let first = chrono::NaiveDate::parse_from_str(start, "%Y-%m-%d").expect("date");
    let end = first + chrono::Duration::days(i64::from(days) - 1);
    // One more day is generated than the full run covers: the incremental
    // case is that day, on top of the lake the full run built.
    let extra = end + chrono::Duration::days(1);
    let (end, extra) = (end.to_string(), extra.to_string());
    let root_s = root.to_string_lossy().into_owned();
    println!(
        "attune scale benchmark: {customers} customers, {days} days (+1 incremental), root {root_s}"
    );

    let mut steps = Vec::new();
    let (s, rss, _) = timed(
        &[
            "generate",
            "--out",
            &root_s,
            "--customers",
            &customers.to_string(),
            "--days",
            &(days + 1).to_string(),
            "--start",
            start,
        ],
        &root,
    );
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("ground_truth.json")).expect("truth"))
            .expect("json");
    let landed: u64 = truth["tables"]
        .as_object()
        .expect("tables")
        .values()
        .filter_map(|t| t["data_rows"].as_u64())
        .sum();
    steps.push(Step {
        name: format!("generate ({} days)", days + 1),
        rows_in: 0,
        rows_out: landed,
        seconds: s,
        peak_rss_kib: rss,
    });

    steps.extend(nightly(&["--from", start, "--to", &end], &root, "full"));
    steps.extend(nightly(&["--date", &extra], &root, "incremental"));

    // The analyst's query: a group-by over every order.
    let (s, rss, _) = timed(
        &[
            "query",
            "SELECT channel, COUNT(*) AS orders, SUM(total_amount) AS revenue FROM orders GROUP BY channel ORDER BY channel",
        ],
        &root,
    );
    let orders = truth["tables"]["orders"]["expected_clean_rows"]
        .as_u64()
        .unwrap_or(0);
    steps.push(Step {
        name: "query: group-by over all orders".into(),
        rows_in: orders,
        rows_out: 3,
        seconds: s,
        peak_rss_kib: rss,
    });

    println!(
        "\nPeak RSS per job is sampled every 20 ms while the job ran (see jobs/memory.rs); \
         the whole-process rows are GNU time's."
    );
    println!("\n| step | rows in | rows out | seconds | rows/s | peak RSS (MiB) |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for st in &steps {
        let rows = st.rows_in.max(st.rows_out) as f64;
        println!(
            "| {} | {} | {} | {:.1} | {:.0} | {} |",
            st.name,
            st.rows_in,
            st.rows_out,
            st.seconds,
            rows / st.seconds.max(1e-9),
            st.peak_rss_kib / 1024
        );
    }
}
