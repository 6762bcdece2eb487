//! The nightly audit's decision tables, assembled from whichever inputs
//! exist for the run date. `marts/customer_attributes` is required (it
//! holds the sensitive attributes); everything else is optional and an
//! absent input is a warning, not an error:
//!
//! | decision | from | outcomes |
//! | --- | --- | --- |
//! | `service` | lake/tickets through the `stg_tickets` model | handled_by (bot routing), first-response and resolution hours (also relative to the channel's median), reopened, follow-up after a negative rating |
//! | `offers` | lake/offers through `stg_offers` | offer type, discount_pct, decided_by |
//! | `offer_reach` | lake/offers, per customer | received any / each type of offer |
//! | `churn_model` | marts/churn_evaluation | at_risk against churned, churn_probability |
//! | `churn_flags` | marts/customer_value | at_risk |
//! | `sentiment_instrument` | marts/feedback_scored | unscored, sentiment at the same rating |
//!
//! The group columns are the configured attributes of
//! `customer_attributes`, plus the segment (`marts/segments`, else
//! `marts/customer_value`) when there is one.

use chrono::NaiveDate;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};

use super::instruments::sentiment_outcomes;
use super::table::{
    Classifier, Codes, Columns, Comparison, DecisionTable, Direction, Outcome, Stat,
};
use crate::catalog::{self, TableRef};
use crate::context::JobContext;
use crate::storage::partition_dir;
use crate::transform::models;
use crate::{Error, Result};

/// The sensitive attributes `marts/customer_attributes` offers for the audit.
pub const ATTRIBUTE_COLUMNS: &[&str] = &["age_band", "gender", "language", "region"];

/// Decision tables and what could not be audited.
#[derive(Debug)]
pub struct Inputs {
    pub tables: Vec<DecisionTable>,
    pub warnings: Vec<String>,
}

struct Session<'a> {
    ctx: &'a JobContext,
    df: SessionContext,
    tables: Vec<TableRef>,
    date: NaiveDate,
}

impl Session<'_> {
    fn has(&self, area: &str, name: &str) -> bool {
        self.tables.iter().any(|t| t.area == area && t.name == name)
    }

    /// Whether a mart has a partition for the run date.
    async fn has_mart(&self, name: &str) -> Result<bool> {
        Ok(self.has("marts", name)
            && self
                .ctx
                .storage
                .exists_prefix(&partition_dir("marts", name, self.date))
                .await?)
    }

    async fn view(&self, name: &str, sql: &str) -> Result<()> {
        let df = self.df.sql(sql).await?;
        self.df.deregister_table(name)?;
        self.df.register_table(name, df.into_view())?;
        Ok(())
    }

    /// Computes `sql` once into the table `name` (every decision table
    /// joins it).
    async fn table(&self, name: &str, sql: &str) -> Result<()> {
        let df = self.df.sql(sql).await?;
        Ok(catalog::register_in_memory(&self.df, name, df).await?)
    }

    /// Builds the decision tables, as many at once as there are cores, in
    /// the order given. Each query has one partition (see [`load`]), so it
    /// keeps one core busy: one after another, the six tables took 16-18 s
    /// at a million customers on two cores, two at a time 10.5-10.8 s.
    async fn tables(&self, queries: &[Query], groups: &[String]) -> Result<Vec<DecisionTable>> {
        let at_once = std::thread::available_parallelism().map_or(1, |n| n.get());
        // the longest first, so that no long query runs alone at the end
        let mut order: Vec<usize> = (0..queries.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(queries[i].rows_per_customer()));
        let runs = order.iter().map(|&i| {
            let (df, groups, q) = (self.df.clone(), groups.to_vec(), queries[i]);
            async move {
                let table =
                    tokio::spawn(async move { q.table(&collect(df, q.sql()).await?, &groups) })
                        .await
                        .map_err(crate::nightly::panics::joined("a decision-table query"))??;
                Ok::<_, Error>((i, table))
            }
        });
        // collected first: a lazy map's closure borrows for a lifetime that
        // keeps the nightly from spawning this job as a task (rustc #102211)
        let runs: Vec<_> = runs.collect();
        let mut done: Vec<(usize, DecisionTable)> = futures::stream::iter(runs)
            .buffered(at_once)
            .try_collect()
            .await?;
        done.sort_by_key(|(i, _)| *i);
        Ok(done.into_iter().map(|(_, t)| t).collect())
    }

    async fn columns_of(&self, table: &str) -> Result<Vec<String>> {
        let df = self.df.table(table).await?;
        Ok(df
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect())
    }
}

/// The rows of one decision-table query; its time goes to the debug log.
async fn collect(df: SessionContext, sql: &'static str) -> Result<Vec<RecordBatch>> {
    let started = std::time::Instant::now();
    let batches = df.sql(sql).await?.collect().await?;
    tracing::debug!(
        query = sql
            .lines()
            .find(|l| l.starts_with("-- "))
            .unwrap_or_default(),
        rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        seconds = started.elapsed().as_secs_f64(),
        "decision table queried"
    );
    Ok(batches)
}

/// The decision tables, each one query.
#[derive(Debug, Clone, Copy)]
enum Query {
    Service,
    Offers,
    OfferReach,
    ChurnModel,
    ChurnFlags,
    Sentiment,
}

impl Query {
    fn sql(self) -> &'static str {
        match self {
            Query::Service => include_str!("service.sql"),
            Query::Offers => include_str!("offers.sql"),
            Query::OfferReach => include_str!("offer_reach.sql"),
            Query::ChurnModel => include_str!("churn_model.sql"),
            Query::ChurnFlags => include_str!("churn_flags.sql"),
            Query::Sentiment => include_str!("feedback.sql"),
        }
    }

    /// Rows per customer a query reads at the generated business's scale
    /// (messages, tickets, offers; one for the per-customer tables): the
    /// order in which to start them.
    fn rows_per_customer(self) -> u32 {
        match self {
            Query::Sentiment => 5,
            Query::Service | Query::Offers => 2,
            Query::OfferReach | Query::ChurnModel | Query::ChurnFlags => 1,
        }
    }

    fn table(self, b: &[RecordBatch], groups: &[String]) -> Result<DecisionTable> {
        match self {
            Query::Service => service(b, groups),
            Query::Offers => offers(b, groups),
            Query::OfferReach => offer_reach(b, groups),
            Query::ChurnModel => churn_model(b, groups),
            Query::ChurnFlags => churn_flags(b, groups),
            Query::Sentiment => sentiment_instrument(b, groups),
        }
    }
}

/// Builds every decision table the data root allows for `date`.
pub async fn load(ctx: &JobContext, date: NaiveDate) -> Result<Inputs> {
    let cfg = &ctx.cfg.fairness;
    let (df, tables) = catalog::session_with_all(&ctx.storage).await?;
    // One partition: rows then come back in the order of the files, and the
    // audit's sums and quantiles add them in that order. With two, the
    // order varied between runs and so did the last bits of 739 of 8,080
    // rows at a million customers; the marts must be byte-identical. (Two
    // partitions with an ORDER BY on each table's key were deterministic
    // but slower: 27-30 s against 27 s, 40-44 CPU-seconds against 32.)
    df.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .execution
        .target_partitions = 1;
    let s = Session {
        ctx,
        df,
        tables,
        date,
    };
    let mut warnings = Vec::new();
    if !s.has_mart("customer_attributes").await? {
        return Err(Error::MissingInput {
            what: format!(
                "marts/customer_attributes for {date} (the sensitive attributes the audit groups by)"
            ),
            hint: format!("run `attune transform --date {date}` first"),
        });
    }
    // the staging views (of tickets and offers) drop the copies the
    // transform listed for the date
    if s.has("lake", "tickets") || s.has("lake", "offers") {
        crate::transform::superseded::register_published(&s.df, &ctx.storage, date).await?;
    }
    let window_start = date - chrono::Duration::days(i64::from(cfg.window_days) - 1);
    // Constants, not a one-row table joined to every row (a nested-loop join
    // that buffers the other side).
    s.df.register_udf(crate::transform::run_date_udf(date));
    s.df.register_udf(crate::transform::date_constant_udf(
        "window_start",
        window_start,
    ));

    let segment_from = if !cfg.segment {
        None
    } else if s.has_mart("segments").await? {
        Some("segments")
    } else if s.has_mart("customer_value").await? {
        Some("customer_value")
    } else {
        warnings.push(format!(
            "no marts/segments or marts/customer_value for {date}: the segment dimension is not audited"
        ));
        None
    };
    match segment_from {
        Some(t) => {
            s.view(
                "audit_segments",
                &format!(
                    "SELECT customer_id, CAST(segment AS VARCHAR) AS segment FROM {t} WHERE dt = CAST('{date}' AS DATE)"
                ),
            )
            .await?
        }
        None => {
            s.view(
                "audit_segments",
                "SELECT CAST(NULL AS VARCHAR) AS customer_id, CAST(NULL AS VARCHAR) AS segment WHERE false",
            )
            .await?
        }
    }
    s.table("audit_customers", include_str!("customers.sql"))
        .await?;
    let mut groups: Vec<String> = cfg.attributes.clone();
    if segment_from.is_some() {
        groups.push("segment".into());
    }

    let staging = models::load(ctx.cfg.models_dir.as_deref())?;
    let stage = |name: &str| {
        staging
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.sql.clone())
            .ok_or_else(|| {
                Error::Config(format!(
                    "the SQL models have no `{name}`: the fairness audit reads it"
                ))
            })
    };
    // the views first, then every query at once
    let mut queries = Vec::new();

    if s.has("lake", "tickets") {
        s.view("stg_tickets", &stage("stg_tickets")?).await?;
        queries.push(Query::Service);
    } else {
        warnings.push(
            "no lake/tickets: support service (bot routing, response times) is not audited".into(),
        );
    }

    if s.has("lake", "offers") {
        s.view("stg_offers", &stage("stg_offers")?).await?;
        queries.extend([Query::Offers, Query::OfferReach]);
    } else {
        warnings.push("no lake/offers: offers and discounts are not audited".into());
    }

    if s.has_mart("churn_evaluation").await? {
        let cols = s.columns_of("churn_evaluation").await?;
        let at_risk = if cols.iter().any(|c| c == "at_risk") {
            "at_risk"
        } else {
            warnings.push(
                "marts/churn_evaluation has no at_risk column: the flag is taken as churn_probability >= 0.5".into(),
            );
            "churn_probability >= 0.5 AS at_risk"
        };
        s.view(
            "audit_churn_evaluation",
            &format!(
                "SELECT customer_id, churned, {at_risk}, churn_probability FROM churn_evaluation WHERE dt = CAST('{date}' AS DATE)"
            ),
        )
        .await?;
        queries.push(Query::ChurnModel);
    } else {
        warnings.push(format!(
            "no marts/churn_evaluation for {date}: the churn model's error rates are not audited"
        ));
    }

    if s.has_mart("customer_value").await?
        && s.columns_of("customer_value")
            .await?
            .iter()
            .any(|c| c == "at_risk")
    {
        queries.push(Query::ChurnFlags);
    } else {
        warnings.push(format!(
            "no marts/customer_value for {date}: the at-risk flags are not audited"
        ));
    }

    if s.has_mart("feedback_scored").await? {
        queries.push(Query::Sentiment);
    } else {
        warnings.push(format!(
            "no marts/feedback_scored for {date}: the sentiment scorer is not audited"
        ));
    }

    Ok(Inputs {
        tables: s.tables(&queries, &groups).await?,
        warnings,
    })
}

fn churn_flags(b: &[RecordBatch], groups: &[String]) -> Result<DecisionTable> {
    let c = Columns::new(b, "marts/customer_value");
    let mut t = base("churn_flags", &c, groups)?;
    t.outcomes.push(Outcome::binary(
        "at_risk",
        c.binary("at_risk")?,
        Direction::Neutral,
        "are flagged at risk of leaving",
    ));
    Ok(t)
}

/// A decision table with its groups and subjects, no outcomes yet.
fn base(name: &str, c: &Columns, groups: &[String]) -> Result<DecisionTable> {
    let mut g = Vec::new();
    for col in groups {
        let codes = c.codes(col)?;
        // A segment column that is entirely empty is no dimension.
        if !codes.labels.is_empty() {
            g.push((col.clone(), codes));
        }
    }
    Ok(DecisionTable {
        name: name.to_string(),
        rows: c.rows(),
        subjects: Some(c.subjects("customer_id")?),
        groups: g,
        outcomes: Vec::new(),
        classifier: None,
    })
}

fn categorical(name: &str, codes: Codes, verbs: &[(&str, &str)], fallback: &str) -> Outcome {
    let mut o = Outcome::categorical(name, codes, fallback);
    o.wording.category_verbs = verbs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    o
}

fn service(b: &[RecordBatch], groups: &[String]) -> Result<DecisionTable> {
    let c = Columns::new(b, "service (stg_tickets)");
    let mut t = base("service", &c, groups)?;
    let mut handled = categorical(
        "handled_by",
        c.codes("handled_by")?,
        &[
            ("bot", "are sent to the chat bot"),
            ("human", "are served by a person"),
            ("bot_then_human", "are passed from the chat bot to a person"),
        ],
        "are handled by {category}",
    );
    handled.wording.measure = "who handles their tickets".into();
    let hours = |name: &str, measure: &str| -> Result<Outcome> {
        Ok(Outcome::continuous(
            name,
            c.floats(name)?,
            vec![Stat::Quantile(0.5), Stat::Quantile(0.9)],
            Comparison::Ratio,
            Direction::HigherIsWorse,
            measure,
            " hours",
        ))
    };
    let relative = |name: &str, measure: &str| -> Result<Outcome> {
        Ok(Outcome::continuous(
            name,
            c.floats(name)?,
            vec![Stat::Quantile(0.5), Stat::Quantile(0.9)],
            Comparison::Ratio,
            Direction::HigherIsWorse,
            measure,
            "× the channel's median",
        ))
    };
    t.outcomes = vec![
        handled,
        hours("first_response_hours", "first-response time")?,
        relative(
            "first_response_vs_channel",
            "channel-adjusted first-response time",
        )?,
        hours("resolution_hours", "resolution time")?,
        relative("resolution_vs_channel", "channel-adjusted resolution time")?,
        Outcome::binary(
            "reopened",
            c.binary("reopened")?,
            Direction::HigherIsWorse,
            "have their tickets reopened",
        ),
        Outcome::binary(
            "followed_up_48h",
            c.binary("followed_up_48h")?,
            Direction::HigherIsBetter,
            "get a follow-up within 48 hours after a negative rating",
        ),
    ];
    Ok(t)
}

fn offers(b: &[RecordBatch], groups: &[String]) -> Result<DecisionTable> {
    let c = Columns::new(b, "offers (stg_offers)");
    let mut t = base("offers", &c, groups)?;
    let mut offer_type = categorical(
        "offer_type",
        c.codes("offer_type")?,
        &[
            ("discount", "get a discount as their offer"),
            ("free_item", "get a free item as their offer"),
            ("bundle", "get a bundle as their offer"),
        ],
        "get {category} offers",
    );
    offer_type.wording.measure = "offer types".into();
    let mut decided_by = categorical(
        "decided_by",
        c.codes("decided_by")?,
        &[
            ("rule", "have their offers decided by a rule"),
            ("model", "have their offers decided by a model"),
            ("human", "have their offers decided by a person"),
        ],
        "have their offers decided by {category}",
    );
    decided_by.wording.measure = "who decides their offers".into();
    t.outcomes = vec![
        offer_type,
        Outcome::continuous(
            "discount_pct",
            c.floats("discount_pct")?,
            vec![Stat::Mean, Stat::Quantile(0.5)],
            Comparison::Ratio,
            Direction::HigherIsBetter,
            "discount",
            "%",
        ),
        decided_by,
    ];
    Ok(t)
}

fn offer_reach(b: &[RecordBatch], groups: &[String]) -> Result<DecisionTable> {
    let c = Columns::new(b, "offer_reach (stg_offers)");
    let mut t = base("offer_reach", &c, groups)?;
    let reached = |col: &str, verb: &str| -> Result<Outcome> {
        Ok(Outcome::binary(
            col,
            c.binary(col)?,
            Direction::HigherIsBetter,
            verb,
        ))
    };
    t.outcomes = vec![
        reached("received_any_offer", "receive at least one offer")?,
        reached("received_discount", "receive a discount offer")?,
        reached("received_free_item", "receive a free-item offer")?,
        reached("received_bundle", "receive a bundle offer")?,
    ];
    Ok(t)
}

fn churn_model(b: &[RecordBatch], groups: &[String]) -> Result<DecisionTable> {
    let c = Columns::new(b, "marts/churn_evaluation");
    let mut t = base("churn_model", &c, groups)?;
    t.classifier = Some(Classifier::churn(
        c.binary("churned")?,
        c.binary("at_risk")?,
        Some(c.floats("churn_probability")?),
    ));
    Ok(t)
}

fn sentiment_instrument(b: &[RecordBatch], groups: &[String]) -> Result<DecisionTable> {
    let c = Columns::new(b, "marts/feedback_scored");
    let mut t = base("sentiment_instrument", &c, groups)?;
    let source = c.strings("source")?;
    let scale = c.strings("rating_scale")?;
    let rating = c.floats("rating")?;
    let stratum: Vec<Option<String>> = source
        .iter()
        .zip(&scale)
        .zip(&rating)
        .map(|((s, k), r)| {
            r.is_finite().then(|| {
                format!(
                    "{}/{}/{r}",
                    s.as_deref().unwrap_or_default(),
                    k.as_deref().unwrap_or_default()
                )
            })
        })
        .collect();
    t.outcomes = sentiment_outcomes(&c.binary("scored")?, &c.floats("sentiment")?, &stratum);
    Ok(t)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::TimestampMicrosecondArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::datasource::MemTable;

    use super::*;

    /// The decision queries cut the window on the timestamp too, for
    /// row-group statistics: the same rows as the UTC day, a microsecond
    /// before the window's first midnight out, the midnight itself in.
    #[tokio::test]
    async fn the_window_on_the_timestamp_keeps_the_days_rows() {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let schema = Arc::new(Schema::new(vec![Field::new("created_at", ts, false)]));
        let midnight = 1_741_564_800_000_000i64; // 2025-03-10T00:00:00Z
        let at = [midnight - 1, midnight, midnight + 86_399_999_999];
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(
                TimestampMicrosecondArray::from(at.to_vec()).with_timezone("UTC"),
            )],
        )
        .expect("batch");
        let df = SessionContext::new();
        df.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).expect("table")),
        )
        .expect("register");
        df.register_udf(crate::transform::date_constant_udf(
            "window_start",
            NaiveDate::from_ymd_opt(2025, 3, 10).expect("date"),
        ));
        crate::catalog::install_functions(&df);
        let count = |filter: &str| {
            let df = df.clone();
            let sql = format!("SELECT count(*) AS n FROM t WHERE {filter}");
            async move { crate::catalog::first_row_ints(&df, &sql).await[0] }
        };
        assert_eq!(count("CAST(created_at AS DATE) >= window_start()").await, 2);
        assert_eq!(
            count("created_at >= CAST(window_start() AS TIMESTAMP)").await,
            2
        );
        assert_eq!(
            count("created_at >= CAST(window_start() AS TIMESTAMP) AND created_at < TIMESTAMP '2025-03-10T00:00:00.000001Z'").await,
            1
        );
    }
}
