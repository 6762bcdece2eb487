//! The transform's publishing: a date's marts change together or not at all.

use attune::context::JobContext;
use chrono::NaiveDate;
use datafusion::arrow::array::Int64Array;

use crate::common::{self, KEY, Root};

const DAY: &str = "2025-03-01";

fn orders(ids: &[&str]) -> String {
    let mut s = "order_id,customer_id,ordered_at,total_amount,currency,channel\n".to_string();
    for id in ids {
        s.push_str(&format!("{id},C1,{DAY} 10:00:00,5,EUR,app\n"));
    }
    s
}

/// Three models: `order_count` (passes its tests), `order_check`, whose
/// test allows at most one order, and `order_after`, which divides by zero
/// once there are two. A re-run after a second order arrives fails on
/// `order_check`: the error names its test, not `order_after`, whose build
/// fails while that test runs (a model's tests run while the next models
/// build, and the first failure in model order is the one reported), and
/// `order_count` of the date still holds the first run's 1, not a
/// half-published 2.
#[tokio::test]
async fn a_failing_data_test_publishes_none_of_the_dates_models() {
    let root = Root::new();
    let models = tempfile::tempdir().expect("models dir");
    std::fs::write(
        models.path().join("order_count.sql"),
        "-- model: order_count\n-- materialized: table\n-- purpose: orders so far\n\
         -- grain: one row\n-- column n: orders (count)\n-- test n: not_null\n\
         SELECT count(*) AS n FROM orders WHERE dt <= run_date()\n",
    )
    .expect("model");
    std::fs::write(
        models.path().join("order_check.sql"),
        "-- model: order_check\n-- materialized: table\n-- purpose: at most one order\n\
         -- grain: one row\n-- column n: orders (count)\n-- test n: range 0 1\n\
         SELECT n FROM order_count\n",
    )
    .expect("model");
    std::fs::write(
        models.path().join("order_after.sql"),
        "-- model: order_after\n-- materialized: table\n-- purpose: built after the check\n\
         -- grain: one row\n-- column m: 1 / (2 - orders)\n\
         SELECT 1 / (2 - n) AS m FROM order_check\n",
    )
    .expect("model");
    let ctx = |root: &Root| {
        let mut cfg = (*root.ctx(&["orders"], KEY).cfg).clone();
        cfg.models_dir = Some(models.path().to_path_buf());
        let mut ctx = JobContext::open(cfg, attune::context::KeyMode::NotNeeded).expect("context");
        ctx.key = Some(attune::config::Key::new(KEY.as_bytes().to_vec()));
        ctx
    };
    let date: NaiveDate = DAY.parse().expect("date");
    root.land("orders", DAY, "orders.csv", orders(&["O1"]).as_bytes());
    root.ingest(&["orders"], &[DAY]).await;
    attune::transform::run(&ctx(&root), date)
        .await
        .expect("first run passes");
    let count = |root: &Root| {
        let b = root.read("marts", "order_count", DAY);
        common::column::<Int64Array>(&b[0], "n").value(0)
    };
    assert_eq!(count(&root), 1);

    root.land(
        "orders",
        DAY,
        "orders.csv",
        orders(&["O1", "O2"]).as_bytes(),
    );
    root.ingest(&["orders"], &[DAY]).await;
    // what a killed run left staged goes at the next run's start
    let left = root.path().join("marts/_staging/killed-run/order_count");
    std::fs::create_dir_all(&left).expect("mkdir");
    std::fs::write(left.join("part-0.parquet"), b"half").expect("write");
    let err = attune::transform::run(&ctx(&root), date)
        .await
        .expect_err("order_check fails its range test")
        .to_string();
    assert!(
        err.contains("order_check") && err.contains("range") && !err.contains("order_after"),
        "{err}"
    );
    assert_eq!(
        count(&root),
        1,
        "order_count of the date is the last good one"
    );
    let staged = root.path().join("marts/_staging");
    assert!(
        common::files_under(&staged).is_empty(),
        "nothing stays staged"
    );
    let tables = attune::catalog::list_tables(&ctx(&root).storage, "marts")
        .await
        .expect("tables");
    assert!(tables.iter().all(|t| !t.name.starts_with('_')));
}

/// A business that exports only customers and orders (no surveys, tickets,
/// reviews, sessions or offers) gets every built-in model, with the absent
/// tables read as empty: features from orders, zero tickets and reviews.
#[tokio::test]
async fn a_business_without_some_exports_still_gets_its_marts() {
    let root = Root::new();
    root.land(
        "customers",
        DAY,
        "customers.csv",
        b"customer_id,signup_date,consent_analytics\nC1,2025-01-01,true\n",
    );
    root.land(
        "orders",
        DAY,
        "orders.csv",
        orders(&["O1", "O2"]).as_bytes(),
    );
    root.ingest(&["customers", "orders"], &[DAY]).await;
    let ctx = root.ctx(&["customers", "orders"], KEY);
    let date: NaiveDate = DAY.parse().expect("date");
    let out = attune::transform::run(&ctx, date)
        .await
        .expect("transform over two exports");
    assert!(out.models.iter().any(|m| m.model == "service_levels"));
    let b = root.read("marts", "customer_features", DAY);
    assert_eq!(common::column::<Int64Array>(&b[0], "frequency").value(0), 2);
    assert_eq!(
        common::column::<Int64Array>(&b[0], "tickets_total").value(0),
        0
    );
    let tables = attune::catalog::list_tables(&ctx.storage, "lake")
        .await
        .expect("tables");
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["customers", "ingest_audit", "orders"],
        "the empty tables are not stored"
    );
}

/// Jobs after the transform read the superseded list it published instead
/// of listing every key again, but only while the lake is as it was: a
/// day ingested again since may hold a new copy of a record, and the old
/// list would leave its earlier copy in (an order counted twice).
#[tokio::test]
async fn the_published_superseded_list_is_read_only_while_the_lake_is_unchanged() {
    let (_, last) = common::demo_lake();
    let dir = tempfile::tempdir().expect("tempdir");
    common::copy_tree(
        &common::demo_lake().0.join("lake"),
        &dir.path().join("lake"),
    );
    let cfg = attune::config::ValidConfig {
        root: dir.path().to_string_lossy().into_owned(),
        ..Default::default()
    };
    let ctx = attune::context::JobContext::open(cfg, attune::context::KeyMode::NotNeeded)
        .expect("context");
    let earlier = last - chrono::Duration::days(5);
    attune::transform::run(&ctx, last).await.expect("transform");
    assert!(
        attune::transform::published_superseded(&ctx, last, earlier)
            .await
            .expect("read")
            .is_some(),
        "published and current"
    );
    // The day's orders written again (as a re-ingest does): same rows, a
    // new file, so the lake the list was made from is not the lake now.
    common::rewrite_partition(dir.path(), "orders", earlier);
    assert!(
        attune::transform::published_superseded(&ctx, last, earlier)
            .await
            .expect("read")
            .is_none(),
        "stale: the jobs list the copies again"
    );
}

/// The daily models marked `-- incremental:` as of `date`, computed every
/// day (`transform.incremental = false`) on a copy of `root`'s lake and
/// marts: the bytes an incremental night must match.
async fn full_refresh_bytes(
    root: &std::path::Path,
    date: NaiveDate,
) -> Vec<(&'static str, Vec<u8>)> {
    let copy = tempfile::tempdir().expect("tempdir");
    common::copy_tree(root, copy.path());
    let cfg = attune::config::ValidConfig {
        root: copy.path().to_string_lossy().into_owned(),
        transform_incremental: false,
        ..Default::default()
    };
    let ctx = JobContext::open(cfg, attune::context::KeyMode::NotNeeded).expect("context");
    let out = attune::transform::run(&ctx, date)
        .await
        .expect("full refresh");
    assert!(out.models.iter().all(|m| m.carried_from.is_none()));
    daily_bytes(copy.path(), date)
}

/// The models carried from night to night: the daily ones, the running
/// totals, and customer_features, which reads them.
const INCREMENTAL: [&str; 7] = [
    "orders_daily",
    "nps_daily",
    "csat_daily",
    "web_daily",
    "customer_order_totals",
    "customer_web_totals",
    "customer_features",
];

/// Of [`INCREMENTAL`], the models that carry an earlier night's rows.
const CARRIED: [&str; 6] = [
    "orders_daily",
    "nps_daily",
    "csat_daily",
    "web_daily",
    "customer_order_totals",
    "customer_web_totals",
];

fn daily_bytes(root: &std::path::Path, date: NaiveDate) -> Vec<(&'static str, Vec<u8>)> {
    common::mart_bytes(root, &INCREMENTAL, date)
}

/// One night by hand: `rows` of orders exported on `day`, ingested and
/// transformed.
async fn orders_night(
    root: &Root,
    ctx: &JobContext,
    day: &str,
    rows: &str,
) -> attune::transform::TransformOutcome {
    try_orders_night(root, ctx, day, rows)
        .await
        .expect("transform")
}

/// [`orders_night`], whose transform may fail.
async fn try_orders_night(
    root: &Root,
    ctx: &JobContext,
    day: &str,
    rows: &str,
) -> attune::Result<attune::transform::TransformOutcome> {
    let header = "order_id,customer_id,ordered_at,total_amount,currency,channel,refunded\n";
    root.land(
        "orders",
        day,
        "orders.csv",
        format!("{header}{rows}").as_bytes(),
    );
    root.ingest(&["orders"], &[day]).await;
    attune::transform::run(ctx, day.parse().expect("date")).await
}

/// Three nights by hand: the second brings an order dated the third day
/// (it enters on that day), the third re-exports the first day's order as
/// refunded (that day's revenue drops) and the second day's order with its
/// time corrected to the third day (the second day, which no new row
/// names, loses its only row). Each night starts from the one
/// before, computes only the touched days, and writes the bytes a full
/// computation writes.
#[tokio::test]
async fn an_incremental_night_computes_the_touched_days_and_matches_a_full_refresh() {
    let root = Root::new();
    let nights = [
        (
            "2025-03-01",
            "O1,C1,2025-03-01 09:00:00,10.00,EUR,app,false\nO2,C2,2025-03-01 18:30:00,4.50,EUR,in_store,false\n",
        ),
        (
            "2025-03-02",
            "O3,C1,2025-03-02 08:00:00,7.25,EUR,app,false\nO4,C3,2025-03-03 07:00:00,3.00,EUR,online,false\n",
        ),
        (
            "2025-03-03",
            "O1,C1,2025-03-01 09:00:00,10.00,EUR,app,true\nO3,C1,2025-03-03 08:00:00,7.25,EUR,app,false\nO5,C2,2025-03-03 12:00:00,6.00,EUR,in_store,false\n",
        ),
    ];
    let ctx = root.ctx(&["orders"], KEY);
    let mut outcomes = Vec::new();
    for (day, rows) in nights {
        let out = orders_night(&root, &ctx, day, rows).await;
        let m = out
            .models
            .into_iter()
            .find(|m| m.model == "orders_daily")
            .expect("orders_daily");
        outcomes.push((m.carried_from, m.days_computed));
    }
    let d = |s: &str| s.parse::<NaiveDate>().expect("date");
    assert_eq!(
        outcomes,
        vec![
            (None, None),
            // the new day, and the third day of the order dated ahead
            (Some(d("2025-03-01")), Some(2)),
            // the new day, the first (a refund re-exported) and the second
            // (the day of the copy the corrected order replaced)
            (Some(d("2025-03-02")), Some(3)),
        ]
    );
    let last = d("2025-03-03");
    let b = root.read("marts", "orders_daily", "2025-03-03");
    let revenue = common::column::<datafusion::arrow::array::Float64Array>(&b[0], "revenue");
    let refunds = common::column::<Int64Array>(&b[0], "refunds");
    let days = common::column::<datafusion::arrow::array::Date32Array>(&b[0], "order_date");
    let by_day: Vec<(NaiveDate, f64, i64)> = (0..b[0].num_rows())
        .map(|i| {
            (
                days.value_as_date(i).expect("day"),
                revenue.value(i),
                refunds.value(i),
            )
        })
        .collect();
    assert_eq!(
        by_day,
        vec![
            (d("2025-03-01"), 0.0, 1),
            (d("2025-03-01"), 4.5, 0),
            (d("2025-03-03"), 7.25, 0),
            (d("2025-03-03"), 6.0, 0),
            (d("2025-03-03"), 3.0, 0),
        ],
        "rows by day, channel: app, in_store on the 1st (O1 refunded); none on the 2nd; app, in_store, online on the 3rd"
    );
    assert_eq!(
        daily_bytes(root.path(), last),
        full_refresh_bytes(root.path(), last).await
    );
}

/// The generated business, night after night: every incremental night
/// writes what a full computation writes, and a re-ingested day (the lake
/// up to the earlier night changed) makes the next night compute every day.
#[tokio::test]
async fn generated_nights_carried_forward_equal_full_refreshes() {
    let (lake, last) = common::demo_lake();
    let dir = tempfile::tempdir().expect("tempdir");
    common::copy_tree(&lake.join("lake"), &dir.path().join("lake"));
    let cfg = attune::config::ValidConfig {
        root: dir.path().to_string_lossy().into_owned(),
        ..Default::default()
    };
    let ctx = JobContext::open(cfg, attune::context::KeyMode::NotNeeded).expect("context");
    let first = last - chrono::Duration::days(3);
    let mut carried = Vec::new();
    let mut tested_since = Vec::new();
    for n in 0..=3 {
        let date = first + chrono::Duration::days(n);
        let out = attune::transform::run(&ctx, date).await.expect("transform");
        let views = out.models.iter().filter(|m| m.materialized == "view");
        tested_since.extend(views.map(|m| (n, m.model.clone(), m.tested_since)));
        for m in out
            .models
            .iter()
            .filter(|m| CARRIED.contains(&m.model.as_str()))
        {
            carried.push((m.model.clone(), m.carried_from));
        }
        if n > 0 {
            assert_eq!(
                daily_bytes(dir.path(), date),
                full_refresh_bytes(dir.path(), date).await,
                "{date}"
            );
        }
    }
    for (model, from) in &carried[CARRIED.len()..] {
        assert!(from.is_some(), "{model} carried an earlier night");
    }
    // every staging view's tests read only the new rows after the first night
    assert_eq!(tested_since.len(), 4 * 6, "{tested_since:?}");
    for (n, view, since) in &tested_since {
        let night_before = (*n > 0).then(|| first + chrono::Duration::days(n - 1));
        assert_eq!(*since, night_before, "{view} on night {n}");
    }
    // an earlier day written again: the night before no longer vouches
    common::rewrite_partition(dir.path(), "orders", last - chrono::Duration::days(10));
    let out = attune::transform::run(&ctx, last).await.expect("transform");
    for m in out
        .models
        .iter()
        .filter(|m| CARRIED.contains(&m.model.as_str()))
    {
        if m.model == "orders_daily" || m.model == "customer_order_totals" {
            assert_eq!(m.carried_from, None, "{} computed in full", m.model);
        }
    }
    let views = out.models.iter().filter(|m| m.materialized == "view");
    assert!(views.clone().count() == 6 && views.clone().all(|m| m.tested_since.is_none()));
}

/// A view whose tests are incremental: `range 0 6` on the amounts of the
/// orders exported up to the run date, from their day on.
const SMALL_ORDERS: &str = "-- model: small_orders\n-- materialized: view\n\
     -- purpose: orders of at most 6\n-- grain: one row per exported copy of an order, from its day on\n\
     -- incremental tests: exported on source_dt, entering on ordered_at\n\
     -- column order_id: order key\n-- column ordered_at: when (UTC)\n\
     -- column total_amount: amount\n-- column source_dt: export day\n\
     -- test total_amount: range 0 6\n\
     SELECT order_id, ordered_at, total_amount, dt AS source_dt FROM orders \
     WHERE dt <= run_date() AND ordered_at < run_date() + INTERVAL '1 day'\n";

/// Incremental view tests night by night. The first night's export holds
/// an order of 9 dated two days ahead: untested until it enters the view,
/// then the tests of its night (which read only rows new since the night
/// before) find it. A day exported again makes the tests read every row;
/// an order over 6 in a new export fails them; and a view whose tested
/// column is computed from `run_date()` cannot declare them.
#[tokio::test]
async fn incremental_view_tests_read_the_new_and_the_entering_rows() {
    let root = Root::new();
    let models = tempfile::tempdir().expect("models dir");
    std::fs::write(models.path().join("small_orders.sql"), SMALL_ORDERS).expect("model");
    let mut cfg = (*root.ctx(&["orders"], KEY).cfg).clone();
    cfg.models_dir = Some(models.path().to_path_buf());
    let ctx = JobContext::open(cfg.clone(), attune::context::KeyMode::NotNeeded).expect("ctx");
    let night = |day: &'static str, rows: &'static str| {
        let (root, ctx) = (&root, &ctx);
        async move {
            try_orders_night(root, ctx, day, rows)
                .await
                .map(|out| out.models[0].tested_since)
        }
    };
    let d = |s: &str| s.parse::<NaiveDate>().expect("date");
    let ahead =
        "O1,C1,2025-03-01 10:00:00,5,EUR,app,false\nO2,C2,2025-03-03 08:00:00,9,EUR,online,false\n";
    assert_eq!(night("2025-03-01", ahead).await.expect("passes"), None);
    let second = night("2025-03-02", "O3,C1,2025-03-02 09:00:00,4,EUR,app,false\n").await;
    assert_eq!(second.expect("passes"), Some(d("2025-03-01")));
    // a view writes no partition; the records of its passing nights are
    // kept apart, the latest two
    assert!(!root.path().join("marts/small_orders").exists());
    let records = || {
        let mut r = common::files_under(&root.path().join("marts/_tested/small_orders"));
        r.sort();
        r
    };
    assert_eq!(records().len(), 2, "{:?}", records());
    assert!(records()[1].ends_with("dt=2025-03-02/_inputs"));
    // the same night again starts from the night before
    let again = night("2025-03-02", "O3,C1,2025-03-02 09:00:00,4,EUR,app,false\n").await;
    assert_eq!(again.expect("passes"), Some(d("2025-03-01")));
    let err = night("2025-03-03", "O4,C3,2025-03-03 12:00:00,3,EUR,app,false\n")
        .await
        .expect_err("O2 enters with 9")
        .to_string();
    assert!(
        err.contains("small_orders")
            && err.contains("total_amount")
            && err.contains("1 offending rows"),
        "{err}"
    );
    assert!(!err.contains('9'), "no value in the message: {err}");

    // the first day exported again, O2 at 6: the night before no longer
    // vouches for its rows, so every row is tested (and passes)
    let fixed =
        "O1,C1,2025-03-01 10:00:00,5,EUR,app,false\nO2,C2,2025-03-03 08:00:00,6,EUR,online,false\n";
    root.land(
        "orders",
        "2025-03-01",
        "orders.csv",
        format!("order_id,customer_id,ordered_at,total_amount,currency,channel,refunded\n{fixed}")
            .as_bytes(),
    );
    root.ingest(&["orders"], &["2025-03-01"]).await;
    let third = night("2025-03-03", "O4,C3,2025-03-03 12:00:00,3,EUR,app,false\n").await;
    assert_eq!(third.expect("passes"), None);
    let err = night("2025-03-04", "O5,C1,2025-03-04 12:00:00,8,EUR,app,false\n")
        .await
        .expect_err("a new order of 8")
        .to_string();
    assert!(
        err.contains("total_amount") && err.contains("1 offending rows"),
        "{err}"
    );

    let dated = SMALL_ORDERS.replace(
        "ordered_at, total_amount, dt",
        "ordered_at, CASE WHEN ordered_at < run_date() THEN total_amount END AS total_amount, dt",
    );
    std::fs::write(models.path().join("small_orders.sql"), dated).expect("model");
    let err = attune::transform::run(&ctx, d("2025-03-04"))
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("`total_amount` is computed from run_date()"),
        "{err}"
    );
}

/// Running totals by hand, over three nights with one skipped: the first
/// night's export holds an order dated three days ahead (it enters on its
/// day), an order 30 days old (outside the 30-day window) and one 28 days
/// old, which leaves that window while the night after it is skipped. Each
/// night starts from the one before and writes the bytes a full
/// computation writes.
#[tokio::test]
async fn running_totals_take_in_orders_dated_ahead_and_let_orders_leave_their_windows() {
    let root = Root::new();
    let nights = [
        (
            "2025-03-01",
            "O1,C1,2025-01-30 09:00:00,10.00,EUR,app,false\nO2,C1,2025-02-01 09:00:00,5.00,EUR,online,false\nO3,C2,2025-03-04 10:00:00,3.00,EUR,in_store,false\n",
        ),
        (
            "2025-03-03",
            "O4,C2,2025-03-03 11:00:00,4.00,EUR,app,false\n",
        ),
        (
            "2025-03-04",
            "O5,C1,2025-03-04 12:00:00,6.00,EUR,app,false\n",
        ),
    ];
    let ctx = root.ctx(&["orders"], KEY);
    let d = |s: &str| s.parse::<NaiveDate>().expect("date");
    let mut carried = Vec::new();
    let mut windows = Vec::new();
    for (day, rows) in nights {
        let out = orders_night(&root, &ctx, day, rows).await;
        let m = out
            .models
            .iter()
            .find(|m| m.model == "customer_order_totals")
            .expect("customer_order_totals");
        carried.push(m.carried_from);
        let b = root.read("marts", "customer_order_totals", day);
        let column = |name: &str| common::column::<Int64Array>(&b[0], name).values().to_vec();
        let mut per_customer: Vec<(i64, i64, i64)> = column("kept_orders")
            .into_iter()
            .zip(column("orders_30d"))
            .zip(column("orders_90d"))
            .map(|((k, w30), w90)| (k, w30, w90))
            .collect();
        per_customer.sort();
        windows.push(per_customer);
        if day != "2025-03-01" {
            assert_eq!(
                daily_bytes(root.path(), d(day)),
                full_refresh_bytes(root.path(), d(day)).await,
                "{day}"
            );
        }
    }
    assert_eq!(
        carried,
        vec![None, Some(d("2025-03-01")), Some(d("2025-03-03"))]
    );
    assert_eq!(
        windows,
        vec![
            // C1: O1 (30 days old) and O2 (28); C2's O3 is not there yet
            vec![(2, 1, 2)],
            // C1's O2 is 30 days old now; C2: O4
            vec![(1, 1, 1), (2, 0, 2)],
            // C2's O3 has entered; C1: O5
            vec![(2, 2, 2), (3, 1, 3)],
        ]
    );
}

/// A windowed `sum` whose only row leaves the window: the full computation
/// gives NULL, the carried total minus that row would give 0, so that
/// night computes every row; the next night carries again.
#[tokio::test]
async fn a_windowed_sum_left_with_no_rows_is_computed_in_full() {
    let root = Root::new();
    let models = tempfile::tempdir().expect("models dir");
    let stg_orders = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/stg_orders.sql");
    std::fs::copy(&stg_orders, models.path().join("stg_orders.sql")).expect("stg_orders");
    std::fs::write(
        models.path().join("recent_spend.sql"),
        "-- model: recent_spend\n-- materialized: table\n-- purpose: spend in the last 30 days\n\
         -- grain: one row per customer\n\
         -- incremental: per customer_id by stg_orders.ordered_at; windows 30 days\n\
         -- column customer_id: customer\n-- column recent_cents: cents in 30 days, NULL when none\n\
         SELECT customer_id, sum(CAST(round(total_amount * 100) AS BIGINT)) \
         FILTER (WHERE run_date() - order_date < 30) AS recent_cents \
         FROM stg_orders GROUP BY customer_id ORDER BY customer_id\n",
    )
    .expect("model");
    let mut cfg = (*root.ctx(&["orders"], KEY).cfg).clone();
    cfg.models_dir = Some(models.path().to_path_buf());
    let mut ctx = JobContext::open(cfg, attune::context::KeyMode::NotNeeded).expect("context");
    ctx.key = Some(attune::config::Key::new(KEY.as_bytes().to_vec()));
    let nights = [
        // C1's order is 28 days old, and 30 (out of the window) on 03-03
        (
            "2025-03-01",
            "O1,C1,2025-02-01 09:00:00,10.00,EUR,app,false\n",
        ),
        (
            "2025-03-03",
            "O2,C2,2025-03-03 11:00:00,4.00,EUR,app,false\n",
        ),
        (
            "2025-03-04",
            "O3,C2,2025-03-04 11:00:00,5.00,EUR,app,false\n",
        ),
    ];
    let mut carried = Vec::new();
    let mut sums = Vec::new();
    for (day, rows) in nights {
        let out = orders_night(&root, &ctx, day, rows).await;
        let m = out
            .models
            .iter()
            .find(|m| m.model == "recent_spend")
            .expect("recent_spend");
        carried.push(m.carried_from.is_some());
        let b = root.read("marts", "recent_spend", day);
        let cents = common::column::<Int64Array>(&b[0], "recent_cents");
        let mut values: Vec<Option<i64>> = cents.iter().collect();
        values.sort();
        sums.push(values);
    }
    assert_eq!(carried, vec![false, false, true]);
    assert_eq!(
        sums,
        vec![
            vec![Some(1000)],
            vec![None, Some(400)],
            vec![None, Some(900)],
        ]
    );
}
