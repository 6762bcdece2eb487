-- Orders and NPS answers per customer in equal windows before and after the
-- start of an initiative that has treatment assignments but no control arm.
-- Placeholders (replaced by the job with checked values): run_date, started_on,
-- before_from, after_to (YYYY-MM-DD), initiative_id (a quoted-safe literal).
--
-- Windows: before = before_from .. the day before started_on; after =
-- started_on .. after_to; both equally long, so order counts compare.
-- exposed = assigned to the treatment arm of the initiative. Both groups are
-- customers of the run date (marts/customer_features) who had ordered before
-- started_on, so the comparison is between existing customers only.
-- Orders, answers and assignments are grouped and meet their customer on
-- customer_key(customer_id), a BIGINT, as in arms.sql (which says why two
-- customers do not share one): every order up to the run date is grouped by
-- customer here, and a 32-character id made that a string hash, copy and
-- comparison per order.
WITH orders_kept AS (
    SELECT customer_key(o.customer_id) AS customer_key, CAST(o.ordered_at AS DATE) AS order_date
    FROM orders AS o
    WHERE o.dt <= DATE '{run_date}'
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
treated AS (
    SELECT customer_key(customer_id) AS customer_key
    FROM (
        SELECT
            a.customer_id,
            a.arm,
            row_number() OVER (PARTITION BY a.customer_id ORDER BY a.dt DESC) AS version
        FROM initiative_assignments AS a
        WHERE a.dt <= DATE '{run_date}' AND a.initiative_id = '{initiative_id}'
    ) AS v
    WHERE v.version = 1 AND v.arm = 'treatment'
),
order_windows AS (
    SELECT
        customer_key,
        min(order_date) AS first_order_on,
        sum(CASE WHEN order_date >= DATE '{before_from}' AND order_date < DATE '{started_on}' THEN 1 ELSE 0 END) AS orders_before,
        sum(CASE WHEN order_date >= DATE '{started_on}' AND order_date <= DATE '{after_to}' THEN 1 ELSE 0 END) AS orders_after
    FROM orders_kept
    GROUP BY customer_key
),
nps_windows AS (
    SELECT
        customer_key,
        sum(CASE WHEN response_date < DATE '{started_on}' THEN nps_value ELSE 0 END) AS nps_total_before,
        sum(CASE WHEN response_date < DATE '{started_on}' THEN 1 ELSE 0 END) AS nps_answers_before,
        sum(CASE WHEN response_date >= DATE '{started_on}' THEN nps_value ELSE 0 END) AS nps_total_after,
        sum(CASE WHEN response_date >= DATE '{started_on}' THEN 1 ELSE 0 END) AS nps_answers_after
    FROM nps_kept
    WHERE response_date >= DATE '{before_from}' AND response_date <= DATE '{after_to}'
    GROUP BY customer_key
),
current_customers AS (
    SELECT customer_id, customer_key(customer_id) AS customer_key
    FROM customer_features
    WHERE dt = DATE '{run_date}'
)
SELECT
    c.customer_id,
    CAST(CASE WHEN t.customer_key IS NULL THEN 0 ELSE 1 END AS BIGINT) AS exposed,
    CAST(w.orders_before AS DOUBLE) AS orders_before,
    CAST(w.orders_after AS DOUBLE) AS orders_after,
    CAST(COALESCE(n.nps_total_before, 0) AS DOUBLE) AS nps_total_before,
    CAST(COALESCE(n.nps_answers_before, 0) AS DOUBLE) AS nps_answers_before,
    CAST(COALESCE(n.nps_total_after, 0) AS DOUBLE) AS nps_total_after,
    CAST(COALESCE(n.nps_answers_after, 0) AS DOUBLE) AS nps_answers_after
FROM current_customers AS c
JOIN order_windows AS w ON w.customer_key = c.customer_key
LEFT JOIN treated AS t ON t.customer_key = c.customer_key
LEFT JOIN nps_windows AS n ON n.customer_key = c.customer_key
WHERE w.first_order_on < DATE '{started_on}'
ORDER BY c.customer_id
