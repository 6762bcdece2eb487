//! Configuration: `attune.toml`, checked once into a [`ValidConfig`].
//!
//! Precedence: defaults < config file < environment (`ATTUNE_ROOT`) < flags.
//! Secrets never live in the file: the pseudonymization key is read from the
//! environment variable the file names.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

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

# Groups smaller than this are suppressed in every output and in the report.
min_group_size = 10

[pseudonymization]
# Name of the environment variable that holds the secret key (at least 16 bytes).
# Customer identifiers become HMAC-SHA256 pseudonyms under this key; the same key
# gives the same pseudonym every night. The key itself never goes in this file.
key_env = "ATTUNE_KEY"

[ingest]
# Tables to ingest each night; each needs landing/<table>/<date>/.
tables = ["customers", "orders", "feedback", "tickets", "reviews", "web_sessions", "offers", "initiatives", "initiative_assignments"]
# Field delimiter of CSV exports.
delimiter = ","
# Rows per Arrow batch / Parquet row-group chunk: memory grows with this, not with the input.
batch_rows = 65536
# Worker threads for ingest (0 = number of cores).
threads = 0

[privacy]
# Partitions older than this many days are deleted by `attune retention`.
retention_days = 730

[transform]
# A folder of SQL models to run instead of the built-in ones (sql/*.sql compiled
# into attune). Unset by default.
# models_dir = "/etc/attune/sql"

[fairness]
# Sensitive attributes to audit: columns of marts/customer_attributes.
attributes = ["age_band", "gender", "language", "region"]
# Also audit by the value segment (marts/segments, else marts/customer_value) when it exists.
segment = true
# Intersections of two groups: "pairwise" (every pair), "none", or a list of pairs
# such as [["age_band", "region"], ["gender", "language"]].
intersections = "pairwise"
# Reference group per dimension; a dimension not listed compares with its largest group.
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
    fairness: RawFairness,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPseudonymization {
    key_env: Option<String>,
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
    /// Worker threads. Default: the number of cores.
    pub threads: usize,
}

/// The checked configuration every job accepts. (`PartialEq` only: some
/// settings are floating-point thresholds.)
#[derive(Debug, Clone, PartialEq)]
pub struct ValidConfig {
    /// Data root URL or path. Default `data`.
    pub root: String,
    /// Smallest group shown anywhere. Default 10.
    pub min_group_size: usize,
    /// Environment variable holding the pseudonymization key. Default `ATTUNE_KEY`.
    pub key_env: String,
    pub ingest: IngestConfig,
    /// Retention of landing, lake, quarantine and mart partitions. Default 730.
    pub retention_days: u32,
    /// Folder of SQL models replacing the built-in `sql/`. Default: none.
    pub models_dir: Option<std::path::PathBuf>,
    pub fairness: FairnessConfig,
}

/// When an audit makes the run fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailOn {
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
    pub fail_on: FailOn,
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
        let min_group_size = self.min_group_size.unwrap_or(10);
        if min_group_size < 2 {
            return Err(Error::Config(format!(
                "min_group_size = {min_group_size} would show single customers; use at least 2 (default 10)"
            )));
        }
        let key_env = self
            .pseudonymization
            .key_env
            .unwrap_or_else(|| "ATTUNE_KEY".into());
        if key_env.is_empty()
            || !key_env
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(Error::Config(format!(
                "pseudonymization.key_env = {key_env:?} is not an environment variable name"
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
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let retention_days = self.privacy.retention_days.unwrap_or(730);
        if retention_days == 0 {
            return Err(Error::Config(
                "privacy.retention_days must be at least 1".into(),
            ));
        }
        let fairness = self.fairness.check()?;
        Ok(ValidConfig {
            root,
            min_group_size,
            key_env,
            ingest: IngestConfig {
                tables,
                delimiter,
                batch_rows,
                threads,
            },
            retention_days,
            models_dir: self.transform.models_dir,
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
            "never" => FailOn::Never,
            "concern" => FailOn::Concern,
            "review" => FailOn::Review,
            other => {
                return bad(format!(
                    "fail_on = {other:?}: use \"never\", \"concern\" or \"review\""
                ));
            }
        };
        Ok(FairnessConfig {
            attributes,
            segment: self.segment.unwrap_or(true),
            intersections,
            reference_groups: self.reference_groups.unwrap_or_default(),
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
            ("min_group_size = 1", "min_group_size"),
            ("[ingest]\ntables = [\"ordrs\"]", "ordrs"),
            ("[ingest]\ndelimiter = \";;\"", "delimiter"),
            ("[ingest]\nbatch_rows = 3", "batch_rows"),
            ("[pseudonymization]\nkey_env = \"MY KEY\"", "key_env"),
            ("[privacy]\nretention_days = 0", "retention_days"),
            ("[fairness]\nattributes = [\"shoe_size\"]", "shoe_size"),
            ("[fairness]\nratio_min = 1.1", "ratio_min"),
            ("[fairness]\nalpha = 0", "alpha"),
            ("[fairness]\nreview_alpha = 0.01", "review_alpha"),
            ("[fairness]\nfail_on = \"always\"", "fail_on"),
            ("[fairness]\nintersections = \"all\"", "intersections"),
            (
                "[fairness]\nintersections = [[\"region\"]]",
                "intersections",
            ),
            ("[fairness]\nbootstrap_resamples = 5", "bootstrap_resamples"),
        ];
        for (text, want) in cases {
            let err = ValidConfig::parse(text).expect_err(text).to_string();
            assert!(err.contains(want), "{err} should mention {want}");
        }
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
        assert_eq!(c.fairness.fail_on, FailOn::Concern);
        assert_eq!(ValidConfig::default().fairness.fail_on, FailOn::Never);
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
