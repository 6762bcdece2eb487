-- The audited offers of the "offers" and "offer_reach" decision tables
-- (offers.sql, offer_reach.sql): one row per offer decided in the audit
-- window, with the recipient (its row of audit_customers, for its groups;
-- stg_offers: de-duplicated, as of the run date). The job holds these rows
-- as the table audit_offers, which both tables read: each scanned the
-- window's offers and hashed their customers' ids on its own before.
SELECT
    c.customer_row,
    o.offer_type,
    o.discount_pct,
    o.decided_by
FROM stg_offers AS o
JOIN audit_customers AS c ON c.customer_key = customer_key(o.customer_id)
-- the timestamp too, for row-group statistics (as in service_tickets.sql)
WHERE o.decided_date >= window_start()
    AND o.decided_at >= CAST(window_start() AS TIMESTAMP)
