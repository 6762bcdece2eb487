//! `attune segment` on the shared generated business: complete,
//! deterministic to the byte, consistent between its marts, and named in
//! line with the numbers it reports.

use std::collections::{BTreeMap, BTreeSet};

use attune::segment::{self, NO_PURCHASES_ID};
use datafusion::arrow::array::{
    Array, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};

use crate::common::{self, demo_ctx, demo_lake, read_parquet};

fn bytes(root: &std::path::Path, rel: &str) -> Vec<u8> {
    std::fs::read(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn col<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("{name}: unexpected type"))
}

#[tokio::test]
async fn segments_every_customer_deterministically() {
    let (ctx, date) = demo_ctx();
    let (root, _) = demo_lake();
    let d = date.format("%Y-%m-%d").to_string();
    let first = segment::run(&ctx, date).await.expect("first run");
    let files = [
        format!("marts/segments/dt={d}/part-0.parquet"),
        format!("marts/segment_profiles/dt={d}/part-0.parquet"),
        format!("marts/model_metrics/dt={d}/segment.parquet"),
    ];
    let before: Vec<Vec<u8>> = files.iter().map(|f| bytes(root, f)).collect();
    let second = segment::run(&ctx, date).await.expect("second run");
    for (f, b) in files.iter().zip(&before) {
        assert!(bytes(root, f) == *b, "{f} differs between two runs");
    }
    assert_eq!(first.segments, second.segments);
    assert_eq!(first.chosen_k, second.chosen_k);

    // Every customer of customer_features has exactly one segment.
    let features = customer_ids(root, &d);
    let rows = read_parquet(&root.join(&files[0]));
    let mut seen = BTreeMap::new();
    let mut seen_segment: BTreeMap<i32, usize> = BTreeMap::new();
    let mut names_by_id: BTreeMap<i32, String> = BTreeMap::new();
    for b in &rows {
        let ids = col::<StringArray>(b, "customer_id");
        let seg = col::<Int32Array>(b, "segment_id");
        let name = col::<StringArray>(b, "segment");
        let dist = col::<Float64Array>(b, "distance_to_centroid");
        for i in 0..b.num_rows() {
            *seen.entry(ids.value(i).to_string()).or_insert(0) += 1;
            *seen_segment.entry(seg.value(i)).or_insert(0) += 1;
            assert!(!name.value(i).is_empty());
            let prior = names_by_id.insert(seg.value(i), name.value(i).to_string());
            assert!(
                prior.is_none_or(|p| p == name.value(i)),
                "one name per segment id"
            );
            assert_eq!(
                dist.is_null(i),
                seg.value(i) == NO_PURCHASES_ID,
                "a distance exactly for clustered customers"
            );
        }
    }
    assert!(seen.values().all(|&n| n == 1), "no customer twice");
    let segmented: BTreeSet<String> = seen.keys().cloned().collect();
    assert_eq!(
        segmented, features,
        "exactly the customers of customer_features"
    );
    assert_eq!(first.rows_in as usize, features.len());
    assert_eq!(first.rows_out as usize, features.len());
    let k = first
        .chosen_k
        .expect("the demo has enough buyers to cluster");
    assert!((2..=8).contains(&k));
    let clustered_ids = names_by_id
        .keys()
        .filter(|&&id| id != NO_PURCHASES_ID)
        .count();
    assert_eq!(clustered_ids, k, "every k-means segment has customers");

    // Profiles: one per segment id, same names, shares adding up.
    let prof = read_parquet(&root.join(&files[1]));
    let mut share_sum = 0.0;
    let mut profile_names = BTreeMap::new();
    for b in &prof {
        let id = col::<Int32Array>(b, "segment_id");
        let name = col::<StringArray>(b, "segment");
        let suppressed = col::<BooleanArray>(b, "suppressed");
        let customers = col::<Int64Array>(b, "customers");
        let share = col::<Float64Array>(b, "share");
        let churn = col::<Float64Array>(b, "churn_rate");
        let recency = col::<Float64Array>(b, "median_recency_days");
        for i in 0..b.num_rows() {
            profile_names.insert(id.value(i), name.value(i).to_string());
            // Suppressed, or withheld so that a suppressed one cannot be
            // worked out from the total: no size, and nothing that gives it.
            if suppressed.value(i) || customers.is_null(i) {
                assert!(customers.is_null(i) && share.is_null(i) && churn.is_null(i));
                continue;
            }
            share_sum += share.value(i);
            let members = seen_segment.get(&id.value(i)).copied().unwrap_or(0);
            assert_eq!(
                customers.value(i) as usize,
                members,
                "profile size = rows in segments"
            );
            // Names agree with the numbers shown next to them.
            if name.value(i).starts_with("Lapsed") {
                assert!(
                    churn.value(i) > 0.5,
                    "{}: churn {}",
                    name.value(i),
                    churn.value(i)
                );
                assert!(recency.value(i) > 90.0);
            }
            if name.value(i).starts_with("Loyal regulars") {
                assert!(
                    churn.value(i) < 0.1,
                    "{}: churn {}",
                    name.value(i),
                    churn.value(i)
                );
            }
        }
    }
    assert_eq!(profile_names, names_by_id);
    assert!(
        share_sum <= 1.0 + 1e-9 && share_sum > 0.5,
        "shares {share_sum}"
    );

    // model_metrics: silhouette and inertia for k = 2..=8, the chosen k.
    let mm = read_parquet(&root.join(&files[2]));
    let mut keys = BTreeSet::new();
    let mut chosen = None;
    for b in &mm {
        let metric = col::<StringArray>(b, "metric");
        let key = col::<StringArray>(b, "key");
        let value = col::<Float64Array>(b, "value");
        for i in 0..b.num_rows() {
            if metric.value(i) == "chosen_k" {
                chosen = Some(value.value(i));
            }
            if !key.is_null(i) {
                keys.insert((metric.value(i).to_string(), key.value(i).to_string()));
            }
        }
    }
    assert_eq!(chosen, Some(k as f64));
    for k in 2..=8 {
        for m in ["silhouette", "inertia"] {
            assert!(
                keys.contains(&(m.to_string(), format!("k={k}"))),
                "{m} k={k}"
            );
        }
    }
    for f in segment::features::FEATURES {
        assert!(keys.contains(&("feature_mean".to_string(), f.to_string())));
        assert!(keys.contains(&("feature_sd".to_string(), f.to_string())));
    }
}

/// The customer ids of customer_features for a date.
fn customer_ids(root: &std::path::Path, d: &str) -> BTreeSet<String> {
    let path = root.join(format!("marts/customer_features/dt={d}/part-0.parquet"));
    let mut out = BTreeSet::new();
    for b in read_parquet(&path) {
        // Written by DataFusion, so possibly a view type: cast to plain UTF-8.
        let ids = datafusion::arrow::compute::cast(
            b.column_by_name("customer_id").expect("customer_id"),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .expect("cast");
        let ids = ids.as_any().downcast_ref::<StringArray>().expect("utf8");
        for i in 0..b.num_rows() {
            out.insert(ids.value(i).to_string());
        }
    }
    out
}

#[tokio::test]
async fn a_date_without_customer_features_is_missing_input() {
    let (ctx, date) = demo_ctx();
    let later = date + chrono::Duration::days(30);
    let err = segment::run(&ctx, later).await.expect_err("no features");
    assert!(matches!(err, attune::Error::MissingInput { .. }), "{err}");
    assert!(err.to_string().contains("attune transform"));
}

#[test]
fn the_cli_prints_the_segments() {
    let (root, date) = demo_lake();
    let out = common::attune()
        .args(["--root", &root.to_string_lossy(), "segment", "--date"])
        .arg(date.format("%Y-%m-%d").to_string())
        .output()
        .expect("run attune");
    crate::common::assert_succeeded(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("k = "), "{stdout}");
    // A header line, then one line per segment (the demo has customers
    // without a purchase, so segment 0 is among them).
    assert!(stdout.contains("No purchases yet"), "{stdout}");
    assert!(stdout.lines().count() >= 4, "{stdout}");
}

/// Speed on the 1M-customer scale (issue 5: "k-means with k search under
/// 10 s on 2 cores"). Run in release:
/// `cargo test --release --test it segment::million -- --ignored --nocapture`.
/// Synthetic customers (six behavioural kinds with noise, 8% without a
/// purchase) stand in for customer_features; the timed part is everything
/// after reading: features, k search (k = 2..=8, fit sample 50,000,
/// silhouette sample 3,000, 4 starts), assignment of all, profiles.
#[test]
#[ignore = "benchmark: run in release with --ignored"]
fn million_customers_segment_in_under_ten_seconds() {
    use attune::segment::features::{Customers, Design, FEATURES};
    use attune::segment::kmeans::{self, SearchParams};
    use rand::{Rng, SeedableRng};

    let n = 1_000_000;
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(2026);
    let mut c = Customers {
        raw: vec![Vec::with_capacity(n); FEATURES.len()],
        ..Customers::default()
    };
    // (share, recency, frequency, order value, share of orders in the last
    // 90 days, tenure) per kind; the gap follows from tenure and frequency.
    type Range = (f64, f64);
    type Kind = (f64, Range, Range, Range, f64, Range);
    let kinds: [Kind; 6] = [
        (
            0.25,
            (0.0, 10.0),
            (20.0, 80.0),
            (6.0, 12.0),
            0.4,
            (150.0, 700.0),
        ),
        (0.15, (0.0, 20.0), (1.0, 5.0), (5.0, 12.0), 1.0, (1.0, 80.0)),
        (
            0.20,
            (91.0, 700.0),
            (1.0, 20.0),
            (4.0, 10.0),
            0.0,
            (200.0, 900.0),
        ),
        (
            0.15,
            (20.0, 90.0),
            (2.0, 8.0),
            (4.0, 10.0),
            0.2,
            (100.0, 700.0),
        ),
        (
            0.10,
            (0.0, 30.0),
            (8.0, 30.0),
            (25.0, 60.0),
            0.3,
            (100.0, 700.0),
        ),
        (
            0.07,
            (30.0, 90.0),
            (15.0, 40.0),
            (6.0, 12.0),
            0.1,
            (200.0, 700.0),
        ),
    ];
    let ix = |f: &str| attune::segment::features::index(f).expect("feature");
    let [
        recency,
        frequency,
        monetary,
        aov_i,
        orders_90d,
        tenure_i,
        gap_i,
    ] = [
        "recency_days",
        "frequency",
        "monetary_total",
        "avg_order_value",
        "orders_90d",
        "tenure_days",
        "avg_days_between_orders",
    ]
    .map(ix);
    for i in 0..n {
        c.ids.push(format!("{i:012}"));
        let mut pick = rng.random::<f64>();
        let mut raw = vec![None; FEATURES.len()];
        let kind = kinds.iter().find(|k| {
            pick -= k.0;
            pick < 0.0
        });
        match kind {
            Some(&(_, rec, freq, aov, recent, tenure)) => {
                let f = rng.random_range(freq.0..freq.1).round().max(1.0);
                let a = rng.random_range(aov.0..aov.1);
                let t = rng.random_range(tenure.0..tenure.1).round();
                let r = rng.random_range(rec.0..rec.1).round().min(t);
                let gap = (f > 1.0).then(|| (t - r).max(1.0) / (f - 1.0));
                raw[recency] = Some(r);
                raw[frequency] = Some(f);
                raw[monetary] = Some(f * a);
                raw[aov_i] = Some(a);
                raw[orders_90d] = Some((f * recent * rng.random_range(0.5..1.0)).round());
                raw[tenure_i] = Some(t);
                raw[gap_i] = gap;
            }
            None => {
                raw[frequency] = Some(0.0);
                raw[monetary] = Some(0.0);
                raw[orders_90d] = Some(0.0);
                raw[tenure_i] = Some(rng.random_range(0.0..900.0_f64).round());
            }
        }
        for (f, v) in raw.into_iter().enumerate() {
            c.raw[f].push(v);
        }
        c.last_nps.push(
            rng.random_bool(0.2)
                .then(|| rng.random_range(0..=10) as f64),
        );
    }
    let cfg = attune::config::ValidConfig::default().segment;

    let started = std::time::Instant::now();
    let design = Design::build(&c, c.purchasers().expect("purchasers")).expect("design");
    let built = started.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let search = kmeans::search(
        design.x.view(),
        &SearchParams {
            k_min: cfg.k_min,
            k_max: cfg.k_max,
            fit_sample: cfg.fit_sample,
            silhouette_sample: cfg.silhouette_sample,
            restarts: cfg.restarts,
            seed: cfg.seed,
        },
    )
    .expect("search")
    .expect("k");
    let searched = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let _ = kmeans::assign(search.best().centroids.view(), design.x.view());
    let assigned = t.elapsed().as_secs_f64();

    let t = std::time::Instant::now();
    let s = segment::segment(&c, &cfg, 10).expect("segment");
    let whole = t.elapsed().as_secs_f64();
    println!(
        "1M customers ({} clustered): features {built:.2}s, k search {searched:.2}s (k = {}), assign {assigned:.2}s; whole segment() {whole:.2}s",
        design.rows.len(),
        search.best().k
    );
    for p in &s.profiles {
        println!(
            "  {:>2} {:<36} {:?}",
            p.segment_id, p.segment_name, p.customers
        );
    }
    assert!(searched < 10.0, "k search took {searched:.1}s");
    assert!(whole < 20.0, "segment() took {whole:.1}s");
}
