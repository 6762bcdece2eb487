-- The initiatives known on the run date and the arms their assignments use.
-- Placeholders (replaced by the job with checked values): run_date (YYYY-MM-DD).
-- The latest export of an initiative or an assignment wins (both tables are small,
-- so a window over their history is cheap).
WITH initiative_versions AS (
    SELECT
        i.initiative_id,
        i.name,
        i.started_on,
        i.ended_on,
        i.cost,
        i.currency,
        row_number() OVER (PARTITION BY i.initiative_id ORDER BY i.dt DESC) AS version
    FROM initiatives AS i
    WHERE i.dt <= DATE '{run_date}'
),
assignment_versions AS (
    SELECT
        a.initiative_id,
        a.arm,
        row_number() OVER (PARTITION BY a.customer_id, a.initiative_id ORDER BY a.dt DESC) AS version
    FROM initiative_assignments AS a
    WHERE a.dt <= DATE '{run_date}'
),
arm_rows AS (
    SELECT
        initiative_id,
        sum(CASE WHEN arm = 'treatment' THEN 1 ELSE 0 END) AS treatment_rows,
        sum(CASE WHEN arm = 'control' THEN 1 ELSE 0 END) AS control_rows
    FROM assignment_versions
    WHERE version = 1
    GROUP BY initiative_id
)
SELECT
    v.initiative_id,
    v.name,
    v.started_on,
    v.ended_on,
    CAST(v.cost AS DOUBLE) AS cost,
    v.currency,
    CAST(COALESCE(r.treatment_rows, 0) AS BIGINT) AS treatment_rows,
    CAST(COALESCE(r.control_rows, 0) AS BIGINT) AS control_rows
FROM initiative_versions AS v
LEFT JOIN arm_rows AS r ON r.initiative_id = v.initiative_id
WHERE v.version = 1
ORDER BY v.initiative_id
