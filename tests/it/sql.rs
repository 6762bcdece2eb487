//! The SQL models on hand-built inputs: one `.slt` file per model under
//! `tests/sql/`, each run in a fresh DataFusion session by sqllogictest-rs
//! (the runner DataFusion's own suite uses), with values printed the way
//! DataFusion's suite prints them (floats rounded to 12 decimals, `NULL`,
//! `(empty)` for an empty string), so the files read like DataFusion's own.
//!
//! A line `include model NAME` in an .slt file becomes
//! `statement ok` + `CREATE VIEW NAME AS <sql/NAME.sql>`, so the tests run
//! the very SQL the nightly runs, not a copy.

use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use sqllogictest::{AsyncDB, ColumnType, DBOutput};

/// Column types as DataFusion's .slt files spell them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DfType {
    Boolean,
    Date,
    Integer,
    Timestamp,
    Float,
    Text,
    Any,
}

impl ColumnType for DfType {
    fn from_char(c: char) -> Option<Self> {
        Some(match c {
            'B' => DfType::Boolean,
            'D' => DfType::Date,
            'I' => DfType::Integer,
            'P' => DfType::Timestamp,
            'R' => DfType::Float,
            'T' => DfType::Text,
            _ => DfType::Any,
        })
    }

    fn to_char(&self) -> char {
        match self {
            DfType::Boolean => 'B',
            DfType::Date => 'D',
            DfType::Integer => 'I',
            DfType::Timestamp => 'P',
            DfType::Float => 'R',
            DfType::Text => 'T',
            DfType::Any => '?',
        }
    }
}

fn column_type(t: &DataType) -> DfType {
    match t {
        DataType::Boolean => DfType::Boolean,
        DataType::Date32 | DataType::Date64 => DfType::Date,
        DataType::Timestamp(_, _) => DfType::Timestamp,
        t if t.is_integer() => DfType::Integer,
        t if t.is_floating() || matches!(t, DataType::Decimal128(_, _)) => DfType::Float,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DfType::Text,
        _ => DfType::Any,
    }
}

/// Rounded to 12 decimals, trailing zeros dropped: stable across platforms.
fn float_text(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let s = format!("{v:.12}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

fn cell_text(col: &ArrayRef, row: usize) -> Result<String, DataFusionError> {
    if col.is_null(row) {
        return Ok("NULL".into());
    }
    Ok(match col.data_type() {
        DataType::Float64 => float_text(col.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => float_text(f64::from(
            col.as_primitive::<datafusion::arrow::datatypes::Float32Type>()
                .value(row),
        )),
        _ => {
            let text = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default())?
                .value(row)
                .to_string();
            if text.is_empty() {
                "(empty)".into()
            } else {
                text
            }
        }
    })
}

/// One fresh DataFusion session per .slt file, with `run_date()` as the
/// transform registers it.
struct DataFusionDb {
    ctx: SessionContext,
}

/// The date of the file's `# run_date: YYYY-MM-DD` line.
fn run_date_of(script: &str, name: &str) -> chrono::NaiveDate {
    let line = script
        .lines()
        .find_map(|l| l.trim().strip_prefix("# run_date:"))
        .unwrap_or_else(|| panic!("{name} has no `# run_date: YYYY-MM-DD` line"));
    let date = line.split_whitespace().next().unwrap_or_default();
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .unwrap_or_else(|e| panic!("{name}: run_date {date:?}: {e}"))
}

#[async_trait::async_trait]
impl AsyncDB for DataFusionDb {
    type Error = DataFusionError;
    type ColumnType = DfType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DfType>, DataFusionError> {
        let df = self.ctx.sql(sql).await?;
        let schema = df.schema().as_arrow().clone();
        let batches: Vec<RecordBatch> = df.collect().await?;
        let is_statement = schema.fields().is_empty()
            || (schema.fields().len() == 1 && schema.field(0).name() == "count" && {
                let t = sql.trim_start().to_ascii_lowercase();
                t.starts_with("create") || t.starts_with("insert") || t.starts_with("drop")
            });
        if is_statement {
            return Ok(DBOutput::StatementComplete(0));
        }
        let mut rows = Vec::new();
        for b in &batches {
            for r in 0..b.num_rows() {
                rows.push(
                    b.columns()
                        .iter()
                        .map(|c| cell_text(c, r))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
        }
        Ok(DBOutput::Rows {
            types: schema
                .fields()
                .iter()
                .map(|f| column_type(f.data_type()))
                .collect(),
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "DataFusion"
    }
}

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

/// Lake tables the superseded list covers: key column and the ordering
/// that puts a key's winning record first.
const KEYED: [(&str, &str, &str); 7] = [
    ("orders", "order_id", "dt DESC"),
    ("feedback", "response_id", "dt DESC"),
    ("tickets", "ticket_id", "dt DESC"),
    ("reviews", "review_id", "dt DESC"),
    ("web_sessions", "session_id", "dt DESC"),
    ("offers", "offer_id", "dt DESC"),
    // the latest consent change wins, not the latest export: see
    // CUSTOMERS_WINNER
    ("customers", "customer_id", ""),
];

/// The customers record that ingest's consent rule keeps, stated without
/// its fold (in export order, a copy replaces the current one unless both
/// consent times are known and its own is earlier): a copy without a time
/// always replaces, so the winner is among the copies exported after the
/// last one without a time, the latest of those with the latest time; with
/// none after it, that copy itself.
const CUSTOMERS_WINNER: &str = "after_untimed, consent_updated_at DESC, dt DESC";

/// Each customers copy with `after_untimed`: 0 when exported after the
/// customer's last copy without a consent time (or there is none), 1 for
/// that copy, 2 before it (a column, not an ORDER BY expression: DataFusion
/// 55's plan check rejects the CASE there).
const CUSTOMERS_COPIES: &str = "(SELECT *, CASE WHEN dt > coalesce(last_untimed, DATE '0001-01-01') THEN 0 \
     WHEN dt = last_untimed THEN 1 ELSE 2 END AS after_untimed FROM (SELECT *, \
     max(CASE WHEN consent_updated_at IS NULL THEN dt END) OVER (PARTITION BY customer_id) AS last_untimed \
     FROM customers WHERE dt <= run_date()))";

/// `superseded` as the transform provides it, computed here by a plain
/// window-function reference (every record but the winner, up to the run
/// date) over the fixture tables the script created: the models see what
/// the nightly gives them, and the Rust pass is tested against the same rule
/// in `transform::superseded`.
fn superseded_sql(created: &[String]) -> String {
    let parts: Vec<String> = KEYED
        .iter()
        .filter(|(t, _, _)| created.iter().any(|c| c == t))
        .map(|(t, k, order)| {
            let (order, from) = match *t {
                "customers" => (CUSTOMERS_WINNER, CUSTOMERS_COPIES.to_string()),
                _ => (*order, format!("(SELECT * FROM {t} WHERE dt <= run_date())")),
            };
            format!(
                "SELECT '{t}' AS table_name, {k} AS record_key, dt AS source_dt FROM (SELECT {k}, dt, row_number() OVER (PARTITION BY {k} ORDER BY {order}) AS copy FROM {from}) WHERE copy > 1"
            )
        })
        .collect();
    if parts.is_empty() {
        "CREATE TABLE superseded (table_name VARCHAR, record_key VARCHAR, source_dt DATE)".into()
    } else {
        format!("CREATE TABLE superseded AS {}", parts.join(" UNION ALL "))
    }
}

fn expand(script: &str) -> String {
    let mut out = String::new();
    let mut created: Vec<String> = Vec::new();
    let mut provided = false;
    for line in script.lines() {
        if let Some(rest) = line.trim().strip_prefix("CREATE TABLE ")
            && let Some(name) = rest
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
        {
            created.push(name.to_string());
        }
        match line.trim().strip_prefix("include model ") {
            Some(name) => {
                if !provided {
                    out.push_str("statement ok\n");
                    out.push_str(&superseded_sql(&created));
                    out.push_str("\n\n");
                    provided = true;
                }
                out.push_str("statement ok\n");
                out.push_str(&format!(
                    "CREATE VIEW {} AS {}\n",
                    name.trim(),
                    model_sql(name.trim())
                ));
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
    let name = file
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned();
    let script = expand(&std::fs::read_to_string(file).expect("read slt"));
    let date = run_date_of(&script, &name);
    let mut runner = sqllogictest::Runner::new(|| async move {
        let ctx = SessionContext::new();
        ctx.register_udf(attune::transform::run_date_udf(date));
        attune::catalog::install_functions(&ctx);
        Ok(DataFusionDb { ctx })
    });
    runner.with_column_validator(sqllogictest::strict_column_validator);
    if let Err(e) = runner
        .run_script_with_name_async(&script, name.as_str())
        .await
    {
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
    customer_order_totals,
    customer_web_totals,
    customer_features,
    customer_attributes,
    nps_daily,
    csat_daily,
    service_levels,
    orders_daily,
    web_daily,
);
