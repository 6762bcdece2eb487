//! Scale benchmark: generate a business, run the nightly jobs over every day,
//! print a table per step (rows, seconds, rows per second, peak RSS and,
//! per job, peak heap in use).
//!
//! `cargo bench --profile production --bench scale` runs the 1M-customer,
//! two-year business with the build to install (Cargo.toml): a full first
//! nightly over every day, then the incremental case (one more day on top
//! of that lake), then an analyst's query. Plain `cargo bench` measures the
//! release build instead: far quicker to rebuild after a change (no
//! whole-program link), a few percent slower to run.
//! Smaller: `ATTUNE_BENCH_CUSTOMERS=20000 ATTUNE_BENCH_DAYS=60 cargo bench --bench scale`;
//! `ATTUNE_BENCH_SMOKE=1` is a smoke size (2,000 customers, 30 days).
//! `ATTUNE_BENCH_DIR` keeps the data (default: a temp dir, removed after).
//! Steps run as separate processes of the real binary under `/usr/bin/time -v`,
//! so each process's peak RSS is that step's own; the jobs of one nightly
//! share a process, and each job's own memory is its heap in use.
//!
//! The shared machines this runs on change speed by the hour (the same
//! binary's incremental night took 75.6 s in one hour and 116.5 s in
//! another), so the benchmark times two fixed workloads before and after
//! the run and prints them with the table: figures from two runs compare
//! only as far as those do.

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
    /// A job's peak of heap memory in use (its manifest); none for whole
    /// processes.
    in_use_kib: Option<u64>,
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

/// Writes what the steps before left in the page cache to disk. A nightly
/// meets exports landed hours before and the night before's outputs, long
/// on disk, not the generator's 3 GB still queued for write-back while
/// ingest and the transform run (session 36: the same binary's transform
/// took 31.6 s in a benchmark without this, 23.0 s in the next one with
/// it, and 20.3 s over a landing written an hour before).
fn settle() {
    let status = Command::new("sync").status().expect("run sync");
    assert!(status.success(), "sync failed");
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
            // The process's resident set sampled while the job ran; older
            // manifests have only its high-water mark.
            peak_rss_kib: job["job_peak_rss_bytes"]
                .as_u64()
                .or_else(|| job["peak_rss_bytes"].as_u64())
                .unwrap_or(0)
                / 1024,
            in_use_kib: job["job_peak_in_use_bytes"].as_u64().map(|b| b / 1024),
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
        in_use_kib: None,
    });
    steps
}

/// Seconds of two fixed single-threaded workloads: SHA-256 over 1 GiB
/// (arithmetic) and 10M dependent reads at random over 256 MiB (memory
/// latency, as in a hash join or a group-by over a million customers).
fn machine_speed() -> (f64, f64) {
    use sha2::Digest;
    let buffer: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let started = Instant::now();
    let mut digest = [0u8; 32];
    for _ in 0..16 {
        let mut h = sha2::Sha256::new();
        h.update(digest);
        h.update(&buffer);
        digest = h.finalize().into();
    }
    let hashing = started.elapsed().as_secs_f64();
    std::hint::black_box(digest);
    drop(buffer);
    // one random cycle through every slot (Sattolo's shuffle), walked 10M steps
    let n = 32usize << 20;
    let mut next: Vec<u64> = (0..n as u64).collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % i as u64) as usize;
        next.swap(i, j);
    }
    let started = Instant::now();
    let mut at = 0usize;
    for _ in 0..10_000_000 {
        at = next[at] as usize;
    }
    let chasing = started.elapsed().as_secs_f64();
    std::hint::black_box(at);
    (hashing, chasing)
}

fn main() {
    let speed_before = machine_speed();
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
        in_use_kib: None,
    });

    settle();
    steps.extend(nightly(&["--from", start, "--to", &end], &root, "full"));
    settle();
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
        in_use_kib: None,
    });

    let speed_after = machine_speed();
    println!(
        "\nMachine speed (fixed single-threaded workloads, lower is faster): \
         SHA-256 over 1 GiB {:.2} s before the run and {:.2} s after; \
         10M random reads over 256 MiB {:.2} s before and {:.2} s after.",
        speed_before.0, speed_after.0, speed_before.1, speed_after.1
    );
    println!(
        "\nPer job, peak RSS is the process's resident set sampled every 20 ms while the job \
         ran, with what earlier jobs freed and glibc keeps for reuse, and heap in use the most \
         heap memory in use meanwhile, the job's own (see jobs/memory.rs and jobs/heap.rs); \
         the whole-process rows are GNU time's."
    );
    println!(
        "\n| step | rows in | rows out | seconds | rows/s | peak RSS (MiB) | heap in use (MiB) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for st in &steps {
        let rows = st.rows_in.max(st.rows_out) as f64;
        println!(
            "| {} | {} | {} | {:.1} | {:.0} | {} | {} |",
            st.name,
            st.rows_in,
            st.rows_out,
            st.seconds,
            rows / st.seconds.max(1e-9),
            st.peak_rss_kib / 1024,
            st.in_use_kib
                .map_or_else(|| "—".to_string(), |k| (k / 1024).to_string())
        );
    }
}
