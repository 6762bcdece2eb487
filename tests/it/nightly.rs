//! The nightly DAG: skips what is unchanged, resumes after a failure,
//! re-runs on `--force`, and catches up missed nights.

use attune::nightly::{self, NightlyParams};
use chrono::NaiveDate;

use crate::common::{Root, demo_ctx};

fn statuses(o: &nightly::NightlyOutcome) -> Vec<(String, String)> {
    o.manifest
        .jobs
        .iter()
        .map(|j| (j.job.clone(), j.status.clone()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn unchanged_inputs_are_skipped_and_a_changed_output_reruns_its_job() {
    let root = Root::new();
    let params = root.generate(200, 20);
    let ctx = root.ctx(&attune::schema::TABLES, crate::common::KEY);
    let last = params.start + chrono::Duration::days(19);
    let dates = nightly::date_range(params.start, last).expect("dates");
    let all = NightlyParams {
        dates: dates.clone(),
        ..Default::default()
    };
    let first = nightly::run(&ctx, &all).await.expect("first run");
    assert_eq!(
        statuses(&first),
        pairs(&[
            ("ingest", "ok"),
            ("transform", "ok"),
            ("segment", "ok"),
            ("voice", "ok"),
            ("value", "ok"),
            ("empathy", "ok"),
            ("roi", "ok"),
            ("fairness", "ok"),
            ("privacy", "ok"),
            ("report", "ok"),
        ])
    );
    let features = root
        .path()
        .join(format!("marts/customer_features/dt={last}/part-0.parquet"));
    let marts_before = marts_of(root.path(), last);
    assert!(marts_before.len() >= 20, "{:?}", marts_before.keys());

    let second = nightly::run(&ctx, &all).await.expect("second run");
    assert_eq!(
        statuses(&second),
        pairs(&[
            ("ingest", "skipped"),
            ("transform", "skipped"),
            ("segment", "skipped"),
            ("voice", "skipped"),
            ("value", "skipped"),
            ("empathy", "skipped"),
            ("roi", "skipped"),
            ("fairness", "skipped"),
            ("privacy", "skipped"),
            ("report", "skipped"),
        ]),
        "nothing changed, nothing runs"
    );

    // A mart deleted behind attune's back: only the job that wrote it re-runs.
    std::fs::remove_file(&features).expect("delete");
    let third = nightly::run(&ctx, &all).await.expect("third run");
    assert_eq!(
        statuses(&third),
        pairs(&[
            ("ingest", "skipped"),
            ("transform", "ok"),
            ("segment", "ok"),
            ("voice", "ok"),
            ("value", "ok"),
            ("empathy", "ok"),
            ("roi", "ok"),
            ("fairness", "ok"),
            ("privacy", "ok"),
            ("report", "ok"),
        ])
    );
    // every job from transform on ran again: every mart file of the date
    // (the deleted customer_features among them) is the same, byte for byte
    let marts_after = marts_of(root.path(), last);
    assert_eq!(
        marts_after.keys().collect::<Vec<_>>(),
        marts_before.keys().collect::<Vec<_>>()
    );
    for (file, bytes) in &marts_before {
        assert!(
            marts_after[file] == *bytes,
            "{file} differs between two runs of the same inputs"
        );
    }

    // A new export for one day: that day is re-ingested, then everything after.
    root.land(
        "orders",
        &params.start.to_string(),
        "late.csv",
        b"order_id,customer_id,ordered_at,total_amount,currency,channel,item_count\nLATE1,C000001,2025-01-01T10:00:00Z,5.50,EUR,in_store,1\n",
    );
    let fourth = nightly::run(&ctx, &all).await.expect("fourth run");
    assert_eq!(
        statuses(&fourth),
        pairs(&[
            ("ingest", "ok"),
            ("transform", "ok"),
            ("segment", "ok"),
            ("voice", "ok"),
            ("value", "ok"),
            ("empathy", "ok"),
            ("roi", "ok"),
            ("fairness", "ok"),
            ("privacy", "ok"),
            ("report", "ok"),
        ])
    );
    let ingested = fourth.ingest.as_ref().expect("ingest ran");
    assert_eq!(ingested.dates, vec![params.start], "only the changed day");
    let checks = root
        .path()
        .join(format!("marts/privacy_checks/dt={last}/part-0.parquet"));
    let checks_after_transform = std::fs::read(&checks).expect("privacy checks");

    let forced = nightly::run(
        &ctx,
        &NightlyParams {
            force: true,
            only: vec!["transform".into()],
            ..all.clone()
        },
    )
    .await
    .expect("forced");
    assert_eq!(statuses(&forced), pairs(&[("transform", "ok")]));

    // --from-job: the jobs before it are not run at all (not even listed),
    // the ones after it run as usual (forced here: nothing changed)
    let from_fairness = nightly::run(
        &ctx,
        &NightlyParams {
            force: true,
            from_job: Some("fairness".into()),
            ..all.clone()
        },
    )
    .await
    .expect("from fairness");
    assert_eq!(
        statuses(&from_fairness),
        pairs(&[("fairness", "ok"), ("privacy", "ok"), ("report", "ok")])
    );
    // After the transform ran, the nightly scanned the lake for privacy
    // beside the jobs before it; without it, privacy scanned at its turn:
    // the same checks.
    assert!(
        std::fs::read(&checks).expect("privacy checks") == checks_after_transform,
        "privacy's checks depend on when it scanned the lake"
    );

    let bad = nightly::run(
        &ctx,
        &NightlyParams {
            from_job: Some("transfrom".into()),
            ..all.clone()
        },
    )
    .await
    .expect_err("typo");
    assert!(bad.to_string().contains("transfrom") && bad.to_string().contains("transform"));

    // An edited model (here: a models_dir with the same SQL plus a comment)
    // re-runs the transform; ingest, which no model changes, is skipped.
    let models = models_edited("orders_daily", |sql| format!("{sql}\n-- edited\n"));
    let edited = reconfigured(&ctx, |cfg| {
        cfg.models_dir = Some(models.path().to_path_buf())
    });
    let o = nightly::run(
        &edited,
        &NightlyParams {
            only: vec!["ingest".into(), "transform".into()],
            ..all.clone()
        },
    )
    .await
    .expect("edited model");
    assert_eq!(
        statuses(&o),
        pairs(&[("ingest", "skipped"), ("transform", "ok")])
    );
}

/// A folder of the built-in SQL models with `model`'s SQL made `edit` of it.
fn models_edited(model: &str, edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let models = tempfile::tempdir().expect("models dir");
    for (name, sql) in attune::transform::models::sources(None).expect("built-in") {
        let sql = if name == model { edit(sql) } else { sql };
        std::fs::write(models.path().join(format!("{name}.sql")), sql).expect("model");
    }
    models
}

/// A context like `ctx` (the same key) with `change` made to its config.
fn reconfigured(
    ctx: &attune::context::JobContext,
    change: impl FnOnce(&mut attune::config::ValidConfig),
) -> attune::context::JobContext {
    let mut cfg = (*ctx.cfg).clone();
    change(&mut cfg);
    let mut c = attune::context::JobContext::open(cfg, attune::context::KeyMode::NotNeeded)
        .expect("context");
    c.key = ctx.key.clone();
    c
}

/// A context like `ctx` whose nightly runs `parallel` jobs at once.
fn with_parallel_jobs(
    ctx: &attune::context::JobContext,
    parallel: usize,
) -> attune::context::JobContext {
    reconfigured(ctx, |cfg| cfg.parallel_jobs = parallel)
}

/// (start, end) of a job in a manifest, in seconds since the epoch.
fn span(o: &nightly::NightlyOutcome, job: &str) -> (f64, f64) {
    let r = o
        .manifest
        .jobs
        .iter()
        .find(|j| j.job == job)
        .expect("job ran");
    let start = chrono::DateTime::parse_from_rfc3339(&r.started_at).expect("rfc3339");
    let start = start.timestamp_millis() as f64 / 1000.0;
    (start, start + r.seconds)
}

/// Independent jobs run at once (`schedule`) write the same bytes as one
/// after the other, never two heavy jobs together, and the manifest keeps
/// the jobs' order; how many run at once is not part of the inputs.
#[tokio::test]
async fn jobs_run_at_once_write_what_they_write_one_after_the_other() {
    let root = Root::new();
    let params = root.generate(150, 15);
    let base = root.ctx(&attune::schema::TABLES, crate::common::KEY);
    let last = params.start + chrono::Duration::days(14);
    let all = NightlyParams {
        dates: nightly::date_range(params.start, last).expect("dates"),
        ..Default::default()
    };
    let serial = nightly::run(&with_parallel_jobs(&base, 1), &all)
        .await
        .expect("one at a time");
    let one_at_a_time = marts_of(root.path(), last);
    for pair in serial.manifest.jobs.windows(2) {
        let (a, b) = (pair[0].job.as_str(), pair[1].job.as_str());
        if a != "ingest" {
            assert!(
                span(&serial, a).1 <= span(&serial, b).0 + 0.002,
                "{a} overlapped {b}"
            );
        }
    }

    // the lake as it is (a re-ingest would change the listing that
    // `_inputs` records): every job after ingest again
    let forced = NightlyParams {
        force: true,
        from_job: Some("transform".into()),
        ..all.clone()
    };
    let parallel = nightly::run(&with_parallel_jobs(&base, 2), &forced)
        .await
        .expect("two at a time");
    let order: Vec<&str> = parallel
        .manifest
        .jobs
        .iter()
        .map(|j| j.job.as_str())
        .collect();
    assert_eq!(
        order,
        &nightly::JOBS[1..10],
        "the manifest lists the jobs in order"
    );
    assert!(parallel.manifest.jobs.iter().all(|j| j.status == "ok"));
    // the transform ran, so voice started beside the segment job whose
    // segments it reads last, and went on beside value
    let (segment, voice, value) = (
        span(&parallel, "segment"),
        span(&parallel, "voice"),
        span(&parallel, "value"),
    );
    assert!(
        voice.0 < segment.1,
        "voice {voice:?} should start beside segment {segment:?}"
    );
    assert!(
        voice.0 < value.1 && value.0 < voice.1,
        "voice {voice:?} and value {value:?} should overlap"
    );
    // the serial night's privacy job left a scan of the lake as it is, so
    // this night's lake scan carried its counts and began beside the
    // transform (`nightly::early`), not after it
    let privacy = parallel.privacy.as_ref().expect("privacy ran");
    assert_eq!(
        (
            privacy.lake_scan.full_scan.as_deref(),
            privacy.lake_scan.scanned
        ),
        (None, 0),
        "{:?}",
        privacy.lake_scan
    );
    assert!(privacy.lake_scan.reused > 0);
    let began = chrono::DateTime::parse_from_rfc3339(&privacy.lake_scan_started_at)
        .expect("rfc3339")
        .timestamp_millis() as f64
        / 1000.0;
    let transform = span(&parallel, "transform");
    assert!(
        transform.0 - 0.002 <= began && began < transform.1,
        "the lake scan began at {began}, the transform ran {transform:?}"
    );
    let heavy = nightly::schedule::HEAVY;
    for a in heavy {
        for b in heavy.iter().filter(|b| **b != a) {
            let (x, y) = (span(&parallel, a), span(&parallel, b));
            assert!(
                x.1 <= y.0 + 0.002 || y.1 <= x.0 + 0.002,
                "{a} {x:?} overlapped {b} {y:?}"
            );
        }
    }
    let at_once = marts_of(root.path(), last);
    assert_eq!(
        at_once.keys().collect::<Vec<_>>(),
        one_at_a_time.keys().collect::<Vec<_>>()
    );
    for (file, bytes) in &one_at_a_time {
        assert!(
            at_once[file] == *bytes,
            "{file} differs when jobs run at once"
        );
    }

    // a changed parallel_jobs is no new input: nothing runs again (voice's
    // stamp, saved after it waited for the segments, is the fingerprint a
    // night with the segments already written computes)
    let again = nightly::run(&with_parallel_jobs(&base, 1), &all)
        .await
        .expect("again");
    assert!(
        again.manifest.jobs.iter().all(|j| j.status == "skipped"),
        "{:?}",
        statuses(&again)
    );

    // A mart deleted behind attune's back: its job runs again, and of the
    // others only those that need it (roi and fairness do not read empathy)
    let contacts = root
        .path()
        .join(format!("marts/empathy_contacts/dt={last}/part-0.parquet"));
    std::fs::remove_file(&contacts).expect("delete");
    let third = nightly::run(&with_parallel_jobs(&base, 2), &all)
        .await
        .expect("after a deleted mart");
    let ran: Vec<&str> = third
        .manifest
        .jobs
        .iter()
        .filter(|j| j.status == "ok")
        .map(|j| j.job.as_str())
        .collect();
    assert_eq!(
        ran,
        ["empathy", "privacy", "report"],
        "{:?}",
        statuses(&third)
    );
}

/// Voice starts beside the segment job and waits for its segments: when
/// the segment job fails, voice fails after it instead of waiting for ever,
/// and the night's error is the segment job's.
#[tokio::test]
async fn voice_waiting_for_a_failed_segment_job_fails_after_it() {
    let root = Root::new();
    let params = root.generate(100, 8);
    // customer_features without the recency the segment job clusters on:
    // the transform builds it, the segment job's query fails
    let models = models_edited("customer_features", |sql| {
        sql.lines()
            .filter(|l| !l.contains("recency_days"))
            .collect::<Vec<_>>()
            .join("\n")
    });
    let ctx = reconfigured(
        &root.ctx(&attune::schema::TABLES, crate::common::KEY),
        |cfg| {
            cfg.models_dir = Some(models.path().to_path_buf());
            cfg.parallel_jobs = 2;
        },
    );
    let last = params.start + chrono::Duration::days(7);
    let all = NightlyParams {
        dates: nightly::date_range(params.start, last).expect("dates"),
        ..Default::default()
    };
    let e = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        nightly::run(&ctx, &all),
    )
    .await
    .expect("the night ends")
    .expect_err("segment fails");
    assert!(e.to_string().contains("recency_days"), "{e}");
    let runs = root.path().join("runs");
    let newest = std::fs::read_dir(&runs)
        .expect("runs")
        .map(|f| f.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .max()
        .expect("a manifest");
    let manifest: attune::manifest::RunManifest =
        serde_json::from_slice(&std::fs::read(newest).expect("read")).expect("manifest");
    let record = |job: &str| {
        manifest
            .jobs
            .iter()
            .find(|j| j.job == job)
            .unwrap_or_else(|| panic!("{job} in {:?}", manifest.jobs))
    };
    assert_eq!(manifest.status, "failed");
    assert_eq!(record("transform").status, "ok");
    assert_eq!(record("segment").status, "failed");
    let voice = record("voice");
    assert_eq!(voice.status, "failed");
    assert!(
        voice
            .error
            .as_deref()
            .is_some_and(|e| e.contains("segment job")),
        "{voice:?}"
    );
    assert!(
        manifest.jobs.iter().all(|j| j.job != "value"),
        "nothing after segment starts: {:?}",
        manifest.jobs
    );
}

/// A new pseudonymization key is refused (the lake holds the old key's
/// pseudonyms), until every date is re-ingested under it with --force.
/// (Each process has its own run id: a context per run, as under cron.)
#[tokio::test]
async fn a_new_key_is_refused_until_every_date_is_ingested_under_it() {
    let root = Root::new();
    let params = root.generate(100, 5);
    let last = params.start + chrono::Duration::days(4);
    let dates = nightly::date_range(params.start, last).expect("dates");
    let ingest_only = NightlyParams {
        dates: dates.clone(),
        only: vec!["ingest".into()],
        ..Default::default()
    };
    let ctx = |key: &str| root.ctx(&attune::schema::TABLES, key);
    Box::pin(nightly::run(&ctx(crate::common::KEY), &ingest_only))
        .await
        .expect("an ingest under the old key");
    let new_key = "another-integration-key-0123456789";
    let refused = Box::pin(nightly::run(&ctx(new_key), &ingest_only))
        .await
        .expect_err("a new key")
        .to_string();
    assert!(refused.contains("key changed"), "{refused}");
    // `attune ingest` on its own is refused too, and records nothing that
    // would vouch for the new key
    let alone = attune::ingest::run_recorded(&ctx(new_key), &dates[..1])
        .await
        .expect_err("a new key, standalone")
        .to_string();
    assert!(alone.contains("key changed"), "{alone}");
    let refused = Box::pin(nightly::run(&ctx(new_key), &ingest_only))
        .await
        .expect_err("still a new key")
        .to_string();
    assert!(refused.contains("key changed"), "{refused}");
    let forced = NightlyParams {
        force: true,
        ..ingest_only.clone()
    };
    let o = Box::pin(nightly::run(&ctx(new_key), &forced))
        .await
        .expect("re-ingest under the new key");
    assert_eq!(o.ingest.expect("ingested").dates, dates);
    Box::pin(nightly::run(&ctx(new_key), &ingest_only))
        .await
        .expect("the new key is now the lake's");
}

#[tokio::test]
async fn missed_nights_are_caught_up_in_the_business_time_zone() {
    let (mut ctx, last) = demo_ctx();
    let root = tempfile::tempdir().expect("tempdir");
    // An empty root: nothing ingested yet -> only yesterday.
    let empty = attune::storage::Storage::open(root.path().to_str().expect("utf8")).expect("open");
    let storage = std::mem::replace(&mut ctx.storage, empty);
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&chrono::Utc)
    };
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
    // 23:30 UTC on 03-10 is already 03-11 in Berlin: yesterday there is 03-10.
    let mut cfg = (*ctx.cfg).clone();
    cfg.timezone = "Europe/Berlin".parse().expect("tz");
    ctx.cfg = std::sync::Arc::new(cfg);
    let dates = nightly::default_dates(&ctx, at("2025-03-10T23:30:00Z"))
        .await
        .expect("dates");
    assert_eq!(dates, vec![d("2025-03-10")]);
    // The shared demo lake was ingested up to `last`: the nights after it are caught up.
    ctx.storage = storage;
    let three_days_later = format!("{}T12:00:00Z", last + chrono::Duration::days(4));
    let dates = nightly::default_dates(&ctx, at(&three_days_later))
        .await
        .expect("dates");
    assert_eq!(
        dates,
        vec![
            last + chrono::Duration::days(1),
            last + chrono::Duration::days(2),
            last + chrono::Duration::days(3)
        ]
    );
}

/// Every file under `marts/*/dt=<date>/`, by its path below `marts/`.
fn marts_of(
    root: &std::path::Path,
    date: NaiveDate,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    for table in std::fs::read_dir(root.join("marts")).expect("marts") {
        let table = table.expect("entry").path();
        let dir = table.join(format!("dt={date}"));
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        for f in files {
            let f = f.expect("file").path();
            let name = f.strip_prefix(root.join("marts")).expect("under marts");
            out.insert(name.display().to_string(), std::fs::read(&f).expect("read"));
        }
    }
    out
}
