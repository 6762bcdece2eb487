//! `marts/empathy_contacts`: every contact with its component scores, so the
//! fairness audit can compare groups contact by contact with real tests
//! instead of comparing aggregated cells.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use super::components::{Component, Contact};
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
    let mut source = StringBuilder::new();
    let mut id = StringBuilder::new();
    let mut customer = StringBuilder::new();
    let mut at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut month = StringBuilder::new();
    let mut touchpoint = StringBuilder::new();
    let mut handled = StringBuilder::new();
    let mut charged = BooleanBuilder::new();
    let mut scores: Vec<Float64Builder> = Component::ALL
        .iter()
        .map(|_| Float64Builder::new())
        .collect();
    for c in order {
        source.append_value(c.source.name());
        id.append_value(&c.contact_id);
        customer.append_option(c.customer.map(|k| customers.id(k)));
        at.append_value((c.at * 1e6).round() as i64);
        month.append_value(c.month.to_string());
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
