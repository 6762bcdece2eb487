//! The nightly as a scheduler sees it: through the real binary, every
//! documented exit code (0 success, 1 a job failed, 2 config or key, 3 audit
//! gate, 4 lock held, 5 missing input), `attune runs` and `attune doctor`
//! agreeing with what happened, and a run killed with SIGKILL resuming
//! where it stopped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::common::{KEY, Root, attune};

/// A small generated business in its own root, with a config file naming it.
struct Business {
    root: Root,
    config: PathBuf,
    first: NaiveDate,
    last: NaiveDate,
}

impl Business {
    fn new(customers: u64, days: u32) -> Business {
        let root = Root::new();
        let params = root.generate(customers, days);
        let config = root.path().join("attune.toml");
        std::fs::write(&config, format!("root = {:?}\n", root.path())).expect("config");
        Business {
            first: params.start,
            last: params.start + chrono::Duration::days(i64::from(days) - 1),
            root,
            config,
        }
    }

    /// `attune --config … ARGS`.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = attune();
        c.arg("--config").arg(&self.config).args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("runs")
    }

    /// `attune nightly --from FIRST --to LAST ARGS`.
    fn nightly(&self, args: &[&str]) -> Output {
        let (first, last) = (self.first.to_string(), self.last.to_string());
        let mut all = vec!["nightly", "--from", &first, "--to", &last];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `attune runs --json`, newest first.
    fn runs(&self) -> Vec<serde_json::Value> {
        let out = self.run(&["runs", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("runs --json");
        v.as_array().expect("array").clone()
    }

    fn stamped(&self, job: &str) -> bool {
        self.root
            .path()
            .join(format!("runs/stamps/{}/{job}.json", self.last))
            .exists()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

/// (job, status) of a run's manifest, from `attune runs show ID --json`.
fn job_statuses(b: &Business, id: &str) -> Vec<(String, String)> {
    let out = b.run(&["runs", "show", id, "--json"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).expect("manifest");
    m["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| {
            (
                j["job"].as_str().expect("job").to_string(),
                j["status"].as_str().expect("status").to_string(),
            )
        })
        .collect()
}

/// A mart a buggy job might write: a customer's e-mail in plain text.
fn write_leaky_mart(root: &Path, date: NaiveDate) {
    let schema = Arc::new(Schema::new(vec![Field::new("note", DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(vec![
            "please write to ana.lopez@example.com",
            "all fine",
        ]))],
    )
    .expect("batch");
    let dir = root.join(format!("marts/leaky/dt={date}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = std::fs::File::create(dir.join("part-0.parquet")).expect("create");
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

/// 0, 1 and 3 on one business, and `attune runs` / `attune doctor` agreeing
/// with each outcome.
#[test]
fn nightly_exits_0_on_success_1_when_a_job_fails_and_3_on_the_audit_gate() {
    let b = Business::new(200, 20);
    let last = b.last.to_string();

    // 0: everything ran.
    let ok = b.nightly(&[]);
    assert_eq!(code(&ok), Some(0), "{}", stderr(&ok));
    assert!(
        stderr(&ok).lines().all(|l| !l.contains("rows in,")),
        "no progress lines when stderr is not a terminal: {}",
        stderr(&ok)
    );
    let runs = b.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "ok");
    assert_eq!(runs[0]["jobs_failed"], 0);
    assert!(runs[0]["jobs_ok"].as_u64().expect("count") >= 5);
    assert_eq!(runs[0]["dates"].as_array().expect("dates").len(), 20);
    let first_id = runs[0]["run_id"].as_str().expect("id").to_string();
    // --log-format json: stdout and stderr are JSON lines only (collectors mix them).
    let json = b.nightly(&["--log-format", "json"]);
    assert_eq!(code(&json), Some(0), "{}", stderr(&json));
    for line in stdout(&json).lines().chain(stderr(&json).lines()) {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    let summary: serde_json::Value = serde_json::from_str(stdout(&json).trim()).expect("one line");
    assert_eq!(summary["status"], "ok");
    assert!(
        std::path::Path::new(summary["manifest"].as_str().expect("path")).exists(),
        "{summary}"
    );
    let doctor = b.run(&["doctor", "--date", &last]);
    assert_eq!(code(&doctor), Some(0), "{}", stdout(&doctor));
    assert!(!stdout(&doctor).contains("FAIL"), "{}", stdout(&doctor));
    for name in [
        "config",
        "key",
        "data root",
        "landing",
        "space",
        "clock",
        "lock",
        "last run",
    ] {
        assert!(
            stdout(&doctor).lines().any(|l| l[6..].starts_with(name)),
            "doctor checks {name}:\n{}",
            stdout(&doctor)
        );
    }
    assert!(
        !stdout(&doctor).contains(KEY) && !stderr(&doctor).contains(KEY),
        "doctor never prints the key"
    );
    // Without --date, doctor looks where tonight's nightly would: every
    // night since the last one ingested, up to yesterday (none exported here).
    let tonight = b.run(&["doctor"]);
    assert_eq!(code(&tonight), Some(5), "{}", stdout(&tonight));
    let next_day = (b.last + chrono::Duration::days(1)).to_string();
    assert!(
        stdout(&tonight).lines().any(|l| l.starts_with("FAIL")
            && l.contains("landing")
            && l.contains(&format!("{next_day} …"))),
        "{}",
        stdout(&tonight)
    );
    assert!(
        !b.root
            .path()
            .join("runs")
            .read_dir()
            .expect("runs/")
            .any(|e| e
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .starts_with(".doctor-probe")),
        "doctor's probe object is deleted"
    );

    // 1: a corrupt lake file makes transform fail.
    let corrupt = b
        .root
        .path()
        .join(format!("lake/orders/dt={}/part-9.parquet", b.first));
    std::fs::write(&corrupt, b"PAR1 this is not parquet PAR1").expect("corrupt");
    let failed = b.nightly(&["--only", "transform", "--force"]);
    assert_eq!(code(&failed), Some(1), "{}", stderr(&failed));
    let runs = b.runs();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0]["status"], "failed");
    let failed_id = runs[0]["run_id"].as_str().expect("id").to_string();
    assert_eq!(
        job_statuses(&b, &failed_id),
        vec![("transform".to_string(), "failed".to_string())]
    );
    let shown = b.run(&["runs", "show", &failed_id]);
    let text = stdout(&shown);
    assert!(
        text.contains("transform failed:") && text.contains("status     failed"),
        "{text}"
    );
    let doctor = b.run(&["doctor", "--date", &last]);
    assert_eq!(code(&doctor), Some(0), "a failed last run is a warning");
    assert!(
        stdout(&doctor)
            .lines()
            .any(|l| l.starts_with("warn") && l.contains("last run") && l.contains(&failed_id)),
        "{}",
        stdout(&doctor)
    );
    std::fs::remove_file(&corrupt).expect("repair");

    // 3: a mart leaks an e-mail address; the privacy gate trips after
    // every output is written, run or skipped.
    write_leaky_mart(b.root.path(), b.last);
    let gated = b.nightly(&[]);
    assert_eq!(code(&gated), Some(3), "{}", stderr(&gated));
    assert!(stderr(&gated).contains("audit gate"), "{}", stderr(&gated));
    let gate_id = b.runs()[0]["run_id"].as_str().expect("id").to_string();
    let statuses = job_statuses(&b, &gate_id);
    assert!(
        statuses.iter().any(|(j, s)| j == "privacy" && s == "ok"),
        "privacy ran (transform re-ran after its failed run): {statuses:?}"
    );
    assert_eq!(b.runs()[0]["status"], "gate_tripped");
    let again = b.nightly(&[]);
    assert_eq!(
        code(&again),
        Some(3),
        "a skipped gated job still trips its gate"
    );
    let again_id = b.runs()[0]["run_id"].as_str().expect("id").to_string();
    assert!(
        job_statuses(&b, &again_id)
            .iter()
            .all(|(_, s)| s == "skipped"),
        "nothing changed: {:?}",
        job_statuses(&b, &again_id)
    );
    assert_eq!(b.runs().len(), 5);
    assert_eq!(
        b.runs().last().expect("oldest")["run_id"].as_str(),
        Some(first_id.as_str()),
        "newest first"
    );
}

/// 2, 4 and 5, without a business: they all stop before any job runs.
#[test]
fn nightly_exits_2_on_config_or_key_4_on_the_lock_and_5_on_missing_input() {
    let root = Root::new();
    let config = root.path().join("attune.toml");
    std::fs::write(&config, format!("root = {:?}\n", root.path())).expect("config");
    let run = |env_key: Option<&str>, args: &[&str]| {
        let mut c = attune();
        match env_key {
            Some(k) => c.env("ATTUNE_KEY", k),
            None => c.env_remove("ATTUNE_KEY"),
        };
        c.arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("runs")
    };
    let nightly = ["nightly", "--date", "2025-03-01"];

    // 5: no exports for the date; doctor says the same.
    let missing = run(Some(KEY), &nightly);
    assert_eq!(code(&missing), Some(5), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("landing/"),
        "{}",
        stderr(&missing)
    );
    // --log-format json: every stderr line is a JSON event, the error included.
    let json = run(
        Some(KEY),
        &[
            "--log-format",
            "json",
            "-v",
            "nightly",
            "--date",
            "2025-03-01",
        ],
    );
    assert_eq!(code(&json), Some(5));
    let events: Vec<serde_json::Value> = stderr(&json)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let last = events.last().expect("the error is logged");
    assert_eq!(last["level"], "ERROR");
    assert_eq!(last["fields"]["exit_code"], 5);
    assert!(
        last["fields"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("landing/")),
        "{last}"
    );
    let doctor = run(Some(KEY), &["doctor", "--date", "2025-03-01"]);
    assert_eq!(code(&doctor), Some(5), "{}", stdout(&doctor));
    assert!(
        stdout(&doctor)
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("landing") && l.contains("orders")),
        "{}",
        stdout(&doctor)
    );
    // 5: an unknown run id, with the ids that exist.
    let unknown = run(Some(KEY), &["runs", "show", "20990101T000000Z-deadbeef"]);
    assert_eq!(code(&unknown), Some(5), "{}", stderr(&unknown));
    let listed = run(Some(KEY), &["runs", "--json"]);
    let ids: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let some_id = ids[0]["run_id"]
        .as_str()
        .expect("the failed run has a manifest");
    assert!(
        stderr(&unknown).contains(some_id) && stderr(&unknown).contains("Nearest"),
        "{}",
        stderr(&unknown)
    );

    // 2: no key, a short key, a bad config file, an unknown job.
    let no_key = run(None, &nightly);
    assert_eq!(code(&no_key), Some(2));
    assert!(stderr(&no_key).contains("ATTUNE_KEY"));
    let doctor = run(None, &["doctor", "--date", "2025-03-01"]);
    assert_eq!(
        code(&doctor),
        Some(2),
        "a key problem outranks missing input"
    );
    assert_eq!(code(&run(Some("short"), &nightly)), Some(2));
    let typo = run(
        Some(KEY),
        &["nightly", "--date", "2025-03-01", "--only", "transfrom"],
    );
    assert_eq!(code(&typo), Some(2), "{}", stderr(&typo));
    let bad = root.path().join("bad.toml");
    std::fs::write(&bad, "[privacy]\nfail_on = \"sometimes\"\n").expect("bad config");
    let out = attune()
        .arg("--config")
        .arg(&bad)
        .args(nightly)
        .output()
        .expect("runs");
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    let doctor = attune()
        .arg("--config")
        .arg(&bad)
        .args(["doctor"])
        .output()
        .expect("runs");
    assert_eq!(code(&doctor), Some(2));
    assert!(
        stdout(&doctor).starts_with("FAIL  config") && stdout(&doctor).contains("fail_on"),
        "{}",
        stdout(&doctor)
    );

    // Both commands explain themselves, with an example and their exit codes.
    for sub in [
        &["runs", "--help"][..],
        &["runs", "show", "--help"],
        &["doctor", "--help"],
    ] {
        let help = run(Some(KEY), sub);
        assert_eq!(code(&help), Some(0));
        assert!(
            stdout(&help).contains("Example"),
            "{sub:?}: {}",
            stdout(&help)
        );
    }
    let help = stdout(&run(Some(KEY), &["doctor", "--help"]))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains("2 for a config") && help.contains("5 for"),
        "{help}"
    );

    // 4: the lock held by another run (this test, through the library).
    let ctx = root.ctx(&attune::schema::TABLES, KEY);
    let lock = attune::nightly::RunLock::acquire(&ctx).expect("the test takes the lock");
    let locked = run(Some(KEY), &nightly);
    assert_eq!(code(&locked), Some(4), "{}", stderr(&locked));
    assert!(stderr(&locked).contains("another attune run"));
    let doctor = run(Some(KEY), &["doctor", "--date", "2025-03-01"]);
    assert!(
        stdout(&doctor)
            .lines()
            .any(|l| l.starts_with("warn") && l.contains("lock") && l.contains("in progress")),
        "{}",
        stdout(&doctor)
    );
    drop(lock);
    assert_eq!(
        code(&run(Some(KEY), &nightly)),
        Some(5),
        "lock released: back to the missing exports"
    );
}

/// SIGKILL in the middle of a nightly: `attune runs` shows the run as
/// interrupted, the lock is free, and the next run redoes exactly the jobs
/// that had not completed.
#[test]
fn a_killed_nightly_resumes_with_only_what_is_missing() {
    let b = Business::new(300, 25);
    let (first, last) = (b.first.to_string(), b.last.to_string());
    let mut child = b
        .cmd(&["nightly", "--from", &first, "--to", &last])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Kill as soon as transform has completed: segment, voice and privacy
    // (about a second of work at this size) are still to come.
    let started = Instant::now();
    while !b.stamped("transform") {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "transform never completed"
        );
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("the nightly ended before it could be killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let done: Vec<&str> = attune::nightly::JOBS
        .iter()
        .copied()
        .filter(|j| *j == "ingest" || b.stamped(j))
        .collect();
    assert!(done.contains(&"transform"));
    assert!(
        !b.stamped("privacy"),
        "killed before the last job completed (else this test checks nothing)"
    );
    let runs = b.runs();
    assert_eq!(runs[0]["status"], "interrupted", "{runs:?}");
    // the manifest is saved after every job: the killed run says what it did
    let killed = job_statuses(&b, runs[0]["run_id"].as_str().expect("id"));
    assert_eq!(
        killed.first(),
        Some(&("ingest".to_string(), "ok".to_string())),
        "{killed:?}"
    );

    let resumed = b.nightly(&[]);
    assert_eq!(code(&resumed), Some(0), "{}", stderr(&resumed));
    let id = b.runs()[0]["run_id"].as_str().expect("id").to_string();
    let statuses = job_statuses(&b, &id);
    assert!(statuses.len() >= 5, "{statuses:?}");
    for (job, status) in &statuses {
        let want = if done.contains(&job.as_str()) {
            "skipped"
        } else {
            "ok"
        };
        assert_eq!(
            status, want,
            "{job}: {statuses:?} (done before the kill: {done:?})"
        );
    }
    let again = b.nightly(&[]);
    assert_eq!(code(&again), Some(0));
    let id = b.runs()[0]["run_id"].as_str().expect("id").to_string();
    assert!(
        job_statuses(&b, &id).iter().all(|(_, s)| s == "skipped"),
        "complete now: nothing left to do"
    );
}
