//! `attune roi`: on generated businesses against the planted ground truth,
//! with a CLTV fixture table, and on a hand-made lake whose answers can be
//! worked out on paper.

use std::collections::BTreeMap;
use std::sync::Arc;

use attune::config::ValidConfig;
use attune::context::JobContext;
use attune::generate::{GenerateParams, GroundTruth};
use attune::roi::RoiOutcome;
use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, new_null_array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use object_store::path::Path;

use crate::common::{KEY, read_parquet};

/// One row of marts/initiative_roi, as read back.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    initiative_id: String,
    design: String,
    evidence: String,
    metric: String,
    treated_n: Option<i64>,
    control_n: Option<i64>,
    treated_value: Option<f64>,
    control_value: Option<f64>,
    effect: Option<f64>,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
    incremental_value: Option<f64>,
    incremental_value_ci: (Option<f64>, Option<f64>),
    roi: Option<f64>,
    roi_ci: (Option<f64>, Option<f64>),
    explanation: String,
}

fn read_rows(root: &std::path::Path, date: NaiveDate) -> Vec<Row> {
    let path = root
        .join("marts/initiative_roi")
        .join(format!("dt={date}"))
        .join("part-0.parquet");
    let mut out = Vec::new();
    for b in read_parquet(&path) {
        let s = |name: &str| {
            let a = b
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
                .unwrap_or_else(|| panic!("string column {name}"));
            (0..a.len())
                .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
                .collect::<Vec<_>>()
        };
        let f = |name: &str| {
            let a = b
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<Float64Array>().cloned())
                .unwrap_or_else(|| panic!("float column {name}"));
            (0..a.len())
                .map(|i| a.is_valid(i).then(|| a.value(i)))
                .collect::<Vec<_>>()
        };
        let n = |name: &str| {
            let a = b
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned())
                .unwrap_or_else(|| panic!("int column {name}"));
            (0..a.len())
                .map(|i| a.is_valid(i).then(|| a.value(i)))
                .collect::<Vec<_>>()
        };
        let (id, design, evidence, metric, expl) = (
            s("initiative_id"),
            s("design"),
            s("evidence"),
            s("metric"),
            s("explanation"),
        );
        let (tn, cn) = (n("treated_n"), n("control_n"));
        let (tv, cv, e, lo, hi) = (
            f("treated_value"),
            f("control_value"),
            f("effect"),
            f("ci_low"),
            f("ci_high"),
        );
        let (iv, ivl, ivh, r, rl, rh) = (
            f("incremental_value"),
            f("incremental_value_ci_low"),
            f("incremental_value_ci_high"),
            f("roi"),
            f("roi_ci_low"),
            f("roi_ci_high"),
        );
        for i in 0..b.num_rows() {
            out.push(Row {
                initiative_id: id[i].clone().expect("id"),
                design: design[i].clone().expect("design"),
                evidence: evidence[i].clone().expect("evidence"),
                metric: metric[i].clone().expect("metric"),
                treated_n: tn[i],
                control_n: cn[i],
                treated_value: tv[i],
                control_value: cv[i],
                effect: e[i],
                ci_low: lo[i],
                ci_high: hi[i],
                incremental_value: iv[i],
                incremental_value_ci: (ivl[i], ivh[i]),
                roi: r[i],
                roi_ci: (rl[i], rh[i]),
                explanation: expl[i].clone().expect("explanation"),
            });
        }
    }
    out
}

fn row<'a>(rows: &'a [Row], id: &str, metric: &str) -> &'a Row {
    rows.iter()
        .find(|r| r.initiative_id == id && r.metric == metric)
        .unwrap_or_else(|| panic!("no row {id} {metric} in {rows:#?}"))
}

fn ctx_for(root: &std::path::Path, edit: impl FnOnce(&mut ValidConfig)) -> JobContext {
    let mut cfg = ValidConfig {
        root: root.to_string_lossy().into_owned(),
        ..ValidConfig::default()
    };
    edit(&mut cfg);
    let mut ctx = JobContext::open(cfg, attune::context::KeyMode::NotNeeded).expect("context");
    ctx.key = Some(attune::config::Key::new(KEY.as_bytes().to_vec()));
    ctx
}

/// A generated business, ingested day by day and transformed as of its last day.
fn generated_lake(
    customers: u64,
    days: u32,
    seed: u64,
) -> (tempfile::TempDir, NaiveDate, GroundTruth) {
    // A thread of its own: the test runs inside a tokio runtime, which
    // cannot block on another.
    std::thread::spawn(move || {
        let dir = tempfile::tempdir().expect("tempdir");
        let params = GenerateParams {
            out: dir.path().to_path_buf(),
            customers,
            days,
            seed,
            ..GenerateParams::default()
        };
        let truth = attune::generate::generate(&params).expect("generate");
        let last = params.start + chrono::Duration::days(i64::from(days) - 1);
        let ctx = ctx_for(dir.path(), |_| {});
        let dates = attune::nightly::date_range(params.start, last).expect("dates");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(attune::nightly::run(
            &ctx,
            &attune::nightly::NightlyParams {
                dates,
                only: vec!["ingest".into(), "transform".into()],
                ..Default::default()
            },
        ))
        .expect("ingest + transform");
        (dir, last, truth)
    })
    .join()
    .expect("lake thread")
}

fn realized(truth: &GroundTruth, id: &str) -> BTreeMap<String, f64> {
    truth
        .initiatives
        .iter()
        .find(|i| i.initiative_id == id)
        .unwrap_or_else(|| panic!("{id} planted"))
        .realized
        .clone()
}

/// The planted loyalty initiative (I0001, randomized) over three seeds: the
/// job's arms and retention shares are exactly the realized ones of
/// ground_truth.json (same definition: an order in the last 90 days up to
/// the last day, over customers whose assignment row ingest keeps), and the
/// 95% interval contains the realized uplift. The barista training (I0002,
/// no control arm) goes through the touchpoint difference in differences
/// and reproduces the realized before/after empathy changes, inside its
/// interval. (With 6 to 15 customers answering about the other touchpoints,
/// that interval is wide and includes zero: weaker evidence on little data
/// looks like this, and the row says so.)
///
/// `min_group_size` is 5 here: at 2,000 customers only 6 to 10 customers
/// answer empathy surveys about the other touchpoints in a period, and this
/// test checks definitions, not the privacy threshold (tested below).
#[tokio::test]
async fn planted_uplift_lies_inside_the_interval_over_seeds() {
    for seed in [1, 2, 3] {
        let (dir, last, truth) = generated_lake(2000, 300, seed);
        let ctx = ctx_for(dir.path(), |c| {
            c.min_group_size = 5;
            c.roi.touchpoints.insert("I0002".into(), "in_store".into());
        });
        let outcome: RoiOutcome = attune::roi::run(&ctx, last).await.expect("roi");
        assert!(!outcome.cltv_available);
        let rows = read_rows(dir.path(), last);
        assert_eq!(outcome.rows_out as usize, rows.len());

        let r1 = realized(&truth, "I0001");
        let ret = row(&rows, "I0001", "retention_rate");
        assert_eq!(
            (ret.design.as_str(), ret.evidence.as_str()),
            ("randomized", "strong")
        );
        assert_eq!(
            ret.treated_n,
            Some(r1["treatment_customers"] as i64),
            "seed {seed}"
        );
        assert_eq!(
            ret.control_n,
            Some(r1["control_customers"] as i64),
            "seed {seed}"
        );
        let close = |a: Option<f64>, b: f64, tol: f64| (a.expect("value") - b).abs() <= tol;
        // ground_truth.json rounds to 4 decimals.
        assert!(
            close(ret.treated_value, r1["treatment_retained_share"], 5e-5),
            "seed {seed}: {ret:?}"
        );
        assert!(
            close(ret.control_value, r1["control_retained_share"], 5e-5),
            "seed {seed}: {ret:?}"
        );
        let uplift = r1["retention_uplift"];
        assert!(
            close(ret.effect, uplift, 1.5e-4),
            "seed {seed}: {ret:?} vs {uplift}"
        );
        let (lo, hi) = (ret.ci_low.expect("lo"), ret.ci_high.expect("hi"));
        assert!(
            lo <= uplift && uplift <= hi,
            "seed {seed}: {uplift} outside [{lo}, {hi}]"
        );
        assert!(
            (0.03..0.3).contains(&(hi - lo)),
            "seed {seed}: a 95% interval over ~300 customers per arm is a few points wide, not [{lo}, {hi}]"
        );
        // CLTV: said to be missing, not invented.
        let cltv = row(&rows, "I0001", "cltv_12m");
        assert!(cltv.effect.is_none() && cltv.roi.is_none() && cltv.incremental_value.is_none());
        assert!(
            cltv.explanation.contains("customer_value"),
            "{}",
            cltv.explanation
        );
        // Only the CLTV row has money columns, and it has none here.
        assert!(rows.iter().all(|r| r.roi.is_none()));

        let r2 = realized(&truth, "I0002");
        let emp = row(&rows, "I0002", "empathy_score");
        assert_eq!(
            (emp.design.as_str(), emp.evidence.as_str()),
            ("difference_in_differences", "weaker")
        );
        let in_store = r2["in_store_empathy_after"] - r2["in_store_empathy_before"];
        let other = r2["other_empathy_after"] - r2["other_empathy_before"];
        assert!(
            close(emp.treated_value, in_store, 1e-4),
            "seed {seed}: {emp:?} vs {in_store}"
        );
        assert!(
            close(emp.control_value, other, 1e-4),
            "seed {seed}: {emp:?} vs {other}"
        );
        assert!(
            close(emp.effect, in_store - other, 2e-4),
            "seed {seed}: {emp:?}"
        );
        let (lo, hi) = (emp.ci_low.expect("lo"), emp.ci_high.expect("hi"));
        assert!(
            lo <= in_store - other && in_store - other <= hi,
            "seed {seed}: {emp:?}"
        );
        assert!(emp.roi.is_none() && emp.explanation.contains("weaker evidence"));
    }
}

/// Writes a one-partition table under `area/table/dt=date/`.
async fn write_table(
    ctx: &JobContext,
    area: &str,
    table: &str,
    date: NaiveDate,
    batch: RecordBatch,
) {
    let path = Path::from(format!("{area}/{table}/dt={date}/part-0.parquet"));
    attune::parquet_io::write_batches(&ctx.storage, &path, batch.schema(), &[batch])
        .await
        .expect("write table");
}

/// Customer ids and arms of I0001 as ingested (pseudonyms).
async fn assignments(ctx: &JobContext) -> Vec<(String, String)> {
    let (session, _) = attune::catalog::session_with_all(&ctx.storage)
        .await
        .expect("session");
    let batches = session
        .sql("SELECT CAST(customer_id AS VARCHAR) AS c, CAST(arm AS VARCHAR) AS a FROM initiative_assignments WHERE initiative_id = 'I0001' ORDER BY c")
        .await
        .expect("sql")
        .collect()
        .await
        .expect("collect");
    let mut out = Vec::new();
    for b in batches {
        // Strings may come back as views: cast to plain Utf8 first.
        let as_text = |i: usize| {
            let col = datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8).expect("cast");
            col.as_any()
                .downcast_ref::<StringArray>()
                .expect("utf8")
                .clone()
        };
        let (c, a) = (as_text(0), as_text(1));
        for i in 0..b.num_rows() {
            out.push((c.value(i).to_string(), a.value(i).to_string()));
        }
    }
    out
}

/// Writes the marts/customer_value fixture of `date`.
async fn write_customer_value(ctx: &JobContext, date: NaiveDate, rows: &[(String, f64)]) {
    write_table(
        ctx,
        "marts",
        "customer_value",
        date,
        customer_value_batch(rows),
    )
    .await;
}

fn customer_value_batch(rows: &[(String, f64)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("segment", DataType::Utf8, true),
        Field::new("cltv_12m", DataType::Float64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(vec![Some("regulars"); rows.len()])),
            // NaN stands for a NULL value (a fit that did not converge)
            Arc::new(Float64Array::from(
                rows.iter()
                    .map(|r| (!r.1.is_nan()).then_some(r.1))
                    .collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("batch")
}

/// The value job's model_metrics row naming the currency of its values.
fn clv_currency_row(code: &str) -> RecordBatch {
    let text = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
    RecordBatch::try_from_iter(vec![
        ("job", text("value")),
        ("model", text("clv")),
        ("metric", text("currency")),
        ("key", text(code)),
        ("value", Arc::new(Float64Array::from(vec![0.0])) as ArrayRef),
        ("detail", text("fixture")),
    ])
    .expect("batch")
}

/// The CLTV part, with a marts/customer_value fixture as the value job will
/// write it: every treated customer is worth 130, every control customer
/// 100. By hand: uplift 30 per customer, incremental value 30 × treated,
/// ROI (30 × treated − 4,500) / 4,500, and the intervals collapse onto the
/// point (the uplift is 30 in every resample). Then a fixture with spread
/// whose uplift is computed here from the fixture itself. The retention row
/// is the same with and without the fixture (same resamples, same seed).
#[tokio::test]
async fn cltv_fixture_gives_incremental_value_and_roi() {
    let (dir, last, truth) = generated_lake(1200, 240, 4);
    let ctx = ctx_for(dir.path(), |_| {});
    attune::roi::run(&ctx, last)
        .await
        .expect("roi without CLTV");
    let without = read_rows(dir.path(), last);

    let arms = assignments(&ctx).await;
    let treated = arms.iter().filter(|(_, a)| a == "treatment").count();
    assert_eq!(
        treated as f64,
        realized(&truth, "I0001")["treatment_customers"],
        "assignment rows are one per kept customer"
    );
    let constant: Vec<(String, f64)> = arms
        .iter()
        .map(|(c, a)| (c.clone(), if a == "treatment" { 130.0 } else { 100.0 }))
        .collect();
    write_customer_value(&ctx, last, &constant).await;
    let outcome = attune::roi::run(&ctx, last).await.expect("roi with CLTV");
    assert!(outcome.cltv_available);
    let rows = read_rows(dir.path(), last);
    let cltv = row(&rows, "I0001", "cltv_12m");
    assert_eq!(cltv.treated_n, Some(treated as i64));
    assert_eq!(cltv.effect, Some(30.0));
    assert_eq!((cltv.ci_low, cltv.ci_high), (Some(30.0), Some(30.0)));
    let inc = 30.0 * treated as f64;
    assert_eq!(cltv.incremental_value, Some(inc));
    assert_eq!(cltv.incremental_value_ci, (Some(inc), Some(inc)));
    let roi = (inc - 4500.0) / 4500.0;
    assert!((cltv.roi.expect("roi") - roi).abs() < 1e-12);
    assert!((cltv.roi_ci.0.expect("lo") - roi).abs() < 1e-12);
    assert!(
        cltv.explanation.contains(&format!("{inc:.0} EUR")),
        "{}",
        cltv.explanation
    );
    assert_eq!(
        row(&without, "I0001", "retention_rate"),
        row(&rows, "I0001", "retention_rate"),
        "CLTV does not change the other rows"
    );

    // The value job says which currency it modelled: CHF values are not
    // shown under the EUR cost, EUR ones are.
    for (code, shown) in [("CHF", false), ("EUR", true)] {
        write_table(&ctx, "marts", "model_metrics", last, clv_currency_row(code)).await;
        attune::roi::run(&ctx, last).await.expect("roi with CLTV");
        let cltv = row(&read_rows(dir.path(), last), "I0001", "cltv_12m").clone();
        assert_eq!(cltv.effect.is_some(), shown, "{code}: {cltv:?}");
        if !shown {
            assert!(
                cltv.explanation
                    .contains("the cost is in EUR but lifetime values are in CHF"),
                "{}",
                cltv.explanation
            );
        }
    }

    // Spread: value = 80 + 7·(k mod 11) (+25 when treated), k = position in id order.
    let spread: Vec<(String, f64)> = arms
        .iter()
        .enumerate()
        .map(|(k, (c, a))| {
            let base = 80.0 + 7.0 * (k % 11) as f64;
            (c.clone(), if a == "treatment" { base + 25.0 } else { base })
        })
        .collect();
    let mean = |arm: &str| {
        let v: Vec<f64> = spread
            .iter()
            .zip(&arms)
            .filter(|(_, (_, a))| a == arm)
            .map(|((_, x), _)| *x)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let uplift = mean("treatment") - mean("control");
    write_customer_value(&ctx, last, &spread).await;
    attune::roi::run(&ctx, last).await.expect("roi with CLTV");
    let rows = read_rows(dir.path(), last);
    let cltv = row(&rows, "I0001", "cltv_12m");
    assert!((cltv.effect.expect("effect") - uplift).abs() < 1e-9);
    let (lo, hi) = (cltv.ci_low.expect("lo"), cltv.ci_high.expect("hi"));
    assert!(
        lo < uplift && uplift < hi && hi - lo > 1.0,
        "[{lo}, {hi}] around {uplift}"
    );
    let n = treated as f64;
    let (ilo, ihi) = cltv.incremental_value_ci;
    assert!((ilo.expect("lo") - lo * n).abs() < 1e-6 && (ihi.expect("hi") - hi * n).abs() < 1e-6);
    let (rlo, rhi) = cltv.roi_ci;
    assert!((rlo.expect("lo") - (lo * n - 4500.0) / 4500.0).abs() < 1e-9);
    assert!((rhi.expect("hi") - (hi * n - 4500.0) / 4500.0).abs() < 1e-9);

    // The value job's fit did not converge: every customer who bought has
    // a row without a value. Counted as worth 0 they would make an ROI of
    // -100%; the CLTV rows say why there is none instead.
    let unknown: Vec<(String, f64)> = arms.iter().map(|(c, _)| (c.clone(), f64::NAN)).collect();
    write_customer_value(&ctx, last, &unknown).await;
    attune::roi::run(&ctx, last)
        .await
        .expect("roi without values");
    let rows = read_rows(dir.path(), last);
    let cltv = row(&rows, "I0001", "cltv_12m");
    assert!(
        cltv.effect.is_none() && cltv.roi.is_none() && cltv.incremental_value.is_none(),
        "{cltv:?}"
    );
    assert!(
        cltv.explanation.contains(&format!(
            "{} of the {} customers in the arms bought but have no lifetime value",
            arms.len(),
            arms.len()
        )),
        "{}",
        cltv.explanation
    );
    assert_eq!(
        row(&without, "I0001", "retention_rate"),
        row(&rows, "I0001", "retention_rate"),
    );

    // Orders in two currencies (one CHF order of someone outside the arms):
    // the value job's row says the values are in EUR, the cost's, so they
    // are compared; without that row nobody can tell which, and they are not.
    write_customer_value(&ctx, last, &constant).await;
    write_table(
        &ctx,
        "marts",
        "model_metrics",
        last,
        clv_currency_row("EUR"),
    )
    .await;
    let chf = lake_batch(
        &ctx,
        "orders",
        1,
        vec![
            ("order_id", text(vec!["chf-1".into()])),
            ("customer_id", text(vec!["not-in-any-arm".into()])),
            ("currency", text(vec!["CHF".into()])),
            ("ordered_at", timestamps(&[last])),
        ],
    );
    attune::parquet_io::write_batches(
        &ctx.storage,
        &Path::from(format!("lake/orders/dt={last}/part-chf.parquet")),
        chf.schema(),
        &[chf],
    )
    .await
    .expect("write the CHF order");
    attune::roi::run(&ctx, last)
        .await
        .expect("roi, two currencies");
    let cltv = row(&read_rows(dir.path(), last), "I0001", "cltv_12m").clone();
    assert_eq!(cltv.effect, Some(30.0), "{cltv:?}");
    ctx.storage
        .delete_prefix(&Path::from(format!("marts/model_metrics/dt={last}")))
        .await
        .expect("drop model_metrics");
    attune::roi::run(&ctx, last)
        .await
        .expect("roi, two currencies");
    let cltv = row(&read_rows(dir.path(), last), "I0001", "cltv_12m").clone();
    assert!(cltv.effect.is_none(), "{cltv:?}");
    assert!(
        cltv.explanation
            .contains("the orders are in several currencies"),
        "{}",
        cltv.explanation
    );
}

// --- A hand-made lake -------------------------------------------------------------------

/// A batch of `lake/<table>` with the contract's columns: the given ones,
/// NULL for other nullable ones, a placeholder for other required ones.
fn lake_batch(
    ctx: &JobContext,
    table: &str,
    n: usize,
    given: Vec<(&str, ArrayRef)>,
) -> RecordBatch {
    let schema: SchemaRef = ctx.contracts.get(table).expect("contract").lake_schema();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            if let Some((_, a)) = given.iter().find(|(name, _)| name == f.name()) {
                return a.clone();
            }
            if f.is_nullable() {
                return new_null_array(f.data_type(), n);
            }
            match f.data_type() {
                DataType::Utf8 => Arc::new(StringArray::from(vec!["x"; n])) as ArrayRef,
                DataType::Float64 => Arc::new(Float64Array::from(vec![1.0; n])),
                DataType::Int64 => Arc::new(Int64Array::from(vec![1; n])),
                DataType::Boolean => Arc::new(BooleanArray::from(vec![false; n])),
                DataType::Date32 => Arc::new(Date32Array::from(vec![0; n])),
                DataType::Timestamp(TimeUnit::Microsecond, _) => {
                    Arc::new(TimestampMicrosecondArray::from(vec![0; n]).with_timezone("UTC"))
                }
                other => panic!("no placeholder for {other}"),
            }
        })
        .collect();
    RecordBatch::try_new(schema, columns).expect("lake batch")
}

fn text(v: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

fn day(s: &str) -> NaiveDate {
    s.parse().expect("date")
}

fn noon_micros(d: NaiveDate) -> i64 {
    d.and_hms_opt(12, 0, 0)
        .expect("time")
        .and_utc()
        .timestamp_micros()
}

fn timestamps(days: &[NaiveDate]) -> ArrayRef {
    Arc::new(
        TimestampMicrosecondArray::from(days.iter().map(|d| noon_micros(*d)).collect::<Vec<_>>())
            .with_timezone("UTC"),
    )
}

fn epoch_days(d: NaiveDate) -> i32 {
    (d - day("1970-01-01")).num_days() as i32
}

/// Writes the hand-made lake described at
/// `hand_made_lake_gives_the_answers_worked_out_by_hand` and returns its run date.
async fn hand_made_lake(ctx: &JobContext) -> NaiveDate {
    let run = day("2025-03-31");
    let exposed: Vec<String> = (0..12).map(|i| format!("e{i:02}")).collect();
    let others: Vec<String> = (0..15).map(|i| format!("u{i:02}")).collect();

    // Initiatives.
    let ids = ["I1", "I2", "I3", "I4", "I5"];
    let starts = [
        "2025-03-01",
        "2025-02-01",
        "2025-04-15",
        "2025-02-01",
        "2025-03-01",
    ];
    let init = lake_batch(
        ctx,
        "initiatives",
        5,
        vec![
            ("initiative_id", text(ids.map(String::from).to_vec())),
            (
                "name",
                text(
                    [
                        "Welcome call",
                        "Control only",
                        "Next month",
                        "Unmapped",
                        "New delivery partner",
                    ]
                    .map(String::from)
                    .to_vec(),
                ),
            ),
            (
                "started_on",
                Arc::new(Date32Array::from(
                    starts.map(|s| epoch_days(day(s))).to_vec(),
                )),
            ),
            ("cost", Arc::new(Float64Array::from(vec![100.0; 5]))),
            ("currency", text(vec!["EUR".to_string(); 5])),
        ],
    );
    write_table(ctx, "lake", "initiatives", day("2025-03-01"), init).await;

    // Assignments: I1 treatment for e00-e11 and x00; I2 control for u00-u11;
    // I9, which lake/initiatives does not list, for u12 and u13.
    let mut a_cust: Vec<String> = exposed.clone();
    a_cust.push("x00".into());
    let mut a_init = vec!["I1".to_string(); 13];
    let mut a_arm = vec!["treatment".to_string(); 13];
    for u in others.iter().take(12) {
        a_cust.push(u.clone());
        a_init.push("I2".into());
        a_arm.push("control".into());
    }
    for u in &others[12..14] {
        a_cust.push(u.clone());
        a_init.push("I9".into());
        a_arm.push("treatment".into());
    }
    let n = a_cust.len();
    let assign = lake_batch(
        ctx,
        "initiative_assignments",
        n,
        vec![
            ("customer_id", text(a_cust)),
            ("initiative_id", text(a_init)),
            ("arm", text(a_arm)),
            ("assigned_at", timestamps(&vec![day("2025-03-01"); n])),
        ],
    );
    write_table(
        ctx,
        "lake",
        "initiative_assignments",
        day("2025-03-01"),
        assign,
    )
    .await;

    // Orders, exported on their own day; the copy of e00's first after-order
    // is exported again on 2025-03-20.
    let mut orders: BTreeMap<NaiveDate, Vec<(String, String, NaiveDate)>> = BTreeMap::new();
    let mut k = 0;
    let mut order = |c: &str, d: NaiveDate, export: NaiveDate| {
        k += 1;
        orders
            .entry(export)
            .or_default()
            .push((format!("o{k:04}"), c.to_string(), d));
    };
    for (group, after) in [(&exposed, 3), (&others, 2)] {
        for c in group {
            order(c, day("2024-12-01"), day("2024-12-01"));
            order(c, day("2025-02-10"), day("2025-02-10"));
            for j in 0..after {
                let d = day("2025-03-05") + chrono::Duration::days(j * 7);
                order(c, d, d);
            }
        }
    }
    // dated after the run date but exported before it (a clock or a
    // backfill gone wrong): only the date guards keep it out
    order("e03", day("2025-04-02"), day("2025-03-25"));
    let e00_first = orders[&day("2025-03-05")]
        .iter()
        .find(|o| o.1 == "e00")
        .cloned()
        .expect("e00 ordered on 2025-03-05");
    orders
        .entry(day("2025-03-20"))
        .or_default()
        .push(e00_first.clone());
    for (export, rows) in &orders {
        let n = rows.len();
        let batch = lake_batch(
            ctx,
            "orders",
            n,
            vec![
                ("order_id", text(rows.iter().map(|r| r.0.clone()).collect())),
                (
                    "customer_id",
                    text(rows.iter().map(|r| r.1.clone()).collect()),
                ),
                (
                    "ordered_at",
                    timestamps(&rows.iter().map(|r| r.2).collect::<Vec<_>>()),
                ),
                ("currency", text(vec!["EUR".into(); n])),
            ],
        );
        write_table(ctx, "lake", "orders", *export, batch).await;
    }

    // Empathy answers for I5: exposed group about delivery, the rest in store.
    let mut fb: Vec<(String, String, NaiveDate, i64, &str)> = Vec::new();
    for (i, c) in exposed.iter().enumerate() {
        fb.push((
            format!("r{i:03}a"),
            c.clone(),
            day("2025-02-15"),
            4,
            "delivery",
        ));
        fb.push((
            format!("r{i:03}b"),
            c.clone(),
            day("2025-03-15"),
            6,
            "delivery",
        ));
    }
    for (i, c) in others.iter().take(12).enumerate() {
        // 5.5 on average after: half answer 5, half 6.
        let after = if i % 2 == 0 { 5 } else { 6 };
        fb.push((
            format!("s{i:03}a"),
            c.clone(),
            day("2025-02-15"),
            5,
            "in_store",
        ));
        fb.push((
            format!("s{i:03}b"),
            c.clone(),
            day("2025-03-15"),
            after,
            "in_store",
        ));
    }
    let n = fb.len();
    let feedback = lake_batch(
        ctx,
        "feedback",
        n,
        vec![
            (
                "response_id",
                text(fb.iter().map(|r| r.0.clone()).collect()),
            ),
            (
                "customer_id",
                text(fb.iter().map(|r| r.1.clone()).collect()),
            ),
            (
                "responded_at",
                timestamps(&fb.iter().map(|r| r.2).collect::<Vec<_>>()),
            ),
            ("survey_type", text(vec!["empathy".into(); n])),
            (
                "score",
                Arc::new(Int64Array::from(fb.iter().map(|r| r.3).collect::<Vec<_>>())),
            ),
            (
                "touchpoint",
                text(fb.iter().map(|r| r.4.to_string()).collect()),
            ),
            ("item", Arc::new(Int64Array::from(vec![1; n]))),
        ],
    );
    write_table(ctx, "lake", "feedback", day("2025-03-31"), feedback).await;

    // Marts of the run date: today's customers (x00 is gone) and the replaced copy.
    let customers: Vec<String> = exposed.iter().chain(&others).cloned().collect();
    let features = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "customer_id",
            DataType::Utf8,
            false,
        )])),
        vec![text(customers)],
    )
    .expect("features");
    write_table(ctx, "marts", "customer_features", run, features).await;
    let superseded = RecordBatch::try_new(
        attune::transform::superseded::schema(),
        vec![
            text(vec!["orders".into()]),
            text(vec![e00_first.0.clone()]),
            Arc::new(Date32Array::from(vec![epoch_days(day("2025-03-05"))])),
            Arc::new(Date32Array::from(vec![epoch_days(day("2025-03-20"))])),
        ],
    )
    .expect("superseded");
    write_table(ctx, "marts", "superseded", run, superseded).await;
    run
}

fn hand_made_ctx(root: &std::path::Path, min_group_size: usize) -> JobContext {
    ctx_for(root, |c| {
        c.min_group_size = min_group_size;
        c.roi.touchpoints.insert("I5".into(), "delivery".into());
        c.roi.bootstrap_resamples = 500;
    })
}

/// Initiatives by design, on a lake small enough to work out by hand (run
/// date 2025-03-31, min_group_size 10):
///
/// - I1 "Welcome call", started 2025-03-01, treatment assignments only, for
///   customers e00–e11 (and x00, who is no longer a customer). Windows of
///   31 days (the days since the start) before and after. Exposed: 1 order
///   before, 3 after; the 15 unassigned customers u00–u14: 1 before, 2 after.
///   Difference in differences = (3 − 1) − (2 − 1) = +1 order per customer,
///   in every resample. Every customer also ordered on 2024-12-01 (so they
///   are existing customers), one order after the run date must not count,
///   and e00's first after-order was exported twice, the older copy listed
///   in marts/superseded, so it counts once.
/// - I5 "New delivery partner", no assignments, `roi.touchpoints` names
///   delivery: 12 customers answer empathy items about delivery with 4
///   before and 6 after 2025-03-01; 12 others about in_store with 5 and 5.5.
///   Effect (6 − 4) − (5.5 − 5) = +1.5.
/// - I2 has only a control arm, I3 starts after the run date, I4 has no
///   assignments and no touchpoint: one "none" row each, saying why.
#[tokio::test]
async fn hand_made_lake_gives_the_answers_worked_out_by_hand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = hand_made_ctx(dir.path(), 10);
    let run = hand_made_lake(&ctx).await;

    let outcome = attune::roi::run(&ctx, run).await.expect("roi");
    let rows = read_rows(dir.path(), run);

    let orders_row = row(&rows, "I1", "repeat_orders");
    assert_eq!(orders_row.design, "difference_in_differences");
    assert_eq!(orders_row.evidence, "weaker");
    assert_eq!(
        (orders_row.treated_n, orders_row.control_n),
        (Some(12), Some(15))
    );
    assert_eq!(orders_row.treated_value, Some(2.0), "exposed: 1 → 3");
    assert_eq!(orders_row.control_value, Some(1.0), "others: 1 → 2");
    assert_eq!(orders_row.effect, Some(1.0));
    assert_eq!(
        (orders_row.ci_low, orders_row.ci_high),
        (Some(1.0), Some(1.0))
    );
    assert!(
        orders_row.explanation.contains("31 days"),
        "{}",
        orders_row.explanation
    );
    let nps = row(&rows, "I1", "net_promoter_score");
    assert!(nps.effect.is_none() && nps.explanation.starts_with("Withheld"));

    let emp = row(&rows, "I5", "empathy_score");
    assert_eq!((emp.treated_n, emp.control_n), (Some(12), Some(12)));
    assert_eq!(emp.treated_value, Some(2.0));
    assert_eq!(emp.control_value, Some(0.5));
    assert_eq!(emp.effect, Some(1.5));
    let (lo, hi) = (emp.ci_low.expect("lo"), emp.ci_high.expect("hi"));
    assert!(lo <= 1.5 && 1.5 <= hi && hi - lo < 0.8, "[{lo}, {hi}]");
    assert!(
        emp.explanation.contains("about the delivery touchpoint"),
        "{}",
        emp.explanation
    );

    for (id, why) in [
        ("I2", "control arm but nobody in a treatment arm"),
        ("I3", "after the run date"),
        ("I4", "touchpoints does not name"),
    ] {
        let r = row(&rows, id, "none");
        assert_eq!((r.design.as_str(), r.evidence.as_str()), ("none", "none"));
        assert!(r.explanation.contains(why), "{id}: {}", r.explanation);
        assert!(r.effect.is_none() && r.treated_n.is_none());
    }
    assert_eq!(rows.len(), 2 + 2 + 3);
    let ids: Vec<&str> = outcome
        .initiatives
        .iter()
        .map(|i| i.initiative_id.as_str())
        .collect();
    assert_eq!(ids, ["I1", "I2", "I3", "I4", "I5"]);
    assert!(outcome.warnings.iter().any(|w| w.contains("CLTV")));
    assert!(
        outcome.warnings.iter().any(|w| w.starts_with(
            "I9: 2 customers are assigned to it, but lake/initiatives does not list it"
        )),
        "{:?}",
        outcome.warnings
    );

    // Privacy: at min_group_size 13 the 12-customer groups are withheld, and
    // no withheld row shows a count.
    let strict = hand_made_ctx(dir.path(), 13);
    attune::roi::run(&strict, run).await.expect("roi");
    let rows = read_rows(dir.path(), run);
    for metric in ["repeat_orders", "net_promoter_score"] {
        let r = row(&rows, "I1", metric);
        assert!(r.effect.is_none() && r.treated_n.is_none() && r.treated_value.is_none());
    }
    let emp = row(&rows, "I5", "empathy_score");
    assert!(emp.effect.is_none() && emp.treated_n.is_none());
    assert!(emp.explanation.contains("fewer than 13"));
}

/// Without the transform's marts for the date, the job says what to run.
#[tokio::test]
async fn missing_marts_name_the_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = ctx_for(dir.path(), |_| {});
    let err = attune::roi::run(&ctx, day("2025-03-31"))
        .await
        .expect_err("no marts");
    let msg = err.to_string();
    assert!(
        msg.contains("customer_features") && msg.contains("attune transform --date 2025-03-31"),
        "{msg}"
    );
}

/// The command: `attune roi --date D` on the hand-made lake lists each
/// initiative's design and exits 0; on an empty root it exits 5 (input
/// missing) and names the command to run first.
#[tokio::test]
async fn cli_runs_the_job_and_maps_missing_input_to_exit_5() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = hand_made_lake(&hand_made_ctx(dir.path(), 10)).await;
    std::fs::write(
        dir.path().join("attune.toml"),
        "[roi]\ntouchpoints = { I5 = \"delivery\" }\nbootstrap_resamples = 500\n",
    )
    .expect("config");
    let out = crate::common::attune()
        .arg("--config")
        .arg(dir.path().join("attune.toml"))
        .arg("--root")
        .arg(dir.path())
        .args(["roi", "--date", &run.to_string()])
        .output()
        .expect("run attune");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("I1") && stdout.contains("difference_in_differences"),
        "{stdout}"
    );
    assert!(stdout.contains("I2") && stdout.contains("none"), "{stdout}");
    assert!(
        stdout.contains("marts/initiative_roi/dt=2025-03-31"),
        "{stdout}"
    );
    assert_eq!(read_rows(dir.path(), run).len(), 7);

    let empty = tempfile::tempdir().expect("tempdir");
    let out = crate::common::attune()
        .arg("--root")
        .arg(empty.path())
        .args(["roi", "--date", "2025-03-31"])
        .output()
        .expect("run attune");
    assert_eq!(out.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("attune transform --date 2025-03-31"),
        "{stderr}"
    );
}

/// Night after night the job carries its outcome sums (orders after and
/// before exposure, the latest order after it, NPS answers) and counts only
/// the orders and answers that entered since, and writes the bytes of a run
/// that counts every one (`[transform] incremental = false`). A lake
/// partition written again makes the next night count every order.
#[tokio::test]
async fn carried_outcome_sums_give_the_rows_of_counting_every_order() {
    let (dir, last, _) = generated_lake(1200, 240, 5);
    let ctx = ctx_for(dir.path(), |_| {});
    let every_order = ctx_for(dir.path(), |c| c.transform_incremental = false);
    let mart = |date: NaiveDate| {
        std::fs::read(
            dir.path()
                .join(format!("marts/initiative_roi/dt={date}/part-0.parquet")),
        )
        .expect("mart")
    };
    let first = last - chrono::Duration::days(3);
    let mut changed = false;
    for n in 0..=3 {
        let date = first + chrono::Duration::days(n);
        attune::transform::run(&ctx, date).await.expect("transform");
        let carried = attune::roi::run(&ctx, date).await.expect("roi");
        let night_before = (n > 0).then(|| date - chrono::Duration::days(1));
        assert_eq!(carried.outcomes_carried_from, night_before, "night {n}");
        let kept = mart(date);
        let counted = attune::roi::run(&every_order, date).await.expect("roi");
        assert_eq!(counted.outcomes_carried_from, None);
        assert!(kept == mart(date), "night {n}: the marts differ");
        // the nights must differ for the comparison to test the adding up
        changed |= n > 0 && kept != mart(date - chrono::Duration::days(1));
    }
    assert!(changed, "no night changed the outcomes");

    // an orders partition written again: the night before no longer vouches
    crate::common::rewrite_partition(dir.path(), "orders", last - chrono::Duration::days(8));
    let again = attune::roi::run(&ctx, last).await.expect("roi");
    assert_eq!(again.outcomes_carried_from, None);
}
