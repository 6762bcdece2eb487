//! Customers who withdraw consent after their rows reached the lake.
//!
//! From the day a withdrawal arrives, ingest keeps the customer out of every
//! export (`control/consent/`). The rows exported while they consented are
//! already in the lake, though, and in the marts built from it: left there,
//! the customer would stay in `customer_features`, the segments and the
//! churn scores (the staging view keeps their last consenting record), and
//! privacy check 5 would fail every night. So the ingest run that lists them
//! removes those rows from lake and marts, with the scan and atomic rewrite
//! of `attune forget`. Quarantine keeps its raw rejected lines, as it does
//! for every declined customer's bad rows: they are the business's input to
//! correct, and retention deletes them.
//!
//! Only customers the lake knew are looked for: those with a record in
//! `lake/customers`, who consented before. Most customers who join the list
//! declined at sign-up and have nothing to remove; looking for them would
//! cost a scan of the whole lake on most nights. A customer whose other
//! exports reached the lake before any customers record did (orders
//! exported ahead of the sign-up) is not found this way; privacy check 5
//! finds such values and fails.
//!
//! Ingest saves the list only after the rows are gone, and `lake/customers`
//! is rewritten last, so after a crash in between the customers are new to
//! the list again, still known from their customers records, and the next
//! run removes what is left.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;

use super::forget::remove_rows;
use super::scan::{self, Partitions, StrCol, as_pseudonym};
use crate::config::Key;
use crate::ingest::pseudonym::Pseudonym;
use crate::storage::Storage;
use crate::{Error, Result};

/// What the removal did; counts only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Withdrawals {
    /// Customers new to the consent list whose earlier rows were looked for.
    pub customers: u64,
    /// `<area>/<table>` → rows removed.
    pub rows_removed: BTreeMap<String, u64>,
    pub files_rewritten: u64,
}

impl Withdrawals {
    pub fn rows(&self) -> u64 {
        self.rows_removed.values().sum()
    }
}

/// Removes from lake and marts every row of the customers in `listed` (new
/// to the consent list) who have a record in `lake/customers`.
pub async fn remove_withdrawn(
    storage: &Storage,
    key: &Key,
    listed: &HashSet<Pseudonym>,
    threads: usize,
) -> Result<Withdrawals> {
    if listed.is_empty() {
        return Ok(Withdrawals::default());
    }
    let known = known_customers(storage, listed, threads).await?;
    if known.is_empty() {
        return Ok(Withdrawals::default());
    }
    // see forget: `_` folders under marts are not scanned
    scan::clear_unscanned(storage).await?;
    let mut files = scan::table_files(storage, "lake", Partitions::All).await?;
    files.extend(scan::table_files(storage, "marts", Partitions::All).await?);
    // `lake/customers` last: it is how the next run knows whom to look for,
    // so after a crash half-way the customers are still found there and
    // the rest is removed then.
    let (customers, rest): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|f| f.area == "lake" && f.table == "customers");
    let mut out = Withdrawals {
        customers: known.len() as u64,
        ..Withdrawals::default()
    };
    for files in [rest, customers] {
        let removed = remove_rows(storage, files, &known, key, threads).await?;
        for (table, n) in removed.rows_removed {
            *out.rows_removed.entry(table).or_default() += n;
        }
        out.files_rewritten += removed.files_rewritten;
    }
    Ok(out)
}

/// The customers of `listed` whose pseudonym is a `customer_id` of some
/// `lake/customers` partition.
async fn known_customers(
    storage: &Storage,
    listed: &HashSet<Pseudonym>,
    threads: usize,
) -> Result<HashSet<Pseudonym>> {
    let files: Vec<_> = scan::table_files(storage, "lake", Partitions::All)
        .await?
        .into_iter()
        .filter(|f| f.table == "customers")
        .collect();
    let listed = Arc::new(listed.clone());
    let mut tasks = futures::stream::iter(files.into_iter().map(|f| {
        let (storage, listed) = (storage.clone(), listed.clone());
        async move {
            let bytes = storage.get_bytes(&f.path).await?;
            tokio::task::spawn_blocking(move || {
                let (names, batches) = scan::read_string_columns(bytes)
                    .map_err(|e| Error::input(f.path.to_string(), e.to_string()))?;
                let mut hits = HashSet::new();
                let Some(at) = names.iter().position(|n| n == "customer_id") else {
                    return Ok(hits);
                };
                for b in &batches {
                    let Some(ids) = StrCol::of(b.column(at).as_ref()) else {
                        continue;
                    };
                    for i in 0..b.num_rows() {
                        if let Some(p) = ids.get(i).and_then(as_pseudonym)
                            && listed.contains(&p)
                        {
                            hits.insert(p);
                        }
                    }
                }
                Ok::<_, Error>(hits)
            })
            .await
            .map_err(crate::nightly::panics::joined("a consent scan worker"))?
        }
    }))
    .buffer_unordered(threads.max(1));
    let mut known = HashSet::new();
    while let Some(hits) = tasks.next().await {
        known.extend(hits?);
    }
    Ok(known)
}
