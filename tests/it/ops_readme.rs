//! The README's Operations section is run as written: its crontab line,
//! systemd units and Kubernetes CronJob are extracted from README.md and
//! checked with the tools the machine has (`systemd-analyze verify`,
//! PyYAML), and always with checks of their own (cron fields, INI sections
//! and keys, the CronJob's structure), so a typo in the README fails here.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md")
}

/// The bodies of the fenced code blocks whose info string is `lang`.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) if info.trim() == lang => current = Some(String::new()),
            (Some(body), Some(_)) => {
                out.push(std::mem::take(body));
                current = None;
            }
            (Some(body), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

/// Whether `field` is a valid cron field for values `min..=max`: `*`, a
/// number, a range `a-b`, each optionally with `/step`, in a comma list.
fn cron_field_ok(field: &str, min: u32, max: u32) -> bool {
    let num = |s: &str| s.parse::<u32>().ok().filter(|n| (min..=max).contains(n));
    field.split(',').all(|item| {
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (item, None),
        };
        let step_ok = step.is_none_or(|s| s.parse::<u32>().is_ok_and(|n| n > 0));
        let base_ok = match base.split_once('-') {
            _ if base == "*" => true,
            Some((a, b)) => matches!((num(a), num(b)), (Some(a), Some(b)) if a <= b),
            None => num(base).is_some(),
        };
        step_ok && base_ok
    })
}

/// Checks a crontab line (5 time fields, then a command); returns the command.
fn check_crontab_line(line: &str) -> Result<String, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 6 {
        return Err(format!("fewer than 5 fields and a command: {line}"));
    }
    let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    for (i, (f, (lo, hi))) in fields.iter().zip(ranges).enumerate() {
        if !cron_field_ok(f, lo, hi) {
            return Err(format!("field {} `{f}` is not valid for {lo}-{hi}", i + 1));
        }
    }
    let command = fields[5..].join(" ");
    // cron turns an unescaped % into a newline.
    if command.contains('%') {
        return Err("the command has a % (cron reads it as a newline)".into());
    }
    Ok(command)
}

#[test]
fn cron_checks_reject_what_cron_rejects() {
    for ok in ["*", "30", "0-59", "*/15", "1,15,30", "1-5/2"] {
        assert!(cron_field_ok(ok, 0, 59), "{ok}");
    }
    for bad in ["60", "5-2", "*/0", "x", "", "1,,2"] {
        assert!(!cron_field_ok(bad, 0, 59), "{bad}");
    }
    assert!(check_crontab_line("30 2 * * * attune nightly").is_ok());
    assert!(check_crontab_line("30 24 * * * attune nightly").is_err());
    assert!(check_crontab_line("30 2 * * attune").is_err());
    assert!(check_crontab_line("30 2 * * * date +%F").is_err());
}

#[test]
fn readme_crontab_line_is_valid() {
    let blocks = blocks(&readme(), "crontab");
    assert_eq!(blocks.len(), 1, "one crontab block");
    let lines: Vec<&str> = blocks[0]
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    assert_eq!(lines.len(), 1, "one crontab line: {lines:?}");
    let command = check_crontab_line(lines[0]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        command.contains("attune") && command.contains("nightly") && !command.contains("--date"),
        "runs the nightly with its default dates (catch-up included): {command}"
    );
    // The command is valid sh.
    let out = Command::new("sh")
        .args(["-n", "-c", &command])
        .output()
        .expect("sh");
    crate::common::assert_succeeded(&out);
}

/// `[section] -> key -> values` of an INI unit file; errors on lines that
/// are neither comments, sections nor `key=value`.
fn parse_unit(text: &str) -> Result<BTreeMap<String, BTreeMap<String, Vec<String>>>, String> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_string());
            out.entry(name.to_string()).or_default();
            continue;
        }
        let (Some(s), Some((k, v))) = (&section, line.split_once('=')) else {
            return Err(format!(
                "line {}: not `key=value` in a section: {line}",
                n + 1
            ));
        };
        out.entry(s.clone())
            .or_default()
            .entry(k.trim().to_string())
            .or_default()
            .push(v.trim().to_string());
    }
    Ok(out)
}

type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn value<'a>(unit: &'a Unit, section: &str, key: &str) -> Option<&'a str> {
    unit.get(section)?.get(key)?.last().map(String::as_str)
}

/// The keys a nightly service and its timer must have.
fn check_units(service: &Unit, timer: &Unit) -> Result<(), String> {
    let want = |u: &Unit, s: &str, k: &str, v: Option<&str>| match (value(u, s, k), v) {
        (None, _) => Err(format!("[{s}] {k} missing")),
        (Some(got), Some(v)) if got != v => Err(format!("[{s}] {k}={got}, want {v}")),
        _ => Ok(()),
    };
    want(service, "Unit", "Description", None)?;
    want(service, "Service", "Type", Some("oneshot"))?;
    want(service, "Service", "ExecStart", None)?;
    let exec = value(service, "Service", "ExecStart").unwrap_or_default();
    if !exec.starts_with('/') || !exec.contains(" nightly") {
        return Err(format!(
            "ExecStart must be an absolute path running nightly: {exec}"
        ));
    }
    want(timer, "Timer", "OnCalendar", None)?;
    want(timer, "Timer", "Persistent", Some("true"))?;
    want(timer, "Install", "WantedBy", Some("timers.target"))?;
    Ok(())
}

fn systemd_analyze() -> bool {
    Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn readme_systemd_units_are_valid() {
    let units: BTreeMap<String, String> = blocks(&readme(), "ini")
        .into_iter()
        .filter_map(|b| {
            let name = b
                .lines()
                .next()?
                .strip_prefix("# /etc/systemd/system/")?
                .trim()
                .to_string();
            Some((name, b))
        })
        .collect();
    let names: Vec<&String> = units.keys().collect();
    assert_eq!(
        names,
        vec!["attune-nightly.service", "attune-nightly.timer"],
        "a service and its timer, named alike so the timer starts the service"
    );
    let parsed: BTreeMap<&String, Unit> = units
        .iter()
        .map(|(n, b)| (n, parse_unit(b).unwrap_or_else(|e| panic!("{n}: {e}"))))
        .collect();
    let service = &parsed[&"attune-nightly.service".to_string()];
    let timer = &parsed[&"attune-nightly.timer".to_string()];
    check_units(service, timer).unwrap_or_else(|e| panic!("{e}"));

    // The checks fail on a timer without Persistent=true.
    let mut forgetful = timer.clone();
    forgetful
        .get_mut("Timer")
        .expect("Timer")
        .remove("Persistent");
    assert!(check_units(service, &forgetful).is_err());

    if !systemd_analyze() {
        eprintln!("note: systemd-analyze not found; the units were checked by their keys only");
        return;
    }
    // verify needs ExecStart's program to exist: the README's install path
    // becomes this build's binary.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut paths = Vec::new();
    for (name, body) in &units {
        let body = body.replace("/usr/local/bin/attune", env!("CARGO_BIN_EXE_attune"));
        let p = dir.path().join(name);
        std::fs::write(&p, body).expect("write unit");
        paths.push(p);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .expect("systemd-analyze");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
    let calendar = value(timer, "Timer", "OnCalendar").expect("OnCalendar");
    let out = Command::new("systemd-analyze")
        .args(["calendar", calendar])
        .output()
        .expect("systemd-analyze");
    assert!(out.status.success(), "OnCalendar={calendar}");
}

/// `path -> value` of every `key: value` line of a block-style YAML
/// document, paths joined with `.` and list items as `[]`. Enough for the
/// README's manifest; errors on tabs and odd indentation.
fn yaml_paths(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    // (indent of the key, path to it)
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        if raw.contains('\t') {
            return Err(format!("line {}: a tab", n + 1));
        }
        if raw.trim().is_empty() || raw.trim_start().starts_with('#') {
            continue;
        }
        let mut indent = raw.len() - raw.trim_start().len();
        if indent % 2 != 0 {
            return Err(format!("line {}: odd indentation", n + 1));
        }
        let mut rest = raw.trim_start();
        if let Some(r) = rest.strip_prefix("- ") {
            // A list item: a context of its own (between the dash and its
            // keys) that the item's further keys find as their parent.
            while stack.last().is_some_and(|(i, _)| *i > indent) {
                stack.pop();
            }
            let list = stack.last().map(|(_, p)| p.clone()).unwrap_or_default();
            stack.push((indent + 1, format!("{list}[]")));
            rest = r;
            indent += 2;
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let parent = stack.last().map(|(_, p)| p.clone()).unwrap_or_default();
        let Some((key, value)) = rest.split_once(':') else {
            // A bare list item (a scalar in a list).
            out.insert(parent, rest.to_string());
            continue;
        };
        let path = if parent.is_empty() {
            key.to_string()
        } else {
            format!("{parent}.{key}")
        };
        let value = value.trim();
        if value.is_empty() {
            stack.push((indent, path));
        } else {
            out.insert(path, value.trim_matches('"').to_string());
        }
    }
    Ok(out)
}

/// What the CronJob must say.
fn check_cronjob(p: &BTreeMap<String, String>) -> Result<(), String> {
    let want = |k: &str, v: &str| match p.get(k) {
        Some(got) if got == v => Ok(()),
        other => Err(format!("{k}: {other:?}, want {v}")),
    };
    want("apiVersion", "batch/v1")?;
    want("kind", "CronJob")?;
    want("spec.concurrencyPolicy", "Forbid")?;
    // podFailurePolicy needs restartPolicy Never.
    want("spec.jobTemplate.spec.template.spec.restartPolicy", "Never")?;
    want(
        "spec.jobTemplate.spec.podFailurePolicy.rules[].action",
        "FailJob",
    )?;
    let schedule = p.get("spec.schedule").ok_or("no spec.schedule")?;
    check_crontab_line(&format!("{schedule} x"))?;
    let args = p
        .get("spec.jobTemplate.spec.template.spec.containers[].args")
        .ok_or("no container args")?;
    if !args.contains("\"nightly\"") {
        return Err(format!("the container does not run the nightly: {args}"));
    }
    let key = "spec.jobTemplate.spec.template.spec.containers[].env[].valueFrom.secretKeyRef.name";
    if !p.contains_key(key) {
        return Err("the key must come from a Secret".into());
    }
    Ok(())
}

#[test]
fn readme_cronjob_is_valid() {
    let docs: Vec<String> = blocks(&readme(), "yaml")
        .into_iter()
        .filter(|b| b.contains("kind: CronJob"))
        .collect();
    assert_eq!(docs.len(), 1, "one CronJob");
    let paths = yaml_paths(&docs[0]).unwrap_or_else(|e| panic!("{e}"));
    check_cronjob(&paths).unwrap_or_else(|e| panic!("{e}\n{paths:#?}"));

    // The checks can fail.
    let allow = docs[0].replace("concurrencyPolicy: Forbid", "concurrencyPolicy: Allow");
    assert!(check_cronjob(&yaml_paths(&allow).expect("parses")).is_err());
    let bad_schedule = docs[0].replace("\"30 2 * * *\"", "\"30 2 * *\"");
    assert!(check_cronjob(&yaml_paths(&bad_schedule).expect("parses")).is_err());
    assert!(yaml_paths(&docs[0].replacen("  ", "\t", 1)).is_err());

    // A real YAML parser, when the machine has one: the same document, the
    // same answers.
    let has_pyyaml = Command::new("python3")
        .args(["-c", "import yaml"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_pyyaml {
        eprintln!("note: python3 with PyYAML not found; the CronJob was checked structurally only");
        return;
    }
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(docs[0].as_bytes())
            .expect("write");
    }
    let out = child.wait_with_output().expect("python3");
    assert!(out.status.success(), "PyYAML could not parse the CronJob");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["kind"], "CronJob");
    assert_eq!(v["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(v["spec"]["schedule"], paths["spec.schedule"].as_str());
    let job = &v["spec"]["jobTemplate"]["spec"];
    assert_eq!(job["template"]["spec"]["restartPolicy"], "Never");
    let args = job["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args");
    assert_eq!(args.last().and_then(|a| a.as_str()), Some("nightly"));
    assert_eq!(
        job["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"],
        serde_json::json!([2, 3, 4, 5])
    );
}
