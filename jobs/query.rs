//! The analyst's surface: `attune query` (SQL over every lake and mart
//! table) and `attune tables` (what exists, with partitions, rows, schema).

use std::path::Path as FsPath;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::catalog::{self, TableRef};
use crate::storage::Storage;
use crate::{Error, Result};

/// Output formats of `attune query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

/// Runs `sql` over every registered table. With `out`, writes the result
/// there in `format`; otherwise returns the batches for printing.
pub async fn run(
    storage: &Storage,
    sql: &str,
    format: OutputFormat,
    out: Option<&FsPath>,
) -> Result<Vec<RecordBatch>> {
    let (ctx, tables) = catalog::session_with_all(storage).await?;
    let with_tables = |e: datafusion::error::DataFusionError| {
        let names: Vec<String> = tables
            .iter()
            .map(|t| format!("{} ({})", t.name, t.area))
            .collect();
        let known = if names.is_empty() {
            "none yet: run `attune nightly` or `attune demo` first".to_string()
        } else {
            names.join(", ")
        };
        Error::Config(format!("{e}\nknown tables: {known}"))
    };
    let df = ctx.sql(sql).await.map_err(with_tables)?;
    let Some(path) = out else {
        return df.collect().await.map_err(with_tables);
    };
    // Streamed into a file of our own, not through DataFusion's writers,
    // which read the path as a URL (a `[` or `?` in a file name cut it) and
    // leave `--out` with the table format unwritten. The file appears whole
    // or not at all: written beside it, then renamed.
    let tmp = path.with_file_name(format!(
        ".{}.partial",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let written = write_stream(df, format, &tmp).await;
    match written {
        Ok(()) => std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    }
    Ok(Vec::new())
}

/// Writes the rows of `df` to `path` in `format`, batch by batch (a table
/// is laid out whole: it is for people).
async fn write_stream(
    df: datafusion::dataframe::DataFrame,
    format: OutputFormat,
    path: &FsPath,
) -> Result<()> {
    use futures::StreamExt;
    use std::io::Write;
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut file = std::io::BufWriter::new(file);
    if format == OutputFormat::Table {
        let batches = df.collect().await?;
        writeln!(file, "{}", pretty_format_batches(&batches)?).map_err(|e| Error::io(path, e))?;
        return file.flush().map_err(|e| Error::io(path, e));
    }
    let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
    let schema_of_empty = schema.clone();
    let mut stream = df.execute_stream().await?;
    enum Sink<W: Write + Send> {
        Csv(datafusion::arrow::csv::Writer<W>),
        Json(datafusion::arrow::json::LineDelimitedWriter<W>),
        Parquet(parquet::arrow::ArrowWriter<W>),
    }
    let mut sink = match format {
        OutputFormat::Csv => Sink::Csv(datafusion::arrow::csv::Writer::new(file)),
        OutputFormat::Json => Sink::Json(datafusion::arrow::json::LineDelimitedWriter::new(file)),
        _ => Sink::Parquet(parquet::arrow::ArrowWriter::try_new(
            file,
            schema,
            Some(crate::parquet_io::export_properties()),
        )?),
    };
    let mut any = false;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        any = true;
        match &mut sink {
            Sink::Csv(w) => w.write(&batch)?,
            Sink::Json(w) => w.write(&batch)?,
            Sink::Parquet(w) => w.write(&batch)?,
        }
    }
    if !any && let Sink::Csv(w) = &mut sink {
        // the header is written with the first batch: a query without rows
        // still gives a CSV that names its columns
        w.write(&RecordBatch::new_empty(schema_of_empty))?;
    }
    let mut file = match sink {
        Sink::Csv(w) => w.into_inner(),
        Sink::Json(mut w) => {
            w.finish()?;
            w.into_inner()
        }
        Sink::Parquet(w) => w.into_inner()?,
    };
    file.flush().map_err(|e| Error::io(path, e))
}

/// Formats batches for the terminal.
pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<String> {
    match format {
        OutputFormat::Table => Ok(pretty_format_batches(batches)?.to_string()),
        OutputFormat::Csv => {
            let mut buf = Vec::new();
            {
                let mut w = datafusion::arrow::csv::Writer::new(&mut buf);
                for b in batches {
                    w.write(b)?;
                }
            }
            String::from_utf8(buf).map_err(|e| Error::Internal(e.to_string()))
        }
        OutputFormat::Json => {
            let mut buf = Vec::new();
            {
                let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut buf);
                for b in batches {
                    w.write(b)?;
                }
                w.finish()?;
            }
            String::from_utf8(buf).map_err(|e| Error::Internal(e.to_string()))
        }
        OutputFormat::Parquet => Err(Error::Config("--format parquet needs --out FILE".into())),
    }
}

/// One table for `attune tables`.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub table: TableRef,
    pub partitions: Vec<String>,
    pub rows: u64,
    /// (column, type, nullable)
    pub columns: Vec<(String, String, bool)>,
}

/// Every lake and mart table with partitions, row count and schema.
pub async fn tables(storage: &Storage) -> Result<Vec<TableInfo>> {
    let (ctx, refs) = catalog::session_with_all(storage).await?;
    let mut out = Vec::new();
    for t in refs {
        let partitions: Vec<String> = t
            .partitions
            .iter()
            .filter_map(|d| d.strip_prefix("dt=").map(str::to_string))
            .collect();
        let provider = ctx.table_provider(t.name.as_str()).await?;
        let columns = provider
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().to_string(), f.is_nullable()))
            .collect();
        let counted = ctx
            .sql(&format!("SELECT COUNT(*) AS n FROM {}", t.name))
            .await?
            .collect()
            .await?;
        let rows = counted
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
                    .map(|a| a.value(0))
            })
            .unwrap_or(0);
        out.push(TableInfo {
            table: t,
            partitions,
            rows: u64::try_from(rows).unwrap_or(0),
            columns,
        });
    }
    Ok(out)
}

/// Column documentation of every lake table (from the contracts) and every
/// model (from its SQL header) and every Rust job's mart (from
/// `schemas/marts/`), as Markdown.
pub fn docs(
    contracts: &crate::schema::Contracts,
    models: &[crate::transform::models::Model],
    mart_docs: &[crate::mart::MartDoc],
) -> String {
    let mut out = String::from(
        "# attune tables\n\nEvery table is hive-partitioned Parquet under `<root>/<area>/<table>/dt=<YYYY-MM-DD>/`; `dt` is the export day (lake) or the run date (marts).\n",
    );
    out.push_str("\n## Lake (ingested exports)\n");
    for c in contracts.iter() {
        out.push_str(&format!("\n### lake/{}\n\n{}\n\n| column | type | privacy | meaning |\n| --- | --- | --- | --- |\n", c.table, c.description));
        for col in c.columns.iter().filter(|col| col.is_kept()) {
            out.push_str(&format!(
                "| {} | {} | {:?} | {} |\n",
                col.output,
                col.lake_type(),
                col.privacy,
                col.purpose
            ));
        }
    }
    out.push_str("\n### lake/ingest_audit\n\nWhat arrived in each export file and what became of its rows and columns (attune's own table, written by ingest). Grain: one row per date, file and outcome, and per date, file and column.\n\n| column | meaning |\n| --- | --- |\n");
    for (col, doc) in crate::ingest::AUDIT_DOCS {
        out.push_str(&format!("| {col} | {doc} |\n"));
    }
    out.push_str("\n## Marts (SQL models, `sql/<model>.sql`)\n");
    for m in models
        .iter()
        .filter(|m| m.materialized == crate::transform::models::Materialized::Table)
    {
        // an analyst comparing two nights' partitions should know that a
        // day's row is only computed again when new exports touch that day
        let incremental = match (&m.incremental, &m.totals) {
            (Some(i), _) => format!(
                " Incremental: each night computes again only the values of `{}` that new exports touch and carries the others from the night before.",
                i.date_column
            ),
            (None, Some(t)) => format!(
                " Incremental: running totals per {}; each night adds what its exports bring to the night before's totals and takes back the rows that leave one of its windows.",
                t.keys.join(", ")
            ),
            (None, None) => String::new(),
        };
        out.push_str(&format!(
            "\n### marts/{}\n\n{} Grain: {}.{incremental}\n\n| column | meaning |\n| --- | --- |\n",
            m.name, m.purpose, m.grain
        ));
        for (col, doc) in &m.columns {
            out.push_str(&format!("| {col} | {doc} |\n"));
        }
    }
    out.push_str("\n## Marts written by jobs (documented in `schemas/marts/<table>.toml`)\n");
    for d in mart_docs {
        out.push_str(&format!(
            "\n### marts/{}\n\n{} Written by `attune {}`. Grain: {}.\n\n| column | meaning |\n| --- | --- |\n",
            d.table, d.purpose, d.job, d.grain
        ));
        for (col, doc) in &d.columns {
            out.push_str(&format!("| {col} | {doc} |\n"));
        }
    }
    out.push_str("\n### marts/lineage\n\nWhich lake columns each model reads. Grain: one row per model, output column and lake column.\n\n| column | meaning |\n| --- | --- |\n| model | the model (file stem in sql/) |\n| output_column | the model's output column; NULL on `logic` rows |\n| source_table | lake table |\n| source_column | lake column |\n| usage | `output` (the value derives from it) or `logic` (read to filter, join, group, order or de-duplicate; a column can be both) |\n");
    out
}
