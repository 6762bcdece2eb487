//! `report.json`: everything the owner's page shows, built from the marts
//! of the run date. The template places these strings and numbers and
//! computes nothing; every section names the mart tables behind it.

use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use serde::Serialize;

use super::charts::Chart;
use super::table::{self, Row};
use crate::Result;
use crate::storage::Storage;

/// Version of the report.json layout (bump when a field changes meaning).
pub const REPORT_VERSION: u32 = 1;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: u32,
    pub title: String,
    pub date: String,
    /// The run that wrote the report.
    pub run_id: String,
    pub min_group_size: usize,
    /// What a suppressed cell shows ("fewer than 10").
    pub suppressed_label: String,
    pub brief: Brief,
    pub feel: super::feel::Feel,
    pub customers: super::customers::Customers,
    pub leaving: super::leaving::Leaving,
    pub fair: super::fair::Fair,
    pub privacy: super::privacy::Privacy,
    pub initiatives: super::initiatives::Initiatives,
    pub made: super::made::Made,
}

/// Section 1: this morning in brief.
#[derive(Debug, Clone, Serialize)]
pub struct Brief {
    pub head: Head,
    /// Five bullets, one per question, each with its light.
    pub bullets: Vec<Bullet>,
}

/// One bullet of the brief.
#[derive(Debug, Clone, Serialize)]
pub struct Bullet {
    pub light: Light,
    /// The owner's question ("Are we fair?").
    pub question: String,
    /// The answer: the section's sentence, or why it cannot be answered.
    pub text: String,
    /// The section (anchor) it summarizes.
    pub anchor: String,
}

/// What every section opens with.
#[derive(Debug, Clone, Serialize)]
pub struct Head {
    pub number: u32,
    /// HTML anchor.
    pub id: String,
    pub title: String,
    /// One plain sentence: the answer to the section's question.
    pub sentence: String,
    pub light: Light,
    /// Plain statements of what is missing ("The value job did not run for this date.").
    pub missing: Vec<String>,
    /// The mart tables behind the section.
    pub sources: Vec<Source>,
}

/// A traffic light, always with words (never colour alone).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Light {
    /// grey (no data), green, amber or red; the order is the severity.
    pub level: Level,
    /// The light in words: "Good", "Keep an eye on it", "Needs attention", "No data".
    pub label: String,
}

/// Severity of a light, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Grey,
    Green,
    Amber,
    Red,
}

impl Light {
    pub fn green() -> Light {
        Light {
            level: Level::Green,
            label: "Good".into(),
        }
    }
    pub fn amber() -> Light {
        Light {
            level: Level::Amber,
            label: "Keep an eye on it".into(),
        }
    }
    pub fn red() -> Light {
        Light {
            level: Level::Red,
            label: "Needs attention".into(),
        }
    }
    pub fn grey() -> Light {
        Light {
            level: Level::Grey,
            label: "No data".into(),
        }
    }
}

/// A mart table behind a section, and where it is documented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    pub table: String,
    /// marts/<table>/dt=<date>/
    pub path: String,
    /// schemas/marts/<table>.toml or sql/<table>.sql
    pub doc: String,
    /// Whether the partition of the run date exists.
    pub present: bool,
}

/// A label and a formatted value, for small tables.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub label: String,
    pub value: String,
    pub note: String,
}

/// The marts of one date, opened once for every section.
pub struct Marts<'a> {
    pub session: SessionContext,
    pub storage: &'a Storage,
    pub date: NaiveDate,
    pub min_group_size: usize,
}

/// Which SQL-model marts exist (documented in sql/<table>.sql, not schemas/marts/).
const SQL_MARTS: &[&str] = &[
    "customer_features",
    "customer_attributes",
    "nps_daily",
    "csat_daily",
    "service_levels",
    "orders_daily",
    "web_daily",
];

impl Marts<'_> {
    /// The source record of `table` for the run date.
    pub async fn source(&self, table: &str) -> Result<Source> {
        let doc = if SQL_MARTS.contains(&table) {
            format!("sql/{table}.sql")
        } else {
            format!("schemas/marts/{table}.toml")
        };
        Ok(Source {
            table: table.to_string(),
            path: format!("marts/{table}/dt={}/", self.date),
            doc,
            present: table::has_partition(self.storage, table, self.date).await?,
        })
    }

    /// Rows of `SELECT <select> FROM <table> WHERE dt = <date> <rest>`, or
    /// `None` when the table has no partition for the date.
    pub async fn load(&self, table: &str, select: &str, rest: &str) -> Result<Option<Vec<Row>>> {
        if !table::has_partition(self.storage, table, self.date).await? {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {select} FROM {table} WHERE dt = DATE '{}' {rest}",
            self.date
        );
        Ok(Some(table::rows(&self.session, &sql).await?))
    }

    /// "fewer than N".
    pub fn fewer(&self) -> String {
        super::format::fewer_than(self.min_group_size)
    }
}

/// The sentence for a job that did not run for the date.
pub fn not_run(job: &str, table: &str) -> String {
    format!("The {job} job did not run for this date (there is no marts/{table} for it).")
}

impl Head {
    /// Says that `job` did not run, once per job however many of its tables are missing.
    pub fn job_missing(&mut self, job: &str, table: &str) {
        let prefix = format!("The {job} job did not run");
        match self.missing.iter_mut().find(|m| m.starts_with(&prefix)) {
            Some(m) => {
                *m = m.replace(" for it).", &format!(" or marts/{table} for it)."));
            }
            None => self.missing.push(not_run(job, table)),
        }
    }
}

/// A section head with the light and sentence of a section with nothing to show.
pub fn head(number: u32, id: &str, title: &str, sources: Vec<Source>) -> Head {
    Head {
        number,
        id: id.into(),
        title: title.into(),
        sentence: String::new(),
        light: Light::grey(),
        missing: Vec::new(),
        sources,
    }
}

/// Keeps charts optional in the JSON (absent when there is nothing to draw).
pub type MaybeChart = Option<Chart>;
