-- The audited customers as of the run date: the sensitive attributes of
-- marts/customer_attributes with the segment when one exists (audit_segments
-- is marts/segments or marts/customer_value of the run date, or empty).
-- In customer id order: the job codes their groups once per customer and
-- keeps audit_customers as (customer_key, customer_row), the row's number
-- here, which every decision table joins on customer_key (a BIGINT: see
-- jobs/customer_key.rs) and returns (fairness/inputs.rs, AuditCustomers).
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
ORDER BY a.customer_id
