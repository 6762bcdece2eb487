//! The consent exclusion list: pseudonyms of customers who declined analytics.
//!
//! Kept under `control/consent/`, outside lake and marts, because it is the
//! one place those customers may appear: without it, tomorrow's orders of a
//! customer who opted out today could not be recognized and excluded. It
//! holds pseudonyms only, never raw identifiers, with the time of each
//! withdrawal (`consent_updated_at`) when the export gave one.
//!
//! A customers partition is read twice: first for its decisions
//! ([`DecisionSink`]), which update the list, then for its rows, which are
//! filtered by the updated list like every other table's. So the decision a
//! customer's latest row carries applies to all their rows of the day, even
//! to a first row that said yes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, Schema, TimeUnit, TimestampMicrosecondType,
};
use datafusion::arrow::record_batch::RecordBatch;
use object_store::path::Path;

use super::pseudonym::{PSEUDONYM_LEN, Pseudonym, trim_id};
use super::source::RowSink;
use super::validate::{Fields, Reject, RowValidator, parse_bool, parse_timestamp_micros};
use crate::parquet_io::{read_batches, write_batches};
use crate::storage::Storage;
use crate::{Error, Result};

/// Where the list lives.
pub fn path() -> Path {
    Path::from("control/consent/part-0.parquet")
}

/// One row's say on a customer's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub consents: bool,
    /// `consent_updated_at` in microseconds, when the row had one.
    pub at: Option<i64>,
    /// The day of the export that said it (days since 1970).
    pub day: i32,
}

impl Decision {
    /// Whether this decision was made before one at time `at` in the
    /// export of day `on`: by the times when both are known, else by the
    /// export days (a re-run of an old day's "yes" without a time must not
    /// undo a later day's "no").
    fn older_than(&self, at: Option<i64>, on: Option<i32>) -> bool {
        match (self.at, at) {
            (Some(_), Some(_)) => older(self.at, at),
            _ => on.is_some_and(|on| self.day < on),
        }
    }
}

/// Whether time `a` is before `b`: only when both are known (without a
/// time, the later row or run is the newer).
fn older(a: Option<i64>, b: Option<i64>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a < b)
}

/// Customers who declined analytics, looked up for every row with a
/// customer: foldhash, not SipHash (the keys are HMACs, nobody chooses them).
pub type OptedOut = HashSet<Pseudonym, foldhash::fast::RandomState>;

/// Values by customer (a customers partition's decisions and latest rows,
/// a million at a first export), hashed as [`OptedOut`] is.
pub type ByCustomer<V> = HashMap<Pseudonym, V, foldhash::fast::RandomState>;

/// The set of excluded pseudonyms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentList {
    /// The list itself, in the set the rows are looked up in: each date's
    /// writer gets a copy, not a set made anew from it (for each of a
    /// lake's 731 dates, 30,000 pseudonyms at a million customers).
    pub pseudonyms: OptedOut,
    /// When each listed customer withdrew, where the export said (hashed
    /// as the list is: the consent phase applies every customer's decision
    /// of every day to these maps on one thread, and SipHash was a fifth of
    /// that thread's CPU in `perf`).
    withdrawn_at: ByCustomer<i64>,
    /// The day of the export each listed customer withdrew in.
    withdrawn_on: ByCustomer<i32>,
}

impl ConsentList {
    /// Applies a customer's latest decision of a day. A withdrawal joins
    /// the list and a consent leaves it, except that a decision older than
    /// the withdrawal on the list changes nothing: re-ingesting an old day
    /// never undoes a later withdrawal. A consent without a time is taken
    /// as the newer (ingest runs days in order), as before times were kept.
    pub fn apply(&mut self, p: Pseudonym, d: Decision) {
        let listed_at = self.withdrawn_at.get(&p).copied();
        let listed_on = self.withdrawn_on.get(&p).copied();
        if d.older_than(listed_at, listed_on) {
            return;
        }
        if d.consents {
            self.pseudonyms.remove(&p);
            self.withdrawn_at.remove(&p);
            self.withdrawn_on.remove(&p);
        } else {
            self.pseudonyms.insert(p);
            if let Some(t) = d.at {
                self.withdrawn_at.insert(p, t);
            }
            self.withdrawn_on.insert(p, d.day);
        }
    }

    /// Moves the entry of `then` to `now`, the same customer's pseudonym
    /// under a new key (`rekey`), as a withdrawal with its time and day (a
    /// later one already listed for `now` stays). Returns whether `then`
    /// was listed.
    pub fn carry(&mut self, then: &Pseudonym, now: Pseudonym) -> bool {
        if !self.pseudonyms.remove(then) {
            return false;
        }
        let (at, on) = (
            self.withdrawn_at.remove(then),
            self.withdrawn_on.remove(then),
        );
        let later_listed = self.pseudonyms.contains(&now)
            && match (at, self.withdrawn_at.get(&now)) {
                (Some(a), Some(b)) => *b >= a,
                _ => self.withdrawn_on.get(&now).copied() >= on,
            };
        if !later_listed {
            // a list written before withdrawal days were kept has none: the
            // entry keeps what it had, never a made-up day
            self.pseudonyms.insert(now);
            match at {
                Some(t) => self.withdrawn_at.insert(now, t),
                None => self.withdrawn_at.remove(&now),
            };
            match on {
                Some(d) => self.withdrawn_on.insert(now, d),
                None => self.withdrawn_on.remove(&now),
            };
        }
        true
    }

    /// Takes customers off the list (erased: they leave no trace at all).
    pub fn remove_all(&mut self, gone: &HashSet<Pseudonym>) {
        self.pseudonyms.retain(|p| !gone.contains(p));
        self.withdrawn_at.retain(|p, _| !gone.contains(p));
        self.withdrawn_on.retain(|p, _| !gone.contains(p));
    }

    /// Loads the list (empty when none was written yet). A list written
    /// before withdrawal times (or days) were kept lacks their columns.
    pub async fn load(storage: &Storage) -> Result<ConsentList> {
        if storage.get_opt(&path()).await?.is_none() {
            return Ok(ConsentList::default());
        }
        let corrupt = |what: &str| Error::Internal(format!("control/consent: {what}"));
        let mut list = ConsentList::default();
        for batch in read_batches(storage, &path()).await? {
            let col = batch
                .column(0)
                .as_string_opt::<i32>()
                .ok_or_else(|| corrupt("the pseudonym column is not a string"))?;
            let at = match batch.column_by_name("withdrawn_at") {
                Some(a) => Some(
                    a.as_primitive_opt::<TimestampMicrosecondType>()
                        .ok_or_else(|| corrupt("withdrawn_at is not a timestamp"))?,
                ),
                None => None,
            };
            let on = match batch.column_by_name("withdrawn_on") {
                Some(a) => Some(
                    a.as_primitive_opt::<Date32Type>()
                        .ok_or_else(|| corrupt("withdrawn_on is not a date"))?,
                ),
                None => None,
            };
            for i in 0..col.len() {
                let p: Pseudonym = col.value(i).as_bytes().try_into().map_err(|_| {
                    corrupt(&format!("a pseudonym is not {PSEUDONYM_LEN} characters"))
                })?;
                list.pseudonyms.insert(p);
                if let Some(at) = at.filter(|a| a.is_valid(i)) {
                    list.withdrawn_at.insert(p, at.value(i));
                }
                if let Some(on) = on.filter(|a| a.is_valid(i)) {
                    list.withdrawn_on.insert(p, on.value(i));
                }
            }
        }
        Ok(list)
    }

    /// Writes the list atomically, sorted so the file is deterministic.
    pub async fn save(&self, storage: &Storage) -> Result<()> {
        let mut all: Vec<&Pseudonym> = self.pseudonyms.iter().collect();
        all.sort_unstable();
        let schema = Arc::new(Schema::new(vec![
            Field::new("pseudonym", DataType::Utf8, false),
            Field::new(
                "withdrawn_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("withdrawn_on", DataType::Date32, true),
        ]));
        let names: ArrayRef =
            Arc::new(StringArray::from_iter_values(all.iter().map(|p| {
                std::str::from_utf8(p.as_slice()).expect("pseudonyms are hex")
            })));
        let at: ArrayRef = Arc::new(
            all.iter()
                .map(|p| self.withdrawn_at.get(*p).copied())
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        );
        let on: ArrayRef = Arc::new(
            all.iter()
                .map(|p| self.withdrawn_on.get(*p).copied())
                .collect::<Date32Array>(),
        );
        let batch = RecordBatch::try_new(schema.clone(), vec![names, at, on])?;
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

/// Reads the consent decisions of a customers partition: per customer, the
/// latest row's (the newest `consent_updated_at`, then the later row). A
/// row that fails validation still withdraws consent when its
/// `consent_analytics` reads as false (a bad postal code does not make a
/// "no" a "yes"), but cannot give it. Rows of erased customers and rows
/// without an id or a readable decision say nothing.
///
/// It also finds each customer's latest valid row by the same rule, the
/// one row of theirs the partition keeps ("the latest row per customer
/// wins", as the contract says; a same-day change exported after the
/// sign-up row is not lost to the first).
pub struct DecisionSink<'a> {
    pub validator: RowValidator,
    pub erased: &'a HashSet<Pseudonym>,
    /// Customers erased or listed under the key before a key change
    /// (`rekey`), with the list as it stood before this partition.
    pub earlier_key: Option<super::rekey::Recognizer<'a>>,
    pub listed: Option<std::sync::Arc<OptedOut>>,
    pub customer_col: usize,
    pub consent_col: Option<usize>,
    pub at_col: Option<usize>,
    pub decisions: ByCustomer<Decision>,
    /// The file being read (its index in the partition).
    pub file: usize,
    /// Per customer: (`consent_updated_at`, file, line) of their latest valid row.
    pub latest: ByCustomer<(Option<i64>, usize, u64)>,
    /// The partition's day (days since 1970), which its decisions carry.
    pub day: i32,
}

impl DecisionSink<'_> {
    fn raw_decision(&self, fields: &Fields<'_>) -> Option<Decision> {
        let text = |c: usize| {
            let b = fields[c]?;
            Some(std::str::from_utf8(b).ok()?.trim())
        };
        Some(Decision {
            consents: parse_bool(text(self.consent_col?)?)?,
            at: self
                .at_col
                .and_then(text)
                .and_then(|t| parse_timestamp_micros(t.as_bytes())),
            day: self.day,
        })
    }
}

impl RowSink for DecisionSink<'_> {
    fn ahead<'r>(&mut self, field: &dyn Fn(usize) -> Option<&'r [u8]>) {
        self.validator.prefetch(field);
    }

    fn row(&mut self, line: u64, fields: &Fields<'_>, _raw: &dyn Fn() -> String) -> Result<()> {
        let id = trim_id(fields[self.customer_col].unwrap_or_default());
        if id.is_empty() {
            return Ok(());
        }
        let p = self.validator.pseudonymizer.pseudonym(id);
        if self.erased.contains(&p) || self.earlier_key.as_mut().is_some_and(|r| r.erased(id, p)) {
            return Ok(());
        }
        // listed under the earlier key: the entry moves to `p` before this
        // partition's decisions apply (the recognizer remembers the pair)
        if let (Some(r), Some(listed)) = (self.earlier_key.as_mut(), self.listed.as_deref()) {
            r.opted_out(id, p, listed);
        }
        let decision = match self.validator.check(fields) {
            Ok(()) => {
                let at = self.at_col.and_then(|c| self.validator.timestamp_of(c));
                match self.latest.get(&p) {
                    Some((earlier, _, _)) if older(at, *earlier) => {}
                    _ => {
                        self.latest.insert(p, (at, self.file, line));
                    }
                }
                match self.consent_col.and_then(|c| self.validator.bool_of(c)) {
                    Some(consents) => Decision {
                        consents,
                        at,
                        day: self.day,
                    },
                    None => return Ok(()),
                }
            }
            Err(_) => match self.raw_decision(fields) {
                Some(d) if !d.consents => d,
                _ => return Ok(()),
            },
        };
        match self.decisions.get(&p) {
            Some(earlier) if decision.older_than(earlier.at, Some(earlier.day)) => {}
            _ => {
                self.decisions.insert(p, decision);
            }
        }
        Ok(())
    }

    fn reject(&mut self, _line: u64, _reject: Reject, _raw: &dyn Fn() -> String) -> Result<()> {
        // ragged or malformed: its fields cannot be trusted to be the columns
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(c: u8) -> Pseudonym {
        [c; PSEUDONYM_LEN]
    }

    fn d(consents: bool, at: Option<i64>) -> Decision {
        Decision {
            consents,
            at,
            day: 0,
        }
    }

    /// A re-run of an old day whose row says yes without a time does not
    /// undo a withdrawal exported on a later day (with or without its own
    /// time); a yes exported on a later day does.
    #[test]
    fn an_older_export_day_never_undoes_a_later_withdrawal() {
        let on = |consents: bool, at: Option<i64>, day: i32| Decision { consents, at, day };
        let mut list = ConsentList::default();
        list.apply(p(b'a'), on(false, Some(500), 10));
        list.apply(p(b'a'), on(true, None, 1));
        assert!(
            list.pseudonyms.contains(&p(b'a')),
            "the old day's yes is ignored"
        );
        list.apply(p(b'b'), on(false, None, 10));
        list.apply(p(b'b'), on(true, Some(1_000), 1));
        assert!(
            list.pseudonyms.contains(&p(b'b')),
            "without both times, days decide"
        );
        list.apply(p(b'a'), on(true, None, 10));
        assert!(
            !list.pseudonyms.contains(&p(b'a')),
            "a yes of the same day's later run"
        );
        list.apply(p(b'b'), on(true, None, 11));
        assert!(
            list.is_empty(),
            "a later day's yes lets the customer back in"
        );
        assert!(list.withdrawn_on.is_empty() && list.withdrawn_at.is_empty());
    }

    #[test]
    fn an_older_decision_never_undoes_a_newer_withdrawal() {
        let mut list = ConsentList::default();
        list.apply(p(b'a'), d(false, Some(200)));
        list.apply(p(b'a'), d(true, Some(100)));
        assert!(list.pseudonyms.contains(&p(b'a')), "a stale yes is ignored");
        list.apply(p(b'a'), d(false, Some(150)));
        assert_eq!(
            list.withdrawn_at[&p(b'a')],
            200,
            "the newest withdrawal is kept"
        );
        list.apply(p(b'a'), d(true, Some(300)));
        assert!(list.is_empty(), "a newer yes lets the customer back in");

        list.apply(p(b'b'), d(false, None));
        list.apply(p(b'b'), d(true, Some(1)));
        assert!(
            list.is_empty(),
            "a withdrawal without a time is undone by the next yes"
        );
        list.apply(p(b'c'), d(false, Some(5)));
        list.apply(p(b'c'), d(true, None));
        assert!(list.is_empty(), "a yes without a time is the newer one");
    }

    #[test]
    fn removed_customers_leave_no_time_behind() {
        let mut list = ConsentList::default();
        list.apply(p(b'a'), d(false, Some(1)));
        list.apply(p(b'b'), d(false, Some(2)));
        list.remove_all(&HashSet::from([p(b'a')]));
        assert_eq!(list.pseudonyms, OptedOut::from_iter([p(b'b')]));
        assert_eq!(list.withdrawn_at.len(), 1);
    }
}
