//! The one integration-test binary (every test binary links DataFusion, which
//! costs a minute each on two cores): modules per area.

mod cli;
mod common;
mod contract;
mod empathy;
mod exit_codes;
mod fairness;
mod generated;
mod ingest;
mod nightly;
mod nightly_week;
mod ops_readme;
mod privacy;
mod query;
mod report;
mod roi;
mod segment;
mod sql;
mod transform;
mod value;
mod voice;
mod voice_score;
