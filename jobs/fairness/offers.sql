-- Decision table "offers": one row per offer decided in the audit window,
-- with the recipient (its row of audit_customers, for its groups; stg_offers:
-- de-duplicated, as of the run date).
SELECT
    c.customer_row,
    o.offer_type,
    o.discount_pct,
    o.decided_by
FROM stg_offers AS o
JOIN audit_customers AS c ON c.customer_key = customer_key(o.customer_id)
-- the timestamp too, for row-group statistics (as in service.sql)
WHERE o.decided_date >= window_start()
    AND o.decided_at >= CAST(window_start() AS TIMESTAMP)
