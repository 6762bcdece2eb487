-- Initiative arm of each customer as of the run date (value job: churn
-- rates by arm). Reads lake initiative_assignments and run_date(); keeps
-- the latest record of each (customer, initiative) among partitions up to
-- the run date, and the day exposure started (assigned_at, else the export
-- day).
WITH ranked AS (
    SELECT
        a.customer_id,
        a.initiative_id,
        a.arm,
        COALESCE(CAST(a.assigned_at AS DATE), a.dt) AS assigned_on,
        row_number() OVER (PARTITION BY a.customer_id, a.initiative_id ORDER BY a.dt DESC) AS record_rank
    FROM initiative_assignments AS a
    WHERE a.dt <= run_date()
)
SELECT customer_id, initiative_id, arm, assigned_on
FROM ranked
WHERE record_rank = 1
ORDER BY customer_id, initiative_id
