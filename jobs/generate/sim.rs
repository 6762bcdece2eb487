//! The business simulation: who buys when, and what follows a purchase.
//!
//! Day by day with a calendar queue: each living customer sits in the bucket
//! of the day of their next purchase, and follow-ups (survey answers,
//! tickets, reviews) wait in a ring of the next few days. Memory is the
//! customer table plus one day of events, whatever the number of days.
//!
//! Purchases follow a BG/NBD process on a seasonal clock: customer *i* buys
//! at rate λᵢ per average day (λ ~ Gamma), and after each purchase drops out
//! for good with probability pᵢ (p ~ Beta). "Average day" time is stretched
//! by the day's intensity (month × weekday, closed on 25 December), so
//! December is busy and August quiet without changing λ's meaning.

use rand::Rng;
use rand_distr::{Beta, Binomial, Distribution, Exp1, Gamma, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::people;

// --- Planted parameters (recorded in the ground truth) -----------------------

pub const LAMBDA_SHAPE: f64 = 0.9;
/// Mean λ = 0.9 × 0.25 ≈ 0.23 a day: a regular comes in more than once a
/// week, which is what a bakery-café lives on (about 30 orders per customer
/// over two years).
pub const LAMBDA_SCALE: f64 = 0.25;
/// Mean dropout chance per purchase 0.7 / 14.7 ≈ 5%: most regulars stay a year or more.
pub const DROPOUT_A: f64 = 0.7;
pub const DROPOUT_B: f64 = 14.0;
pub const BUY_AT_SIGNUP: f64 = 0.6;
pub const BASKET_SHAPE: f64 = 2.2;
pub const BASKET_SCALE: f64 = 4.5;
/// Share of customers who already exist on day 1.
pub const EXISTING_SHARE: f64 = 0.35;
/// Existing customers signed up within this many days before the start.
pub const PRE_DAYS: i32 = 730;
pub const OPT_OUT: f64 = 0.03;

/// Treatment arm: per-purchase dropout probability × this, from the start day.
pub const LOYALTY_DROPOUT_FACTOR: f64 = 0.6;
pub const LOYALTY_TREATMENT_SHARE: f64 = 0.5;
pub const LOYALTY_COST_CENTS: u64 = 450_000;
pub const TRAINING_COST_CENTS: u64 = 180_000;
pub const TRAINING_DAYS: u32 = 14;
/// Empathy item scores at the in-store touchpoint rise by this (latent units).
pub const TRAINING_EFFECT: f64 = 0.6;

pub const BOT_SHARE_65: f64 = 0.60;
pub const BOT_SHARE_OTHERS: f64 = 0.25;
pub const BOT_THEN_HUMAN: f64 = 0.12;
pub const WAIT_FACTOR_65: f64 = 2.0;

pub const OFFER_PCT_EAST: f64 = 8.0;
pub const OFFER_PCT_OTHERS: f64 = 15.0;
pub const OFFER_PCT_SD: f64 = 4.0;

/// Chance a reply is warm, per ticket channel (email, chat, phone).
pub const WARM_BY_CHANNEL: [f64; 3] = [0.30, 0.85, 0.80];

pub const MONTH_FACTORS: [f64; 12] = [
    0.92, 0.95, 1.0, 1.02, 1.03, 0.97, 0.82, 0.78, 1.0, 1.03, 1.08, 1.30,
];
pub const WEEKDAY_FACTORS: [f64; 7] = [0.85, 0.88, 0.92, 0.97, 1.08, 1.25, 1.15];
/// Relative custom per opening hour, 07:00 to 18:00 (the café closes at 19:00).
const HOUR_WEIGHTS: [f64; 12] = [
    0.9, 1.7, 1.4, 1.0, 0.9, 1.35, 1.25, 0.75, 0.85, 0.95, 0.8, 0.5,
];
pub const OPEN_HOUR: u32 = 7;

const Q_SURVEY: f64 = 0.09;
const Q_SURVEY_ANSWERED: f64 = 0.55;
const Q_TICKET: f64 = 0.065;
const Q_REVIEW: f64 = 0.005;
const Q_OFFER: f64 = 0.065;
const Q_BROWSE: f64 = 0.06;
const Q_TICKET_SURVEY: f64 = 0.3;
const ANONYMOUS_REVIEW: f64 = 0.4;

/// Follow-ups are scheduled at most this many days ahead.
const RING: usize = 8;

pub const ARM_NONE: u8 = 0;
pub const ARM_TREATMENT: u8 = 1;
pub const ARM_CONTROL: u8 = 2;

/// Survey types, in the contract's order.
pub const SURVEYS: [&str; 4] = ["nps", "csat", "ces", "empathy"];
pub const NPS: u8 = 0;
pub const CSAT: u8 = 1;
pub const CES: u8 = 2;
pub const EMPATHY: u8 = 3;
pub const TOUCHPOINTS: [&str; 4] = ["in_store", "online", "delivery", "support"];
pub const ORDER_CHANNELS: [&str; 3] = ["in_store", "online", "app"];
pub const TICKET_CHANNELS: [&str; 3] = ["email", "chat", "phone"];
pub const HANDLERS: [&str; 3] = ["human", "bot", "bot_then_human"];
pub const PLATFORMS: [&str; 3] = ["google", "tripadvisor", "website"];
pub const OFFER_TYPES: [&str; 3] = ["discount", "free_item", "bundle"];
pub const DECIDERS: [&str; 3] = ["rule", "model", "human"];

/// Marks an anonymous row (reviews, web sessions).
pub const ANON: u32 = u32::MAX;

// --- Records handed to the writer --------------------------------------------

#[derive(Debug, Clone)]
pub struct CustomerRec {
    pub cust: u32,
    pub signup_ts: i64,
    pub birth_year: u16,
    pub gender: u8,
    pub lang: u8,
    pub region: u8,
    pub postal: u32,
    pub consent: bool,
    pub age65: bool,
}

#[derive(Debug, Clone)]
pub struct OrderRec {
    pub cust: u32,
    pub ts: i64,
    pub total_cents: u32,
    pub discount_cents: u32,
    pub channel: u8,
    pub items: u8,
    pub refunded: bool,
    pub card_last4: u16,
}

#[derive(Debug, Clone)]
pub struct FeedbackRec {
    pub cust: u32,
    pub ts: i64,
    pub survey: u8,
    pub score: u8,
    /// SERVQUAL empathy item 1–5; 0 for other surveys.
    pub item: u8,
    pub touchpoint: u8,
}

#[derive(Debug, Clone)]
pub struct TicketRec {
    pub cust: u32,
    pub created: i64,
    pub first_response: i64,
    pub resolved: Option<i64>,
    pub channel: u8,
    pub handled_by: u8,
    pub topic: u8,
    /// 1–5, or 0 when the customer gave no rating.
    pub satisfaction: u8,
    pub follow_up: Option<i64>,
    pub reopened: bool,
    pub warm: bool,
    pub upset: bool,
}

#[derive(Debug, Clone)]
pub struct ReviewRec {
    /// The author; [`ANON`] is never used here (see `anonymous`).
    pub cust: u32,
    pub anonymous: bool,
    pub ts: i64,
    pub platform: u8,
    pub rating: u8,
    pub replied: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct SessionRec {
    /// [`ANON`] for anonymous sessions.
    pub cust: u32,
    pub ts: i64,
    pub page_views: u16,
    pub duration_s: u32,
    pub bounced: bool,
    pub converted: bool,
    pub ip: u32,
    pub user_agent: u8,
}

#[derive(Debug, Clone)]
pub struct OfferRec {
    pub cust: u32,
    pub ts: i64,
    pub offer_type: u8,
    /// Discount in tenths of a percent.
    pub pct_tenths: u16,
    pub decided_by: u8,
}

#[derive(Debug, Clone)]
pub struct InitiativeRec {
    pub id: &'static str,
    pub name: &'static str,
    pub started_day: u32,
    pub ended_day: Option<u32>,
    pub cost_cents: u64,
    pub description: &'static str,
}

#[derive(Debug, Clone)]
pub struct AssignmentRec {
    pub cust: u32,
    pub ts: i64,
    pub arm: u8,
}

/// Everything that happened on one day, each table sorted by time.
#[derive(Debug, Default)]
pub struct DayBatch {
    pub day: u32,
    pub customers: Vec<CustomerRec>,
    pub orders: Vec<OrderRec>,
    pub feedback: Vec<FeedbackRec>,
    pub tickets: Vec<TicketRec>,
    pub reviews: Vec<ReviewRec>,
    pub sessions: Vec<SessionRec>,
    pub offers: Vec<OfferRec>,
    pub initiatives: Vec<InitiativeRec>,
    pub assignments: Vec<AssignmentRec>,
}

// --- State --------------------------------------------------------------------

/// One customer's latent state (what the BG/NBD model would estimate).
#[derive(Debug, Clone)]
pub struct Cust {
    pub lambda: f32,
    pub p: f32,
    pub basket: f32,
    /// Latent satisfaction ~ N(0.3, 1): drives every score and text tone.
    pub sat: f32,
    /// Chance an order is online or in the app.
    pub digital: f32,
    /// Seasonal-clock time of the next purchase.
    pub next: f64,
    pub signup_day: i32,
    pub last_order_day: i32,
    pub orders: u32,
    pub birth_year: u16,
    pub card: u16,
    pub lang: u8,
    pub region: u8,
    pub gender: u8,
    pub arm: u8,
    pub consent: bool,
    pub age65: bool,
    pub alive: bool,
}

#[derive(Default)]
struct Ring {
    feedback: Vec<FeedbackRec>,
    tickets: Vec<TicketRec>,
    reviews: Vec<ReviewRec>,
}

/// What the simulation did, for the ground truth.
#[derive(Debug, Default, Clone)]
pub struct SimSummary {
    pub existing: u64,
    pub signed_up: u64,
    pub opted_out: u64,
    pub aged_65: u64,
    pub by_lang: [u64; 3],
    pub by_region: [u64; 5],
    pub orders: u64,
    pub pre_start_orders: u64,
    pub treatment: u64,
    pub control: u64,
    pub treatment_retained: u64,
    pub control_retained: u64,
    pub alive_at_end: u64,
}

pub struct Sim {
    rng: Xoshiro256PlusPlus,
    seed: u64,
    pub days: u32,
    pub start_epoch_day: i64,
    pub start_year: i32,
    /// Seasonal intensity per day (mean 1 over the period).
    pub intensity: Vec<f64>,
    cum: Vec<f64>,
    hour_cum: [f64; 13],
    pub custs: Vec<Cust>,
    total: u32,
    buckets: Vec<Vec<u32>>,
    ring: Vec<Ring>,
    signups_per_day: Vec<u32>,
    pub loyalty_day: u32,
    pub training_day: u32,
    lambda_dist: Gamma<f64>,
    p_dist: Beta<f64>,
    basket_dist: Gamma<f64>,
    digital_dist: Beta<f64>,
    pub summary: SimSummary,
}

/// Loyalty starts on day 90, or a third into shorter periods so that both
/// arms have purchase history before and follow-up after.
pub fn loyalty_day(days: u32) -> u32 {
    if days >= 180 { 89 } else { days / 3 }
}

/// The barista training starts 60% into the period.
pub fn training_day(days: u32) -> u32 {
    days * 3 / 5
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

fn normal<R: Rng>(rng: &mut R) -> f64 {
    StandardNormal.sample(rng)
}

fn exp1<R: Rng>(rng: &mut R) -> f64 {
    Exp1.sample(rng)
}

fn clamp_round(x: f64, lo: i32, hi: i32) -> u8 {
    (x.round() as i32).clamp(lo, hi) as u8
}

fn weighted<R: Rng>(rng: &mut R, weights: &[f64]) -> u8 {
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i as u8;
        }
        u -= w;
    }
    (weights.len() - 1) as u8
}

/// Birth year for an age mix where about 15% are 65 or older.
fn birth_year<R: Rng>(rng: &mut R, start_year: i32) -> u16 {
    // (youngest age, oldest age, weight)
    const BANDS: [(i32, i32, f64); 7] = [
        (19, 24, 0.12),
        (25, 34, 0.22),
        (35, 44, 0.20),
        (45, 54, 0.17),
        (55, 64, 0.14),
        (65, 74, 0.10),
        (75, 89, 0.05),
    ];
    let b = weighted(rng, &BANDS.map(|(_, _, w)| w));
    let (lo, hi, _) = BANDS[usize::from(b)];
    let age = rng.random_range(lo..=hi);
    (start_year - age).clamp(1935, 2006) as u16
}

impl Sim {
    pub fn new(seed: u64, customers: u32, days: u32, start_epoch_day: i64) -> Sim {
        let (start_year, _, _) = civil_from_days(start_epoch_day);
        let mut intensity: Vec<f64> = (0..i64::from(days))
            .map(|d| {
                let day = start_epoch_day + d;
                let (_, m, dom) = civil_from_days(day);
                // 1970-01-01 was a Thursday; index 0 = Monday.
                let wd = (day + 3).rem_euclid(7) as usize;
                let mut f = MONTH_FACTORS[m as usize - 1] * WEEKDAY_FACTORS[wd];
                if m == 12 && (18..=24).contains(&dom) {
                    f *= 1.25; // the Christmas rush
                }
                if m == 12 && dom == 25 {
                    f = 0.0;
                }
                f
            })
            .collect();
        let mean = intensity.iter().sum::<f64>() / f64::from(days.max(1));
        if mean > 0.0 {
            intensity.iter_mut().for_each(|f| *f /= mean);
        }
        let mut cum = Vec::with_capacity(intensity.len() + 1);
        cum.push(0.0);
        for f in &intensity {
            cum.push(cum.last().copied().unwrap_or(0.0) + f);
        }
        let mut hour_cum = [0.0; 13];
        let hw: f64 = HOUR_WEIGHTS.iter().sum();
        for h in 0..12 {
            hour_cum[h + 1] = hour_cum[h] + HOUR_WEIGHTS[h] / hw;
        }
        let existing = ((f64::from(customers) * EXISTING_SHARE).round() as u32).min(customers);
        let new = customers - existing;
        // New customers sign up in proportion to the day's custom.
        let total_int = cum.last().copied().unwrap_or(0.0);
        let mut signups_per_day = vec![0u32; days as usize];
        if total_int > 0.0 {
            let mut prev = 0u64;
            for d in 0..days as usize {
                let upto = (f64::from(new) * cum[d + 1] / total_int).round() as u64;
                signups_per_day[d] = (upto - prev) as u32;
                prev = upto;
            }
        }
        let mut sim = Sim {
            rng: <Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(seed),
            seed,
            days,
            start_epoch_day,
            start_year,
            intensity,
            cum,
            hour_cum,
            custs: Vec::with_capacity(customers as usize),
            total: customers,
            buckets: (0..days).map(|_| Vec::new()).collect(),
            ring: (0..RING).map(|_| Ring::default()).collect(),
            signups_per_day,
            loyalty_day: loyalty_day(days),
            training_day: training_day(days),
            lambda_dist: Gamma::new(LAMBDA_SHAPE, LAMBDA_SCALE).expect("valid gamma"),
            p_dist: Beta::new(DROPOUT_A, DROPOUT_B).expect("valid beta"),
            basket_dist: Gamma::new(BASKET_SHAPE, BASKET_SCALE).expect("valid gamma"),
            digital_dist: Beta::new(0.6, 4.5).expect("valid beta"),
            summary: SimSummary::default(),
        };
        sim.summary.existing = u64::from(existing);
        sim.summary.signed_up = u64::from(new);
        sim.init_existing(existing);
        sim
    }

    fn day_start(&self, d: i64) -> i64 {
        (self.start_epoch_day + d) * 86_400
    }

    /// Seconds after midnight for a position `f` ∈ [0, 1) through the
    /// opening hours, busier at breakfast and lunch.
    fn time_of_day(&self, f: f64) -> i64 {
        let h = self.hour_cum[1..12].partition_point(|&c| c <= f);
        let within = (f - self.hour_cum[h]) / (self.hour_cum[h + 1] - self.hour_cum[h]);
        let secs = (within.clamp(0.0, 0.999_999) * 3600.0) as i64;
        i64::from(OPEN_HOUR) * 3600 + h as i64 * 3600 + secs
    }

    /// The period day whose seasonal-clock span holds `x` (≥ `from`), or `None` past the end.
    fn day_of(&self, x: f64, from: usize) -> Option<usize> {
        let d = from + self.cum[from + 1..].partition_point(|&c| c <= x);
        (d < self.days as usize).then_some(d)
    }

    fn new_profile(&mut self, signup_day: i32) -> Cust {
        let rng = &mut self.rng;
        let lambda = self.lambda_dist.sample(rng) as f32;
        let p = self.p_dist.sample(rng) as f32;
        let basket = self.basket_dist.sample(rng).clamp(4.0, 40.0) as f32;
        let digital = self.digital_dist.sample(rng) as f32;
        let sat = (0.3 + normal(rng)) as f32;
        let birth_year = birth_year(rng, self.start_year);
        let lang = weighted(rng, &[0.75, 0.15, 0.10]);
        let region = weighted(rng, &[0.22, 0.20, 0.18, 0.20, 0.20]);
        let gender = weighted(rng, &[0.49, 0.46, 0.02, 0.03]);
        let consent = !rng.random_bool(OPT_OUT);
        let card = rng.random_range(0..10_000u16);
        let age65 = self.start_year - i32::from(birth_year) >= 65;
        let s = &mut self.summary;
        s.opted_out += u64::from(!consent);
        s.aged_65 += u64::from(age65);
        s.by_lang[usize::from(lang)] += 1;
        s.by_region[usize::from(region)] += 1;
        Cust {
            lambda,
            p,
            basket,
            sat,
            digital,
            next: 0.0,
            signup_day,
            last_order_day: -1,
            orders: 0,
            birth_year,
            card,
            lang,
            region,
            gender,
            arm: ARM_NONE,
            consent,
            age65,
            alive: true,
        }
    }

    /// Customers who exist on day 1: their history before the start is
    /// simulated (on a flat clock) but not exported, so some arrive dormant.
    fn init_existing(&mut self, existing: u32) {
        let mut offsets: Vec<i32> = (0..existing)
            .map(|_| -self.rng.random_range(1..=PRE_DAYS))
            .collect();
        offsets.sort_unstable();
        for off in offsets {
            let mut c = self.new_profile(off);
            let mut t = f64::from(off) + self.rng.random::<f64>();
            let mut alive = true;
            if self.rng.random_bool(BUY_AT_SIGNUP) {
                self.summary.pre_start_orders += 1;
                alive = !self.rng.random_bool(f64::from(c.p));
            }
            while alive {
                t += exp1(&mut self.rng) / f64::from(c.lambda);
                if t >= 0.0 {
                    break;
                }
                self.summary.pre_start_orders += 1;
                alive = !self.rng.random_bool(f64::from(c.p));
            }
            c.alive = alive;
            c.next = t;
            let idx = self.custs.len() as u32;
            if alive && let Some(d) = self.day_of(t, 0) {
                self.buckets[d].push(idx);
            }
            self.custs.push(c);
        }
    }

    pub fn customer_rec(&self, idx: u32) -> CustomerRec {
        let c = &self.custs[idx as usize];
        // Sign-up time of day: derived, so it needs no storage.
        let mut r = people::customer_rng(self.seed ^ 0xA11CE, idx);
        let tod = self.time_of_day(r.random::<f64>());
        let postal = people::postal_code(&mut r, c.region);
        CustomerRec {
            cust: idx,
            signup_ts: self.day_start(i64::from(c.signup_day)) + tod,
            birth_year: c.birth_year,
            gender: c.gender,
            lang: c.lang,
            region: c.region,
            postal,
            consent: c.consent,
            age65: c.age65,
        }
    }

    /// Simulates day `d` (0-based) and returns its events.
    pub fn step(&mut self, d: u32) -> DayBatch {
        let mut b = DayBatch {
            day: d,
            ..DayBatch::default()
        };
        let du = d as usize;
        if d == 0 {
            for idx in 0..self.custs.len() as u32 {
                b.customers.push(self.customer_rec(idx));
            }
        }
        if d == self.loyalty_day {
            self.start_loyalty(d, &mut b);
        }
        if d == self.training_day && self.training_day != self.loyalty_day {
            b.initiatives.push(InitiativeRec {
                id: "I0002",
                name: "Barista empathy training",
                started_day: d,
                ended_day: Some(d + TRAINING_DAYS - 1),
                cost_cents: TRAINING_COST_CENTS,
                description: "Two-week coaching for all baristas on listening, remembering regulars and owning mistakes. Rolled out to everyone at once (no control group).",
            });
        }

        // Sign-ups of the day, in time order.
        let k = self.signups_per_day[du];
        let mut fracs: Vec<f64> = (0..k).map(|_| self.rng.random::<f64>()).collect();
        fracs.sort_by(f64::total_cmp);
        for f in fracs {
            let idx = self.custs.len() as u32;
            if idx >= self.total {
                break;
            }
            let mut c = self.new_profile(d as i32);
            c.next = self.cum[du] + f * self.intensity[du];
            let buys = self.rng.random_bool(BUY_AT_SIGNUP);
            if !buys {
                c.next += exp1(&mut self.rng) / f64::from(c.lambda);
            }
            self.custs.push(c);
            let tod = self.time_of_day(f);
            let mut rec = self.customer_rec(idx);
            rec.signup_ts = self.day_start(i64::from(d)) + tod;
            b.customers.push(rec);
            match self.day_of(self.custs[idx as usize].next, du) {
                Some(nd) if nd == du => self.buy_today(idx, du, &mut b),
                Some(nd) => self.buckets[nd].push(idx),
                None => {}
            }
        }

        let due = std::mem::take(&mut self.buckets[du]);
        for &idx in &due {
            self.buy_today(idx, du, &mut b);
        }

        // Anonymous browsing: about as many sessions as logged-in ones.
        let linked = b.sessions.len() as u64;
        if linked > 0 {
            let anon = Binomial::new(2 * linked, 0.5)
                .expect("valid binomial")
                .sample(&mut self.rng);
            for _ in 0..anon {
                let ts = self.day_start(i64::from(d)) + self.rng.random_range(6 * 3600..23 * 3600);
                let bounced = self.rng.random_bool(0.45);
                let page_views = if bounced {
                    1
                } else {
                    self.rng.random_range(2..10u16)
                };
                let ip = self.random_ip();
                b.sessions.push(SessionRec {
                    cust: ANON,
                    ts,
                    page_views,
                    duration_s: self.duration(page_views),
                    bounced,
                    converted: !bounced && self.rng.random_bool(0.03),
                    ip,
                    user_agent: self.rng.random_range(0..people::USER_AGENT_COUNT as u8),
                });
            }
        }

        // Taken last: follow-ups scheduled today for today land here too.
        let slot = std::mem::take(&mut self.ring[du % RING]);
        b.feedback = slot.feedback;
        b.tickets = slot.tickets;
        b.reviews = slot.reviews;

        b.orders.sort_by_key(|o| o.ts);
        b.feedback.sort_by_key(|o| o.ts);
        b.tickets.sort_by_key(|o| o.created);
        b.reviews.sort_by_key(|o| o.ts);
        b.sessions.sort_by_key(|o| o.ts);
        b.offers.sort_by_key(|o| o.ts);
        self.summary.orders += b.orders.len() as u64;
        b
    }

    fn start_loyalty(&mut self, d: u32, b: &mut DayBatch) {
        b.initiatives.push(InitiativeRec {
            id: "I0001",
            name: "Loyalty card",
            started_day: d,
            ended_day: None,
            cost_cents: LOYALTY_COST_CENTS,
            description: "Stamp card in the app: every 10th coffee free and 10% off pastries for members. Randomized: half of the existing buyers got it, half kept as control.",
        });
        let ts = self.day_start(i64::from(d)) + i64::from(OPEN_HOUR) * 3600;
        for idx in 0..self.custs.len() {
            if self.custs[idx].orders == 0 {
                continue;
            }
            let arm = if self.rng.random_bool(LOYALTY_TREATMENT_SHARE) {
                ARM_TREATMENT
            } else {
                ARM_CONTROL
            };
            self.custs[idx].arm = arm;
            b.assignments.push(AssignmentRec {
                cust: idx as u32,
                ts,
                arm,
            });
        }
    }

    fn duration(&mut self, page_views: u16) -> u32 {
        let per = self.rng.random_range(12..75u32);
        (u32::from(page_views) * per).min(86_000)
    }

    fn random_ip(&mut self) -> u32 {
        people::ip(&mut self.rng)
    }

    /// Runs customer `idx`'s purchases that fall on day `d`, then files them
    /// under the day of their next purchase (or lets them go).
    fn buy_today(&mut self, idx: u32, d: usize, b: &mut DayBatch) {
        loop {
            let c = &self.custs[idx as usize];
            let f = ((c.next - self.cum[d]) / self.intensity[d]).clamp(0.0, 0.999_999);
            let ts = self.day_start(d as i64) + self.time_of_day(f);
            self.order(idx, d, ts, b);
            let c = &self.custs[idx as usize];
            let mut p = f64::from(c.p);
            if c.arm == ARM_TREATMENT && d as u32 >= self.loyalty_day {
                p *= LOYALTY_DROPOUT_FACTOR;
            }
            if self.rng.random_bool(p) {
                self.custs[idx as usize].alive = false;
                return;
            }
            let gap = exp1(&mut self.rng) / f64::from(c.lambda);
            self.custs[idx as usize].next += gap;
            match self.day_of(self.custs[idx as usize].next, d) {
                Some(nd) if nd == d => continue,
                Some(nd) => {
                    self.buckets[nd].push(idx);
                    return;
                }
                None => return,
            }
        }
    }

    fn order(&mut self, idx: u32, d: usize, ts: i64, b: &mut DayBatch) {
        let loyalty_on = d as u32 >= self.loyalty_day;
        let (basket, digital, card, arm, sat, age65, region) = {
            let c = &mut self.custs[idx as usize];
            c.orders += 1;
            c.last_order_day = d as i32;
            (c.basket, c.digital, c.card, c.arm, c.sat, c.age65, c.region)
        };
        let rng = &mut self.rng;
        let channel = if rng.random_bool(f64::from(digital)) {
            if rng.random_bool(0.55) { 2 } else { 1 }
        } else {
            0
        };
        let (_, month, _) = civil_from_days(self.start_epoch_day + d as i64);
        let season = if month == 12 { 1.15 } else { 1.0 };
        let amount: f64 = Gamma::new(4.0, f64::from(basket) / 4.0)
            .expect("valid gamma")
            .sample(rng)
            * season;
        let total_cents = ((amount * 100.0).round() as u32).clamp(120, 25_000);
        let per_item = rng.random_range(2.5..4.5);
        let items = ((f64::from(total_cents) / 100.0 / per_item).round() as u8).clamp(1, 8);
        let pct = if arm == ARM_TREATMENT && loyalty_on && rng.random_bool(0.4) {
            10
        } else if rng.random_bool(0.08) {
            rng.random_range(1..6u32) * 5
        } else {
            0
        };
        let discount_cents = total_cents * pct / 100;
        let card_last4 = if rng.random_bool(0.1) {
            rng.random_range(0..10_000u16)
        } else {
            card
        };
        b.orders.push(OrderRec {
            cust: idx,
            ts,
            total_cents,
            discount_cents,
            channel,
            items,
            refunded: rng.random_bool(0.01),
            card_last4,
        });
        let day0 = self.day_start(d as i64);
        let end_of_day = day0 + 86_399;

        // Logged-in web session behind digital orders, and plain browsing.
        if channel != 0 && self.rng.random_bool(0.92) {
            let page_views = self.rng.random_range(3..18u16);
            let duration_s = self.duration(page_views);
            let start = (ts - i64::from(duration_s)).max(day0);
            let (ip, ua) = self.home_device(idx);
            b.sessions.push(SessionRec {
                cust: idx,
                ts: start,
                page_views,
                duration_s,
                bounced: false,
                converted: true,
                ip,
                user_agent: ua,
            });
        }
        if self.rng.random_bool(Q_BROWSE) {
            let bounced = self.rng.random_bool(0.35);
            let page_views = if bounced {
                1
            } else {
                self.rng.random_range(2..12u16)
            };
            let (ip, ua) = self.home_device(idx);
            b.sessions.push(SessionRec {
                cust: idx,
                ts: day0 + self.rng.random_range(6 * 3600..23 * 3600),
                page_views,
                duration_s: self.duration(page_views),
                bounced,
                converted: false,
                ip,
                user_agent: ua,
            });
        }

        if self.rng.random_bool(Q_OFFER) {
            let rng = &mut self.rng;
            let mean = if region == people::EAST {
                OFFER_PCT_EAST
            } else {
                OFFER_PCT_OTHERS
            };
            let pct = (mean + OFFER_PCT_SD * normal(rng)).clamp(0.0, 50.0);
            b.offers.push(OfferRec {
                cust: idx,
                ts: (ts + rng.random_range(300..3 * 3600)).min(end_of_day),
                offer_type: weighted(rng, &[0.6, 0.25, 0.15]),
                pct_tenths: (pct * 10.0).round() as u16,
                decided_by: weighted(rng, &[0.5, 0.35, 0.15]),
            });
        }

        let touchpoint = match channel {
            0 => 0,
            _ if self.rng.random_bool(0.5) => 2,
            _ => 1,
        };
        if self.rng.random_bool(Q_SURVEY * Q_SURVEY_ANSWERED) {
            let delay = weighted(&mut self.rng, &[0.35, 0.35, 0.2, 0.1]) as usize;
            if d + delay < self.days as usize {
                let rts = self.follow_up_time(d, delay, ts);
                let tp_effect = [0.0, -0.1, -0.3, 0.0][touchpoint];
                let q = 0.9 * f64::from(sat) + 0.7 * normal(&mut self.rng) + tp_effect;
                let survey = weighted(&mut self.rng, &[0.45, 0.30, 0.10, 0.15]);
                self.survey(idx, d + delay, rts, survey, touchpoint as u8, q);
            }
        }
        if self.rng.random_bool(Q_TICKET) {
            let delay = weighted(&mut self.rng, &[0.55, 0.3, 0.15]) as usize;
            if d + delay < self.days as usize {
                let created = if delay == 0 {
                    (ts + self.rng.random_range(600..4 * 3600)).min(end_of_day)
                } else {
                    self.day_start((d + delay) as i64) + self.rng.random_range(7 * 3600..22 * 3600)
                };
                self.ticket(idx, d + delay, created, sat, age65);
            }
        }
        if self.rng.random_bool(Q_REVIEW) {
            let delay = self.rng.random_range(0..6usize);
            if d + delay < self.days as usize {
                let rts = self.follow_up_time(d, delay, ts);
                let q = 0.9 * f64::from(sat) + 0.8 * normal(&mut self.rng);
                let rating = clamp_round(3.9 + 1.15 * q, 1, 5);
                let rng = &mut self.rng;
                let reply_p = if rating <= 2 { 0.75 } else { 0.5 };
                let replied = rng
                    .random_bool(reply_p)
                    .then(|| rts + rng.random_range(2 * 3600..96 * 3600));
                let rec = ReviewRec {
                    cust: idx,
                    anonymous: rng.random_bool(ANONYMOUS_REVIEW),
                    ts: rts,
                    platform: weighted(rng, &[0.6, 0.25, 0.15]),
                    rating,
                    replied,
                };
                self.ring[(d + delay) % RING].reviews.push(rec);
            }
        }
    }

    /// A time on day `d + delay`: after `ts` when on the same day.
    fn follow_up_time(&mut self, d: usize, delay: usize, ts: i64) -> i64 {
        let day0 = self.day_start((d + delay) as i64);
        if delay == 0 {
            (ts + self.rng.random_range(1800..5 * 3600)).min(day0 + 86_399)
        } else {
            day0 + self.rng.random_range(7 * 3600..23 * 3600)
        }
    }

    /// The customer's usual device and connection.
    fn home_device(&mut self, idx: u32) -> (u32, u8) {
        if self.rng.random_bool(0.3) {
            let ua = self.rng.random_range(0..people::USER_AGENT_COUNT as u8);
            return (self.random_ip(), ua);
        }
        let mut r = people::customer_rng(self.seed ^ 0xD371CE, idx);
        let ip = people::ip(&mut r);
        (ip, r.random_range(0..people::USER_AGENT_COUNT as u8))
    }

    fn survey(&mut self, idx: u32, day: usize, ts: i64, survey: u8, touchpoint: u8, q: f64) {
        let rng = &mut self.rng;
        let slot = &mut self.ring[day % RING].feedback;
        match survey {
            NPS => slot.push(FeedbackRec {
                cust: idx,
                ts,
                survey,
                score: clamp_round(7.7 + 1.9 * q, 0, 10),
                item: 0,
                touchpoint,
            }),
            CSAT => slot.push(FeedbackRec {
                cust: idx,
                ts,
                survey,
                score: clamp_round(4.0 + 0.95 * q, 1, 5),
                item: 0,
                touchpoint,
            }),
            CES => slot.push(FeedbackRec {
                cust: idx,
                ts,
                survey,
                score: clamp_round(5.3 + 1.2 * q, 1, 7),
                item: 0,
                touchpoint,
            }),
            _ => {
                let trained = day as u32 >= self.training_day && touchpoint == 0;
                let lift = if trained { TRAINING_EFFECT } else { 0.0 };
                // Convenient hours (item 5) is the weakest point of a café
                // that closes at 19:00.
                const ITEM_OFFSET: [f64; 5] = [0.1, 0.0, -0.1, -0.2, -0.5];
                for (i, off) in ITEM_OFFSET.iter().enumerate() {
                    let x = 5.0 + 1.1 * (q + off + lift) + 0.35 * normal(rng);
                    slot.push(FeedbackRec {
                        cust: idx,
                        ts,
                        survey: EMPATHY,
                        score: clamp_round(x, 1, 7),
                        item: i as u8 + 1,
                        touchpoint,
                    });
                }
            }
        }
    }

    fn ticket(&mut self, idx: u32, day: usize, created: i64, sat: f32, age65: bool) {
        let rng = &mut self.rng;
        let channel = weighted(rng, &[0.42, 0.36, 0.22]);
        let bot = if age65 {
            BOT_SHARE_65
        } else {
            BOT_SHARE_OTHERS
        };
        let handled_by = weighted(rng, &[1.0 - bot - BOT_THEN_HUMAN, bot, BOT_THEN_HUMAN]);
        let topic = weighted(rng, &[0.28, 0.20, 0.10, 0.14, 0.12, 0.16]);
        let median_h = [5.0, 0.3, 0.08][usize::from(channel)];
        let sigma = [0.8, 0.9, 0.6][usize::from(channel)];
        let mut wait_h = median_h * (sigma * normal(rng)).exp();
        if age65 {
            wait_h *= WAIT_FACTOR_65;
        }
        let first_response = created + (wait_h * 3600.0).round().max(20.0) as i64;
        let resolved = rng.random_bool(0.95).then(|| {
            let mut h = 8.0 * normal(rng).exp();
            if handled_by == 2 {
                h *= 1.5;
            }
            first_response + (h * 3600.0) as i64
        });
        let warm = rng.random_bool(WARM_BY_CHANNEL[usize::from(channel)]);
        let complaint = topic <= 3;
        let upset = if complaint {
            rng.random_bool(if sat < 0.0 { 0.8 } else { 0.55 })
        } else {
            rng.random_bool(0.05)
        };
        let is_bot = handled_by == 1;
        let q = 0.6 * f64::from(sat)
            + 0.8 * normal(rng)
            + if warm { 0.5 } else { -0.4 }
            + if is_bot { -0.3 } else { 0.0 }
            + if resolved.is_some() { 0.2 } else { -0.8 };
        let satisfaction = if rng.random_bool(0.62) {
            clamp_round(3.4 + 1.1 * q, 1, 5)
        } else {
            0
        };
        let low = satisfaction != 0 && satisfaction <= 2;
        let follow_up = (low && rng.random_bool(0.6))
            .then(|| resolved.unwrap_or(first_response) + rng.random_range(20 * 3600..72 * 3600));
        let reopened = rng.random_bool(if low { 0.19 } else { 0.04 });
        self.ring[day % RING].tickets.push(TicketRec {
            cust: idx,
            created,
            first_response,
            resolved,
            channel,
            handled_by,
            topic,
            satisfaction,
            follow_up,
            reopened,
            warm,
            upset,
        });
        if self.rng.random_bool(Q_TICKET_SURVEY) {
            let delay = self.rng.random_range(1..5usize);
            if day + delay < self.days as usize {
                let ts = self.day_start((day + delay) as i64)
                    + self.rng.random_range(7 * 3600..23 * 3600);
                let q = 0.8 * f64::from(sat)
                    + 0.7 * normal(&mut self.rng)
                    + if warm { 0.4 } else { -0.5 }
                    + if is_bot { -0.2 } else { 0.0 };
                let survey = if self.rng.random_bool(0.7) { CSAT } else { CES };
                self.survey(idx, day + delay, ts, survey, 3, q);
            }
        }
    }

    /// Fills the end-of-period parts of the summary.
    pub fn finish(&mut self) {
        let window_start = self.days.saturating_sub(90) as i32;
        for c in &self.custs {
            let retained = c.last_order_day >= window_start;
            match c.arm {
                ARM_TREATMENT => {
                    self.summary.treatment += 1;
                    self.summary.treatment_retained += u64::from(retained);
                }
                ARM_CONTROL => {
                    self.summary.control += 1;
                    self.summary.control_retained += u64::from(retained);
                }
                _ => {}
            }
            self.summary.alive_at_end += u64::from(c.alive);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_chrono() {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("date");
        for z in [
            -800i64, -1, 0, 59, 365, 10_957, 19_723, 20_089, 20_454, 47_482,
        ] {
            let d = epoch + chrono::Duration::days(z);
            let (y, m, dd) = civil_from_days(z);
            assert_eq!(d.to_string(), format!("{y:04}-{m:02}-{dd:02}"));
        }
    }

    #[test]
    fn opening_hours_hold() {
        let sim = Sim::new(1, 10, 10, 20_089);
        for i in 0..1000 {
            let t = sim.time_of_day(f64::from(i) / 1000.0);
            assert!((7 * 3600..19 * 3600).contains(&t), "{t}");
        }
    }
}
