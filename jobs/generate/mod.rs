//! Demo data: a bakery-café's nightly exports with planted, recorded truth.
//!
//! `generate` writes `landing/<table>/<YYYY-MM-DD>/` for every day of the
//! period, as a small business's tools would export them (CSV, gzipped CSV,
//! NDJSON), and `ground_truth.json` with what was planted. Each planted
//! effect exists so that one part of attune can be checked against a known
//! answer rather than against plausibility:
//!
//! - **Purchases** follow a BG/NBD process (rate λ ~ Gamma, dropout p ~ Beta)
//!   on a seasonal clock (busy December, quiet August, busier weekends,
//!   07:00–19:00): the lifetime-value and churn models can be scored against
//!   the true per-customer parameters in `ground_truth_customers.csv`.
//! - **Loyalty card** (I0001) is randomized with a control arm and lowers the
//!   dropout probability of the treated: the ROI job must find the uplift.
//!   **Barista training** (I0002) has no control arm: a naive before/after
//!   comparison is confounded by season, which the report must say.
//! - **Biases** the fairness audit must find: customers aged 65+ are routed
//!   to the bot more often and wait longer; the east region gets smaller
//!   discounts; email replies are colder. And one it must *not* find: es/de
//!   customers score exactly like everyone else, so a sentiment gap by
//!   language is the instrument's bias, not the customers'.
//! - **Privacy**: ~3% of customers decline analytics (all their rows must go),
//!   undeclared columns carry personal data (`notes`, `card_last4`,
//!   `respondent_email`), and ~1% of free texts leak an e-mail address, phone
//!   number, Luhn-valid card number, IBAN or IP address for the redactor.
//! - **Dirt**: ~0.5% of rows carry exactly one defect of a known kind, some
//!   rows are exact duplicates, and some days have an extra 0-byte file, so
//!   ingest's accounting (read = written + quarantined + consent-excluded +
//!   duplicates) can be checked row for row.
//!
//! The simulation runs day by day on one thread (calendar queue, bounded
//! memory) while a second thread formats and writes the day before; web
//! sessions, a large share of the bytes, are written by the simulating thread
//! to balance the two. The simulation, the texts and each table's defects
//! draw from separate seeded streams, so the same parameters always give the
//! same bytes however the threads interleave.

mod dirty;
mod people;
mod row;
mod sim;
mod text;
mod truth;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use chrono::NaiveDate;

use self::row::{push_date, push_fixed};
use self::sim::Sim;
pub use self::truth::{
    BiasTruth, CustomersTruth, GroundTruth, InitiativeTruth, ParamsTruth, PurchaseTruth, TableTruth,
};
use self::truth::{Mean, round4};
use self::write::{SessionWriter, TABLES, Writer};
use crate::{Error, Result};

/// What to generate and where.
#[derive(Debug, Clone)]
pub struct GenerateParams {
    /// Data root: `landing/` and `ground_truth.json` go here.
    pub out: PathBuf,
    /// Customers over the whole period (about a third exist on day 1).
    pub customers: u64,
    /// Days of exports, starting at `start`.
    pub days: u32,
    /// The same seed gives the same bytes.
    pub seed: u64,
    pub start: NaiveDate,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            out: PathBuf::from("."),
            customers: 5000,
            days: 365,
            seed: 42,
            start: NaiveDate::from_ymd_opt(2025, 1, 1).expect("2025-01-01 is a date"),
        }
    }
}

/// Largest customer count the `C0000001` id format holds.
const MAX_CUSTOMERS: u64 = 9_999_999;

/// Writes the demo exports and `ground_truth.json` under `params.out`.
pub fn generate(params: &GenerateParams) -> Result<GroundTruth> {
    if params.customers == 0 || params.customers > MAX_CUSTOMERS {
        return Err(Error::Config(format!(
            "generate: customers must be 1 to {MAX_CUSTOMERS}, got {}",
            params.customers
        )));
    }
    if params.days == 0 || params.days > 3660 {
        return Err(Error::Config(format!(
            "generate: days must be 1 to 3660, got {}",
            params.days
        )));
    }
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("1970-01-01 is a date");
    let start_epoch_day = (params.start - epoch).num_days();
    let customers = params.customers as u32;
    std::fs::create_dir_all(params.out.join("landing"))
        .map_err(|e| Error::io(params.out.join("landing"), e))?;

    let mut sim = Sim::new(params.seed, customers, params.days, start_epoch_day);
    let writer = Writer::new(
        &params.out,
        params.seed,
        customers,
        params.days,
        start_epoch_day,
    );
    let mut sessions_out = SessionWriter::new(&params.out, params.seed, start_epoch_day);
    let writer = std::thread::scope(|s| -> Result<Writer> {
        // Two days in flight: enough to keep both threads busy, and memory
        // stays a few days of events.
        let (tx, rx) = sync_channel::<sim::DayBatch>(2);
        let handle = s.spawn(move || -> Result<Writer> {
            let mut writer = writer;
            for batch in rx {
                writer.write_day(batch)?;
            }
            Ok(writer)
        });
        let mut failed = None;
        for d in 0..params.days {
            let mut batch = sim.step(d);
            let sessions = std::mem::take(&mut batch.sessions);
            let consent = |c: u32| sim.custs[c as usize].consent;
            if let Err(e) = sessions_out.write_day(d, &sessions, consent) {
                failed = Some(e);
                break;
            }
            if tx.send(batch).is_err() {
                break; // the writer stopped on an error: join reports it
            }
        }
        drop(tx);
        let writer = handle
            .join()
            .map_err(|_| Error::Internal("generate: the writer thread panicked".into()))??;
        match failed {
            Some(e) => Err(e),
            None => Ok(writer),
        }
    })?;
    sim.finish();
    let per_customer = "ground_truth_customers.csv";
    write_customer_truth(&sim, &params.out.join(per_customer))?;

    let truth = assemble(params, &sim, writer, sessions_out.finish(), per_customer);
    let path = params.out.join("ground_truth.json");
    let mut json = serde_json::to_vec_pretty(&truth)
        .map_err(|e| Error::Internal(format!("generate: ground truth is not JSON: {e}")))?;
    json.push(b'\n');
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    Ok(truth)
}

fn date_string(epoch_day: i64) -> String {
    let mut v = Vec::with_capacity(10);
    push_date(&mut v, epoch_day);
    String::from_utf8(v).expect("dates are ASCII")
}

fn share(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        round4(num as f64 / den as f64)
    }
}

fn map<const N: usize>(pairs: [(&str, f64); N]) -> BTreeMap<String, f64> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn assemble(
    params: &GenerateParams,
    sim: &Sim,
    writer: Writer,
    sessions: TableTruth,
    per_customer: &str,
) -> GroundTruth {
    let (mut tables, rz, pii) = writer.finish();
    tables.insert(write::WEB_SESSIONS, sessions);
    let s = &sim.summary;
    let start = sim.start_epoch_day;
    let days = i64::from(params.days);
    let total = sim.custs.len() as u64;

    let mut lambda = Mean::default();
    let mut p = Mean::default();
    let mut orders_in_period = Mean::default();
    for c in &sim.custs {
        lambda.add(f64::from(c.lambda));
        p.add(f64::from(c.p));
        orders_in_period.add(f64::from(c.orders));
    }

    let loyalty_day = sim.loyalty_day;
    let window = params.days.min(90);
    let t_share = share(rz.arm_retained[1], rz.arm_customers[1]);
    let c_share = share(rz.arm_retained[2], rz.arm_customers[2]);
    let t_all = share(s.treatment_retained, s.treatment);
    let c_all = share(s.control_retained, s.control);
    let mut initiatives = vec![InitiativeTruth {
        initiative_id: "I0001".into(),
        name: "Loyalty card".into(),
        started_on: date_string(start + i64::from(loyalty_day)),
        ended_on: None,
        cost: sim::LOYALTY_COST_CENTS as f64 / 100.0,
        currency: "EUR".into(),
        control_arm: true,
        description: format!(
            "On its start day every customer with at least one order so far was randomized {:.0}/{:.0} to treatment or control; from then on a treated customer's dropout probability after each purchase is multiplied by {}. Realized uplift = share of treatment minus share of control customers with at least one order in the last {window} days, over customers whose assignment row ingest keeps (clean and consenting) and their kept orders.",
            sim::LOYALTY_TREATMENT_SHARE * 100.0,
            (1.0 - sim::LOYALTY_TREATMENT_SHARE) * 100.0,
            sim::LOYALTY_DROPOUT_FACTOR
        ),
        design: map([
            ("treatment_share", sim::LOYALTY_TREATMENT_SHARE),
            ("dropout_multiplier_treatment", sim::LOYALTY_DROPOUT_FACTOR),
            ("start_day_index", f64::from(loyalty_day)),
            ("retention_window_days", f64::from(window)),
        ]),
        realized: map([
            ("treatment_customers", rz.arm_customers[1] as f64),
            ("control_customers", rz.arm_customers[2] as f64),
            ("treatment_retained_share", t_share),
            ("control_retained_share", c_share),
            ("retention_uplift", round4(t_share - c_share)),
            ("all_rows_treatment_customers", s.treatment as f64),
            ("all_rows_control_customers", s.control as f64),
            ("all_rows_retention_uplift", round4(t_all - c_all)),
        ]),
    }];
    if sim.training_day != loyalty_day {
        let td = sim.training_day;
        initiatives.push(InitiativeTruth {
            initiative_id: "I0002".into(),
            name: "Barista empathy training".into(),
            started_on: date_string(start + i64::from(td)),
            ended_on: Some(date_string(start + i64::from(td + sim::TRAINING_DAYS - 1))),
            cost: sim::TRAINING_COST_CENTS as f64 / 100.0,
            currency: "EUR".into(),
            control_arm: false,
            description: format!(
                "No control arm. From its start day, SERVQUAL empathy answers about the in-store touchpoint rise by {} on the latent scale (about +0.6 points on 1-7); other touchpoints are untouched and serve as the comparison. Before/after means also move with season and customer mix.",
                sim::TRAINING_EFFECT
            ),
            design: map([
                ("empathy_latent_shift_in_store", sim::TRAINING_EFFECT),
                ("start_day_index", f64::from(td)),
            ]),
            realized: map([
                ("in_store_empathy_before", round4(rz.empathy_in_store[0].value())),
                ("in_store_empathy_after", round4(rz.empathy_in_store[1].value())),
                ("other_empathy_before", round4(rz.empathy_elsewhere[0].value())),
                ("other_empathy_after", round4(rz.empathy_elsewhere[1].value())),
                ("in_store_rows_before", rz.empathy_in_store[0].n as f64),
                ("in_store_rows_after", rz.empathy_in_store[1].n as f64),
            ]),
        });
    }

    let group = |age: usize| -> BTreeMap<String, f64> {
        let n = rz.tickets_by_age[age];
        map([
            ("tickets", n as f64),
            ("bot_share", share(rz.handled_by_age[age][1], n)),
            ("bot_then_human_share", share(rz.handled_by_age[age][2], n)),
            ("human_share", share(rz.handled_by_age[age][0], n)),
            (
                "mean_first_response_hours",
                round4(rz.wait_hours_by_age[age].value()),
            ),
        ])
    };
    let mut biases = vec![BiasTruth {
        id: "bot_routing_age".into(),
        description: format!(
            "Customers aged 65 or more (at the start date) are routed to the bot {:.0}% of the time versus {:.0}% for everyone else, and wait {}x as long for the first response.",
            sim::BOT_SHARE_65 * 100.0,
            sim::BOT_SHARE_OTHERS * 100.0,
            sim::WAIT_FACTOR_65
        ),
        table: "tickets".into(),
        attribute: "age_band (start year minus birth_year)".into(),
        group: "65+".into(),
        reference: "under_65".into(),
        outcome: "handled_by = bot; first_response_at - created_at".into(),
        planted: map([
            ("bot_share_65_plus", sim::BOT_SHARE_65),
            ("bot_share_others", sim::BOT_SHARE_OTHERS),
            ("bot_then_human_share", sim::BOT_THEN_HUMAN),
            (
                "first_response_wait_multiplier_65_plus",
                sim::WAIT_FACTOR_65,
            ),
        ]),
        realized: [
            ("65+".to_string(), group(1)),
            ("under_65".to_string(), group(0)),
        ]
        .into_iter()
        .collect(),
    }];
    biases.push(BiasTruth {
        id: "discount_region".into(),
        description: format!(
            "Offers to customers in the east region get a mean discount_pct of {} against {} elsewhere (normal, sd {}, clamped to 0-50), whoever decided.",
            sim::OFFER_PCT_EAST,
            sim::OFFER_PCT_OTHERS,
            sim::OFFER_PCT_SD
        ),
        table: "offers".into(),
        attribute: "region".into(),
        group: "east".into(),
        reference: "north, south, west, central".into(),
        outcome: "discount_pct".into(),
        planted: map([
            ("mean_discount_pct_east", sim::OFFER_PCT_EAST),
            ("mean_discount_pct_others", sim::OFFER_PCT_OTHERS),
        ]),
        realized: people::REGIONS
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let m = rz.offer_pct_by_region[i];
                (
                    r.to_string(),
                    map([("offers", m.n as f64), ("mean_discount_pct", round4(m.value()))]),
                )
            })
            .collect(),
    });
    biases.push(BiasTruth {
        id: "language_sentiment_instrument".into(),
        description: "Customers writing in Spanish or German score exactly like English speakers (same latent satisfaction, same score model); only the language of their comments differs. Any gap in measured sentiment or in sentiment-based NPS by language is a bias of the measuring instrument, not of the customers.".into(),
        table: "feedback".into(),
        attribute: "language".into(),
        group: "es, de".into(),
        reference: "en".into(),
        outcome: "NPS score (and the sentiment of the comment)".into(),
        planted: map([("score_shift_es", 0.0), ("score_shift_de", 0.0)]),
        realized: people::LANGS
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let m = rz.nps_by_lang[i];
                (
                    l.to_string(),
                    map([
                        ("nps_responses", m.n as f64),
                        ("mean_nps_score", round4(m.value())),
                        ("promoter_share", share(rz.promoters_by_lang[i], m.n)),
                        ("detractor_share", share(rz.detractors_by_lang[i], m.n)),
                        ("commented_share", share(rz.commented_nps_by_lang[i], m.n)),
                    ]),
                )
            })
            .collect(),
    });
    biases.push(BiasTruth {
        id: "reply_warmth_channel".into(),
        description: format!(
            "First replies on the email channel are warm (apology, acknowledgement, thanks) {:.0}% of the time versus {:.0}% on chat and {:.0}% on phone; cold replies state policy and shift blame.",
            sim::WARM_BY_CHANNEL[0] * 100.0,
            sim::WARM_BY_CHANNEL[1] * 100.0,
            sim::WARM_BY_CHANNEL[2] * 100.0
        ),
        table: "tickets".into(),
        attribute: "channel".into(),
        group: "email".into(),
        reference: "chat, phone".into(),
        outcome: "reply tone (warm or cold)".into(),
        planted: map([
            ("warm_share_email", sim::WARM_BY_CHANNEL[0]),
            ("warm_share_chat", sim::WARM_BY_CHANNEL[1]),
            ("warm_share_phone", sim::WARM_BY_CHANNEL[2]),
        ]),
        realized: sim::TICKET_CHANNELS
            .iter()
            .enumerate()
            .map(|(i, ch)| {
                let (n, warm) = rz.warm_by_channel[i];
                (
                    ch.to_string(),
                    map([("tickets", n as f64), ("warm_share", share(warm, n))]),
                )
            })
            .collect(),
    });

    let mut pii_map = BTreeMap::new();
    for (i, col) in [
        "feedback.comment",
        "tickets.message",
        "reviews.text",
        "customers.notes",
    ]
    .iter()
    .enumerate()
    {
        let kinds: BTreeMap<String, u64> = text::Pii::ALL
            .iter()
            .enumerate()
            .filter(|(k, _)| pii[i][*k] > 0)
            .map(|(k, kind)| (kind.code().to_string(), pii[i][k]))
            .collect();
        pii_map.insert(col.to_string(), kinds);
    }

    GroundTruth {
        generator: "attune demo bakery-café v1".into(),
        params: ParamsTruth {
            customers: params.customers,
            days: params.days,
            seed: params.seed,
            start: date_string(start),
            end: date_string(start + days - 1),
        },
        tables: TABLES
            .iter()
            .zip(tables)
            .map(|(def, t)| (def.name.to_string(), t))
            .collect(),
        customers: CustomersTruth {
            total,
            existing_at_start: s.existing,
            signed_up_in_period: total - s.existing,
            aged_65_plus: s.aged_65,
            by_language: people::LANGS
                .iter()
                .zip(s.by_lang)
                .map(|(l, n)| (l.to_string(), n))
                .collect(),
            by_region: people::REGIONS
                .iter()
                .zip(s.by_region)
                .map(|(r, n)| (r.to_string(), n))
                .collect(),
        },
        opted_out_customers: s.opted_out,
        opted_out_share: share(s.opted_out, total),
        purchase_process: PurchaseTruth {
            model: "BG/NBD: while alive, purchases arrive as a Poisson process with rate lambda per average day on a seasonal clock; after each purchase the customer drops out for good with probability p".into(),
            lambda_gamma_shape: sim::LAMBDA_SHAPE,
            lambda_gamma_scale: sim::LAMBDA_SCALE,
            dropout_beta_a: sim::DROPOUT_A,
            dropout_beta_b: sim::DROPOUT_B,
            purchase_at_signup: sim::BUY_AT_SIGNUP,
            basket_mean_gamma_shape: sim::BASKET_SHAPE,
            basket_mean_gamma_scale: sim::BASKET_SCALE,
            opening_hours: "07:00-19:00".into(),
            weekday_factors: sim::WEEKDAY_FACTORS.to_vec(),
            month_factors: sim::MONTH_FACTORS.to_vec(),
            closed_on: vec!["12-25".into()],
            realized: map([
                ("orders", s.orders as f64),
                ("mean_lambda", round4(lambda.value())),
                ("mean_p", round4(p.value())),
                ("orders_per_customer", round4(orders_in_period.value())),
                ("alive_at_end_share", share(s.alive_at_end, total)),
                ("pre_start_orders_not_exported", s.pre_start_orders as f64),
            ]),
        },
        initiatives,
        biases,
        pii_in_free_text: pii_map,
        per_customer_file: per_customer.to_string(),
        notes: vec![
            "Realized values count only rows ingest should keep: clean rows, first copies, of consenting or anonymous customers.".into(),
            "A defective customers row is an extra record written before the customer's clean row, so every customer's consent decision stays readable.".into(),
            "Dirty rows carry exactly one defect each, checked in the order UTF-8, field count or JSON syntax, required, type, timestamp, enum, range.".into(),
            "tickets.ndjson of a day without tickets is a 0-byte file and counts in empty_files.".into(),
        ],
    }
}

/// The true per-customer parameters, for scoring CLV and churn models.
fn write_customer_truth(sim: &Sim, path: &Path) -> Result<()> {
    use std::io::Write as _;
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut buf = Vec::with_capacity(1 << 16);
    buf.extend_from_slice(b"customer_id,signup_date,lambda_per_day,dropout_p,basket_mean_eur,satisfaction_latent,consent_analytics,language,region,aged_65_plus,loyalty_arm,orders_in_period,last_order_date,alive_at_end\n");
    for (i, c) in sim.custs.iter().enumerate() {
        if buf.len() > 60_000 {
            w.write_all(&buf).map_err(|e| Error::io(path, e))?;
            buf.clear();
        }
        row::push_id(&mut buf, "C", i as u64 + 1, 7);
        buf.push(b',');
        push_date(&mut buf, sim.start_epoch_day + i64::from(c.signup_day));
        buf.push(b',');
        push_fixed(&mut buf, f64::from(c.lambda), 6);
        buf.push(b',');
        push_fixed(&mut buf, f64::from(c.p), 6);
        buf.push(b',');
        push_fixed(&mut buf, f64::from(c.basket), 2);
        buf.push(b',');
        push_fixed(&mut buf, f64::from(c.sat), 3);
        buf.push(b',');
        buf.extend_from_slice(if c.consent { b"true," } else { b"false," });
        buf.extend_from_slice(people::LANGS[usize::from(c.lang)].as_bytes());
        buf.push(b',');
        buf.extend_from_slice(people::REGIONS[usize::from(c.region)].as_bytes());
        buf.push(b',');
        buf.extend_from_slice(if c.age65 { b"true," } else { b"false," });
        buf.extend_from_slice(match c.arm {
            sim::ARM_TREATMENT => b"treatment,".as_slice(),
            sim::ARM_CONTROL => b"control,".as_slice(),
            _ => b",".as_slice(),
        });
        buf.extend_from_slice(itoa::Buffer::new().format(c.orders).as_bytes());
        buf.push(b',');
        if c.last_order_day >= 0 {
            push_date(&mut buf, sim.start_epoch_day + i64::from(c.last_order_day));
        }
        buf.push(b',');
        buf.extend_from_slice(if c.alive { b"true\n" } else { b"false\n" });
    }
    w.write_all(&buf).map_err(|e| Error::io(path, e))?;
    w.flush().map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests;
