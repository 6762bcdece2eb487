//! The planted ground truth, as written to `ground_truth.json`.
//!
//! Every planted parameter sits next to the value it produced in the data
//! actually written, so a test can tell "the pipeline is wrong" from "the
//! sample was small". Realized values are computed over the rows ingest is
//! meant to keep (clean rows of consenting or anonymous customers, first
//! copies only), because that is all the downstream jobs can see.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything the generator planted, with the realized values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroundTruth {
    pub generator: String,
    pub params: ParamsTruth,
    /// Per table: what was written and what ingest must make of it.
    pub tables: BTreeMap<String, TableTruth>,
    pub customers: CustomersTruth,
    /// Customers with `consent_analytics = false` (exact).
    pub opted_out_customers: u64,
    pub opted_out_share: f64,
    pub purchase_process: PurchaseTruth,
    pub initiatives: Vec<InitiativeTruth>,
    pub biases: Vec<BiasTruth>,
    /// `table.column` → kind of personal data → rows (kept by ingest) whose
    /// text contains one such item.
    pub pii_in_free_text: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per-customer true parameters (CSV next to this file).
    pub per_customer_file: String,
    /// How to read the numbers above.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParamsTruth {
    pub customers: u64,
    pub days: u32,
    pub seed: u64,
    /// First day, `YYYY-MM-DD`.
    pub start: String,
    /// Last day (inclusive), `YYYY-MM-DD`.
    pub end: String,
}

/// Row accounting of one table over all days.
///
/// `data_rows = expected_clean_rows + consent_excluded_rows + duplicates + sum(dirty)`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableTruth {
    /// `csv`, `csv.gz` or `ndjson`.
    pub format: String,
    /// Data rows written (header lines excluded; dirty and duplicate rows included).
    pub data_rows: u64,
    /// Files written, including 0-byte ones.
    pub files: u64,
    /// 0-byte files (planted extras, and NDJSON exports of days without rows).
    pub empty_files: u64,
    /// Rows of customers who declined analytics (always clean).
    pub consent_excluded_rows: u64,
    /// Exact copies of an earlier row of the same file.
    pub duplicates: u64,
    /// Defect code → rows (one defect per row; duplicates not included).
    pub dirty: BTreeMap<String, u64>,
    /// Rows ingest should write to the lake.
    pub expected_clean_rows: u64,
    /// Columns in the export that no contract declares.
    pub undeclared_columns: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CustomersTruth {
    pub total: u64,
    /// Written to day 1's export with sign-up dates in the two years before.
    pub existing_at_start: u64,
    pub signed_up_in_period: u64,
    /// Aged 65 or more at the start date (start year minus birth year).
    pub aged_65_plus: u64,
    pub by_language: BTreeMap<String, u64>,
    pub by_region: BTreeMap<String, u64>,
}

/// The BG/NBD-like purchase process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PurchaseTruth {
    pub model: String,
    /// Purchase rate λ per (average) day ~ Gamma(shape r, scale).
    pub lambda_gamma_shape: f64,
    pub lambda_gamma_scale: f64,
    /// Dropout after each purchase with probability p ~ Beta(a, b).
    pub dropout_beta_a: f64,
    pub dropout_beta_b: f64,
    /// Chance that a new customer buys at the moment of signing up.
    pub purchase_at_signup: f64,
    /// Per-customer mean basket (EUR) ~ Gamma(shape, scale), clamped to 4–40.
    pub basket_mean_gamma_shape: f64,
    pub basket_mean_gamma_scale: f64,
    pub opening_hours: String,
    /// Intensity multipliers: Monday first.
    pub weekday_factors: Vec<f64>,
    /// Intensity multipliers: January first.
    pub month_factors: Vec<f64>,
    pub closed_on: Vec<String>,
    pub realized: BTreeMap<String, f64>,
}

/// A business initiative, its design and what it did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitiativeTruth {
    pub initiative_id: String,
    pub name: String,
    pub started_on: String,
    pub ended_on: Option<String>,
    pub cost: f64,
    pub currency: String,
    pub control_arm: bool,
    pub description: String,
    pub design: BTreeMap<String, f64>,
    pub realized: BTreeMap<String, f64>,
}

/// A planted unfairness (or a planted absence of one).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BiasTruth {
    pub id: String,
    pub description: String,
    pub table: String,
    /// The protected or grouping attribute.
    pub attribute: String,
    /// The group the bias affects.
    pub group: String,
    /// The group it is compared with.
    pub reference: String,
    /// What is unequal.
    pub outcome: String,
    pub planted: BTreeMap<String, f64>,
    /// Group → metric → value, over rows ingest keeps.
    pub realized: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Running mean.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mean {
    pub n: u64,
    pub sum: f64,
}

impl Mean {
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
    }

    pub fn value(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }
}

/// Rounds for readable JSON (the realized numbers are estimates anyway).
pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
