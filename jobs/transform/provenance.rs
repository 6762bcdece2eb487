//! What a mart partition was computed from, kept beside it, so a later job
//! can read the partition instead of computing the model again. The churn
//! model needs `customer_features` as of its cut-off, a date whose
//! transform wrote exactly that partition: recomputing it cost 12 s a night
//! at a million customers.
//!
//! The record (`marts/<model>/dt=<D>/_inputs`, a name Parquet readers skip)
//! is a digest of everything a model as of D depends on: attune's version,
//! the SQL of every model, and the listing (path, size, modification time)
//! of every lake partition up to D. The superseded list as of D is a
//! function of those partitions. A re-ingested or erased partition, expired
//! history or a new release changes the digest, and the model is computed
//! again. The record is removed before a partition is rewritten and written
//! after its data tests pass, so it never vouches for a half-written or
//! failed partition.

use chrono::NaiveDate;
use datafusion::arrow::record_batch::RecordBatch;
use object_store::path::Path;
use sha2::{Digest, Sha256};

use super::models::Model;
use crate::Result;
use crate::context::JobContext;
use crate::storage::{Storage, partition_dir, partition_file};

const FILE: &str = "_inputs";

/// Where the record of `model`'s partition for `date` is kept.
pub fn record_path(model: &str, date: NaiveDate) -> Path {
    Path::from(format!("{}/{FILE}", partition_dir("marts", model, date)))
}

/// The day of a `…/dt=YYYY-MM-DD/…` path.
fn partition_day(path: &Path) -> Option<NaiveDate> {
    path.parts()
        .find_map(|p| p.as_ref().strip_prefix("dt=").map(str::to_string))
        .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
}

/// Digest of what every model as of `date` reads.
pub async fn digest(ctx: &JobContext, models: &[Model], date: NaiveDate) -> Result<String> {
    let mut d = digests(ctx, models, &[date]).await?;
    Ok(d.remove(0))
}

/// [`digest`] as of each of `dates`, from one listing of the lake.
pub async fn digests(
    ctx: &JobContext,
    models: &[Model],
    dates: &[NaiveDate],
) -> Result<Vec<String>> {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(b"\0");
    let mut sql: Vec<(&str, &str)> = models
        .iter()
        .map(|m| (m.name.as_str(), m.sql.as_str()))
        .collect();
    sql.sort_unstable();
    for (name, text) in sql {
        for part in [name, text] {
            h.update(part.as_bytes());
            h.update(b"\0");
        }
    }
    let mut all = ctx.storage.list(&Path::from("lake")).await?;
    all.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(dates
        .iter()
        .map(|&date| {
            let files: Vec<_> = all.iter().filter(|m| up_to(m, date)).cloned().collect();
            let mut h = h.clone();
            crate::nightly::stamps::hash_listing(&mut h, &files);
            hex::encode(&h.finalize()[..16])
        })
        .collect())
}

/// Whether a file is read as of `date`: its partition is up to `date`, or
/// it has no day (read on every date).
fn up_to(meta: &object_store::ObjectMeta, date: NaiveDate) -> bool {
    partition_day(&meta.location).is_none_or(|d| d <= date)
}

/// The files under `prefix` of partitions up to `date` (and those without a
/// day, read on every date), sorted by path.
pub async fn lake_files_up_to(
    storage: &Storage,
    prefix: &Path,
    date: NaiveDate,
) -> Result<Vec<object_store::ObjectMeta>> {
    let mut files: Vec<_> = storage
        .list(prefix)
        .await?
        .into_iter()
        .filter(|m| up_to(m, date))
        .collect();
    files.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(files)
}

/// Tonight's record for the carried folder `marts/<table>` (`record_of`
/// the digest of what the lake holds up to `date`), and the latest earlier
/// night whose record is still what `record_of` gives for the lake up to
/// it now, when `[transform] incremental` allows starting from one.
pub async fn current_night(
    ctx: &JobContext,
    models: &[Model],
    table: &str,
    date: NaiveDate,
    record_of: impl Fn(&str) -> String,
) -> Result<(String, Option<NaiveDate>)> {
    let earlier = if ctx.cfg.transform_incremental {
        latest_recorded_before(&ctx.storage, table, date).await?
    } else {
        None
    };
    let dates: Vec<NaiveDate> = std::iter::once(date).chain(earlier).collect();
    let digests = digests(ctx, models, &dates).await?;
    let tonight = record_of(&digests[0]);
    let Some(night) = earlier else {
        return Ok((tonight, None));
    };
    let current = recorded(&ctx.storage, table, night).await?.as_deref()
        == Some(record_of(&digests[1]).as_str());
    Ok((tonight, current.then_some(night)))
}

/// The rows of night `night` of the carried folder `marts/<table>`, when
/// they read back with `schema`'s columns. `None` when they are lost or
/// damaged, with a warning naming `what`: what a night carries is
/// computed again, not a failed night.
pub async fn read_night(
    storage: &Storage,
    table: &str,
    night: NaiveDate,
    schema: &datafusion::arrow::datatypes::SchemaRef,
    what: &str,
) -> Option<Vec<RecordBatch>> {
    match crate::parquet_io::read_batches(storage, &partition_file("marts", table, night)).await {
        Ok(b) if b.iter().all(|b| b.schema().fields() == schema.fields()) => Some(b),
        Ok(_) => {
            tracing::warn!(night = %night, "the carried {what} have other columns than this release's; what they hold is computed from the lake");
            None
        }
        Err(e) => {
            tracing::warn!(night = %night, error = %e, "the carried {what} could not be read; what they hold is computed from the lake");
            None
        }
    }
}

/// Writes `batches` as night `date` of the carried folder `marts/<table>`
/// under `record`, and deletes every other night's but `started_from`
/// (kept for a run of the same date again). The record is removed first
/// and written last, so it never vouches for a half-written file.
pub async fn keep_night(
    storage: &Storage,
    table: &str,
    date: NaiveDate,
    batches: &[RecordBatch],
    schema: datafusion::arrow::datatypes::SchemaRef,
    record: &str,
    started_from: Option<NaiveDate>,
) -> Result<()> {
    let path = record_path(table, date);
    storage.delete(&path).await?;
    crate::parquet_io::write_batches(
        storage,
        &partition_file("marts", table, date),
        schema,
        batches,
    )
    .await?;
    storage
        .put(&path, bytes::Bytes::from(record.to_string().into_bytes()))
        .await?;
    for dir in storage
        .list_dirs(&Path::from(format!("marts/{table}")))
        .await?
    {
        let day = dir
            .strip_prefix("dt=")
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        if day.is_none_or(|d| d != date && Some(d) != started_from) {
            storage
                .delete_prefix(&Path::from(format!("marts/{table}/{dir}")))
                .await?;
        }
    }
    Ok(())
}

/// The latest day before `date` whose partition of `table` has a record.
pub async fn latest_recorded_before(
    storage: &Storage,
    table: &str,
    date: NaiveDate,
) -> Result<Option<NaiveDate>> {
    Ok(storage
        .list(&Path::from(format!("marts/{table}")))
        .await?
        .into_iter()
        .filter(|m| m.location.filename() == Some(FILE))
        .filter_map(|m| partition_day(&m.location))
        .filter(|d| *d < date)
        .max())
}

/// The record of `table` for `date`, if any.
pub async fn recorded(storage: &Storage, table: &str, date: NaiveDate) -> Result<Option<String>> {
    Ok(storage
        .get_opt(&record_path(table, date))
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// Removes the record of `model` for `date` (before its partition is rewritten).
pub async fn forget(ctx: &JobContext, model: &str, date: NaiveDate) -> Result<()> {
    ctx.storage.delete(&record_path(model, date)).await
}

/// Removes the records of `model` for the days before `date`.
pub async fn forget_before(ctx: &JobContext, model: &str, date: NaiveDate) -> Result<()> {
    let listed = ctx
        .storage
        .list(&Path::from(format!("marts/{model}")))
        .await?;
    for meta in listed {
        if meta.location.filename() == Some(FILE)
            && partition_day(&meta.location).is_some_and(|d| d < date)
        {
            ctx.storage.delete(&meta.location).await?;
        }
    }
    Ok(())
}

/// Records that the partition of `model` for `date` was computed from `digest`.
pub async fn record(ctx: &JobContext, model: &str, date: NaiveDate, digest: &str) -> Result<()> {
    ctx.storage
        .put(
            &record_path(model, date),
            bytes::Bytes::from(digest.to_string()),
        )
        .await
}

/// Whether the partition of `model` for `date` was recorded as computed from
/// what the lake holds up to `date` now.
pub async fn is_current(
    ctx: &JobContext,
    models: &[Model],
    model: &str,
    date: NaiveDate,
) -> Result<bool> {
    let Some(recorded) = recorded(&ctx.storage, model, date).await? else {
        return Ok(false);
    };
    Ok(recorded == digest(ctx, models, date).await?)
}

/// The rows of `marts/<model>/dt=<date>` when they were computed from what
/// the lake holds up to `date` now, else `None` (never recorded, or the
/// inputs changed since).
pub async fn reuse(
    ctx: &JobContext,
    models: &[Model],
    model: &str,
    date: NaiveDate,
) -> Result<Option<Vec<RecordBatch>>> {
    if !is_current(ctx, models, model, date).await? {
        return Ok(None);
    }
    let path = partition_file("marts", model, date);
    if ctx.storage.head_opt(&path).await?.is_none() {
        return Ok(None);
    }
    Ok(Some(
        crate::parquet_io::read_batches(&ctx.storage, &path).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_comes_from_the_partition_folder() {
        let p = Path::from("lake/orders/dt=2025-03-01/part-0.parquet");
        assert_eq!(partition_day(&p), NaiveDate::from_ymd_opt(2025, 3, 1));
        assert_eq!(partition_day(&Path::from("lake/orders/x.parquet")), None);
        assert_eq!(partition_day(&Path::from("lake/orders/dt=soon/x")), None);
    }
}
