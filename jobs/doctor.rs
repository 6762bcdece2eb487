//! `attune doctor`: checks that a nightly run can work, before it runs,
//! and says what to fix.
//!
//! Checks, in order: the config parses and validates; the pseudonymization
//! key is present, long enough and not guessable (never printed: only its
//! public id); the data root can be written, read and deleted from (a probe
//! object under `runs/`); every configured table has exports in landing for
//! the date; free space on a local root (`df -Pk`); the clock against the
//! newest export and the last run; whether a run holds the lock now, and
//! whether the last run failed or was interrupted.
//!
//! A failed check maps to the exit code the nightly itself would give for
//! the same problem: configuration and key problems 2, an unusable data
//! root or missing exports 5. Warnings never change the exit code.

use std::fmt::Write as _;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use object_store::path::Path;

use crate::config::{DEMO_KEY, ValidConfig};
use crate::runs::RunSummary;
use crate::storage::{Storage, landing_dir};
use crate::{Error, Result};

/// Below this much free space on a local root, doctor warns.
const LOW_SPACE_BYTES: u64 = 1 << 30;
/// Below this estimate of a key's entropy, doctor warns it looks guessable.
const MIN_KEY_BITS: f64 = 48.0;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }
}

/// Which exit code a failed check stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Kind {
    /// Configuration or key: exit code 2.
    Config,
    /// Data root or input: exit code 5.
    Input,
}

/// One line of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub level: Level,
    pub kind: Kind,
    /// What was found (never a secret, never a row value).
    pub detail: String,
    /// What to do about a warning or failure.
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, kind: Kind, detail: impl Into<String>) -> Check {
        Check {
            name,
            level: Level::Ok,
            kind,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(
        name: &'static str,
        kind: Kind,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name,
            level: Level::Warn,
            kind,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(
        name: &'static str,
        kind: Kind,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name,
            level: Level::Fail,
            kind,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Everything doctor found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The dates whose exports were checked (none when the config is unusable).
    pub dates: Vec<NaiveDate>,
    pub checks: Vec<Check>,
}

impl Report {
    /// One line per check, and an indented `fix:` line under each problem.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for c in &self.checks {
            let _ = writeln!(s, "{:<5} {:<10} {}", c.level.label(), c.name, c.detail);
            if let Some(fix) = &c.fix {
                let _ = writeln!(s, "{:<16} fix: {fix}", "");
            }
        }
        s
    }

    /// `Ok` when no check failed; otherwise the error whose exit code fits
    /// (configuration before input, as the nightly would stop there first).
    pub fn result(&self) -> Result<()> {
        let failed: Vec<&Check> = self
            .checks
            .iter()
            .filter(|c| c.level == Level::Fail)
            .collect();
        if failed.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = failed.iter().map(|c| c.name).collect();
        let summary = format!(
            "doctor: {} check(s) failed: {}",
            failed.len(),
            names.join(", ")
        );
        if failed.iter().any(|c| c.kind == Kind::Config) {
            Err(Error::Config(summary))
        } else {
            Err(Error::MissingInput {
                what: summary,
                hint: "See the fix: lines above.".into(),
            })
        }
    }
}

/// Runs every check. `config` is the result of loading the config (its
/// error text when it did not load); `date` the date whose exports to look
/// for (default: the dates a nightly started now would process: yesterday
/// in the configured time zone, after any nights missed since the last run);
/// `now` the current time (passed in so tests can set the clock).
pub async fn run(
    config: std::result::Result<ValidConfig, String>,
    date: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> Report {
    let cfg = match config {
        Ok(cfg) => cfg,
        Err(e) => {
            return Report {
                dates: date.into_iter().collect(),
                checks: vec![Check::fail(
                    "config",
                    Kind::Config,
                    e,
                    "fix the file (`attune init --path new.toml` writes every setting with its default); \
                     the other checks need a valid config",
                )],
            };
        }
    };
    let dates = match date {
        Some(d) => vec![d],
        None => tonights_dates(&cfg, now).await,
    };
    let mut checks = vec![Check::ok(
        "config",
        Kind::Config,
        format!(
            "valid (config hash {}, root {}, {} tables, time zone {})",
            crate::manifest::config_hash_of(&cfg),
            cfg.root,
            cfg.ingest.tables.len(),
            cfg.timezone
        ),
    )];
    checks.push(check_key(
        &cfg.key_env,
        std::env::var(&cfg.key_env).ok().as_deref(),
    ));
    let storage = match Storage::configured(&cfg) {
        Ok(s) => s,
        Err(e) => {
            let kind = match e {
                Error::Config(_) => Kind::Config,
                _ => Kind::Input,
            };
            checks.push(Check::fail(
                "data root",
                kind,
                format!("cannot open {}: {e}", cfg.root),
                "set `root` in attune.toml, $ATTUNE_ROOT or --root to a folder or URL attune can write",
            ));
            return Report { dates, checks };
        }
    };
    checks.push(check_root_access(&storage).await);
    let newest = newest_landing_date(&storage, &cfg).await;
    if !dates.is_empty() {
        checks.push(check_landing(&storage, &cfg, &dates, newest).await);
    }
    checks.push(check_free_space(&storage));
    let lock_held = crate::nightly::lock::is_held_anywhere(&storage).await;
    let lock_free = matches!(lock_held, Ok(false));
    let last = crate::runs::list(&storage, 1, lock_free)
        .await
        .ok()
        .and_then(|v| v.into_iter().next());
    checks.push(check_clock(now, &cfg.timezone, newest, last.as_ref()));
    checks.push(check_lock(&storage, lock_held));
    if let Some(last) = &last {
        checks.push(check_last_run(last));
    }
    Report { dates, checks }
}

/// The dates a nightly started now would process: yesterday in the
/// business's time zone, after every night missed since the last ingest.
async fn tonights_dates(cfg: &ValidConfig, now: DateTime<Utc>) -> Vec<NaiveDate> {
    let yesterday = now.with_timezone(&cfg.timezone).date_naive().pred_opt();
    let ctx =
        match crate::context::JobContext::open(cfg.clone(), crate::context::KeyMode::NotNeeded) {
            Ok(ctx) => ctx,
            Err(_) => return yesterday.into_iter().collect(),
        };
    match crate::nightly::default_dates(&ctx, now).await {
        Ok(dates) => dates,
        Err(_) => yesterday.into_iter().collect(),
    }
}

/// The key in `$name` (its value `value`): present, at least 16 bytes, not
/// the public demo key, and not obviously guessable. Never shows the key,
/// only its public id.
pub fn check_key(name: &str, value: Option<&str>) -> Check {
    let Some(value) = value else {
        return Check::fail(
            "key",
            Kind::Config,
            format!(
                "${name} is not set: ingest and nightly refuse to run without the pseudonymization key"
            ),
            format!(
                "export {name}=$(openssl rand -hex 32) once, store it in your secret manager, and set the same value every night"
            ),
        );
    };
    if value.len() < 16 {
        return Check::fail(
            "key",
            Kind::Config,
            format!("${name} is {} bytes; at least 16 are needed", value.len()),
            "use a long random secret, e.g. `openssl rand -hex 32`",
        );
    }
    if value == DEMO_KEY {
        return Check::fail(
            "key",
            Kind::Config,
            format!("${name} holds the public demo key: anyone could reverse the pseudonyms"),
            "use a secret of your own, e.g. `openssl rand -hex 32`",
        );
    }
    let id = crate::config::Key::new(value.as_bytes().to_vec()).id();
    let bits = entropy_bits(value);
    if bits < MIN_KEY_BITS {
        return Check::warn(
            "key",
            Kind::Config,
            format!(
                "${name} is set (key id {id}) but looks guessable (about {bits:.0} bits of entropy from its characters)"
            ),
            "prefer a random secret, e.g. `openssl rand -hex 32`; changing the key changes every pseudonym, so re-ingest everything when you do",
        );
    }
    Check::ok(
        "key",
        Kind::Config,
        format!("${name} is set, {} bytes (key id {id})", value.len()),
    )
}

/// An estimate of a secret's entropy: its length times the Shannon entropy
/// of its character frequencies. It overestimates structured secrets
/// (`Password123456789` scores well) but catches repeated or tiny alphabets.
fn entropy_bits(s: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    let mut n = 0usize;
    for c in s.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
        n += 1;
    }
    let per_char: f64 = counts
        .values()
        .map(|&c| {
            let p = c as f64 / n as f64;
            -p * p.log2()
        })
        .sum();
    per_char * n as f64
}

/// Writes, reads back and deletes a probe object under `runs/`.
async fn check_root_access(storage: &Storage) -> Check {
    let where_ = storage.url().to_string();
    let nonce: u64 = rand::random();
    let path = Path::from(format!("runs/.doctor-probe-{nonce:016x}"));
    let payload = Bytes::from(format!("attune doctor probe {nonce:016x}"));
    let started = std::time::Instant::now();
    let probe = async {
        storage.put(&path, payload.clone()).await?;
        let back = storage.get_bytes(&path).await;
        storage.delete(&path).await?;
        if back? != payload {
            return Err(Error::Internal(
                "the probe read back different bytes".into(),
            ));
        }
        if storage.head_opt(&path).await?.is_some() {
            return Err(Error::Internal(
                "the probe is still there after delete".into(),
            ));
        }
        Ok(())
    };
    match probe.await {
        Ok(()) => Check::ok(
            "data root",
            Kind::Input,
            format!(
                "{where_}: write, read and delete work ({:.0} ms)",
                started.elapsed().as_secs_f64() * 1000.0
            ),
        ),
        Err(e) => Check::fail(
            "data root",
            Kind::Input,
            format!("{where_}: {e}"),
            "give the user running attune read, write and delete rights on the root (or the bucket), and check credentials in the environment",
        ),
    }
}

/// The newest date any configured table has a landing folder for.
async fn newest_landing_date(storage: &Storage, cfg: &ValidConfig) -> Option<NaiveDate> {
    let mut newest = None;
    for t in &cfg.ingest.tables {
        let Ok(dirs) = storage.list_dirs(&Path::from(format!("landing/{t}"))).await else {
            continue;
        };
        for d in dirs {
            if let Ok(d) = NaiveDate::parse_from_str(&d, "%Y-%m-%d") {
                newest = newest.max(Some(d));
            }
        }
    }
    newest
}

/// Which configured tables have exports for each of `dates`.
async fn check_landing(
    storage: &Storage,
    cfg: &ValidConfig,
    dates: &[NaiveDate],
    newest: Option<NaiveDate>,
) -> Check {
    let mut missing: Vec<(NaiveDate, &str)> = Vec::new();
    let mut files = 0usize;
    let mut bytes = 0u64;
    for date in dates {
        for t in &cfg.ingest.tables {
            match storage.list(&landing_dir(t, *date)).await {
                Ok(listed) if !listed.is_empty() => {
                    files += listed.len();
                    bytes += listed.iter().map(|m| m.size).sum::<u64>();
                }
                Ok(_) => missing.push((*date, t.as_str())),
                Err(e) => {
                    return Check::fail(
                        "landing",
                        Kind::Input,
                        format!("cannot list landing/ for {date}: {e}"),
                        "check the data root's permissions",
                    );
                }
            }
        }
    }
    let span = match dates {
        [] => "no dates".to_string(),
        [one] => one.to_string(),
        [first, .., last] => format!("{first} … {last} ({} nights)", dates.len()),
    };
    if missing.is_empty() {
        return Check::ok(
            "landing",
            Kind::Input,
            format!(
                "{span}: all {} tables exported ({files} files, {:.1} MiB)",
                cfg.ingest.tables.len(),
                bytes as f64 / (1024.0 * 1024.0)
            ),
        );
    }
    let newest = match newest {
        Some(n) => format!("; newest export on the root: {n}"),
        None => "; landing/ has no exports at all".into(),
    };
    // Grouped by date: a day without any export is one item, not nine.
    let mut by_date: Vec<(NaiveDate, Vec<&str>)> = Vec::new();
    for (d, t) in &missing {
        match by_date.last_mut() {
            Some((last, tables)) if last == d => tables.push(t),
            _ => by_date.push((*d, vec![t])),
        }
    }
    let all = cfg.ingest.tables.len();
    let listed: Vec<String> = by_date
        .iter()
        .take(6)
        .map(|(d, tables)| match (dates.len(), tables.len()) {
            (1, _) => tables.join(", "),
            (_, n) if n == all => format!("{d} (every table)"),
            _ => format!("{d} ({})", tables.join(", ")),
        })
        .collect();
    let more = match by_date.len() {
        n if n > 6 => format!(" and {} more dates", n - 6),
        _ => String::new(),
    };
    let (date, table) = missing[0];
    Check::fail(
        "landing",
        Kind::Input,
        format!(
            "{span}: {} of {} table exports missing: {}{more}{newest}",
            missing.len(),
            cfg.ingest.tables.len() * dates.len(),
            listed.join(", ")
        ),
        format!(
            "export them to landing/<table>/<date>/ (e.g. landing/{table}/{date}/), check --date, or remove the tables from [ingest] tables"
        ),
    )
}

/// Free space on a local root, from `df -Pk` (POSIX output format, so the
/// columns are the same on Linux, macOS and BusyBox).
fn check_free_space(storage: &Storage) -> Check {
    let Some(root) = storage.local_root() else {
        return Check::ok("space", Kind::Input, "object store: no free space to check");
    };
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(root)
        .output();
    let parsed = match &out {
        Ok(o) if o.status.success() => parse_df(&String::from_utf8_lossy(&o.stdout)),
        _ => None,
    };
    match parsed {
        None => Check::warn(
            "space",
            Kind::Input,
            format!(
                "free space on {} unknown (`df -Pk` did not answer)",
                root.display()
            ),
            "check free space by hand; a full disk fails the run midway (it resumes once space is freed)",
        ),
        Some((avail, mount)) if avail < LOW_SPACE_BYTES => Check::warn(
            "space",
            Kind::Input,
            format!(
                "{:.0} MiB free on {mount}",
                avail as f64 / (1024.0 * 1024.0)
            ),
            low_space_fix(storage.codec()),
        ),
        Some((avail, mount)) => Check::ok(
            "space",
            Kind::Input,
            format!(
                "{:.1} GiB free on {mount}",
                avail as f64 / (1024.0 * 1024.0 * 1024.0)
            ),
        ),
    }
}

/// What to do about low space: with uncompressed files, zstd is one way.
fn low_space_fix(codec: crate::parquet_io::Codec) -> &'static str {
    match codec {
        crate::parquet_io::Codec::None => {
            "free space or move the root: a night writes lake and mart partitions about the size of the day's exports, plus marts (`compression = \"zstd\"` in attune.toml writes about a third of that)"
        }
        crate::parquet_io::Codec::Zstd => {
            "free space or move the root: a night writes lake and mart partitions about a third of the size of the day's exports, plus marts"
        }
    }
}

/// (available bytes, mount point) from `df -Pk` output.
fn parse_df(text: &str) -> Option<(u64, String)> {
    let line = text.lines().nth(1)?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    // Filesystem 1024-blocks Used Available Capacity Mounted-on (the mount
    // point may contain spaces: it is everything from the sixth field on).
    let avail_kib: u64 = fields.get(3)?.parse().ok()?;
    let mount = fields.get(5..).filter(|m| !m.is_empty())?.join(" ");
    Some((avail_kib * 1024, mount))
}

/// The clock against the newest export and the last run's start.
fn check_clock(
    now: DateTime<Utc>,
    tz: &chrono_tz::Tz,
    newest: Option<NaiveDate>,
    last: Option<&RunSummary>,
) -> Check {
    let today = now.with_timezone(tz).date_naive();
    let now_text = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if let Some(last) = last
        && let Ok(started) = DateTime::parse_from_rfc3339(&last.started_at)
        && started.with_timezone(&Utc) > now
    {
        return Check::warn(
            "clock",
            Kind::Input,
            format!(
                "now is {now_text}, before the last run's start ({}, run {})",
                last.started_at, last.run_id
            ),
            "fix the system clock (NTP): run ids, default dates and the catch-up of missed nights depend on it",
        );
    }
    if let Some(n) = newest
        && n > today
    {
        return Check::warn(
            "clock",
            Kind::Input,
            format!("today is {today} in {tz}, but landing/ has exports dated {n}"),
            "fix the system clock or [nightly] timezone; exports dated in the future are never picked up by default dates",
        );
    }
    let detail = match newest {
        Some(n) => format!(
            "{now_text} ({today} in {tz}); newest export {n}, {} day(s) ago",
            (today - n).num_days()
        ),
        None => format!("{now_text} ({today} in {tz})"),
    };
    Check::ok("clock", Kind::Input, detail)
}

/// Whether a run holds the data root's lock.
fn check_lock(storage: &Storage, held: Result<bool>) -> Check {
    let path = crate::nightly::lock::lock_path(storage);
    match held {
        Ok(false) => Check::ok(
            "lock",
            Kind::Input,
            format!("free: no run in progress ({})", path.display()),
        ),
        Ok(true) => Check::warn(
            "lock",
            Kind::Input,
            format!("a run is in progress: {} is held", path.display()),
            "wait for it to finish; a run started now exits with code 4 (the lock goes with the process, so a dead run never holds it)",
        ),
        Err(e) => Check::warn(
            "lock",
            Kind::Input,
            format!("cannot probe the lock: {e}"),
            "check permissions on the lock file's folder",
        ),
    }
}

/// The last run: a failure or an interruption is worth a warning.
fn check_last_run(last: &RunSummary) -> Check {
    let what = format!(
        "{} ({}, dates {}): {}",
        last.run_id,
        last.command,
        match last.dates.as_slice() {
            [] => "-".to_string(),
            [one] => one.clone(),
            [a, .., b] => format!("{a} … {b}"),
        },
        last.status
    );
    match last.status.as_str() {
        "ok" | "running" => Check::ok("last run", Kind::Input, what),
        "interrupted" => Check::warn("last run", Kind::Input, what, resume_advice(last)),
        _ => Check::warn(
            "last run",
            Kind::Input,
            what,
            format!("see `attune runs show {}`", last.run_id),
        ),
    }
}

/// How to finish what an interrupted run left: the nightly resumes on its
/// own (stamps skip the jobs it finished); a standalone command does not,
/// and is run again for its dates (each partition it writes is replaced
/// whole, so a re-run completes it).
fn resume_advice(last: &RunSummary) -> String {
    let dates = match last.dates.as_slice() {
        [] => String::new(),
        [one] => format!(" --date {one}"),
        [a, .., b] => format!(" --from {a} --to {b}"),
    };
    match last.command.as_str() {
        "nightly" => "the next nightly redoes only what it did not finish".into(),
        "forget" => {
            "run `attune forget` again (with any id): it completes interrupted requests first"
                .into()
        }
        "retention" => format!("run `attune retention{dates}` again to finish it"),
        command => format!(
            "run `attune {command}{dates}` again: the next nightly does not redo a standalone {command}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The low-space advice suggests zstd only where files are not
    /// compressed already.
    #[test]
    fn low_space_advice_names_zstd_only_for_uncompressed_files() {
        use crate::parquet_io::Codec;
        assert!(low_space_fix(Codec::None).contains("compression = \"zstd\""));
        assert!(!low_space_fix(Codec::Zstd).contains("compression"));
    }

    #[test]
    fn key_checks_never_show_the_key() {
        let secret = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let c = check_key("ATTUNE_KEY", Some(secret));
        assert_eq!(c.level, Level::Ok, "{c:?}");
        assert!(!c.detail.contains(secret) && !c.detail.contains(&secret[..16]));
        assert!(c.detail.contains("key id"));

        let missing = check_key("MY_KEY", None);
        assert_eq!((missing.level, missing.kind), (Level::Fail, Kind::Config));
        assert!(missing.detail.contains("$MY_KEY"));
        assert_eq!(check_key("K", Some("short")).level, Level::Fail);
        assert_eq!(check_key("K", Some(DEMO_KEY)).level, Level::Fail);
        let weak = check_key("K", Some("aaaaaaaaaaaaaaaaaaaaaaaa"));
        assert_eq!(weak.level, Level::Warn);
        assert!(!weak.detail.contains("aaaa"));
    }

    #[test]
    fn entropy_estimate_matches_hand_computation() {
        // 16 distinct characters: log2(16) = 4 bits each, 64 in all.
        assert!((entropy_bits("0123456789abcdef") - 64.0).abs() < 1e-9);
        // Two characters, equally often: 1 bit each.
        assert!((entropy_bits("abababababababab") - 16.0).abs() < 1e-9);
        assert_eq!(entropy_bits("zzzzzzzzzzzzzzzzzz"), 0.0);
    }

    #[test]
    fn df_output_is_parsed_posix_style() {
        let linux = "Filesystem     1024-blocks      Used Available Capacity Mounted on\n\
                     /dev/sda1        102400000  51200000  48000000      52% /srv/attune data\n";
        assert_eq!(
            parse_df(linux),
            Some((48_000_000 * 1024, "/srv/attune data".to_string()))
        );
        assert_eq!(parse_df("Filesystem 1024-blocks\n"), None);
        assert_eq!(parse_df(""), None);
    }

    fn summary(started: &str, status: &str) -> RunSummary {
        RunSummary {
            run_id: "20250314T020000Z-00000001".into(),
            command: "nightly".into(),
            started_at: started.into(),
            finished_at: None,
            dates: vec!["2025-03-13".into()],
            status: status.into(),
            seconds: None,
            jobs_ok: 0,
            jobs_failed: 0,
            jobs_skipped: 0,
        }
    }

    #[test]
    fn a_clock_before_the_last_run_or_the_exports_warns() {
        let tz = chrono_tz::Europe::Berlin;
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        let last = summary("2025-03-14T02:00:00.000Z", "ok");
        let fine = check_clock(
            at("2025-03-15T02:00:00Z"),
            &tz,
            Some(d("2025-03-14")),
            Some(&last),
        );
        assert_eq!(fine.level, Level::Ok, "{fine:?}");
        let behind = check_clock(at("2025-03-14T01:00:00Z"), &tz, None, Some(&last));
        assert_eq!(behind.level, Level::Warn);
        assert!(behind.detail.contains("before the last run"));
        // 23:30 UTC on 03-14 is 03-15 in Berlin: an export dated 03-15 is not
        // in the future there, one dated 03-16 is.
        let late = at("2025-03-14T23:30:00Z");
        assert_eq!(
            check_clock(late, &tz, Some(d("2025-03-15")), None).level,
            Level::Ok
        );
        assert_eq!(
            check_clock(late, &tz, Some(d("2025-03-16")), None).level,
            Level::Warn
        );
    }

    #[test]
    fn failed_checks_map_to_the_nightlys_exit_codes() {
        let report = |kinds: &[(Level, Kind)]| Report {
            dates: Vec::new(),
            checks: kinds
                .iter()
                .map(|(l, k)| Check {
                    name: "x",
                    level: *l,
                    kind: *k,
                    detail: String::new(),
                    fix: None,
                })
                .collect(),
        };
        assert!(
            report(&[(Level::Ok, Kind::Config), (Level::Warn, Kind::Input)])
                .result()
                .is_ok()
        );
        assert!(matches!(
            report(&[(Level::Fail, Kind::Input)]).result(),
            Err(Error::MissingInput { .. })
        ));
        assert!(matches!(
            report(&[(Level::Fail, Kind::Input), (Level::Fail, Kind::Config)]).result(),
            Err(Error::Config(_))
        ));
        assert_eq!(
            check_last_run(&summary("x", "interrupted")).level,
            Level::Warn
        );
        assert_eq!(check_last_run(&summary("x", "failed")).level, Level::Warn);
        // the advice for an interruption says what finishes it
        let interrupted = |command: &str, dates: &[&str]| RunSummary {
            command: command.into(),
            dates: dates.iter().map(|d| d.to_string()).collect(),
            ..summary("x", "interrupted")
        };
        for (run, advice) in [
            (interrupted("nightly", &["2025-03-13"]), "the next nightly"),
            (
                interrupted("ingest", &["2025-03-01", "2025-03-02", "2025-03-13"]),
                "run `attune ingest --from 2025-03-01 --to 2025-03-13` again",
            ),
            (
                interrupted("ingest", &["2025-03-13"]),
                "attune ingest --date 2025-03-13",
            ),
            (interrupted("forget", &[]), "run `attune forget` again"),
            (
                interrupted("retention", &["2025-03-13"]),
                "attune retention --date 2025-03-13",
            ),
        ] {
            let check = check_last_run(&run);
            let fix = check.fix.unwrap_or_default();
            assert!(fix.contains(advice), "{}: {fix}", run.command);
        }
        assert_eq!(check_last_run(&summary("x", "ok")).level, Level::Ok);
    }
}
