//! Input contracts: what each canonical table may contain and what happens to it.
//!
//! One TOML file per table under `schemas/` (compiled into the binary, so the
//! contract a lake was written with travels with the program). Each column
//! declares its type, constraints, privacy class, purpose and handling; a
//! [`Contract`] is checked once at start-up and then drives ingest, the lake
//! schema and the privacy inventory. Uniqueness is declared once, as the
//! table's `primary_key`: ingest keeps the first row per key and counts the
//! rest as duplicates.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use regex::Regex;
use serde::Deserialize;

use crate::{Error, Result};

/// The canonical tables, in ingest order (customers first: consent decisions
/// must be known before any other row of the day is kept).
pub const TABLES: [&str; 9] = [
    "customers",
    "orders",
    "feedback",
    "tickets",
    "reviews",
    "web_sessions",
    "offers",
    "initiatives",
    "initiative_assignments",
];

const SOURCES: [(&str, &str); 9] = [
    ("customers", include_str!("../schemas/customers.toml")),
    ("orders", include_str!("../schemas/orders.toml")),
    ("feedback", include_str!("../schemas/feedback.toml")),
    ("tickets", include_str!("../schemas/tickets.toml")),
    ("reviews", include_str!("../schemas/reviews.toml")),
    ("web_sessions", include_str!("../schemas/web_sessions.toml")),
    ("offers", include_str!("../schemas/offers.toml")),
    ("initiatives", include_str!("../schemas/initiatives.toml")),
    (
        "initiative_assignments",
        include_str!("../schemas/initiative_assignments.toml"),
    ),
];

/// Column value type in an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    String,
    Int,
    Float,
    Bool,
    Date,
    Timestamp,
}

/// Privacy class of a column (see DESIGN.md, "Privacy classes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Privacy {
    Identifier,
    DirectPii,
    QuasiIdentifier,
    Sensitive,
    FreeText,
    Consent,
    Plain,
}

/// What ingest does with a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Handling {
    Keep,
    Pseudonymize,
    Generalize,
    Redact,
    Drop,
}

impl Handling {
    /// The word used in inventories and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Handling::Keep => "kept",
            Handling::Pseudonymize => "pseudonymized",
            Handling::Generalize => "generalized",
            Handling::Redact => "redacted",
            Handling::Drop => "dropped",
        }
    }
}

/// How a quasi-identifier is coarsened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generalization {
    /// Keep the first `length` characters (postal code → district).
    Prefix { length: usize },
    /// Birth year → age band at the partition date.
    AgeBand,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContract {
    table: String,
    description: String,
    primary_key: Vec<String>,
    columns: Vec<RawColumn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    required: bool,
    privacy: String,
    handling: String,
    purpose: String,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
    #[serde(default, rename = "enum")]
    allowed: Option<Vec<String>>,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    range_by: Option<RawRangeBy>,
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    generalize: Option<RawGeneralize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRangeBy {
    column: String,
    ranges: BTreeMap<String, [f64; 2]>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGeneralize {
    method: String,
    output: String,
    #[serde(default)]
    length: Option<usize>,
}

/// A range that depends on another column's value (a score's scale depends on the survey type).
#[derive(Debug, Clone)]
pub struct RangeBy {
    /// Index of the column whose value picks the range.
    pub column: usize,
    pub ranges: BTreeMap<String, (f64, f64)>,
}

/// One checked column of a contract.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub required: bool,
    pub privacy: Privacy,
    pub handling: Handling,
    pub purpose: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub allowed: Option<Vec<String>>,
    pub pattern: Option<Regex>,
    pub range_by: Option<RangeBy>,
    /// A timestamp that cannot come before another column's (a first
    /// response before the ticket was opened): the index of that column.
    pub not_before: Option<usize>,
    pub generalize: Option<Generalization>,
    /// Name in the lake (differs from `name` when generalized).
    pub output: String,
}

impl Column {
    /// Whether the column reaches the lake.
    pub fn is_kept(&self) -> bool {
        self.handling != Handling::Drop
    }

    /// Arrow type of the column in the lake.
    pub fn lake_type(&self) -> DataType {
        if self.handling == Handling::Generalize || self.handling == Handling::Pseudonymize {
            return DataType::Utf8;
        }
        match self.ty {
            ColumnType::String => DataType::Utf8,
            ColumnType::Int => DataType::Int64,
            ColumnType::Float => DataType::Float64,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }
}

/// A checked input contract for one canonical table.
#[derive(Debug, Clone)]
pub struct Contract {
    pub table: String,
    pub description: String,
    pub columns: Vec<Column>,
    /// Indices into `columns`.
    pub primary_key: Vec<usize>,
}

impl Contract {
    /// Parses and checks one contract; `table` is the name it is registered under.
    pub fn parse(table: &str, text: &str) -> Result<Contract> {
        let bad = |reason: String| Error::Contract {
            table: table.to_string(),
            reason,
        };
        let raw: RawContract = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if raw.table != table {
            return Err(bad(format!(
                "declares table `{}` but is registered as `{table}`",
                raw.table
            )));
        }
        let mut columns = Vec::with_capacity(raw.columns.len());
        for rc in &raw.columns {
            if columns.iter().any(|c: &Column| c.name == rc.name) {
                return Err(bad(format!("column `{}` is declared twice", rc.name)));
            }
            columns.push(check_column(rc).map_err(|r| bad(format!("column `{}`: {r}", rc.name)))?);
        }
        // range_by refers to another column: resolve after all are known.
        for (i, rc) in raw.columns.iter().enumerate() {
            if let Some(rb) = &rc.range_by {
                let Some(j) = columns.iter().position(|c| c.name == rb.column) else {
                    return Err(bad(format!(
                        "column `{}`: range_by refers to unknown column `{}`",
                        rc.name, rb.column
                    )));
                };
                let ranges = rb
                    .ranges
                    .iter()
                    .map(|(k, [lo, hi])| (k.clone(), (*lo, *hi)))
                    .collect();
                columns[i].range_by = Some(RangeBy { column: j, ranges });
            }
        }
        for (i, rc) in raw.columns.iter().enumerate() {
            if let Some(other) = &rc.not_before {
                let j = columns.iter().position(|c| &c.name == other);
                let timestamps = |k: usize| columns[k].ty == ColumnType::Timestamp;
                match j {
                    Some(j) if j != i && timestamps(i) && timestamps(j) => {
                        columns[i].not_before = Some(j);
                    }
                    _ => {
                        return Err(bad(format!(
                            "column `{}`: not_before must name another timestamp column (got `{other}`)",
                            rc.name
                        )));
                    }
                }
            }
        }
        let mut primary_key = Vec::new();
        for k in &raw.primary_key {
            let Some(i) = columns.iter().position(|c| &c.name == k) else {
                return Err(bad(format!("primary key column `{k}` is not declared")));
            };
            if !columns[i].required {
                return Err(bad(format!("primary key column `{k}` must be required")));
            }
            primary_key.push(i);
        }
        if primary_key.is_empty() {
            return Err(bad("primary_key is empty".into()));
        }
        let mut outputs = std::collections::BTreeSet::new();
        for c in columns.iter().filter(|c| c.is_kept()) {
            if !outputs.insert(c.output.clone()) {
                return Err(bad(format!("two columns write lake column `{}`", c.output)));
            }
        }
        Ok(Contract {
            table: raw.table,
            description: raw.description,
            columns,
            primary_key,
        })
    }

    /// The Arrow schema of `lake/<table>` (the hive `dt` column comes from the path).
    pub fn lake_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .filter(|c| c.is_kept())
            .map(|c| Field::new(&c.output, c.lake_type(), !c.required))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// Lake columns whose values are nearly all distinct within a day:
    /// keys, pseudonyms, timestamps and free text. A Parquet dictionary of
    /// such a column holds every value once more, so building it is work
    /// that buys nothing (interning values and writing dictionary pages
    /// were 12% of ingest's CPU time in `perf` at 1M customers).
    pub fn distinct_columns(&self) -> Vec<&str> {
        self.columns
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                c.is_kept()
                    && (self.primary_key.contains(i)
                        || matches!(c.handling, Handling::Pseudonymize | Handling::Redact)
                        || c.ty == ColumnType::Timestamp)
            })
            .map(|(_, c)| c.output.as_str())
            .collect()
    }

    /// Lake columns whose values are spread over their whole range in
    /// every page: pseudonyms (uniform hex) that are not the table's key,
    /// and free text. Their minimum and maximum would prune no read, so
    /// the lake keeps none (a key keeps its range: a day's re-exported
    /// keys are looked up by it).
    pub fn unranged_columns(&self) -> Vec<&str> {
        self.columns
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                c.is_kept()
                    && !self.primary_key.contains(i)
                    && matches!(c.handling, Handling::Pseudonymize | Handling::Redact)
            })
            .map(|(_, c)| c.output.as_str())
            .collect()
    }

    /// Index of a column by its export name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Index of the (pseudonymized) customer column, if the table has one.
    pub fn customer_column(&self) -> Option<usize> {
        self.column_index("customer_id")
    }
}

fn check_column(rc: &RawColumn) -> std::result::Result<Column, String> {
    let ty = match rc.ty.as_str() {
        "string" => ColumnType::String,
        "int" => ColumnType::Int,
        "float" => ColumnType::Float,
        "bool" => ColumnType::Bool,
        "date" => ColumnType::Date,
        "timestamp" => ColumnType::Timestamp,
        other => {
            return Err(format!(
                "unknown type `{other}` (expected string, int, float, bool, date or timestamp)"
            ));
        }
    };
    let privacy = match rc.privacy.as_str() {
        "identifier" => Privacy::Identifier,
        "direct_pii" => Privacy::DirectPii,
        "quasi_identifier" => Privacy::QuasiIdentifier,
        "sensitive" => Privacy::Sensitive,
        "free_text" => Privacy::FreeText,
        "consent" => Privacy::Consent,
        "plain" => Privacy::Plain,
        other => {
            return Err(format!(
                "unknown privacy class `{other}` (expected identifier, direct_pii, quasi_identifier, sensitive, free_text, consent or plain)"
            ));
        }
    };
    let handling = match rc.handling.as_str() {
        "keep" => Handling::Keep,
        "pseudonymize" => Handling::Pseudonymize,
        "generalize" => Handling::Generalize,
        "redact" => Handling::Redact,
        "drop" => Handling::Drop,
        other => {
            return Err(format!(
                "unknown handling `{other}` (expected keep, pseudonymize, generalize, redact or drop)"
            ));
        }
    };
    // The privacy class limits what may be done: this is where "direct PII is
    // never written" is enforced, not in ingest code paths.
    let allowed: &[Handling] = match privacy {
        Privacy::Identifier => &[Handling::Pseudonymize, Handling::Drop],
        Privacy::DirectPii => &[Handling::Drop],
        Privacy::QuasiIdentifier => &[Handling::Generalize, Handling::Drop],
        Privacy::FreeText => &[Handling::Redact, Handling::Drop],
        Privacy::Sensitive | Privacy::Consent | Privacy::Plain => &[Handling::Keep, Handling::Drop],
    };
    if !allowed.contains(&handling) {
        return Err(format!(
            "handling `{}` is not allowed for privacy class `{}`",
            rc.handling, rc.privacy
        ));
    }
    if rc.purpose.trim().is_empty() {
        return Err("purpose is empty: say why the column is kept".into());
    }
    if (handling == Handling::Pseudonymize || handling == Handling::Redact)
        && ty != ColumnType::String
    {
        return Err(format!("handling `{}` needs type string", rc.handling));
    }
    let generalize = match (&rc.generalize, handling) {
        (Some(g), Handling::Generalize) => Some(match g.method.as_str() {
            "prefix" => {
                let length = g
                    .length
                    .ok_or("generalize method `prefix` needs `length`")?;
                if length == 0 {
                    return Err("generalize `length` must be at least 1".into());
                }
                Generalization::Prefix { length }
            }
            "age_band" if ty == ColumnType::Int => Generalization::AgeBand,
            "age_band" => return Err("generalize method `age_band` needs type int".into()),
            other => {
                return Err(format!(
                    "unknown generalize method `{other}` (expected prefix or age_band)"
                ));
            }
        }),
        (None, Handling::Generalize) => {
            return Err("handling `generalize` needs a `generalize` table".into());
        }
        (Some(_), _) => return Err("`generalize` given but handling is not `generalize`".into()),
        (None, _) => None,
    };
    let output = match &rc.generalize {
        Some(g) => g.output.clone(),
        None => rc.name.clone(),
    };
    if (rc.min.is_some() || rc.max.is_some()) && !matches!(ty, ColumnType::Int | ColumnType::Float)
    {
        return Err("min/max need type int or float".into());
    }
    if let (Some(lo), Some(hi)) = (rc.min, rc.max)
        && lo > hi
    {
        return Err(format!("min {lo} is above max {hi}"));
    }
    if (rc.allowed.is_some() || rc.pattern.is_some()) && ty != ColumnType::String {
        return Err("enum/pattern need type string".into());
    }
    let pattern = match &rc.pattern {
        Some(p) => Some(Regex::new(p).map_err(|e| format!("pattern does not compile: {e}"))?),
        None => None,
    };
    Ok(Column {
        name: rc.name.clone(),
        ty,
        required: rc.required,
        privacy,
        handling,
        purpose: rc.purpose.clone(),
        min: rc.min,
        max: rc.max,
        allowed: rc.allowed.clone(),
        pattern,
        range_by: None,
        not_before: None,
        generalize,
        output,
    })
}

/// All canonical contracts, checked.
#[derive(Debug, Clone)]
pub struct Contracts {
    by_table: BTreeMap<String, Arc<Contract>>,
}

impl Contracts {
    /// The contracts compiled into attune (from `schemas/`).
    pub fn builtin() -> Result<Contracts> {
        let mut by_table = BTreeMap::new();
        for (table, text) in SOURCES {
            by_table.insert(table.to_string(), Arc::new(Contract::parse(table, text)?));
        }
        Ok(Contracts { by_table })
    }

    /// The contract of `table`.
    pub fn get(&self, table: &str) -> Result<Arc<Contract>> {
        self.by_table.get(table).cloned().ok_or_else(|| {
            Error::Config(format!(
                "unknown table `{table}` (known: {})",
                TABLES.join(", ")
            ))
        })
    }

    /// Contracts in ingest order.
    pub fn iter(&self) -> impl Iterator<Item = Arc<Contract>> + '_ {
        TABLES.iter().filter_map(|t| self.by_table.get(*t).cloned())
    }
}

/// Age band of a person born in `birth_year`, at `year`. Bands follow the
/// usual market-research cut points so groups are comparable across reports.
pub fn age_band(birth_year: i64, year: i64) -> &'static str {
    match year - birth_year {
        i64::MIN..=17 => "under_18",
        18..=24 => "18-24",
        25..=34 => "25-34",
        35..=44 => "35-44",
        45..=54 => "45-54",
        55..=64 => "55-64",
        _ => "65+",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Contract> {
        Contract::parse("t", text)
    }

    const HEAD: &str = "table = \"t\"\ndescription = \"d\"\nprimary_key = [\"id\"]\n[[columns]]\nname = \"id\"\ntype = \"string\"\nrequired = true\nprivacy = \"plain\"\nhandling = \"keep\"\npurpose = \"key\"\n";

    #[test]
    fn builtin_contracts_parse() {
        let c = Contracts::builtin().expect("shipped contracts are valid");
        assert_eq!(c.iter().count(), TABLES.len());
        for contract in c.iter() {
            assert!(
                !contract.lake_schema().fields().is_empty(),
                "{}",
                contract.table
            );
        }
    }

    #[test]
    fn direct_pii_never_reaches_the_lake_schema() {
        let c = Contracts::builtin().expect("valid");
        for contract in c.iter() {
            let schema = contract.lake_schema();
            for col in contract
                .columns
                .iter()
                .filter(|c| c.privacy == Privacy::DirectPii)
            {
                assert!(
                    schema.field_with_name(&col.name).is_err(),
                    "{}.{}",
                    contract.table,
                    col.name
                );
            }
        }
        let customers = c.get("customers").expect("exists");
        let names: Vec<_> = customers
            .lake_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert!(names.contains(&"age_band".to_string()));
        assert!(names.contains(&"postal_prefix".to_string()));
        assert!(!names.contains(&"birth_year".to_string()));
    }

    /// The shipped contracts' columns without a range: the customer's
    /// pseudonym where it is not the key, the free text; never a key (the
    /// customers' pseudonym is theirs), a timestamp or an amount.
    #[test]
    fn only_pseudonyms_off_the_key_and_free_text_go_without_a_range() {
        let c = Contracts::builtin().expect("valid");
        let unranged = |t: &str| -> Vec<String> {
            let contract = c.get(t).expect("shipped");
            contract
                .unranged_columns()
                .into_iter()
                .map(String::from)
                .collect()
        };
        assert_eq!(unranged("orders"), ["customer_id"]);
        assert!(
            unranged("customers").is_empty(),
            "{:?}",
            unranged("customers")
        );
        assert!(unranged("initiative_assignments").is_empty());
        for contract in c.iter() {
            let names = contract.unranged_columns();
            for (i, col) in contract.columns.iter().enumerate() {
                let at = |what: &str| format!("{}.{} {what}", contract.table, col.name);
                if names.contains(&col.output.as_str()) {
                    assert!(!contract.primary_key.contains(&i), "{}", at("is a key"));
                    assert!(col.ty == ColumnType::String, "{}", at("is not text"));
                } else if col.is_kept() && col.handling == Handling::Redact {
                    panic!("{}", at("is free text with a range"));
                }
            }
        }
        assert_eq!(unranged("feedback"), ["customer_id", "comment"]);
    }

    #[test]
    fn bad_contracts_are_rejected_with_the_reason() {
        let cases = [
            ("type = \"varchar\"", "unknown type `varchar`"),
            ("handling = \"hash\"", "unknown handling `hash`"),
            ("privacy = \"secret\"", "unknown privacy class `secret`"),
        ];
        for (replace, want) in cases {
            let key = replace.split(' ').next().expect("key");
            let text = HEAD
                .lines()
                .map(|l| if l.starts_with(key) { replace } else { l })
                .collect::<Vec<_>>()
                .join("\n");
            let err = parse(&text).expect_err(replace).to_string();
            assert!(err.contains(want), "{err} should contain {want}");
        }
        let pii_kept = HEAD.to_string()
            + "[[columns]]\nname = \"email\"\ntype = \"string\"\nprivacy = \"direct_pii\"\nhandling = \"keep\"\npurpose = \"x\"\n";
        assert!(
            parse(&pii_kept)
                .expect_err("pii")
                .to_string()
                .contains("not allowed")
        );
        let unique_flag = HEAD.to_string() + "unique = true\n";
        assert!(
            parse(&unique_flag)
                .expect_err("unique")
                .to_string()
                .contains("unique"),
            "uniqueness is primary_key's job"
        );
        let unknown_key = HEAD.to_string() + "colour = \"red\"\n";
        assert!(
            parse(&unknown_key)
                .expect_err("unknown key")
                .to_string()
                .contains("colour")
        );
        let not_before_text = HEAD.to_string()
            + "[[columns]]\nname = \"at\"\ntype = \"timestamp\"\nnot_before = \"id\"\nprivacy = \"plain\"\nhandling = \"keep\"\npurpose = \"x\"\n";
        assert!(
            parse(&not_before_text)
                .expect_err("not a timestamp")
                .to_string()
                .contains("not_before must name another timestamp column"),
        );
        let no_purpose = HEAD.replace("purpose = \"key\"", "purpose = \" \"");
        assert!(
            parse(&no_purpose)
                .expect_err("purpose")
                .to_string()
                .contains("purpose")
        );
    }

    #[test]
    fn age_bands_at_boundaries() {
        let cases = [
            (2008, "under_18"),
            (2007, "18-24"),
            (2000, "25-34"),
            (1962, "55-64"),
            (1960, "65+"),
        ];
        for (birth, want) in cases {
            assert_eq!(age_band(birth, 2025), want, "born {birth}");
        }
    }
}
