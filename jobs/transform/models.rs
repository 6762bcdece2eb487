//! SQL models: discovery, the comment header, and the order they run in.
//!
//! A model is one `sql/<name>.sql` file: a header of `-- key: value` lines
//! (model, materialized, purpose, grain, one `column` line per output column,
//! `test` lines), then one SELECT. The run order comes from the tables each
//! statement references, as DataFusion's SQL parser sees them — never from
//! file names.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;

use crate::{Error, Result};

include!(concat!(env!("OUT_DIR"), "/builtin_models.rs"));

/// Whether a model's result is written to `marts/` or only used inside the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Materialized {
    /// Written to `marts/<model>/dt=<date>/`.
    Table,
    /// Recomputed by every model and data test that reads it.
    View,
    /// Computed once per run and held in memory for the models and data
    /// tests that read it; never written. For a staging model that several
    /// models and many data tests read (stg_customers: its lake files are
    /// opened once a run, not once per reader).
    Memory,
}

impl Materialized {
    /// The header's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Materialized::Table => "table",
            Materialized::View => "view",
            Materialized::Memory => "memory",
        }
    }
}

/// A dbt-style data test on one column.
#[derive(Debug, Clone, PartialEq)]
pub enum DataTest {
    NotNull,
    Unique,
    Range { min: Option<f64>, max: Option<f64> },
    AcceptedValues(Vec<String>),
    Relationships { table: String, column: String },
}

impl DataTest {
    /// The test's name as written in headers.
    pub fn name(&self) -> &'static str {
        match self {
            DataTest::NotNull => "not_null",
            DataTest::Unique => "unique",
            DataTest::Range { .. } => "range",
            DataTest::AcceptedValues(_) => "accepted_values",
            DataTest::Relationships { .. } => "relationships",
        }
    }
}

/// One parsed model.
#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub sql: String,
    pub materialized: Materialized,
    pub purpose: String,
    pub grain: String,
    /// (column, documentation), in header order.
    pub columns: Vec<(String, String)>,
    /// (column, test)
    pub tests: Vec<(String, DataTest)>,
    /// Tables the SELECT reads (lowercase, unqualified).
    pub references: BTreeSet<String>,
    /// `-- incremental: <date column> by <view>.<timestamp>`: the days a
    /// night's exports touch are computed again, the rest carried over.
    pub incremental: Option<super::incremental::Incremental>,
    /// `-- incremental: per <key>, … by <view>.<timestamp>[; windows …]`:
    /// running totals per group, updated from each night's exports.
    pub totals: Option<super::totals::Totals>,
    /// `-- incremental tests: exported on <day>, entering on <timestamp>`:
    /// a view whose tests read only the rows new since they last passed.
    pub incremental_tests: Option<super::incremental_tests::IncrementalTests>,
}

/// Parses a model file.
pub fn parse_model(name: &str, text: &str) -> Result<Model> {
    let bad = |reason: String| Error::Config(format!("sql/{name}.sql: {reason}"));
    let mut header: BTreeMap<&str, String> = BTreeMap::new();
    let mut columns = Vec::new();
    let mut tests = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.trim().strip_prefix("--") else {
            continue;
        };
        let rest = rest.trim();
        let Some((key, value)) = rest.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if let Some(col) = key.strip_prefix("column ") {
            columns.push((col.trim().to_string(), value.to_string()));
        } else if let Some(col) = key.strip_prefix("test ") {
            for t in value.split(',') {
                let test = parse_test(t.trim()).map_err(|r| bad(format!("line {}: {r}", i + 1)))?;
                tests.push((col.trim().to_string(), test));
            }
        } else if [
            "model",
            "materialized",
            "purpose",
            "grain",
            "incremental",
            "incremental tests",
        ]
        .contains(&key)
        {
            header.insert(
                match key {
                    "model" => "model",
                    "materialized" => "materialized",
                    "purpose" => "purpose",
                    "incremental" => "incremental",
                    "incremental tests" => "incremental tests",
                    _ => "grain",
                },
                value.to_string(),
            );
        }
    }
    if header.get("model").map(String::as_str) != Some(name) {
        return Err(bad(format!(
            "the header must start with `-- model: {name}` (the file stem)"
        )));
    }
    let materialized = match header.get("materialized").map(String::as_str) {
        Some("table") => Materialized::Table,
        Some("view") => Materialized::View,
        Some("memory") => Materialized::Memory,
        other => {
            return Err(bad(format!(
                "`-- materialized:` must be table, view or memory, not {other:?}"
            )));
        }
    };
    let purpose = header
        .get("purpose")
        .cloned()
        .ok_or_else(|| bad("missing `-- purpose:`".into()))?;
    let grain = header
        .get("grain")
        .cloned()
        .ok_or_else(|| bad("missing `-- grain:`".into()))?;
    let sql = text.trim().trim_end_matches(';').to_string();
    let references = references(&sql).map_err(bad)?;
    for (col, test) in &tests {
        if !columns.iter().any(|(c, _)| c == col) {
            return Err(bad(format!(
                "{} test on `{col}`, which has no `-- column {col}:` line",
                test.name()
            )));
        }
    }
    let (mut incremental, mut totals) = (None, None);
    if let Some(value) = header.get("incremental") {
        let bad = |r: String| bad(format!("`-- incremental: {value}`: {r}"));
        if value.starts_with("per ") {
            totals = Some(
                super::totals::Totals::parse(value, materialized, &columns, &references)
                    .map_err(bad)?,
            );
        } else {
            incremental = Some(
                super::incremental::Incremental::parse(value, materialized, &columns, &references)
                    .map_err(bad)?,
            );
        }
    }
    let incremental_tests = header
        .get("incremental tests")
        .map(|value| {
            super::incremental_tests::IncrementalTests::parse(value, materialized, &columns, &tests)
                .map_err(|r| bad(format!("`-- incremental tests: {value}`: {r}")))
        })
        .transpose()?;
    Ok(Model {
        name: name.to_string(),
        sql,
        materialized,
        purpose,
        grain,
        columns,
        tests,
        references,
        incremental,
        totals,
        incremental_tests,
    })
}

/// Header parts as the header-line parsers' tests give them.
#[cfg(test)]
pub(crate) mod test_header {
    use std::collections::BTreeSet;

    /// `-- column` lines without documentation.
    pub fn columns(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (n.to_string(), String::new()))
            .collect()
    }

    /// The tables a SELECT reads.
    pub fn refs(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }
}

fn parse_test(text: &str) -> std::result::Result<DataTest, String> {
    let mut words = text.split_whitespace();
    let kind = words.next().ok_or("empty test")?;
    let rest: Vec<&str> = words.collect();
    let bound = |w: &str| -> std::result::Result<Option<f64>, String> {
        if w == "*" {
            Ok(None)
        } else {
            w.parse()
                .map(Some)
                .map_err(|_| format!("range bound `{w}` is not a number or *"))
        }
    };
    match (kind, rest.as_slice()) {
        ("not_null", []) => Ok(DataTest::NotNull),
        ("unique", []) => Ok(DataTest::Unique),
        ("range", [lo, hi]) => Ok(DataTest::Range {
            min: bound(lo)?,
            max: bound(hi)?,
        }),
        ("accepted_values", values) if !values.is_empty() => Ok(DataTest::AcceptedValues(
            values.iter().map(|v| v.to_string()).collect(),
        )),
        ("relationships", [target]) => {
            let (table, column) = target
                .split_once('.')
                .ok_or("relationships needs table.column")?;
            Ok(DataTest::Relationships {
                table: table.to_string(),
                column: column.to_string(),
            })
        }
        _ => Err(format!(
            "unknown test `{text}` (not_null, unique, range MIN MAX, accepted_values V…, relationships table.column)"
        )),
    }
}

/// Tables a SELECT reads, from DataFusion's parser and its resolver of
/// table references, which scopes CTE names as the planner does: a CTE
/// named like a table hides it only inside the query that defines it, and
/// not in its own definition (`WITH orders AS (SELECT … FROM orders)` reads
/// the table).
pub fn references(sql: &str) -> std::result::Result<BTreeSet<String>, String> {
    let statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
        .map_err(|e| format!("does not parse: {e}"))?;
    if statements.len() != 1 {
        return Err(format!(
            "holds {} statements; a model is exactly one SELECT",
            statements.len()
        ));
    }
    let Some(statement @ DfStatement::Statement(stmt)) = statements.front() else {
        return Err("is not a SELECT".into());
    };
    if !matches!(stmt.as_ref(), Statement::Query(_)) {
        return Err("is not a SELECT".into());
    }
    let (tables, _ctes) =
        resolve_table_references(statement, true).map_err(|e| format!("does not resolve: {e}"))?;
    Ok(tables.iter().map(|t| t.table().to_lowercase()).collect())
}

/// Loads the built-in models (or those of `dir` when given).
pub fn load(dir: Option<&std::path::Path>) -> Result<Vec<Model>> {
    sources(dir)?
        .iter()
        .map(|(n, s)| parse_model(n, s))
        .collect()
}

/// (name, SQL text) of every model, sorted by name: the built-in ones, or
/// those of `dir`.
pub fn sources(dir: Option<&std::path::Path>) -> Result<Vec<(String, String)>> {
    let mut sources: Vec<(String, String)> = match dir {
        None => BUILTIN_MODELS
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect(),
        Some(d) => {
            let mut v = Vec::new();
            for e in std::fs::read_dir(d).map_err(|e| Error::io(d, e))? {
                let p = e.map_err(|e| Error::io(d, e))?.path();
                if p.extension().is_some_and(|x| x == "sql") {
                    let name = p
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or_default()
                        .to_string();
                    v.push((
                        name,
                        std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?,
                    ));
                }
            }
            v
        }
    };
    sources.sort();
    Ok(sources)
}

/// Tables the transform itself provides to every model: the records a later
/// export replaced (see `superseded.rs`). The run date is the function
/// `run_date()`.
pub const CONTEXT_TABLES: [&str; 1] = ["superseded"];

/// Orders models so each runs after the models it reads. Every reference
/// must be a model, a lake table or a [`CONTEXT_TABLES`] entry; a cycle is an
/// error that names it.
pub fn order(models: Vec<Model>, lake_tables: &BTreeSet<String>) -> Result<Vec<Model>> {
    let names: BTreeSet<String> = models.iter().map(|m| m.name.clone()).collect();
    for m in &models {
        if lake_tables.contains(&m.name) {
            return Err(Error::Config(format!(
                "model `{}` has the name of a lake table; rename sql/{}.sql",
                m.name, m.name
            )));
        }
        // a mart another job (or the transform itself) writes would be
        // overwritten by it, or would overwrite it
        let taken = m.name == "lineage"
            || m.name.starts_with('_')
            || crate::mart::docs()?.iter().any(|d| d.table == m.name);
        if taken {
            return Err(Error::Config(format!(
                "model `{}` has the name of a mart attune writes itself (or an internal folder); rename sql/{}.sql",
                m.name, m.name
            )));
        }
        if m.columns.iter().any(|(c, _)| c == "dt") {
            return Err(Error::Config(format!(
                "model `{}` has a column `dt`, the partition column every mart gets from its folder; rename it",
                m.name
            )));
        }
        for r in &m.references {
            if !names.contains(r)
                && !lake_tables.contains(r)
                && !CONTEXT_TABLES.contains(&r.as_str())
            {
                let mut known: Vec<&str> = names
                    .iter()
                    .chain(lake_tables.iter())
                    .map(String::as_str)
                    .collect();
                known.extend(CONTEXT_TABLES);
                return Err(Error::Config(format!(
                    "model `{}` reads `{r}`, which is neither a model nor a lake table (known: {})",
                    m.name,
                    known.join(", ")
                )));
            }
        }
    }
    let mut by_name: BTreeMap<String, Model> =
        models.into_iter().map(|m| (m.name.clone(), m)).collect();
    let mut done: Vec<Model> = Vec::new();
    let mut state: BTreeMap<String, u8> = BTreeMap::new(); // 1 = visiting, 2 = done
    let keys: Vec<String> = by_name.keys().cloned().collect();
    for k in keys {
        visit(&k, &mut by_name, &mut state, &mut Vec::new(), &mut done)?;
    }
    Ok(done)
}

fn visit(
    name: &str,
    by_name: &mut BTreeMap<String, Model>,
    state: &mut BTreeMap<String, u8>,
    path: &mut Vec<String>,
    done: &mut Vec<Model>,
) -> Result<()> {
    match state.get(name) {
        Some(2) => return Ok(()),
        Some(1) => {
            let start = path.iter().position(|p| p == name).unwrap_or(0);
            let mut cycle = path[start..].to_vec();
            cycle.push(name.to_string());
            return Err(Error::Config(format!(
                "models form a cycle: {}",
                cycle.join(" → ")
            )));
        }
        _ => {}
    }
    let Some(model) = by_name.get(name) else {
        return Ok(()); // a lake table
    };
    let deps: Vec<String> = model.references.iter().cloned().collect();
    state.insert(name.to_string(), 1);
    path.push(name.to_string());
    for d in deps {
        visit(&d, by_name, state, path, done)?;
    }
    path.pop();
    state.insert(name.to_string(), 2);
    if let Some(m) = by_name.remove(name) {
        done.push(m);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, select: &str) -> Model {
        let text = format!(
            "-- model: {name}\n-- materialized: table\n-- purpose: p\n-- grain: g\n-- column a: doc\n{select}"
        );
        parse_model(name, &text).expect("parses")
    }

    #[test]
    fn references_skip_ctes_and_find_joins_and_subqueries() {
        let refs = references(
            "WITH x AS (SELECT * FROM orders) SELECT * FROM x JOIN Customers c ON true WHERE c.id IN (SELECT id FROM stg_tickets)",
        )
        .expect("parses");
        assert_eq!(
            refs.into_iter().collect::<Vec<_>>(),
            vec!["customers", "orders", "stg_tickets"]
        );
    }

    /// A CTE hides a table of its name only inside its own query, and not
    /// in its own definition: the model still depends on the table.
    #[test]
    fn a_cte_named_like_a_table_hides_it_only_where_it_is_in_scope() {
        let refs = |sql: &str| {
            references(sql)
                .expect("parses")
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            refs("WITH orders AS (SELECT * FROM orders WHERE kept) SELECT * FROM orders"),
            vec!["orders"]
        );
        assert_eq!(
            refs(
                "SELECT * FROM (WITH stg_orders AS (SELECT 1 AS x) SELECT * FROM stg_orders) a \
                 JOIN stg_orders b ON true"
            ),
            vec!["stg_orders"],
            "the subquery's CTE does not hide the outer table"
        );
        assert_eq!(
            refs("WITH a AS (SELECT * FROM orders), b AS (SELECT * FROM a) SELECT * FROM b"),
            vec!["orders"]
        );
    }

    #[test]
    fn order_follows_references_not_names() {
        let lake: BTreeSet<String> = ["orders".to_string()].into();
        let ordered = order(
            vec![
                model("a_mart", "SELECT * FROM z_stage"),
                model("z_stage", "SELECT * FROM orders"),
            ],
            &lake,
        )
        .expect("orders");
        let names: Vec<&str> = ordered.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["z_stage", "a_mart"]);
    }

    #[test]
    fn cycles_and_unknown_tables_are_named() {
        let lake = BTreeSet::new();
        let err = order(
            vec![model("a", "SELECT * FROM b"), model("b", "SELECT * FROM a")],
            &lake,
        )
        .expect_err("cycle")
        .to_string();
        assert!(err.contains("a → b → a"), "{err}");
        let err = order(vec![model("a", "SELECT * FROM ordrs")], &lake)
            .expect_err("unknown")
            .to_string();
        assert!(err.contains("`a` reads `ordrs`"), "{err}");
    }

    #[test]
    fn names_attune_writes_itself_and_a_dt_column_are_refused() {
        let lake = BTreeSet::new();
        for name in ["segments", "lineage", "superseded", "_staging"] {
            let err = order(vec![model(name, "SELECT 1 AS a")], &lake)
                .expect_err("taken")
                .to_string();
            assert!(err.contains("attune writes itself"), "{name}: {err}");
        }
        let dt = parse_model(
            "m",
            "-- model: m\n-- materialized: table\n-- purpose: p\n-- grain: g\n-- column dt: day\nSELECT DATE '2025-01-01' AS dt",
        )
        .expect("parses");
        let err = order(vec![dt], &lake).expect_err("dt").to_string();
        assert!(err.contains("column `dt`"), "{err}");
    }

    #[test]
    fn a_model_can_be_held_in_memory() {
        let m = parse_model(
            "m",
            "-- model: m\n-- materialized: memory\n-- purpose: p\n-- grain: g\n-- column x: d\nSELECT 1 AS x",
        )
        .expect("parses");
        assert_eq!(m.materialized, Materialized::Memory);
        assert_eq!(m.materialized.as_str(), "memory");
    }

    #[test]
    fn headers_are_checked() {
        let cases = [
            (
                "-- model: other\n-- materialized: table\n-- purpose: p\n-- grain: g\nSELECT 1",
                "`-- model: m`",
            ),
            (
                "-- model: m\n-- materialized: maybe\n-- purpose: p\n-- grain: g\nSELECT 1",
                "table, view or memory",
            ),
            (
                "-- model: m\n-- materialized: view\n-- grain: g\nSELECT 1",
                "purpose",
            ),
            (
                "-- model: m\n-- materialized: view\n-- purpose: p\n-- grain: g\n-- test x: not_null\nSELECT 1",
                "no `-- column x:`",
            ),
            (
                "-- model: m\n-- materialized: view\n-- purpose: p\n-- grain: g\n-- column x: d\n-- test x: sometimes\nSELECT 1",
                "unknown test",
            ),
            (
                "-- model: m\n-- materialized: view\n-- purpose: p\n-- grain: g\nSELECT 1; SELECT 2",
                "2 statements",
            ),
        ];
        for (text, want) in cases {
            let err = parse_model("m", text).expect_err(want).to_string();
            assert!(err.contains(want), "{err} should contain {want}");
        }
        let m = parse_model(
            "m",
            "-- model: m\n-- materialized: view\n-- purpose: p\n-- grain: g\n-- column x: d\n-- test x: not_null, range 0 *, accepted_values a b\nSELECT 1 AS x",
        )
        .expect("parses");
        assert_eq!(
            m.tests.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>(),
            vec![
                DataTest::NotNull,
                DataTest::Range {
                    min: Some(0.0),
                    max: None
                },
                DataTest::AcceptedValues(vec!["a".into(), "b".into()])
            ]
        );
    }
}
