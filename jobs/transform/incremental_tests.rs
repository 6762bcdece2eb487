//! Incremental data tests of a staging view: a night tests only the rows
//! that were not in the view the last night its tests passed, instead of
//! every record ever exported.
//!
//! A view declares it in its header,
//! `-- incremental tests: exported on <export day>, entering on <timestamp>`:
//! the view keeps, of each record, the copy of the latest export up to the
//! run date, from the day of its `<timestamp>` on, and its tested columns
//! do not change with the run date. Then, if the night N passed the tests
//! and what the lake holds up to N is unchanged (recorded as the models'
//! partitions are, see [`super::provenance`], in `marts/_tested/<view>/`,
//! which no listing of tables reads: a view writes no partition), each row
//! of the view on the night D is
//! - a row exported after N, or
//! - a row exported by N whose timestamp falls after N's end (it entered
//!   the view after N: a pre-order exported early), or
//! - a row the view held on the night N, with the tested values it had
//!   then: a record replaced since leaves the view, and only removing
//!   rows cannot make a row-level test fail.
//!
//! So the first two, which the lake's partitions and row-group statistics
//! find without reading the history, are the rows to test. Only row-level
//! tests (`not_null`, `range`, `accepted_values`) can be carried; `unique`
//! and `relationships` compare rows with each other. The promise about the
//! tested columns is checked on the view's plan: a tested column computed
//! from `run_date()` (as `stg_tickets`' answer times are) is refused.
//!
//! The staging views' tests read every row of the history each night: 4.5
//! of the 24 CPU-seconds of an incremental transform at a million
//! customers. `transform.incremental = false` tests every row.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use datafusion::logical_expr::{col, lit};
use datafusion::prelude::{DataFrame, SessionContext};

use super::incremental::{Night, column_type, day_start, listed};
use super::lineage::{ModelLineage, Source};
use super::models::{DataTest, Materialized, Model};
use super::provenance;
use crate::context::JobContext;
use crate::utc_dates::epoch_day;
use crate::{Error, Result};

/// A view's `-- incremental tests:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrementalTests {
    /// The column holding the export day (the lake partition `dt`) of the
    /// record's copy the view keeps.
    pub exported: String,
    /// The timestamp from whose day on the record is in the view.
    pub entering: String,
}

impl IncrementalTests {
    /// Parses `exported on <column>, entering on <column>` and checks it
    /// against the rest of the header.
    pub fn parse(
        value: &str,
        materialized: Materialized,
        columns: &[(String, String)],
        tests: &[(String, DataTest)],
    ) -> std::result::Result<Self, String> {
        let (exported, entering) = value
            .strip_prefix("exported on ")
            .and_then(|rest| rest.split_once(", entering on "))
            .map(|(a, b)| (a.trim(), b.trim()))
            .ok_or("write `exported on <export day column>, entering on <timestamp column>`")?;
        if materialized != Materialized::View {
            return Err(format!(
                "only a view's tests can be incremental; a {} is tested on the rows it holds",
                materialized.as_str()
            ));
        }
        for column in [exported, entering] {
            if !columns.iter().any(|(c, _)| c == column) {
                return Err(format!("`{column}` has no `-- column {column}:` line"));
            }
        }
        if let Some((column, test)) = tests
            .iter()
            .find(|(_, t)| matches!(t, DataTest::Unique | DataTest::Relationships { .. }))
        {
            return Err(format!(
                "the {} test on `{column}` compares rows with other rows, so it cannot test the new rows alone",
                test.name()
            ));
        }
        Ok(Self {
            exported: exported.to_string(),
            entering: entering.to_string(),
        })
    }
}

/// The rows of `model`, a view just registered in the night's session,
/// that its tests must read: `None` to test every row (no incremental
/// tests declared or allowed, or no earlier night whose tests passed on
/// the lake as it is now), else the night N since which, and the rows
/// exported after N or entering after it.
pub async fn since(
    night: &mut Night<'_>,
    known: &BTreeMap<String, ModelLineage>,
    model: &Model,
) -> Result<Option<(NaiveDate, DataFrame)>> {
    let Some(spec) = &model.incremental_tests else {
        return Ok(None);
    };
    check_lineage(model, spec, known)?;
    if !night.ctx.cfg.transform_incremental {
        return Ok(None);
    }
    let storage = &night.ctx.storage;
    let record = record_name(&model.name);
    let Some(earlier) = provenance::latest_recorded_before(storage, &record, night.date).await?
    else {
        return Ok(None);
    };
    let Some(recorded) = provenance::recorded(storage, &record, earlier).await? else {
        return Ok(None);
    };
    if recorded != night.digest_of(earlier).await? {
        return Ok(None);
    }
    let rows = entered_after(
        night.session,
        &model.name,
        &spec.exported,
        &spec.entering,
        earlier,
    )
    .await?;
    Ok(Some((earlier, rows)))
}

/// The rows of `view` (a table of `session` that keeps each record's copy
/// of the latest export, from the day of its `entering` timestamp on) that
/// were not in it on the night `earlier`: those exported after it (the
/// export day is the column `exported`) and those exported by it that
/// enter after its end.
pub async fn entered_after(
    session: &SessionContext,
    view: &str,
    exported: &str,
    entering: &str,
    earlier: NaiveDate,
) -> Result<DataFrame> {
    let day_type = column_type(session, view, exported).await?;
    let ts_type = column_type(session, view, entering).await?;
    let last_day = lit(day_start(&day_type, epoch_day(earlier))?);
    let rows = session.table(view).await?;
    // Two scans, not one with OR: the first is cut to the new partitions by
    // their folders, the second to the row groups whose statistics reach
    // past N; a disjunction of the two could use neither.
    let exported_after = rows.clone().filter(col(exported).gt(last_day.clone()))?;
    let entered_after = rows.filter(
        col(exported)
            .lt_eq(last_day)
            .and(col(entering).gt_eq(lit(day_start(&ts_type, epoch_day(earlier) + 1)?))),
    )?;
    Ok(exported_after.union(entered_after)?)
}

/// Records that the tests of every view with incremental tests passed on
/// `date` with the lake as `digest` says, and drops the records of the
/// nights before the latest earlier one: a night starts from the latest,
/// and the night before it stays for a run of the same date again.
pub async fn record_passed(
    ctx: &JobContext,
    models: &[Model],
    date: NaiveDate,
    digest: &str,
) -> Result<()> {
    for model in models.iter().filter(|m| m.incremental_tests.is_some()) {
        let record = record_name(&model.name);
        let previous = provenance::latest_recorded_before(&ctx.storage, &record, date).await?;
        provenance::record(ctx, &record, date, digest).await?;
        provenance::forget_before(ctx, &record, previous.unwrap_or(date)).await?;
    }
    Ok(())
}

/// Where the records of `view` are, under `marts/`.
fn record_name(view: &str) -> String {
    format!("_tested/{view}")
}

/// The view's plan must keep the header's promise: the export day is the
/// lake partition of the table the timestamp is read from, and no tested
/// column (nor those two) is computed from `run_date()`.
fn check_lineage(
    model: &Model,
    spec: &IncrementalTests,
    known: &BTreeMap<String, ModelLineage>,
) -> Result<()> {
    let refuse = |reason: String| Error::Model {
        model: model.name.clone(),
        reason: format!(
            "`-- incremental tests: exported on {}, entering on {}`: {reason}",
            spec.exported, spec.entering
        ),
    };
    let lineage = known
        .get(&model.name)
        .ok_or_else(|| refuse("the view has no lineage".into()))?;
    let sources = |column: &str| -> Vec<&Source> {
        lineage
            .outputs
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, s)| s.iter().collect())
            .unwrap_or_default()
    };
    let entering = match sources(&spec.entering).as_slice() {
        [one] => (*one).clone(),
        other => {
            return Err(refuse(format!(
                "`{}` must be one lake column passed through; it is read from {}",
                spec.entering,
                listed(other)
            )));
        }
    };
    let partition = (entering.0.clone(), "dt".to_string());
    if sources(&spec.exported).as_slice() != [&partition] {
        return Err(refuse(format!(
            "`{}` must be the partition column {}.dt of the table `{}` is read from; it is read from {}",
            spec.exported,
            entering.0,
            spec.entering,
            listed(&sources(&spec.exported))
        )));
    }
    let tested = model.tests.iter().map(|(c, _)| c);
    for column in [&spec.exported, &spec.entering].into_iter().chain(tested) {
        if lineage.dated.contains(column) {
            return Err(refuse(format!(
                "`{column}` is computed from run_date(), so a row tested on an earlier night may hold another value now; test it on every row (drop the line) or test a column that does not change with the date"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::transform::models::test_header::columns;

    #[test]
    fn the_header_line_names_the_export_day_and_the_entering_timestamp() {
        let cols = columns(&["order_id", "ordered_at", "source_dt"]);
        let tests = vec![("order_id".to_string(), DataTest::NotNull)];
        assert_eq!(
            IncrementalTests::parse(
                "exported on source_dt, entering on ordered_at",
                Materialized::View,
                &cols,
                &tests
            ),
            Ok(IncrementalTests {
                exported: "source_dt".into(),
                entering: "ordered_at".into()
            })
        );
        let err = |value: &str, m: Materialized, tests: &[(String, DataTest)]| {
            IncrementalTests::parse(value, m, &cols, tests).expect_err(value)
        };
        assert!(err("by source_dt", Materialized::View, &tests).contains("exported on"));
        assert!(
            err(
                "exported on source_dt, entering on ordered_at",
                Materialized::Table,
                &tests
            )
            .contains("a table is tested on the rows it holds")
        );
        assert!(
            err(
                "exported on dt, entering on ordered_at",
                Materialized::View,
                &tests
            )
            .contains("`dt` has no `-- column dt:` line")
        );
        let unique = vec![("order_id".to_string(), DataTest::Unique)];
        assert!(
            err(
                "exported on source_dt, entering on ordered_at",
                Materialized::View,
                &unique
            )
            .contains("the unique test on `order_id` compares rows")
        );
    }
}
