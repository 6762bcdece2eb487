//! attune: nightly customer-empathy analytics for small businesses.
//!
//! ```text
//! landing/<table>/<date>/*.csv|*.csv.gz|*.ndjson     exports, as the business's tools write them
//!    │ ingest: validate, minimize, pseudonymize, redact, consent, dedupe
//!    ▼
//! lake/<table>/dt=<date>/part-0.parquet              clean, minimized, pseudonymous
//!    │ (next: transform → voice → segment → value → empathy → roi → fairness → privacy → report)
//!    ▼
//! marts/… + reports/<date>/ + runs/<run_id>.json
//! ```
//!
//! # Layout
//! - [`ingest`]: landing exports → lake + quarantine (with `pseudonym`, `redact`, `consent`, `source`, `validate`)
//! - [`generate`]: demo exports of a bakery-café with planted ground truth
//! - [`nightly`]: the jobs in order, the run lock
//! - [`demo`]: generate + nightly in a local folder
//! - [`config`]: `attune.toml`, checked once into `ValidConfig`
//! - [`schema`]: input contracts from `schemas/*.toml`
//! - [`storage`]: the data root on an object store; atomic partition files
//! - [`parquet_io`]: the one Parquet writer configuration
//! - [`manifest`]: run manifests under `runs/`
//! - [`context`]: what every job receives
//! - [`error`]: the error type

pub mod config;
pub mod context;
pub mod demo;
pub mod error;
pub mod generate;
pub mod ingest;
pub mod manifest;
pub mod nightly;
pub mod parquet_io;
pub mod schema;
pub mod storage;

pub use error::{Error, Result};
