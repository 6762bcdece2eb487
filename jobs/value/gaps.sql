-- Long gaps in each customer's purchase days (value job, churn labels and
-- churn rates). Reads purchases(customer_id, order_date, amount) and the
-- one-row churn_window(inactive_days). A gap is kept when the next purchase
-- day is more than inactive_days later, or there is none (gap_end NULL):
-- whether a customer churned after, or had lapsed at, any cut-off follows
-- from these gaps and the first purchase day alone.
WITH days AS (
    SELECT customer_id, order_date
    FROM purchases
    GROUP BY customer_id, order_date
),
ordered AS (
    SELECT
        customer_id,
        order_date,
        lead(order_date) OVER (PARTITION BY customer_id ORDER BY order_date) AS next_date
    FROM days
)
SELECT o.customer_id, o.order_date AS gap_start, o.next_date AS gap_end
FROM ordered AS o
CROSS JOIN churn_window AS w
WHERE o.next_date IS NULL OR o.next_date - o.order_date > w.inactive_days
ORDER BY o.customer_id, o.order_date
