-- Decision table "offers": one row per offer decided in the audit window,
-- with the recipient (audit_offers: audit_offers.sql, held by the job).
SELECT
    customer_row,
    offer_type,
    discount_pct,
    decided_by
FROM audit_offers
