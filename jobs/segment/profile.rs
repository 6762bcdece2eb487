//! One profile row per segment: size, share, the median of every feature,
//! Net Promoter Score and churn rate, with small segments suppressed.
//!
//! Suppression: a segment with fewer than `min_group_size` customers keeps
//! its id and name but every number is NULL; a segment's NPS is NULL when
//! fewer than `min_group_size` of its customers answered an NPS survey.
//! Sizes add up to totals published elsewhere, so [`protect_totals`] then
//! withholds the sizes that would give a suppressed segment back.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringArray,
    StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::features::{Customers, FEATURES, median};
use crate::Result;

/// Profile of one segment (NULL-able numbers are `None` when suppressed).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentProfile {
    pub segment_id: i32,
    pub segment_name: String,
    /// False for "No purchases yet", which k-means never sees.
    pub clustered: bool,
    pub suppressed: bool,
    /// Members, for [`protect_totals`]; never written (`customers` is).
    pub size: usize,
    pub customers: Option<i64>,
    /// Of every customer in customer_features for the date.
    pub share: Option<f64>,
    /// Per feature in [`FEATURES`] order, original units, over the members
    /// with a value (before imputation).
    pub medians: Vec<Option<f64>>,
    pub nps_responses: Option<i64>,
    pub net_promoter_score: Option<f64>,
    /// Share of members whose last purchase is more than the churn window ago.
    pub churn_rate: Option<f64>,
    pub name_reason: String,
}

/// Net Promoter Score of 0-10 answers: 100 × (promoters (9-10) − detractors
/// (0-6)) / answers; `None` without answers.
pub fn net_promoter_score(scores: &[f64]) -> Option<f64> {
    if scores.is_empty() {
        return None;
    }
    let promoters = scores.iter().filter(|&&s| s >= 9.0).count() as f64;
    let detractors = scores.iter().filter(|&&s| s <= 6.0).count() as f64;
    Some(100.0 * (promoters - detractors) / scores.len() as f64)
}

/// What a profile needs besides the members.
#[derive(Debug, Clone, Copy)]
pub struct ProfileParams {
    pub total_customers: usize,
    pub min_group_size: usize,
    pub inactive_days: u32,
}

/// Profiles the segment made of `members` (indices into `customers`).
pub fn profile(
    customers: &Customers,
    members: &[usize],
    segment_id: i32,
    segment_name: &str,
    clustered: bool,
    name_reason: &str,
    p: ProfileParams,
) -> Result<SegmentProfile> {
    let mut out = SegmentProfile {
        segment_id,
        segment_name: segment_name.to_string(),
        clustered,
        suppressed: members.len() < p.min_group_size,
        size: members.len(),
        customers: None,
        share: None,
        medians: vec![None; FEATURES.len()],
        nps_responses: None,
        net_promoter_score: None,
        churn_rate: None,
        name_reason: name_reason.to_string(),
    };
    if out.suppressed {
        return Ok(out);
    }
    out.customers = Some(members.len() as i64);
    out.share = Some(members.len() as f64 / p.total_customers.max(1) as f64);
    for (f, m) in out.medians.iter_mut().enumerate() {
        *m = median(
            members
                .iter()
                .filter_map(|&i| customers.raw[f][i])
                .collect(),
        );
    }
    let scores: Vec<f64> = members
        .iter()
        .filter_map(|&i| customers.last_nps[i])
        .collect();
    out.nps_responses = Some(scores.len() as i64);
    if scores.len() >= p.min_group_size {
        out.net_promoter_score = net_promoter_score(&scores);
    }
    if clustered {
        let recency = customers.feature("recency_days")?;
        let window = f64::from(p.inactive_days);
        let churned = members
            .iter()
            .filter(|&&i| recency[i].is_some_and(|r| r > window))
            .count();
        out.churn_rate = Some(churned as f64 / members.len() as f64);
    }
    Ok(out)
}

/// What [`protect_totals`] withheld.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Withheld {
    /// Segments shown without their size, share and churn rate.
    pub segments: usize,
    /// Every share is NULL: "No purchases yet" is suppressed.
    pub shares: bool,
    /// The clustered segments' hidden sizes cannot be protected (too few
    /// others to hide with them): `customers_clustered` is withheld too.
    pub clustered_total: bool,
}

/// Withholds what would let a suppressed segment be worked out by
/// subtraction.
///
/// The clustered segments add up to the customers with a purchase, a number
/// published anyway (model_metrics' `customers_clustered` and fitting
/// sample, the rows of marts/customer_value). So when one is suppressed,
/// the smallest others lose their size, share and churn rate too (a churn
/// rate is a fraction over the size, which gives the size back) until the
/// hidden ones hold at least `min_group_size` customers together
/// ([`complements`]). "No purchases yet" is never picked: its size is all
/// customers minus those with a purchase, both published, so hiding it
/// protects nothing. When it is suppressed itself, the shares go instead:
/// they give the number of all customers, and with it that difference.
///
/// [`complements`]: crate::secondary_suppression::complements
pub fn protect_totals(profiles: &mut [SegmentProfile], min_group_size: usize) -> Withheld {
    let clustered: Vec<usize> = (0..profiles.len())
        .filter(|&i| profiles[i].clustered)
        .collect();
    let hidden: Vec<bool> = clustered
        .iter()
        .map(|&i| profiles[i].customers.is_none())
        .collect();
    let sizes: Vec<u64> = clustered.iter().map(|&i| profiles[i].size as u64).collect();
    let min = min_group_size as u64;
    let more = crate::secondary_suppression::complements(&hidden, &sizes, min);
    let mut out = Withheld::default();
    for (&i, _) in clustered.iter().zip(&more).filter(|(_, m)| **m) {
        let p = &mut profiles[i];
        p.customers = None;
        p.share = None;
        p.churn_rate = None;
        out.segments += 1;
    }
    let (count, held) = hidden
        .iter()
        .zip(&more)
        .zip(&sizes)
        .filter(|((h, m), _)| **h || **m)
        .fold((0, 0), |(c, t), (_, s)| (c + 1, t + s));
    out.clustered_total = count > 0 && (count < 2 || held < min);
    out.shares = profiles.iter().any(|p| !p.clustered && p.suppressed);
    if out.shares {
        for p in profiles.iter_mut() {
            p.share = None;
        }
    }
    out
}

/// Schema of `marts/segment_profiles` (documented in
/// `schemas/marts/segment_profiles.toml`).
pub fn schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("segment_id", DataType::Int32, false),
        Field::new("segment", DataType::Utf8, false),
        Field::new("clustered", DataType::Boolean, false),
        Field::new("suppressed", DataType::Boolean, false),
        Field::new("customers", DataType::Int64, true),
        Field::new("share", DataType::Float64, true),
        Field::new("currency", DataType::Utf8, true),
    ];
    for f in FEATURES {
        fields.push(Field::new(format!("median_{f}"), DataType::Float64, true));
    }
    fields.extend([
        Field::new("nps_responses", DataType::Int64, true),
        Field::new("net_promoter_score", DataType::Float64, true),
        Field::new("churn_rate", DataType::Float64, true),
        Field::new("name_reason", DataType::Utf8, false),
    ]);
    Arc::new(Schema::new(fields))
}

/// The profiles as one batch, in the given order; `currency` is the one of
/// the money medians (customer_features' currency).
pub fn batch(profiles: &[SegmentProfile], currency: Option<&str>) -> Result<RecordBatch> {
    let mut id = Int32Builder::new();
    let mut name = StringBuilder::new();
    let mut clustered = BooleanBuilder::new();
    let mut suppressed = BooleanBuilder::new();
    let mut customers = Int64Builder::new();
    let mut share = Float64Builder::new();
    let mut medians: Vec<Float64Builder> = FEATURES.iter().map(|_| Float64Builder::new()).collect();
    let mut responses = Int64Builder::new();
    let mut nps = Float64Builder::new();
    let mut churn = Float64Builder::new();
    let mut reason = StringBuilder::new();
    for p in profiles {
        id.append_value(p.segment_id);
        name.append_value(&p.segment_name);
        clustered.append_value(p.clustered);
        suppressed.append_value(p.suppressed);
        customers.append_option(p.customers);
        share.append_option(p.share);
        for (b, m) in medians.iter_mut().zip(&p.medians) {
            b.append_option(*m);
        }
        responses.append_option(p.nps_responses);
        nps.append_option(p.net_promoter_score);
        churn.append_option(p.churn_rate);
        reason.append_value(&p.name_reason);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(name.finish()),
        Arc::new(clustered.finish()),
        Arc::new(suppressed.finish()),
        Arc::new(customers.finish()),
        Arc::new(share.finish()),
        Arc::new(StringArray::from(vec![currency; profiles.len()])),
    ];
    for mut b in medians {
        columns.push(Arc::new(b.finish()));
    }
    columns.push(Arc::new(responses.finish()));
    columns.push(Arc::new(nps.finish()));
    columns.push(Arc::new(churn.finish()));
    columns.push(Arc::new(reason.finish()));
    Ok(RecordBatch::try_new(schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nps_by_hand() {
        // 3 promoters (9, 10, 9), 2 passives (7, 8), 3 detractors (0, 6, 5):
        // 100 × (3 − 3) / 8 = 0; with one more promoter 100 × 1 / 9.
        let s = [9.0, 10.0, 9.0, 7.0, 8.0, 0.0, 6.0, 5.0];
        assert_eq!(net_promoter_score(&s), Some(0.0));
        let mut t = s.to_vec();
        t.push(10.0);
        assert!((net_promoter_score(&t).expect("some") - 100.0 / 9.0).abs() < 1e-12);
        assert_eq!(net_promoter_score(&[]), None);
        assert_eq!(net_promoter_score(&[10.0, 9.0]), Some(100.0));
        assert_eq!(net_promoter_score(&[6.0]), Some(-100.0));
    }

    fn customers(n: usize) -> Customers {
        let mut c = Customers {
            raw: vec![Vec::new(); FEATURES.len()],
            ..Customers::default()
        };
        for i in 0..n {
            c.ids.push(format!("c{i:03}"));
            for (f, name) in FEATURES.iter().enumerate() {
                let v = match *name {
                    // 0, 10, 20, …: members 10+ are past a 90-day window.
                    "recency_days" => i as f64 * 10.0,
                    // One-time buyers have no gap: NULL for even members.
                    "avg_days_between_orders" if i % 2 == 0 => f64::NAN,
                    _ => i as f64,
                };
                c.raw[f].push(Some(v).filter(|x| x.is_finite()));
            }
            c.last_nps.push((i % 3 != 0).then_some((i % 11) as f64));
        }
        c
    }

    #[test]
    fn profile_counts_medians_nps_churn() {
        let c = customers(40);
        let members: Vec<usize> = (0..20).collect();
        let p = ProfileParams {
            total_customers: 40,
            min_group_size: 10,
            inactive_days: 90,
        };
        let prof = profile(&c, &members, 3, "Loyal regulars", true, "why", p).expect("profile");
        assert!(!prof.suppressed);
        assert_eq!(prof.customers, Some(20));
        assert_eq!(prof.share, Some(0.5));
        let f = |name: &str| prof.medians[crate::segment::features::index(name).expect("f")];
        assert_eq!(f("frequency"), Some(9.5), "median of 0..=19");
        assert_eq!(f("recency_days"), Some(95.0));
        // The gap is present for odd members only: 1, 3, …, 19 → median 10.
        assert_eq!(f("avg_days_between_orders"), Some(10.0));
        // recency > 90 for members 10..=19.
        assert_eq!(prof.churn_rate, Some(0.5));
        // Answers from i % 3 != 0 among 0..20: 13 answers, scores i % 11.
        let scores: Vec<f64> = (0..20)
            .filter(|i| i % 3 != 0)
            .map(|i| (i % 11) as f64)
            .collect();
        assert_eq!(prof.nps_responses, Some(13));
        assert_eq!(prof.net_promoter_score, net_promoter_score(&scores));
    }

    #[test]
    fn small_segments_and_few_answers_are_suppressed() {
        let c = customers(40);
        let p = ProfileParams {
            total_customers: 40,
            min_group_size: 10,
            inactive_days: 90,
        };
        let small = profile(&c, &[1, 2, 3], 1, "Big spenders", true, "why", p).expect("small");
        assert!(small.suppressed);
        assert_eq!(small.customers, None);
        assert_eq!(small.share, None);
        assert!(small.medians.iter().all(Option::is_none));
        assert_eq!(small.churn_rate, None);
        assert_eq!(small.net_promoter_score, None);
        // 12 members but only 8 NPS answers: the segment shows, its NPS does not.
        let members: Vec<usize> = (0..12).collect();
        let few = profile(&c, &members, 2, "x", true, "why", p).expect("few");
        assert!(!few.suppressed);
        assert_eq!(few.nps_responses, Some(8));
        assert_eq!(few.net_promoter_score, None);
        // Not clustered: no churn rate.
        let none = profile(&c, &members, 0, "No purchases yet", false, "why", p).expect("none");
        assert_eq!(none.churn_rate, None);
    }

    #[test]
    fn batch_matches_the_documented_mart() {
        let c = customers(12);
        let members: Vec<usize> = (0..12).collect();
        let p = ProfileParams {
            total_customers: 12,
            min_group_size: 10,
            inactive_days: 90,
        };
        let prof = profile(&c, &members, 1, "x", true, "why", p).expect("profile");
        let b = batch(&[prof], Some("EUR")).expect("batch");
        assert_eq!(b.num_rows(), 1);
        crate::mart::doc("segment_profiles")
            .expect("documented")
            .check(&b.schema())
            .expect("schema matches schemas/marts/segment_profiles.toml");
    }
}
