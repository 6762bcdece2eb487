//! The one integration-test binary (every test binary links DataFusion, which
//! costs a minute each on two cores): modules per area.

mod cli;
mod common;
mod contract;
mod empathy;
mod fairness;
mod generated;
mod ingest;
mod nightly;
mod privacy;
mod report;
mod roi;
mod segment;
mod sql;
mod value;
mod voice;
mod voice_score;
