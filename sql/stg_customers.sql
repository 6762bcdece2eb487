-- model: stg_customers
-- materialized: memory
-- purpose: The current record of every consenting customer as of the run date, de-duplicated across export days.
-- grain: one row per customer (pseudonymous customer_id): the record with the latest consent_updated_at, then the latest dt, among partitions dt <= run date
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
WITH ranked AS (
    SELECT
        c.customer_id,
        c.postal_prefix,
        c.age_band,
        c.gender,
        c.language,
        c.region,
        c.signup_date,
        c.consent_analytics,
        c.consent_updated_at,
        c.dt,
        row_number() OVER (
            PARTITION BY c.customer_id
            ORDER BY c.consent_updated_at DESC NULLS LAST, c.dt DESC
        ) AS record_rank
    FROM customers AS c
    WHERE c.dt <= run_date()
)
SELECT
    customer_id,
    customer_key(customer_id) AS customer_key,
    postal_prefix,
    age_band,
    gender,
    language,
    region,
    signup_date,
    consent_updated_at,
    dt AS source_dt
FROM ranked
-- ingest already drops opted-out customers: this guards against a newest record that withdraws consent
WHERE record_rank = 1
    AND consent_analytics
