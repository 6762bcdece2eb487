-- model: customer_features
-- materialized: table
-- purpose: Behavioural features of every consenting customer (RFM, channel mix, service, feedback, reviews, web) for segmentation, churn and lifetime value; no sensitive attributes.
-- grain: one row per customer (pseudonymous customer_id) in stg_customers as of the run date
-- column customer_id: pseudonymous customer id (HMAC of the export's id)
-- column tenure_days: days from signup_date to the run date (days)
-- column first_order_at: first non-refunded order (timestamp, UTC); NULL when none
-- column last_order_at: latest non-refunded order (timestamp, UTC); NULL when none
-- column recency_days: run date minus the calendar day of last_order_at (days); NULL when no non-refunded orders
-- column frequency: non-refunded orders up to the run date (count)
-- column refunded_orders: refunded orders up to the run date (count)
-- column currency: the currency of monetary_total, avg_order_value and discount_share: the most common one of the non-refunded orders up to the run date, the first in alphabetical order on a tie (ISO 4217; the same for every row, and the one the value job models lifetime values in as of the same date); NULL when no order was kept
-- column monetary_total: sum of total_amount over non-refunded orders in currency (currency units); 0 when the customer kept no order; NULL when every kept order is in another currency (their spend is unknown in currency, not nothing)
-- column avg_order_value: monetary_total / the non-refunded orders in currency (currency units); NULL when none
-- column other_currency_orders: non-refunded orders in another currency than currency (count): amounts in two currencies cannot be added, so they count as orders (frequency, recency, channel mix) but not as money
-- column orders_30d: non-refunded orders in the 30 days ending on the run date, run date included (count)
-- column orders_90d: non-refunded orders in the 90 days ending on the run date, run date included (count)
-- column orders_365d: non-refunded orders in the 365 days ending on the run date, run date included (count)
-- column avg_days_between_orders: (last_order_at - first_order_at) / (frequency - 1) in days (fractional days); NULL when fewer than 2 orders
-- column discount_share: sum of discount_amount (missing discounts ignored) / sum of total_amount over non-refunded orders in currency (ratio); NULL when no such orders, a zero total or no discount recorded
-- column in_store_share: share of non-refunded orders placed in store (ratio 0-1); NULL when no orders
-- column online_share: share of non-refunded orders placed online (ratio 0-1); NULL when no orders
-- column app_share: share of non-refunded orders placed in the app (ratio 0-1); NULL when no orders
-- column tickets_total: support tickets opened up to the run date (count)
-- column tickets_90d: support tickets opened in the 90 days ending on the run date, run date included (count)
-- column median_first_response_hours: median first-response time over the customer's answered tickets, all time (hours); NULL when none answered
-- column bot_ticket_share: share of the customer's tickets first routed to the bot (handled_by bot or bot_then_human) (ratio 0-1); NULL when no tickets
-- column last_nps_score: score of the customer's latest NPS answer (0-10); NULL when none
-- column last_nps_at: when the latest NPS answer was given (timestamp, UTC); NULL when none
-- column avg_csat: mean CSAT score over the customer's CSAT answers (1-5); NULL when none
-- column reviews_total: public reviews the customer posted (count)
-- column review_reply_share: share of those reviews the business replied to by the run date (ratio 0-1); NULL when no reviews
-- column web_sessions_total: logged-in web sessions of the customer (count)
-- column web_conversion_rate: share of those sessions that converted, over sessions with a conversion flag (ratio 0-1); NULL when no session has the flag
-- test customer_id: not_null, unique, relationships stg_customers.customer_id
-- test tenure_days: not_null, range 0 *
-- test recency_days: range 0 *
-- test frequency: not_null, range 0 *
-- test refunded_orders: not_null, range 0 *
-- test monetary_total: range 0 *
-- test avg_order_value: range 0 *
-- test other_currency_orders: not_null, range 0 *
-- test orders_30d: not_null, range 0 *
-- test orders_90d: not_null, range 0 *
-- test orders_365d: not_null, range 0 *
-- test avg_days_between_orders: range 0 *
-- test discount_share: range 0 *
-- test in_store_share: range 0 1
-- test online_share: range 0 1
-- test app_share: range 0 1
-- test tickets_total: not_null, range 0 *
-- test tickets_90d: not_null, range 0 *
-- test bot_ticket_share: range 0 1
-- test last_nps_score: range 0 10
-- test avg_csat: range 1 5
-- test reviews_total: not_null, range 0 *
-- test review_reply_share: range 0 1
-- test web_sessions_total: not_null, range 0 *
-- test web_conversion_rate: range 0 1
-- Customers are grouped and joined on customer_key(customer_id), a BIGINT
-- hash of the id (stg_customers tests it unique): DataFusion's integer paths
-- instead of 32-character strings held in every hash table.
WITH main_currency AS (
    -- always one row (an aggregate without GROUP BY), NULL when no order was
    -- kept. From the running totals (a sum over customers of their kept
    -- orders in each currency is the currency's kept orders), which the
    -- model reads anyway: as a table they are a few reads of two columns;
    -- where every model is a view, as for the value job's cut-off features
    -- (transform::model_as_of computes them once), orders_daily was two
    -- more passes over the orders (about 3.6 CPU-seconds a week at a million
    -- customers). Chosen here, not in customer_order_totals: a night that
    -- changes the main currency changes no running total
    SELECT max(top.currency) AS code
    FROM (
        SELECT currency
        FROM customer_order_totals
        WHERE currency IS NOT NULL
        GROUP BY currency
        HAVING sum(kept_orders) > 0
        ORDER BY sum(kept_orders) DESC, currency
        LIMIT 1
    ) AS top
),
order_stats AS (
    -- the customer's running totals in each currency (customer_order_totals,
    -- which a night updates from its own exports instead of grouping the
    -- 27.7M orders of a million customers again, 8-9 s of this model's 17 s
    -- in a slow hour), summed over the currencies; money, and the orders it
    -- is the average of, only in the main one. Refunded orders are counted
    -- there and left out of every other total.
    SELECT
        co.customer_key,
        min(co.first_order_at) AS first_order_at,
        max(co.last_order_at) AS last_order_at,
        sum(co.kept_orders) AS frequency,
        sum(co.refunded_orders) AS refunded_orders,
        CAST(sum(co.amount_cents) FILTER (WHERE co.currency = mc.code) AS DOUBLE) / 100 AS monetary_total,
        COALESCE(sum(co.kept_orders) FILTER (WHERE co.currency = mc.code), 0) AS valued_orders,
        -- NULL, not 0, when no kept order has a discount recorded
        CAST(sum(co.discount_cents) FILTER (WHERE co.currency = mc.code) AS DOUBLE) / 100 AS discount_total,
        sum(co.orders_30d) AS orders_30d,
        sum(co.orders_90d) AS orders_90d,
        sum(co.orders_365d) AS orders_365d,
        sum(co.in_store_orders) AS in_store_orders,
        sum(co.online_orders) AS online_orders,
        sum(co.app_orders) AS app_orders
    -- one row on the left: the join adds a column, it buffers no totals
    FROM main_currency AS mc
    CROSS JOIN customer_order_totals AS co
    GROUP BY co.customer_key
),
ticket_stats AS (
    SELECT
        customer_key(t.customer_id) AS customer_key,
        count(*) AS tickets_total,
        sum(CASE WHEN run_date() - t.created_date < 90 THEN 1 ELSE 0 END) AS tickets_90d,
        -- median(), not percentile_cont(0.5): DataFusion 55's percentile_cont
        -- panics when the partial aggregate is skipped, as attune's model
        -- sessions do for per-customer groups (same value: the mean of the
        -- two middle answers when their number is even)
        median(t.first_response_hours) AS median_first_response_hours,
        sum(CASE WHEN t.handled_by IN ('bot', 'bot_then_human') THEN 1 ELSE 0 END) AS bot_tickets
    FROM stg_tickets AS t
    GROUP BY customer_key(t.customer_id)
),
feedback_stats AS (
    -- one pass over the NPS and CSAT answers: a CTE per survey type read the
    -- 2.7M answers twice at a million customers, and the latest NPS answer
    -- came from a row_number() window over the 615K NPS answers, sorted by
    -- customer (0.5 s of sort and window); last_value(... ORDER BY) keeps
    -- one candidate per customer instead. The latest is the answer with the
    -- greatest (responded_at, response_id), the one the window ranked first.
    SELECT
        customer_key(customer_id) AS customer_key,
        last_value(score ORDER BY responded_at, response_id) FILTER (WHERE survey_type = 'nps') AS last_nps_score,
        max(responded_at) FILTER (WHERE survey_type = 'nps') AS last_nps_at,
        avg(CAST(score AS DOUBLE)) FILTER (WHERE survey_type = 'csat') AS avg_csat
    FROM stg_feedback
    WHERE survey_type IN ('nps', 'csat')
    GROUP BY customer_key(customer_id)
),
review_stats AS (
    SELECT
        customer_key(customer_id) AS customer_key,
        count(*) AS reviews_total,
        sum(CASE WHEN replied_at IS NOT NULL THEN 1 ELSE 0 END) AS reviews_replied
    FROM stg_reviews
    WHERE customer_id IS NOT NULL
    GROUP BY customer_key(customer_id)
),
web_stats AS (
    -- the running totals a night updates from its own exports
    -- (customer_web_totals), not the 9.5M sessions of a million customers'
    -- two years grouped again
    SELECT customer_key, web_sessions_total, web_conversions, web_conversion_flagged
    FROM customer_web_totals
)
SELECT
    c.customer_id,
    run_date() - c.signup_date AS tenure_days,
    os.first_order_at,
    os.last_order_at,
    run_date() - CAST(os.last_order_at AS DATE) AS recency_days,
    COALESCE(os.frequency, 0) AS frequency,
    COALESCE(os.refunded_orders, 0) AS refunded_orders,
    mc.code AS currency,
    CASE WHEN COALESCE(os.frequency, 0) = 0 THEN 0.0 WHEN os.valued_orders > 0 THEN os.monetary_total END AS monetary_total,
    os.monetary_total / NULLIF(os.valued_orders, 0) AS avg_order_value,
    COALESCE(os.frequency - os.valued_orders, 0) AS other_currency_orders,
    COALESCE(os.orders_30d, 0) AS orders_30d,
    COALESCE(os.orders_90d, 0) AS orders_90d,
    COALESCE(os.orders_365d, 0) AS orders_365d,
    (extract(epoch FROM os.last_order_at) - extract(epoch FROM os.first_order_at)) / 86400.0
        / NULLIF(os.frequency - 1, 0) AS avg_days_between_orders,
    os.discount_total / NULLIF(os.monetary_total, 0) AS discount_share,
    CAST(os.in_store_orders AS DOUBLE) / NULLIF(os.frequency, 0) AS in_store_share,
    CAST(os.online_orders AS DOUBLE) / NULLIF(os.frequency, 0) AS online_share,
    CAST(os.app_orders AS DOUBLE) / NULLIF(os.frequency, 0) AS app_share,
    COALESCE(ts.tickets_total, 0) AS tickets_total,
    COALESCE(ts.tickets_90d, 0) AS tickets_90d,
    ts.median_first_response_hours,
    CAST(ts.bot_tickets AS DOUBLE) / NULLIF(ts.tickets_total, 0) AS bot_ticket_share,
    fs.last_nps_score,
    fs.last_nps_at,
    fs.avg_csat,
    COALESCE(vs.reviews_total, 0) AS reviews_total,
    CAST(vs.reviews_replied AS DOUBLE) / NULLIF(vs.reviews_total, 0) AS review_reply_share,
    COALESCE(ws.web_sessions_total, 0) AS web_sessions_total,
    CAST(ws.web_conversions AS DOUBLE) / NULLIF(ws.web_conversion_flagged, 0) AS web_conversion_rate
FROM main_currency AS mc
CROSS JOIN stg_customers AS c
LEFT JOIN order_stats AS os ON os.customer_key = c.customer_key
LEFT JOIN ticket_stats AS ts ON ts.customer_key = c.customer_key
LEFT JOIN feedback_stats AS fs ON fs.customer_key = c.customer_key
LEFT JOIN review_stats AS vs ON vs.customer_key = c.customer_key
LEFT JOIN web_stats AS ws ON ws.customer_key = c.customer_key
ORDER BY c.customer_id
