-- Decision table "churn_model": the churn model's held-out customers, whose
-- outcome is known (audit_churn_evaluation: marts/churn_evaluation of the run
-- date, with at_risk derived from churn_probability when the mart lacks it).
SELECT
    c.customer_row,
    e.churned,
    e.at_risk,
    e.churn_probability
FROM audit_churn_evaluation AS e
JOIN audit_customers AS c ON c.customer_key = customer_key(e.customer_id)
