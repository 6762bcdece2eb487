-- Per assignment row of roi_assignment: the sums its outcomes are made of,
-- over the orders of roi_orders_counted and the answers of
-- roi_answers_counted. The job counts either every kept order and answer
-- (roi_orders, roi_answers) or only those that entered since an earlier
-- night, and adds the sums it kept from that night (roi/outcomes.rs): every
-- column is a count, a sum or a maximum over the rows, which add up.
-- Placeholders (replaced by the job with checked values): inactive_days (a
-- positive integer).
--
-- - orders_after: orders from exposed_on on: the repeat business after the
--   assignment.
-- - last_order_after: the latest day of those orders (arms.sql decides from
--   it whether the customer was retained).
-- - orders_before: orders in the inactive_days days before exposed_on (a
--   balance check: randomized arms should not differ here).
-- - nps_total / nps_answers: NPS answers given from exposed_on on.
WITH order_sums AS (
    SELECT
        a.assignment_row,
        sum(CASE WHEN o.order_date >= a.exposed_on THEN 1 ELSE 0 END) AS orders_after,
        max(CASE WHEN o.order_date >= a.exposed_on THEN o.order_date END) AS last_order_after,
        sum(CASE
            WHEN o.order_date < a.exposed_on AND a.exposed_on - o.order_date <= {inactive_days} THEN 1
            ELSE 0
        END) AS orders_before
    FROM roi_assignment AS a
    JOIN roi_orders_counted AS o ON o.customer_key = a.customer_key
    GROUP BY a.assignment_row
),
answer_sums AS (
    SELECT
        a.assignment_row,
        sum(n.nps_value) AS nps_total,
        count(*) AS nps_answers
    FROM roi_assignment AS a
    JOIN roi_answers_counted AS n ON n.customer_key = a.customer_key
        AND n.response_date >= a.exposed_on
    GROUP BY a.assignment_row
)
SELECT
    a.assignment_row,
    CAST(COALESCE(os.orders_after, 0) AS BIGINT) AS orders_after,
    os.last_order_after,
    CAST(COALESCE(os.orders_before, 0) AS BIGINT) AS orders_before,
    CAST(COALESCE(an.nps_total, 0) AS BIGINT) AS nps_total,
    CAST(COALESCE(an.nps_answers, 0) AS BIGINT) AS nps_answers
FROM roi_assignment AS a
LEFT JOIN order_sums AS os ON os.assignment_row = a.assignment_row
LEFT JOIN answer_sums AS an ON an.assignment_row = a.assignment_row
