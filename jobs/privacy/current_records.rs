//! Retention of record tables: the lake's `customers`, `initiatives` and
//! `initiative_assignments` hold one row per record *exported that day*
//! (a sign-up, a change), not events. A customer who signed up three years
//! ago and buys every week has their only customers row in a partition
//! three years old; deleting it by date would drop them from every model
//! while their orders stay. So an expired partition of a record table keeps
//! the rows that are still the current copy of their record (no later
//! partition has the same key) and loses the copies a later export
//! replaced; it is deleted once nothing in it is current. `attune forget`
//! removes a customer's current record too.
//!
//! Which copy is current is the transform's rule, so the models read the
//! same record after retention as before: the latest export, except for
//! customers, where a re-export with an earlier consent change time does
//! not replace the record it follows (see `transform::superseded`). For
//! those the walk asks the transform's pass which copies are replaced
//! instead of taking the newest.

use std::collections::{HashMap, HashSet};

use datafusion::arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};

use super::retention::Partition;
use crate::schema::Contract;
use crate::storage::Storage;
use crate::transform::superseded;
use crate::{Error, Result};

/// Lake tables whose rows are records, not events.
pub const RECORD_TABLES: [&str; 3] = ["customers", "initiatives", "initiative_assignments"];

/// Whether `area/table` keeps its current records past retention.
pub fn is_record_table(area: &str, table: &str) -> bool {
    area == "lake" && RECORD_TABLES.contains(&table)
}

/// A partition's rows that are current, and how many rows it had.
pub struct Current {
    pub schema: Option<SchemaRef>,
    pub kept: Vec<RecordBatch>,
    pub rows: u64,
}

impl Current {
    pub fn kept_rows(&self) -> u64 {
        self.kept.iter().map(|b| b.num_rows() as u64).sum()
    }
}

/// Walks a record table's partitions newest first, remembering the keys
/// seen so far: a row of an older partition is current when its key was
/// not seen.
pub struct CurrentRecords {
    key_columns: Vec<String>,
    seen: HashSet<Vec<u8>>,
    /// For a table whose latest record a column decides: each replaced
    /// copy's key (as [`CurrentRecords::keys`] writes it) → the days since
    /// 1970-01-01 of the partitions holding its replaced copies.
    replaced: Option<HashMap<Vec<u8>, Vec<i32>>>,
}

impl CurrentRecords {
    /// The walk for a table whose newest copy of a record is the current one.
    pub fn new(contract: &Contract) -> CurrentRecords {
        CurrentRecords {
            key_columns: (contract.primary_key.iter())
                .map(|&i| contract.columns[i].output.clone())
                .collect(),
            seen: HashSet::new(),
            replaced: None,
        }
    }

    /// The walk for the lake table of `contract`, by the transform's rule:
    /// for customers, the copies its pass finds replaced over every
    /// partition are read first.
    pub async fn for_table(storage: &Storage, contract: &Contract) -> Result<CurrentRecords> {
        let mut walk = CurrentRecords::new(contract);
        if superseded::decided_by_column(&contract.table) {
            let session = crate::catalog::new_session(storage);
            let table = contract.table.as_str();
            crate::catalog::register(&session, storage, "lake", table, table).await?;
            walk.replaced = superseded::replaced_copies(&session, contract)
                .await?
                .map(|copies| {
                    let mut by_key: HashMap<Vec<u8>, Vec<i32>> = HashMap::new();
                    for (key, dt) in copies {
                        let mut k = key.into_bytes();
                        k.push(0x1f);
                        by_key.entry(k).or_default().push(dt);
                    }
                    by_key
                });
        }
        Ok(walk)
    }

    /// Reads partition `p` (each partition once, newest first): its rows
    /// whose key no newer partition has, then marks all its keys seen. A
    /// file that is not Parquet holds nothing current; one that cannot be
    /// read is an error.
    pub async fn take(&mut self, storage: &Storage, p: &Partition) -> Result<Current> {
        let mut out = Current {
            schema: None,
            kept: Vec::new(),
            rows: 0,
        };
        let mut keys_here = Vec::new();
        let day = crate::utc_dates::epoch_day(p.date);
        for f in p
            .files
            .iter()
            .filter(|f| f.location.extension() == Some("parquet"))
        {
            // Only a file that does not decode holds nothing current: a
            // storage error (a network hiccup, a permission) stops the
            // caller, who would otherwise delete the only current copy of
            // what that partition holds.
            let batches = match crate::parquet_io::read_batches(storage, &f.location).await {
                Ok(batches) => batches,
                Err(Error::Parquet(_) | Error::Arrow(_)) => continue,
                Err(e) => return Err(e),
            };
            for b in batches {
                let keys = self.keys(&b).map_err(|e| {
                    Error::input(f.location.to_string(), format!("cannot read its keys: {e}"))
                })?;
                let current: BooleanArray = match &self.replaced {
                    Some(replaced) => (keys.iter())
                        .map(|k| Some(!replaced.get(k).is_some_and(|d| d.contains(&day))))
                        .collect(),
                    None => keys.iter().map(|k| Some(!self.seen.contains(k))).collect(),
                };
                out.rows += b.num_rows() as u64;
                out.schema.get_or_insert_with(|| b.schema());
                let kept = filter_record_batch(&b, &current)?;
                if kept.num_rows() > 0 {
                    out.kept.push(kept);
                }
                keys_here.extend(keys);
            }
        }
        self.seen.extend(keys_here);
        Ok(out)
    }

    /// Each row's key: its key columns as text, separated by 0x1f.
    fn keys(&self, b: &RecordBatch) -> Result<Vec<Vec<u8>>> {
        let mut cols = Vec::with_capacity(self.key_columns.len());
        for name in &self.key_columns {
            let col = b
                .column_by_name(name)
                .ok_or_else(|| Error::Internal(format!("no key column {name}")))?;
            cols.push(cast(col, &DataType::Utf8)?);
        }
        let texts: Vec<&StringArray> = (cols.iter())
            .map(|c| {
                c.as_any()
                    .downcast_ref::<StringArray>()
                    .expect("cast to Utf8")
            })
            .collect();
        Ok((0..b.num_rows())
            .map(|r| {
                let mut k = Vec::new();
                for t in &texts {
                    if t.is_valid(r) {
                        k.extend_from_slice(t.value(r).as_bytes());
                    }
                    k.push(0x1f);
                }
                k
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::path::Path;

    /// A file that is not Parquet holds nothing current; one the store
    /// cannot read stops the walk (retention would otherwise delete the
    /// partition's rows as if a newer copy held them).
    #[tokio::test]
    async fn an_unreadable_file_is_an_error_and_a_non_parquet_one_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path().to_str().expect("utf8")).expect("open");
        let contracts = crate::schema::Contracts::builtin().expect("contracts");
        let mut walk = CurrentRecords::new(&contracts.get("customers").expect("customers"));
        let junk = Path::from("lake/customers/dt=2025-01-01/part-0.parquet");
        storage
            .put(&junk, bytes::Bytes::from_static(b"not parquet"))
            .await
            .expect("put");
        let meta = storage.head_opt(&junk).await.expect("head").expect("there");
        let partition = |files| Partition {
            area: "lake".into(),
            table: "customers".into(),
            date: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).expect("date"),
            prefix: Path::from("lake/customers/dt=2025-01-01"),
            files,
        };
        let skipped = walk
            .take(&storage, &partition(vec![meta.clone()]))
            .await
            .expect("a file that is not Parquet is skipped");
        assert_eq!((skipped.rows, skipped.kept.len()), (0, 0));
        storage.delete(&junk).await.expect("delete");
        let err = walk
            .take(&storage, &partition(vec![meta]))
            .await
            .err()
            .expect("a file listed but not readable is an error");
        assert!(matches!(err, Error::Storage(_)), "{err}");
    }

    /// Writes `lake/customers/dt=<day>/part-0.parquet` with (customer_id,
    /// consent_updated_at) rows and returns its partition.
    async fn customers_day(
        storage: &Storage,
        day: &str,
        rows: &[(&str, Option<i64>)],
    ) -> Partition {
        use datafusion::arrow::array::{StringArray, TimestampMicrosecondArray};
        use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
        let zone: std::sync::Arc<str> = "UTC".into();
        let schema = std::sync::Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new(
                "consent_updated_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some(zone.clone())),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                std::sync::Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                std::sync::Arc::new(
                    TimestampMicrosecondArray::from_iter(rows.iter().map(|r| r.1))
                        .with_timezone(zone),
                ),
            ],
        )
        .expect("batch");
        let mut buf = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, schema, None).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
        let prefix = Path::from(format!("lake/customers/dt={day}"));
        let file = prefix.clone().join("part-0.parquet");
        storage
            .put(&file, bytes::Bytes::from(buf))
            .await
            .expect("put");
        let meta = storage.head_opt(&file).await.expect("head").expect("there");
        Partition {
            area: "lake".into(),
            table: "customers".into(),
            date: day.parse().expect("date"),
            prefix,
            files: vec![meta],
        }
    }

    /// A customer re-exported with an earlier consent change time (a stale
    /// copy from another system) keeps the older export as their record,
    /// as `stg_customers` reads it: retention keeps that copy, not the
    /// newest one. Customer b's later export has a later time and wins.
    #[tokio::test]
    async fn customers_keep_the_record_the_consent_rule_makes_current() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path().to_str().expect("utf8")).expect("open");
        let contracts = crate::schema::Contracts::builtin().expect("contracts");
        let contract = contracts.get("customers").expect("customers");
        let (jan, dec) = (1_735_725_600_000_000i64, 1_733_047_200_000_000i64);
        let old = customers_day(
            &storage,
            "2025-01-01",
            &[("a", Some(jan)), ("b", Some(dec))],
        )
        .await;
        let new = customers_day(
            &storage,
            "2025-01-05",
            &[("a", Some(dec)), ("b", Some(jan))],
        )
        .await;
        let ids = |c: &Current| -> Vec<String> {
            c.kept
                .iter()
                .flat_map(|b| {
                    let col = b
                        .column(0)
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .expect("ids");
                    col.iter().flatten().map(str::to_string).collect::<Vec<_>>()
                })
                .collect()
        };
        let mut walk = CurrentRecords::for_table(&storage, &contract)
            .await
            .expect("walk");
        assert_eq!(ids(&walk.take(&storage, &new).await.expect("new")), ["b"]);
        assert_eq!(ids(&walk.take(&storage, &old).await.expect("old")), ["a"]);
        // The plain walk keeps the newest copy of each: a's stale one.
        let mut newest = CurrentRecords::new(&contract);
        assert_eq!(
            ids(&newest.take(&storage, &new).await.expect("new")),
            ["a", "b"]
        );
    }
}
