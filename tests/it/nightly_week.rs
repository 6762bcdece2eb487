//! A week of nights with cron semantics: each night runs the nightly
//! without dates at 02:30, so it processes yesterday; a night the machine
//! was off is caught up by the next one; `attune runs` lists every night.

use attune::nightly::{self, NightlyParams};
use chrono::{Duration, NaiveDate, TimeZone, Utc};

use crate::common::{KEY, Root};

#[tokio::test]
async fn a_week_of_cron_nights_processes_each_day_once_and_catches_up_a_missed_night() {
    let root = Root::new();
    let params = attune::generate::GenerateParams {
        out: root.path().to_path_buf(),
        customers: 200,
        days: 14,
        ..Default::default()
    };
    attune::generate::generate(&params).expect("generate");
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
