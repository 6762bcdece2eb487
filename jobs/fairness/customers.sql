-- The audited customers as of the run date: the sensitive attributes of
-- marts/customer_attributes with the segment when one exists (audit_segments
-- is marts/segments or marts/customer_value of the run date, or empty).
-- Computed once into the table audit_customers; every decision table joins
-- it on customer_key (a BIGINT: see jobs/customer_key.rs).
SELECT
    a.customer_id,
    customer_key(a.customer_id) AS customer_key,
    a.age_band,
    a.gender,
    a.language,
    a.region,
    s.segment
FROM customer_attributes AS a
LEFT JOIN audit_segments AS s ON customer_key(s.customer_id) = customer_key(a.customer_id)
WHERE a.dt = run_date()
