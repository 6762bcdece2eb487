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

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{ArrayRef, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};

use super::instruments::sentiment_outcomes;
use super::table::{
    Classifier, Codes, Columns, Comparison, DecisionTable, Direction, MISSING, Outcome, Stat,
};
use crate::catalog::{self, TableRef};
use crate::context::JobContext;
use crate::storage::partition_dir;
use crate::transform::models;
use crate::{Error, Result};

/// The sensitive attributes `marts/customer_attributes` offers for the audit.
pub const ATTRIBUTE_COLUMNS: &[&str] = &["age_band", "gender", "language", "region"];

/// What [`load`]'s `then` made of each decision table, and what could
/// not be audited.
#[derive(Debug)]
pub struct Inputs<T> {
    pub tables: Vec<T>,
    pub warnings: Vec<String>,
}

/// What [`load`] does with each decision table as soon as it is
/// built, on a blocking thread, while the other tables' queries run.
pub type Then<T> = Arc<dyn Fn(DecisionTable) -> Result<T> + Send + Sync>;

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

    /// Builds the decision tables, as many queries at once as there are
    /// cores, and hands each to `then` on a blocking thread as soon as it
    /// is built; the results come back in the order of `queries`. Each
    /// query has one partition (see [`load`]), so it keeps one core busy:
    /// one after another, the six tables took 16-18 s at a million
    /// customers on two cores, two at a time 10.5-10.8 s. Should a query
    /// fail, the tables already handed over finish on their own threads
    /// and the job returns the error.
    async fn tables<T: Send + 'static>(
        &self,
        queries: &[Query],
        audit: &Arc<AuditCustomers>,
        then: &Then<T>,
    ) -> Result<Vec<T>> {
        let at_once = std::thread::available_parallelism().map_or(1, |n| n.get());
        // the longest first, so that no long query runs alone at the end
        let mut order: Vec<usize> = (0..queries.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(queries[i].rows_per_customer()));
        // each held table once, by the first query that needs it; the
        // other waits for it (offer_reach starts after offers)
        let held: Arc<BTreeMap<&str, tokio::sync::OnceCell<()>>> = Arc::new(
            queries
                .iter()
                .filter_map(|q| q.held())
                .map(|(name, _)| (name, tokio::sync::OnceCell::new()))
                .collect(),
        );
        let runs = order.iter().map(|&i| {
            let (df, audit, q) = (self.df.clone(), Arc::clone(audit), queries[i]);
            let (then, held) = (Arc::clone(then), Arc::clone(&held));
            async move {
                let table = tokio::spawn(async move {
                    if let Some((name, sql)) = q.held() {
                        held[name].get_or_try_init(|| hold(&df, name, sql)).await?;
                    }
                    q.table(&collect(df, q.sql()).await?, &audit)
                })
                .await
                .map_err(crate::nightly::panics::joined("a decision-table query"))??;
                // not awaited here: the next query starts at once
                let then = tokio::task::spawn_blocking(move || then(table));
                Ok::<_, Error>((i, then))
            }
        });
        // collected first: a lazy map's closure borrows for a lifetime that
        // keeps the nightly from spawning this job as a task (rustc #102211)
        let runs: Vec<_> = runs.collect();
        // unordered: a query that ends before an earlier one frees its
        // place for the next
        let mut started: Vec<(usize, tokio::task::JoinHandle<Result<T>>)> =
            futures::stream::iter(runs)
                .buffer_unordered(at_once)
                .try_collect()
                .await?;
        started.sort_by_key(|(i, _)| *i);
        let mut done = Vec::with_capacity(started.len());
        for (_, then) in started {
            done.push(
                then.await
                    .map_err(crate::nightly::panics::joined("a decision table's audit"))??,
            );
        }
        Ok(done)
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

/// Runs `sql` and registers its rows in `df` as the table `name`, for
/// rows a decision query reads twice or two queries share: DataFusion
/// plans a CTE (or a view) anew wherever it is read, scans and joins
/// included.
async fn hold(df: &SessionContext, name: &str, sql: &str) -> Result<()> {
    let started = std::time::Instant::now();
    let plan = df.sql(sql).await?.create_physical_plan().await?;
    let schema = plan.schema();
    let partitions = datafusion::physical_plan::collect_partitioned(plan, df.task_ctx()).await?;
    let rows: usize = partitions.iter().flatten().map(RecordBatch::num_rows).sum();
    df.deregister_table(name)?;
    df.register_table(name, Arc::new(MemTable::try_new(schema, partitions)?))?;
    tracing::debug!(
        table = name,
        rows,
        seconds = started.elapsed().as_secs_f64(),
        "decision rows held"
    );
    Ok(())
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
    /// The table a query reads more than once, or shares with another
    /// query, and its SQL, which [`hold`] registers once before the first
    /// query that needs it runs.
    fn held(self) -> Option<(&'static str, &'static str)> {
        match self {
            Query::Service => Some(("audit_tickets", include_str!("service_tickets.sql"))),
            Query::Offers | Query::OfferReach => {
                Some(("audit_offers", include_str!("audit_offers.sql")))
            }
            _ => None,
        }
    }

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

    fn table(self, b: &[RecordBatch], audit: &AuditCustomers) -> Result<DecisionTable> {
        match self {
            Query::Service => service(b, audit),
            Query::Offers => offers(b, audit),
            Query::OfferReach => offer_reach(b, audit),
            Query::ChurnModel => churn_model(b, audit),
            Query::ChurnFlags => churn_flags(b, audit),
            Query::Sentiment => sentiment_instrument(b, audit),
        }
    }
}

/// Builds every decision table the data root allows for `date`, handing
/// each to `then` as soon as it is built: the nightly audits a table while
/// the others' queries still run (the results come back in the order of
/// the queries, whichever ends first).
pub async fn load<T: Send + 'static>(
    ctx: &JobContext,
    date: NaiveDate,
    then: Then<T>,
) -> Result<Inputs<T>> {
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
    let mut groups: Vec<String> = cfg.attributes.clone();
    if segment_from.is_some() {
        groups.push("segment".into());
    }
    let audit = Arc::new(AuditCustomers::register(&s.df, &groups).await?);

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
        tables: s.tables(&queries, &audit, &then).await?,
        warnings,
    })
}

fn churn_flags(b: &[RecordBatch], audit: &AuditCustomers) -> Result<DecisionTable> {
    let c = Columns::new(b, "marts/customer_value");
    let mut t = base("churn_flags", &c, audit)?;
    t.outcomes.push(Outcome::binary(
        "at_risk",
        c.binary("at_risk")?,
        Direction::Neutral,
        "are flagged at risk of leaving",
    ));
    Ok(t)
}

/// A decision table with its groups and subjects, no outcomes yet: each
/// row's customer is its `customer_row` in `audit`.
fn base(name: &str, c: &Columns, audit: &AuditCustomers) -> Result<DecisionTable> {
    let (groups, subjects) = audit.take(&c.numbers("customer_row")?);
    Ok(DecisionTable {
        name: name.to_string(),
        rows: c.rows(),
        subjects: Some(subjects),
        groups,
        outcomes: Vec::new(),
        classifier: None,
    })
}

/// The audited customers (`customers.sql`), in customer id order, with
/// their groups coded once per customer. The decision queries join
/// `audit_customers` (customer_key, customer_row) and return each row's
/// customer_row, not the customer's id and group names: those six strings
/// were copied into every ticket, offer and message row (6.7M at a million
/// customers) and coded again row by row.
pub struct AuditCustomers {
    groups: Vec<(String, Codes)>,
    customers: usize,
}

impl AuditCustomers {
    /// Computes `customers.sql`, codes `groups` per customer, and registers
    /// `audit_customers` in `df`.
    async fn register(df: &SessionContext, groups: &[String]) -> Result<AuditCustomers> {
        let batches = df
            .sql(include_str!("customers.sql"))
            .await?
            .collect()
            .await?;
        let c = Columns::new(&batches, "the audited customers (customers.sql)");
        let customers = c.rows();
        let coded = groups
            .iter()
            .map(|g| Ok((g.clone(), c.codes(g)?)))
            .collect::<Result<Vec<_>>>()?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_key", DataType::Int64, true),
            Field::new("customer_row", DataType::UInt32, false),
        ]));
        let mut first = 0u32;
        let mut rows = Vec::with_capacity(batches.len());
        for b in &batches {
            let key = b
                .column_by_name("customer_key")
                .cloned()
                .ok_or_else(|| Error::Internal("customers.sql: no customer_key".into()))?;
            let n = u32::try_from(b.num_rows()).expect("fewer than 4 billion customers");
            let numbers: ArrayRef = Arc::new(UInt32Array::from_iter_values(first..first + n));
            first += n;
            rows.push(RecordBatch::try_new(schema.clone(), vec![key, numbers])?);
        }
        df.deregister_table("audit_customers")?;
        df.register_table(
            "audit_customers",
            Arc::new(MemTable::try_new(schema, vec![rows])?),
        )?;
        Ok(AuditCustomers {
            groups: coded,
            customers,
        })
    }

    /// The groups and subjects of rows whose customers are `rows`: what
    /// coding the rows' own group names and ids gives (each group's labels
    /// those the rows have, in sorted order; subjects numbered in id
    /// order), from the codes per customer. A group without a label in any
    /// row (an empty segment column) is no dimension.
    pub fn take(&self, rows: &[u32]) -> (Vec<(String, Codes)>, Vec<u32>) {
        let mut rank = vec![MISSING; self.customers];
        for &r in rows {
            rank[r as usize] = 0;
        }
        for (n, slot) in rank.iter_mut().filter(|s| **s == 0).enumerate() {
            *slot = n as u32;
        }
        let subjects = rows.iter().map(|&r| rank[r as usize]).collect();
        let groups = self
            .groups
            .iter()
            .filter_map(|(name, all)| {
                let mut renumber = vec![MISSING; all.labels.len()];
                for &r in rows {
                    if let Some(slot) = renumber.get_mut(all.codes[r as usize] as usize) {
                        *slot = 0;
                    }
                }
                let mut labels = Vec::new();
                for (slot, label) in renumber.iter_mut().zip(&all.labels) {
                    if *slot == 0 {
                        *slot = labels.len() as u32;
                        labels.push(label.clone());
                    }
                }
                if labels.is_empty() {
                    return None;
                }
                let codes = rows
                    .iter()
                    .map(|&r| match all.codes[r as usize] {
                        MISSING => MISSING,
                        c => renumber[c as usize],
                    })
                    .collect();
                Some((name.clone(), Codes { labels, codes }))
            })
            .collect();
        (groups, subjects)
    }
}

fn categorical(name: &str, codes: Codes, verbs: &[(&str, &str)], fallback: &str) -> Outcome {
    let mut o = Outcome::categorical(name, codes, fallback);
    o.wording.category_verbs = verbs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    o
}

fn service(b: &[RecordBatch], audit: &AuditCustomers) -> Result<DecisionTable> {
    let c = Columns::new(b, "service (stg_tickets)");
    let mut t = base("service", &c, audit)?;
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

fn offers(b: &[RecordBatch], audit: &AuditCustomers) -> Result<DecisionTable> {
    let c = Columns::new(b, "offers (stg_offers)");
    let mut t = base("offers", &c, audit)?;
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

fn offer_reach(b: &[RecordBatch], audit: &AuditCustomers) -> Result<DecisionTable> {
    let c = Columns::new(b, "offer_reach (stg_offers)");
    let mut t = base("offer_reach", &c, audit)?;
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

fn churn_model(b: &[RecordBatch], audit: &AuditCustomers) -> Result<DecisionTable> {
    let c = Columns::new(b, "marts/churn_evaluation");
    let mut t = base("churn_model", &c, audit)?;
    t.classifier = Some(Classifier::churn(
        c.binary("churned")?,
        c.binary("at_risk")?,
        Some(c.floats("churn_probability")?),
    ));
    Ok(t)
}

fn sentiment_instrument(b: &[RecordBatch], audit: &AuditCustomers) -> Result<DecisionTable> {
    let c = Columns::new(b, "marts/feedback_scored");
    let mut t = base("sentiment_instrument", &c, audit)?;
    let stratum = strata(
        &c.codes("source")?,
        &c.codes("rating_scale")?,
        &c.floats("rating")?,
    );
    t.outcomes = sentiment_outcomes(&c.binary("scored")?, &c.floats("sentiment")?, &stratum);
    Ok(t)
}

/// Each message's stratum, its (source, scale, rating), `None` without a
/// finite rating: codes and the rating's bits, equal exactly when the
/// three are, an empty value counting as the empty string. A
/// "source/scale/rating" string per message, formatted and then hashed
/// twice, was about 7% of the job's CPU at a million customers (2.7M
/// messages).
fn strata(source: &Codes, scale: &Codes, rating: &[f64]) -> Vec<Option<(u32, u32, u64)>> {
    let (source_of, scale_of) = (blank_as_empty(source), blank_as_empty(scale));
    source
        .codes
        .iter()
        .zip(&scale.codes)
        .zip(rating)
        .map(|((&s, &k), r)| {
            r.is_finite()
                .then(|| (source_of(s), scale_of(k), r.to_bits()))
        })
        .collect()
}

/// Maps a column's codes so that an empty value ([`MISSING`]) and an
/// empty string are one code.
fn blank_as_empty(codes: &Codes) -> impl Fn(u32) -> u32 {
    let empty = codes
        .labels
        .iter()
        .position(String::is_empty)
        .map_or(MISSING, |i| i as u32);
    move |c| if c == MISSING { empty } else { c }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::TimestampMicrosecondArray;
    use datafusion::arrow::datatypes::TimeUnit;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Reference: the rows' own group names and customer ids coded as a
    /// decision table's columns were before (`Codes::encode` of each
    /// column, subjects numbered by id), against [`AuditCustomers::take`]
    /// of their customers' rows.
    #[test]
    fn groups_taken_by_customer_row_are_those_of_coding_each_rows_names() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(41);
        let customers = 300;
        let ids: Vec<String> = (0..customers).map(|i| format!("c{i:04}")).collect();
        let bands = [None, Some("18-24"), Some("25-34"), Some("65+")];
        let segments = [None, Some("Loyal"), Some("New")];
        let band = picks(&mut rng, &bands, customers);
        let segment = picks(&mut rng, &segments, customers);
        let audit = AuditCustomers {
            groups: vec![
                ("age_band".into(), Codes::encode(&band)),
                ("segment".into(), Codes::encode(&segment)),
                // a column every customer lacks: no dimension
                (
                    "region".into(),
                    Codes::encode(&vec![None::<&str>; customers]),
                ),
            ],
            customers,
        };
        for (n, span) in [(0, customers), (500, customers), (200, 40), (50, 3)] {
            // rows of a few customers, some more than once, in any order
            let rows: Vec<u32> = (0..n)
                .map(|_| rng.random_range(0..span) as u32 * (customers / span) as u32)
                .collect();
            let (groups, subjects) = audit.take(&rows);
            let names = |of: &[Option<&str>]| -> Vec<Option<String>> {
                rows.iter()
                    .map(|&r| of[r as usize].map(str::to_string))
                    .collect()
            };
            let mut want = Vec::new();
            for (name, of) in [("age_band", &band), ("segment", &segment)] {
                let codes = Codes::encode(&names(of));
                if !codes.labels.is_empty() {
                    want.push((name.to_string(), codes));
                }
            }
            assert_eq!(groups, want, "{n} rows of {span} customers");
            let id_codes = Codes::encode(
                &rows
                    .iter()
                    .map(|&r| Some(ids[r as usize].as_str()))
                    .collect::<Vec<_>>(),
            );
            assert_eq!(subjects, id_codes.codes, "{n} rows of {span} customers");
        }
    }

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

    /// `n` values drawn from `from`, with replacement.
    fn picks<T: Copy>(rng: &mut impl Rng, from: &[T], n: usize) -> Vec<T> {
        (0..n)
            .map(|_| from[rng.random_range(0..from.len())])
            .collect()
    }

    /// Differential: the strata against the "source/scale/rating" string
    /// each message had before (an empty value formatted as an empty
    /// string), on messages with empty and blank sources, -0 and 0 and
    /// non-finite ratings: two messages share a stratum exactly when their
    /// strings are equal, and the residuals are the same bits.
    #[test]
    fn strata_are_the_formatted_keys() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(53);
        let sources = [
            None,
            Some(""),
            Some("survey"),
            Some("review"),
            Some("ticket"),
        ];
        let scales = [None, Some(""), Some("nps"), Some("5")];
        let ratings = [0.0, -0.0, 1.0, 5.0, 10.0, 4.5, f64::NAN, f64::INFINITY];
        let n = 4000;
        let source = picks(&mut rng, &sources, n);
        let scale = picks(&mut rng, &scales, n);
        let rating = picks(&mut rng, &ratings, n);
        let formatted: Vec<Option<String>> = (0..n)
            .map(|i| {
                let r = rating[i];
                r.is_finite().then(|| {
                    format!(
                        "{}/{}/{r}",
                        source[i].unwrap_or_default(),
                        scale[i].unwrap_or_default()
                    )
                })
            })
            .collect();
        let got = strata(&Codes::encode(&source), &Codes::encode(&scale), &rating);
        for i in 0..n {
            assert_eq!(got[i].is_some(), formatted[i].is_some(), "row {i}");
            for j in (i + 1..n).step_by(37) {
                assert_eq!(
                    got[i].is_some() && got[i] == got[j],
                    formatted[i].is_some() && formatted[i] == formatted[j],
                    "rows {i} and {j}: {:?} {:?}",
                    formatted[i],
                    formatted[j]
                );
            }
        }
        let scored: Vec<u8> = (0..n).map(|_| rng.random_range(0..2)).collect();
        let sentiment: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
        let bits = |outs: Vec<Outcome>| match &outs[1].values {
            super::super::table::OutcomeValues::Continuous(r) => {
                r.iter().map(|v| v.to_bits()).collect::<Vec<u64>>()
            }
            _ => panic!("continuous"),
        };
        assert_eq!(
            bits(sentiment_outcomes(&scored, &sentiment, &got)),
            bits(sentiment_outcomes(&scored, &sentiment, &formatted))
        );
    }
}
