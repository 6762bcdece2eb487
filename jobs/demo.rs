//! `attune demo`: a bakery-café's year of exports, generated and run through
//! every job, in a local folder, with the public demo key.

use std::path::{Path, PathBuf};

use crate::Result;
use crate::config::ValidConfig;
use crate::context::{JobContext, KeyMode};
use crate::generate::{GenerateParams, GroundTruth, generate};
use crate::nightly::{self, NightlyOutcome, NightlyParams};

/// What the demo produced.
#[derive(Debug)]
pub struct DemoOutcome {
    pub root: PathBuf,
    pub truth: GroundTruth,
    pub nightly: NightlyOutcome,
}

/// Generates the business (default: 5,000 customers, 365 days) into `dir`
/// and runs the nightly jobs over every day.
pub async fn run(dir: &Path, customers: u64, days: u32) -> Result<DemoOutcome> {
    let params = GenerateParams {
        out: dir.to_path_buf(),
        customers,
        days,
        ..GenerateParams::default()
    };
    let gen_params = params.clone();
    let truth = tokio::task::spawn_blocking(move || generate(&gen_params))
        .await
        .map_err(crate::nightly::panics::joined("the generator"))??;
    let mut cfg = ValidConfig {
        root: dir.to_string_lossy().into_owned(),
        ..ValidConfig::default()
    };
    // The café's barista training (I0002) has no control arm and changed one
    // touchpoint; a real business names its own in `[roi] touchpoints`.
    cfg.roi
        .touchpoints
        .insert("I0002".into(), "in_store".into());
    let ctx = JobContext::open(cfg, KeyMode::Demo)?;
    let last = params.start + chrono::Duration::days(i64::from(params.days) - 1);
    let dates = nightly::date_range(params.start, last)?;
    let outcome = nightly::run(
        &ctx,
        &NightlyParams {
            dates,
            ..NightlyParams::default()
        },
    )
    .await?;
    Ok(DemoOutcome {
        root: ctx
            .storage
            .local_root()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.to_path_buf()),
        truth,
        nightly: outcome,
    })
}
