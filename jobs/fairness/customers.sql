-- The audited customers as of the run date: the sensitive attributes of
-- marts/customer_attributes with the segment when one exists (audit_segments
-- is marts/segments or marts/customer_value of the run date, or empty).
-- Registered as the view audit_customers; every decision table joins it.
SELECT
    a.customer_id,
    a.age_band,
    a.gender,
    a.language,
    a.region,
    s.segment
FROM customer_attributes AS a
LEFT JOIN audit_segments AS s ON s.customer_id = a.customer_id
WHERE a.dt = run_date()
