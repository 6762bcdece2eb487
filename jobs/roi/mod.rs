//! Initiative ROI: what each business initiative did, and whether it paid.
//!
//! Reads lake/initiatives, lake/initiative_assignments, lake/orders and
//! lake/feedback (every partition up to the run date, minus the copies
//! marts/superseded lists as replaced), marts/customer_features of the run
//! date (who is a consenting customer today) and, when present,
//! marts/customer_value of the run date (12-month CLTV); writes
//! marts/initiative_roi, and keeps the assignments' outcome sums for the
//! next night, which counts only the orders and answers since
//! ([`outcomes`]).
//!
//! Per initiative, by design:
//!
//! - **Randomized** (assignments with a treatment and a control arm):
//!   treatment − control on retention, repeat orders, NPS, 12-month CLTV
//!   and a pre-period balance check ([`effects`]); incremental value = CLTV
//!   uplift × treated customers, ROI = (incremental value − cost) / cost.
//!   Evidence: strong.
//! - **Difference in differences** ([`did`]): treatment assignments without
//!   a control arm (assigned against unassigned customers), or no
//!   assignments at all but a touchpoint named in `[roi] touchpoints` (answers
//!   about that touchpoint against the others). Evidence: weaker. No ROI:
//!   a survey scale or an order count has no money value attune could defend.
//! - Otherwise one row says why the initiative was not evaluated.
//!
//! Every interval is a 95% percentile bootstrap ([`bootstrap`]) with
//! `roi.bootstrap_resamples` resamples of customers within each group, seeded
//! from `roi.seed` and the initiative id. Groups below `min_group_size` are
//! withheld before any number leaves this module. Customer pseudonyms are
//! used only to join and group inside the queries; none is logged or written.

pub mod bootstrap;
pub mod did;
pub mod effects;
pub mod outcomes;
pub mod rows;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, NaiveDate};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, Float64Type, Int64Type, Schema, SchemaRef,
};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use serde::Serialize;
use tracing::{info, instrument, warn};

use self::did::{CustomerWindows, TouchpointAnswers};
use self::effects::{ArmOutcome, Cltv, Metric, Settings};
use self::rows::{ArmContext, DidGroups, InitiativeInfo, RoiRow};
use crate::catalog::{self, TableRef};
use crate::context::JobContext;
use crate::storage::partition_dir;
use crate::{Error, Result};

/// Lake columns this job reads directly (for the privacy job's
/// collected-but-unused check).
pub const LAKE_COLUMNS_READ: &[(&str, &str)] = &[
    ("initiatives", "initiative_id"),
    ("initiatives", "name"),
    ("initiatives", "started_on"),
    ("initiatives", "ended_on"),
    ("initiatives", "cost"),
    ("initiatives", "currency"),
    ("initiative_assignments", "customer_id"),
    ("initiative_assignments", "initiative_id"),
    ("initiative_assignments", "assigned_at"),
    ("initiative_assignments", "arm"),
    ("orders", "order_id"),
    ("orders", "customer_id"),
    ("orders", "ordered_at"),
    ("orders", "currency"),
    ("feedback", "response_id"),
    ("feedback", "customer_id"),
    ("feedback", "responded_at"),
    ("feedback", "survey_type"),
    ("feedback", "score"),
    ("feedback", "touchpoint"),
];

/// The lake tables the queries read; a missing one reads as empty.
const LAKE_TABLES: [&str; 4] = [
    "initiatives",
    "initiative_assignments",
    "orders",
    "feedback",
];

const INITIATIVES_SQL: &str = include_str!("initiatives.sql");
const ASSIGNMENTS_SQL: &str = include_str!("assignments.sql");
const ARMS_SQL: &str = include_str!("arms.sql");
const TOUCHPOINT_DID_SQL: &str = include_str!("touchpoint_did.sql");
const CUSTOMER_DID_SQL: &str = include_str!("customer_did.sql");

/// The interval level of every reported interval.
pub const LEVEL: f64 = 0.95;

/// What one initiative got.
#[derive(Debug, Clone, Serialize)]
pub struct InitiativeOutcome {
    pub initiative_id: String,
    /// randomized, difference_in_differences or none.
    pub design: String,
    /// strong, weaker or none.
    pub evidence: String,
    pub rows: usize,
    /// Rows whose effect is withheld or not computed.
    pub without_effect: usize,
}

/// What the ROI job did.
#[derive(Debug, Clone, Serialize)]
pub struct RoiOutcome {
    pub date: NaiveDate,
    /// Initiatives plus per-customer rows read from the queries (assigned
    /// customers, DiD customers).
    pub rows_in: u64,
    /// Rows written to marts/initiative_roi.
    pub rows_out: u64,
    pub warnings: Vec<String>,
    pub initiatives: Vec<InitiativeOutcome>,
    /// Whether marts/customer_value of the run date was there to read.
    pub cltv_available: bool,
    pub bootstrap_resamples: usize,
    /// Seconds per phase: read (the session, the initiatives, the CLTV
    /// currency, assignments to unlisted initiatives), outcomes (the
    /// assignments and the customers' outcomes), bootstrap (the estimates
    /// and their intervals), write.
    pub seconds: BTreeMap<String, f64>,
    /// The earlier night whose outcome sums were carried (only the orders
    /// and answers that entered since were counted), when one was.
    pub outcomes_carried_from: Option<NaiveDate>,
}

/// One initiative as the queries return it.
#[derive(Debug, Clone)]
struct Initiative {
    info: InitiativeInfo,
    treatment_rows: i64,
    control_rows: i64,
}

/// Runs the ROI job as of `date`.
#[instrument(skip_all, fields(job = "roi", run_id = %ctx.run_id))]
pub async fn run(ctx: &JobContext, date: NaiveDate) -> Result<RoiOutcome> {
    let storage = &ctx.storage;
    let cfg = &ctx.cfg.roi;
    let mut seconds = BTreeMap::new();
    let mut clock = Instant::now();
    // each phase's seconds, added up over the initiatives (a difference in
    // differences reads its customers between two bootstraps), and on a
    // terminal the phase that follows
    let mut lap = |name: &str, next: &str, clock: &mut Instant| {
        *seconds.entry(name.to_string()).or_insert(0.0) += clock.elapsed().as_secs_f64();
        *clock = Instant::now();
        crate::nightly::progress::step(next);
    };
    crate::nightly::progress::step("initiatives");
    for mart in ["customer_features", "superseded"] {
        if !storage
            .exists_prefix(&partition_dir("marts", mart, date))
            .await?
        {
            return Err(Error::MissingInput {
                what: format!("marts/{mart} for {date}"),
                hint: format!("run `attune transform --date {date}` first"),
            });
        }
    }
    let (session, tables) = catalog::session_with_all(storage).await?;
    for table in LAKE_TABLES {
        register_empty_if_missing(&session, ctx, &tables, table)?;
    }
    // the run date's list, through the helper the other jobs use: an empty
    // list plans no anti-join (a listing table of it read and hashed every
    // order id to remove nothing)
    crate::transform::superseded::register_published(&session, storage, date).await?;
    let cltv_missing = register_customer_value(&session, ctx, &tables, date).await?;
    let mut warnings = Vec::new();
    if let Some(why) = &cltv_missing {
        warnings.push(format!("CLTV rows not computed: {why}"));
    }

    let params = [
        ("run_date", date.to_string()),
        ("inactive_days", cfg.inactive_days.to_string()),
    ];
    let initiatives = read_initiatives(&session, &params).await?;
    let cltv_currency = if cltv_missing.is_none() {
        Some(read_cltv_currency(&session, &tables, date).await?)
    } else {
        None
    };
    let unlisted = unlisted_assignments(&session, date).await?;
    lap("read", "outcomes of the assigned customers", &mut clock);
    let (mut arms, counted) = read_arms(Some(ctx), &session, &params, date).await?;
    let mut rows_in = initiatives.len() as u64 + arms.values().map(|v| v.len() as u64).sum::<u64>();
    lap("outcomes", "bootstrap intervals", &mut clock);

    let mut out_rows = Vec::new();
    let mut outcomes = Vec::new();
    for init in &initiatives {
        let info = &init.info;
        let settings = Settings {
            resamples: cfg.bootstrap_resamples,
            seed: cfg.seed ^ fnv1a(&info.initiative_id),
            min_group_size: ctx.cfg.min_group_size,
            level: LEVEL,
        };
        let first = out_rows.len();
        let id = info.initiative_id.as_str();
        if info.started_on > date {
            out_rows.push(RoiRow::not_estimated(
                info,
                &format!("it starts on {}, after the run date", info.started_on),
            ));
        } else if init.treatment_rows > 0 && init.control_rows > 0 {
            let outcomes = arms.remove(id).unwrap_or_default();
            let assigned = (init.treatment_rows + init.control_rows) as usize;
            if outcomes.len() < assigned {
                warnings.push(format!(
                    "{id}: {} of {assigned} assigned customers are not customers on {date} (deleted or consent withdrawn) and are left out",
                    assigned - outcomes.len()
                ));
            }
            let unknown = outcomes
                .iter()
                .filter(|o| o.cltv == Cltv::Valued(None))
                .count();
            let gap = cltv_missing
                .clone()
                .or_else(|| (unknown > 0).then(|| unknown_cltv(unknown, outcomes.len())))
                .or_else(|| cltv_currency.as_ref().and_then(|c| currency_gap(info, c)));
            let estimates = effects::compare_arms(
                &outcomes,
                Some(info.cost),
                cltv_missing.is_none() && unknown == 0,
                &settings,
            );
            let cx = ArmContext {
                initiative: info,
                run_date: date,
                inactive_days: cfg.inactive_days,
                min_group_size: ctx.cfg.min_group_size,
                cltv_gap: gap.as_deref(),
            };
            for e in &estimates {
                if e.metric == Metric::PrePeriodOrders
                    && let Some((lo, hi)) = e.effect.and_then(|x| x.ci)
                    && (lo > 0.0 || hi < 0.0)
                {
                    warnings.push(format!(
                        "{id}: the arms differed in orders before assignment (balance check); the randomized comparison may be biased"
                    ));
                }
                out_rows.push(rows::randomized_row(e, &cx));
            }
            let follow_up = (date - info.started_on).num_days() + 1;
            if follow_up < i64::from(cfg.inactive_days) {
                warnings.push(format!(
                    "{id}: only {follow_up} days since the start, fewer than the {}-day retention window: retention is the share who ordered since assignment",
                    cfg.inactive_days
                ));
            }
        } else if init.treatment_rows > 0 {
            let window_days =
                ((date - info.started_on).num_days() + 1).min(i64::from(cfg.inactive_days));
            let rows = read_customer_windows(&session, info, date, window_days).await?;
            rows_in += rows.len() as u64;
            lap("outcomes", "bootstrap intervals", &mut clock);
            let (units, layout) = did::customer_units(&rows);
            for e in did::estimate(&units, &layout, &settings) {
                out_rows.push(rows::did_row(
                    &e,
                    info,
                    &DidGroups::Customers { window_days },
                    ctx.cfg.min_group_size,
                ));
            }
        } else if init.control_rows > 0 {
            out_rows.push(RoiRow::not_estimated(
                info,
                "its assignments have a control arm but nobody in a treatment arm",
            ));
        } else if let Some(tp) = cfg.touchpoints.get(id) {
            let answers = read_touchpoint_answers(&session, info, tp, date).await?;
            rows_in += answers.len() as u64;
            lap("outcomes", "bootstrap intervals", &mut clock);
            let (units, layout) = did::touchpoint_units(&answers);
            for e in did::estimate(&units, &layout, &settings) {
                out_rows.push(rows::did_row(
                    &e,
                    info,
                    &DidGroups::Touchpoint(tp.clone()),
                    ctx.cfg.min_group_size,
                ));
            }
        } else {
            out_rows.push(RoiRow::not_estimated(
                info,
                &format!(
                    "nobody was assigned to it and [roi] touchpoints does not name the touchpoint it changed, so there is nothing to compare it with (for a change at one touchpoint, set touchpoints = {{ {id} = \"in_store\" }} or another touchpoint)"
                ),
            ));
        }
        let mine = &out_rows[first..];
        let design = mine.first().map_or(rows::Design::None, |r| r.design);
        if design == rows::Design::None {
            warnings.push(format!("{id}: {}", mine[0].explanation));
        }
        outcomes.push(InitiativeOutcome {
            initiative_id: info.initiative_id.clone(),
            design: design.name().into(),
            evidence: design.evidence().into(),
            rows: mine.len(),
            without_effect: mine.iter().filter(|r| r.effect.is_none()).count(),
        });
        lap("bootstrap", "bootstrap intervals", &mut clock);
    }
    crate::nightly::progress::step("writing");
    if initiatives.is_empty() {
        warnings.push(format!("no initiatives known on {date}"));
    }
    warnings.extend(unlisted);
    for w in &warnings {
        warn!(warning = %w, "roi");
    }

    let batch = rows::to_batch(&out_rows)?;
    let rows_out = crate::mart::publish(
        storage,
        "initiative_roi",
        date,
        rows::schema(),
        std::slice::from_ref(&batch),
    )
    .await?;
    lap("write", "done", &mut clock);
    info!(
        initiatives = initiatives.len(),
        rows_in,
        rows_out,
        cltv_available = cltv_missing.is_none(),
        "initiative ROI written"
    );
    Ok(RoiOutcome {
        date,
        rows_in,
        rows_out,
        warnings,
        initiatives: outcomes,
        cltv_available: cltv_missing.is_none(),
        bootstrap_resamples: cfg.bootstrap_resamples,
        seconds,
        outcomes_carried_from: counted.carried_from,
    })
}

/// FNV-1a of the initiative id: each initiative gets its own bootstrap
/// stream, so adding an initiative does not move another's intervals.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Why the arms' CLTV is not compared when some of their customers bought
/// but have no lifetime value: counted as worth 0 they would drag their arm
/// down, and left out they would make the arms compare different people.
fn unknown_cltv(unknown: usize, customers: usize) -> String {
    format!(
        "{unknown} of the {customers} customers in the arms bought but have no lifetime value in marts/customer_value (a fit did not converge or left them out; see the value job's warnings)"
    )
}

/// The currency of the lifetime values in marts/customer_value.
#[derive(Debug, Clone, PartialEq)]
enum CltvCurrency {
    /// The one the value job modelled, or the only one the orders have.
    Known(String),
    /// No order has a currency: nobody bought, every value is 0 in any.
    NoOrders,
    /// Neither: the value job recorded none and the orders have several.
    Unknown,
}

/// Why the CLTV rows are not shown although CLTV is there: the values are
/// in another currency than the cost, or in one nobody recorded.
fn currency_gap(info: &InitiativeInfo, cltv: &CltvCurrency) -> Option<String> {
    // The row has one currency column, the cost's: a CLTV in another
    // currency would be shown under the wrong name.
    match cltv {
        CltvCurrency::NoOrders => None,
        CltvCurrency::Known(code) if *code == info.currency => None,
        CltvCurrency::Known(code) => Some(format!(
            "the cost is in {} but lifetime values are in {code}, the most common currency of the orders (give the initiative's cost in {code})",
            info.currency
        )),
        CltvCurrency::Unknown => Some(
            "the orders are in several currencies and marts/model_metrics has no value/clv/currency row for the date to say which one the lifetime values are in (re-run the value job)".into(),
        ),
    }
}

// --- Tables --------------------------------------------------------------------------

/// A lake table the export does not have (an unused source) reads as empty.
fn register_empty_if_missing(
    session: &SessionContext,
    ctx: &JobContext,
    tables: &[TableRef],
    table: &str,
) -> Result<()> {
    if tables.iter().any(|t| t.area == "lake" && t.name == table) {
        return Ok(());
    }
    let contract = ctx.contracts.get(table)?;
    let mut fields: Vec<Field> = contract
        .lake_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("dt", DataType::Date32, false));
    let schema = Arc::new(Schema::new(fields));
    session.register_table(table, Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
    Ok(())
}

/// `roi_customer_value(customer_id, cltv_12m)`: marts/customer_value of the
/// run date, or an empty table. Returns why CLTV is not available, if it is not.
async fn register_customer_value(
    session: &SessionContext,
    ctx: &JobContext,
    tables: &[TableRef],
    date: NaiveDate,
) -> Result<Option<String>> {
    let missing = if !tables
        .iter()
        .any(|t| t.area == "marts" && t.name == "customer_value")
    {
        Some("marts/customer_value does not exist yet (the value job has not run)".to_string())
    } else if !ctx
        .storage
        .exists_prefix(&partition_dir("marts", "customer_value", date))
        .await?
    {
        Some(format!(
            "marts/customer_value has no partition for {date} (the value job has not run for this date)"
        ))
    } else {
        let schema = session
            .table("customer_value")
            .await?
            .schema()
            .as_arrow()
            .clone();
        ["customer_id", "cltv_12m"]
            .iter()
            .find(|c| schema.field_with_name(c).is_err())
            .map(|c| format!("marts/customer_value has no {c} column"))
    };
    if missing.is_none() {
        let view = session
            .sql(&format!(
                "SELECT customer_id, CAST(cltv_12m AS DOUBLE) AS cltv_12m FROM customer_value WHERE dt = DATE '{date}'"
            ))
            .await?
            .into_view();
        session.register_table("roi_customer_value", view)?;
    } else {
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("cltv_12m", DataType::Float64, true),
        ]));
        session.register_table(
            "roi_customer_value",
            Arc::new(MemTable::try_new(schema, vec![vec![]])?),
        )?;
    }
    Ok(missing)
}

// --- Queries ---------------------------------------------------------------------------

/// Replaces `{name}` placeholders with values the job checked (dates,
/// integers, contract enum values, escaped literals), and refuses SQL with
/// one left over.
fn fill(template: &str, params: &[(&str, String)]) -> Result<String> {
    let mut sql = template.to_string();
    for (name, value) in params {
        sql = sql.replace(&format!("{{{name}}}"), value);
    }
    if let Some(at) = sql.find('{') {
        let end = sql[at..].find('}').map_or(sql.len(), |e| at + e + 1);
        return Err(Error::Internal(format!(
            "roi: placeholder {} left in a query",
            &sql[at..end]
        )));
    }
    Ok(sql)
}

/// A SQL string literal's contents: quotes doubled.
fn literal(s: &str) -> String {
    s.replace('\'', "''")
}

async fn query(
    session: &SessionContext,
    template: &str,
    params: &[(&str, String)],
) -> Result<Vec<RecordBatch>> {
    let sql = fill(template, params)?;
    Ok(session.sql(&sql).await?.collect().await?)
}

/// A result column cast to `ty` (string columns may come back as views).
fn column(batch: &RecordBatch, name: &str, ty: &DataType) -> Result<ArrayRef> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("roi: query result has no column {name}")))?;
    Ok(cast(col, ty)?)
}

fn strings(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>> {
    let a = column(batch, name, &DataType::Utf8)?;
    let a = a.as_string::<i32>();
    Ok((0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
        .collect())
}

fn floats(batch: &RecordBatch, name: &str) -> Result<Vec<Option<f64>>> {
    let a = column(batch, name, &DataType::Float64)?;
    let a = a.as_primitive::<Float64Type>();
    Ok((0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect())
}

fn ints(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>> {
    let a = column(batch, name, &DataType::Int64)?;
    let a = a.as_primitive::<Int64Type>();
    Ok((0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect())
}

fn dates(batch: &RecordBatch, name: &str) -> Result<Vec<Option<NaiveDate>>> {
    let a = column(batch, name, &DataType::Date32)?;
    let a = a.as_primitive::<Date32Type>();
    Ok((0..a.len())
        .map(|i| {
            if a.is_valid(i) {
                a.value_as_date(i)
            } else {
                None
            }
        })
        .collect())
}

fn required<T>(v: Option<T>, what: &str) -> Result<T> {
    v.ok_or_else(|| Error::Internal(format!("roi: {what} is NULL in a query result")))
}

async fn read_initiatives(
    session: &SessionContext,
    params: &[(&str, String)],
) -> Result<Vec<Initiative>> {
    let mut out = Vec::new();
    for b in query(session, INITIATIVES_SQL, params).await? {
        let ids = strings(&b, "initiative_id")?;
        let names = strings(&b, "name")?;
        let starts = dates(&b, "started_on")?;
        let costs = floats(&b, "cost")?;
        let currencies = strings(&b, "currency")?;
        let treatment = ints(&b, "treatment_rows")?;
        let control = ints(&b, "control_rows")?;
        for i in 0..b.num_rows() {
            out.push(Initiative {
                info: InitiativeInfo {
                    initiative_id: required(ids[i].clone(), "initiative_id")?,
                    name: required(names[i].clone(), "initiatives.name")?,
                    started_on: required(starts[i], "initiatives.started_on")?,
                    cost: required(costs[i], "initiatives.cost")?,
                    currency: required(currencies[i].clone(), "initiatives.currency")?,
                },
                treatment_rows: treatment[i].unwrap_or(0),
                control_rows: control[i].unwrap_or(0),
            });
        }
    }
    Ok(out)
}

/// One warning per initiative that has assignments up to `date` but no row
/// in lake/initiatives: without its start and cost it cannot be estimated,
/// and its customers would otherwise vanish without a word.
async fn unlisted_assignments(session: &SessionContext, date: NaiveDate) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT CAST(a.initiative_id AS VARCHAR) AS initiative, count(DISTINCT a.customer_id) AS customers \
         FROM initiative_assignments AS a \
         WHERE a.dt <= DATE '{date}' AND a.initiative_id IS NOT NULL AND NOT EXISTS ( \
             SELECT 1 FROM initiatives AS i WHERE i.initiative_id = a.initiative_id AND i.dt <= DATE '{date}') \
         GROUP BY a.initiative_id ORDER BY initiative"
    );
    let mut out = Vec::new();
    for b in session.sql(&sql).await?.collect().await? {
        let ids = strings(&b, "initiative")?;
        let customers = ints(&b, "customers")?;
        for (id, n) in ids.into_iter().zip(customers) {
            out.push(format!(
                "{}: {} customers are assigned to it, but lake/initiatives does not list it up to {date}, so it is not estimated (export the initiative with its start and cost)",
                id.unwrap_or_default(),
                n.unwrap_or(0)
            ));
        }
    }
    Ok(out)
}

/// Per initiative: the outcomes of its assigned customers, in customer
/// order, and how their sums were counted ([`outcomes::register_sums`],
/// which carries them from an earlier night when given `ctx`).
async fn read_arms(
    ctx: Option<&JobContext>,
    session: &SessionContext,
    params: &[(&str, String)],
    date: NaiveDate,
) -> Result<(BTreeMap<String, Vec<ArmOutcome>>, outcomes::Counted)> {
    register_assignments(session, params).await?;
    let rows = match outcomes::register_sums(ctx, session, params, date).await {
        Ok(counted) => query(session, ARMS_SQL, params)
            .await
            .map(|rows| (rows, counted)),
        Err(e) => Err(e),
    };
    // an assignment row per customer and initiative, kept no longer than
    // arms.sql needs it (the bootstraps that follow hold their own units)
    session.deregister_table("roi_assignment")?;
    session.deregister_table("roi_outcome_sums")?;
    let (rows, counted) = rows?;
    Ok((arm_outcomes(&rows)?, counted))
}

/// `roi_assignment`: the rows of assignments.sql, computed once and kept in
/// memory for arms.sql, which reads them three times (DataFusion plans a
/// CTE anew at every reference it has).
async fn register_assignments(session: &SessionContext, params: &[(&str, String)]) -> Result<()> {
    let df = session.sql(&fill(ASSIGNMENTS_SQL, params)?).await?;
    let planned: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    // the batches' own schema: the plan's may say nullable where they do not
    let schema = batches.first().map_or(planned, |b| b.schema());
    session.register_table(
        "roi_assignment",
        Arc::new(MemTable::try_new(schema, vec![batches])?),
    )?;
    Ok(())
}

/// The rows of arms.sql by initiative.
fn arm_outcomes(batches: &[RecordBatch]) -> Result<BTreeMap<String, Vec<ArmOutcome>>> {
    let mut out: BTreeMap<String, Vec<ArmOutcome>> = BTreeMap::new();
    for b in batches {
        let ids = strings(b, "initiative_id")?;
        let arms = strings(b, "arm")?;
        let retained = ints(b, "retained")?;
        let after = floats(b, "orders_after")?;
        let before = floats(b, "orders_before")?;
        let nps_total = floats(b, "nps_total")?;
        let nps_answers = floats(b, "nps_answers")?;
        let cltv = floats(b, "cltv_12m")?;
        let valued = ints(b, "valued")?;
        for i in 0..b.num_rows() {
            let id = required(ids[i].clone(), "initiative_id")?;
            out.entry(id).or_default().push(ArmOutcome {
                treated: arms[i].as_deref() == Some("treatment"),
                retained: retained[i].unwrap_or(0) > 0,
                orders_after: after[i].unwrap_or(0.0),
                orders_before: before[i].unwrap_or(0.0),
                nps_total: nps_total[i].unwrap_or(0.0),
                nps_answers: nps_answers[i].unwrap_or(0.0),
                cltv: if valued[i].unwrap_or(0) > 0 {
                    Cltv::Valued(cltv[i].filter(|v| v.is_finite()))
                } else {
                    Cltv::NeverBought
                },
            });
        }
    }
    Ok(out)
}

/// The currency the value job modelled lifetime values in (its
/// model_metrics row clv/currency for the date); without that row, the
/// orders' currency when they have only one.
async fn read_cltv_currency(
    session: &SessionContext,
    tables: &[TableRef],
    date: NaiveDate,
) -> Result<CltvCurrency> {
    if tables
        .iter()
        .any(|t| t.area == "marts" && t.name == "model_metrics")
    {
        let sql = format!(
            "SELECT DISTINCT CAST(key AS VARCHAR) AS currency FROM model_metrics \
             WHERE dt = DATE '{date}' AND job = 'value' AND model = 'clv' AND metric = 'currency' AND key IS NOT NULL"
        );
        let mut recorded = BTreeSet::new();
        for b in session.sql(&sql).await?.collect().await? {
            recorded.extend(strings(&b, "currency")?.into_iter().flatten());
        }
        if let Some(code) = recorded.pop_first() {
            return Ok(CltvCurrency::Known(code));
        }
    }
    let sql = format!(
        "SELECT DISTINCT currency FROM orders WHERE dt <= DATE '{date}' AND currency IS NOT NULL"
    );
    let mut seen = BTreeSet::new();
    for b in session.sql(&sql).await?.collect().await? {
        seen.extend(strings(&b, "currency")?.into_iter().flatten());
    }
    Ok(match (seen.pop_first(), seen.is_empty()) {
        (None, _) => CltvCurrency::NoOrders,
        (Some(only), true) => CltvCurrency::Known(only),
        (Some(_), false) => CltvCurrency::Unknown,
    })
}

async fn read_touchpoint_answers(
    session: &SessionContext,
    info: &InitiativeInfo,
    touchpoint: &str,
    date: NaiveDate,
) -> Result<Vec<TouchpointAnswers>> {
    // The touchpoint is one of the contract's values (checked in config),
    // so it needs no quoting; escaped anyway.
    let params = [
        ("run_date", date.to_string()),
        ("started_on", info.started_on.to_string()),
        ("touchpoint", literal(touchpoint)),
    ];
    let mut out = Vec::new();
    for b in query(session, TOUCHPOINT_DID_SQL, &params).await? {
        let customers = strings(&b, "customer_id")?;
        let surveys = strings(&b, "survey_type")?;
        let exposed = ints(&b, "exposed")?;
        let after = ints(&b, "in_after")?;
        let totals = floats(&b, "total")?;
        let answers = floats(&b, "answers")?;
        for i in 0..b.num_rows() {
            let metric = match surveys[i].as_deref() {
                Some("empathy") => Metric::EmpathyScore,
                Some("nps") => Metric::NetPromoterScore,
                _ => continue,
            };
            out.push(TouchpointAnswers {
                customer: required(customers[i].clone(), "customer_id")?,
                metric,
                exposed: exposed[i] == Some(1),
                after: after[i] == Some(1),
                total: totals[i].unwrap_or(0.0),
                answers: answers[i].unwrap_or(0.0),
            });
        }
    }
    Ok(out)
}

async fn read_customer_windows(
    session: &SessionContext,
    info: &InitiativeInfo,
    date: NaiveDate,
    window_days: i64,
) -> Result<Vec<CustomerWindows>> {
    let params = customer_did_params(info, date, window_days);
    customer_windows(&query(session, CUSTOMER_DID_SQL, &params).await?)
}

fn customer_did_params(
    info: &InitiativeInfo,
    date: NaiveDate,
    window_days: i64,
) -> [(&'static str, String); 5] {
    [
        ("run_date", date.to_string()),
        ("started_on", info.started_on.to_string()),
        (
            "before_from",
            (info.started_on - Duration::days(window_days)).to_string(),
        ),
        (
            "after_to",
            (info.started_on + Duration::days(window_days - 1)).to_string(),
        ),
        ("initiative_id", literal(&info.initiative_id)),
    ]
}

/// The rows of customer_did.sql.
fn customer_windows(batches: &[RecordBatch]) -> Result<Vec<CustomerWindows>> {
    let mut out = Vec::new();
    for b in batches {
        let exposed = ints(b, "exposed")?;
        let cols = [
            "orders_before",
            "orders_after",
            "nps_total_before",
            "nps_answers_before",
            "nps_total_after",
            "nps_answers_after",
        ]
        .map(|c| floats(b, c));
        let [ob, oa, ntb, nab, nta, naa] = cols;
        let (ob, oa, ntb, nab, nta, naa) = (ob?, oa?, ntb?, nab?, nta?, naa?);
        for i in 0..b.num_rows() {
            out.push(CustomerWindows {
                exposed: exposed[i] == Some(1),
                orders_before: ob[i].unwrap_or(0.0),
                orders_after: oa[i].unwrap_or(0.0),
                nps_total_before: ntb[i].unwrap_or(0.0),
                nps_answers_before: nab[i].unwrap_or(0.0),
                nps_total_after: nta[i].unwrap_or(0.0),
                nps_answers_after: naa[i].unwrap_or(0.0),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The row's currency column is the cost's: lifetime values in another
    /// currency are not shown under it.
    #[test]
    fn cltv_in_another_currency_than_the_cost_is_not_shown() {
        let info = InitiativeInfo {
            initiative_id: "I0001".into(),
            name: "Loyalty card".into(),
            started_on: NaiveDate::from_ymd_opt(2025, 3, 31).expect("date"),
            cost: 4500.0,
            currency: "GBP".into(),
        };
        let eur = CltvCurrency::Known("EUR".into());
        let Some(why) = currency_gap(&info, &eur) else {
            panic!("EUR values under a GBP cost must leave CLTV out");
        };
        assert!(why.contains("GBP") && why.contains("EUR"), "{why}");
        let gbp = CltvCurrency::Known("GBP".into());
        assert_eq!(currency_gap(&info, &gbp), None);
        let unknown = currency_gap(&info, &CltvCurrency::Unknown).expect("unknown");
        assert!(unknown.contains("value/clv/currency"), "{unknown}");
        assert_eq!(currency_gap(&info, &CltvCurrency::NoOrders), None);
    }

    #[test]
    fn placeholders_are_filled_or_refused() {
        let sql = fill(
            "SELECT * FROM t WHERE d = DATE '{run_date}' AND n < {inactive_days}",
            &[
                ("run_date", "2025-03-01".into()),
                ("inactive_days", "90".into()),
            ],
        )
        .expect("filled");
        assert_eq!(
            sql,
            "SELECT * FROM t WHERE d = DATE '2025-03-01' AND n < 90"
        );
        let err = fill("SELECT {oops}", &[]).expect_err("left over");
        assert!(err.to_string().contains("{oops}"));
        assert_eq!(literal("O'Brien's"), "O''Brien''s");
    }

    #[test]
    fn shipped_queries_need_only_the_params_the_job_gives() {
        let base = [
            ("run_date", "2025-03-01".to_string()),
            ("inactive_days", "90".into()),
        ];
        fill(INITIATIVES_SQL, &base).expect("initiatives");
        fill(ASSIGNMENTS_SQL, &base).expect("assignments");
        fill(ARMS_SQL, &base).expect("arms");
        let tp = [
            ("run_date", "2025-03-01".to_string()),
            ("started_on", "2025-02-01".into()),
            ("touchpoint", "in_store".into()),
        ];
        fill(TOUCHPOINT_DID_SQL, &tp).expect("touchpoint");
        let cu = [
            ("run_date", "2025-03-01".to_string()),
            ("started_on", "2025-02-01".into()),
            ("before_from", "2025-01-01".into()),
            ("after_to", "2025-03-01".into()),
            ("initiative_id", "I9".into()),
        ];
        fill(CUSTOMER_DID_SQL, &cu).expect("customer");
    }

    #[test]
    fn seeds_differ_per_initiative_and_are_stable() {
        assert_eq!(fnv1a("I0001"), fnv1a("I0001"));
        assert_ne!(fnv1a("I0001"), fnv1a("I0002"));
        // FNV-1a 64 of "a" (published test vector).
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }

    /// The outcome queries as they were before: arms.sql with the
    /// assignments as a CTE and the outcomes grouped by initiative and
    /// customer key, customer_did.sql on customer ids, both against the
    /// superseded list as a table of their own (see the fixtures' first lines).
    const ARMS_BEFORE_SQL: &str = include_str!("../../tests/fixtures/roi/arms_before.sql");
    const CUSTOMER_DID_BEFORE_SQL: &str =
        include_str!("../../tests/fixtures/roi/customer_did_before.sql");

    fn day(d: &str) -> NaiveDate {
        d.parse().expect("date")
    }

    fn epoch_days(d: NaiveDate) -> i32 {
        (d - day("1970-01-01")).num_days() as i32
    }

    fn texts(v: Vec<String>) -> ArrayRef {
        Arc::new(datafusion::arrow::array::StringArray::from(v))
    }

    fn days_array(v: Vec<i32>) -> ArrayRef {
        Arc::new(datafusion::arrow::array::Date32Array::from(v))
    }

    fn stamps(v: Vec<Option<i64>>) -> ArrayRef {
        Arc::new(datafusion::arrow::array::TimestampMicrosecondArray::from(v).with_timezone("UTC"))
    }

    /// A table of `columns` (nullable) in memory, registered as `name`.
    fn register(session: &SessionContext, name: &str, columns: Vec<(&str, ArrayRef)>) {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect();
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .expect("batch");
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).expect("table");
        session
            .register_table(name, Arc::new(table))
            .expect("register");
    }

    /// A seeded lake with what the outcome queries meet in practice:
    /// initiatives and assignments exported several times (the latest
    /// wins), exports after the run date, assignments without a time, to an
    /// unlisted initiative and of people who are no longer customers, orders
    /// and answers of strangers or dated after the run date, and copies a
    /// later export replaced, listed in the superseded list when `listed`
    /// (an empty list otherwise). The list is registered both ways: as
    /// `roi_superseded` for the queries before, through the transform's
    /// helper as `superseded` for the job's.
    pub(super) fn seeded_lake(seed: u64, listed: bool) -> SessionContext {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let session = SessionContext::new();
        crate::catalog::install_functions(&session);
        let run = day("2025-06-30");
        let ids: Vec<String> = (0..260)
            .map(|_| format!("{:032x}", rng.random::<u128>()))
            .collect();
        // 220 customers today, all 260 the day before
        let mut who = Vec::new();
        let mut dts = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if i < 220 {
                who.push(id.clone());
                dts.push(epoch_days(run));
            }
            who.push(id.clone());
            dts.push(epoch_days(run) - 1);
        }
        register(
            &session,
            "customer_features",
            vec![("customer_id", texts(who)), ("dt", days_array(dts))],
        );
        let init = ["I1", "I1", "I2", "I3"];
        let started = ["2025-02-15", "2025-03-01", "2025-05-01", "2025-07-15"];
        let exported = ["2025-02-01", "2025-02-20", "2025-04-01", "2025-06-01"];
        register(
            &session,
            "initiatives",
            vec![
                ("initiative_id", texts(init.map(String::from).to_vec())),
                (
                    "started_on",
                    days_array(started.map(|d| epoch_days(day(d))).to_vec()),
                ),
                (
                    "dt",
                    days_array(exported.map(|d| epoch_days(day(d))).to_vec()),
                ),
            ],
        );
        let micros = |d: i32, rng: &mut rand_xoshiro::Xoshiro256PlusPlus| {
            i64::from(d) * 86_400_000_000 + rng.random_range(0..86_400_000_000i64)
        };

        let (mut a_who, mut a_init, mut a_arm, mut a_at, mut a_dt) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for id in &ids {
            for initiative in ["I1", "I2", "I3", "I9"] {
                if rng.random_bool(0.45) {
                    continue;
                }
                // exports of one assignment on different days: the latest wins
                for export in 0..rng.random_range(1..=3i32) {
                    a_who.push(id.clone());
                    a_init.push(initiative.to_string());
                    let arm = if rng.random_bool(0.5) {
                        "treatment"
                    } else {
                        "control"
                    };
                    a_arm.push(arm.to_string());
                    let on = epoch_days(day("2025-03-01")) + rng.random_range(0..110i32);
                    a_at.push(rng.random_bool(0.85).then(|| micros(on, &mut rng)));
                    a_dt.push(
                        epoch_days(day("2025-02-20")) + 60 * export + rng.random_range(0..40i32),
                    );
                }
            }
        }
        register(
            &session,
            "initiative_assignments",
            vec![
                ("customer_id", texts(a_who)),
                ("initiative_id", texts(a_init)),
                ("arm", texts(a_arm)),
                ("assigned_at", stamps(a_at)),
                ("dt", days_array(a_dt)),
            ],
        );

        let strangers: Vec<String> = (0..30)
            .map(|_| format!("{:032x}", rng.random::<u128>()))
            .collect();
        let mut list: Vec<(&str, String, i32, i32)> = Vec::new();
        let (mut o_id, mut o_who, mut o_at, mut o_dt) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for k in 0..5000 {
            let who = if rng.random_bool(0.95) {
                &ids[rng.random_range(0..ids.len())]
            } else {
                &strangers[rng.random_range(0..strangers.len())]
            };
            let on = epoch_days(day("2024-12-01")) + rng.random_range(0..217i32);
            let at = micros(on, &mut rng);
            let dt = on + rng.random_range(0..3i32);
            let copies = if rng.random_bool(0.05) { 2 } else { 1 };
            for c in 0..copies {
                o_id.push(format!("o{k:05}"));
                o_who.push(who.clone());
                o_at.push(Some(at));
                o_dt.push(dt + 5 * c);
            }
            if copies == 2 && listed {
                list.push(("orders", format!("o{k:05}"), dt, dt + 5));
            }
        }
        register(
            &session,
            "orders",
            vec![
                ("order_id", texts(o_id)),
                ("customer_id", texts(o_who)),
                ("ordered_at", stamps(o_at)),
                ("dt", days_array(o_dt)),
            ],
        );

        let (mut f_id, mut f_who, mut f_at, mut f_type, mut f_score, mut f_dt) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for k in 0..3000 {
            let who = if rng.random_bool(0.95) {
                &ids[rng.random_range(0..ids.len())]
            } else {
                &strangers[rng.random_range(0..strangers.len())]
            };
            let on = epoch_days(day("2025-01-01")) + rng.random_range(0..186i32);
            let at = micros(on, &mut rng);
            let dt = on + rng.random_range(0..3i32);
            let kind = if rng.random_bool(0.7) {
                "nps"
            } else {
                "empathy"
            };
            let score = rng.random_range(0..=10i64);
            let copies = if rng.random_bool(0.05) { 2 } else { 1 };
            for c in 0..copies {
                f_id.push(format!("r{k:05}"));
                f_who.push(who.clone());
                f_at.push(Some(at));
                f_type.push(kind.to_string());
                f_score.push(score);
                f_dt.push(dt + 5 * c);
            }
            if copies == 2 && listed {
                list.push(("feedback", format!("r{k:05}"), dt, dt + 5));
            }
        }
        register(
            &session,
            "feedback",
            vec![
                ("response_id", texts(f_id)),
                ("customer_id", texts(f_who)),
                ("responded_at", stamps(f_at)),
                ("survey_type", texts(f_type)),
                (
                    "score",
                    Arc::new(datafusion::arrow::array::Int64Array::from(f_score)),
                ),
                ("dt", days_array(f_dt)),
            ],
        );

        let (mut v_who, mut v_cltv) = (Vec::new(), Vec::new());
        for id in &ids {
            if rng.random_bool(0.7) {
                v_who.push(id.clone());
                let cents = rng.random_range(0..100_000i64) as f64 / 100.0;
                v_cltv.push(rng.random_bool(0.9).then_some(cents));
            }
        }
        register(
            &session,
            "roi_customer_value",
            vec![
                ("customer_id", texts(v_who)),
                (
                    "cltv_12m",
                    Arc::new(datafusion::arrow::array::Float64Array::from(v_cltv)),
                ),
            ],
        );

        let list = RecordBatch::try_new(
            crate::transform::superseded::schema(),
            vec![
                texts(list.iter().map(|r| r.0.to_string()).collect()),
                texts(list.iter().map(|r| r.1.clone()).collect()),
                days_array(list.iter().map(|r| r.2).collect()),
                days_array(list.iter().map(|r| r.3).collect()),
            ],
        )
        .expect("list");
        let before = MemTable::try_new(list.schema(), vec![vec![list.clone()]]).expect("table");
        session
            .register_table("roi_superseded", Arc::new(before))
            .expect("register");
        let now = crate::transform::superseded::table(&list).expect("superseded");
        session.register_table("superseded", now).expect("register");
        session
    }

    fn text(batches: &[RecordBatch]) -> String {
        datafusion::arrow::util::pretty::pretty_format_batches(batches)
            .expect("text")
            .to_string()
    }

    /// Differential: on seeded lakes, with replaced copies listed and with
    /// an empty list (which plans no anti-join), the assignments kept in
    /// memory and the outcomes grouped by assignment row give the rows of
    /// arms.sql as it was, and customer_did.sql on customer keys the rows of
    /// its version on ids: every column, in the same order.
    #[tokio::test]
    async fn outcome_queries_give_the_rows_of_the_queries_before() {
        for (seed, listed) in [(1, true), (2, false), (3, true)] {
            let session = seeded_lake(seed, listed);
            let run = day("2025-06-30");
            let params = [
                ("run_date", run.to_string()),
                ("inactive_days", "60".to_string()),
            ];
            let before = query(&session, ARMS_BEFORE_SQL, &params)
                .await
                .expect("arms before");
            register_assignments(&session, &params)
                .await
                .expect("assignments");
            outcomes::register_sums(None, &session, &params, run)
                .await
                .expect("sums");
            let now = query(&session, ARMS_SQL, &params).await.expect("arms");
            assert_eq!(text(&now), text(&before), "seed {seed}");
            let outcomes = arm_outcomes(&now).expect("outcomes");
            assert_eq!(
                outcomes,
                arm_outcomes(&before).expect("outcomes before"),
                "seed {seed}"
            );
            let all: Vec<&ArmOutcome> = outcomes.values().flatten().collect();
            assert!(all.len() > 200, "seed {seed}: {} assigned", all.len());
            assert!(
                all.iter().any(|o| o.retained)
                    && all.iter().any(|o| o.orders_before > 0.0)
                    && all.iter().any(|o| o.nps_answers > 1.0)
                    && all.iter().any(|o| o.cltv == Cltv::NeverBought)
                    && all.iter().any(|o| o.cltv == Cltv::Valued(None)),
                "seed {seed}: the lake has every kind of outcome"
            );

            for (id, started) in [("I1", "2025-03-01"), ("I2", "2025-05-01")] {
                let info = InitiativeInfo {
                    initiative_id: id.into(),
                    name: id.into(),
                    started_on: day(started),
                    cost: 1.0,
                    currency: "EUR".into(),
                };
                let window_days = ((run - info.started_on).num_days() + 1).min(60);
                let params = customer_did_params(&info, run, window_days);
                let before = query(&session, CUSTOMER_DID_BEFORE_SQL, &params)
                    .await
                    .expect("windows before");
                let now = query(&session, CUSTOMER_DID_SQL, &params)
                    .await
                    .expect("windows");
                assert_eq!(text(&now), text(&before), "seed {seed}, {id}");
                let windows = customer_windows(&now).expect("windows");
                assert_eq!(
                    windows,
                    customer_windows(&before).expect("windows before"),
                    "seed {seed}, {id}"
                );
                assert!(
                    windows.iter().any(|w| w.exposed) && windows.iter().any(|w| !w.exposed),
                    "seed {seed}, {id}: both groups"
                );
            }
        }
    }
}
