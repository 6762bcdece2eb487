-- model: orders_daily
-- materialized: table
-- purpose: Orders, customers and revenue per day, channel and currency, for analysts and the owner's own queries.
-- grain: one row per order date (UTC day of ordered_at), channel and currency with at least one order up to the run date; days without orders have no row. Amounts are only comparable within a currency, so a business that sells in two gets two rows, never a sum of both
-- incremental: order_date by stg_orders.ordered_at
-- column order_date: calendar day of the orders (date, UTC)
-- column channel: where the orders were placed (in_store, online, app)
-- column currency: ISO 4217 code of the amounts in the row
-- column orders: orders placed, refunded ones included (count)
-- column customers: distinct customers who ordered, refunded orders included (count)
-- column revenue: sum of total_amount over non-refunded orders (currency units; summed in whole cents, so the result never depends on row order)
-- column avg_order_value: revenue / non-refunded orders (currency units); NULL when every order was refunded
-- column discount_total: sum of discount_amount over non-refunded orders (currency units)
-- column refunds: refunded orders (count)
-- column refunded_amount: sum of total_amount over refunded orders (currency units)
-- test order_date: not_null
-- test channel: not_null, accepted_values in_store online app
-- test currency: not_null
-- test orders: not_null, range 1 *
-- test customers: not_null, range 1 *
-- test revenue: not_null, range 0 *
-- test avg_order_value: range 0 *
-- test discount_total: not_null, range 0 *
-- test refunds: not_null, range 0 *
-- test refunded_amount: not_null, range 0 *
-- "customers" is COUNT(DISTINCT customer_key(customer_id)) in the same
-- aggregate as the money: a set of BIGINT keys per (day, channel, currency), 24M keys
-- in all at a million customers. Counting the ids themselves held 5 GB of
-- strings; a DISTINCT of (day, channel, customer) triples of its own,
-- joined back, scanned the orders twice and peaked at 1.8 GB (this: 0.9-1.2
-- GB, a seventh less CPU, the same bytes). In attune's sessions `count`
-- counts the distinct BIGINTs of a group by sorting them, where DataFusion
-- 55 hashes every (group, key) pair into one set (jobs/distinct_count.rs):
-- the model alone, first night at a million customers, 4.9 CPU-seconds
-- instead of 7.3-7.6 and 1.0-1.1 GB instead of 1.2, the same bytes.
-- The money is split by arithmetic on a 0/1 refund flag, not by CASE: in
-- DataFusion 55 a CASE whose branch is an expression filters the batch once
-- per branch and merges the two results (unless the whole batch takes one
-- branch, rare with refunds mixed in), and three of them ran on each of the
-- 27.7M orders at a million customers (0.73 s of argument evaluation in a
-- 3.4 s partial aggregate, whose rest is mostly the distinct sets); a
-- product is one vectorised pass. Kept orders are orders - refunds: one
-- accumulator fewer. The sums are the same whole cents, so the same values.
WITH priced AS (
    SELECT
        order_date,
        channel,
        currency,
        customer_key(customer_id) AS customer_key,
        -- 1 for a refunded order, else 0 (refunded is never NULL in stg_orders)
        CAST(refunded AS BIGINT) AS refund,
        CAST(round(total_amount * 100) AS BIGINT) AS cents,
        CAST(round(COALESCE(discount_amount, 0.0) * 100) AS BIGINT) AS discount_cents
    FROM stg_orders
),
counts AS (
    SELECT
        order_date,
        channel,
        currency,
        count(*) AS orders,
        count(DISTINCT customer_key) AS customers,
        -- money is summed in whole cents, so the sum does not depend on row order
        CAST(sum((1 - refund) * cents) AS DOUBLE) / 100 AS revenue,
        CAST(sum((1 - refund) * discount_cents) AS DOUBLE) / 100 AS discount_total,
        sum(refund) AS refunds,
        CAST(sum(refund * cents) AS DOUBLE) / 100 AS refunded_amount
    FROM priced
    GROUP BY order_date, channel, currency
)
SELECT
    c.order_date,
    c.channel,
    c.currency,
    c.orders,
    c.customers,
    c.revenue,
    c.revenue / NULLIF(c.orders - c.refunds, 0) AS avg_order_value,
    c.discount_total,
    c.refunds,
    c.refunded_amount
FROM counts AS c
ORDER BY c.order_date, c.channel, c.currency
