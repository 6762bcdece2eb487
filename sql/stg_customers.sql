-- model: stg_customers
-- materialized: memory
-- purpose: The current record of every consenting customer as of the run date, de-duplicated across export days.
-- grain: one row per customer (pseudonymous customer_id) among partitions dt <= run date: in export order, each record replaces the one before unless both consent_updated_at are known and its own is earlier
-- column customer_id: pseudonymous customer id (HMAC of the export's id, 32 hex characters)
-- column customer_key: customer_key(customer_id), a 64-bit hash of the id as a BIGINT: the key the models group and join customers on (never written)
-- column postal_prefix: first 2 characters of the postal code (quasi-identifier; read only by customer_attributes)
-- column age_band: age band derived from the birth year (sensitive; read only by customer_attributes)
-- column gender: gender as exported (sensitive; read only by customer_attributes)
-- column language: two-letter language code (sensitive; read only by customer_attributes)
-- column region: region of the customer (sensitive; read only by customer_attributes)
-- column signup_date: day the customer signed up (date)
-- column consent_updated_at: when the analytics consent last changed (timestamp, UTC)
-- column source_dt: export day (partition dt) of the record kept (date)
-- test customer_id: not_null, unique
-- test customer_key: not_null, unique
-- test signup_date: not_null
-- test source_dt: not_null
-- The latest record is found by the transform's superseded pass
-- (jobs/transform/superseded.rs, rule LATEST_BY), which lists every other
-- record as replaced: here it is the same anti-join as in the other staging
-- views. A row_number() window per customer did the same at 3 s a run.
SELECT
    c.customer_id,
    customer_key(c.customer_id) AS customer_key,
    c.postal_prefix,
    c.age_band,
    c.gender,
    c.language,
    c.region,
    c.signup_date,
    c.consent_updated_at,
    c.dt AS source_dt
FROM customers AS c
WHERE c.dt <= run_date()
    AND NOT EXISTS (
        SELECT 1 FROM superseded AS s
        WHERE s.table_name = 'customers' AND s.record_key = c.customer_id AND s.source_dt = c.dt
    )
    -- ingest already drops opted-out customers: this guards against a newest record that withdraws consent
    AND c.consent_analytics
