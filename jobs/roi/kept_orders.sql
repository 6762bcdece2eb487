-- The orders the randomized comparison counts, as of the run date: every
-- order (refunded or not: the customer came back) dated up to the run date,
-- its latest export only, met with its customer on customer_key(customer_id).
-- Placeholders (replaced by the job with checked values): run_date (YYYY-MM-DD).
-- The job registers it as roi_orders; ordered_at and dt stay for telling the
-- orders that entered after an earlier night (roi/outcomes.rs).
-- Orders and answers meet their customer on customer_key(customer_id), a
-- BIGINT (jobs/customer_key.rs): hashing and comparing 32-character ids for
-- 28M orders was most of the query. Two customers cannot share a key (the
-- transform's unique test on stg_customers.customer_key); an order's id
-- outside stg_customers matches an assigned key with a chance of about
-- ids x assigned / 2^64 (1e-8 at a million of each).
SELECT
    customer_key(o.customer_id) AS customer_key,
    CAST(o.ordered_at AS DATE) AS order_date,
    o.ordered_at,
    o.dt
FROM orders AS o
WHERE o.dt <= DATE '{run_date}'
    AND CAST(o.ordered_at AS DATE) <= DATE '{run_date}'
    -- the latest export of a record wins, as in the staging views
    AND NOT EXISTS (
        SELECT 1 FROM superseded AS s
        WHERE s.table_name = 'orders' AND s.record_key = o.order_id AND s.source_dt = o.dt
    )
