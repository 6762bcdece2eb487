//! `marts/empathy_contacts`: every contact with its component scores, so the
//! fairness audit can compare groups contact by contact with real tests
//! instead of comparing aggregated cells.
//!
//! A night's contacts are nearly all the night before's, unchanged: the
//! rows that change are new contacts and the last weeks' tickets, at the
//! end of each source's ids. Building and encoding all two million rows
//! again at a million customers was about a seventh of the empathy job's
//! CPU, so the file is written in row groups of one source each, its
//! footer holds a digest of each group's rows, and a night copies an
//! earlier night's group as it is (`ParquetSink::append_group`) when the
//! contacts in its id range are as many and digest the same; the rest are
//! built and encoded.

use std::ops::Range;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use parquet::file::metadata::KeyValue;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::components::{Component, Contact, Month, Source};
use super::inputs::Customers;
use crate::Result;
use crate::parquet_io::{ParquetSink, writer_properties_without_dictionary};
use crate::storage::{Storage, partition_file};
use crate::voice::base_file::BaseFile;

/// The mart's name.
pub const TABLE: &str = "empathy_contacts";

/// How the file is cut into row groups.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Rows of a row group at most (a group also ends where a source does).
    group_rows: usize,
    /// An earlier night's groups with fewer rows are built again with
    /// tonight's rows around them, so that the group new contacts end in
    /// grows into one worth copying instead of each night leaving a small
    /// one behind.
    copy_min_rows: usize,
}

/// The mart's layout: at a million customers nine groups (seven of tickets).
const LAYOUT: Layout = Layout {
    group_rows: 1 << 18,
    copy_min_rows: 1 << 17,
};

/// The footer key whose value lists each row group's digest, in order.
const DIGESTS_KEY: &str = "attune.group_digests";

/// Schema of `marts/empathy_contacts`.
pub fn schema() -> SchemaRef {
    let f = |name: &str, ty: DataType, nullable: bool| Field::new(name, ty, nullable);
    let mut fields = vec![
        f("source", DataType::Utf8, false),
        f("contact_id", DataType::Utf8, false),
        f("customer_id", DataType::Utf8, true),
        f(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        f("month", DataType::Utf8, false),
        f("touchpoint", DataType::Utf8, true),
        f("handled_by", DataType::Utf8, true),
        f("charged", DataType::Boolean, true),
    ];
    fields.extend(
        Component::ALL
            .iter()
            .map(|c| f(c.name(), DataType::Float64, true)),
    );
    Arc::new(Schema::new(fields))
}

/// The contacts in the mart's order: by source, then contact id.
fn sorted(contacts: &[Contact]) -> Vec<&Contact> {
    let mut order: Vec<&Contact> = contacts.iter().collect();
    order.sort_by(|a, b| key(a).cmp(&key(b)));
    order
}

fn key(c: &Contact) -> (Source, &str) {
    (c.source, c.contact_id.as_str())
}

/// The time as written: microseconds.
fn micros(at: f64) -> i64 {
    (at * 1e6).round() as i64
}

/// A score as written: four decimals.
fn rounded(score: f64) -> f64 {
    (score * 10_000.0).round() / 10_000.0
}

/// `order`'s rows as one batch, in that order.
fn batch_of(order: &[&Contact], customers: &Customers) -> Result<RecordBatch> {
    // Sized for the rows up front (about 2M at a million customers), with
    // room for the usual lengths of their texts: no growing and copying.
    let n = order.len();
    let mut source = StringBuilder::with_capacity(n, n * 6);
    let mut id = StringBuilder::with_capacity(n, n * 10);
    let mut customer = StringBuilder::with_capacity(n, n * 32);
    let mut at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut month = StringBuilder::with_capacity(n, n * 7);
    let mut touchpoint = StringBuilder::with_capacity(n, n * 8);
    let mut handled = StringBuilder::with_capacity(n, n * 8);
    let mut charged = BooleanBuilder::with_capacity(n);
    let mut scores: Vec<Float64Builder> = Component::ALL
        .iter()
        .map(|_| Float64Builder::with_capacity(n))
        .collect();
    // Contacts in id order come month after month: the previous row's
    // month name is nearly always the one (a string per row was 2M
    // formats and allocations).
    let mut month_name: Option<(Month, String)> = None;
    for c in order.iter().copied() {
        source.append_value(c.source.name());
        id.append_value(&c.contact_id);
        customer.append_option(c.customer.map(|k| customers.id(k)));
        at.append_value(micros(c.at));
        if month_name.as_ref().is_none_or(|(m, _)| *m != c.month) {
            month_name = Some((c.month, c.month.to_string()));
        }
        let (_, name) = month_name.as_ref().expect("the row's month is named above");
        month.append_value(name);
        touchpoint.append_option(c.touchpoint.as_deref());
        handled.append_option(c.handled_by.as_deref());
        charged.append_option(c.charged);
        for (b, s) in scores.iter_mut().zip(c.scores) {
            b.append_option(s.map(rounded));
        }
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(source.finish()),
        Arc::new(id.finish()),
        Arc::new(customer.finish()),
        Arc::new(at.finish()),
        Arc::new(month.finish()),
        Arc::new(touchpoint.finish()),
        Arc::new(handled.finish()),
        Arc::new(charged.finish()),
    ];
    columns.extend(scores.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// How tonight's file was written.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Written {
    pub rows: u64,
    /// The earlier night whose row groups were copied, when any were.
    pub copied_from: Option<NaiveDate>,
    /// Rows copied as that night wrote them instead of built and encoded.
    pub rows_copied: u64,
}

/// A stretch of the sorted contacts and how it goes into the file.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// Built and encoded as one row group.
    Built(Range<usize>),
    /// Row group `group` of the earlier night's file, whose rows these are
    /// (their digest `digest`).
    Copied {
        rows: Range<usize>,
        group: usize,
        digest: u128,
    },
}

/// Writes `contacts` to the mart's partition of `date`, copying the row
/// groups of the latest earlier night whose rows are tonight's.
pub async fn write(
    storage: &Storage,
    date: NaiveDate,
    contacts: &[Contact],
    customers: &Customers,
) -> Result<Written> {
    write_in(storage, date, contacts, customers, LAYOUT).await
}

async fn write_in(
    storage: &Storage,
    date: NaiveDate,
    contacts: &[Contact],
    customers: &Customers,
    layout: Layout,
) -> Result<Written> {
    let schema = schema();
    crate::mart::doc(TABLE)?.check(&schema)?;
    let order = sorted(contacts);
    let base = match earlier_night(storage, date).await? {
        // an earlier file that cannot be read only means nothing is copied
        Some(night) => match BaseFile::open(storage, TABLE, night, &schema).await {
            Ok(file) => file.map(|file| (night, file)),
            Err(e) => {
                tracing::warn!(%night, error = %e, "the earlier night's empathy_contacts cannot be read: every row is built");
                None
            }
        },
        None => None,
    };
    let copies = match &base {
        Some((_, file)) => copyable(file, &order, customers, layout.copy_min_rows),
        None => Vec::new(),
    };
    let parts = plan(&order, copies, layout.group_rows);
    let digests: Vec<String> = parts
        .iter()
        .map(|p| match p {
            Part::Built(rows) => hex(digest(&order[rows.clone()], customers)),
            Part::Copied { digest, .. } => hex(*digest),
        })
        .collect();
    // ids and times hardly repeat: a dictionary for them is built and then
    // given up page by page
    let properties =
        writer_properties_without_dictionary(storage.codec(), &["contact_id", "customer_id", "at"])
            .into_builder()
            .set_max_row_group_row_count(Some(layout.group_rows))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                DIGESTS_KEY.to_string(),
                digests.join(","),
            )]))
            .build();
    let mut sink = ParquetSink::create_in(
        storage,
        partition_file("marts", TABLE, date),
        schema,
        properties,
    )?;
    let mut rows_copied = 0u64;
    for part in &parts {
        match part {
            Part::Built(rows) => {
                sink.write(&batch_of(&order[rows.clone()], customers)?)
                    .await?;
                sink.end_group().await?;
            }
            Part::Copied { rows, group, .. } => {
                let (_, file) = base.as_ref().expect("a copied group has an earlier file");
                let window = file.window(*group).await?;
                sink.append_group(&window, file.metadata(), *group).await?;
                rows_copied += rows.len() as u64;
            }
        }
    }
    let rows = sink.finish().await?;
    Ok(Written {
        rows,
        copied_from: base.map(|(night, _)| night).filter(|_| rows_copied > 0),
        rows_copied,
    })
}

/// The latest partition of the mart before `date`.
async fn earlier_night(storage: &Storage, date: NaiveDate) -> Result<Option<NaiveDate>> {
    let dirs = storage
        .list_dirs(&object_store::path::Path::from(format!("marts/{TABLE}")))
        .await?;
    Ok(dirs
        .iter()
        .filter_map(|d| d.strip_prefix("dt=")?.parse::<NaiveDate>().ok())
        .filter(|d| *d < date)
        .max())
}

/// The earlier file's row groups whose rows tonight's contacts hold
/// unchanged: (tonight's rows, group, digest), in file order. A group
/// qualifies when its footer digest is known, its statistics give its one
/// source and its first and last id, it has at least `min_rows`, and
/// tonight's contacts between those ids are as many and digest the same.
fn copyable(
    file: &BaseFile,
    order: &[&Contact],
    customers: &Customers,
    min_rows: usize,
) -> Vec<(Range<usize>, usize, u128)> {
    let digests: Vec<Option<u128>> = file
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == DIGESTS_KEY))
        .and_then(|k| k.value.as_deref())
        .map(|v| {
            v.split(',')
                .map(|d| u128::from_str_radix(d, 16).ok())
                .collect()
        })
        .unwrap_or_default();
    if digests.len() != file.groups() {
        return Vec::new();
    }
    let mut out: Vec<(Range<usize>, usize, u128)> = Vec::new();
    for (g, want) in digests.iter().enumerate() {
        let (Some(want), Some(span)) = (want, file.span(g)) else {
            continue;
        };
        let Some(source) = Source::named(&span.source) else {
            continue;
        };
        if span.rows < min_rows {
            continue;
        }
        let lo = order.partition_point(|c| key(c) < (source, span.first.as_str()));
        let hi = order.partition_point(|c| key(c) <= (source, span.last.as_str()));
        let after_last = out.last().is_none_or(|(r, _, _)| r.end <= lo);
        if hi - lo == span.rows && after_last && digest(&order[lo..hi], customers) == *want {
            out.push((lo..hi, g, *want));
        }
    }
    out
}

/// The file's parts: the copied stretches as they are, the rest in row
/// groups of one source and at most `group_rows` rows.
fn plan(
    order: &[&Contact],
    copies: Vec<(Range<usize>, usize, u128)>,
    group_rows: usize,
) -> Vec<Part> {
    let mut parts = Vec::new();
    let built = |parts: &mut Vec<Part>, rows: Range<usize>| {
        let mut start = rows.start;
        while start < rows.end {
            let source = order[start].source;
            let same = order[start..rows.end].partition_point(|c| c.source == source);
            let end = start + same.min(group_rows);
            parts.push(Part::Built(start..end));
            start = end;
        }
    };
    let mut at = 0;
    for (rows, group, digest) in copies {
        built(&mut parts, at..rows.start);
        at = rows.end;
        parts.push(Part::Copied {
            rows,
            group,
            digest,
        });
    }
    built(&mut parts, at..order.len());
    parts
}

/// SHA-256 (its first 128 bits) of the rows as the mart holds them: every
/// column, after the rounding [`batch_of`] applies.
fn digest(rows: &[&Contact], customers: &Customers) -> u128 {
    fn text(buf: &mut Vec<u8>, t: Option<&str>) {
        match t {
            None => buf.push(0),
            Some(t) => {
                buf.push(1);
                buf.extend_from_slice(&(t.len() as u64).to_le_bytes());
                buf.extend_from_slice(t.as_bytes());
            }
        }
    }
    let mut hasher = Sha256::new();
    let mut buf = Vec::with_capacity(1 << 16);
    for c in rows {
        buf.push(c.source as u8);
        text(&mut buf, Some(&c.contact_id));
        text(&mut buf, c.customer.map(|k| customers.id(k)));
        buf.extend_from_slice(&micros(c.at).to_le_bytes());
        buf.extend_from_slice(&c.month.0.to_le_bytes());
        text(&mut buf, c.touchpoint.as_deref());
        text(&mut buf, c.handled_by.as_deref());
        buf.push(c.charged.map_or(2, u8::from));
        for s in c.scores {
            match s {
                None => buf.push(0),
                Some(x) => {
                    buf.push(1);
                    buf.extend_from_slice(&rounded(x).to_bits().to_le_bytes());
                }
            }
        }
        if buf.len() >= 1 << 15 {
            hasher.update(&buf);
            buf.clear();
        }
    }
    hasher.update(&buf);
    let bytes: [u8; 32] = hasher.finalize().into();
    u128::from_be_bytes(bytes[..16].try_into().expect("16 of 32 bytes"))
}

fn hex(d: u128) -> String {
    format!("{d:032x}")
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::empathy::components::Detail;

    /// The contacts as one batch in the mart's order, every row built: what
    /// each night wrote before row groups were copied.
    fn to_batch(contacts: &[Contact], customers: &Customers) -> Result<RecordBatch> {
        batch_of(&sorted(contacts), customers)
    }

    /// Differential: the month column, each name formatted once per run of
    /// rows with one month, against every row's month formatted on its own
    /// (the way before), on contacts of three sources whose months mostly
    /// come in runs and now and then jump (months before year 0 and after
    /// 9999 included).
    #[test]
    fn each_row_has_its_own_months_name() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(29);
        let mut customers = Customers::default();
        let k = customers.intern("0123456789abcdef0123456789abcdef");
        let months = [
            Month(-13),
            Month(0),
            Month(2025 * 12),
            Month(2025 * 12 + 1),
            Month(2026 * 12 + 11),
            Month(10_000 * 12 + 5),
        ];
        let sources = [Source::Ticket, Source::Survey, Source::Review];
        let contacts: Vec<Contact> = (0..3000)
            .map(|i| {
                let month = if rng.random_range(0..4) == 0 {
                    months[rng.random_range(0..months.len())]
                } else {
                    months[i as usize / 500]
                };
                Contact {
                    source: sources[rng.random_range(0..sources.len())],
                    contact_id: format!("C{i:05}"),
                    customer: (i % 7 != 0).then_some(k),
                    at: 1_700_000_000.0 + f64::from(i),
                    month,
                    touchpoint: None,
                    handled_by: None,
                    scores: [None; 6],
                    charged: None,
                    detail: Detail::default(),
                }
            })
            .collect();
        let batch = to_batch(&contacts, &customers).expect("batch");
        let mut sorted: Vec<&Contact> = contacts.iter().collect();
        sorted.sort_by(|a, b| (a.source, &a.contact_id).cmp(&(b.source, &b.contact_id)));
        let got = batch
            .column_by_name("month")
            .expect("a month column")
            .as_string::<i32>();
        assert_eq!(got.len(), sorted.len());
        for (i, c) in sorted.iter().enumerate() {
            assert_eq!(got.value(i), c.month.to_string(), "row {i}");
        }
    }

    /// A contact of `source` numbered `i`, its scores and texts varied.
    fn contact(source: Source, i: usize, customers: &[u32]) -> Contact {
        let tag = match source {
            Source::Ticket => "T",
            Source::Survey => "R",
            Source::Review => "V",
        };
        let x = i as f64;
        Contact {
            source,
            contact_id: format!("{tag}{i:06}"),
            customer: (!i.is_multiple_of(9)).then(|| customers[i % customers.len()]),
            at: 1_750_000_000.0 + 3600.0 * x + 0.25,
            month: Month(2025 * 12 + (i / 40) as i32),
            touchpoint: Some(["email", "chat", "phone"][i % 3].into()),
            handled_by: (source == Source::Ticket).then(|| "bot".into()),
            scores: std::array::from_fn(|k| !(i + k).is_multiple_of(4))
                .map(|has| has.then_some((x * 7.123_456_7) % 100.0)),
            charged: (!i.is_multiple_of(5)).then_some(i.is_multiple_of(2)),
            detail: Detail::default(),
        }
    }

    /// Writes `contacts` for day `d` and reads the partition back as one
    /// batch.
    async fn written(
        storage: &Storage,
        d: u32,
        contacts: &[Contact],
        customers: &Customers,
        layout: Layout,
    ) -> (Written, RecordBatch) {
        let date = NaiveDate::from_ymd_opt(2026, 3, d).expect("date");
        let w = write_in(storage, date, contacts, customers, layout)
            .await
            .expect("written");
        let path = partition_file("marts", TABLE, date);
        let batches = crate::parquet_io::read_batches(storage, &path)
            .await
            .expect("read back");
        let batch =
            datafusion::arrow::compute::concat_batches(&schema(), &batches).expect("one batch");
        (w, batch)
    }

    /// Reference: every row built and encoded (`to_batch`, as each night
    /// wrote the mart before row groups were copied). The second night
    /// changes one score in the second ticket group, drops a survey from
    /// the first survey group and adds tickets after the last; the groups
    /// it leaves alone are copied and the file holds tonight's rows all the
    /// same. Without the digest the changed score would be copied as it
    /// was. The third night, unchanged, copies from the second night's
    /// file, whose footer carries the copied groups' digests along.
    #[tokio::test]
    async fn copied_row_groups_give_the_rows_of_building_every_row() {
        let storage = Storage::open("memory://").expect("store");
        let layout = Layout {
            group_rows: 100,
            copy_min_rows: 50,
        };
        let mut customers = Customers::default();
        let ids: Vec<u32> = (0..20)
            .map(|i| customers.intern(&format!("{i:032x}")))
            .collect();
        let mut night: Vec<Contact> = (0..450)
            .map(|i| contact(Source::Ticket, i, &ids))
            .chain((0..230).map(|i| contact(Source::Survey, i, &ids)))
            .chain((0..40).map(|i| contact(Source::Review, i, &ids)))
            .collect();
        // in no particular order, as the job gathers them
        night.reverse();
        let (w1, b1) = written(&storage, 1, &night, &customers, layout).await;
        assert_eq!((w1.rows, w1.rows_copied, w1.copied_from), (720, 0, None));
        assert_eq!(b1, to_batch(&night, &customers).expect("batch"));

        let changed = night
            .iter_mut()
            .find(|c| c.contact_id == "T000120")
            .expect("ticket 120");
        changed.scores[0] = Some(12.5);
        night.retain(|c| c.contact_id != "R000010");
        night.extend((450..480).map(|i| contact(Source::Ticket, i, &ids)));
        let (w2, b2) = written(&storage, 2, &night, &customers, layout).await;
        assert_eq!(b2, to_batch(&night, &customers).expect("batch"));
        // tickets 0-99, 200-299, 300-399 and 400-449; surveys 100-199
        assert_eq!(w2.rows_copied, 450);
        assert_eq!(w2.copied_from, NaiveDate::from_ymd_opt(2026, 3, 1));

        let (w3, b3) = written(&storage, 3, &night, &customers, layout).await;
        assert_eq!(b3, b2);
        // every group of at least 50 rows: all but the 30 new tickets, the
        // last 30 surveys and the 40 reviews
        assert_eq!(w3.rows_copied, 749 - 30 - 30 - 40);
        assert_eq!(w3.copied_from, NaiveDate::from_ymd_opt(2026, 3, 2));
    }
}
