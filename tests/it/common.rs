//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use attune::config::ValidConfig;
use attune::context::JobContext;
use attune::ingest::{self, IngestOutcome};
use chrono::NaiveDate;
use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub const KEY: &str = "integration-test-key-0123456789";

/// A data root in a temp dir.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Root {
    pub fn new() -> Root {
        Root {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Generates the demo business's landing exports here: `customers`
    /// customers over `days` days from the generator's default start and
    /// seed. Returns what it generated with.
    pub fn generate(&self, customers: u64, days: u32) -> attune::generate::GenerateParams {
        let params = attune::generate::GenerateParams {
            out: self.path().to_path_buf(),
            customers,
            days,
            ..Default::default()
        };
        attune::generate::generate(&params).expect("generate");
        params
    }

    /// Writes a landing file.
    pub fn land(&self, table: &str, date: &str, name: &str, bytes: &[u8]) {
        let dir = self.path().join("landing").join(table).join(date);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(name), bytes).expect("write landing file");
    }

    /// A job context on this root ingesting only `tables`, under `key`.
    pub fn ctx(&self, tables: &[&str], key: &str) -> JobContext {
        let cfg = ValidConfig {
            root: self.path().to_string_lossy().into_owned(),
            ingest: attune::config::IngestConfig {
                tables: tables.iter().map(|s| s.to_string()).collect(),
                ..ValidConfig::default().ingest
            },
            ..ValidConfig::default()
        };
        let mut ctx = JobContext::open(cfg, attune::context::KeyMode::NotNeeded).expect("context");
        ctx.key = Some(attune::config::Key::new(key.as_bytes().to_vec()));
        ctx
    }

    pub async fn ingest(&self, tables: &[&str], dates: &[&str]) -> IngestOutcome {
        self.try_ingest(tables, dates, KEY).await.expect("ingest")
    }

    pub async fn try_ingest(
        &self,
        tables: &[&str],
        dates: &[&str],
        key: &str,
    ) -> attune::Result<IngestOutcome> {
        let dates: Vec<NaiveDate> = dates.iter().map(|d| d.parse().expect("date")).collect();
        ingest::run(&self.ctx(tables, key), &dates).await
    }

    /// Batches of `<area>/<table>/dt=<date>/part-0.parquet`.
    pub fn read(&self, area: &str, table: &str, date: &str) -> Vec<RecordBatch> {
        read_parquet(
            &self
                .path()
                .join(area)
                .join(table)
                .join(format!("dt={date}"))
                .join("part-0.parquet"),
        )
    }

    /// The values of a string column of a partition.
    pub fn strings(
        &self,
        area: &str,
        table: &str,
        date: &str,
        column: &str,
    ) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for b in self.read(area, table, date) {
            let col = b
                .column_by_name(column)
                .unwrap_or_else(|| panic!("no column {column}"));
            let s = col
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("string column");
            for i in 0..s.len() {
                out.push(s.is_valid(i).then(|| s.value(i).to_string()));
            }
        }
        out
    }

    pub fn rows(&self, area: &str, table: &str, date: &str) -> usize {
        self.read(area, table, date)
            .iter()
            .map(RecordBatch::num_rows)
            .sum()
    }
}

pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader")
        .collect::<Result<Vec<_>, _>>()
        .expect("batches")
}

/// The bytes of each of `tables`' mart partition for `date` under `root`:
/// what two ways of computing the same night must both write.
pub fn mart_bytes(
    root: &Path,
    tables: &[&'static str],
    date: NaiveDate,
) -> Vec<(&'static str, Vec<u8>)> {
    tables
        .iter()
        .map(|t| {
            let file = root
                .join("marts")
                .join(t)
                .join(format!("dt={date}"))
                .join("part-0.parquet");
            (*t, std::fs::read(&file).expect("mart partition"))
        })
        .collect()
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Writes a lake partition again with the same bytes, as a re-ingest does:
/// the same rows in a new file (a later modification time), so a record of
/// the lake up to it no longer vouches for it.
pub fn rewrite_partition(root: &Path, table: &str, day: chrono::NaiveDate) {
    let path = root
        .join("lake")
        .join(table)
        .join(format!("dt={day}"))
        .join("part-0.parquet");
    let bytes = std::fs::read(&path).expect("partition");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&path, bytes).expect("rewrite");
}

/// Copies every file under `from` to the same place under `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    for f in files_under(from) {
        let rel = f.strip_prefix(from).expect("under");
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&f, &dest).expect("copy");
    }
}

/// The attune binary with a clean environment and the test key.
pub fn attune() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_attune"));
    c.env_remove("ATTUNE_ROOT")
        .env_remove("ATTUNE_LOG")
        .env("ATTUNE_KEY", KEY);
    c
}

/// A generated business (seed 42, 1,500 customers, 240 days from
/// 2025-01-01), ingested and transformed once per test binary with
/// [`KEY`], shared read-mostly by the job tests. Jobs may write their own
/// marts into it (each partition file is replaced atomically), never the
/// lake. Returns (data root, last day).
pub fn demo_lake() -> (&'static Path, NaiveDate) {
    static LAKE: std::sync::OnceLock<(tempfile::TempDir, NaiveDate)> = std::sync::OnceLock::new();
    let (dir, last) = LAKE.get_or_init(|| {
        // A thread of its own: tests run inside tokio runtimes, which cannot
        // block on another runtime.
        std::thread::spawn(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let params = attune::generate::GenerateParams {
                out: dir.path().to_path_buf(),
                customers: 1500,
                days: 240,
                seed: 42,
                ..attune::generate::GenerateParams::default()
            };
            attune::generate::generate(&params).expect("generate");
            let last = params.start + chrono::Duration::days(i64::from(params.days) - 1);
            let cfg = ValidConfig {
                root: dir.path().to_string_lossy().into_owned(),
                ..ValidConfig::default()
            };
            let mut ctx =
                JobContext::open(cfg, attune::context::KeyMode::NotNeeded).expect("context");
            ctx.key = Some(attune::config::Key::new(KEY.as_bytes().to_vec()));
            let dates = attune::nightly::date_range(params.start, last).expect("dates");
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(attune::nightly::run(
                &ctx,
                &attune::nightly::NightlyParams {
                    dates,
                    only: vec!["ingest".into(), "transform".into()],
                    ..Default::default()
                },
            ))
            .expect("ingest + transform of the demo lake");
            (dir, last)
        })
        .join()
        .expect("demo lake thread")
    });
    (dir.path(), *last)
}

/// A job context on the shared [`demo_lake`] (key set, default config).
pub fn demo_ctx() -> (JobContext, NaiveDate) {
    let (root, last) = demo_lake();
    let cfg = ValidConfig {
        root: root.to_string_lossy().into_owned(),
        ..ValidConfig::default()
    };
    let mut ctx = JobContext::open(cfg, attune::context::KeyMode::NotNeeded).expect("context");
    ctx.key = Some(attune::config::Key::new(KEY.as_bytes().to_vec()));
    (ctx, last)
}

/// Column `name` of `b` as its concrete Arrow array type.
pub fn column<A: datafusion::arrow::array::Array + Clone + 'static>(
    b: &RecordBatch,
    name: &str,
) -> A {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<A>()
        .unwrap_or_else(|| panic!("column {name} is not a {}", std::any::type_name::<A>()))
        .clone()
}

/// Asserts that a finished `attune` process succeeded, showing its stderr
/// when it did not.
#[track_caller]
pub fn assert_succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
