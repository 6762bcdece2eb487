//! `attune voice score`: scores a text column of any CSV or Parquet file the
//! way the voice job scores comments, streaming (constant memory).
//!
//! The output has one row per input row, in input order: `row` (0-based input
//! row number), the id column when given (as text, under its own name),
//! `language`, `scored`, `unscored_reason`, `sentiment` (the compound score),
//! `label` and the six emotions. The text itself is not copied (the output
//! should carry no more free text than needed). Unscored rows have empty
//! (null) sentiment and emotions, never 0: a downstream average must not count
//! them as neutral. The format of each side follows its extension (`.csv`,
//! `.parquet`/`.pq`); the output appears only when complete (written under a
//! temporary name in the same folder, then renamed).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float64Builder, RecordBatch, StringArray, StringBuilder,
    UInt64Builder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use serde::Serialize;
use tracing::{info, instrument};

use super::{EMOTION_NAMES, Scored, Scorer};
use crate::{Error, Result};

/// Rows per output Parquet batch.
const BATCH_ROWS: usize = 8192;

/// What `score_file` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScoreFileOutcome {
    pub rows_in: u64,
    pub rows_out: u64,
    pub scored: u64,
    /// Unscored rows by reason.
    pub unscored: BTreeMap<String, u64>,
    /// Rows by detected language (`none` when undetectable or language-free).
    pub languages: BTreeMap<String, u64>,
    /// Rows by label.
    pub labels: BTreeMap<String, u64>,
    pub warnings: Vec<String>,
}

impl ScoreFileOutcome {
    fn count(&mut self, s: &Scored) {
        self.rows_out += 1;
        if s.scored {
            self.scored += 1;
        }
        if let Some(r) = s.unscored_reason {
            *self.unscored.entry(r.to_string()).or_default() += 1;
        }
        *self
            .languages
            .entry(s.language.unwrap_or("none").to_string())
            .or_default() += 1;
        *self.labels.entry(s.label.as_str().to_string()).or_default() += 1;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Parquet,
}

fn format_of(path: &Path) -> Result<Format> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("csv") => Ok(Format::Csv),
        Some("parquet" | "pq") => Ok(Format::Parquet),
        _ => Err(Error::input(
            path.display().to_string(),
            "unknown format: the file name must end in .csv, .parquet or .pq",
        )),
    }
}

/// Scores `text_column` of `input` (CSV or Parquet) into `out` (CSV or
/// Parquet, by extension), one output row per input row.
#[instrument(skip_all, fields(job = "voice_score"))]
pub fn score_file(
    input: &Path,
    text_column: &str,
    id_column: Option<&str>,
    out: &Path,
) -> Result<ScoreFileOutcome> {
    let in_format = format_of(input)?;
    let out_format = format_of(out)?;
    if input
        .canonicalize()
        .ok()
        .is_some_and(|a| out.canonicalize().ok() == Some(a))
    {
        return Err(Error::Config("--out must not be the input file".into()));
    }
    let scorer = Scorer::new();
    let partial = partial_path(out);
    let result = (|| {
        let mut sink = Sink::create(&partial, out_format, id_column)?;
        let mut outcome = ScoreFileOutcome::default();
        match in_format {
            Format::Csv => read_csv(input, text_column, id_column, |id, text| {
                let s = scorer.score(text.unwrap_or(""));
                outcome.rows_in += 1;
                outcome.count(&s);
                sink.push(outcome.rows_in - 1, id, &s)
            })?,
            Format::Parquet => read_parquet(input, text_column, id_column, |id, text| {
                let s = scorer.score(text.unwrap_or(""));
                outcome.rows_in += 1;
                outcome.count(&s);
                sink.push(outcome.rows_in - 1, id, &s)
            })?,
        }
        sink.finish()?;
        Ok(outcome)
    })();
    let mut outcome = match result {
        Ok(o) => o,
        Err(e) => {
            // Best effort: a failed run leaves no partial file behind.
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, out).map_err(|e| Error::io(out, e))?;
    let unscored = outcome.rows_out - outcome.scored;
    if unscored > 0 {
        outcome.warnings.push(format!(
            "{unscored} of {} rows not scored ({})",
            outcome.rows_out,
            outcome
                .unscored
                .iter()
                .map(|(r, n)| format!("{r}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    info!(
        rows_in = outcome.rows_in,
        rows_out = outcome.rows_out,
        scored = outcome.scored,
        "scored file"
    );
    Ok(outcome)
}

fn partial_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    out.with_file_name(format!(".{name}.partial"))
}

fn column_index(headers: &[&str], file: &Path, column: &str) -> Result<usize> {
    headers.iter().position(|h| *h == column).ok_or_else(|| {
        Error::input(
            file.display().to_string(),
            format!("no column `{column}` (columns: {})", headers.join(", ")),
        )
    })
}

/// Streams a CSV file's rows as (id, text).
fn read_csv(
    input: &Path,
    text_column: &str,
    id_column: Option<&str>,
    mut row: impl FnMut(Option<&str>, Option<&str>) -> Result<()>,
) -> Result<()> {
    let file_name = input.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(input)
        .map_err(|e| Error::input(&file_name, e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| Error::input(&file_name, e.to_string()))?
        .clone();
    let names: Vec<&str> = headers.iter().collect();
    let text_idx = column_index(&names, input, text_column)?;
    let id_idx = id_column
        .map(|c| column_index(&names, input, c))
        .transpose()?;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(Error::input(&file_name, e.to_string())),
        }
        row(id_idx.and_then(|i| record.get(i)), record.get(text_idx))?;
    }
    Ok(())
}

/// Streams a Parquet file's rows as (id, text); any column type is read as text.
fn read_parquet(
    input: &Path,
    text_column: &str,
    id_column: Option<&str>,
    mut row: impl FnMut(Option<&str>, Option<&str>) -> Result<()>,
) -> Result<()> {
    let file = File::open(input).map_err(|e| Error::io(input, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let names: Vec<&str> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    let text_idx = column_index(&names, input, text_column)?;
    let id_idx = id_column
        .map(|c| column_index(&names, input, c))
        .transpose()?;
    let mut roots = vec![text_idx];
    roots.extend(id_idx);
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()?;
    for batch in reader {
        let batch = batch?;
        let as_text = |name: &str| -> Result<StringArray> {
            let col = batch.column_by_name(name).ok_or_else(|| {
                Error::Internal(format!("projected column `{name}` missing from a batch"))
            })?;
            let col = cast(col, &DataType::Utf8)?;
            col.as_any()
                .downcast_ref::<StringArray>()
                .cloned()
                .ok_or_else(|| Error::Internal("cast to Utf8 did not give a StringArray".into()))
        };
        let texts = as_text(text_column)?;
        let ids = id_column.map(as_text).transpose()?;
        for i in 0..batch.num_rows() {
            let text = texts.is_valid(i).then(|| texts.value(i));
            let id = ids.as_ref().and_then(|a| a.is_valid(i).then(|| a.value(i)));
            row(id, text)?;
        }
    }
    Ok(())
}

/// Output columns after `row` and the optional id.
const SCORE_COLUMNS: [&str; 5] = [
    "language",
    "scored",
    "unscored_reason",
    "sentiment",
    "label",
];

/// The output file being written.
enum Sink {
    Csv(Box<csv::Writer<BufWriter<File>>>),
    Parquet(Box<ParquetSink>),
}

struct ParquetSink {
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    has_id: bool,
    row: UInt64Builder,
    id: StringBuilder,
    language: StringBuilder,
    scored: BooleanBuilder,
    reason: StringBuilder,
    sentiment: Float64Builder,
    label: StringBuilder,
    emotions: [Float64Builder; 6],
    rows: usize,
}

impl Sink {
    fn create(path: &Path, format: Format, id_column: Option<&str>) -> Result<Sink> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        match format {
            Format::Csv => {
                let mut w = csv::Writer::from_writer(BufWriter::new(file));
                let mut header = vec!["row"];
                header.extend(id_column);
                header.extend(SCORE_COLUMNS);
                header.extend(EMOTION_NAMES);
                w.write_record(&header)
                    .map_err(|e| Error::input(path.display().to_string(), e.to_string()))?;
                Ok(Sink::Csv(Box::new(w)))
            }
            Format::Parquet => {
                let mut fields = vec![Field::new("row", DataType::UInt64, false)];
                if let Some(id) = id_column {
                    fields.push(Field::new(id, DataType::Utf8, true));
                }
                fields.push(Field::new("language", DataType::Utf8, true));
                fields.push(Field::new("scored", DataType::Boolean, false));
                fields.push(Field::new("unscored_reason", DataType::Utf8, true));
                fields.push(Field::new("sentiment", DataType::Float64, true));
                fields.push(Field::new("label", DataType::Utf8, false));
                for e in EMOTION_NAMES {
                    fields.push(Field::new(e, DataType::Float64, true));
                }
                let schema: SchemaRef = Arc::new(Schema::new(fields));
                let writer = ArrowWriter::try_new(
                    file,
                    schema.clone(),
                    Some(crate::parquet_io::export_properties()),
                )?;
                Ok(Sink::Parquet(Box::new(ParquetSink {
                    writer,
                    schema,
                    has_id: id_column.is_some(),
                    row: UInt64Builder::new(),
                    id: StringBuilder::new(),
                    language: StringBuilder::new(),
                    scored: BooleanBuilder::new(),
                    reason: StringBuilder::new(),
                    sentiment: Float64Builder::new(),
                    label: StringBuilder::new(),
                    emotions: std::array::from_fn(|_| Float64Builder::new()),
                    rows: 0,
                })))
            }
        }
    }

    fn push(&mut self, row: u64, id: Option<&str>, s: &Scored) -> Result<()> {
        match self {
            Sink::Csv(w) => {
                let fmt = |x: f64| {
                    if s.scored {
                        format!("{x:.4}")
                    } else {
                        String::new()
                    }
                };
                let mut rec: Vec<String> = vec![row.to_string()];
                if let Some(id) = id {
                    rec.push(id.to_string());
                }
                rec.push(s.language.unwrap_or("").to_string());
                rec.push(s.scored.to_string());
                rec.push(s.unscored_reason.unwrap_or("").to_string());
                rec.push(fmt(s.compound));
                rec.push(s.label.as_str().to_string());
                rec.extend(s.emotions.as_array().map(fmt));
                w.write_record(&rec)
                    .map_err(|e| Error::input("csv output", e.to_string()))
            }
            Sink::Parquet(p) => {
                p.row.append_value(row);
                if p.has_id {
                    p.id.append_option(id);
                }
                p.language.append_option(s.language);
                p.scored.append_value(s.scored);
                p.reason.append_option(s.unscored_reason);
                p.sentiment.append_option(s.scored.then_some(s.compound));
                p.label.append_value(s.label.as_str());
                for (b, v) in p.emotions.iter_mut().zip(s.emotions.as_array()) {
                    b.append_option(s.scored.then_some(v));
                }
                p.rows += 1;
                if p.rows >= BATCH_ROWS {
                    p.flush()?;
                }
                Ok(())
            }
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            Sink::Csv(mut w) => w.flush().map_err(|e| Error::io("csv output", e)),
            Sink::Parquet(mut p) => {
                p.flush()?;
                p.writer.close()?;
                Ok(())
            }
        }
    }
}

impl ParquetSink {
    fn flush(&mut self) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut cols: Vec<ArrayRef> = vec![Arc::new(self.row.finish())];
        if self.has_id {
            cols.push(Arc::new(self.id.finish()));
        }
        cols.push(Arc::new(self.language.finish()));
        cols.push(Arc::new(self.scored.finish()));
        cols.push(Arc::new(self.reason.finish()));
        cols.push(Arc::new(self.sentiment.finish()));
        cols.push(Arc::new(self.label.finish()));
        for b in &mut self.emotions {
            cols.push(Arc::new(b.finish()));
        }
        let batch = RecordBatch::try_new(self.schema.clone(), cols)?;
        self.writer.write(&batch)?;
        self.rows = 0;
        Ok(())
    }
}
