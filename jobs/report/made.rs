//! Section 8, how this was made: the run, the data window, what arrived and
//! what was quarantined, model parameters and quality, definitions of every
//! metric and the mart tables behind each section.

use object_store::path::Path;
use serde::Serialize;

use super::data::{Head, Light, Marts, Source, head};
use super::format::{count, num, pct};
use super::table;
use crate::Result;
use crate::nightly::stamps::Stamp;

/// Section 8.
#[derive(Debug, Clone, Serialize)]
pub struct Made {
    pub head: Head,
    pub run_id: String,
    /// Runs that completed the jobs of the date (from runs/stamps/<date>/).
    pub jobs: Vec<JobRun>,
    pub window: String,
    pub inputs: Vec<InputRows>,
    pub models: Vec<ModelSummary>,
    pub definitions: Vec<Definition>,
    /// Section → mart tables.
    pub trace: Vec<Trace>,
}

/// A job that completed for the date.
#[derive(Debug, Clone, Serialize)]
pub struct JobRun {
    pub job: String,
    pub run_id: String,
    pub finished_at: String,
}

/// Rows of one input table, summed over the data window.
#[derive(Debug, Clone, Serialize)]
pub struct InputRows {
    pub table: String,
    pub read: String,
    pub kept: String,
    pub quarantined: String,
    pub consent_excluded: String,
    pub duplicates: String,
}

/// Parameters and quality of one model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub job: String,
    pub model: String,
    pub metrics: Vec<ModelMetric>,
    /// "… and 450 more in marts/model_metrics" for models with many rows.
    pub more: String,
}

/// Rows listed per model (an outcome check can write hundreds).
const METRICS_PER_MODEL: usize = 40;

/// One model_metrics row in words.
#[derive(Debug, Clone, Serialize)]
pub struct ModelMetric {
    pub metric: String,
    pub value: String,
    pub detail: String,
}

/// A metric's definition.
#[derive(Debug, Clone, Serialize)]
pub struct Definition {
    pub term: String,
    pub meaning: String,
}

/// The tables behind one section.
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    pub number: u32,
    pub title: String,
    pub anchor: String,
    pub sources: Vec<Source>,
}

/// Every metric the report shows, defined once.
pub const DEFINITIONS: &[(&str, &str)] = &[
    (
        "Net Promoter Score (NPS)",
        "Of the customers who answered “how likely are you to recommend us?” (0–10): the percentage answering 9–10 minus the percentage answering 0–6. From −100 to 100. Source: marts/voice_scores (metric nps).",
    ),
    (
        "CSAT",
        "Customer satisfaction: the percentage of satisfaction answers that are 4 or 5 out of 5. Source: marts/voice_scores (metric csat).",
    ),
    (
        "Sentiment",
        "How positive the words customers wrote are, from −1 (very negative) to +1 (very positive), scored by attune's lexicon scorer in English, Spanish and German. Source: marts/voice_scores (metric sentiment).",
    ),
    (
        "95% interval",
        "The range the true value most likely lies in, given how many customers answered: a wide interval means few answers. Two numbers whose intervals overlap a lot may not really differ.",
    ),
    (
        "Likely real / could be noise",
        "Whether a change from the previous period is larger than chance alone would often produce (a two-sided test at the 5% level).",
    ),
    (
        "Frustration themes",
        "Words and two-word phrases that appear much more often in negative than in positive messages of the last [voice] themes_days days (90 unless configured), used by at least the minimum group size of different customers. Source: marts/voice_themes.",
    ),
    (
        "Followed up in time",
        "Share of unhappy support tickets (rated 1–2 or with negative words) that got a follow-up within the configured hours (default 48). Source: marts/voice_closed_loop.",
    ),
    (
        "Segment",
        "A group of customers who buy in a similar way (how recently, how often, how much), found by k-means clustering. Source: marts/segment_profiles.",
    ),
    (
        "Churn",
        "A customer has churned when they have not bought for the configured number of days (default 90). Churn by month: share of customers active at the month end who did not buy again. Source: marts/churn_rates.",
    ),
    (
        "At risk",
        "A customer whose predicted probability of churning is at least the configured threshold (default 0.5), from a logistic regression on their buying history. Source: marts/customer_value.",
    ),
    (
        "12-month customer value (CLTV)",
        "The margin a customer is expected to bring in the next 12 months, discounted: expected purchases (BG/NBD model) times expected order value (Gamma-Gamma model) times gross margin. Source: marts/customer_value.",
    ),
    (
        "Model quality (AUC)",
        "How well the churn model ranks customers who left above customers who stayed, on customers it was not trained on: 50% is guessing, 100% is perfect. Source: marts/model_metrics.",
    ),
    (
        "Fairness ratio",
        "A group's outcome divided by the reference group's; 1 means the same. Ratios outside 0.8–1.25 with a significant test are concerns; borderline ones are reviews. Source: marts/fairness_audit.",
    ),
    (
        "Privacy check",
        "An automated check that attune keeps only the data it needs: pass (nothing to do), warn (could keep less) or fail (personal data where it must not be). Source: marts/privacy_checks.",
    ),
    (
        "Effect of an initiative",
        "The difference between customers who got the initiative and comparable customers who did not, with a 95% bootstrap interval. Strong evidence: random assignment with a control group; weaker: before/after against customers not exposed. Source: marts/initiative_roi.",
    ),
    (
        "Return on investment (ROI)",
        "(Extra customer value the initiative created − its cost) / its cost. 0% means it paid back exactly its cost. Source: marts/initiative_roi.",
    ),
    (
        "Suppressed",
        "Any number about fewer than the minimum group size of customers (default 10) is not shown, so that no one can be singled out; the report says “fewer than 10” instead.",
    ),
];

/// Builds section 8 (the trace is filled in by the caller, which knows every section).
pub async fn build(m: &Marts<'_>, run_id: &str) -> Result<Made> {
    let mut h = head(
        8,
        "made",
        "How this was made",
        vec![m.source("model_metrics").await?],
    );
    let mut out = Made {
        head: h.clone(),
        run_id: run_id.to_string(),
        jobs: Vec::new(),
        window: String::new(),
        inputs: Vec::new(),
        models: Vec::new(),
        definitions: DEFINITIONS
            .iter()
            .map(|(t, d)| Definition {
                term: t.to_string(),
                meaning: d.to_string(),
            })
            .collect(),
        trace: Vec::new(),
    };
    let stamps_dir = Path::from(format!("runs/stamps/{}", m.date));
    for meta in m.storage.list(&stamps_dir).await? {
        let Some(bytes) = m.storage.get_opt(&meta.location).await? else {
            continue;
        };
        // An unreadable stamp is only missing information here, not a failure.
        if let Ok(s) = serde_json::from_slice::<Stamp>(&bytes) {
            out.jobs.push(JobRun {
                job: s.job,
                run_id: s.run_id,
                finished_at: s.finished_at,
            });
        }
    }
    let (mut read, mut quarantined) = (0.0, 0.0);
    if m.storage
        .exists_prefix(&Path::from("lake/ingest_audit"))
        .await?
    {
        let d = m.date;
        let w = table::rows(
            &m.session,
            &format!(
                "SELECT CAST(MIN(dt) AS VARCHAR) AS first, CAST(MAX(dt) AS VARCHAR) AS last, \
                 COUNT(DISTINCT dt) AS days FROM ingest_audit WHERE dt <= DATE '{d}'"
            ),
        )
        .await?;
        if let Some(r) = w.first().filter(|r| r.text("first").is_some()) {
            out.window = format!(
                "Exports of {} days, from {} to {}.",
                count(r.num("days").unwrap_or(0.0)),
                r.str("first"),
                r.str("last")
            );
        }
        let rows = table::rows(
            &m.session,
            &format!(
                "SELECT table_name, \
                 SUM(CASE WHEN outcome = 'rows_read' THEN \"rows\" ELSE 0 END) AS read, \
                 SUM(CASE WHEN outcome = 'rows_written' THEN \"rows\" ELSE 0 END) AS kept, \
                 SUM(CASE WHEN outcome LIKE 'quarantined:%' THEN \"rows\" ELSE 0 END) AS quarantined, \
                 SUM(CASE WHEN outcome = 'consent_excluded' THEN \"rows\" ELSE 0 END) AS consent, \
                 SUM(CASE WHEN outcome = 'duplicate' THEN \"rows\" ELSE 0 END) AS duplicates \
                 FROM ingest_audit WHERE dt <= DATE '{d}' AND column_name IS NULL \
                 GROUP BY table_name ORDER BY table_name"
            ),
        )
        .await?;
        for r in rows {
            read += r.num("read").unwrap_or(0.0);
            quarantined += r.num("quarantined").unwrap_or(0.0);
            let n = |c: &str| count(r.num(c).unwrap_or(0.0));
            out.inputs.push(InputRows {
                table: r.str("table_name").to_string(),
                read: n("read"),
                kept: n("kept"),
                quarantined: n("quarantined"),
                consent_excluded: n("consent"),
                duplicates: n("duplicates"),
            });
        }
    } else {
        h.missing.push(
            "The ingest job has not run: there is no lake/ingest_audit to count inputs from."
                .into(),
        );
    }
    let mut skipped: Vec<(String, String)> = Vec::new();
    if let Some(rows) = m
        .load(
            "model_metrics",
            "job, model, metric, key, value, detail",
            "ORDER BY job, model, metric, key",
        )
        .await?
    {
        for r in rows {
            let (job, model) = (r.str("job"), r.str("model"));
            if out
                .models
                .last()
                .is_none_or(|s| s.job != job || s.model != model)
            {
                out.models.push(ModelSummary {
                    job: job.to_string(),
                    model: model.to_string(),
                    metrics: Vec::new(),
                    more: String::new(),
                });
            }
            let metric = match r.text("key") {
                Some(k) => format!("{} [{k}]", r.str("metric")),
                None => r.str("metric").to_string(),
            };
            let value = match r.num("value") {
                Some(v) if v.fract() == 0.0 && v.abs() >= 1.0 => count(v),
                Some(v) => num(v, 4),
                None => "–".into(),
            };
            if let Some(s) = out.models.last_mut() {
                if s.metrics.len() < METRICS_PER_MODEL {
                    s.metrics.push(ModelMetric {
                        metric,
                        value,
                        detail: r.str("detail").to_string(),
                    });
                } else {
                    skipped.push((s.job.clone(), s.model.clone()));
                }
            }
        }
    }
    for s in &mut out.models {
        let n = skipped
            .iter()
            .filter(|(j, m)| *j == s.job && *m == s.model)
            .count();
        if n > 0 {
            s.more = format!("… and {} more in marts/model_metrics.", count(n as f64));
        }
    }
    h.sentence = if read > 0.0 {
        format!(
            "This report was built from {} exported rows, of which {} ({}) were set aside as unusable; every number above can be traced to the tables below.",
            count(read),
            count(quarantined),
            pct(quarantined / read, 1)
        )
    } else {
        "Every number above can be traced to the tables listed below.".into()
    };
    // Many unusable rows means the exports need fixing before the numbers can be trusted.
    h.light = if read == 0.0 {
        Light::grey()
    } else if quarantined / read >= 0.05 {
        Light::red()
    } else if quarantined / read >= 0.01 {
        Light::amber()
    } else {
        Light::green()
    };
    out.head = h;
    Ok(out)
}
