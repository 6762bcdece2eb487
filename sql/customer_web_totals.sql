-- model: customer_web_totals
-- materialized: table
-- purpose: Each logged-in customer's web sessions and conversions, from which customer_features takes its web columns; kept as running totals that a night updates from its own exports instead of grouping every session of the history again.
-- grain: one row per customer_key with at least one logged-in session in stg_web_sessions as of the run date
-- incremental: per customer_key, customer_id by stg_web_sessions.started_at
-- column customer_key: customer_key(customer_id), the BIGINT key the models join customers on
-- column customer_id: pseudonymous customer id (HMAC of the export's id); kept so that an erasure finds these rows by the pseudonym
-- column web_sessions_total: web sessions the customer was logged in to (count)
-- column web_conversions: those sessions that ended in an order (count)
-- column web_conversion_flagged: those sessions with a conversion flag (count)
-- test customer_key: not_null, unique
-- test customer_id: not_null
-- test web_sessions_total: not_null, range 1 *
-- test web_conversions: not_null, range 0 *
-- test web_conversion_flagged: not_null, range 0 *
-- Every column is a count and none depends on the run date but by the
-- session entering on its day, so a night adds what its exports bring (see
-- the README, SQL models). customer_features grouped the 9.5M sessions of a
-- million customers' two years every night for these three numbers.
-- customer_id is a key of the grouping, as in customer_order_totals: the
-- same within a customer_key (stg_customers tests the key unique).
SELECT
    customer_key(w.customer_id) AS customer_key,
    w.customer_id,
    count(*) AS web_sessions_total,
    count(*) FILTER (WHERE w.converted) AS web_conversions,
    count(w.converted) AS web_conversion_flagged
FROM stg_web_sessions AS w
WHERE w.customer_id IS NOT NULL
GROUP BY customer_key(w.customer_id), w.customer_id
ORDER BY customer_key, customer_id
