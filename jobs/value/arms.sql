-- Initiative arm of each customer as of the run date (value job: churn
-- rates by arm). Reads lake initiative_assignments, lake initiatives and
-- run_date(); keeps the latest record of each (customer, initiative) among
-- partitions up to the run date, dated by the day exposure started as
-- jobs/roi/arms.sql dates it: assigned_at, else the initiative's started_on.
-- An initiative lake/initiatives does not list falls back on the first export
-- of that (customer, initiative, arm): the day it is known to have existed.
-- Never the latest export's day: an assignment re-sent in every daily
-- snapshot would be dated the run date, after any churn cut-off.
WITH assignment_versions AS (
    SELECT
        a.customer_id,
        a.initiative_id,
        a.arm,
        CAST(a.assigned_at AS DATE) AS assigned_on,
        min(a.dt) OVER (PARTITION BY a.customer_id, a.initiative_id, a.arm) AS first_exported_on,
        row_number() OVER (PARTITION BY a.customer_id, a.initiative_id ORDER BY a.dt DESC) AS record_rank
    FROM initiative_assignments AS a
    WHERE a.dt <= run_date()
),
initiative_versions AS (
    SELECT
        i.initiative_id,
        i.started_on,
        row_number() OVER (PARTITION BY i.initiative_id ORDER BY i.dt DESC) AS version
    FROM initiatives AS i
    WHERE i.dt <= run_date()
)
SELECT
    v.customer_id,
    v.initiative_id,
    v.arm,
    COALESCE(v.assigned_on, i.started_on, v.first_exported_on) AS assigned_on
FROM assignment_versions AS v
LEFT JOIN initiative_versions AS i ON i.initiative_id = v.initiative_id AND i.version = 1
WHERE v.record_rank = 1
ORDER BY v.customer_id, v.initiative_id
