-- One row per assigned customer and initiative: the assignments the randomized
-- comparison counts, as of the run date. The job keeps the rows in memory as
-- roi_assignment, which arms.sql reads three times: DataFusion plans a CTE
-- anew at every reference, and as a CTE of arms.sql this window over every
-- assignment and the join with today's customers ran three times.
-- Placeholders (replaced by the job with checked values): run_date (YYYY-MM-DD).
--
-- - exposed_on: the day of assigned_at, or the initiative's started_on when the
--   assignment has no time; every outcome counts from that day on.
-- - customer_key: customer_key(customer_id), what orders and answers meet the
--   customer on (see arms.sql).
-- - assignment_row: a number per row, in no particular order, that arms.sql
--   groups and joins the outcomes on: one integer per order of an assigned
--   customer instead of the initiative's id (a string) and the customer's
--   key. A row is one customer and initiative, so it groups the same orders.
-- Only customers in marts/customer_features of the run date count: the
-- customers who are customers (and consent) today.
WITH initiative_versions AS (
    SELECT
        i.initiative_id,
        i.started_on,
        row_number() OVER (PARTITION BY i.initiative_id ORDER BY i.dt DESC) AS version
    FROM initiatives AS i
    WHERE i.dt <= DATE '{run_date}'
),
assignment_versions AS (
    SELECT
        a.customer_id,
        a.initiative_id,
        a.arm,
        CAST(a.assigned_at AS DATE) AS assigned_on,
        row_number() OVER (PARTITION BY a.customer_id, a.initiative_id ORDER BY a.dt DESC) AS version
    FROM initiative_assignments AS a
    WHERE a.dt <= DATE '{run_date}'
)
SELECT
    v.customer_id,
    customer_key(v.customer_id) AS customer_key,
    v.initiative_id,
    v.arm,
    COALESCE(v.assigned_on, i.started_on) AS exposed_on,
    row_number() OVER () AS assignment_row
FROM assignment_versions AS v
JOIN initiative_versions AS i ON i.initiative_id = v.initiative_id AND i.version = 1
JOIN customer_features AS c ON c.customer_id = v.customer_id AND c.dt = DATE '{run_date}'
WHERE v.version = 1
