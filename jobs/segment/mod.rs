//! Customer segmentation (`attune segment`): k-means on behavioural
//! features, k chosen by silhouette, segments named from their centroids.
//!
//! Reads `marts/customer_features` of the run date (nothing else: no
//! sensitive attribute can shape a segment); writes `marts/segments`
//! (customer → segment), `marts/segment_profiles` (one row per segment,
//! small segments suppressed) and its rows of `marts/model_metrics`
//! (silhouette and inertia of every k tried, the chosen k, the
//! standardization). Customers without a purchase are not clustered: they
//! form segment 0, "No purchases yet".
//!
//! Steps: [`features`] (log1p, impute, standardize) → [`kmeans`] (seeded
//! k-means++ starts, linfa Lloyd iterations, k search with the exact
//! [`silhouette`] on a seeded sample) → segments ordered by centroid spend
//! (so ids are stable) → [`naming`] → [`profile`].

pub mod features;
pub mod kmeans;
pub mod naming;
pub mod profile;
pub mod silhouette;

use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use datafusion::arrow::array::{ArrayRef, Float64Builder, Int32Builder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use ndarray::{Array2, Axis};
use serde::Serialize;
use tracing::{info, instrument, warn};

use self::features::{Customers, Design, FEATURES, Scale};
use self::kmeans::SearchParams;
use self::naming::{NO_PURCHASES, Population};
use self::profile::{ProfileParams, SegmentProfile};
use crate::config::SegmentConfig;
use crate::context::JobContext;
use crate::mart::{self, Metric};
use crate::storage::partition_dir;
use crate::{Error, Result, catalog};

/// Lake columns this job reads directly: none (it reads only
/// `marts/customer_features`, whose lineage the transform records).
pub const LAKE_COLUMNS_READ: &[(&str, &str)] = &[];

/// The job's name in `marts/model_metrics` and the manifest.
pub const JOB: &str = "segment";

/// The id of the "No purchases yet" segment; clustered segments are 1..=k.
pub const NO_PURCHASES_ID: i32 = 0;

/// One segment, as the outcome reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentSummary {
    pub segment_id: i32,
    pub segment_name: String,
    /// `None` when the segment is smaller than `min_group_size`, or its
    /// size is withheld so that such a segment cannot be worked out.
    pub customers: Option<u64>,
}

/// What `attune segment` did.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentOutcome {
    pub date: NaiveDate,
    /// Customers read from customer_features.
    pub rows_in: u64,
    /// Rows written to marts/segments.
    pub rows_out: u64,
    pub warnings: Vec<String>,
    /// `None` when too few customers had purchased to try any k.
    pub chosen_k: Option<usize>,
    pub silhouette: Option<f64>,
    pub clustered_customers: u64,
    pub unclustered_customers: u64,
    pub fit_rows: u64,
    pub silhouette_rows: u64,
    pub segments: Vec<SegmentSummary>,
    /// Wall time of features + k search + assignment + profiles.
    pub model_seconds: f64,
}

/// The result of segmenting, before anything is written.
#[derive(Debug, Clone)]
pub struct Segmentation {
    /// Per customer (in [`Customers`] order): the segment id.
    pub segment_of: Vec<i32>,
    /// Per customer: distance to the segment's centroid in standardized
    /// units; `None` for customers not clustered.
    pub distance: Vec<Option<f64>>,
    /// By segment id.
    pub profiles: Vec<SegmentProfile>,
    pub metrics: Vec<Metric>,
    pub chosen_k: Option<usize>,
    pub silhouette: Option<f64>,
    pub clustered: usize,
    pub fit_rows: usize,
    pub silhouette_rows: usize,
    pub warnings: Vec<String>,
}

/// Segments the customers of one date. Pure computation: everything random
/// comes from `cfg.seed`.
pub fn segment(
    customers: &Customers,
    cfg: &SegmentConfig,
    min_group_size: usize,
) -> Result<Segmentation> {
    let mut warnings = Vec::new();
    let mut metrics = Vec::new();
    let purchasers = customers.purchasers()?;
    let n = customers.len();
    let mut segment_of = vec![NO_PURCHASES_ID; n];
    let mut distance = vec![None; n];
    let params = ProfileParams {
        total_customers: n,
        min_group_size,
        inactive_days: cfg.inactive_days,
    };
    let metric = |m: &str, v: f64| Metric::new("kmeans", m, v);

    let mut profiles = Vec::new();
    let mut chosen_k = None;
    let mut best_silhouette = None;
    let (mut fit_rows, mut silhouette_rows) = (0, 0);
    if !purchasers.is_empty() {
        let design = Design::build(customers, purchasers)?;
        for (j, f) in FEATURES.iter().enumerate() {
            let scale = Scale::of(f).label();
            metrics.push(
                metric("feature_mean", design.scaler.means[j])
                    .key(*f)
                    .detail(format!("mean after {scale}, before standardizing")),
            );
            metrics.push(
                metric("feature_sd", design.scaler.sds[j])
                    .key(*f)
                    .detail(format!("population standard deviation after {scale}")),
            );
            metrics.push(
                metric("imputed_values", design.imputed[j] as f64)
                    .key(*f)
                    .detail("clustered customers whose value was missing and imputed"),
            );
        }
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
        )?;
        let centroids: Array2<f64> = match &search {
            Some(s) => {
                for f in &s.fits {
                    let key = format!("k={}", f.k);
                    metrics.push(Metric {
                        model: "kmeans".into(),
                        metric: "silhouette".into(),
                        key: Some(key.clone()),
                        value: f.silhouette,
                        detail: Some(match f.silhouette {
                            Some(_) => format!(
                                "mean silhouette, Euclidean on standardized features, seeded sample of {} customers",
                                s.silhouette_rows
                            ),
                            None => "undefined: the sample fell into a single cluster".into(),
                        }),
                    });
                    metrics.push(metric("inertia", f.inertia).key(key).detail(format!(
                        "mean squared distance to the nearest centroid, standardized units, fitting sample of {} customers",
                        s.fit_rows
                    )));
                }
                let best = s.best();
                chosen_k = Some(best.k);
                best_silhouette = best.silhouette;
                fit_rows = s.fit_rows;
                silhouette_rows = s.silhouette_rows;
                metrics.push(metric("chosen_k", best.k as f64).detail(format!(
                    "highest silhouette of k = {}..={}",
                    s.fits.first().map_or(0, |f| f.k),
                    s.fits.last().map_or(0, |f| f.k)
                )));
                best.centroids.clone()
            }
            None => {
                let w = format!(
                    "only {} customers with purchases: too few to try k = {}; they form one segment",
                    design.rows.len(),
                    cfg.k_min
                );
                warn!(
                    customers = design.rows.len(),
                    "too few customers to cluster"
                );
                warnings.push(w);
                metrics.push(Metric {
                    model: "kmeans".into(),
                    metric: "chosen_k".into(),
                    key: None,
                    value: Some(1.0),
                    detail: Some("too few customers with purchases to try any k".into()),
                });
                design
                    .x
                    .mean_axis(Axis(0))
                    .unwrap_or_else(|| ndarray::Array1::zeros(FEATURES.len()))
                    .insert_axis(Axis(0))
            }
        };
        let (labels, dists) = kmeans::assign(centroids.view(), design.x.view());

        // Segment ids: clusters that got customers, by centroid spend
        // (highest first), ties by the whole centroid, so ids never depend
        // on k-means' internal cluster numbering.
        let mut sizes = vec![0usize; centroids.nrows()];
        for &l in &labels {
            sizes[l] += 1;
        }
        let original: Vec<Vec<f64>> = centroids
            .rows()
            .into_iter()
            .map(|c| design.scaler.to_original(c))
            .collect();
        let money = features::index("monetary_total")?;
        let mut order: Vec<usize> = (0..centroids.nrows()).filter(|&c| sizes[c] > 0).collect();
        order.sort_by(|&a, &b| {
            original[b][money]
                .total_cmp(&original[a][money])
                .then_with(|| {
                    centroids
                        .row(a)
                        .iter()
                        .zip(centroids.row(b).iter())
                        .map(|(x, y)| x.total_cmp(y))
                        .find(|o| o.is_ne())
                        .unwrap_or(std::cmp::Ordering::Equal)
                })
        });
        let mut id_of = vec![NO_PURCHASES_ID; centroids.nrows()];
        for (pos, &c) in order.iter().enumerate() {
            id_of[c] = pos as i32 + 1;
        }
        let population = Population::new(
            &(0..FEATURES.len())
                .map(|f| {
                    design
                        .rows
                        .iter()
                        .filter_map(|&i| customers.raw[f][i])
                        .collect()
                })
                .collect::<Vec<Vec<f64>>>(),
        );
        let ordered_original: Vec<Vec<f64>> = order.iter().map(|&c| original[c].clone()).collect();
        let ordered_std: Vec<Vec<f64>> = order.iter().map(|&c| centroids.row(c).to_vec()).collect();
        let named = naming::name_segments(
            &ordered_original,
            &ordered_std,
            &population,
            cfg.inactive_days,
        )?;
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); order.len()];
        for (r, &i) in design.rows.iter().enumerate() {
            let id = id_of[labels[r]];
            segment_of[i] = id;
            distance[i] = Some(dists[r]);
            members[(id - 1) as usize].push(i);
        }
        for (pos, named) in named.iter().enumerate() {
            profiles.push(profile::profile(
                customers,
                &members[pos],
                pos as i32 + 1,
                &named.name,
                true,
                &named.reason,
                params,
            )?);
        }
    }
    let unclustered: Vec<usize> = (0..n)
        .filter(|&i| segment_of[i] == NO_PURCHASES_ID)
        .collect();
    if !unclustered.is_empty() {
        profiles.insert(
            0,
            profile::profile(
                customers,
                &unclustered,
                NO_PURCHASES_ID,
                NO_PURCHASES,
                false,
                "no purchase yet: not clustered",
                params,
            )?,
        );
    }
    let withheld = profile::protect_totals(&mut profiles, min_group_size);
    let clustered = n - unclustered.len();
    let count_metric = |name: &str, value: usize, withhold: bool, detail: Option<&str>| {
        let why = "withheld: it would give away a segment of fewer than min_group_size customers";
        Metric {
            model: "kmeans".into(),
            metric: name.into(),
            key: None,
            value: (!withhold).then_some(value as f64),
            detail: match (detail, withhold) {
                (Some(d), true) => Some(format!("{d}; {why}")),
                (None, true) => Some(why.into()),
                (d, false) => d.map(String::from),
            },
        }
    };
    metrics.push(count_metric(
        "customers_clustered",
        clustered,
        withheld.clustered_total,
        None,
    ));
    metrics.push(count_metric(
        "customers_unclustered",
        unclustered.len(),
        withheld.shares,
        Some("customers without a purchase, in segment 0 (No purchases yet)"),
    ));
    let suppressed = profiles.iter().filter(|p| p.suppressed).count();
    if suppressed > 0 {
        warnings.push(format!(
            "{suppressed} segment(s) smaller than min_group_size = {min_group_size}: profile numbers suppressed"
        ));
    }
    if withheld.segments > 0 {
        warnings.push(format!(
            "{} more segment(s) shown without size, share and churn rate: with them the total would give the suppressed ones away",
            withheld.segments
        ));
    }
    if withheld.shares {
        warnings.push(
            "No purchases yet is suppressed: shares withheld (all customers minus those with a purchase would give it away)".into(),
        );
    }
    Ok(Segmentation {
        segment_of,
        distance,
        profiles,
        metrics,
        chosen_k,
        silhouette: best_silhouette,
        clustered,
        fit_rows,
        silhouette_rows,
        warnings,
    })
}

/// Schema of `marts/segments` (documented in `schemas/marts/segments.toml`).
pub fn segments_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("segment_id", DataType::Int32, false),
        Field::new("segment", DataType::Utf8, false),
        Field::new("distance_to_centroid", DataType::Float64, true),
    ]))
}

/// The customer → segment rows, in customer order.
pub fn segments_batch(customers: &Customers, s: &Segmentation) -> Result<RecordBatch> {
    let names: std::collections::BTreeMap<i32, &str> = s
        .profiles
        .iter()
        .map(|p| (p.segment_id, p.segment_name.as_str()))
        .collect();
    let mut ids = StringBuilder::new();
    let mut seg = Int32Builder::new();
    let mut name = StringBuilder::new();
    let mut dist = Float64Builder::new();
    for (i, id) in customers.ids.iter().enumerate() {
        let sid = s.segment_of[i];
        let sname = names
            .get(&sid)
            .ok_or_else(|| Error::Internal(format!("segment {sid} has no profile")))?;
        ids.append_value(id);
        seg.append_value(sid);
        name.append_value(sname);
        dist.append_option(s.distance[i]);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(seg.finish()),
        Arc::new(name.finish()),
        Arc::new(dist.finish()),
    ];
    Ok(RecordBatch::try_new(segments_schema(), columns)?)
}

/// Reads `marts/customer_features` of `date`.
pub async fn read_customers(ctx: &JobContext, date: NaiveDate) -> Result<Customers> {
    let dir = partition_dir("marts", "customer_features", date);
    if !ctx.storage.exists_prefix(&dir).await? {
        return Err(Error::MissingInput {
            what: format!("marts/customer_features for {date}"),
            hint: format!("run `attune transform --date {date}` first"),
        });
    }
    let (session, _) = catalog::session_with_all(&ctx.storage).await?;
    let batches = session
        .sql(&Customers::query(date))
        .await?
        .collect()
        .await?;
    Customers::from_batches(&batches)
}

/// Runs the segmentation for `date` and writes its marts.
#[instrument(skip_all, fields(job = "segment", run_id = %ctx.run_id))]
pub async fn run(ctx: &JobContext, date: NaiveDate) -> Result<SegmentOutcome> {
    let customers = read_customers(ctx, date).await?;
    let cfg = ctx.cfg.segment.clone();
    let min_group_size = ctx.cfg.min_group_size;
    let started = Instant::now();
    // CPU-bound: keep it off the async workers.
    let (customers, seg) = tokio::task::spawn_blocking(move || {
        let seg = segment(&customers, &cfg, min_group_size);
        (customers, seg)
    })
    .await
    .map_err(crate::nightly::panics::joined("segmentation"))?;
    let seg = seg?;
    let model_seconds = started.elapsed().as_secs_f64();
    let batch = segments_batch(&customers, &seg)?;
    let rows_out = mart::publish(
        &ctx.storage,
        "segments",
        date,
        segments_schema(),
        std::slice::from_ref(&batch),
    )
    .await?;
    let profiles = profile::batch(&seg.profiles, customers.currency.as_deref())?;
    mart::publish(
        &ctx.storage,
        "segment_profiles",
        date,
        profile::schema(),
        &[profiles],
    )
    .await?;
    mart::publish_model_metrics(&ctx.storage, date, JOB, &seg.metrics).await?;
    let segments: Vec<SegmentSummary> = seg
        .profiles
        .iter()
        .map(|p| SegmentSummary {
            segment_id: p.segment_id,
            segment_name: p.segment_name.clone(),
            customers: p.customers.map(|c| c as u64),
        })
        .collect();
    info!(
        customers = customers.len(),
        clustered = seg.clustered,
        k = seg.chosen_k.unwrap_or(1),
        segments = segments.len(),
        seconds = model_seconds,
        "segmented"
    );
    Ok(SegmentOutcome {
        date,
        rows_in: customers.len() as u64,
        rows_out,
        warnings: seg.warnings,
        chosen_k: seg.chosen_k,
        silhouette: seg.silhouette,
        clustered_customers: seg.clustered as u64,
        unclustered_customers: (customers.len() - seg.clustered) as u64,
        fit_rows: seg.fit_rows as u64,
        silhouette_rows: seg.silhouette_rows as u64,
        segments,
        model_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// A planted group: ranges (uniform) in original units.
    struct Group {
        name: &'static str,
        size: usize,
        recency: (f64, f64),
        frequency: (f64, f64),
        aov: (f64, f64),
        orders_90d: (f64, f64),
        tenure: (f64, f64),
        gap: (f64, f64),
    }

    /// Five behavioural groups, each built to satisfy exactly one naming
    /// rule, plus customers with no purchase. Returns the customers and the
    /// planted group name of each.
    fn planted(seed: u64) -> (Customers, Vec<&'static str>) {
        let groups = [
            Group {
                name: "Loyal regulars",
                size: 150,
                recency: (0.0, 4.0),
                frequency: (35.0, 50.0),
                aov: (6.0, 9.0),
                orders_90d: (12.0, 18.0),
                tenure: (250.0, 400.0),
                gap: (3.0, 5.0),
            },
            Group {
                name: "New customers",
                size: 120,
                recency: (1.0, 8.0),
                frequency: (2.0, 4.0),
                aov: (6.0, 9.0),
                orders_90d: (2.0, 4.0),
                tenure: (10.0, 40.0),
                gap: (4.0, 8.0),
            },
            Group {
                name: "Lapsed",
                size: 120,
                recency: (150.0, 300.0),
                frequency: (3.0, 8.0),
                aov: (5.0, 8.0),
                orders_90d: (0.0, 0.0),
                tenure: (300.0, 600.0),
                gap: (10.0, 20.0),
            },
            Group {
                name: "Big spenders",
                size: 200,
                recency: (5.0, 15.0),
                frequency: (10.0, 15.0),
                aov: (40.0, 60.0),
                orders_90d: (4.0, 6.0),
                tenure: (200.0, 400.0),
                gap: (8.0, 12.0),
            },
            Group {
                name: "Drifting away",
                size: 110,
                recency: (40.0, 70.0),
                frequency: (20.0, 30.0),
                aov: (6.0, 9.0),
                orders_90d: (1.0, 3.0),
                tenure: (250.0, 400.0),
                gap: (3.0, 6.0),
            },
        ];
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut u = |(a, b): (f64, f64)| if b > a { rng.random_range(a..b) } else { a };
        // (features, last NPS, planted group)
        type Row = (Vec<Option<f64>>, Option<f64>, &'static str);
        let mut rows: Vec<Row> = Vec::new();
        for g in &groups {
            for _ in 0..g.size {
                let frequency = u(g.frequency).round();
                let aov = u(g.aov);
                let values = [
                    ("recency_days", u(g.recency).round()),
                    ("frequency", frequency),
                    ("monetary_total", frequency * aov),
                    ("avg_order_value", aov),
                    ("orders_90d", u(g.orders_90d).round()),
                    ("tenure_days", u(g.tenure).round()),
                    ("avg_days_between_orders", u(g.gap)),
                ];
                let mut raw = vec![None; FEATURES.len()];
                for (f, v) in values {
                    raw[features::index(f).expect("feature")] = Some(v);
                }
                let nps = u((0.0, 10.99)).floor();
                rows.push((raw, Some(nps), g.name));
            }
        }
        for _ in 0..60 {
            let mut raw = vec![None; FEATURES.len()];
            raw[features::index("frequency").expect("f")] = Some(0.0);
            raw[features::index("monetary_total").expect("m")] = Some(0.0);
            raw[features::index("orders_90d").expect("o")] = Some(0.0);
            raw[features::index("tenure_days").expect("t")] = Some(u((0.0, 300.0)).round());
            rows.push((raw, None, NO_PURCHASES));
        }
        // Customer ids in a shuffled order, as pseudonyms are.
        let mut keyed: Vec<(u64, usize)> = (0..rows.len()).map(|i| (rng_key(seed, i), i)).collect();
        keyed.sort_unstable();
        let mut c = Customers {
            raw: vec![Vec::new(); FEATURES.len()],
            ..Customers::default()
        };
        let mut truth = Vec::new();
        for (pos, (_, i)) in keyed.iter().enumerate() {
            let (raw, nps, name) = &rows[*i];
            c.ids.push(format!("{pos:016x}"));
            for (f, v) in raw.iter().enumerate() {
                c.raw[f].push(*v);
            }
            c.last_nps.push(*nps);
            truth.push(*name);
        }
        (c, truth)
    }

    fn rng_key(seed: u64, i: usize) -> u64 {
        Xoshiro256PlusPlus::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .random()
    }

    fn config() -> SegmentConfig {
        crate::config::ValidConfig::default().segment
    }

    #[test]
    fn planted_groups_are_recovered_and_named() {
        let (customers, truth) = planted(17);
        let s = segment(&customers, &config(), 10).expect("segment");
        assert_eq!(s.chosen_k, Some(5), "five planted groups");
        let name_of: std::collections::BTreeMap<i32, &str> = s
            .profiles
            .iter()
            .map(|p| (p.segment_id, p.segment_name.as_str()))
            .collect();
        let mut wrong = 0;
        for (i, planted) in truth.iter().enumerate() {
            if name_of[&s.segment_of[i]] != *planted {
                wrong += 1;
            }
        }
        assert_eq!(
            wrong, 0,
            "every customer lands in the segment named for its planted group"
        );
        let mut names: Vec<&str> = name_of.values().copied().collect();
        names.sort_unstable();
        assert_eq!(
            names,
            vec![
                "Big spenders",
                "Drifting away",
                "Lapsed",
                "Loyal regulars",
                "New customers",
                NO_PURCHASES
            ]
        );
        // Ids follow centroid spend: Big spenders (≈ 12 × 50) first.
        assert_eq!(name_of[&1], "Big spenders");
        assert_eq!(name_of[&NO_PURCHASES_ID], NO_PURCHASES);
        let lapsed = s
            .profiles
            .iter()
            .find(|p| p.segment_name == "Lapsed")
            .expect("lapsed");
        assert_eq!(lapsed.churn_rate, Some(1.0));
        assert_eq!(lapsed.customers, Some(120));
        let loyal = s
            .profiles
            .iter()
            .find(|p| p.segment_name == "Loyal regulars")
            .expect("loyal");
        assert_eq!(loyal.churn_rate, Some(0.0));
        let shares: f64 = s.profiles.iter().filter_map(|p| p.share).sum();
        assert!((shares - 1.0).abs() < 1e-12);
        // Metrics: every k tried, the chosen one, the standardization.
        for k in 2..=8 {
            let key = format!("k={k}");
            for m in ["silhouette", "inertia"] {
                assert!(
                    s.metrics.iter().any(|x| x.metric == m
                        && x.key.as_deref() == Some(key.as_str())
                        && x.value.is_some()),
                    "{m} {key}"
                );
            }
        }
        let chosen = s
            .metrics
            .iter()
            .find(|m| m.metric == "chosen_k")
            .expect("chosen_k");
        assert_eq!(chosen.value, Some(5.0));
        for f in FEATURES {
            assert!(
                s.metrics
                    .iter()
                    .any(|m| m.metric == "feature_sd" && m.key.as_deref() == Some(*f))
            );
        }
    }

    #[test]
    fn same_data_same_segments() {
        let (customers, _) = planted(5);
        let a = segment(&customers, &config(), 10).expect("a");
        let b = segment(&customers, &config(), 10).expect("b");
        assert_eq!(a.segment_of, b.segment_of);
        assert_eq!(a.profiles, b.profiles);
        assert_eq!(a.metrics, b.metrics);
    }

    #[test]
    fn small_segments_are_assigned_but_suppressed() {
        let (customers, _) = planted(3);
        // With min_group_size above every group, every profile is suppressed
        // and every customer still has a segment.
        let s = segment(&customers, &config(), 500).expect("segment");
        assert!(
            s.profiles
                .iter()
                .all(|p| p.suppressed && p.customers.is_none())
        );
        assert!(s.warnings.iter().any(|w| w.contains("suppressed")));
        let ids: std::collections::BTreeSet<i32> =
            s.profiles.iter().map(|p| p.segment_id).collect();
        assert!(s.segment_of.iter().all(|id| ids.contains(id)));
    }

    #[test]
    fn too_few_buyers_form_one_segment() {
        let (customers, _) = planted(9);
        // Keep two buyers and the customers without a purchase.
        let freq = features::index("frequency").expect("f");
        let keep: Vec<usize> = {
            let buyers: Vec<usize> = (0..customers.len())
                .filter(|&i| customers.raw[freq][i].is_some_and(|f| f > 0.0))
                .take(2)
                .collect();
            (0..customers.len())
                .filter(|i| buyers.contains(i) || customers.raw[freq][*i] == Some(0.0))
                .collect()
        };
        let customers = subset(&customers, &keep);
        let s = segment(&customers, &config(), 10).expect("segment");
        assert_eq!(s.chosen_k, None);
        assert_eq!(s.clustered, 2);
        assert!(s.warnings.iter().any(|w| w.contains("too few")));
        assert_eq!(s.profiles.len(), 2, "No purchases yet + one segment");
        let batch = segments_batch(&customers, &s).expect("batch");
        assert_eq!(batch.num_rows(), customers.len());
    }

    /// The customers at positions `keep`, in that order.
    fn subset(c: &Customers, keep: &[usize]) -> Customers {
        Customers {
            ids: keep.iter().map(|&i| c.ids[i].clone()).collect(),
            raw: c
                .raw
                .iter()
                .map(|col| keep.iter().map(|&i| col[i]).collect())
                .collect(),
            last_nps: keep.iter().map(|&i| c.last_nps[i]).collect(),
            currency: c.currency.clone(),
        }
    }

    /// The planted customers with only `n` of the group `name` left.
    fn with_few(seed: u64, name: &str, n: usize) -> Customers {
        let (c, truth) = planted(seed);
        let mut seen = 0;
        let keep: Vec<usize> = (0..c.len())
            .filter(|&i| {
                if truth[i] != name {
                    return true;
                }
                seen += 1;
                seen <= n
            })
            .collect();
        subset(&c, &keep)
    }

    /// What a reader of segment_profiles and model_metrics can subtract:
    /// all customers (a shown size over its share), and the customers with
    /// a purchase (`customers_clustered`), minus the sizes shown must leave
    /// none or at least `min_group_size` customers, never a suppressed
    /// segment's size. Six Big spenders (spend far from everyone else's)
    /// form a segment of their own; four customers without a purchase make
    /// "No purchases yet" too small.
    #[test]
    fn a_suppressed_segment_cannot_be_worked_out_from_the_totals() {
        let min = 10;
        let not_small = |what: &str, left: f64| {
            assert!(
                left == 0.0 || left >= min as f64,
                "{what}: {left} customers left over, a hidden segment"
            );
        };
        for (group, few) in [("Big spenders", 6), (NO_PURCHASES, 4)] {
            let customers = with_few(17, group, few);
            let s = segment(&customers, &config(), min).expect("segment");
            let small = s
                .profiles
                .iter()
                .find(|p| p.segment_name == group)
                .expect("the small group is a segment of its own");
            assert!(small.suppressed, "{group}: {few} customers");
            let shown = |clustered: Option<bool>| -> f64 {
                s.profiles
                    .iter()
                    .filter(|p| clustered.is_none_or(|c| p.clustered == c))
                    .filter_map(|p| p.customers)
                    .sum::<i64>() as f64
            };
            let metric = |m: &str| {
                s.metrics
                    .iter()
                    .find(|x| x.metric == m)
                    .expect("metric")
                    .value
            };
            if let Some(all) = s
                .profiles
                .iter()
                .find_map(|p| Some(p.customers? as f64 / p.share?))
            {
                not_small(
                    &format!("{group}: all customers"),
                    all.round() - shown(None),
                );
            }
            if let Some(buyers) = metric("customers_clustered") {
                not_small(&format!("{group}: buyers"), buyers - shown(Some(true)));
            }
            assert_eq!(
                metric("customers_unclustered").is_none(),
                group == NO_PURCHASES,
                "{group}: the size of No purchases yet is withheld only when it is small"
            );
            assert!(
                s.profiles
                    .iter()
                    .filter(|p| p.customers.is_none())
                    .all(|p| p.share.is_none() && p.churn_rate.is_none()),
                "{group}: a withheld size leaves no share or churn rate to give it back"
            );
        }
    }

    #[test]
    fn segments_batch_matches_the_documented_mart() {
        let (customers, _) = planted(1);
        let s = segment(&customers, &config(), 10).expect("segment");
        let b = segments_batch(&customers, &s).expect("batch");
        mart::doc("segments")
            .expect("documented")
            .check(&b.schema())
            .expect("matches schemas/marts/segments.toml");
        assert_eq!(b.num_rows(), customers.len());
    }
}
