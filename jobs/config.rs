//! Configuration: `attune.toml`, checked once into a [`ValidConfig`].
//!
//! Precedence: defaults < config file < environment (`ATTUNE_ROOT`) < flags.
//! Secrets never live in the file: the pseudonymization key is read from the
//! environment variable the file names.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::parquet_io::Codec;
use crate::schema::TABLES;
use crate::{Error, Result};

/// The key `attune demo` uses: public on purpose, so nobody mistakes demo
/// pseudonyms for protected ones.
pub const DEMO_KEY: &str = "attune-DEMO-key-not-secret-do-not-use-in-production";

/// What `attune init` writes: every setting with its default, commented.
pub const INIT_TEMPLATE: &str = r#"# attune configuration. Every setting is shown with its default.
# Precedence: defaults < this file < environment (ATTUNE_ROOT) < command-line flags.

# Where attune keeps everything (landing/, lake/, quarantine/, marts/, reports/, runs/).
# A local folder ("data", "/srv/attune", "file:///srv/attune") or an object store
# ("s3://bucket/prefix", "gs://bucket/prefix", "az://container/prefix"; credentials
# from the usual AWS_*, GOOGLE_*, AZURE_* environment variables).
root = "data"

# How the Parquet files attune writes are compressed: "auto" (none on a local
# folder, whose files are read from memory and where decompressing cost more CPU
# than reading the extra bytes: about 3 CPU-seconds of an incremental night at a
# million customers, for a lake of 2.9 GB instead of 1.0 GB; zstd on an object
# store, where every byte crosses the network), "none" or "zstd". Files already
# written keep theirs; every reader reads either.
compression = "auto"

# Groups smaller than this are suppressed in every output and in the report.
min_group_size = 10

[pseudonymization]
# Name of the environment variable that holds the secret key (at least 16 bytes).
# Customer identifiers become HMAC-SHA256 pseudonyms under this key; the same key
# gives the same pseudonym every night. The key itself never goes in this file.
key_env = "ATTUNE_KEY"
# Name of the environment variable that holds the key used before, while the lake
# is re-ingested under a new one (`attune nightly --from FIRST --to LAST --force`):
# customers erased under the old key are recognized through it, kept out, and
# carried over to the new key's erasure list. Leave it unset on other nights.
previous_key_env = "ATTUNE_PREVIOUS_KEY"

[ingest]
# Tables to ingest each night; each needs landing/<table>/<date>/.
tables = ["customers", "orders", "feedback", "tickets", "reviews", "web_sessions", "offers", "initiatives", "initiative_assignments"]
# Field delimiter of CSV exports.
delimiter = ","
# Rows per Arrow batch / Parquet row-group chunk: memory grows with this, not with the input.
batch_rows = 65536
# Worker threads for ingest and the privacy scans (0 = one more than the number of cores).
threads = 0

[privacy]
# Partitions older than this many days are deleted by `attune retention`.
retention_days = 730
# Whether `attune nightly` runs retention as its last step. Off by default:
# deleting data should be a decision, not a side effect of upgrading.
retention_enabled = false
# Which privacy check status makes `attune privacy` and `attune nightly` exit
# with code 3 (after every output is written): "fail" (personal data found
# where it must not be), "warn" (also advice such as unused columns), or "never".
fail_on = "fail"

[nightly]
# The business's time zone (IANA name): without --date, `attune nightly` runs
# for yesterday in this zone, and first catches up any nights it missed.
timezone = "UTC"
# On an s3://, gs:// or az:// root, also lock the root in the store
# (runs/.lease.json), so runs on other machines or pods stay apart. Needs the
# store's conditional writes; false locks on this machine only.
store_lease = true
# Jobs after ingest that may run at once, each as soon as the jobs whose
# marts it reads are done (1 = one after the other, in order). Whatever this
# says, only one of the jobs that hold a table of every customer's history
# (transform, value, empathy, fairness) runs at a time, so the peak memory
# stays that of the largest job plus a smaller one.
parallel_jobs = 2

[transform]
# A folder of SQL models to run instead of the built-in ones (sql/*.sql compiled
# into attune). Unset by default.
# models_dir = "/etc/attune/sql"
# Memory the SQL models (and the voice job's queries) may hold at once
# (MiB). Aggregates and sorts spill to disk beyond it, so a growing history
# costs time, not memory; hash joins
# cannot spill, and a model whose joins need more fails with "Resources
# exhausted". At a million customers the joins of customer_features hold
# about 0.9 GiB and the transform peaks at 3.6 GiB without spilling; 1024
# brings that peak to 1.9 GiB (slower: it spills) but fails at two million.
memory_limit_mb = 4096
# Models declared `-- incremental:` (the daily ones) start from the night
# before when the lake up to that night is as it was, and compute again only
# the days the new exports touch. false computes every day every night (a
# full refresh); both give the same bytes.
incremental = true

[empathy]
# The Empathy Index (`attune empathy`): a 0-100 composite of six components. The
# weights must sum to 1; a cell where a component is missing or suppressed uses
# the others, with their weights re-normalized to sum to 1.
weights = { responsiveness = 0.20, closing_the_loop = 0.15, resolution = 0.15, tone = 0.20, human_when_it_matters = 0.15, perceived_empathy = 0.15 }
# The business's own first-response targets per ticket channel, in hours.
first_response_target_hours = { email = 24.0, chat = 1.0, phone = 0.25 }
# Resolution target for every ticket, in hours after it was opened.
resolution_target_hours = 48.0
# Negative feedback (ticket rated 1-2, review of 1-2 stars) counts as followed up
# when the business answered within this many hours.
follow_up_hours = 48.0
# A ticket followed by another one from the same customer on the same topic within
# this many days is a repeat contact (the first was not really resolved).
repeat_contact_days = 7
# A contact is emotionally charged when its frustration, anger or anxiety (0-1, from
# marts/feedback_scored) reaches this value.
charged_emotion_threshold = 0.3

[segment]
# A customer whose last purchase is more than this many days before the run date
# counts as churned: the churn rate of each segment, and the "Lapsed" name.
inactive_days = 90
# Seed of every random choice (samples, k-means++ starts): the same data and seed
# give the same segments.
seed = 42
# Numbers of segments tried; the one with the best silhouette score wins.
k_min = 2
k_max = 8
# k-means is fitted on a random sample of at most this many customers, then
# applied to everybody.
fit_sample = 50000
# The silhouette score of each k is computed exactly on a random sample of at most
# this many customers (memory grows with its square: 5000 at most).
silhouette_sample = 3000
# k-means++ starts per k; the one with the lowest inertia wins.
restarts = 4
[voice]
# A negative ticket counts as followed up when tickets.follow_up_at is at most
# this many hours after the ticket was opened (the closed-loop metrics).
followup_hours = 48
# Phrases listed per touchpoint and direction in marts/voice_themes.
themes_per_touchpoint = 10
# The themes come from the messages of this many days up to the run date: what
# customers bring up now, not two years ago.
themes_days = 90
[value]
# Churn, for a business without subscriptions: a customer has churned after a
# cut-off when they place no order in the next inactive_days days.
inactive_days = 90
# The churn model learns from features as of a cut-off, the Monday on or before
# this many days before the run date, and from what each customer did after it.
# At least inactive_days, so every label is known by the run date.
cutoff_days = 90
# Customers whose churn probability is at least this are flagged at_risk.
at_risk_threshold = 0.5
# Share of customers held out from training to evaluate the churn model
# (ROC AUC, Brier score, calibration, lift); the split is seeded.
holdout_share = 0.3
# Seed of the holdout split.
seed = 42
# Unit of BG/NBD's recency t_x, age T and alpha: "days" or "weeks". Predictions
# (P(alive), expected purchases, CLTV) are the same in either.
time_unit = "days"
# Gross margin on revenue, for CLTV = margin x expected revenue. 0.6 is typical
# of a bakery-cafe, whose ingredients and packaging cost 30-40% of sales.
gross_margin = 0.6
# Annual discount rate of CLTV (applied monthly).
annual_discount_rate = 0.1
# Iteration budget of each likelihood fit (BG/NBD, Gamma-Gamma). A fit that has
# not converged within it is reported as such in model_metrics, and the values
# that depend on it are left empty rather than written from a bad fit.
max_iterations = 1000
[roi]
# A customer counts as retained when they ordered at least once in the last
# inactive_days days up to the run date, counting only orders from the day of their
# assignment on (keep equal to the churn window of the value job, value.inactive_days).
inactive_days = 90
# Bootstrap resamples behind every 95% interval (customers resampled within each arm).
bootstrap_resamples = 2000
# Seed of the bootstrap: the same data and seed give the same intervals.
seed = 1
# Initiatives without assignments that changed one touchpoint (a staff training in
# store, a new delivery partner): their effect is estimated on the survey answers
# about that touchpoint against the other touchpoints, before and after the start
# (difference in differences). Touchpoints: in_store, online, delivery, support.
# Empty by default; for the demo business:
# touchpoints = { I0002 = "in_store" }
[fairness]
# Sensitive attributes to audit: columns of marts/customer_attributes.
attributes = ["age_band", "gender", "language", "region"]
# Also audit by the value segment (marts/segments, else marts/customer_value) when it exists.
segment = true
# Intersections of two groups: "pairwise" (every pair), "none", or a list of pairs
# such as [["age_band", "region"], ["gender", "language"]].
intersections = "pairwise"
# Reference group per dimension (an attribute, "segment", or an audited intersection
# such as "age_band & region"; another name is an error); a dimension not listed
# compares with its largest group.
# Example: reference_groups = { age_band = "25-34", region = "north" }
reference_groups = {}
# A ratio to the reference group outside [ratio_min, ratio_max] is a disparity
# (Aequitas' default band).
ratio_min = 0.8
ratio_max = 1.25
# Significance level of the Benjamini-Hochberg adjusted p-values (false discovery rate
# over every comparison of the run): a disparity below it is a "concern". A nightly run
# with no real bias still alerts with probability alpha: 0.05 would be ~18 nights a year.
alpha = 0.01
# A disparity whose adjusted p-value is below this (but not alpha) is "review":
# probably real, not yet established. Above it, chance explains the disparity: "ok".
review_alpha = 0.2
# A significant rate difference of at least this many points (0.05 = 5 percentage
# points) is marked review even inside the ratio band.
review_difference = 0.05
# Gaps (calibration error, sentiment at the same rating): the tolerated difference.
gap_tolerance = 0.05
# Bootstrap resamples for the intervals of means, medians and percentiles, and the seed.
bootstrap_resamples = 1000
seed = 20250101
# Decisions of this many days up to the run date are audited.
window_days = 365
# Make `attune nightly` and `attune fairness` exit with code 3 when the audit finds a
# "concern" (or anything at least "review"); "never" only reports.
fail_on = "never"
"#;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    root: Option<String>,
    compression: Option<String>,
    min_group_size: Option<usize>,
    #[serde(default)]
    pseudonymization: RawPseudonymization,
    #[serde(default)]
    ingest: RawIngest,
    #[serde(default)]
    privacy: RawPrivacy,
    #[serde(default)]
    transform: RawTransform,
    #[serde(default)]
    voice: RawVoice,
    #[serde(default)]
    nightly: RawNightly,
    #[serde(default)]
    empathy: RawEmpathy,
    #[serde(default)]
    segment: RawSegment,
    #[serde(default)]
    value: RawValue,
    #[serde(default)]
    roi: RawRoi,
    #[serde(default)]
    fairness: RawFairness,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmpathy {
    weights: Option<RawEmpathyWeights>,
    first_response_target_hours: Option<RawChannelHours>,
    resolution_target_hours: Option<f64>,
    follow_up_hours: Option<f64>,
    repeat_contact_days: Option<u32>,
    charged_emotion_threshold: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmpathyWeights {
    responsiveness: f64,
    closing_the_loop: f64,
    resolution: f64,
    tone: f64,
    human_when_it_matters: f64,
    perceived_empathy: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannelHours {
    email: f64,
    chat: f64,
    phone: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVoice {
    followup_hours: Option<u32>,
    themes_per_touchpoint: Option<usize>,
    themes_days: Option<u32>,
}

/// Voice job settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceConfig {
    /// Follow-up window of the closed-loop metrics, in hours. Default 48.
    pub followup_hours: u32,
    /// Phrases per touchpoint and direction in `marts/voice_themes`. Default 10.
    pub themes_per_touchpoint: usize,
    /// Days of messages, up to the run date, the themes are counted over. Default 90.
    pub themes_days: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoi {
    inactive_days: Option<u32>,
    bootstrap_resamples: Option<usize>,
    seed: Option<u64>,
    touchpoints: Option<std::collections::BTreeMap<String, String>>,
}

/// Initiative ROI settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoiConfig {
    /// Retention window: retained = ordered in the last this many days up to the
    /// run date, after assignment. Default 90 (the value job's churn window).
    pub inactive_days: u32,
    /// Bootstrap resamples per initiative. Default 2,000.
    pub bootstrap_resamples: usize,
    /// Seed of the bootstrap. Default 1.
    pub seed: u64,
    /// Initiative id → the touchpoint it changed, for initiatives without
    /// assignments (difference in differences on survey answers). Default: none.
    pub touchpoints: std::collections::BTreeMap<String, String>,
}

impl Default for RoiConfig {
    fn default() -> Self {
        RawRoi::default().check().expect("defaults are valid")
    }
}

impl RawRoi {
    fn check(self) -> Result<RoiConfig> {
        let inactive_days = self.inactive_days.unwrap_or(90);
        if !(1..=3650).contains(&inactive_days) {
            return Err(Error::Config(format!(
                "roi.inactive_days = {inactive_days}: use 1 to 3650 (default 90)"
            )));
        }
        let bootstrap_resamples = self.bootstrap_resamples.unwrap_or(2000);
        if !(200..=100_000).contains(&bootstrap_resamples) {
            return Err(Error::Config(format!(
                "roi.bootstrap_resamples = {bootstrap_resamples}: use 200 to 100000 (default 2000); fewer make the 2.5% and 97.5% percentiles rest on a handful of resamples"
            )));
        }
        let touchpoints = self.touchpoints.unwrap_or_default();
        for (id, tp) in &touchpoints {
            if !ROI_TOUCHPOINTS.contains(&tp.as_str()) {
                return Err(Error::Config(format!(
                    "roi.touchpoints.{id} = {tp:?}: use one of the feedback touchpoints ({})",
                    ROI_TOUCHPOINTS.join(", ")
                )));
            }
        }
        Ok(RoiConfig {
            inactive_days,
            bootstrap_resamples,
            seed: self.seed.unwrap_or(1),
            touchpoints,
        })
    }
}

/// The touchpoints of the feedback contract (`schemas/feedback.toml`); a test
/// keeps the two in step.
pub const ROI_TOUCHPOINTS: [&str; 4] = ["in_store", "online", "delivery", "support"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNightly {
    timezone: Option<String>,
    store_lease: Option<bool>,
    parallel_jobs: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSegment {
    inactive_days: Option<u32>,
    seed: Option<u64>,
    k_min: Option<usize>,
    k_max: Option<usize>,
    fit_sample: Option<usize>,
    silhouette_sample: Option<usize>,
    restarts: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValue {
    inactive_days: Option<u32>,
    cutoff_days: Option<u32>,
    at_risk_threshold: Option<f64>,
    holdout_share: Option<f64>,
    seed: Option<u64>,
    time_unit: Option<String>,
    gross_margin: Option<f64>,
    annual_discount_rate: Option<f64>,
    max_iterations: Option<u64>,
}

/// Churn and lifetime-value settings (`[value]`), checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueConfig {
    /// Days without an order after a cut-off that make a customer churned. Default 90.
    pub inactive_days: u32,
    /// Days before the run date of the churn model's cut-off (>= inactive_days). Default 90.
    pub cutoff_days: u32,
    /// Churn probability from which a customer is at risk. Default 0.5.
    pub at_risk_threshold: f64,
    /// Share of customers held out to evaluate the churn model. Default 0.3.
    pub holdout_share: f64,
    /// Seed of the holdout split. Default 42.
    pub seed: u64,
    /// Time unit of BG/NBD. Default days.
    pub time_unit: crate::value::summary::TimeUnit,
    /// Gross margin on revenue (0-1]. Default 0.6.
    pub gross_margin: f64,
    /// Annual discount rate of CLTV. Default 0.1.
    pub annual_discount_rate: f64,
    /// Iteration budget of each likelihood fit. Default 1000.
    pub max_iterations: u64,
}

// The checked values are never NaN, so equality is reflexive.
impl Eq for ValueConfig {}

impl Default for ValueConfig {
    fn default() -> Self {
        RawValue::default().check().expect("defaults are valid")
    }
}

impl RawValue {
    fn check(self) -> Result<ValueConfig> {
        let bad = |m: String| Err(Error::Config(m));
        let inactive_days = self.inactive_days.unwrap_or(90);
        if !(1..=3650).contains(&inactive_days) {
            return bad(format!(
                "value.inactive_days = {inactive_days}: use 1 to 3650 (default 90)"
            ));
        }
        let cutoff_days = self.cutoff_days.unwrap_or(90);
        if cutoff_days < inactive_days || cutoff_days > 3650 {
            return bad(format!(
                "value.cutoff_days = {cutoff_days}: use at least value.inactive_days ({inactive_days}), so churn after the cut-off is known by the run date, and at most 3650 (default 90)"
            ));
        }
        let in_unit = |name: &str, v: f64, lo_open: bool, default: f64| {
            let ok = v.is_finite() && v <= 1.0 && if lo_open { v > 0.0 } else { v >= 0.0 };
            if ok {
                Ok(v)
            } else {
                Err(Error::Config(format!(
                    "value.{name} = {v}: use a number in {}0, 1] (default {default})",
                    if lo_open { "(" } else { "[" }
                )))
            }
        };
        let at_risk_threshold = in_unit(
            "at_risk_threshold",
            self.at_risk_threshold.unwrap_or(0.5),
            false,
            0.5,
        )?;
        let holdout_share = self.holdout_share.unwrap_or(0.3);
        if !(holdout_share > 0.0 && holdout_share < 1.0) {
            return bad(format!(
                "value.holdout_share = {holdout_share}: use a share strictly between 0 and 1 (default 0.3)"
            ));
        }
        let time_unit = match self.time_unit.as_deref() {
            None => crate::value::summary::TimeUnit::Days,
            Some(u) => crate::value::summary::TimeUnit::parse(u).ok_or_else(|| {
                Error::Config(format!(
                    "value.time_unit = {u:?}: use \"days\" or \"weeks\" (default \"days\")"
                ))
            })?,
        };
        let gross_margin = in_unit("gross_margin", self.gross_margin.unwrap_or(0.6), true, 0.6)?;
        let annual_discount_rate = self.annual_discount_rate.unwrap_or(0.1);
        if !(0.0..=1.0).contains(&annual_discount_rate) {
            return bad(format!(
                "value.annual_discount_rate = {annual_discount_rate}: use 0 to 1 (default 0.1)"
            ));
        }
        let max_iterations = self.max_iterations.unwrap_or(1000);
        if !(1..=1_000_000).contains(&max_iterations) {
            return bad(format!(
                "value.max_iterations = {max_iterations}: use 1 to 1000000 (default 1000)"
            ));
        }
        Ok(ValueConfig {
            inactive_days,
            cutoff_days,
            at_risk_threshold,
            holdout_share,
            seed: self.seed.unwrap_or(42),
            time_unit,
            gross_margin,
            annual_discount_rate,
            max_iterations,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFairness {
    attributes: Option<Vec<String>>,
    segment: Option<bool>,
    intersections: Option<RawIntersections>,
    reference_groups: Option<std::collections::BTreeMap<String, String>>,
    ratio_min: Option<f64>,
    ratio_max: Option<f64>,
    alpha: Option<f64>,
    review_alpha: Option<f64>,
    review_difference: Option<f64>,
    gap_tolerance: Option<f64>,
    bootstrap_resamples: Option<usize>,
    seed: Option<u64>,
    window_days: Option<u32>,
    fail_on: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawIntersections {
    Mode(String),
    Pairs(Vec<Vec<String>>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransform {
    models_dir: Option<std::path::PathBuf>,
    memory_limit_mb: Option<u64>,
    incremental: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPseudonymization {
    key_env: Option<String>,
    previous_key_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIngest {
    tables: Option<Vec<String>>,
    delimiter: Option<String>,
    batch_rows: Option<usize>,
    threads: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrivacy {
    retention_days: Option<u32>,
    retention_enabled: Option<bool>,
    fail_on: Option<String>,
}

/// Which privacy check status stops a run with [`Error::AuditGate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailOn {
    /// Never: findings are reported only.
    Never,
    /// Any check at `warn` or `fail`.
    Warn,
    /// Any check at `fail`.
    Fail,
}

/// Ingest settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// Tables ingested each night, in ingest order. Default: all nine.
    pub tables: Vec<String>,
    /// CSV field delimiter. Default `,`.
    pub delimiter: u8,
    /// Rows per batch. Default 65,536.
    pub batch_rows: usize,
    /// Worker threads. Default: one more than the number of cores.
    pub threads: usize,
}

/// Weights of the Empathy Index components, checked: each in [0, 1], summing to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmpathyWeights {
    /// Default 0.20.
    pub responsiveness: f64,
    /// Default 0.15.
    pub closing_the_loop: f64,
    /// Default 0.15.
    pub resolution: f64,
    /// Default 0.20.
    pub tone: f64,
    /// Default 0.15.
    pub human_when_it_matters: f64,
    /// Default 0.15.
    pub perceived_empathy: f64,
}

/// First-response targets per ticket channel, in hours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelHours {
    /// Default 24.
    pub email: f64,
    /// Default 1.
    pub chat: f64,
    /// Default 0.25 (15 minutes).
    pub phone: f64,
}

/// Empathy Index settings, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmpathyConfig {
    pub weights: EmpathyWeights,
    /// Default: email 24, chat 1, phone 0.25 hours.
    pub first_response_target_hours: ChannelHours,
    /// Default 48 hours.
    pub resolution_target_hours: f64,
    /// Default 48 hours.
    pub follow_up_hours: f64,
    /// Default 7 days.
    pub repeat_contact_days: u32,
    /// Default 0.3.
    pub charged_emotion_threshold: f64,
}

// Every float is checked finite when the config is built, so equality is total.
impl Eq for EmpathyConfig {}

/// Segmentation settings (`[segment]`), checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentConfig {
    /// Days without a purchase after which a customer counts as churned. Default 90.
    pub inactive_days: u32,
    /// Seed of the samples and k-means++ starts. Default 42.
    pub seed: u64,
    /// Smallest number of segments tried. Default 2.
    pub k_min: usize,
    /// Largest number of segments tried. Default 8.
    pub k_max: usize,
    /// Most customers k-means is fitted on. Default 50,000.
    pub fit_sample: usize,
    /// Most customers the silhouette score is computed on. Default 3,000.
    pub silhouette_sample: usize,
    /// k-means++ starts per k. Default 4.
    pub restarts: usize,
}

/// The checked configuration every job accepts.
/// The checked configuration every job accepts. (`PartialEq` only: some
/// settings are floating-point thresholds.)
#[derive(Debug, Clone, PartialEq)]
pub struct ValidConfig {
    /// Data root URL or path. Default `data`.
    pub root: String,
    /// How Parquet files are compressed; `None` (`auto`, the default): as
    /// the root's kind says ([`crate::storage::Storage::codec`]).
    pub compression: Option<Codec>,
    /// Smallest group shown anywhere. Default 10.
    pub min_group_size: usize,
    /// Environment variable holding the pseudonymization key. Default `ATTUNE_KEY`.
    pub key_env: String,
    /// Environment variable holding the key used before a key change, read
    /// by ingest only (`ingest::rekey`). Default `ATTUNE_PREVIOUS_KEY`.
    pub previous_key_env: String,
    pub ingest: IngestConfig,
    /// Retention of landing, lake, quarantine and mart partitions. Default 730.
    pub retention_days: u32,
    /// Whether nightly runs retention as its last step. Default false.
    pub retention_enabled: bool,
    /// Privacy check status that makes the run exit with code 3. Default `fail`.
    pub privacy_fail_on: FailOn,
    /// Folder of SQL models replacing the built-in `sql/`. Default: none.
    pub models_dir: Option<std::path::PathBuf>,
    /// Memory pool of the SQL models, in bytes. Default 4096 MiB.
    pub transform_memory_limit: usize,
    /// Whether `-- incremental:` models start from the night before. Default true.
    pub transform_incremental: bool,
    pub voice: VoiceConfig,
    /// The business's time zone, for "yesterday". Default UTC.
    pub timezone: chrono_tz::Tz,
    /// Whether a remote root is also locked by a lease in the store
    /// (`nightly::lease`). Default true.
    pub store_lease: bool,
    /// Jobs after ingest a nightly run may run at once (`nightly::schedule`). Default 2.
    pub parallel_jobs: usize,
    /// The Empathy Index: component weights and service targets.
    pub empathy: EmpathyConfig,
    pub segment: SegmentConfig,
    /// Churn and lifetime value.
    pub value: ValueConfig,
    /// `[roi]`: initiative ROI.
    pub roi: RoiConfig,
    pub fairness: FairnessConfig,
}

/// When the fairness audit makes the run fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FairnessFailOn {
    /// Only report (default).
    Never,
    /// Exit with code 3 when a concern is found.
    Concern,
    /// Exit with code 3 when a concern or a review is found.
    Review,
}

/// Fairness audit settings, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct FairnessConfig {
    /// Columns of marts/customer_attributes audited. Default: age_band, gender, language, region.
    pub attributes: Vec<String>,
    /// Audit by the value segment when it exists. Default true.
    pub segment: bool,
    /// Intersections of two groups. Default: every pair.
    pub intersections: crate::fairness::dims::Intersections,
    /// Reference group per dimension. Default: none (the largest group).
    pub reference_groups: std::collections::BTreeMap<String, String>,
    /// Verdict thresholds. Defaults: ratio band 0.8–1.25, alpha 0.01,
    /// review_alpha 0.2, review_difference 0.05, gap_tolerance 0.05.
    pub thresholds: crate::fairness::verdict::Thresholds,
    /// Bootstrap resamples. Default 1000.
    pub bootstrap_resamples: usize,
    /// Bootstrap seed. Default 20250101.
    pub seed: u64,
    /// Days of decisions audited, up to the run date. Default 365.
    pub window_days: u32,
    /// Default: never.
    pub fail_on: FairnessFailOn,
}

impl Default for ValidConfig {
    fn default() -> Self {
        RawConfig::default().check().expect("defaults are valid")
    }
}

impl ValidConfig {
    /// Reads and checks a config file; `None` means defaults (plus environment).
    pub fn load(path: Option<&Path>) -> Result<ValidConfig> {
        let mut cfg = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    Error::Config(format!(
                        "cannot read {}: {e} (create one with `attune init`)",
                        p.display()
                    ))
                })?;
                Self::parse(&text).map_err(|e| match e {
                    Error::Config(m) => Error::Config(format!("{}: {m}", p.display())),
                    other => other,
                })?
            }
            None => ValidConfig::default(),
        };
        if let Ok(root) = std::env::var("ATTUNE_ROOT")
            && !root.trim().is_empty()
        {
            cfg.root = root;
        }
        Ok(cfg)
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> Result<ValidConfig> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| Error::Config(e.message().to_string() + &location(text, e.span())))?;
        raw.check()
    }

    /// The key used before a key change, when its variable is set (see
    /// `previous_key_env`); it must be as long as a key.
    pub fn previous_key(&self) -> Result<Option<Key>> {
        let not_a_key = |why: &str| {
            Error::Policy(format!(
                "the previous pseudonymization key in ${} {why}, so it is not a key attune used; set it to the old value of ${}, or unset it",
                self.previous_key_env, self.key_env
            ))
        };
        match std::env::var(&self.previous_key_env) {
            Ok(k) if k.len() >= 16 => Ok(Some(Key::new(k.into_bytes()))),
            Ok(k) if k.is_empty() => Ok(None),
            Ok(_) => Err(not_a_key("is shorter than 16 bytes")),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(not_a_key("is not UTF-8")),
        }
    }

    /// The pseudonymization key from the environment, or the demo key when
    /// `demo` is set. Refuses to run without one: a missing key must never
    /// silently fall back to something guessable.
    pub fn pseudonymization_key(&self, demo: bool) -> Result<Key> {
        if demo {
            return Ok(Key::new(DEMO_KEY.as_bytes().to_vec()));
        }
        match std::env::var(&self.key_env) {
            Ok(k) if k.len() >= 16 => Ok(Key::new(k.into_bytes())),
            Ok(_) => Err(Error::Policy(format!(
                "the pseudonymization key in ${} is shorter than 16 bytes; use a long random secret (e.g. `openssl rand -hex 32`)",
                self.key_env
            ))),
            Err(_) => Err(Error::Policy(format!(
                "no pseudonymization key: set ${} to a long random secret (e.g. `export {}=$(openssl rand -hex 32)`) and keep it safe; the same key must be used every night",
                self.key_env, self.key_env
            ))),
        }
    }
}

fn location(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) => {
            let before = &text[..r.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before
                .rfind('\n')
                .map_or(before.len(), |i| before.len() - i - 1)
                + 1;
            format!(" (line {line}, column {col})")
        }
        None => String::new(),
    }
}

impl RawConfig {
    fn check(self) -> Result<ValidConfig> {
        let root = self.root.unwrap_or_else(|| "data".to_string());
        if root.trim().is_empty() {
            return Err(Error::Config("root is empty".into()));
        }
        let compression = match self.compression.as_deref() {
            None | Some("auto") => None,
            Some("none") => Some(Codec::None),
            Some("zstd") => Some(Codec::Zstd),
            Some(other) => {
                return Err(Error::Config(format!(
                    "compression = {other:?}: use \"auto\" (the default), \"none\" or \"zstd\""
                )));
            }
        };
        let min_group_size = self.min_group_size.unwrap_or(10);
        if min_group_size < 2 {
            return Err(Error::Config(format!(
                "min_group_size = {min_group_size} would show single customers; use at least 2 (default 10)"
            )));
        }
        let variable = |setting: &str, name: Option<String>, default: &str| {
            let name = name.unwrap_or_else(|| default.into());
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Error::Config(format!(
                    "pseudonymization.{setting} = {name:?} is not an environment variable name"
                )));
            }
            Ok(name)
        };
        let key_env = variable("key_env", self.pseudonymization.key_env, "ATTUNE_KEY")?;
        let previous_key_env = variable(
            "previous_key_env",
            self.pseudonymization.previous_key_env,
            "ATTUNE_PREVIOUS_KEY",
        )?;
        if previous_key_env == key_env {
            return Err(Error::Config(format!(
                "pseudonymization.previous_key_env is {key_env:?}, the variable of the key itself: name another (default ATTUNE_PREVIOUS_KEY)"
            )));
        }
        let tables = match self.ingest.tables {
            Some(t) => {
                for name in &t {
                    if !TABLES.contains(&name.as_str()) {
                        return Err(Error::Config(format!(
                            "ingest.tables: unknown table `{name}` (known: {})",
                            TABLES.join(", ")
                        )));
                    }
                }
                // Keep the canonical order whatever the file says: consent first.
                TABLES
                    .iter()
                    .filter(|x| t.iter().any(|n| n == *x))
                    .map(|s| s.to_string())
                    .collect()
            }
            None => TABLES.iter().map(|s| s.to_string()).collect(),
        };
        let delimiter = match self.ingest.delimiter.as_deref() {
            None => b',',
            Some(d) if d.len() == 1 && d.is_ascii() => d.as_bytes()[0],
            Some("\\t") => b'\t',
            Some(d) => {
                return Err(Error::Config(format!(
                    "ingest.delimiter = {d:?}: use one ASCII character such as \",\", \";\" or \"\\t\""
                )));
            }
        };
        let batch_rows = self.ingest.batch_rows.unwrap_or(65_536);
        if !(1024..=1_048_576).contains(&batch_rows) {
            return Err(Error::Config(format!(
                "ingest.batch_rows = {batch_rows}: use 1024 to 1048576 (default 65536)"
            )));
        }
        let threads = match self.ingest.threads.unwrap_or(0) {
            // A worker waits while its landing file is read and its
            // partition written, so one per core left a quarter of two
            // cores idle: a re-ingest of the 731 days at a million
            // customers took 38.7-40.3 s with two, 36.6-38.0 s with three
            // (and 35.9-38.6 s with four, for 120 MiB more), peak RSS 430
            // to 540 MiB (tests/bench/HISTORY.md, session 36).
            0 => std::thread::available_parallelism().map_or(3, |n| n.get() + 1),
            n => n,
        };
        let retention_days = self.privacy.retention_days.unwrap_or(730);
        if retention_days == 0 {
            return Err(Error::Config(
                "privacy.retention_days must be at least 1".into(),
            ));
        }
        let memory_limit_mb = self.transform.memory_limit_mb.unwrap_or(4096);
        if memory_limit_mb < 64 {
            return Err(Error::Config(format!(
                "transform.memory_limit_mb = {memory_limit_mb}: use at least 64 (default 4096)"
            )));
        }
        let transform_memory_limit = usize::try_from(memory_limit_mb << 20).map_err(|_| {
            Error::Config(format!(
                "transform.memory_limit_mb = {memory_limit_mb} does not fit this machine's address space"
            ))
        })?;
        let followup_hours = self.voice.followup_hours.unwrap_or(48);
        if !(1..=720).contains(&followup_hours) {
            return Err(Error::Config(format!(
                "voice.followup_hours = {followup_hours}: use 1 to 720 (default 48)"
            )));
        }
        let themes_per_touchpoint = self.voice.themes_per_touchpoint.unwrap_or(10);
        if !(1..=100).contains(&themes_per_touchpoint) {
            return Err(Error::Config(format!(
                "voice.themes_per_touchpoint = {themes_per_touchpoint}: use 1 to 100 (default 10)"
            )));
        }
        let themes_days = self.voice.themes_days.unwrap_or(90);
        if !(1..=3660).contains(&themes_days) {
            return Err(Error::Config(format!(
                "voice.themes_days = {themes_days}: use 1 to 3660 (default 90)"
            )));
        }
        let tz_name = self.nightly.timezone.unwrap_or_else(|| "UTC".into());
        let timezone: chrono_tz::Tz = tz_name.parse().map_err(|_| {
            Error::Config(format!(
                "nightly.timezone = {tz_name:?} is not an IANA time zone (e.g. \"Europe/Berlin\", \"America/New_York\", \"UTC\")"
            ))
        })?;
        let empathy = self.empathy.check()?;
        let privacy_fail_on = match self.privacy.fail_on.as_deref() {
            None | Some("fail") => FailOn::Fail,
            Some("warn") => FailOn::Warn,
            Some("never") => FailOn::Never,
            Some(other) => {
                return Err(Error::Config(format!(
                    "privacy.fail_on = {other:?}: use \"fail\", \"warn\" or \"never\" (default \"fail\")"
                )));
            }
        };
        let segment = self.segment.check()?;
        let fairness = self.fairness.check()?;
        let store_lease = self.nightly.store_lease.unwrap_or(true);
        let parallel_jobs = match self.nightly.parallel_jobs.unwrap_or(2) {
            0 => {
                return Err(Error::Config(
                    "nightly.parallel_jobs = 0: use 1 to run the jobs one after the other, or more to let independent jobs overlap (default 2)".into(),
                ));
            }
            n => n,
        };
        Ok(ValidConfig {
            root,
            compression,
            timezone,
            store_lease,
            parallel_jobs,
            empathy,
            min_group_size,
            key_env,
            previous_key_env,
            ingest: IngestConfig {
                tables,
                delimiter,
                batch_rows,
                threads,
            },
            retention_days,
            retention_enabled: self.privacy.retention_enabled.unwrap_or(false),
            privacy_fail_on,
            models_dir: self.transform.models_dir,
            transform_memory_limit,
            transform_incremental: self.transform.incremental.unwrap_or(true),
            segment,
            voice: VoiceConfig {
                followup_hours,
                themes_per_touchpoint,
                themes_days,
            },
            value: self.value.check()?,
            roi: self.roi.check()?,
            fairness,
        })
    }
}

impl RawFairness {
    fn check(self) -> Result<FairnessConfig> {
        use crate::fairness::dims::Intersections;
        let bad = |m: String| Err(Error::Config(format!("fairness.{m}")));
        let attributes = self.attributes.unwrap_or_else(|| {
            ["age_band", "gender", "language", "region"]
                .map(String::from)
                .to_vec()
        });
        let known = crate::fairness::inputs::ATTRIBUTE_COLUMNS;
        for a in &attributes {
            if !known.contains(&a.as_str()) {
                return bad(format!(
                    "attributes: `{a}` is not a column of marts/customer_attributes (known: {})",
                    known.join(", ")
                ));
            }
        }
        let intersections = match self.intersections {
            None => Intersections::Pairwise,
            Some(RawIntersections::Mode(m)) if m == "pairwise" => Intersections::Pairwise,
            Some(RawIntersections::Mode(m)) if m == "none" => Intersections::None,
            Some(RawIntersections::Mode(m)) => {
                return bad(format!(
                    "intersections = {m:?}: use \"pairwise\", \"none\" or a list of pairs like [[\"age_band\", \"region\"]]"
                ));
            }
            Some(RawIntersections::Pairs(list)) => {
                let mut pairs = Vec::new();
                for p in list {
                    match p.as_slice() {
                        [a, b] if a != b => pairs.push((a.clone(), b.clone())),
                        _ => {
                            return bad(format!(
                                "intersections: {p:?} is not a pair of two different columns"
                            ));
                        }
                    }
                }
                Intersections::Pairs(pairs)
            }
        };
        let reference_groups = self.reference_groups.unwrap_or_default();
        let segment = self.segment.unwrap_or(true);
        // the audit's group columns: the attributes, then the segment
        let mut audited = attributes.clone();
        if segment {
            audited.push("segment".into());
        }
        if let Err(m) = intersections.check_names(&audited, reference_groups.keys()) {
            return bad(m);
        }
        let ratio_min = self.ratio_min.unwrap_or(0.8);
        let ratio_max = self.ratio_max.unwrap_or(1.25);
        if !(ratio_min > 0.0 && ratio_min < 1.0 && ratio_max > 1.0 && ratio_max.is_finite()) {
            return bad(format!(
                "ratio_min = {ratio_min}, ratio_max = {ratio_max}: need 0 < ratio_min < 1 < ratio_max (default 0.8 and 1.25)"
            ));
        }
        let alpha = self.alpha.unwrap_or(0.01);
        if !(alpha > 0.0 && alpha < 1.0) {
            return bad(format!(
                "alpha = {alpha}: use a level between 0 and 1 (default 0.01)"
            ));
        }
        let review_alpha = self.review_alpha.unwrap_or(0.2);
        if !(review_alpha >= alpha && review_alpha < 1.0) {
            return bad(format!(
                "review_alpha = {review_alpha}: use a level from alpha ({alpha}) to below 1 (default 0.2)"
            ));
        }
        let review_difference = self.review_difference.unwrap_or(0.05);
        let gap_tolerance = self.gap_tolerance.unwrap_or(0.05);
        for (name, v) in [
            ("review_difference", review_difference),
            ("gap_tolerance", gap_tolerance),
        ] {
            if !(v > 0.0 && v < 1.0) {
                return bad(format!(
                    "{name} = {v}: use a value between 0 and 1 (default 0.05)"
                ));
            }
        }
        let bootstrap_resamples = self.bootstrap_resamples.unwrap_or(1000);
        if !(100..=100_000).contains(&bootstrap_resamples) {
            return bad(format!(
                "bootstrap_resamples = {bootstrap_resamples}: use 100 to 100000 (default 1000)"
            ));
        }
        let window_days = self.window_days.unwrap_or(365);
        if window_days == 0 {
            return bad("window_days must be at least 1 (default 365)".into());
        }
        let fail_on = match self.fail_on.as_deref().unwrap_or("never") {
            "never" => FairnessFailOn::Never,
            "concern" => FairnessFailOn::Concern,
            "review" => FairnessFailOn::Review,
            other => {
                return bad(format!(
                    "fail_on = {other:?}: use \"never\", \"concern\" or \"review\""
                ));
            }
        };
        Ok(FairnessConfig {
            attributes,
            segment,
            intersections,
            reference_groups,
            thresholds: crate::fairness::verdict::Thresholds {
                ratio_min,
                ratio_max,
                alpha,
                review_alpha,
                review_difference,
                gap_tolerance,
            },
            bootstrap_resamples,
            seed: self.seed.unwrap_or(20_250_101),
            window_days,
            fail_on,
        })
    }
}

impl RawEmpathy {
    fn check(self) -> Result<EmpathyConfig> {
        let w = self.weights.unwrap_or(RawEmpathyWeights {
            responsiveness: 0.20,
            closing_the_loop: 0.15,
            resolution: 0.15,
            tone: 0.20,
            human_when_it_matters: 0.15,
            perceived_empathy: 0.15,
        });
        let named = [
            ("responsiveness", w.responsiveness),
            ("closing_the_loop", w.closing_the_loop),
            ("resolution", w.resolution),
            ("tone", w.tone),
            ("human_when_it_matters", w.human_when_it_matters),
            ("perceived_empathy", w.perceived_empathy),
        ];
        for (name, v) in named {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::Config(format!(
                    "empathy.weights.{name} = {v}: use a number from 0 to 1"
                )));
            }
        }
        let sum: f64 = named.iter().map(|(_, v)| v).sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(Error::Config(format!(
                "empathy.weights sum to {sum}; they must sum to 1 (defaults: responsiveness 0.20, closing_the_loop 0.15, resolution 0.15, tone 0.20, human_when_it_matters 0.15, perceived_empathy 0.15)"
            )));
        }
        let t = self.first_response_target_hours.unwrap_or(RawChannelHours {
            email: 24.0,
            chat: 1.0,
            phone: 0.25,
        });
        let positive_hours = |name: &str, v: f64| -> Result<f64> {
            if v.is_finite() && v > 0.0 && v <= 24.0 * 365.0 {
                Ok(v)
            } else {
                Err(Error::Config(format!(
                    "empathy.{name} = {v}: use a number of hours above 0 (at most a year)"
                )))
            }
        };
        let first_response_target_hours = ChannelHours {
            email: positive_hours("first_response_target_hours.email", t.email)?,
            chat: positive_hours("first_response_target_hours.chat", t.chat)?,
            phone: positive_hours("first_response_target_hours.phone", t.phone)?,
        };
        let resolution_target_hours = positive_hours(
            "resolution_target_hours",
            self.resolution_target_hours.unwrap_or(48.0),
        )?;
        let follow_up_hours =
            positive_hours("follow_up_hours", self.follow_up_hours.unwrap_or(48.0))?;
        let repeat_contact_days = self.repeat_contact_days.unwrap_or(7);
        if !(1..=90).contains(&repeat_contact_days) {
            return Err(Error::Config(format!(
                "empathy.repeat_contact_days = {repeat_contact_days}: use 1 to 90 (default 7)"
            )));
        }
        let charged_emotion_threshold = self.charged_emotion_threshold.unwrap_or(0.3);
        if !(charged_emotion_threshold > 0.0 && charged_emotion_threshold <= 1.0) {
            return Err(Error::Config(format!(
                "empathy.charged_emotion_threshold = {charged_emotion_threshold}: use a number above 0 and at most 1 (default 0.3)"
            )));
        }
        Ok(EmpathyConfig {
            weights: EmpathyWeights {
                responsiveness: w.responsiveness,
                closing_the_loop: w.closing_the_loop,
                resolution: w.resolution,
                tone: w.tone,
                human_when_it_matters: w.human_when_it_matters,
                perceived_empathy: w.perceived_empathy,
            },
            first_response_target_hours,
            resolution_target_hours,
            follow_up_hours,
            repeat_contact_days,
            charged_emotion_threshold,
        })
    }
}

impl RawSegment {
    fn check(self) -> Result<SegmentConfig> {
        let c = SegmentConfig {
            inactive_days: self.inactive_days.unwrap_or(90),
            seed: self.seed.unwrap_or(42),
            k_min: self.k_min.unwrap_or(2),
            k_max: self.k_max.unwrap_or(8),
            fit_sample: self.fit_sample.unwrap_or(50_000),
            silhouette_sample: self.silhouette_sample.unwrap_or(3_000),
            restarts: self.restarts.unwrap_or(4),
        };
        if c.inactive_days == 0 {
            return Err(Error::Config(
                "segment.inactive_days must be at least 1 (default 90)".into(),
            ));
        }
        // k = 1 has no silhouette; beyond 20 segments nobody reads the names.
        if c.k_min < 2 || c.k_max > 20 || c.k_min > c.k_max {
            return Err(Error::Config(format!(
                "segment.k_min = {}, segment.k_max = {}: use 2 <= k_min <= k_max <= 20 (default 2 and 8)",
                c.k_min, c.k_max
            )));
        }
        if c.fit_sample < 1_000 {
            return Err(Error::Config(format!(
                "segment.fit_sample = {}: use at least 1000 (default 50000)",
                c.fit_sample
            )));
        }
        // The silhouette keeps an n x n distance matrix: 5,000 is 200 MB.
        if !(100..=5_000).contains(&c.silhouette_sample) {
            return Err(Error::Config(format!(
                "segment.silhouette_sample = {}: use 100 to 5000 (default 3000)",
                c.silhouette_sample
            )));
        }
        if !(1..=50).contains(&c.restarts) {
            return Err(Error::Config(format!(
                "segment.restarts = {}: use 1 to 50 (default 4)",
                c.restarts
            )));
        }
        Ok(c)
    }
}

/// The secret pseudonymization key. Debug output never shows it.
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl Key {
    /// Wraps key bytes.
    pub fn new(bytes: Vec<u8>) -> Key {
        Key(bytes)
    }

    /// The key bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// A short public fingerprint for manifests, so a run can say which key it
    /// used without revealing it.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"attune key id v1\0");
        h.update(&self.0);
        hex::encode(&h.finalize()[..6])
    }

    /// Whether this is the public demo key.
    pub fn is_demo(&self) -> bool {
        self.0 == DEMO_KEY.as_bytes()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key(id {})", self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_auto_unless_named() {
        let cases = [
            ("", None),
            ("compression = \"auto\"", None),
            ("compression = \"none\"", Some(Codec::None)),
            ("compression = \"zstd\"", Some(Codec::Zstd)),
        ];
        for (text, want) in cases {
            let cfg = ValidConfig::parse(text).expect(text);
            assert_eq!(cfg.compression, want, "{text}");
        }
    }

    #[test]
    fn init_template_is_the_defaults() {
        let parsed = ValidConfig::parse(INIT_TEMPLATE).expect("template parses");
        assert_eq!(parsed, ValidConfig::default());
    }

    #[test]
    fn unknown_keys_are_named() {
        let cases = [
            ("colour = 1", "colour"),
            ("[ingest]\nthreadz = 2", "threadz"),
            ("[privacy]\nretention = 3", "retention"),
        ];
        for (text, key) in cases {
            let err = ValidConfig::parse(text).expect_err(text).to_string();
            assert!(err.contains(key), "{err} should name {key}");
            assert!(err.contains("line"), "{err} should give the line");
        }
    }

    #[test]
    fn bad_values_are_explained() {
        let cases = [
            ("compression = \"lz4\"", "compression"),
            ("min_group_size = 1", "min_group_size"),
            ("[ingest]\ntables = [\"ordrs\"]", "ordrs"),
            ("[ingest]\ndelimiter = \";;\"", "delimiter"),
            ("[ingest]\nbatch_rows = 3", "batch_rows"),
            ("[pseudonymization]\nkey_env = \"MY KEY\"", "key_env"),
            ("[privacy]\nretention_days = 0", "retention_days"),
            ("[voice]\nfollowup_hours = 0", "followup_hours"),
            (
                "[voice]\nthemes_per_touchpoint = 0",
                "themes_per_touchpoint",
            ),
            ("[voice]\nthemes_days = 0", "themes_days"),
            ("[nightly]\ntimezone = \"Mars/Olympus\"", "timezone"),
            (
                "[empathy]\nweights = { responsiveness = 0.5, closing_the_loop = 0.15, resolution = 0.15, tone = 0.2, human_when_it_matters = 0.15, perceived_empathy = 0.15 }",
                "sum to",
            ),
            (
                "[empathy]\nweights = { responsiveness = -0.2, closing_the_loop = 0.35, resolution = 0.15, tone = 0.4, human_when_it_matters = 0.15, perceived_empathy = 0.15 }",
                "weights.responsiveness",
            ),
            (
                "[empathy]\nfirst_response_target_hours = { email = 0.0, chat = 1.0, phone = 0.25 }",
                "first_response_target_hours.email",
            ),
            ("[empathy]\nrepeat_contact_days = 0", "repeat_contact_days"),
            (
                "[empathy]\ncharged_emotion_threshold = 1.5",
                "charged_emotion_threshold",
            ),
            ("[empathy]\nweights = { tone = 1.0 }", "missing field"),
            ("[privacy]\nfail_on = \"sometimes\"", "fail_on"),
            ("[segment]\ninactive_days = 0", "inactive_days"),
            ("[segment]\nk_min = 1", "k_min"),
            ("[segment]\nk_min = 5\nk_max = 4", "k_max"),
            ("[segment]\nfit_sample = 10", "fit_sample"),
            ("[segment]\nsilhouette_sample = 100000", "silhouette_sample"),
            ("[segment]\nrestarts = 0", "restarts"),
            ("[value]\ncutoff_days = 30", "cutoff_days"),
            ("[value]\ntime_unit = \"months\"", "time_unit"),
            ("[value]\ngross_margin = 0", "gross_margin"),
            ("[value]\nholdout_share = 1", "holdout_share"),
            ("[value]\nat_risk_threshold = 1.5", "at_risk_threshold"),
            ("[value]\nmax_iterations = 0", "max_iterations"),
            ("[roi]\ninactive_days = 0", "inactive_days"),
            ("[roi]\nbootstrap_resamples = 10", "bootstrap_resamples"),
            ("[roi]\ntouchpoints = { I0002 = \"kitchen\" }", "kitchen"),
            ("[fairness]\nattributes = [\"shoe_size\"]", "shoe_size"),
            ("[fairness]\nratio_min = 1.1", "ratio_min"),
            ("[fairness]\nalpha = 0", "alpha"),
            ("[fairness]\nreview_alpha = 0.005", "review_alpha"),
            ("[fairness]\nfail_on = \"always\"", "fail_on"),
            ("[fairness]\nintersections = \"all\"", "intersections"),
            (
                "[fairness]\nintersections = [[\"region\"]]",
                "intersections",
            ),
            ("[fairness]\nbootstrap_resamples = 5", "bootstrap_resamples"),
            (
                "[fairness]\nintersections = [[\"age_band\", \"regoin\"]]",
                "regoin",
            ),
            (
                "[fairness]\nreference_groups = { ageband = \"25-34\" }",
                "ageband",
            ),
            (
                "[fairness]\nattributes = [\"age_band\"]\nreference_groups = { region = \"north\" }",
                "region",
            ),
            (
                "[fairness]\nsegment = false\nreference_groups = { segment = \"Lapsed\" }",
                "segment",
            ),
        ];
        for (text, want) in cases {
            let err = ValidConfig::parse(text).expect_err(text).to_string();
            assert!(err.contains(want), "{err} should mention {want}");
        }
    }

    #[test]
    fn roi_touchpoints_are_the_feedback_contracts() {
        let contracts = crate::schema::Contracts::builtin().expect("contracts");
        let feedback = contracts.get("feedback").expect("feedback contract");
        let column = feedback
            .columns
            .iter()
            .find(|c| c.name == "touchpoint")
            .expect("touchpoint column");
        assert_eq!(
            column.allowed.as_deref(),
            Some(ROI_TOUCHPOINTS.map(String::from).as_slice())
        );
        let c = ValidConfig::parse("[roi]\ntouchpoints = { I0002 = \"in_store\" }").expect("valid");
        assert_eq!(
            c.roi.touchpoints.get("I0002").map(String::as_str),
            Some("in_store")
        );
    }

    #[test]
    fn empathy_weights_and_targets_can_be_set() {
        let c = ValidConfig::parse(
            "[empathy]\nweights = { responsiveness = 0.5, closing_the_loop = 0.1, resolution = 0.1, tone = 0.1, human_when_it_matters = 0.1, perceived_empathy = 0.1 }\nfirst_response_target_hours = { email = 8.0, chat = 0.5, phone = 0.1 }\nresolution_target_hours = 24.0",
        )
        .expect("valid");
        assert_eq!(c.empathy.weights.responsiveness, 0.5);
        assert_eq!(c.empathy.first_response_target_hours.email, 8.0);
        assert_eq!(c.empathy.resolution_target_hours, 24.0);
        assert_eq!(
            c.empathy.follow_up_hours, 48.0,
            "unset keys keep their default"
        );
    }

    #[test]
    fn fairness_settings_parse() {
        let c = ValidConfig::parse(
            "[fairness]\nintersections = [[\"age_band\", \"region\"]]\nreference_groups = { age_band = \"25-34\" }\nfail_on = \"concern\"",
        )
        .expect("valid");
        assert_eq!(
            c.fairness.intersections,
            crate::fairness::dims::Intersections::Pairs(vec![("age_band".into(), "region".into())])
        );
        assert_eq!(c.fairness.reference_groups["age_band"], "25-34");
        assert_eq!(c.fairness.fail_on, FairnessFailOn::Concern);
        let c = ValidConfig::parse(
            "[fairness]\nreference_groups = { segment = \"Regulars\", \"age_band & segment\" = \"65+ & Regulars\" }",
        )
        .expect("the segment and its intersections are audited by default");
        assert_eq!(c.fairness.reference_groups.len(), 2);
        assert_eq!(
            ValidConfig::default().fairness.fail_on,
            FairnessFailOn::Never
        );
    }

    #[test]
    fn tables_keep_canonical_order() {
        let c =
            ValidConfig::parse("[ingest]\ntables = [\"orders\", \"customers\"]").expect("valid");
        assert_eq!(c.ingest.tables, vec!["customers", "orders"]);
    }

    #[test]
    fn key_id_is_stable_and_hides_the_key() {
        let a = Key::new(b"0123456789abcdef0123".to_vec());
        let b = Key::new(b"0123456789abcdef0124".to_vec());
        assert_eq!(a.id(), a.clone().id());
        assert_ne!(a.id(), b.id());
        assert!(!format!("{a:?}").contains("0123456789"));
    }
}
