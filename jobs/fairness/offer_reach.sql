-- Decision table "offer_reach": one row per audited customer: whether they
-- received any offer, and each type of offer, in the audit window
-- (audit_offers: audit_offers.sql, held by the job).
WITH received AS (
    SELECT
        customer_row,
        max(CASE WHEN offer_type = 'discount' THEN 1 ELSE 0 END) AS discount,
        max(CASE WHEN offer_type = 'free_item' THEN 1 ELSE 0 END) AS free_item,
        max(CASE WHEN offer_type = 'bundle' THEN 1 ELSE 0 END) AS bundle
    FROM audit_offers
    GROUP BY customer_row
)
SELECT
    c.customer_row,
    CASE WHEN x.customer_row IS NULL THEN 0 ELSE 1 END AS received_any_offer,
    coalesce(x.discount, 0) AS received_discount,
    coalesce(x.free_item, 0) AS received_free_item,
    coalesce(x.bundle, 0) AS received_bundle
FROM audit_customers AS c
LEFT JOIN received AS x ON x.customer_row = c.customer_row
