//! attune: nightly customer-empathy analytics for small businesses.
//!
//! ```text
//! landing/<table>/<date>/*.csv|*.csv.gz|*.ndjson     exports, as the business's tools write them
//!    │ ingest: validate, minimize, pseudonymize, redact, consent, dedupe
//!    ▼
//! lake/<table>/dt=<date>/part-0.parquet              clean, minimized, pseudonymous
//!    │ transform: sql/*.sql on DataFusion, in dependency order
//!    ▼
//! marts/<model>/dt=<date>/part-0.parquet             customer features, NPS/CSAT, service levels, lineage
//!    │ (next: segment ∥ voice → value → empathy ∥ roi → fairness → privacy → report)
//!    ▼
//! marts/… + reports/<date>/ + runs/<run_id>.json
//! ```
//!
//! # Layout
//! - [`ingest`]: landing exports → lake + quarantine (with `pseudonym`, `redact`, `consent`, `source`, `validate`)
//! - [`transform`]: `sql/*.sql` models on DataFusion → marts, data tests, lineage
//! - [`voice`]: sentiment and emotions of messages, NPS/CSAT/CES with intervals and trend, closed loop, themes
//! - [`privacy`]: privacy checks → marts/privacy_checks; `retention`; `forget` (right to erasure)
//! - [`segment`]: customer segments (k-means on customer_features, k by silhouette, named from centroids)
//! - [`voice`]: sentiment and emotion scoring of free text (`voice::score`: lexicons and rules, en/es/de)
//! - [`value`]: churn model and rates, BG/NBD + Gamma-Gamma lifetime value → marts/customer_value, churn_evaluation, churn_rates
//! - [`report`]: the owner's report: marts → report.json → reports/<date>/index.html (tera, inline SVG)
//! - [`roi`]: initiative ROI: treatment vs control (or difference in differences), bootstrap intervals → `marts/initiative_roi`
//! - [`fairness`]: the fairness audit of every automated decision across customer groups (`marts/fairness_audit`), and of any decision table
//! - [`generate`]: demo exports of a bakery-café with planted ground truth
//! - [`nightly`]: the jobs in order, the run lock
//! - [`empathy`]: the Empathy Index (six documented components, per month and group) → marts/empathy_index, empathy_contacts
//! - [`demo`]: generate + nightly in a local folder
//! - [`runs`]: `attune runs`, the run manifests listed and shown
//! - [`doctor`]: `attune doctor`, pre-flight checks that say what to fix
//! - [`query`]: `attune query` and `attune tables`, for analysts
//! - [`catalog`]: lake and mart tables registered in DataFusion (hive `dt` partitions)
//! - [`utc_dates`]: the day of a UTC timestamp by division, swapped in for `CAST(ts AS DATE)`
//! - [`distinct_count`]: `count(DISTINCT)` of a BIGINT per group by sorting, in place of DataFusion's hash set
//! - [`config`]: `attune.toml`, checked once into `ValidConfig`
//! - [`schema`]: input contracts from `schemas/*.toml`
//! - [`storage`]: the data root on an object store; atomic partition files
//! - [`parquet_io`]: the one Parquet writer configuration
//! - [`manifest`]: run manifests under `runs/`
//! - [`memory`]: peak memory per job (sampled), beside the process's high-water mark
//! - [`heap`]: the global allocator, counting the heap bytes in use
//! - [`secondary_suppression`]: which shown groups to hide so a hidden one cannot be worked out from a total
//! - [`mart`]: publishing the marts Rust jobs write, checked against `schemas/marts/`; `model_metrics`
//! - [`context`]: what every job receives
//! - [`customer_index`]: customer numbers by pseudonym, for folds over tens of millions of rows
//! - [`error`]: the error type

pub mod catalog;
pub mod config;
pub mod context;
pub mod customer_index;
pub mod customer_key;
pub mod demo;
pub mod distinct_count;
pub mod doctor;
pub mod empathy;
pub mod error;
pub mod fairness;
pub mod generate;
pub mod heap;
pub mod huge_pages;
pub mod ingest;
pub mod lake_footers;
pub mod lake_listings;
pub mod manifest;
pub mod mapped_files;
pub mod mart;
pub mod memory;
pub mod nightly;
pub mod parallel;
pub mod parquet_io;
pub mod privacy;
pub mod query;
pub mod report;
pub mod roi;
pub mod runs;
pub mod schema;
pub mod secondary_suppression;
pub mod segment;
pub mod staged_file;
pub mod storage;
pub mod transform;
pub mod utc_dates;
pub mod value;
pub mod voice;

pub use error::{Error, Result};
