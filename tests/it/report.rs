//! The owner's report: report.json on a hand-made fixture lake (insta
//! snapshot plus numbers checked by hand), every section with its mart
//! missing, HTML escaping of hostile text, and the demo report in a real
//! browser (headless Chromium: no console errors, no network requests, a
//! screenshot).

use std::path::{Path, PathBuf};
use std::process::Command;

use attune::config::ValidConfig;
use attune::context::{JobContext, KeyMode};
use attune::report::{self, data::Report};
use attune::storage::{Storage, partition_file};
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;

use crate::common::{demo_lake, files_under};

/// The fixture's run date.
const D: &str = "2025-06-30";

fn date() -> NaiveDate {
    D.parse().expect("date")
}

/// Strings of the fixture that come from customers or the business, so the
/// escaping test can replace them with a payload.
struct Texts {
    phrase: String,
    segment: String,
    initiative: String,
    explanation: String,
}

impl Default for Texts {
    fn default() -> Texts {
        Texts {
            phrase: "cold coffee".into(),
            segment: "Loyal regulars".into(),
            initiative: "Thank-you cards".into(),
            explanation:
                "Customers aged 65+ are sent to the chat bot 2.4× as often as customers aged 35-44."
                    .into(),
        }
    }
}

/// SQL of each fixture table: (area, table, dt, SELECT producing the rows).
fn fixture_sql(t: &Texts) -> Vec<(&'static str, &'static str, &'static str, String)> {
    let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let (phrase, segment, initiative, explanation) = (
        q(&t.phrase),
        q(&t.segment),
        q(&t.initiative),
        q(&t.explanation),
    );
    vec![
        ("marts", "voice_scores", D, "SELECT * FROM (VALUES \
            ('nps', 'month', DATE '2025-03-01', true, 'all', 'all', 48.0, 30.0, 12.5, 47.5, CAST(NULL AS DOUBLE), CAST(NULL AS BOOLEAN)), \
            ('nps', 'month', DATE '2025-04-01', true, 'all', 'all', NULL, NULL, NULL, NULL, NULL, NULL), \
            ('nps', 'month', DATE '2025-05-01', true, 'all', 'all', 50.0, 20.0, 3.1, 36.9, NULL, NULL), \
            ('nps', 'month', DATE '2025-06-01', true, 'all', 'all', 55.0, 32.0, 18.5, 45.5, 12.0, false), \
            ('nps', 'all', NULL, true, 'all', 'all', 200.0, 28.0, 20.0, 36.0, NULL, NULL), \
            ('csat', 'month', DATE '2025-04-01', true, 'all', 'all', 40.0, 80.0, 65.0, 89.0, NULL, NULL), \
            ('csat', 'month', DATE '2025-05-01', true, 'all', 'all', 44.0, 75.0, 61.0, 85.0, -5.0, false), \
            ('csat', 'month', DATE '2025-06-01', true, 'all', 'all', 50.0, 82.0, 69.0, 90.0, 7.0, true), \
            ('sentiment', 'all', NULL, true, 'touchpoint', 'in_store', 120.0, 0.31, 0.2, 0.42, NULL, NULL), \
            ('sentiment', 'all', NULL, true, 'touchpoint', 'online', 45.0, -0.12, -0.25, 0.01, NULL, NULL), \
            ('sentiment', 'all', NULL, true, 'touchpoint', 'support', NULL, NULL, NULL, NULL, NULL, NULL), \
            ('sentiment', 'all', NULL, true, 'language', 'en', 150.0, 0.2, 0.1, 0.3, NULL, NULL) \
            ) AS t(metric, period_type, period_start, complete, dimension, group_value, n, value, ci_low, ci_high, change, change_significant)".to_string()),
        ("marts", "voice_themes", D, format!("SELECT * FROM (VALUES \
            ('all', 'negative', 1, {phrase}, 25, 12.5), \
            ('all', 'negative', 2, 'long wait', 18, 9.0), \
            ('all', 'positive', 1, 'friendly staff', 40, 20.0), \
            ('in_store', 'negative', 1, 'queue', 12, 10.0) \
            ) AS t(touchpoint, direction, rank, phrase, messages, share)")),
        ("marts", "voice_closed_loop", D, "SELECT * FROM (VALUES \
            ('negative_tickets', 'all', 'followed_up_share', 60, 45.0, 32.9, 57.6, false), \
            ('negative_tickets', 'all', 'median_hours_to_follow_up', 27, 20.5, 12.0, 30.0, false), \
            ('negative_tickets', 'month', 'followed_up_share', 12, 10.0, 2.0, 40.0, false) \
            ) AS t(population, period_type, metric, n, value, ci_low, ci_high, suppressed)".to_string()),
        ("marts", "empathy_index", D, "SELECT * FROM (VALUES \
            ('last_12_months', 'overall', 'all', 'index', 300, 150, 64.2, 60.1, 68.3, 1.0, CAST(NULL AS VARCHAR)), \
            ('last_12_months', 'overall', 'all', 'responsiveness', 200, 120, 71.0, 66.0, 76.0, 0.5, NULL), \
            ('last_12_months', 'overall', 'all', 'tone', 90, 80, 52.0, 47.0, 57.0, 0.5, NULL), \
            ('last_12_months', 'overall', 'all', 'human_when_it_matters', CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), 'suppressed: fewer than 10 customers'), \
            ('2025-06', 'overall', 'all', 'index', 30, 25, 61.0, 50.0, 72.0, 1.0, NULL) \
            ) AS t(period, dimension, group_value, component, n, customers, value, ci_lower, ci_upper, weight, note)".to_string()),
        ("marts", "segment_profiles", D, format!("SELECT * FROM (VALUES \
            (1, {segment}, false, 120, 0.6, 'EUR', 6.0, 12.0, 310.5, 45.0, 0.05, 'at least 8 purchases so far'), \
            (2, 'Drifting away', false, 75, 0.375, 'EUR', 80.0, 3.0, 45.0, CAST(NULL AS DOUBLE), 0.62, 'long since the last purchase'), \
            (3, 'Big spenders', true, NULL, NULL, 'EUR', NULL, NULL, NULL, NULL, NULL, 'high spend') \
            ) AS t(segment_id, segment, suppressed, customers, share, currency, median_recency_days, median_frequency, median_monetary_total, net_promoter_score, churn_rate, name_reason)")),
        ("marts", "churn_rates", D, "SELECT * FROM (VALUES \
            ('2025-02', DATE '2025-02-28', 'active', 'month', 'all', 100, 12, 0.12), \
            ('2025-03', DATE '2025-03-31', 'active', 'month', 'all', 104, 15, 0.144), \
            ('2025-03', DATE '2025-03-31', 'customers', 'month', 'all', 180, 60, 0.333), \
            ('2025-03', DATE '2025-03-31', 'active', 'segment', 'Lapsed', 20, 15, 0.75) \
            ) AS t(period, cutoff, population, dimension, group_value, customers, churned, churn_rate)".to_string()),
        // 200 customers: CLTV 2, 4, …, 400; churn probability i/200 (at risk from i = 100);
        // segments: 1-120 the first, 121-195 Drifting away, 196-200 Big spenders (5: too few to show).
        ("marts", "customer_value", D, format!("SELECT 'cust-pseudonym-' || CAST(value AS VARCHAR) AS customer_id, \
            CASE WHEN value <= 120 THEN {segment} WHEN value <= 195 THEN 'Drifting away' ELSE 'Big spenders' END AS segment, \
            CAST(value AS DOUBLE) * 2.0 AS cltv_12m, CAST(value AS DOUBLE) / 200.0 AS churn_probability, \
            CAST(value AS DOUBLE) / 200.0 >= 0.5 AS at_risk FROM generate_series(1, 200)")),
        ("marts", "model_metrics", D, "SELECT * FROM (VALUES \
            ('value', 'churn_logistic', 'roc_auc', CAST(NULL AS VARCHAR), 0.78, '500 held-out customers'), \
            ('value', 'churn_logistic', 'brier_score', NULL, 0.172, ''), \
            ('value', 'churn_logistic', 'coefficient', 'recency_days', 0.91, 'log-odds per standard deviation'), \
            ('segment', 'kmeans', 'silhouette', 'k=3', 0.41, '') \
            ) AS t(job, model, metric, key, value, detail)".to_string()),
        ("marts", "fairness_audit", D, format!("SELECT * FROM (VALUES \
            ('service', 'age_band', '65+', '35-44', 'handled_by', 'share_bot', 0.6, 0.25, 2.4, 2.0, 2.9, 0.0001, 80, false, 'concern', {explanation}), \
            ('offers', 'region', 'east', 'north', 'discount_pct', 'mean', 8.0, 10.0, 0.8, 0.7, 0.92, 0.08, 60, false, 'review', 'Customers in the east get smaller discounts.'), \
            ('offers', 'region', 'north', 'north', 'discount_pct', 'mean', 10.0, 10.0, CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), 300, false, CAST(NULL AS VARCHAR), 'reference group'), \
            ('service', 'gender', 'female', 'male', 'reopened', 'rate', 0.1, 0.11, 0.91, 0.7, 1.2, 0.6, 150, false, 'ok', 'About the same.'), \
            ('service', 'age_band', '18-24', '35-44', 'handled_by', 'share_bot', NULL, 0.25, NULL, NULL, NULL, NULL, NULL, true, NULL, 'suppressed'), \
            ('service', 'age_band', NULL, '35-44', 'handled_by', 'chi_square', 14.2, NULL, NULL, NULL, NULL, 0.002, 900, false, NULL, 'category mix differs') \
            ) AS t(decision, dimension, group_name, reference_group, outcome, metric, value, reference_value, ratio, ratio_ci_low, ratio_ci_high, p_adjusted, n, suppressed, verdict, explanation)")),
        ("marts", "privacy_checks", D, "SELECT * FROM (VALUES \
            (1, 'inventory', 'What happens to every column you export', 'warn', 'landing', 'customers', 'notes', 1504, 'Arrived in 240 files; no contract declares it.', 'Stop exporting notes.'), \
            (1, 'inventory', 'What happens to every column you export', 'pass', 'lake', 'orders', CAST(NULL AS VARCHAR), 900, 'Every column is declared.', 'Nothing to do.'), \
            (3, 'pii_scan', 'No personal data in what attune writes', 'fail', 'marts', 'feedback_scored', 'touchpoint', 2, '2 values look like email addresses.', 'Re-run ingest with redaction on.'), \
            (5, 'consent', 'Consent is honoured', 'pass', NULL, NULL, NULL, 0, 'No opted-out customer appears anywhere.', 'Nothing to do.') \
            ) AS t(check_id, check_name, title, status, area, table_name, column_name, count, detail, advice)".to_string()),
        ("marts", "initiative_roi", D, format!("SELECT * FROM (VALUES \
            ('I1', {initiative}, 'randomized', 'strong', 'retention_rate', 200, 200, 0.06, 0.01, 0.11, 500.0, 'EUR', CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), 'Retention up 6 points.'), \
            ('I1', {initiative}, 'randomized', 'strong', 'cltv_12m', 200, 200, 4.0, 1.5, 6.5, 500.0, 'EUR', 0.6, -0.4, 1.6, 'CLTV up 4 EUR per customer; ROI 60%.'), \
            ('I2', 'Loyalty app', 'difference_in_differences', 'weaker', 'repeat_orders', 150, 300, 0.3, -0.1, 0.7, 2000.0, 'EUR', NULL, NULL, NULL, 'Weaker evidence: no control group.'), \
            ('I3', 'Tasting evening', 'none', 'none', 'none', CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), NULL, NULL, NULL, 300.0, 'EUR', NULL, NULL, NULL, 'No customers assigned yet.') \
            ) AS t(initiative_id, name, design, evidence, metric, treated_n, control_n, effect, ci_low, ci_high, cost, currency, roi, roi_ci_low, roi_ci_high, explanation)")),
        ("lake", "ingest_audit", "2025-06-29", "SELECT * FROM (VALUES \
            ('orders', 'orders-1.csv', CAST(NULL AS VARCHAR), 'rows_read', 100), \
            ('orders', 'orders-1.csv', NULL, 'rows_written', 95), \
            ('orders', 'orders-1.csv', NULL, 'quarantined:bad_amount', 3), \
            ('orders', 'orders-1.csv', NULL, 'duplicate', 2), \
            ('orders', 'orders-1.csv', 'total_amount', 'plain', 100) \
            ) AS t(table_name, source_file, column_name, outcome, \"rows\")".to_string()),
        ("lake", "ingest_audit", D, "SELECT * FROM (VALUES \
            ('orders', 'orders-2.csv', CAST(NULL AS VARCHAR), 'rows_read', 50), \
            ('orders', 'orders-2.csv', NULL, 'rows_written', 50), \
            ('feedback', 'feedback-2.csv', NULL, 'rows_read', 40), \
            ('feedback', 'feedback-2.csv', NULL, 'rows_written', 36), \
            ('feedback', 'feedback-2.csv', NULL, 'consent_excluded', 4) \
            ) AS t(table_name, source_file, column_name, outcome, \"rows\")".to_string()),
        // After the run date: never counted.
        ("lake", "ingest_audit", "2025-07-01", "SELECT * FROM (VALUES \
            ('orders', 'orders-3.csv', CAST(NULL AS VARCHAR), 'rows_read', 1000) \
            ) AS t(table_name, source_file, column_name, outcome, \"rows\")".to_string()),
    ]
}

/// Writes the fixture lake under `root`.
async fn write_fixture(root: &Path, texts: &Texts) {
    write_tables(root, fixture_sql(texts)).await;
}

/// Writes each (area, table, dt, SELECT) under `root`.
async fn write_tables(root: &Path, tables: Vec<(&str, &str, &str, String)>) {
    let storage = Storage::open(root.to_str().expect("utf8")).expect("storage");
    let session = SessionContext::new();
    for (area, table, dt, sql) in tables {
        let df = session
            .sql(&sql)
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
        let schema = df.schema().inner().clone();
        let batches = df.collect().await.expect("batches");
        let d: NaiveDate = dt.parse().expect("dt");
        attune::parquet_io::write_batches(
            &storage,
            &partition_file(area, table, d),
            schema,
            &batches,
        )
        .await
        .expect("write fixture");
    }
}

fn ctx_on(root: &Path) -> JobContext {
    let cfg = ValidConfig {
        root: root.to_string_lossy().into_owned(),
        ..ValidConfig::default()
    };
    let mut ctx = JobContext::open(cfg, KeyMode::NotNeeded).expect("context");
    // A fixed run id: the snapshot must not change from run to run.
    ctx.run_id = "fixture-run".into();
    ctx
}

async fn fixture_report(texts: &Texts) -> (tempfile::TempDir, Report) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_fixture(dir.path(), texts).await;
    let report = report::build(&ctx_on(dir.path()), date())
        .await
        .expect("report");
    (dir, report)
}

/// A count as the page prints it ("1,234"); `None` for "fewer than 10",
/// "not shown" and the like.
fn shown_count(text: &str) -> Option<f64> {
    text.replace(',', "").parse().ok()
}

/// The number printed just before `words` in `text` ("of 200 customers who
/// have bought" → 200 before "customers who").
fn count_before(text: &str, words: &str) -> Option<f64> {
    let head = &text[..text.find(words)?];
    shown_count(head.split_whitespace().last()?)
}

/// What a reader works out by subtraction: a total shown minus the parts
/// shown is what the hidden parts hold together, and that must be nobody
/// or at least min_group_size (10) people, never a small group. Returns
/// each (what, total, parts shown) that leaves a small group.
fn small_remainders(sums: &[(&str, Option<f64>, f64)]) -> Vec<String> {
    sums.iter()
        .filter_map(|(what, total, shown)| {
            let left = (*total)? - shown;
            (left != 0.0 && left < 10.0)
                .then(|| format!("{what}: {total:?} − {shown} shown = {left}"))
        })
        .collect()
}

/// The subtractions a reader of the report can do with the segments:
/// section 3's total and section 4's totals minus the segments shown in
/// either section (the same customers, so a size shown in one is known in
/// the other).
fn segment_remainders(r: &Report) -> Vec<String> {
    let mut sizes = std::collections::BTreeMap::new();
    for s in &r.customers.segments {
        if let Some(n) = shown_count(&s.customers) {
            sizes.insert(s.name.clone(), n);
        }
    }
    for a in &r.leaving.at_risk {
        if let Some(n) = shown_count(&a.customers) {
            sizes.insert(a.segment.clone(), n);
        }
    }
    let risk = r
        .leaving
        .figures
        .iter()
        .find(|f| f.label.starts_with("Customers at risk"));
    let (risky, all) = (
        risk.and_then(|f| shown_count(&f.value)),
        risk.and_then(|f| count_before(&f.note, "customers who have bought")),
    );
    let sum = |v: Vec<f64>| v.iter().sum::<f64>();
    let rows = &r.leaving.at_risk;
    small_remainders(&[
        (
            "section 3: everyone minus the segments shown",
            count_before(&r.customers.head.sentence, "customers fall into"),
            sum(r
                .customers
                .segments
                .iter()
                .filter_map(|s| shown_count(&s.customers))
                .collect()),
        ),
        (
            "section 3: everyone minus the segments shown in section 3 or 4",
            count_before(&r.customers.head.sentence, "customers fall into"),
            sum(sizes.values().copied().collect()),
        ),
        (
            "section 4: customers who have bought minus the segments shown",
            all,
            sum(rows
                .iter()
                .filter_map(|a| shown_count(&a.customers))
                .collect()),
        ),
        (
            "section 4: customers who have bought minus the segments shown in section 3 or 4",
            all,
            sum(sizes.values().copied().collect()),
        ),
        (
            "section 4: customers at risk minus the at-risk counts shown",
            risky,
            sum(rows
                .iter()
                .filter_map(|a| shown_count(&a.at_risk))
                .collect()),
        ),
        (
            "section 4: customers not at risk minus those shown",
            all.zip(risky).map(|(a, k)| a - k),
            sum(rows
                .iter()
                .filter_map(|a| Some(shown_count(&a.customers)? - shown_count(&a.at_risk)?))
                .collect()),
        ),
    ])
}

/// A report built from only `tables` (the other sections say their job did
/// not run).
async fn report_of(tables: Vec<(&str, &str, &str, String)>) -> Report {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tables(dir.path(), tables).await;
    report::build(&ctx_on(dir.path()), date())
        .await
        .expect("report")
}

#[tokio::test]
async fn report_json_of_the_fixture_lake() {
    let (dir, r) = fixture_report(&Texts::default()).await;

    // No segment hidden for being small comes back by subtraction: Big
    // spenders (5) is 200 − 120 − 75 customers and 101 − 21 − 75 at risk
    // unless a second segment is hidden with it.
    let leaks = segment_remainders(&r);
    assert!(leaks.is_empty(), "{leaks:#?}");

    // Numbers worked out by hand from the fixture above.
    // NPS: June is the latest complete month; +12 points, not significant.
    assert_eq!(r.feel.figures[0].value, "32");
    // 32 says many more recommend than warn, not that most recommend:
    // 45% promoters and 15% detractors give 30 with 40% passive.
    assert!(
        !r.feel.head.sentence.contains("most customers"),
        "{}",
        r.feel.head.sentence
    );
    assert!(
        r.feel.head.sentence.contains("up 12 points"),
        "{}",
        r.feel.head.sentence
    );
    assert!(r.feel.head.sentence.contains("could be noise"));
    // NPS 32 >= 30 but follow-ups 45% < 50%: amber.
    assert_eq!(r.feel.head.light.label, "Keep an eye on it");
    let nps = r.feel.nps_chart.as_ref().expect("nps chart");
    assert_eq!(nps.dots.len(), 3, "April is suppressed: three points");
    assert_eq!(
        nps.paths[0].d.matches('M').count(),
        2,
        "the line breaks at April"
    );
    // Only the two touchpoint rows with numbers get bars; support is named, not drawn.
    let sentiment = r.feel.sentiment_chart.as_ref().expect("sentiment chart");
    assert_eq!(sentiment.bars.len(), 2);
    assert!(
        sentiment
            .texts
            .iter()
            .any(|t| t.text == "fewer than 10 messages: not shown")
    );
    assert_eq!(r.feel.frustrations.len(), 2, "touchpoint all only");
    // The Empathy Index of the last 12 months, then its parts (withheld ones say so).
    assert!(r.feel.figures.iter().any(|f| f.value == "64 / 100"));
    let parts: Vec<(&str, &str)> = r
        .feel
        .empathy
        .iter()
        .map(|c| (c.name.as_str(), c.value.as_str()))
        .collect();
    assert_eq!(
        parts,
        vec![
            ("Responsiveness", "71"),
            ("Tone of your replies", "52"),
            (
                "A person when it matters",
                "suppressed: fewer than 10 customers"
            )
        ]
    );
    // Segments: Big spenders (5) is suppressed in the mart, so the next
    // smallest, Drifting away (75), loses its size, share and churn too:
    // 200 − 120 leaves 80, two segments together. The only segment shown
    // has not mostly stopped buying, and the sentence says "shown".
    let sizes: Vec<(&str, &str, &str, &str)> = r
        .customers
        .segments
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.customers.as_str(),
                s.share.as_str(),
                s.churn.as_str(),
            )
        })
        .collect();
    assert_eq!(
        sizes,
        vec![
            ("Loyal regulars", "120", "60%", "5%"),
            ("Drifting away", "not shown", "–", "–"),
            ("Big spenders", "fewer than 10", "–", "–"),
        ]
    );
    assert_eq!(
        r.customers.head.sentence,
        "Your 200 customers fall into 3 groups; the largest is “Loyal regulars” (60%), and no group shown has mostly stopped buying."
    );
    assert_eq!(r.customers.head.light.label, "Good");
    // At risk: i >= 100 of 1..200 → 101 of 200; per segment: first 120 → 21 at risk,
    // Drifting away 75 of 75 and Big spenders 5 of 5, both hidden as in section 3
    // (101 − 21 leaves 80 at risk in the two together, 200 − 120 − 80 = 0 not at risk).
    let risk: Vec<(&str, &str, &str)> = r
        .leaving
        .at_risk
        .iter()
        .map(|a| (a.segment.as_str(), a.customers.as_str(), a.at_risk.as_str()))
        .collect();
    assert_eq!(
        risk,
        vec![
            ("Big spenders", "fewer than 10", "fewer than 10"),
            ("Drifting away", "not shown", "not shown"),
            ("Loyal regulars", "120", "21"),
        ]
    );
    let fig = |label: &str| {
        r.leaving
            .figures
            .iter()
            .find(|f| f.label.starts_with(label))
            .unwrap_or_else(|| panic!("no figure {label}"))
            .value
            .clone()
    };
    assert_eq!(fig("Customers at risk"), "101");
    // Median of 2, 4, …, 400 (200 values): (200 + 202) / 2 = 201, as
    // percentile_cont(0.5) gives an analyst re-querying the mart.
    assert_eq!(fig("Typical 12-month"), "201");
    assert_eq!(fig("Churn, Mar 2025"), "14.4%");
    assert!(r.leaving.model_quality.contains("78%"));
    assert_eq!(
        r.leaving.head.light.label, "Needs attention",
        "50.5% at risk"
    );
    // Fairness: one concern first, one review; the suppressed row and the dimension row are not in the table.
    let verdicts: Vec<&str> = r.fair.findings.iter().map(|f| f.verdict.as_str()).collect();
    assert_eq!(verdicts, vec!["concern", "review"]);
    assert_eq!(r.fair.table.len(), 2, "the flagged comparisons");
    assert_eq!(
        r.fair.table_note,
        "Comparisons judged ok: 1; reference-group rows: 1. All are in marts/fairness_audit, with every interval and test."
    );
    let decisions: Vec<(&str, &str, &str, &str)> = r
        .fair
        .by_decision
        .iter()
        .map(|d| {
            (
                d.decision.as_str(),
                d.concerns.as_str(),
                d.reviews.as_str(),
                d.ok.as_str(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        vec![("offers", "0", "1", "0"), ("service", "1", "0", "1")]
    );
    assert!(
        r.fair
            .suppressed_rows
            .starts_with("1 comparison is not shown")
    );
    assert_eq!(r.fair.head.light.label, "Needs attention");
    // Privacy: a failure makes it red; the pass row of check 1 hides behind its warning.
    assert_eq!(r.privacy.checks.len(), 3);
    let first = &r.privacy.checks[0].findings;
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].detail.as_str(), first[0].action.as_str()),
        (
            "customers.notes: Arrived in 240 files; no contract declares it.",
            "Stop exporting notes."
        )
    );
    assert_eq!(
        r.privacy.checks[2].findings[0].action, "",
        "a pass needs no action"
    );
    assert_eq!(r.privacy.head.light.label, "Needs attention");
    // Initiatives: ROI 60% with an interval crossing zero → amber; DiD labelled weaker.
    assert_eq!(r.initiatives.initiatives.len(), 3);
    assert_eq!(
        r.initiatives.initiatives[0]
            .roi
            .as_ref()
            .expect("roi")
            .value,
        "60%"
    );
    assert!(r.initiatives.initiatives[1].evidence.starts_with("weaker"));
    assert_eq!(r.initiatives.head.light.label, "Keep an eye on it");
    // Inputs: the days up to the run date only (150 + 40 rows read, not the 1,000 of July).
    assert_eq!(
        r.made.window,
        "Exports of 2 days, from 2025-06-29 to 2025-06-30."
    );
    let orders = r
        .made
        .inputs
        .iter()
        .find(|i| i.table == "orders")
        .expect("orders");
    assert_eq!(
        (orders.read.as_str(), orders.quarantined.as_str()),
        ("150", "3")
    );
    assert!(
        r.made
            .head
            .sentence
            .contains("190 exported rows, of which 3 (1.6%)")
    );
    // Brief: five bullets in the owner's order.
    let anchors: Vec<&str> = r.brief.bullets.iter().map(|b| b.anchor.as_str()).collect();
    assert_eq!(
        anchors,
        vec!["feel", "leaving", "fair", "privacy", "initiatives"]
    );
    assert_eq!(r.brief.head.light.label, "Needs attention");

    insta::assert_json_snapshot!("report_fixture", r);

    // The job writes both files, and nothing about single customers.
    let out = report::run(&ctx_on(dir.path()), date()).await.expect("run");
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    for file in ["report.json", "index.html"] {
        let text = std::fs::read_to_string(dir.path().join(format!("reports/{D}/{file}")))
            .expect("written");
        assert!(
            !text.contains("cust-pseudonym"),
            "{file} shows a customer id"
        );
    }
}

/// A small at-risk count is withheld in the figure, and the headline does
/// not give it back as a share of the total (3 of 40 is "about 8%").
#[tokio::test]
async fn a_small_at_risk_count_is_not_given_back_as_a_share() {
    let r = report_of(vec![(
        "marts",
        "customer_value",
        D,
        "SELECT 'c' || CAST(value AS VARCHAR) AS customer_id, CAST(NULL AS VARCHAR) AS segment, \
         CAST(value AS DOUBLE) AS cltv_12m, CASE WHEN value <= 3 THEN 0.9 ELSE 0.1 END AS churn_probability, \
         value <= 3 AS at_risk FROM generate_series(1, 40)"
            .to_string(),
    )])
    .await;
    let risk = r
        .leaving
        .figures
        .iter()
        .find(|f| f.label.starts_with("Customers at risk"))
        .expect("at-risk figure");
    assert_eq!(risk.value, "fewer than 10");
    let h = &r.leaving.head.sentence;
    assert!(!h.contains('%'), "{h}");
    assert!(h.starts_with("Fewer than 10 of your"), "{h}");
    assert!(!risk.note.contains('%'), "{}", risk.note);
}

/// Churn of a month where few stopped buying, or few stayed, shows neither
/// count nor a rate that gives it back: 3 of 104 is 2.9% (and a dot drawn at
/// 2.9% on the chart), 95 of 100 leaves 5 who stayed.
#[tokio::test]
async fn a_small_churn_count_is_not_given_back_by_its_rate() {
    let r = report_of(vec![
        (
            "marts",
            "churn_rates",
            D,
            "SELECT * FROM (VALUES \
                ('2025-01', DATE '2025-01-31', 'active', 'month', 'all', 100, 95, 0.95), \
                ('2025-02', DATE '2025-02-28', 'active', 'month', 'all', 100, 12, 0.12), \
                ('2025-03', DATE '2025-03-31', 'active', 'month', 'all', 104, 3, 0.0288) \
                ) AS t(period, cutoff, population, dimension, group_value, customers, churned, churn_rate)"
                .to_string(),
        ),
        // For the headline, which tells the latest month's churn after the at-risk share.
        (
            "marts",
            "customer_value",
            D,
            "SELECT 'c' || CAST(value AS VARCHAR) AS customer_id, CAST(NULL AS VARCHAR) AS segment, \
             CAST(value AS DOUBLE) AS cltv_12m, CAST(value AS DOUBLE) / 41.0 AS churn_probability, \
             value > 20 AS at_risk FROM generate_series(1, 40)"
                .to_string(),
        ),
    ])
    .await;
    let churn = r
        .leaving
        .figures
        .iter()
        .find(|f| f.label == "Churn, Mar 2025")
        .expect("churn figure");
    assert_eq!(churn.value, "fewer than 10");
    assert!(
        churn.note.contains("104") && !churn.note.contains(" 3 "),
        "{}",
        churn.note
    );
    let json = serde_json::to_string(&r.leaving).expect("json");
    for gives_back in ["2.9%", "3%", "2.88%", "95%", "95.0%", "5 "] {
        assert!(
            !json.contains(&format!("\"{gives_back}")) && !json.contains(&format!(" {gives_back}")),
            "{gives_back} in {json}"
        );
    }
    // Only February is drawn: a dot's height is its rate.
    let chart = r.leaving.churn_chart.as_ref().expect("churn chart");
    let titles: Vec<&str> = chart.dots.iter().map(|d| d.title.as_str()).collect();
    assert_eq!(
        titles,
        vec!["Feb 2025: 12.0% of 100 active customers stopped buying"]
    );
    assert!(
        r.leaving.head.sentence.contains(
            "of the customers active at the end of Mar 2025, fewer than 10 did not come back"
        ),
        "{}",
        r.leaving.head.sentence
    );
}

/// Every section renders when its marts are missing, each missing table at
/// a time and all of them at once, and says which job did not run.
#[tokio::test]
async fn every_section_renders_with_its_marts_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_fixture(dir.path(), &Texts::default()).await;
    let ctx = ctx_on(dir.path());
    let tables = [
        ("voice_scores", "The voice job did not run"),
        ("voice_closed_loop", "The voice job did not run"),
        ("empathy_index", "The empathy job did not run"),
        ("segment_profiles", "The segment job did not run"),
        ("churn_rates", "The value job did not run"),
        ("customer_value", "The value job did not run"),
        ("fairness_audit", "The fairness job did not run"),
        ("privacy_checks", "The privacy job did not run"),
        ("initiative_roi", "The roi job did not run"),
    ];
    let aside = dir.path().join("aside");
    std::fs::create_dir_all(&aside).expect("mkdir");
    for (table, says) in tables {
        let from = dir.path().join("marts").join(table);
        std::fs::rename(&from, aside.join(table)).expect("move aside");
        let r = report::build(&ctx, date())
            .await
            .expect("report without one mart");
        let html = report::render::render(&r).expect("renders");
        assert!(html.contains(says), "{table}: missing message");
        let traced: Vec<bool> = r
            .made
            .trace
            .iter()
            .flat_map(|t| &t.sources)
            .filter(|s| s.table == table)
            .map(|s| s.present)
            .collect();
        assert!(
            !traced.is_empty() && traced.iter().all(|p| !p),
            "{table}: {traced:?}"
        );
        std::fs::rename(aside.join(table), &from).expect("move back");
    }
    // Nothing at all: every question says it cannot be answered.
    let empty = tempfile::tempdir().expect("tempdir");
    let r = report::build(&ctx_on(empty.path()), date())
        .await
        .expect("empty report");
    let html = report::render::render(&r).expect("renders");
    for (_, says) in tables {
        assert!(html.contains(says), "empty root: {says}");
    }
    assert_eq!(r.brief.head.light.label, "No data");
    assert!(r.brief.bullets.iter().all(|b| b.light.label == "No data"));
    assert!(r.made.head.missing[0].contains("ingest job has not run"));
}

/// Text from customers or the business reaches the page escaped, wherever it is shown.
#[tokio::test]
async fn hostile_text_is_escaped() {
    let payload = "<script>alert(\"x\")</script><img src=x onerror=alert(1)>";
    let (_dir, r) = fixture_report(&Texts {
        phrase: payload.into(),
        segment: payload.into(),
        initiative: payload.into(),
        explanation: payload.into(),
    })
    .await;
    let html = report::render::render(&r).expect("renders");
    assert!(!html.contains("<script"), "a script tag got through");
    assert!(!html.contains("<img"), "an img tag got through");
    let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;&#x2F;script&gt;";
    // Theme phrase, segment (table, chart label, at-risk table), initiative, fairness explanation.
    assert!(
        html.matches(escaped).count() >= 5,
        "{}",
        html.matches(escaped).count()
    );
}

/// Copies the shared demo lake (so running jobs here cannot race the other
/// tests that write into it) and runs every job the report reads.
fn demo_report() -> (tempfile::TempDir, PathBuf, Report) {
    let (src, last) = demo_lake();
    let dir = tempfile::tempdir().expect("tempdir");
    for f in files_under(src) {
        let to = dir.path().join(f.strip_prefix(src).expect("under root"));
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&f, &to).expect("copy");
    }
    let ctx = {
        let mut c = ctx_on(dir.path());
        c.key = Some(attune::config::Key::new(
            crate::common::KEY.as_bytes().to_vec(),
        ));
        c
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let report = rt.block_on(async {
        attune::segment::run(&ctx, last).await.expect("segment");
        attune::voice::run(&ctx, last).await.expect("voice");
        attune::value::run(&ctx, last).await.expect("value");
        attune::roi::run(&ctx, last).await.expect("roi");
        attune::empathy::run(&ctx, last).await.expect("empathy");
        attune::fairness::run(&ctx, last).await.expect("fairness");
        attune::privacy::run(&ctx, last).await.expect("privacy");
        report::run(&ctx, last).await.expect("report");
        report::build(&ctx, last).await.expect("report data")
    });
    let html = dir.path().join(format!("reports/{last}/index.html"));
    (dir, html, report)
}

/// Runs headless Chromium with console logging on stderr; returns (stderr, success).
fn chromium(args: &[&str], url: &str) -> (String, bool) {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--log-level=0",
        ])
        .args(args)
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "chromium could not be started ({e}): install it (apt-get install -y chromium; .ci/run does) \
                 or set ATTUNE_SKIP_BROWSER=1 to skip this test"
            )
        });
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

/// The cargo target folder: $CARGO_TARGET_DIR, else the parent of the tests' temp folder.
fn target_dir() -> PathBuf {
    match std::env::var("CARGO_TARGET_DIR") {
        Ok(t) => PathBuf::from(t),
        Err(_) => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("target dir")
            .to_path_buf(),
    }
}

/// Console lines Chromium logs for a page (errors, CSP violations, and any message at all).
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

#[test]
fn the_demo_report_loads_in_a_browser_without_errors_or_requests() {
    if std::env::var("ATTUNE_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("ATTUNE_SKIP_BROWSER=1: browser test skipped");
        return;
    }
    // A fresh machine may have no Chromium: the README's test command still
    // passes there, saying so; CI installs it and requires the test.
    let works = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        assert!(
            std::env::var("ATTUNE_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "ATTUNE_REQUIRE_BROWSER=1 but `chromium --version` failed: install a working Chromium (apt-get install -y chromium)"
        );
        eprintln!(
            "SKIPPED: chromium is not installed, so the report was not loaded in a browser (apt-get install -y chromium; .ci/run does)"
        );
        return;
    }
    let (dir, html_path, report) = demo_report();
    let html = std::fs::read_to_string(&html_path).expect("index.html");
    // Self-contained: no scripts, and a policy that turns any load into a logged violation.
    assert!(!html.contains("<script"));
    assert!(html.contains("default-src 'none'; style-src 'unsafe-inline'; img-src data:"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external URL"
    );
    assert!(!report.feel.figures.is_empty() && !report.customers.segments.is_empty());

    // The console check works: a page that logs and loads something is caught.
    let canary = dir.path().join("canary.html");
    std::fs::write(
        &canary,
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" \
         content=\"default-src 'none'\"></head><body><img src=\"https://example.com/x.png\"></body></html>",
    )
    .expect("canary");
    let (stderr, _) = chromium(&["--dump-dom"], &format!("file://{}", canary.display()));
    assert!(
        !console_lines(&stderr).is_empty(),
        "chromium did not log the canary's blocked request; cannot trust the check:\n{stderr}"
    );

    let url = format!("file://{}", html_path.display());
    let (stderr, ok) = chromium(&["--dump-dom"], &url);
    assert!(ok, "chromium failed:\n{stderr}");
    let console = console_lines(&stderr);
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );

    let shot = dir.path().join("report-screenshot.png");
    let (stderr, ok) = chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,5000",
        ],
        &url,
    );
    assert!(ok, "chromium screenshot failed:\n{stderr}");
    assert!(console_lines(&stderr).is_empty());
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 50_000,
        "{} bytes",
        png.len()
    );
    // For a human to look at.
    let target = target_dir();
    std::fs::copy(&shot, target.join("report-screenshot.png")).expect("copy screenshot");
    // A phone: the same page at 390 px wide renders too.
    let phone = dir.path().join("report-phone.png");
    let (stderr, ok) = chromium(
        &[
            &format!("--screenshot={}", phone.display()),
            "--window-size=390,2400",
        ],
        &url,
    );
    assert!(ok && console_lines(&stderr).is_empty(), "{stderr}");
    std::fs::copy(&phone, target.join("report-screenshot-phone.png")).expect("copy screenshot");
}

#[tokio::test]
async fn the_cli_prints_the_page_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_fixture(dir.path(), &Texts::default()).await;
    let out = crate::common::attune()
        .args([
            "--root",
            dir.path().to_str().expect("utf8"),
            "report",
            "--date",
            D,
        ])
        .output()
        .expect("attune runs");
    crate::common::assert_succeeded(&out);
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let page = dir
        .path()
        .canonicalize()
        .expect("canonical")
        .join(format!("reports/{D}/index.html"));
    assert_eq!(Path::new(&printed), page);
    assert!(
        std::fs::read_to_string(&page)
            .expect("page")
            .starts_with("<!DOCTYPE html>")
    );
}
