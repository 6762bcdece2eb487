//! `marts/empathy_contacts`: every contact with its component scores, so the
//! fairness audit can compare groups contact by contact with real tests
//! instead of comparing aggregated cells.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use super::components::{Component, Contact, Month};
use super::inputs::Customers;
use crate::Result;

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

/// The contacts as one batch, sorted by source and contact id.
pub fn to_batch(contacts: &[Contact], customers: &Customers) -> Result<RecordBatch> {
    let mut order: Vec<&Contact> = contacts.iter().collect();
    order.sort_by(|a, b| (a.source, &a.contact_id).cmp(&(b.source, &b.contact_id)));
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
    for c in order {
        source.append_value(c.source.name());
        id.append_value(&c.contact_id);
        customer.append_option(c.customer.map(|k| customers.id(k)));
        at.append_value((c.at * 1e6).round() as i64);
        if month_name.as_ref().is_none_or(|(m, _)| *m != c.month) {
            month_name = Some((c.month, c.month.to_string()));
        }
        let (_, name) = month_name.as_ref().expect("the row's month is named above");
        month.append_value(name);
        touchpoint.append_option(c.touchpoint.as_deref());
        handled.append_option(c.handled_by.as_deref());
        charged.append_option(c.charged);
        for (b, s) in scores.iter_mut().zip(c.scores) {
            b.append_option(s.map(|x| (x * 10_000.0).round() / 10_000.0));
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

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::empathy::components::{Detail, Source};

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
}
