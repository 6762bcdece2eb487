-- Decision table "churn_flags": every scored customer's at-risk flag
-- (marts/customer_value of the run date): who the business will treat as
-- likely to leave.
SELECT
    c.customer_row,
    v.at_risk
FROM customer_value AS v
JOIN audit_customers AS c ON c.customer_key = customer_key(v.customer_id)
WHERE v.dt = run_date()
