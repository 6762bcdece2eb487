-- One row per assigned customer and initiative: the outcomes the randomized
-- comparison needs, as of the run date.
-- Placeholders (replaced by the job with checked values): run_date (YYYY-MM-DD),
-- inactive_days (a positive integer). Reads roi_assignment, the rows of
-- assignments.sql (exposed_on and the customers who count are defined there).
--
-- Definitions (the README's "Initiative ROI" section explains them to owners):
-- - retained: at least one order (refunded or not: the customer came back) on a
--   day from exposed_on to the run date and within the last inactive_days days
--   up to the run date (run date - order day < inactive_days); the value job
--   calls a customer churned after that many days without an order.
-- - orders_after: orders from exposed_on to the run date: the repeat business
--   after the assignment.
-- - orders_before: orders in the inactive_days days before exposed_on (a
--   balance check: randomized arms should not differ here).
-- - nps_total / nps_answers: NPS answers given from exposed_on to the run date,
--   each +100 (score 9-10), -100 (0-6) or 0 (7-8); their mean is the NPS.
-- - cltv_12m: from marts/customer_value of the run date, which has a row for
--   every customer with a kept order; valued: 1 when the customer has that
--   row. A customer without one never bought and counts as worth 0; one with
--   the row but no value (a fit did not converge) is unknown (roi/effects.rs).
-- Orders and answers meet their customer on customer_key(customer_id), a
-- BIGINT (jobs/customer_key.rs): hashing and comparing 32-character ids for
-- 28M orders was most of the query. Two customers cannot share a key (the
-- transform's unique test on stg_customers.customer_key); an order's id
-- outside stg_customers matches an assigned key with a chance of about
-- ids x assigned / 2^64 (1e-8 at a million of each).
WITH orders_kept AS (
    SELECT customer_key(o.customer_id) AS customer_key, CAST(o.ordered_at AS DATE) AS order_date
    FROM orders AS o
    WHERE o.dt <= DATE '{run_date}'
        -- the latest export of a record wins, as in the staging views
        AND NOT EXISTS (
            SELECT 1 FROM superseded AS s
            WHERE s.table_name = 'orders' AND s.record_key = o.order_id AND s.source_dt = o.dt
        )
),
nps_kept AS (
    SELECT
        customer_key(f.customer_id) AS customer_key,
        CAST(f.responded_at AS DATE) AS response_date,
        CASE WHEN f.score >= 9 THEN 100 WHEN f.score <= 6 THEN -100 ELSE 0 END AS nps_value
    FROM feedback AS f
    WHERE f.dt <= DATE '{run_date}'
        AND f.survey_type = 'nps'
        AND NOT EXISTS (
            SELECT 1 FROM superseded AS s
            WHERE s.table_name = 'feedback' AND s.record_key = f.response_id AND s.source_dt = f.dt
        )
),
order_outcomes AS (
    SELECT
        a.assignment_row,
        sum(CASE WHEN o.order_date >= a.exposed_on THEN 1 ELSE 0 END) AS orders_after,
        max(CASE
            WHEN o.order_date >= a.exposed_on AND DATE '{run_date}' - o.order_date < {inactive_days} THEN 1
            ELSE 0
        END) AS retained,
        sum(CASE
            WHEN o.order_date < a.exposed_on AND a.exposed_on - o.order_date <= {inactive_days} THEN 1
            ELSE 0
        END) AS orders_before
    FROM roi_assignment AS a
    JOIN orders_kept AS o ON o.customer_key = a.customer_key AND o.order_date <= DATE '{run_date}'
    GROUP BY a.assignment_row
),
nps_outcomes AS (
    SELECT
        a.assignment_row,
        sum(n.nps_value) AS nps_total,
        count(*) AS nps_answers
    FROM roi_assignment AS a
    JOIN nps_kept AS n ON n.customer_key = a.customer_key
        AND n.response_date >= a.exposed_on
        AND n.response_date <= DATE '{run_date}'
    GROUP BY a.assignment_row
)
SELECT
    a.initiative_id,
    a.customer_id,
    a.arm,
    CAST(COALESCE(oo.retained, 0) AS BIGINT) AS retained,
    CAST(COALESCE(oo.orders_after, 0) AS DOUBLE) AS orders_after,
    CAST(COALESCE(oo.orders_before, 0) AS DOUBLE) AS orders_before,
    CAST(COALESCE(np.nps_total, 0) AS DOUBLE) AS nps_total,
    CAST(COALESCE(np.nps_answers, 0) AS DOUBLE) AS nps_answers,
    CAST(v.cltv_12m AS DOUBLE) AS cltv_12m,
    CAST(CASE WHEN v.customer_id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS valued
FROM roi_assignment AS a
LEFT JOIN order_outcomes AS oo ON oo.assignment_row = a.assignment_row
LEFT JOIN nps_outcomes AS np ON np.assignment_row = a.assignment_row
LEFT JOIN roi_customer_value AS v ON v.customer_id = a.customer_id
ORDER BY a.initiative_id, a.customer_id
