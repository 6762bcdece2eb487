-- Decision table "offer_reach": one row per audited customer: whether they
-- received any offer, and each type of offer, in the audit window.
WITH received AS (
    SELECT
        customer_key(o.customer_id) AS customer_key,
        max(CASE WHEN o.offer_type = 'discount' THEN 1 ELSE 0 END) AS discount,
        max(CASE WHEN o.offer_type = 'free_item' THEN 1 ELSE 0 END) AS free_item,
        max(CASE WHEN o.offer_type = 'bundle' THEN 1 ELSE 0 END) AS bundle
    FROM stg_offers AS o
    -- the timestamp too, for row-group statistics (as in service.sql)
    WHERE o.decided_date >= window_start()
        AND o.decided_at >= CAST(window_start() AS TIMESTAMP)
    GROUP BY customer_key(o.customer_id)
)
SELECT
    c.customer_row,
    CASE WHEN x.customer_key IS NULL THEN 0 ELSE 1 END AS received_any_offer,
    coalesce(x.discount, 0) AS received_discount,
    coalesce(x.free_item, 0) AS received_free_item,
    coalesce(x.bundle, 0) AS received_bundle
FROM audit_customers AS c
LEFT JOIN received AS x ON x.customer_key = c.customer_key
