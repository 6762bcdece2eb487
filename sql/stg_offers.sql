-- model: stg_offers
-- materialized: view
-- purpose: Every offer decision made up to the end of the run date, de-duplicated across export days, for the fairness audit of discounts.
-- grain: one row per offer_id: the record from the latest partition dt <= run date (copies a later export replaced are listed in superseded), kept when decided_at < run date + 1 day
-- incremental tests: exported on source_dt, entering on decided_at
-- column offer_id: offer key
-- column customer_id: pseudonymous customer id of the recipient
-- column decided_at: when the decision was made (timestamp, UTC)
-- column decided_date: calendar day of decided_at (date, UTC)
-- column offer_type: what was offered (discount, free_item, bundle)
-- column discount_pct: size of the discount (percent, 0-100)
-- column decided_by: who decided (rule, model, human)
-- column source_dt: export day (partition dt) of the record kept (date)
-- test offer_id: not_null
-- offer_id is unique by construction, so it has no unique test (one over every
-- record ever exported cost 5 s a night at a million customers) because
-- ingest keeps one row per key and day, the superseded pass fails on a key
-- twice in one partition and lists every earlier copy, and the view drops them
-- test customer_id: not_null
-- test decided_at: not_null
-- test offer_type: not_null, accepted_values discount free_item bundle
-- test discount_pct: range 0 100
-- test decided_by: not_null, accepted_values rule model human
WITH latest AS (
    SELECT
        f.offer_id,
        f.customer_id,
        f.decided_at,
        f.offer_type,
        f.discount_pct,
        f.decided_by,
        f.dt
    FROM offers AS f
    WHERE f.dt <= run_date()
        -- the latest export of a record wins: drop copies a later export replaced
        AND NOT EXISTS (
            SELECT 1 FROM superseded AS s
            WHERE s.table_name = 'offers' AND s.record_key = f.offer_id AND s.source_dt = f.dt
        )
)
SELECT
    k.offer_id,
    k.customer_id,
    k.decided_at,
    CAST(k.decided_at AS DATE) AS decided_date,
    k.offer_type,
    k.discount_pct,
    k.decided_by,
    k.dt AS source_dt
FROM latest AS k
WHERE k.decided_at < run_date() + INTERVAL '1 day'
