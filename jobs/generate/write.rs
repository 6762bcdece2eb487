//! Turns each simulated day into export files, plants defects, and measures
//! the realized ground truth over the rows ingest is meant to keep.
//!
//! [`Writer`] runs on its own thread, consuming days in order; texts come
//! from its random stream and each table's defects from the table's own,
//! so the bytes do not depend on thread timing.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::dirty::{self, Defect, DirtSpec, KindDeck};
use super::people::{self, GENDERS, LANGS, REGIONS};
use super::row::{Kind, Row, push_date};
use super::sim::{self, ANON, DayBatch};
use super::text::{self, Pii, Tone};
use super::truth::{Mean, TableTruth};
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    CsvGz,
    Ndjson,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::CsvGz => "csv.gz",
            Format::Ndjson => "ndjson",
        }
    }
}

/// A table's export layout.
pub struct TableDef {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub format: Format,
    pub spec: &'static DirtSpec,
    pub undeclared: &'static [&'static str],
}

pub const CUSTOMERS: usize = 0;
pub const ORDERS: usize = 1;
pub const FEEDBACK: usize = 2;
pub const TICKETS: usize = 3;
pub const REVIEWS: usize = 4;
pub const WEB_SESSIONS: usize = 5;
pub const OFFERS: usize = 6;
pub const INITIATIVES: usize = 7;
pub const ASSIGNMENTS: usize = 8;

pub const TABLES: [TableDef; 9] = [
    TableDef {
        name: "customers",
        columns: &[
            "customer_id",
            "email",
            "full_name",
            "phone",
            "postal_code",
            "birth_year",
            "gender",
            "language",
            "region",
            "signup_date",
            "consent_analytics",
            "consent_updated_at",
            "notes",
        ],
        format: Format::Csv,
        spec: &dirty::CUSTOMERS,
        undeclared: &["notes"],
    },
    TableDef {
        name: "orders",
        columns: &[
            "order_id",
            "customer_id",
            "ordered_at",
            "total_amount",
            "discount_amount",
            "currency",
            "channel",
            "item_count",
            "refunded",
            "card_last4",
        ],
        format: Format::Csv,
        spec: &dirty::ORDERS,
        undeclared: &["card_last4"],
    },
    TableDef {
        name: "feedback",
        columns: &[
            "response_id",
            "customer_id",
            "responded_at",
            "survey_type",
            "score",
            "comment",
            "touchpoint",
            "item",
            "respondent_email",
        ],
        format: Format::CsvGz,
        spec: &dirty::FEEDBACK,
        undeclared: &["respondent_email"],
    },
    TableDef {
        name: "tickets",
        columns: &[
            "ticket_id",
            "customer_id",
            "created_at",
            "first_response_at",
            "resolved_at",
            "channel",
            "handled_by",
            "topic",
            "satisfaction",
            "follow_up_at",
            "reopened",
            "message",
            "reply",
        ],
        format: Format::Ndjson,
        spec: &dirty::TICKETS,
        undeclared: &[],
    },
    TableDef {
        name: "reviews",
        columns: &[
            "review_id",
            "posted_at",
            "customer_id",
            "platform",
            "rating",
            "text",
            "replied_at",
        ],
        format: Format::Csv,
        spec: &dirty::REVIEWS,
        undeclared: &[],
    },
    TableDef {
        name: "web_sessions",
        columns: &[
            "session_id",
            "customer_id",
            "started_at",
            "page_views",
            "duration_s",
            "bounced",
            "converted",
            "ip_address",
            "user_agent",
        ],
        format: Format::Csv,
        spec: &dirty::WEB_SESSIONS,
        undeclared: &[],
    },
    TableDef {
        name: "offers",
        columns: &[
            "offer_id",
            "customer_id",
            "decided_at",
            "offer_type",
            "discount_pct",
            "decided_by",
        ],
        format: Format::Csv,
        spec: &dirty::OFFERS,
        undeclared: &[],
    },
    TableDef {
        name: "initiatives",
        columns: &[
            "initiative_id",
            "name",
            "started_on",
            "ended_on",
            "cost",
            "currency",
            "description",
        ],
        format: Format::Csv,
        spec: &dirty::INITIATIVES,
        undeclared: &[],
    },
    TableDef {
        name: "initiative_assignments",
        columns: &["customer_id", "initiative_id", "assigned_at", "arm"],
        format: Format::Csv,
        spec: &dirty::ASSIGNMENTS,
        undeclared: &[],
    },
];

/// Whose row it is, for consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Consented,
    OptedOut,
    Anonymous,
}

/// One table's output for the current day and its running totals.
///
/// Each table draws its defects from its own random stream, so a table's
/// bytes do not depend on which thread writes it or on the other tables.
pub struct TableOut {
    def: &'static TableDef,
    index: usize,
    rng: Xoshiro256PlusPlus,
    buf: Vec<u8>,
    /// Byte ranges of today's rows that may be copied as duplicates.
    clean: Vec<(usize, usize)>,
    deck: KindDeck,
    spare: Row,
    truth: TableTruth,
    dirty: [u64; 9],
}

/// The table (if any) that gets an extra 0-byte file on `day`: a pure
/// function, so each thread knows it for the tables it writes.
fn planted_empty(seed: u64, day: u32) -> Option<usize> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0xE3F7_F11E ^ (u64::from(day) << 20));
    rng.random_bool(dirty::EMPTY_FILE_RATE)
        .then(|| rng.random_range(0..TABLES.len()))
}

impl TableOut {
    pub fn new(t: usize, seed: u64) -> TableOut {
        let def = &TABLES[t];
        let salt = (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        TableOut {
            def,
            index: t,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x00D1_27A7_A5EE_D5EE ^ salt),
            buf: Vec::with_capacity(1 << 16),
            clean: Vec::new(),
            deck: KindDeck::default(),
            spare: Row::default(),
            truth: TableTruth {
                format: def.format.name().to_string(),
                undeclared_columns: def.undeclared.iter().map(|s| s.to_string()).collect(),
                ..TableTruth::default()
            },
            dirty: [0; 9],
        }
    }

    fn begin_day(&mut self) {
        self.buf.clear();
        self.clean.clear();
        if self.def.format != Format::Ndjson {
            self.buf
                .extend_from_slice(self.def.columns.join(",").as_bytes());
            self.buf.push(b'\n');
        }
    }

    /// Writes `row`, maybe planting a defect. Returns whether ingest should
    /// keep the row (clean, first copy, consenting or anonymous owner).
    fn emit(&mut self, row: &mut Row, owner: Owner) -> bool {
        let json = self.def.format == Format::Ndjson;
        self.truth.data_rows += 1;
        if owner == Owner::OptedOut {
            // Never dirty: a quarantined row would hide that it was theirs.
            self.truth.consent_excluded_rows += 1;
            serialize(row, self.def, json, &mut self.buf);
            return false;
        }
        let defect = if self.rng.random_bool(dirty::DIRTY_RATE) {
            self.deck.next(self.def.spec, &mut self.rng)
        } else {
            None
        };
        let extra_row = self.index == CUSTOMERS;
        match defect {
            None => {
                self.push_clean(row, json);
                true
            }
            Some(Defect::Duplicate) => {
                self.push_clean(row, json);
                let (a, b) = self.clean[self.rng.random_range(0..self.clean.len())];
                self.buf.extend_from_within(a..b);
                self.truth.data_rows += 1;
                self.truth.duplicates += 1;
                true
            }
            Some(defect) => {
                self.dirty[defect as usize] += 1;
                // A customer's defective row comes as an extra record before
                // the clean one: every customer keeps a valid consent decision,
                // so which rows are consent-excluded never depends on dirt.
                let target = if extra_row {
                    self.spare.clone_from(row);
                    &mut self.spare
                } else {
                    &mut *row
                };
                if defect == Defect::MalformedJson {
                    let start = self.buf.len();
                    serialize(target, self.def, json, &mut self.buf);
                    let line_end = self.buf.len() - 1;
                    let cut = dirty::truncate_json(&self.buf[start..line_end], &mut self.rng);
                    self.buf.truncate(start + cut);
                    self.buf.push(b'\n');
                } else {
                    dirty::apply(defect, self.def.spec, target, json, &mut self.rng);
                    serialize(target, self.def, json, &mut self.buf);
                }
                if extra_row {
                    self.truth.data_rows += 1;
                    self.push_clean(row, json);
                    true
                } else {
                    false
                }
            }
        }
    }

    fn push_clean(&mut self, row: &Row, json: bool) {
        let start = self.buf.len();
        serialize(row, self.def, json, &mut self.buf);
        self.clean.push((start, self.buf.len()));
    }

    /// Writes the day's file (and the planted 0-byte one, if it is ours).
    fn flush(&mut self, landing: &Path, date: &str, seed: u64, day: u32) -> Result<()> {
        let dir = landing.join(self.def.name).join(date);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(format!("{}.{}", self.def.name, self.def.format.name()));
        match self.def.format {
            Format::CsvGz => {
                let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
                let mut gz = flate2::write::GzEncoder::new(
                    std::io::BufWriter::with_capacity(1 << 20, file),
                    flate2::Compression::fast(),
                );
                gz.write_all(&self.buf).map_err(|e| Error::io(&path, e))?;
                let mut inner = gz.finish().map_err(|e| Error::io(&path, e))?;
                inner.flush().map_err(|e| Error::io(&path, e))?;
            }
            _ => std::fs::write(&path, &self.buf).map_err(|e| Error::io(&path, e))?,
        }
        self.truth.files += 1;
        self.truth.empty_files += u64::from(self.buf.is_empty());
        if planted_empty(seed, day) == Some(self.index) {
            // An exporter that crashed after creating its second file.
            let ext = if self.def.format == Format::Ndjson {
                "ndjson"
            } else {
                "csv"
            };
            let extra = dir.join(format!("{}-2.{ext}", self.def.name));
            std::fs::write(&extra, b"").map_err(|e| Error::io(&extra, e))?;
            self.truth.files += 1;
            self.truth.empty_files += 1;
        }
        Ok(())
    }

    /// The table's accounting over all days.
    pub fn finish(mut self) -> TableTruth {
        const ALL: [Defect; 8] = [
            Defect::WrongType,
            Defect::OutOfRange,
            Defect::MissingRequired,
            Defect::BadTimestamp,
            Defect::BadEnum,
            Defect::RaggedRow,
            Defect::MalformedJson,
            Defect::InvalidUtf8,
        ];
        for d in ALL {
            if self.def.spec.kinds.contains(&d) {
                self.truth
                    .dirty
                    .insert(d.code().to_string(), self.dirty[d as usize]);
            }
        }
        let dirty: u64 = self.truth.dirty.values().sum();
        self.truth.expected_clean_rows =
            self.truth.data_rows - self.truth.consent_excluded_rows - self.truth.duplicates - dirty;
        self.truth
    }
}

fn date_text(epoch_day: i64) -> String {
    let mut date = Vec::with_capacity(10);
    push_date(&mut date, epoch_day);
    String::from_utf8(date).expect("dates are ASCII")
}

/// Web sessions, written by the simulating thread: they are a large share
/// of the bytes, need nothing the writer thread knows (consent comes with
/// the record), and so balance the two threads.
pub struct SessionWriter {
    landing: PathBuf,
    seed: u64,
    start_epoch_day: i64,
    out: TableOut,
    row: Row,
    next_id: u64,
}

impl SessionWriter {
    pub fn new(out: &Path, seed: u64, start_epoch_day: i64) -> SessionWriter {
        SessionWriter {
            landing: out.join("landing"),
            seed,
            start_epoch_day,
            out: TableOut::new(WEB_SESSIONS, seed),
            row: Row::default(),
            next_id: 1,
        }
    }

    /// Writes the day's sessions; `consent(cust)` tells whose rows to exclude.
    pub fn write_day(
        &mut self,
        day: u32,
        sessions: &[sim::SessionRec],
        consent: impl Fn(u32) -> bool,
    ) -> Result<()> {
        self.out.begin_day();
        for s in sessions {
            let r = &mut self.row;
            r.clear();
            r.id("S", self.next_id, 10);
            self.next_id += 1;
            if s.cust == ANON {
                r.null();
            } else {
                r.customer(s.cust);
            }
            r.ts(s.ts, false);
            r.uint(u64::from(s.page_views));
            r.uint(u64::from(s.duration_s));
            r.boolean(s.bounced);
            r.boolean(s.converted);
            r.raw(|b| people::push_ip(b, s.ip), Kind::Str);
            r.text(people::user_agent(usize::from(s.user_agent)));
            let owner = if s.cust == ANON {
                Owner::Anonymous
            } else if consent(s.cust) {
                Owner::Consented
            } else {
                Owner::OptedOut
            };
            self.out.emit(&mut self.row, owner);
        }
        let date = date_text(self.start_epoch_day + i64::from(day));
        self.out.flush(&self.landing, &date, self.seed, day)
    }

    pub fn finish(self) -> TableTruth {
        self.out.finish()
    }
}

/// Realized values, over rows ingest keeps.
#[derive(Debug, Default)]
pub struct Realized {
    /// [others, 65+]: tickets, handled_by counts (human, bot, bot_then_human), wait hours.
    pub tickets_by_age: [u64; 2],
    pub handled_by_age: [[u64; 3]; 2],
    pub wait_hours_by_age: [Mean; 2],
    pub offer_pct_by_region: [Mean; 5],
    pub nps_by_lang: [Mean; 3],
    pub promoters_by_lang: [u64; 3],
    pub detractors_by_lang: [u64; 3],
    pub commented_nps_by_lang: [u64; 3],
    pub warm_by_channel: [(u64, u64); 3],
    /// In-store empathy scores before/after the training start; other touchpoints as comparison.
    pub empathy_in_store: [Mean; 2],
    pub empathy_elsewhere: [Mean; 2],
    pub arm_customers: [u64; 3],
    pub arm_retained: [u64; 3],
}

const PROFILE_CONSENT: u16 = 1;
const PROFILE_AGE65: u16 = 2;

const RECENT_ORDER: u8 = 1;

pub struct Writer {
    landing: PathBuf,
    seed: u64,
    start_epoch_day: i64,
    window_start: u32,
    training_day: u32,
    rng: Xoshiro256PlusPlus,
    /// Per customer: consent and age flags, language (bits 2–3), region
    /// (bits 4–6), gender (bits 7–8): what later rows need from the customers row.
    profiles: Vec<u16>,
    /// Per customer: kept order in the retention window, kept loyalty arm (bits 1–2).
    flags: Vec<u8>,
    /// Every table but web_sessions (see [`SessionWriter`]); indexed by table.
    tables: Vec<TableOut>,
    row: Row,
    text: String,
    next_id: [u64; 9],
    pii_counts: [[u64; 5]; 4],
    notes_phone: u64,
    pub realized: Realized,
}

fn pii_index(kind: Pii) -> usize {
    Pii::ALL.iter().position(|p| *p == kind).unwrap_or(0)
}

impl Writer {
    pub fn new(out: &Path, seed: u64, customers: u32, days: u32, start_epoch_day: i64) -> Writer {
        let tables = (0..TABLES.len()).map(|t| TableOut::new(t, seed)).collect();
        Writer {
            landing: out.join("landing"),
            seed,
            start_epoch_day,
            window_start: days.saturating_sub(90),
            training_day: sim::training_day(days),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x00D1_27A7_A5EE_D5EE),
            profiles: vec![0; customers as usize],
            flags: vec![0; customers as usize],
            tables,
            row: Row::default(),
            text: String::with_capacity(256),
            next_id: [1; 9],
            pii_counts: [[0; 5]; 4],
            notes_phone: 0,
            realized: Realized::default(),
        }
    }

    fn owner(&self, cust: u32) -> Owner {
        if cust == ANON {
            Owner::Anonymous
        } else if self.profiles[cust as usize] & PROFILE_CONSENT != 0 {
            Owner::Consented
        } else {
            Owner::OptedOut
        }
    }

    fn lang(&self, cust: u32) -> u8 {
        ((self.profiles[cust as usize] >> 2) & 3) as u8
    }

    fn region(&self, cust: u32) -> usize {
        usize::from((self.profiles[cust as usize] >> 4) & 7)
    }

    fn gender(&self, cust: u32) -> u8 {
        ((self.profiles[cust as usize] >> 7) & 3) as u8
    }

    fn age65(&self, cust: u32) -> bool {
        self.profiles[cust as usize] & PROFILE_AGE65 != 0
    }

    fn next_id(&mut self, t: usize) -> u64 {
        let id = self.next_id[t];
        self.next_id[t] += 1;
        id
    }

    fn emit(&mut self, t: usize, owner: Owner) -> bool {
        self.tables[t].emit(&mut self.row, owner)
    }

    /// Writes one simulated day.
    pub fn write_day(&mut self, b: DayBatch) -> Result<()> {
        for t in &mut self.tables {
            t.begin_day();
        }
        let day = b.day;
        for c in &b.customers {
            self.customer(c);
        }
        for o in &b.orders {
            self.order(o, day);
        }
        for f in &b.feedback {
            self.feedback(f, day);
        }
        for tk in &b.tickets {
            self.ticket(tk);
        }
        for r in &b.reviews {
            self.review(r);
        }
        for o in &b.offers {
            self.offer(o);
        }
        for i in &b.initiatives {
            self.initiative(i);
        }
        for a in &b.assignments {
            self.assignment(a);
        }
        self.flush(day)
    }

    fn customer(&mut self, c: &sim::CustomerRec) {
        let mut p = u16::from(c.lang) << 2 | u16::from(c.region) << 4 | u16::from(c.gender) << 7;
        if c.consent {
            p |= PROFILE_CONSENT;
        }
        if c.age65 {
            p |= PROFILE_AGE65;
        }
        self.profiles[c.cust as usize] = p;
        let contact = people::contact(self.seed, c.cust, c.lang, c.gender);
        self.text.clear();
        let mut note_phone = false;
        if self.rng.random_bool(0.08) {
            note_phone = text::note(&mut self.rng, c.lang, &mut self.text);
        }
        let r = &mut self.row;
        r.clear();
        r.customer(c.cust);
        r.str(&contact.email);
        r.text(&contact.full_name);
        r.str(&contact.phone);
        r.uint(u64::from(c.postal));
        r.uint(u64::from(c.birth_year));
        r.str(GENDERS[usize::from(c.gender)]);
        r.str(LANGS[usize::from(c.lang)]);
        r.str(REGIONS[usize::from(c.region)]);
        r.date(c.signup_ts.div_euclid(86_400));
        r.boolean(c.consent);
        r.ts(c.signup_ts, false);
        r.opt_text(&self.text);
        // postal_code is a string column: keep leading zeros and CSV type alike.
        r.fields[4].2 = Kind::Str;
        let owner = if c.consent {
            Owner::Consented
        } else {
            Owner::OptedOut
        };
        self.emit(CUSTOMERS, owner);
        self.notes_phone += u64::from(note_phone);
    }

    fn order(&mut self, o: &sim::OrderRec, day: u32) {
        let id = self.next_id(ORDERS);
        let r = &mut self.row;
        r.clear();
        r.id("O", id, 9);
        r.customer(o.cust);
        r.ts(o.ts, false);
        r.money(i64::from(o.total_cents));
        r.money(i64::from(o.discount_cents));
        r.str("EUR");
        r.str(sim::ORDER_CHANNELS[usize::from(o.channel)]);
        r.uint(u64::from(o.items));
        r.boolean(o.refunded);
        r.raw(
            |b| {
                let s = itoa::Buffer::new().format(o.card_last4).len();
                b.extend(std::iter::repeat_n(b'0', 4 - s.min(4)));
                b.extend_from_slice(itoa::Buffer::new().format(o.card_last4).as_bytes());
            },
            Kind::Str,
        );
        let kept = self.emit(ORDERS, self.owner(o.cust));
        if kept && day >= self.window_start {
            self.flags[o.cust as usize] |= RECENT_ORDER;
        }
    }

    fn feedback(&mut self, f: &sim::FeedbackRec, day: u32) {
        let id = self.next_id(FEEDBACK);
        let lang = self.lang(f.cust);
        let mut tone = survey_tone(f.survey, f.score);
        if tone == Tone::Mixed && self.rng.random_bool(0.4) {
            tone = Tone::Neutral; // passives: lukewarm as often as torn
        }
        let p_comment = match f.survey {
            sim::NPS => 0.85,
            sim::CSAT => 0.3,
            sim::CES => 0.25,
            _ if f.item == 1 => 0.25,
            _ => 0.0,
        };
        self.text.clear();
        let mut pii = None;
        if self.rng.random_bool(p_comment) {
            text::comment(&mut self.rng, lang, tone, &mut self.text);
            if self.rng.random_bool(0.01) {
                let kind = Pii::ALL[self.rng.random_range(0..5)];
                text::append_pii(&mut self.rng, lang, kind, &mut self.text);
                pii = Some(kind);
            }
        }
        let contact = people::contact(self.seed, f.cust, lang, self.gender(f.cust));
        let r = &mut self.row;
        r.clear();
        r.id("R", id, 9);
        r.customer(f.cust);
        r.ts(f.ts, false);
        r.str(sim::SURVEYS[usize::from(f.survey)]);
        r.uint(u64::from(f.score));
        r.opt_text(&self.text);
        r.str(sim::TOUCHPOINTS[usize::from(f.touchpoint)]);
        if f.item > 0 {
            r.uint(u64::from(f.item));
        } else {
            r.null();
        }
        r.str(&contact.email);
        let kept = self.emit(FEEDBACK, self.owner(f.cust));
        if !kept {
            return;
        }
        if let Some(kind) = pii {
            self.pii_counts[0][pii_index(kind)] += 1;
        }
        let rz = &mut self.realized;
        let l = usize::from(lang);
        match f.survey {
            sim::NPS => {
                rz.nps_by_lang[l].add(f64::from(f.score));
                rz.promoters_by_lang[l] += u64::from(f.score >= 9);
                rz.detractors_by_lang[l] += u64::from(f.score <= 6);
                rz.commented_nps_by_lang[l] += u64::from(!self.text.is_empty());
            }
            sim::EMPATHY => {
                let after = usize::from(day >= self.training_day);
                if f.touchpoint == 0 {
                    rz.empathy_in_store[after].add(f64::from(f.score));
                } else {
                    rz.empathy_elsewhere[after].add(f64::from(f.score));
                }
            }
            _ => {}
        }
    }

    fn ticket(&mut self, tk: &sim::TicketRec) {
        let id = self.next_id(TICKETS);
        let lang = self.lang(tk.cust);
        self.text.clear();
        text::ticket_message(&mut self.rng, lang, tk.topic, tk.upset, &mut self.text);
        let mut pii = None;
        let p_pii = if tk.topic == 2 { 0.03 } else { 0.008 };
        if self.rng.random_bool(p_pii) {
            let kind = if tk.topic == 2 && self.rng.random_bool(0.6) {
                if self.rng.random_bool(0.5) {
                    Pii::Card
                } else {
                    Pii::Iban
                }
            } else {
                Pii::ALL[self.rng.random_range(0..5)]
            };
            text::append_pii(&mut self.rng, lang, kind, &mut self.text);
            pii = Some(kind);
        }
        let mut reply = String::with_capacity(160);
        text::reply(
            &mut self.rng,
            tk.topic,
            tk.warm,
            tk.handled_by == 1,
            &mut reply,
        );
        let r = &mut self.row;
        r.clear();
        r.id("T", id, 8);
        r.customer(tk.cust);
        r.ts(tk.created, true);
        r.ts(tk.first_response, true);
        r.opt_ts(tk.resolved, true);
        r.str(sim::TICKET_CHANNELS[usize::from(tk.channel)]);
        r.str(sim::HANDLERS[usize::from(tk.handled_by)]);
        r.str(text::TOPICS[usize::from(tk.topic)]);
        if tk.satisfaction > 0 {
            r.uint(u64::from(tk.satisfaction));
        } else {
            r.null();
        }
        r.opt_ts(tk.follow_up, true);
        r.boolean(tk.reopened);
        r.text(&self.text);
        r.text(&reply);
        let kept = self.emit(TICKETS, self.owner(tk.cust));
        if !kept {
            return;
        }
        if let Some(kind) = pii {
            self.pii_counts[1][pii_index(kind)] += 1;
        }
        let age = usize::from(self.age65(tk.cust));
        let rz = &mut self.realized;
        rz.tickets_by_age[age] += 1;
        rz.handled_by_age[age][usize::from(tk.handled_by)] += 1;
        rz.wait_hours_by_age[age].add((tk.first_response - tk.created) as f64 / 3600.0);
        let w = &mut rz.warm_by_channel[usize::from(tk.channel)];
        w.0 += 1;
        w.1 += u64::from(tk.warm);
    }

    fn review(&mut self, rv: &sim::ReviewRec) {
        let id = self.next_id(REVIEWS);
        let lang = self.lang(rv.cust);
        self.text.clear();
        text::review(&mut self.rng, lang, rv.rating, &mut self.text);
        let mut pii = None;
        if self.rng.random_bool(0.01) {
            let kind = Pii::ALL[self.rng.random_range(0..5)];
            text::append_pii(&mut self.rng, lang, kind, &mut self.text);
            pii = Some(kind);
        }
        let r = &mut self.row;
        r.clear();
        r.id("V", id, 8);
        r.ts(rv.ts, false);
        if rv.anonymous {
            r.null();
        } else {
            r.customer(rv.cust);
        }
        r.str(sim::PLATFORMS[usize::from(rv.platform)]);
        r.uint(u64::from(rv.rating));
        r.text(&self.text);
        r.opt_ts(rv.replied, false);
        let owner = if rv.anonymous {
            Owner::Anonymous
        } else {
            self.owner(rv.cust)
        };
        if self.emit(REVIEWS, owner)
            && let Some(kind) = pii
        {
            self.pii_counts[2][pii_index(kind)] += 1;
        }
    }

    fn offer(&mut self, o: &sim::OfferRec) {
        let id = self.next_id(OFFERS);
        let r = &mut self.row;
        r.clear();
        r.id("F", id, 9);
        r.customer(o.cust);
        r.ts(o.ts, false);
        r.str(sim::OFFER_TYPES[usize::from(o.offer_type)]);
        r.tenths(u32::from(o.pct_tenths));
        r.str(sim::DECIDERS[usize::from(o.decided_by)]);
        if self.emit(OFFERS, self.owner(o.cust)) {
            let region = self.region(o.cust);
            self.realized.offer_pct_by_region[region].add(f64::from(o.pct_tenths) / 10.0);
        }
    }

    fn initiative(&mut self, i: &sim::InitiativeRec) {
        let start = self.start_epoch_day;
        let r = &mut self.row;
        r.clear();
        r.str(i.id);
        r.str(i.name);
        r.date(start + i64::from(i.started_day));
        match i.ended_day {
            Some(d) => r.date(start + i64::from(d)),
            None => r.null(),
        }
        r.money(i.cost_cents as i64);
        r.str("EUR");
        r.text(i.description);
        self.emit(INITIATIVES, Owner::Anonymous);
    }

    fn assignment(&mut self, a: &sim::AssignmentRec) {
        let r = &mut self.row;
        r.clear();
        r.customer(a.cust);
        r.str("I0001");
        r.ts(a.ts, false);
        r.str(if a.arm == sim::ARM_TREATMENT {
            "treatment"
        } else {
            "control"
        });
        if self.emit(ASSIGNMENTS, self.owner(a.cust)) {
            self.flags[a.cust as usize] |= a.arm << 1;
        }
    }

    fn flush(&mut self, day: u32) -> Result<()> {
        let date = date_text(self.start_epoch_day + i64::from(day));
        for out in self.tables.iter_mut().filter(|t| t.index != WEB_SESSIONS) {
            out.flush(&self.landing, &date, self.seed, day)?;
        }
        Ok(())
    }

    /// Final per-table accounting, and the retention counts per loyalty arm.
    /// Truths of every table but web_sessions, in table order; `pii` rows:
    /// feedback.comment, tickets.message, reviews.text, customers.notes.
    pub fn finish(mut self) -> (Vec<TableTruth>, Realized, [[u64; 5]; 4]) {
        for &f in &self.flags {
            let arm = usize::from((f >> 1) & 3);
            if arm != 0 {
                self.realized.arm_customers[arm] += 1;
                self.realized.arm_retained[arm] += u64::from(f & RECENT_ORDER != 0);
            }
        }
        let mut pii_counts = self.pii_counts;
        pii_counts[3][pii_index(Pii::Phone)] = self.notes_phone;
        let truths = self
            .tables
            .into_iter()
            .filter(|t| t.index != WEB_SESSIONS)
            .map(TableOut::finish)
            .collect();
        (truths, self.realized, pii_counts)
    }
}

fn serialize(row: &Row, def: &TableDef, json: bool, out: &mut Vec<u8>) {
    if json {
        row.write_json(def.columns, out);
    } else {
        row.write_csv(out);
    }
}

/// The tone a comment must have to fit its score.
pub fn survey_tone(survey: u8, score: u8) -> Tone {
    match (survey, score) {
        (sim::NPS, 9..) => Tone::Positive,
        (sim::NPS, 7..=8) => Tone::Mixed,
        (sim::NPS, _) => Tone::Negative,
        (sim::CSAT, 4..) => Tone::Positive,
        (sim::CSAT, 3) => Tone::Mixed,
        (sim::CSAT, _) => Tone::Negative,
        (_, 6..) => Tone::Positive,
        (_, 4..=5) => Tone::Neutral,
        _ => Tone::Negative,
    }
}
