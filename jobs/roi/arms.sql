-- One row per assigned customer and initiative: the outcomes the randomized
-- comparison needs, as of the run date.
-- Placeholders (replaced by the job with checked values): run_date (YYYY-MM-DD),
-- inactive_days (a positive integer). Reads roi_assignment, the rows of
-- assignments.sql (exposed_on and the customers who count are defined there),
-- and roi_outcome_sums, the sums of outcome_sums.sql per assignment row
-- (which orders and answers count is defined there and in kept_orders.sql and
-- kept_answers.sql).
--
-- Definitions (the README's "Initiative ROI" section explains them to owners):
-- - retained: at least one order (refunded or not: the customer came back) on a
--   day from exposed_on to the run date and within the last inactive_days days
--   up to the run date (run date - order day < inactive_days); the value job
--   calls a customer churned after that many days without an order.
-- - orders_after, orders_before, nps_total, nps_answers: as outcome_sums.sql
--   counts them.
-- - cltv_12m: from marts/customer_value of the run date, which has a row for
--   every customer with a kept order; valued: 1 when the customer has that
--   row. A customer without one never bought and counts as worth 0; one with
--   the row but no value (a fit did not converge) is unknown (roi/effects.rs).
SELECT
    a.initiative_id,
    a.customer_id,
    a.arm,
    CAST(CASE
        WHEN DATE '{run_date}' - s.last_order_after < {inactive_days} THEN 1
        ELSE 0
    END AS BIGINT) AS retained,
    CAST(s.orders_after AS DOUBLE) AS orders_after,
    CAST(s.orders_before AS DOUBLE) AS orders_before,
    CAST(s.nps_total AS DOUBLE) AS nps_total,
    CAST(s.nps_answers AS DOUBLE) AS nps_answers,
    CAST(v.cltv_12m AS DOUBLE) AS cltv_12m,
    CAST(CASE WHEN v.customer_id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS valued
FROM roi_assignment AS a
JOIN roi_outcome_sums AS s ON s.assignment_row = a.assignment_row
LEFT JOIN roi_customer_value AS v ON v.customer_id = a.customer_id
ORDER BY a.initiative_id, a.customer_id
