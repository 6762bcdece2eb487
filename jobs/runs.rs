//! `attune runs`: the run manifests under `runs/`, newest first, and one
//! manifest shown readably.
//!
//! Run ids start with their UTC start time (`20250314T020000Z-1a2b3c4d`), so
//! sorting ids sorts runs by start. A manifest still saying `running` while
//! nobody holds the data root's lock belongs to a run that died (killed,
//! out of memory, machine rebooted): it is shown as `interrupted`; the next
//! nightly redoes what it did not finish.

use std::fmt::Write as _;

use object_store::path::Path;

use crate::manifest::{JobRecord, RunManifest};
use crate::storage::Storage;
use crate::{Error, Result};

/// One line of `attune runs`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub command: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub dates: Vec<String>,
    /// `ok`, `failed`, `gate_tripped`, `running`, `interrupted` or
    /// `unreadable` (a manifest that is not valid JSON).
    pub status: String,
    /// Wall-clock seconds from start to finish; `None` until it finishes.
    pub seconds: Option<f64>,
    pub jobs_ok: usize,
    pub jobs_failed: usize,
    pub jobs_skipped: usize,
}

impl RunSummary {
    fn of(m: &RunManifest, lock_free: bool) -> RunSummary {
        let count = |s: &str| m.jobs.iter().filter(|j| j.status == s).count();
        let status = if m.status == "running" && lock_free {
            "interrupted".to_string()
        } else {
            m.status.clone()
        };
        RunSummary {
            run_id: m.run_id.clone(),
            command: m.command.clone(),
            started_at: m.started_at.clone(),
            finished_at: m.finished_at.clone(),
            dates: m.dates.clone(),
            status,
            seconds: m
                .finished_at
                .as_deref()
                .and_then(|f| seconds_between(&m.started_at, f)),
            jobs_ok: count("ok"),
            jobs_failed: count("failed"),
            jobs_skipped: count("skipped"),
        }
    }
}

/// The ids of every run manifest, newest first.
pub async fn ids(storage: &Storage) -> Result<Vec<String>> {
    let listed = storage
        .store()
        .list_with_delimiter(Some(&Path::from("runs")))
        .await?;
    let mut ids: Vec<String> = listed
        .objects
        .iter()
        .filter_map(|o| o.location.filename())
        // not the lock's files (`.lock`, a remote root's `.lease.json`)
        .filter(|n| !n.starts_with('.'))
        .filter_map(|n| n.strip_suffix(".json"))
        .map(str::to_string)
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    Ok(ids)
}

/// The newest `limit` runs, newest first. `lock_free` says whether no run
/// holds the data root's lock now (see [`crate::nightly::lock::is_held`]).
pub async fn list(storage: &Storage, limit: usize, lock_free: bool) -> Result<Vec<RunSummary>> {
    let ids = ids(storage).await?;
    // Ids order runs to the second only (then a random suffix): load every
    // run of the boundary second too, and order by the start in milliseconds.
    let second = |id: &str| id.split('-').next().unwrap_or_default().to_string();
    let mut n = limit.min(ids.len());
    while n > 0 && n < ids.len() && second(&ids[n]) == second(&ids[n - 1]) {
        n += 1;
    }
    let mut out = Vec::new();
    for id in ids.into_iter().take(n) {
        out.push(match RunManifest::load(storage, &id).await {
            Ok(m) => RunSummary::of(&m, lock_free),
            Err(_) => RunSummary {
                run_id: id,
                command: String::new(),
                started_at: String::new(),
                finished_at: None,
                dates: Vec::new(),
                status: "unreadable".into(),
                seconds: None,
                jobs_ok: 0,
                jobs_failed: 0,
                jobs_skipped: 0,
            },
        });
    }
    // RFC 3339 UTC timestamps of one format sort as text.
    out.sort_by(|a, b| (&b.started_at, &b.run_id).cmp(&(&a.started_at, &a.run_id)));
    out.truncate(limit);
    Ok(out)
}

/// Finds a run by id, by a prefix that only one id has, or `latest`.
/// An unknown id is [`Error::MissingInput`] naming the nearest ids.
pub async fn find(storage: &Storage, wanted: &str) -> Result<RunManifest> {
    let ids = ids(storage).await?;
    if wanted == "latest" && !ids.is_empty() {
        // The newest by start time, not by id (ids are to the second).
        let newest = list(storage, 1, true).await?;
        if let Some(r) = newest.first() {
            return RunManifest::load(storage, &r.run_id).await;
        }
    }
    let id = resolve(&ids, wanted)?;
    RunManifest::load(storage, id).await
}

/// Picks the id `wanted` means among `ids` (newest first).
fn resolve<'a>(ids: &'a [String], wanted: &str) -> Result<&'a str> {
    if wanted == "latest" {
        return ids
            .first()
            .map(String::as_str)
            .ok_or_else(|| Error::MissingInput {
                what: "no run manifests under runs/".into(),
                hint: "Run `attune nightly` first.".into(),
            });
    }
    if let Some(id) = ids.iter().find(|i| *i == wanted) {
        return Ok(id);
    }
    let prefixed: Vec<&String> = ids.iter().filter(|i| i.starts_with(wanted)).collect();
    if let [one] = prefixed.as_slice() {
        return Ok(one);
    }
    let (what, near): (String, Vec<&str>) = if prefixed.len() > 1 {
        (
            format!(
                "run id `{wanted}` is ambiguous ({} runs start with it)",
                prefixed.len()
            ),
            prefixed.iter().take(5).map(|s| s.as_str()).collect(),
        )
    } else {
        (
            format!("no run `{wanted}` under runs/"),
            nearest(ids, wanted, 5),
        )
    };
    let hint = if near.is_empty() {
        "There are no run manifests yet.".to_string()
    } else {
        format!(
            "Nearest: {}. `attune runs` lists them all.",
            near.join(", ")
        )
    };
    Err(Error::MissingInput { what, hint })
}

/// The `n` ids closest to `wanted`: longest common prefix first (ids are
/// timestamps, so that is closest in time to what was typed), then edit
/// distance (a typo in the random suffix).
fn nearest<'a>(ids: &'a [String], wanted: &str, n: usize) -> Vec<&'a str> {
    let mut scored: Vec<(usize, usize, &str)> = ids
        .iter()
        .map(|id| {
            let common = id
                .chars()
                .zip(wanted.chars())
                .take_while(|(a, b)| a == b)
                .count();
            (usize::MAX - common, edit_distance(id, wanted), id.as_str())
        })
        .collect();
    scored.sort();
    scored.into_iter().take(n).map(|(_, _, id)| id).collect()
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn seconds_between(start: &str, end: &str) -> Option<f64> {
    let s = chrono::DateTime::parse_from_rfc3339(start).ok()?;
    let e = chrono::DateTime::parse_from_rfc3339(end).ok()?;
    Some((e - s).num_milliseconds() as f64 / 1000.0)
}

/// The dates of a run, short: `2025-03-14` or `2025-03-01 … 2025-03-14 (14)`.
fn dates_text(dates: &[String]) -> String {
    match dates {
        [] => "-".into(),
        [one] => one.clone(),
        [first, .., last] => format!("{first} … {last} ({})", dates.len()),
    }
}

fn duration_text(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 60.0 => format!("{s:.1}s"),
        Some(s) if s < 3600.0 => format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64),
        Some(s) => format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        ),
    }
}

fn bytes_text(b: Option<u64>) -> String {
    match b {
        None => "-".into(),
        Some(b) => format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// The table `attune runs` prints.
pub fn render_list(runs: &[RunSummary]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<26} {:<20} {:<28} {:<12} {:>8} {:>4} {:>6} {:>7}",
        "run", "started (UTC)", "dates", "status", "duration", "ok", "failed", "skipped"
    );
    for r in runs {
        let started = r
            .started_at
            .get(..19)
            .unwrap_or(&r.started_at)
            .replace('T', " ");
        let _ = writeln!(
            s,
            "{:<26} {:<20} {:<28} {:<12} {:>8} {:>4} {:>6} {:>7}",
            r.run_id,
            started,
            dates_text(&r.dates),
            r.status,
            duration_text(r.seconds),
            r.jobs_ok,
            r.jobs_failed,
            r.jobs_skipped
        );
    }
    s
}

/// One manifest, readably: the run, then a line per job, then each job's
/// warnings and error.
pub fn render_manifest(m: &RunManifest, lock_free: bool) -> String {
    let summary = RunSummary::of(m, lock_free);
    let mut s = String::new();
    let _ = writeln!(s, "run        {}", m.run_id);
    let _ = writeln!(s, "command    attune {}", m.command);
    let _ = writeln!(s, "status     {}", summary.status);
    let _ = writeln!(s, "dates      {}", dates_text(&m.dates));
    let _ = writeln!(
        s,
        "started    {}   finished {}   ({})",
        m.started_at,
        m.finished_at.as_deref().unwrap_or("-"),
        duration_text(summary.seconds)
    );
    let _ = writeln!(s, "version    attune {}", m.attune_version);
    let _ = writeln!(s, "config     {}", m.config_hash);
    let key = match (&m.key_id, m.demo_key) {
        (None, _) => "none (no job of this run needed it)".to_string(),
        (Some(id), true) => format!("{id} (the public demo key: pseudonyms are not protected)"),
        (Some(id), false) => id.clone(),
    };
    let _ = writeln!(s, "key id     {key}");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<12} {:<8} {:<24} {:>9} {:>12} {:>12} {:>10} {:>10} {:>12} {:>8}",
        "job",
        "status",
        "started (UTC)",
        "seconds",
        "rows in",
        "rows out",
        "in use",
        "resident",
        "process peak",
        "warnings"
    );
    for j in &m.jobs {
        let _ = writeln!(
            s,
            "{:<12} {:<8} {:<24} {:>9.2} {:>12} {:>12} {:>10} {:>10} {:>12} {:>8}",
            j.job,
            j.status,
            j.started_at.replace('T', " ").trim_end_matches('Z'),
            j.seconds,
            j.rows_in,
            j.rows_out,
            bytes_text(j.job_peak_in_use_bytes),
            bytes_text(j.job_peak_rss_bytes),
            bytes_text(j.peak_rss_bytes),
            j.warnings.len()
        );
    }
    if m.jobs
        .iter()
        .any(|j| j.peak_rss_bytes.is_some() || j.job_peak_in_use_bytes.is_some())
    {
        let _ = writeln!(
            s,
            "(in use: the most heap memory in use while the job ran, its own; resident: the process's resident memory then, with what earlier jobs freed and the allocator keeps for reuse; process peak: the process's high-water mark when it ended)"
        );
    }
    for j in &m.jobs {
        write_notes(&mut s, &m.run_id, j);
    }
    s
}

fn write_notes(s: &mut String, run_id: &str, j: &JobRecord) {
    if let Some(e) = &j.error {
        let _ = writeln!(s, "\n{} failed: {e}", j.job);
    }
    if !j.warnings.is_empty() {
        let _ = writeln!(s, "\n{} warnings:", j.job);
        for w in j.warnings.iter().take(20) {
            let _ = writeln!(s, "  - {w}");
        }
        if j.warnings.len() > 20 {
            let _ = writeln!(
                s,
                "  … and {} more (attune runs show {run_id} --json)",
                j.warnings.len() - 20
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ids_resolve_exactly_by_unique_prefix_or_latest() {
        let all = ids(&[
            "20250315T020000Z-aaaa0001",
            "20250314T020000Z-bbbb0002",
            "20250314T020000Z-cccc0003",
        ]);
        assert_eq!(resolve(&all, "latest").expect("latest"), all[0]);
        assert_eq!(resolve(&all, &all[1]).expect("exact"), all[1]);
        assert_eq!(resolve(&all, "20250315").expect("prefix"), all[0]);
        let ambiguous = resolve(&all, "20250314").expect_err("two runs that day");
        let text = ambiguous.to_string();
        assert!(text.contains("ambiguous") && text.contains(&all[1]) && text.contains(&all[2]));
        assert!(matches!(ambiguous, Error::MissingInput { .. }));
    }

    #[test]
    fn an_unknown_id_names_the_nearest() {
        let all = ids(&[
            "20250316T020000Z-dddd0004",
            "20250315T020000Z-aaaa0001",
            "20240101T020000Z-eeee0005",
        ]);
        // A typo in the suffix of the 03-15 run: that run is nearest.
        let err = resolve(&all, "20250315T020000Z-aaaa0002").expect_err("unknown");
        let text = err.to_string();
        let near = text.split("Nearest: ").nth(1).expect("nearest list");
        assert!(near.starts_with("20250315T020000Z-aaaa0001"), "{text}");
        assert!(
            near.find("20250316").expect("listed") < near.find("20240101").expect("listed"),
            "closer in time first: {text}"
        );
        let none = resolve(&[], "x").expect_err("empty");
        assert!(none.to_string().contains("no run manifests yet"), "{none}");
    }

    #[test]
    fn edit_distance_matches_hand_counts() {
        // kitten -> sitting: the textbook example, 3 edits.
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn durations_and_dates_read_well() {
        assert_eq!(duration_text(Some(4.25)), "4.2s");
        assert_eq!(duration_text(Some(125.0)), "2m05s");
        assert_eq!(duration_text(Some(7380.0)), "2h03m");
        assert_eq!(duration_text(None), "-");
        assert_eq!(
            seconds_between("2025-03-14T02:00:00.000Z", "2025-03-14T02:01:30.500Z"),
            Some(90.5)
        );
        assert_eq!(
            dates_text(&ids(&["2025-03-01", "2025-03-02", "2025-03-03"])),
            "2025-03-01 … 2025-03-03 (3)"
        );
    }
}
