-- model: customer_attributes
-- materialized: table
-- purpose: Sensitive and quasi-identifying attributes of every consenting customer, kept apart from the feature tables; only the fairness audit reads it.
-- grain: one row per customer (pseudonymous customer_id) in stg_customers as of the run date
-- column customer_id: pseudonymous customer id (HMAC of the export's id)
-- column age_band: age band derived from the birth year (sensitive)
-- column gender: gender as exported: female, male, non_binary or undisclosed (sensitive)
-- column language: two-letter language code (sensitive)
-- column region: region: north, south, east, west or central (sensitive)
-- column postal_prefix: first 2 characters of the postal code (quasi-identifier)
-- test customer_id: not_null, unique, relationships stg_customers.customer_id
-- test gender: accepted_values female male non_binary undisclosed
-- test region: accepted_values north south east west central
SELECT
    customer_id,
    age_band,
    gender,
    language,
    region,
    postal_prefix
FROM stg_customers
ORDER BY customer_id
