//! The consent exclusion list: pseudonyms of customers who declined analytics.
//!
//! Kept under `control/consent/`, outside lake and marts, because it is the
//! one place those customers may appear: without it, tomorrow's orders of a
//! customer who opted out today could not be recognized and excluded. It
//! holds pseudonyms only, never raw identifiers.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use object_store::path::Path;

use super::pseudonym::{PSEUDONYM_LEN, Pseudonym};
use crate::parquet_io::{read_batches, write_batches};
use crate::storage::Storage;
use crate::{Error, Result};

/// Where the list lives.
pub fn path() -> Path {
    Path::from("control/consent/part-0.parquet")
}

/// The set of excluded pseudonyms.
#[derive(Debug, Clone, Default)]
pub struct ConsentList {
    pub pseudonyms: HashSet<Pseudonym>,
}

impl ConsentList {
    /// Loads the list (empty when none was written yet).
    pub async fn load(storage: &Storage) -> Result<ConsentList> {
        if storage.get_opt(&path()).await?.is_none() {
            return Ok(ConsentList::default());
        }
        let mut pseudonyms = HashSet::new();
        for batch in read_batches(storage, &path()).await? {
            let col = batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| {
                    Error::Internal("control/consent: pseudonym column is not a string".into())
                })?;
            for v in col.iter().flatten() {
                let p: Pseudonym = v.as_bytes().try_into().map_err(|_| {
                    Error::Internal(format!(
                        "control/consent: a pseudonym is not {PSEUDONYM_LEN} characters"
                    ))
                })?;
                pseudonyms.insert(p);
            }
        }
        Ok(ConsentList { pseudonyms })
    }

    /// Writes the list atomically, sorted so the file is deterministic.
    pub async fn save(&self, storage: &Storage) -> Result<()> {
        let mut all: Vec<&str> = self
            .pseudonyms
            .iter()
            .map(|p| std::str::from_utf8(p).expect("pseudonyms are hex"))
            .collect();
        all.sort_unstable();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "pseudonym",
            DataType::Utf8,
            false,
        )]));
        let col: ArrayRef = Arc::new(StringArray::from(all));
        let batch = RecordBatch::try_new(schema.clone(), vec![col])?;
        write_batches(storage, &path(), schema, &[batch]).await?;
        Ok(())
    }

    /// Number of excluded customers.
    pub fn len(&self) -> usize {
        self.pseudonyms.len()
    }

    /// Whether nobody is excluded.
    pub fn is_empty(&self) -> bool {
        self.pseudonyms.is_empty()
    }
}
