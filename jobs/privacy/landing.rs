//! Reading landing exports for the privacy job: the raw customer
//! identifiers check 4 looks for, and row counts for retention.
//!
//! Files are parsed by ingest's own reader ([`crate::ingest::source`]), so
//! a value is recognized exactly as ingest saw it (same CSV dialect, gzip,
//! NDJSON, header mapping). Raw identifiers are held only as 128-bit
//! fingerprints in memory and never written anywhere.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::NaiveDate;
use futures::StreamExt;
use object_store::path::Path;

use super::scan::IdShape;
use crate::ingest::pseudonym::fingerprint128;
use crate::ingest::source::{self, RowSink};
use crate::ingest::validate::{Fields, Reject};
use crate::schema::Contract;
use crate::storage::{Storage, landing_dir};
use crate::{Error, Result};

/// A landing file and the contract it is read with.
#[derive(Debug, Clone)]
pub struct LandingFile {
    pub contract: Arc<Contract>,
    pub path: Path,
}

/// The raw identifiers found in landing, as fingerprints.
#[derive(Debug, Clone, Default)]
pub struct RawIds {
    pub fingerprints: HashSet<u128>,
    /// First bytes and lengths of the identifiers.
    pub shape: IdShape,
    pub files: u64,
    pub rows: u64,
}

/// The landing days present for `table`, sorted.
pub async fn landing_dates(storage: &Storage, table: &str) -> Result<Vec<NaiveDate>> {
    let mut dates: Vec<NaiveDate> = storage
        .list_dirs(&Path::from(format!("landing/{table}")))
        .await?
        .iter()
        .filter_map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .collect();
    dates.sort();
    Ok(dates)
}

/// The export files of `table` on `date` that ingest would read.
pub async fn files_of(
    storage: &Storage,
    contract: &Arc<Contract>,
    date: NaiveDate,
) -> Result<Vec<LandingFile>> {
    Ok(storage
        .list(&landing_dir(&contract.table, date))
        .await?
        .into_iter()
        .filter(|m| source::detect(m.location.filename().unwrap_or_default()).is_some())
        .map(|m| LandingFile {
            contract: contract.clone(),
            path: m.location,
        })
        .collect())
}

/// Collects the customer identifiers of `files` (tables without a customer
/// column are skipped). A file ingest would refuse (bad header) is skipped
/// too: ingest wrote nothing from it, so nothing of it can have leaked.
pub async fn raw_ids(
    storage: &Storage,
    files: Vec<LandingFile>,
    delimiter: u8,
    threads: usize,
) -> Result<RawIds> {
    let handle = tokio::runtime::Handle::current();
    let mut tasks = futures::stream::iter(
        files
            .into_iter()
            .filter(|f| f.contract.customer_column().is_some())
            .map(|f| {
                let (storage, handle) = (storage.clone(), handle.clone());
                tokio::task::spawn_blocking(move || read_ids(&storage, &handle, &f, delimiter))
            }),
    )
    .buffer_unordered(threads.max(1));
    let mut all = RawIds::default();
    while let Some(r) = tasks.next().await {
        let part = r.map_err(crate::nightly::panics::joined("a landing reader"))??;
        all.fingerprints.extend(part.fingerprints);
        all.shape.merge(&part.shape);
        all.files += part.files;
        all.rows += part.rows;
    }
    Ok(all)
}

fn read_ids(
    storage: &Storage,
    handle: &tokio::runtime::Handle,
    f: &LandingFile,
    delimiter: u8,
) -> Result<RawIds> {
    let Some(col) = f.contract.customer_column() else {
        return Ok(RawIds::default());
    };
    let name = f.path.filename().unwrap_or_default();
    let Some((format, gz)) = source::detect(name) else {
        return Ok(RawIds::default());
    };
    let mut sink = IdSink {
        col,
        ids: RawIds::default(),
    };
    let input = storage.open_read(handle, &f.path)?;
    match source::read(
        input,
        format,
        gz,
        f.path.as_ref(),
        delimiter,
        &f.contract,
        &mut sink,
    ) {
        Ok(report) => {
            sink.ids.files = 1;
            sink.ids.rows = report.rows;
            Ok(sink.ids)
        }
        Err(Error::Input { .. }) => Ok(RawIds::default()),
        Err(e) => Err(e),
    }
}

struct IdSink {
    col: usize,
    ids: RawIds,
}

impl RowSink for IdSink {
    fn row(&mut self, _line: u64, fields: &Fields<'_>, _raw: &dyn Fn() -> String) -> Result<()> {
        if let Some(v) = fields[self.col] {
            let v = crate::ingest::pseudonym::trim_id(v);
            if !v.is_empty() {
                self.ids.fingerprints.insert(fingerprint128(v));
                self.ids.shape.add(v);
            }
        }
        Ok(())
    }

    fn reject(&mut self, _line: u64, _reject: Reject, _raw: &dyn Fn() -> String) -> Result<()> {
        Ok(())
    }
}

/// Data rows of a landing file as ingest counts them, or `None` when the
/// file is not one ingest reads (unknown extension or refused header).
pub fn count_rows(
    storage: &Storage,
    handle: &tokio::runtime::Handle,
    contract: &Contract,
    path: &Path,
    delimiter: u8,
) -> Result<Option<u64>> {
    let Some((format, gz)) = source::detect(path.filename().unwrap_or_default()) else {
        return Ok(None);
    };
    let input = storage.open_read(handle, path)?;
    match source::read(
        input,
        format,
        gz,
        path.as_ref(),
        delimiter,
        contract,
        &mut Discard,
    ) {
        Ok(report) => Ok(Some(report.rows)),
        Err(Error::Input { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

struct Discard;

impl RowSink for Discard {
    fn row(&mut self, _: u64, _: &Fields<'_>, _: &dyn Fn() -> String) -> Result<()> {
        Ok(())
    }
    fn reject(&mut self, _: u64, _: Reject, _: &dyn Fn() -> String) -> Result<()> {
        Ok(())
    }
}
