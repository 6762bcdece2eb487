//! The SQL models on hand-built inputs: one `.slt` file per model under
//! `tests/sql/`, each run in a fresh DataFusion session through the
//! datafusion-sqllogictest engine (the one DataFusion's own suite uses).
//!
//! A line `include model NAME` in an .slt file becomes
//! `statement ok` + `CREATE VIEW NAME AS <sql/NAME.sql>`, so the tests run
//! the very SQL the nightly runs, not a copy.

use std::path::{Path, PathBuf};

use datafusion::prelude::SessionContext;
use datafusion_sqllogictest::{DataFusion, df_value_validator, value_normalizer};
use indicatif::ProgressBar;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The model's SELECT without comment lines or blank lines (a blank line
/// would end the slt statement).
fn model_sql(name: &str) -> String {
    let path = repo().join("sql").join(format!("{name}.sql"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .trim_end_matches(';')
        .to_string()
}

fn expand(script: &str) -> String {
    let mut out = String::new();
    for line in script.lines() {
        match line.trim().strip_prefix("include model ") {
            Some(name) => {
                out.push_str("statement ok\n");
                out.push_str(&format!("CREATE VIEW {} AS {}\n", name.trim(), model_sql(name.trim())));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

async fn run_slt(file: &Path) {
    let name = file.file_name().expect("file name").to_string_lossy().into_owned();
    let script = expand(&std::fs::read_to_string(file).expect("read slt"));
    let mut runner = sqllogictest::Runner::new(|| async {
        Ok(DataFusion::new(SessionContext::new(), PathBuf::from(file.file_name().expect("name")), ProgressBar::hidden()))
    });
    runner.with_normalizer(value_normalizer);
    runner.with_validator(df_value_validator);
    if let Err(e) = runner.run_script_with_name_async(&script, name.as_str()).await {
        panic!("{name}: {e}");
    }
}

/// One `#[tokio::test]` per .slt file, so `cargo test` counts each.
macro_rules! slt_tests {
    ($($model:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $model() {
                run_slt(&repo().join("tests/sql").join(concat!(stringify!($model), ".slt"))).await;
            }
        )*

        /// Every model in sql/ has an .slt file listed above (a new model without tests fails here).
        #[test]
        fn every_model_has_an_slt_test() {
            let listed = [$(stringify!($model)),*];
            let mut models: Vec<String> = std::fs::read_dir(repo().join("sql"))
                .expect("sql/")
                .filter_map(|e| e.ok())
                .filter_map(|e| e.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect();
            models.sort();
            for m in &models {
                assert!(listed.contains(&m.as_str()), "sql/{m}.sql has no test in tests/it/sql.rs");
                assert!(repo().join("tests/sql").join(format!("{m}.slt")).exists(), "tests/sql/{m}.slt is missing");
            }
        }
    };
}

slt_tests!(
    stg_customers,
    stg_orders,
    stg_feedback,
    stg_tickets,
    stg_reviews,
    stg_web_sessions,
    stg_offers,
    customer_features,
    customer_attributes,
    nps_daily,
    csat_daily,
    service_levels,
    orders_daily,
    web_daily,
);
