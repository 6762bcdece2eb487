//! What the Empathy Index reads, as of the run date.
//!
//! Tickets, surveys, reviews and orders come through the transform's own
//! staging views (`sql/stg_*.sql`, run here over the lake with the run
//! date's `marts/superseded`), so "a record exported again replaces its
//! earlier copy" and "later events are not yet known" mean exactly what they
//! mean in the SQL marts. The reply and the customer's message, which the
//! views leave out, come from the same lake partition as the ticket row the
//! view kept. Marts written by other jobs are read for the run date only and
//! may be missing: the outcome then says which component or dimension is
//! not available and why.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::components::{Month, ReviewRow, SurveyRow, Text, TicketRow};
use super::index::Labels;
use crate::context::JobContext;
use crate::customer_index::CustomerIndex;
use crate::storage::partition_dir;
use crate::transform::models::{self, Materialized};
use crate::{Error, Result, catalog};

/// The staging views the job runs.
const VIEWS: [&str; 4] = ["stg_tickets", "stg_feedback", "stg_reviews", "stg_orders"];

/// Customer pseudonyms, interned: every set and map of the job holds a
/// `u32`, and the pseudonym strings are kept once. Looked up once per
/// contact, tens of millions of times a night: see [`CustomerIndex`].
#[derive(Debug, Default, Clone)]
pub struct Customers {
    ids: Vec<String>,
    index: CustomerIndex,
}

impl Customers {
    /// The number of a pseudonym, adding it when new.
    pub fn intern(&mut self, id: &str) -> u32 {
        let i = self.index.number(id);
        if i as usize == self.ids.len() {
            self.ids.push(id.to_string());
        }
        i
    }

    /// The numbers of the pseudonyms of the rows `keep` holds (`None`
    /// where missing or not kept), adding the new ones in row order as
    /// [`intern`](Self::intern) row by row would.
    fn intern_rows(&mut self, ids: &Strs, keep: impl Fn(usize) -> bool) -> Vec<Option<u32>> {
        let ids: Vec<Option<&str>> = (0..ids.len())
            .map(|i| ids.get(i).filter(|_| keep(i)))
            .collect();
        let numbers = self.index.number_all(&ids);
        for (id, &n) in ids.iter().zip(&numbers) {
            if let (Some(id), Some(n)) = (id, n)
                && n as usize == self.ids.len()
            {
                self.ids.push(id.to_string());
            }
        }
        numbers
    }

    /// The numbers of a column of pseudonyms (`None` where missing or unknown).
    fn get_all(&self, ids: &Strs) -> Vec<Option<u32>> {
        let ids: Vec<Option<&str>> = ids.0.iter().collect();
        self.index.get_all(&ids)
    }

    /// The pseudonym of a number.
    pub fn id(&self, i: u32) -> &str {
        &self.ids[i as usize]
    }

    /// Numbers the customers again in the order `first_seen` names them
    /// (any it does not name after those, in their old order); returns each
    /// old number's new one. The numbers decide the order in which a cell's
    /// contacts are clustered and their scores summed (`index::ClusterOrder`),
    /// so they must not depend on the order a query's partitions delivered
    /// the rows in.
    fn renumber(&mut self, first_seen: impl Iterator<Item = u32>) -> Vec<u32> {
        const UNSEEN: u32 = u32::MAX;
        let n = self.ids.len();
        let mut new_of = vec![UNSEEN; n];
        let mut order = Vec::with_capacity(n);
        for old in first_seen.chain(0..n as u32) {
            let new = &mut new_of[old as usize];
            if *new == UNSEEN {
                *new = order.len() as u32;
                order.push(old);
            }
        }
        let mut ids = std::mem::take(&mut self.ids);
        self.ids = order
            .into_iter()
            .map(|old| std::mem::take(&mut ids[old as usize]))
            .collect();
        self.index.renumber(&new_of);
        new_of
    }

    /// Each customer's number by `customer_key(customer_id)`, for queries
    /// that group on the key instead of carrying the pseudonym. Two known
    /// customers with one key (about 3·10⁻⁸ at a million) are left out of
    /// the map rather than merged. (Only the reference way of
    /// [`order_months`] grouped so.)
    #[cfg(test)]
    fn by_key(&self) -> HashMap<i64, u32, foldhash::fast::RandomState> {
        let mut map = HashMap::with_capacity_and_hasher(self.ids.len(), Default::default());
        let mut shared = Vec::new();
        for (i, id) in self.ids.iter().enumerate() {
            let key = crate::customer_key::key_of(id);
            if map.insert(key, i as u32).is_some() {
                shared.push(key);
            }
        }
        for key in shared {
            map.remove(&key);
        }
        map
    }
}

/// A DataFusion session over the data root with the run date's context:
/// `run_date()`, `superseded` and the staging views.
pub async fn session(ctx: &JobContext, date: NaiveDate) -> Result<SessionContext> {
    let storage = &ctx.storage;
    let (session, _) = catalog::session_with_all(storage).await?;
    crate::transform::superseded::register_published(&session, storage, date).await?;
    session.register_udf(crate::transform::run_date_udf(date));
    let all = models::load(ctx.cfg.models_dir.as_deref())?;
    for name in VIEWS {
        let model = all
            .iter()
            .find(|m| m.name == name && m.materialized == Materialized::View)
            .ok_or_else(|| Error::MissingInput {
                what: format!("the staging view {name}"),
                hint: "the empathy job runs the transform's staging views; keep sql/stg_*.sql in [transform] models_dir".into(),
            })?;
        let df = session.sql(&model.sql).await.map_err(|e| Error::Model {
            model: name.into(),
            reason: e.to_string(),
        })?;
        session.register_table(name, df.into_view())?;
    }
    Ok(session)
}

/// Whether `marts/<table>` has a partition for the date.
pub async fn mart_exists(ctx: &JobContext, table: &str, date: NaiveDate) -> Result<bool> {
    ctx.storage
        .exists_prefix(&partition_dir("marts", table, date))
        .await
}

/// A string column of one batch, read in place.
struct Strs(datafusion::arrow::array::StringArray);

impl Strs {
    fn get(&self, i: usize) -> Option<&str> {
        self.0.is_valid(i).then(|| self.0.value(i))
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The distinct texts read so far, each kept once.
#[derive(Default)]
struct Texts(std::collections::HashSet<Text, foldhash::fast::RandomState>);

impl Texts {
    fn get(&mut self, s: &str) -> Text {
        if let Some(t) = self.0.get(s) {
            return t.clone();
        }
        let t = Text::from(s);
        self.0.insert(t.clone());
        t
    }
}

/// The columns of one batch, cast to the types the job works with (the
/// Parquet reader may hand back `Utf8View`, `extract` returns Float64 or
/// Int32 by field).
struct Cols<'a> {
    batch: &'a RecordBatch,
    what: &'static str,
}

impl<'a> Cols<'a> {
    fn get(&self, name: &str, ty: &DataType) -> Result<ArrayRef> {
        let col = self.batch.column_by_name(name).ok_or_else(|| {
            Error::Internal(format!(
                "{}: the query returned no column `{name}`",
                self.what
            ))
        })?;
        Ok(cast(col, ty)?)
    }

    fn strings(&self, name: &str) -> Result<Vec<Option<String>>> {
        let a = self.get(name, &DataType::Utf8)?;
        let s = a.as_string::<i32>();
        Ok((0..s.len())
            .map(|i| s.is_valid(i).then(|| s.value(i).to_string()))
            .collect())
    }

    /// A string column read in place: no copy per value, for columns only
    /// looked at (pseudonyms are looked up, never kept as text per row).
    fn strs(&self, name: &str) -> Result<Strs> {
        Ok(Strs(
            self.get(name, &DataType::Utf8)?.as_string::<i32>().clone(),
        ))
    }

    /// A string column as shared texts, one copy per distinct value.
    fn texts(&self, name: &str, texts: &mut Texts) -> Result<Vec<Option<Text>>> {
        let a = self.get(name, &DataType::Utf8)?;
        let s = a.as_string::<i32>();
        Ok((0..s.len())
            .map(|i| s.is_valid(i).then(|| texts.get(s.value(i))))
            .collect())
    }

    fn floats(&self, name: &str) -> Result<Vec<Option<f64>>> {
        let a = self.get(name, &DataType::Float64)?;
        let f = a.as_primitive::<Float64Type>();
        Ok((0..f.len())
            .map(|i| f.is_valid(i).then(|| f.value(i)))
            .collect())
    }

    fn ints(&self, name: &str) -> Result<Vec<Option<i64>>> {
        let a = self.get(name, &DataType::Int64)?;
        let f = a.as_primitive::<Int64Type>();
        Ok((0..f.len())
            .map(|i| f.is_valid(i).then(|| f.value(i)))
            .collect())
    }

    /// A DATE column as days since 1970-01-01.
    fn days(&self, name: &str) -> Result<Vec<Option<i32>>> {
        let a = self.get(name, &DataType::Date32)?;
        let d = a.as_primitive::<Date32Type>();
        Ok((0..d.len())
            .map(|i| d.is_valid(i).then(|| d.value(i)))
            .collect())
    }

    fn bools(&self, name: &str) -> Result<Vec<Option<bool>>> {
        let a = self.get(name, &DataType::Boolean)?;
        let b = a.as_boolean();
        Ok((0..b.len())
            .map(|i| b.is_valid(i).then(|| b.value(i)))
            .collect())
    }
}

/// Runs a query and hands each batch to `f`, so large inputs stream.
async fn each_batch(
    session: &SessionContext,
    sql: &str,
    what: &'static str,
    mut f: impl FnMut(&Cols) -> Result<()>,
) -> Result<u64> {
    let df = session.sql(sql).await.map_err(|e| Error::Model {
        model: format!("empathy/{what}"),
        reason: e.to_string(),
    })?;
    let started = std::time::Instant::now();
    let mut stream = df.execute_stream().await?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        f(&Cols {
            batch: &batch,
            what,
        })?;
    }
    // the read phase's share per input, for `ATTUNE_LOG=attune=debug`
    tracing::debug!(
        input = what,
        rows,
        seconds = started.elapsed().as_secs_f64(),
        "read"
    );
    Ok(rows)
}

/// Every ticket up to the run date, in ticket id order, with the gap to the
/// customer's next ticket on the same topic (`tickets.sql`, then
/// [`fill_next_same_topic`]), and the reply and message of those exported
/// on `texts_from` or later (the others' are scored already: see
/// [`super::carry`]).
pub async fn tickets(
    session: &SessionContext,
    customers: &mut Customers,
    texts_from: NaiveDate,
) -> Result<Vec<TicketRow>> {
    let mut out = Vec::new();
    let mut texts = Texts::default();
    let sql = include_str!("tickets.sql").replace("{texts_from}", &texts_from.to_string());
    each_batch(session, &sql, "tickets", |c| {
        let mut ids = c.strings("ticket_id")?;
        let cust = c.strs("customer_id")?;
        let created = c.floats("created_epoch")?;
        // texts are moved out of their columns, not cloned (a count up and
        // down per value)
        let mut channel = c.texts("channel", &mut texts)?;
        let mut handled = c.texts("handled_by", &mut texts)?;
        let mut topic = c.texts("topic", &mut texts)?;
        let sat = c.ints("satisfaction")?;
        let reopened = c.bools("reopened")?;
        let fr = c.floats("first_response_hours")?;
        let res = c.floats("resolution_hours")?;
        let fu = c.floats("follow_up_hours")?;
        let mut reply = c.texts("reply", &mut texts)?;
        let mut message = c.texts("message", &mut texts)?;
        let source_day = c.days("source_dt")?;
        let numbers = customers.intern_rows(&cust, |i| ids[i].is_some() && created[i].is_some());
        for i in 0..ids.len() {
            let (Some(id), Some(at)) = (ids[i].take(), created[i]) else {
                continue;
            };
            out.push(TicketRow {
                ticket_id: id,
                customer: numbers[i],
                created: at,
                channel: channel[i].take(),
                handled_by: handled[i].take(),
                topic: topic[i].take(),
                satisfaction: sat[i],
                reopened: reopened[i],
                first_response_hours: fr[i],
                resolution_hours: res[i],
                follow_up_hours: fu[i],
                next_same_topic_hours: None,
                reply: reply[i].take(),
                message: message[i].take(),
                // every row of stg_tickets has the day it was exported
                source_day: source_day[i].unwrap_or(i32::MIN),
            });
        }
        Ok(())
    })
    .await?;
    sort_by_id(&mut out);
    // the customers were numbered as the rows came; tickets are the first
    // input read, so numbering them in ticket order makes every number the
    // same from run to run
    let new_of = customers.renumber(out.iter().filter_map(|t| t.customer));
    for t in &mut out {
        if let Some(c) = t.customer.as_mut() {
            *c = new_of[*c as usize];
        }
    }
    fill_next_same_topic(&mut out);
    Ok(out)
}

/// Sets each ticket's hours until the same customer's next ticket on the
/// same topic, ordered by creation time then ticket id: SQL's
/// `lead(created_epoch) OVER (PARTITION BY customer_id, topic ORDER BY
/// created_epoch, ticket_id) - created_epoch`, divided by 3600. A missing
/// customer or topic is a group of its own, as in PARTITION BY.
pub fn fill_next_same_topic(rows: &mut [TicketRow]) {
    // Sorted as compact keys that compare as the rows do, not as positions
    // compared through the rows: each of those comparisons reached into two
    // of 1.8M rows (a cache miss each) and compared topics as text.
    struct Key {
        /// 0 for none, else the customer's number + 1.
        customer: u64,
        /// 0 for none, else the topic's rank in text order + 1.
        topic: u32,
        row: u32,
        created: f64,
    }
    let mut keys: Vec<Key> = {
        let mut rank: HashMap<&str, u32, foldhash::fast::RandomState> = HashMap::default();
        for topic in rows.iter().filter_map(|r| r.topic.as_deref()) {
            rank.entry(topic).or_insert(0);
        }
        let mut names: Vec<&str> = rank.keys().copied().collect();
        names.sort_unstable();
        for (i, name) in names.into_iter().enumerate() {
            rank.insert(name, i as u32 + 1);
        }
        let row = |i: usize| u32::try_from(i).expect("fewer than 4 billion tickets");
        rows.iter()
            .enumerate()
            .map(|(i, r)| Key {
                customer: r.customer.map_or(0, |c| u64::from(c) + 1),
                topic: r.topic.as_deref().map_or(0, |t| rank[t]),
                row: row(i),
                created: r.created,
            })
            .collect()
    };
    keys.sort_unstable_by(|a, b| {
        a.customer
            .cmp(&b.customer)
            .then(a.topic.cmp(&b.topic))
            .then_with(|| a.created.total_cmp(&b.created))
            .then_with(|| {
                let (x, y) = (&rows[a.row as usize], &rows[b.row as usize]);
                x.ticket_id.cmp(&y.ticket_id)
            })
    });
    for pair in keys.windows(2) {
        let (this, next) = (&pair[0], &pair[1]);
        let gap = (this.customer == next.customer && this.topic == next.topic)
            .then(|| (next.created - this.created) / 3600.0);
        rows[this.row as usize].next_same_topic_hours = gap;
    }
}

/// The first eight bytes of `rest` as a number that orders as the bytes
/// do: when two numbers differ, so do their bytes, the same way (a shorter
/// text is padded with zeros, so "T1" and "T1\0" tie and are compared
/// whole).
fn id_key(rest: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = rest.len().min(8);
    bytes[..n].copy_from_slice(&rest[..n]);
    u64::from_be_bytes(bytes)
}

/// The way [`fill_next_same_topic`] was, kept as the reference its tests
/// compare with: positions sorted by comparing the rows.
#[cfg(test)]
fn fill_next_same_topic_by_rows(rows: &mut [TicketRow]) {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        let (x, y) = (&rows[a], &rows[b]);
        x.customer
            .cmp(&y.customer)
            .then_with(|| x.topic.cmp(&y.topic))
            .then_with(|| x.created.total_cmp(&y.created))
            .then_with(|| x.ticket_id.cmp(&y.ticket_id))
    });
    for pair in order.windows(2) {
        let (this, next) = (&rows[pair[0]], &rows[pair[1]]);
        let gap = (this.customer == next.customer && this.topic == next.topic)
            .then(|| (next.created - this.created) / 3600.0);
        rows[pair[0]].next_same_topic_hours = gap;
    }
}

/// Puts tickets in the order of `ORDER BY ticket_id` (bytes; ids are
/// unique, so any sort gives it). They arrive in long runs of that order
/// (ids grow with time; the plan's partitions interleave their batches):
/// a stable sort of their positions finds the runs and merges them, and
/// each ticket is then moved into place once, where sorting the rows
/// (about 200 bytes each) moved them at every level of the sort.
///
/// The positions are sorted beside eight bytes of their ids, those after
/// the beginning every id shares ([`id_key`]): most comparisons are of two
/// numbers side by side, where comparing two ids reached through their
/// rows (two cache misses among 1.8M) took most of the sort; ids with the
/// same eight bytes there are compared whole.
fn sort_by_id(rows: &mut [TicketRow]) {
    let shared = rows.first().map_or(0, |first| {
        let first = first.ticket_id.as_bytes();
        rows.iter().fold(first.len(), |n, r| {
            let same = first[..n].iter().zip(r.ticket_id.as_bytes());
            same.take_while(|(a, b)| a == b).count()
        })
    });
    let mut keyed: Vec<(u64, u32)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let i = u32::try_from(i).expect("fewer than 4 billion tickets");
            (id_key(&r.ticket_id.as_bytes()[shared..]), i)
        })
        .collect();
    keyed.sort_by(|a, b| {
        a.0.cmp(&b.0).then_with(|| {
            let (x, y) = (&rows[a.1 as usize], &rows[b.1 as usize]);
            x.ticket_id.cmp(&y.ticket_id)
        })
    });
    let mut order: Vec<usize> = keyed.into_iter().map(|(_, i)| i as usize).collect();
    // Place p takes the row at order[p]: each cycle of the permutation is
    // followed from its start, a swap per row, and marked done
    // (order[p] = p) as it goes.
    for start in 0..rows.len() {
        let mut at = start;
        while order[at] != start {
            let from = order[at];
            order[at] = at;
            rows.swap(at, from);
            at = from;
        }
        order[at] = at;
    }
}

/// Every empathy survey up to the run date, items side by side (`surveys.sql`).
pub async fn surveys(
    session: &SessionContext,
    customers: &mut Customers,
) -> Result<Vec<SurveyRow>> {
    let mut out = Vec::new();
    let mut texts = Texts::default();
    each_batch(session, include_str!("surveys.sql"), "surveys", |c| {
        let mut ids = c.strings("contact_id")?;
        let cust = c.strs("customer_id")?;
        let at = c.floats("at_epoch")?;
        let tp = c.texts("touchpoint", &mut texts)?;
        let items: Vec<Vec<Option<i64>>> = (1..=5)
            .map(|k| c.ints(&format!("item{k}")))
            .collect::<Result<_>>()?;
        let numbers = customers.intern_rows(&cust, |i| ids[i].is_some() && at[i].is_some());
        for i in 0..ids.len() {
            let (Some(id), Some(t)) = (ids[i].take(), at[i]) else {
                continue;
            };
            let mut answers = [None; 5];
            for (k, a) in answers.iter_mut().enumerate() {
                *a = items[k][i].and_then(|x| u8::try_from(x).ok());
            }
            out.push(SurveyRow {
                contact_id: id,
                customer: numbers[i],
                at: t,
                touchpoint: tp[i].clone(),
                items: answers,
            });
        }
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Reviews rated 1 or 2 stars up to the run date.
pub async fn negative_reviews(
    session: &SessionContext,
    customers: &mut Customers,
) -> Result<Vec<ReviewRow>> {
    let sql = "SELECT review_id, customer_id, extract(epoch FROM posted_at) AS at_epoch, platform, reply_hours \
               FROM stg_reviews WHERE rating <= 2 ORDER BY review_id";
    let mut out = Vec::new();
    let mut texts = Texts::default();
    each_batch(session, sql, "negative_reviews", |c| {
        let mut ids = c.strings("review_id")?;
        let cust = c.strs("customer_id")?;
        let at = c.floats("at_epoch")?;
        let platform = c.texts("platform", &mut texts)?;
        let reply = c.floats("reply_hours")?;
        let numbers = customers.intern_rows(&cust, |i| ids[i].is_some() && at[i].is_some());
        for i in 0..ids.len() {
            let (Some(id), Some(t)) = (ids[i].take(), at[i]) else {
                continue;
            };
            out.push(ReviewRow {
                review_id: id,
                customer: numbers[i],
                at: t,
                platform: platform[i].clone(),
                reply_hours: reply[i],
            });
        }
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Every NPS answer up to the run date: (customer, month, score).
pub async fn nps_answers(
    session: &SessionContext,
    customers: &mut Customers,
) -> Result<Vec<(u32, Month, u8)>> {
    let sql = "SELECT customer_id, extract(epoch FROM responded_at) AS at_epoch, score \
               FROM stg_feedback WHERE survey_type = 'nps' ORDER BY response_id";
    let mut out = Vec::new();
    each_batch(session, sql, "nps_answers", |c| {
        let cust = c.strs("customer_id")?;
        let at = c.floats("at_epoch")?;
        let score = c.ints("score")?;
        let kept = |i: usize| at[i].is_some() && score[i].is_some_and(|s| u8::try_from(s).is_ok());
        let numbers = customers.intern_rows(&cust, kept);
        for i in 0..cust.len() {
            if let (Some(k), Some(t), Some(s)) = (numbers[i], at[i], score[i])
                && let Ok(s) = u8::try_from(s)
            {
                out.push((k, Month::of_epoch(t), s));
            }
        }
        Ok(())
    })
    .await?;
    Ok(out)
}

/// (customer, month) pairs with a non-refunded order, for customers already
/// known to the job (the others cannot be in a validation cell).
///
/// The orders stream into one fold per partition of the plan, on the core
/// that scans them (the scan and the fold side by side, as the value job
/// folds its purchases): each order's customer is found in the job's own
/// index, slots asked for ahead ([`CustomerIndex::get_all`]), and its
/// month set in a bit per customer. At a million customers (28M orders),
/// grouping in SQL on `customer_key(customer_id)` and 64-month bit blocks
/// took 4.5 s and one consumer of the merged stream looking up each id
/// 5.1 s; here no id is hashed or grouped by DataFusion, and the lookups
/// run on every core. Customers are matched on the id itself, not on a
/// 64-bit hash of it.
pub async fn order_months(
    session: &SessionContext,
    customers: &mut Customers,
) -> Result<super::validate::OrderMonths> {
    let sql = "SELECT customer_id, order_date FROM stg_orders WHERE NOT refunded";
    let df = session.sql(sql).await.map_err(|e| Error::Model {
        model: "empathy/order_months".into(),
        reason: e.to_string(),
    })?;
    let started = std::time::Instant::now();
    // The folds are tasks of their own, which outlive no borrow: the index
    // is lent to them for the query and taken back after (cloned only if a
    // failed fold's sibling still holds it).
    let index = Arc::new(std::mem::take(&mut customers.index));
    let parts = crate::catalog::fold_partitions(df, "an order-month fold", |stream| {
        fold_order_months(stream, Arc::clone(&index))
    })
    .await;
    customers.index = Arc::unwrap_or_clone(index);
    let mut rows = 0u64;
    let mut out = super::validate::OrderMonths::default();
    for (n, part) in parts? {
        rows += n;
        out.union(part);
    }
    // the read phase's share per input, as `each_batch` logs it
    tracing::debug!(
        input = "order_months",
        rows,
        seconds = started.elapsed().as_secs_f64(),
        "read"
    );
    Ok(out)
}

/// [`order_months`] from the purchase days the value job folded the same
/// night, when they are current ([`crate::value::carry::purchase_days`]):
/// 765K customers' days in one file instead of 27.7M orders read and
/// de-duplicated again at a million customers. The same months: the value
/// job's purchases are the non-refunded orders of `stg_orders` with a
/// customer (a test compares both ways). Returns whether they came from
/// the value job's fold.
pub async fn order_months_of(
    ctx: &crate::context::JobContext,
    session: &SessionContext,
    customers: &mut Customers,
    date: NaiveDate,
) -> Result<(super::validate::OrderMonths, bool)> {
    let started = std::time::Instant::now();
    let models = crate::transform::models::load(ctx.cfg.models_dir.as_deref())?;
    let Some(folded) = crate::value::carry::purchase_days(ctx, &models, date).await? else {
        return Ok((order_months(session, customers).await?, false));
    };
    let mut out = super::validate::OrderMonths::default();
    for batch in folded.batches() {
        let ids: Vec<Option<&str>> = batch.ids.iter().collect();
        for (i, customer) in customers.index.get_all(&ids).into_iter().enumerate() {
            let Some(customer) = customer else {
                continue;
            };
            // ascending days: a month is looked up when a day passes the
            // last one's month, not for each of the 20M days
            let mut next_month_starts = i32::MIN;
            for day in batch.days(i) {
                if day < next_month_starts {
                    continue;
                }
                let date = crate::utc_dates::from_epoch_day(day);
                out.insert(customer, Month::of_date(date));
                next_month_starts = date
                    .with_day(1)
                    .and_then(|d| d.checked_add_months(chrono::Months::new(1)))
                    .map_or(i32::MAX, crate::utc_dates::epoch_day);
            }
        }
    }
    tracing::debug!(
        input = "order_months",
        customers = folded.customers(),
        seconds = started.elapsed().as_secs_f64(),
        "read from the value job's purchase days"
    );
    Ok((out, true))
}

/// Folds one partition's orders (`customer_id`, `order_date`) into the
/// months of the customers `index` knows; returns the rows read too.
async fn fold_order_months(
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    index: Arc<CustomerIndex>,
) -> Result<(u64, super::validate::OrderMonths)> {
    let mut out = super::validate::OrderMonths::default();
    let mut rows = 0u64;
    // A partition's orders come day by day: the month of the previous
    // row's day is nearly always the answer.
    let mut last: Option<(i32, Month)> = None;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        let ids = crate::value::summary::string_column(&batch, "customer_id")?;
        let days = crate::value::summary::date_column(&batch, "order_date")?;
        let ids: Vec<Option<&str>> = ids.iter().collect();
        for (customer, day) in index.get_all(&ids).into_iter().zip(days.iter()) {
            let (Some(customer), Some(day)) = (customer, day) else {
                continue;
            };
            let month = match last {
                Some((d, m)) if d == day => m,
                _ => {
                    let m = Month::of_date(crate::utc_dates::from_epoch_day(day));
                    last = Some((day, m));
                    m
                }
            };
            out.insert(customer, month);
        }
    }
    Ok((rows, out))
}

/// The first way of [`order_months`], kept as the reference its tests
/// compare with: months as 64-month bit blocks grouped in SQL on
/// `customer_key(customer_id)`, customers matched on that key.
#[cfg(test)]
async fn order_months_by_key(
    session: &SessionContext,
    customers: &Customers,
) -> Result<super::validate::OrderMonths> {
    let sql = "WITH months AS ( \
            SELECT customer_id, \
                CAST(date_part('year', order_date) AS BIGINT) * 12 + CAST(date_part('month', order_date) AS BIGINT) - 1 AS month \
            FROM stg_orders WHERE NOT refunded \
        ), blocks AS ( \
            SELECT customer_id, month, CAST(floor(month / 64.0) AS BIGINT) AS block FROM months \
        ) \
        SELECT customer_key(customer_id) AS customer_key, block, \
            bit_or(CAST(1 AS BIGINT) << (month - block * 64)) AS months \
        FROM blocks WHERE customer_id IS NOT NULL \
        GROUP BY customer_key(customer_id), block";
    let known = customers.by_key();
    let mut out = super::validate::OrderMonths::default();
    each_batch(session, sql, "order_months", |c| {
        let keys = c.ints("customer_key")?;
        let blocks = c.ints("block")?;
        let bits = c.ints("months")?;
        for ((key, block), bits) in keys.into_iter().zip(blocks).zip(bits) {
            let (Some(key), Some(block), Some(bits)) = (key, block, bits) else {
                continue;
            };
            let Some(&customer) = known.get(&key) else {
                continue;
            };
            let mut rest = bits as u64;
            while rest != 0 {
                let bit = rest.trailing_zeros();
                rest &= rest - 1;
                out.insert(customer, Month((block * 64 + i64::from(bit)) as i32));
            }
        }
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Sensitive attributes (age_band, gender, language, region) of known customers.
pub async fn attributes(
    session: &SessionContext,
    customers: &Customers,
    date: NaiveDate,
) -> Result<[Labels; 4]> {
    let sql = format!(
        "SELECT customer_id, age_band, gender, language, region FROM customer_attributes WHERE dt = DATE '{date}'"
    );
    let mut out: [Labels; 4] = Default::default();
    each_batch(session, &sql, "customer_attributes", |c| {
        let cust = customers.get_all(&c.strs("customer_id")?);
        let columns = [
            c.strs("age_band")?,
            c.strs("gender")?,
            c.strs("language")?,
            c.strs("region")?,
        ];
        for (i, k) in cust.into_iter().enumerate() {
            let Some(k) = k else { continue };
            for (labels, column) in out.iter_mut().zip(&columns) {
                labels.set(k, column.get(i));
            }
        }
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Segment names of known customers from `marts/segments` of the date.
pub async fn segments(
    session: &SessionContext,
    customers: &Customers,
    date: NaiveDate,
) -> Result<Labels> {
    // The segment job names the column `segment_name`; accept `segment` too.
    let provider = session.table_provider("segments").await?;
    let schema = provider.schema();
    let column = ["segment_name", "segment"]
        .into_iter()
        .find(|c| schema.field_with_name(c).is_ok())
        .ok_or_else(|| Error::MissingInput {
            what: "a segment_name column in marts/segments".into(),
            hint: "re-run `attune segment` for the date".into(),
        })?;
    let sql = format!(
        "SELECT customer_id, CAST({column} AS VARCHAR) AS segment FROM segments WHERE dt = DATE '{date}'"
    );
    let mut out = Labels::default();
    each_batch(session, &sql, "segments", |c| {
        let cust = customers.get_all(&c.strs("customer_id")?);
        let seg = c.strs("segment")?;
        for (i, k) in cust.into_iter().enumerate() {
            if let (Some(k), Some(s)) = (k, seg.get(i)) {
                out.set(k, Some(s));
            }
        }
        Ok(())
    })
    .await?;
    Ok(out)
}

/// What the voice scorer made of a ticket's message.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MessageRead {
    /// The strongest of frustration, anger and anxiety; `None` when the
    /// words were not scored.
    pub strongest: Option<f64>,
    /// Whether the message is in another language than the tone rules
    /// read ([`super::tone::LANGUAGE`]).
    pub other_language: bool,
}

impl MessageRead {
    /// From the voice scorer's score of the message.
    pub fn from_score(s: &crate::voice::score::Scored) -> MessageRead {
        let e = &s.emotions;
        MessageRead {
            strongest: s
                .scored
                .then(|| e.frustration.max(e.anger).max(e.anxiety).max(0.0)),
            other_language: s.language.is_some_and(|l| l != super::tone::LANGUAGE),
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{
        BooleanArray, Date32Array, Float64Array, StringArray, UInt32Array,
    };
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Tickets delivered in two different orders (as a plan's partitions
    /// interleave their batches) number their customers as they come; put
    /// in ticket order and renumbered, both give every ticket the same
    /// customer number and every number the same pseudonym, which the index
    /// finds it by. Customers no ticket names (here one whose id is not a
    /// hex pseudonym) keep their old order after the others.
    #[test]
    fn customers_are_numbered_in_ticket_order_whatever_order_the_rows_came_in() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(53);
        // (ticket number, customer pseudonym): 3,000 tickets of 800 customers
        let tickets: Vec<(u32, String)> = (0..3000)
            .map(|t| (t, format!("{:032x}", rng.random_range(0..800u64) * 7919)))
            .collect();
        let numbered = |seed: u64| {
            let mut arrival = tickets.clone();
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
            for i in (1..arrival.len()).rev() {
                arrival.swap(i, rng.random_range(0..=i));
            }
            let mut customers = Customers::default();
            customers.intern("not-on-any-ticket");
            let mut rows: Vec<(u32, u32)> = arrival
                .iter()
                .map(|(t, c)| (*t, customers.intern(c)))
                .collect();
            rows.sort_unstable();
            let before = customers.clone();
            let new_of = customers.renumber(rows.iter().map(|r| r.1));
            for old in 0..before.ids.len() as u32 {
                let new = new_of[old as usize];
                assert_eq!(customers.id(new), before.id(old));
                assert_eq!(customers.index.get(before.id(old)), Some(new), "looked up");
            }
            assert_eq!(customers.index.len(), before.ids.len());
            let in_ticket_order: Vec<u32> = rows.iter().map(|r| new_of[r.1 as usize]).collect();
            (in_ticket_order, customers.ids.clone())
        };
        let (a, ids_a) = numbered(1);
        let (b, ids_b) = numbered(2);
        assert_eq!(a, b, "the tickets' customer numbers");
        assert_eq!(ids_a, ids_b, "the pseudonym of every number");
        assert_eq!(a[0], 0, "the first ticket's customer is number 0");
        assert_eq!(ids_a.last().map(String::as_str), Some("not-on-any-ticket"));
    }

    /// A session with attune's functions and one table of these columns.
    fn session_with(name: &str, columns: Vec<(&str, ArrayRef)>) -> SessionContext {
        let batch = RecordBatch::try_from_iter(columns).expect("batch");
        session_with_parts(name, vec![vec![batch]])
    }

    /// A session with attune's functions and one table whose plan has a
    /// partition per list of batches.
    fn session_with_parts(name: &str, parts: Vec<Vec<RecordBatch>>) -> SessionContext {
        let schema = parts[0][0].schema();
        let session = SessionContext::new();
        catalog::install_functions(&session);
        session
            .register_table(
                name,
                Arc::new(MemTable::try_new(schema, parts).expect("table")),
            )
            .expect("register");
        session
    }

    /// Differential: the months of the per-partition folds against the
    /// (customer, month) pairs of the orders themselves, and against the
    /// SQL grouping on customer keys in 64-month bit blocks they replaced
    /// (kept as `order_months_by_key`), over 30 years (months before 1970,
    /// blocks and their edges), with refunded orders, customers the job
    /// does not know, ids that are not hex pseudonyms and missing ids, in
    /// four partitions of unequal size (one of a single order, one in day
    /// order).
    #[tokio::test]
    async fn order_months_are_the_months_of_the_kept_orders() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(11);
        let mut customers = Customers::default();
        let ids: Vec<String> = (0..300)
            .map(|i| {
                if i % 10 == 9 {
                    format!("customer {i}")
                } else {
                    format!("{i:032x}")
                }
            })
            .collect();
        for id in &ids[..250] {
            customers.intern(id);
        }
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("date");
        let mut want = std::collections::HashSet::new();
        let mut orders: Vec<(Option<String>, i32, bool)> = Vec::new();
        for _ in 0..20_000 {
            let c = rng.random_range(0..310usize);
            let d = epoch + chrono::Duration::days(rng.random_range(-3_000..8_000));
            let r = rng.random_range(0..5) == 0;
            let id = ids.get(c).cloned();
            if let Some(k) = id.as_deref().and_then(|i| customers.index.get(i))
                && !r
            {
                want.insert((k, Month::of_date(d)));
            }
            orders.push((id, (d - epoch).num_days() as i32, r));
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, true),
            Field::new("order_date", DataType::Date32, true),
            Field::new("refunded", DataType::Boolean, true),
        ]));
        let mut parts = Vec::new();
        for (from, to) in [
            (0, 9_000),
            (9_000, 9_001),
            (9_001, 14_000),
            (14_000, 20_000),
        ] {
            let mut rows = orders[from..to].to_vec();
            if to == 20_000 {
                rows.sort_by_key(|o| o.1);
            }
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from_iter(rows.iter().map(|o| o.0.as_deref()))),
                Arc::new(Date32Array::from_iter_values(rows.iter().map(|o| o.1))),
                Arc::new(BooleanArray::from(
                    rows.iter().map(|o| o.2).collect::<Vec<bool>>(),
                )),
            ];
            parts.push(vec![
                RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch"),
            ]);
        }
        let session = session_with_parts("stg_orders", parts);
        let got = order_months(&session, &mut customers)
            .await
            .expect("months");
        assert_eq!(customers.index.len(), 250, "the index is given back");
        assert_eq!(customers.index.get(&ids[249]), Some(249));
        let by_key = order_months_by_key(&session, &customers)
            .await
            .expect("months by key");
        let first = Month::of_date(epoch - chrono::Duration::days(3_001)).0;
        let last = Month::of_date(epoch + chrono::Duration::days(8_001)).0;
        let mut found = 0;
        for k in 0..250u32 {
            for m in first..=last {
                let has = got.contains(k, Month(m));
                assert_eq!(
                    has,
                    want.contains(&(k, Month(m))),
                    "customer {k}, month {m}"
                );
                assert_eq!(has, by_key.contains(k, Month(m)), "customer {k}, month {m}");
                found += usize::from(has);
            }
        }
        assert_eq!(found, want.len());
        assert!(found > 10_000, "{found}");
    }

    /// Reference: DataFusion's own `lead` window, the SQL this replaced, on
    /// tickets with shared creation times, missing customers and topics.
    #[tokio::test]
    async fn next_same_topic_matches_the_lead_window() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        let topics = [None, Some("billing"), Some("delivery"), Some("quality")];
        let mut rows: Vec<TicketRow> = (0..3000)
            .map(|i| TicketRow {
                // unique ids, not in creation order
                ticket_id: format!("t{:05}", (i * 7919) % 3000),
                customer: (rng.random_range(0..10) > 0).then(|| rng.random_range(0..200)),
                // whole hours in a few weeks: many tickets share a time
                created: f64::from(rng.random_range(0..500u32)) * 3600.0 + 0.25,
                topic: topics[rng.random_range(0..topics.len())].map(Text::from),
                ..TicketRow::default()
            })
            .collect();
        let session = session_with(
            "t",
            vec![
                (
                    "ticket_id",
                    Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|r| r.ticket_id.as_str()),
                    )) as ArrayRef,
                ),
                (
                    "customer_id",
                    Arc::new(UInt32Array::from_iter(rows.iter().map(|r| r.customer))),
                ),
                (
                    "created_epoch",
                    Arc::new(Float64Array::from_iter_values(
                        rows.iter().map(|r| r.created),
                    )),
                ),
                (
                    "topic",
                    Arc::new(StringArray::from_iter(
                        rows.iter().map(|r| r.topic.as_deref()),
                    )),
                ),
            ],
        );
        let expected = session
            .sql(
                "SELECT ticket_id, (lead(created_epoch) OVER (PARTITION BY customer_id, topic \
                 ORDER BY created_epoch, ticket_id) - created_epoch) / 3600.0 AS next \
                 FROM t ORDER BY ticket_id, customer_id, topic, created_epoch",
            )
            .await
            .expect("sql")
            .collect()
            .await
            .expect("rows");
        fill_next_same_topic(&mut rows);
        let mut got: Vec<&TicketRow> = rows.iter().collect();
        got.sort_by(|a, b| {
            a.ticket_id
                .cmp(&b.ticket_id)
                .then_with(|| a.customer.cmp(&b.customer))
                .then_with(|| a.topic.cmp(&b.topic))
                .then_with(|| a.created.total_cmp(&b.created))
        });
        let want: Vec<Option<f64>> = expected
            .iter()
            .flat_map(|b| {
                let next = b
                    .column(1)
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .expect("f64");
                (0..next.len())
                    .map(|i| next.is_valid(i).then(|| next.value(i)))
                    .collect::<Vec<_>>()
            })
            .collect();
        let got: Vec<Option<f64>> = got.iter().map(|r| r.next_same_topic_hours).collect();
        assert_eq!(got.len(), want.len());
        assert!(
            got.iter().filter(|g| g.is_some()).count() > 1000,
            "the groups have followers"
        );
        assert!(
            got.contains(&Some(0.0)),
            "ties in creation time are covered"
        );
        assert_eq!(got, want);
    }

    /// Random tickets for the sorts: unique ids (some of another form,
    /// whose byte order is not their number's) in runs of increasing ids,
    /// two runs interleaved in pieces as a plan's partitions deliver them,
    /// with a few rows swapped out of place; many sharing a creation time;
    /// customers and topics missing now and then; each topic a copy of its
    /// own (equal texts, other allocations), the empty text and case
    /// variants among them.
    fn random_tickets(rng: &mut rand_xoshiro::Xoshiro256PlusPlus, n: usize) -> Vec<TicketRow> {
        let topics = [
            None,
            Some("billing"),
            Some("Billing"),
            Some("delivery"),
            Some("quality"),
            Some(""),
        ];
        let (mut a, mut b) = (0..n / 2, n / 2..n);
        let mut ids = Vec::with_capacity(n);
        while ids.len() < n {
            let piece = rng.random_range(1..300);
            let from = if rng.random_range(0..2) == 0 {
                &mut a
            } else {
                &mut b
            };
            ids.extend(from.take(piece));
        }
        for _ in 0..n / 100 {
            let (i, j) = (rng.random_range(0..n), rng.random_range(0..n));
            ids.swap(i, j);
        }
        ids.into_iter()
            .map(|i| TicketRow {
                ticket_id: if i % 13 == 0 {
                    format!("S{i}")
                } else {
                    format!("T{i:07}")
                },
                customer: (rng.random_range(0..10) > 0).then(|| rng.random_range(0..300)),
                // whole hours in a few weeks: many tickets share a time
                created: f64::from(rng.random_range(0..500u32)) * 3600.0 + 0.25,
                topic: topics[rng.random_range(0..topics.len())].map(Text::from),
                ..TicketRow::default()
            })
            .collect()
    }

    /// Differential: the positions sorted and the rows moved once along
    /// the permutation's cycles, against sorting the rows themselves (the
    /// way before); and no rows, one row.
    #[test]
    fn sort_by_id_orders_as_sorting_the_rows() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(19);
        let rows = random_tickets(&mut rng, 20_000);
        let mut want = rows.clone();
        want.sort_unstable_by(|a, b| a.ticket_id.cmp(&b.ticket_id));
        let mut got = rows;
        sort_by_id(&mut got);
        assert_eq!(got, want);
        for n in [0, 1] {
            let mut few = random_tickets(&mut rng, n);
            let want = few.clone();
            sort_by_id(&mut few);
            assert_eq!(few, want);
        }
    }

    /// Differential, as above, on ids that the eight bytes after their
    /// shared beginning do not tell apart: a long beginning every id has,
    /// ids that begin other ids (one of them that beginning alone), NUL
    /// bytes (which tie with a short id's padding), longer digit runs and
    /// characters of two bytes.
    #[test]
    fn sort_by_id_compares_whole_ids_where_their_keys_tie() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(31);
        const PIECES: [&str; 5] = ["a", "b", "\0", "é", "0123456789"];
        let mut rows = random_tickets(&mut rng, 2000);
        let mut seen = std::collections::HashSet::new();
        for r in &mut rows {
            r.ticket_id = loop {
                let n = rng.random_range(0..6);
                let id: String = std::iter::once("ticket-2025-")
                    .chain((0..n).map(|_| PIECES[rng.random_range(0..PIECES.len())]))
                    .collect();
                if seen.insert(id.clone()) {
                    break id;
                }
            };
        }
        let mut want = rows.clone();
        want.sort_unstable_by(|a, b| a.ticket_id.cmp(&b.ticket_id));
        let mut got = rows;
        sort_by_id(&mut got);
        assert_eq!(got, want);
        let tied = want
            .windows(2)
            .filter(|w| {
                let key = |r: &TicketRow| id_key(&r.ticket_id.as_bytes()["ticket-2025-".len()..]);
                key(&w[0]) == key(&w[1])
            })
            .count();
        assert!(tied > 100, "{tied}");
    }

    /// Differential: the gaps from compact sorted keys against the gaps
    /// from positions sorted by comparing the rows (the way before), on
    /// tickets with shared creation times, missing customers and topics,
    /// and topics in copies of their own.
    #[test]
    fn next_same_topic_from_keys_equals_comparing_the_rows() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(21);
        let rows = random_tickets(&mut rng, 20_000);
        let mut want = rows.clone();
        fill_next_same_topic_by_rows(&mut want);
        let mut got = rows;
        fill_next_same_topic(&mut got);
        assert_eq!(got, want);
        let followed = got
            .iter()
            .filter(|r| r.next_same_topic_hours.is_some())
            .count();
        assert!(followed > 5_000, "{followed}");
        assert!(
            got.iter().any(|r| r.next_same_topic_hours == Some(0.0)),
            "ties in creation time are covered"
        );
    }
}
