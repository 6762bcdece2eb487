-- model: orders_daily
-- materialized: table
-- purpose: Orders, customers and revenue per day and channel, for the owner's report and the ROI job.
-- grain: one row per order date (UTC day of ordered_at) and channel with at least one order up to the run date; days without orders have no row
-- column order_date: calendar day of the orders (date, UTC)
-- column channel: where the orders were placed (in_store, online, app)
-- column orders: orders placed, refunded ones included (count)
-- column customers: distinct customers who ordered, refunded orders included (count)
-- column revenue: sum of total_amount over non-refunded orders (currency units; summed in whole cents, so the result never depends on row order)
-- column avg_order_value: revenue / non-refunded orders (currency units); NULL when every order was refunded
-- column discount_total: sum of discount_amount over non-refunded orders (currency units)
-- column refunds: refunded orders (count)
-- column refunded_amount: sum of total_amount over refunded orders (currency units)
-- test order_date: not_null
-- test channel: not_null, accepted_values in_store online app
-- test orders: not_null, range 1 *
-- test customers: not_null, range 1 *
-- test revenue: not_null, range 0 *
-- test avg_order_value: range 0 *
-- test discount_total: not_null, range 0 *
-- test refunds: not_null, range 0 *
-- test refunded_amount: not_null, range 0 *
-- Two steps: a COUNT(DISTINCT customer_id) per day kept a set of customer
-- ids per group (5 GB at a million customers); one row per day, channel and
-- customer first makes "customers" a plain count.
WITH per_customer AS (
    SELECT
        order_date,
        channel,
        customer_id,
        count(*) AS orders,
        sum(CASE WHEN refunded THEN 0 ELSE 1 END) AS kept_orders,
        -- money is summed in whole cents, so the sum does not depend on row order
        sum(CASE WHEN refunded THEN 0 ELSE CAST(round(total_amount * 100) AS BIGINT) END) AS revenue_cents,
        sum(CASE WHEN refunded THEN 0 ELSE CAST(round(COALESCE(discount_amount, 0.0) * 100) AS BIGINT) END) AS discount_cents,
        sum(CASE WHEN refunded THEN 1 ELSE 0 END) AS refunds,
        sum(CASE WHEN refunded THEN CAST(round(total_amount * 100) AS BIGINT) ELSE 0 END) AS refunded_cents
    FROM stg_orders
    GROUP BY order_date, channel, customer_id
),
counts AS (
    SELECT
        order_date,
        channel,
        sum(orders) AS orders,
        count(*) AS customers,
        CAST(sum(revenue_cents) AS DOUBLE) / 100 AS revenue,
        sum(kept_orders) AS kept_orders,
        CAST(sum(discount_cents) AS DOUBLE) / 100 AS discount_total,
        sum(refunds) AS refunds,
        CAST(sum(refunded_cents) AS DOUBLE) / 100 AS refunded_amount
    FROM per_customer
    GROUP BY order_date, channel
)
SELECT
    order_date,
    channel,
    orders,
    customers,
    revenue,
    revenue / NULLIF(kept_orders, 0) AS avg_order_value,
    discount_total,
    refunds,
    refunded_amount
FROM counts
ORDER BY order_date, channel
