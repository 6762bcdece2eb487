//! A week of nights with cron semantics: each night runs the nightly
//! without dates at 02:30, so it processes yesterday; a night the machine
//! was off is caught up by the next one; `attune runs` lists every night.

use attune::nightly::{self, NightlyParams};
use chrono::{Duration, NaiveDate, TimeZone, Utc};

use crate::common::{KEY, Root};

#[tokio::test]
async fn a_week_of_cron_nights_processes_each_day_once_and_catches_up_a_missed_night() {
    let root = Root::new();
    let params = root.generate(200, 14);
    // A context per run, as each cron night is a process of its own (with its own run id).
    let ctx = || root.ctx(&attune::schema::TABLES, KEY);
    let day = |i: i64| params.start + Duration::days(i);

    // The first week as a backfill.
    let backfill = nightly::run(
        &ctx(),
        &NightlyParams {
            dates: nightly::date_range(day(0), day(6)).expect("dates"),
            ..Default::default()
        },
    )
    .await
    .expect("backfill");
    assert_eq!(backfill.manifest.status, "ok");

    // Then one run per night at 02:30 UTC, the night of day(10) missed.
    let mut expected: Vec<Vec<NaiveDate>> = Vec::new();
    for night in [8i64, 9, 10, 12, 13, 14] {
        let now = Utc.from_utc_datetime(&day(night).and_hms_opt(2, 30, 0).expect("time"));
        let ctx = ctx();
        let dates = nightly::default_dates(&ctx, now).await.expect("dates");
        let want: Vec<NaiveDate> = if night == 12 {
            vec![day(10), day(11)]
        } else {
            vec![day(night - 1)]
        };
        assert_eq!(dates, want, "night of {}", day(night));
        let o = nightly::run(
            &ctx,
            &NightlyParams {
                dates: dates.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("night");
        assert_eq!(o.manifest.status, "ok");
        let ingest = o.ingest.as_ref().expect("new exports are ingested");
        assert_eq!(ingest.dates, want, "only the new day(s) are ingested");
        let last = *want.last().expect("a date");
        assert!(
            root.path()
                .join(format!("marts/customer_features/dt={last}/part-0.parquet"))
                .exists(),
            "the marts of {last}"
        );
        assert!(
            o.manifest
                .jobs
                .iter()
                .all(|j| j.status == "ok" && j.error.is_none()),
            "{:?}",
            o.manifest.jobs
        );
        expected.push(want);
    }

    // The same night again (a retry by the scheduler) finds nothing to do.
    let now = Utc.from_utc_datetime(&day(14).and_hms_opt(3, 0, 0).expect("time"));
    let ctx = ctx();
    let dates = nightly::default_dates(&ctx, now).await.expect("dates");
    assert_eq!(dates, vec![day(13)]);
    let retry = nightly::run(
        &ctx,
        &NightlyParams {
            dates,
            ..Default::default()
        },
    )
    .await
    .expect("retry");
    assert!(retry.manifest.jobs.iter().all(|j| j.status == "skipped"));

    // `attune runs`: every run, newest first, with its dates.
    let runs = attune::runs::list(&ctx.storage, 50, true)
        .await
        .expect("runs");
    assert_eq!(runs.len(), 1 + expected.len() + 1);
    assert!(runs.iter().all(|r| r.status == "ok"));
    let listed: Vec<Vec<String>> = runs
        .iter()
        .rev()
        .skip(1)
        .take(expected.len())
        .map(|r| r.dates.clone())
        .collect();
    let want: Vec<Vec<String>> = expected
        .iter()
        .map(|d| d.iter().map(|d| d.to_string()).collect())
        .collect();
    assert_eq!(
        listed, want,
        "one run per night, oldest last in the listing"
    );
}

/// A late export for a day already processed (a survey answered after the
/// export ran): the next night re-ingests that day and re-runs every job
/// after ingest on the same date, and each of them reads back what it
/// rewrote (DataFusion's listing cache is off: with it, voice read the new
/// feedback_scored with the old file's size and failed).
#[tokio::test]
async fn a_late_export_reruns_the_day_and_every_job_reads_its_rewritten_outputs() {
    let root = Root::new();
    let params = root.generate(200, 12);
    let last = params.start + Duration::days(11);
    let all = NightlyParams {
        dates: nightly::date_range(params.start, last).expect("dates"),
        ..Default::default()
    };
    let ctx = || root.ctx(&attune::schema::TABLES, KEY);
    let first = nightly::run(&ctx(), &all).await.expect("first night");
    let scored_before = first.voice.as_ref().expect("voice ran").scored;

    // The day's first survey answer with a comment, answered again.
    let dir = root.path().join(format!("landing/feedback/{last}"));
    let gz = std::fs::File::open(dir.join("feedback.csv.gz")).expect("export");
    let mut reader = csv::Reader::from_reader(flate2::read::GzDecoder::new(gz));
    let header = reader.headers().expect("header").clone();
    let comment = header.iter().position(|h| h == "comment").expect("comment");
    let mut row = reader
        .records()
        .map(|r| r.expect("row"))
        .find(|r| !r[comment].trim().is_empty())
        .expect("a commented answer on the last day");
    let mut fields: Vec<String> = row.iter().map(str::to_string).collect();
    fields[0] = "LATE-0001".into();
    row = csv::StringRecord::from(fields);
    let mut late = csv::Writer::from_path(dir.join("late.csv")).expect("late export");
    late.write_record(&header).expect("header");
    late.write_record(&row).expect("row");
    late.flush().expect("flush");
    drop(late);

    let second = nightly::run(&ctx(), &all)
        .await
        .expect("the night after the late export");
    let statuses: Vec<(&str, &str)> = second
        .manifest
        .jobs
        .iter()
        .map(|j| (j.job.as_str(), j.status.as_str()))
        .collect();
    assert!(
        statuses.iter().all(|(_, s)| *s == "ok") && statuses.len() >= 5,
        "every job re-ran: {statuses:?}"
    );
    assert_eq!(
        second.ingest.as_ref().expect("ingest").dates,
        vec![last],
        "only the late day is re-ingested"
    );
    assert_eq!(
        second.voice.as_ref().expect("voice ran").scored,
        scored_before + 1,
        "the late comment is scored"
    );
}
