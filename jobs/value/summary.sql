-- Per-customer purchase history for BG/NBD and Gamma-Gamma (value job).
-- Reads purchases(customer_id, order_date, amount) and the one-row
-- value_window(calibration_end, holdout_end). Orders are combined per
-- customer and calendar day first: several orders on one day are one
-- purchase with their amounts summed, as Fader, Hardie & Lee count
-- transactions. Customers whose first purchase is after calibration_end are
-- left out (they have no calibration history). Amounts are summed as
-- DECIMAL(38, 6): exact, so the result does not depend on the order in which
-- parallel partial sums meet (a DOUBLE sum can differ in its last bits from
-- run to run, and attune's marts must be byte-identical for the same input).
WITH days AS (
    SELECT p.customer_id, p.order_date, sum(CAST(p.amount AS DECIMAL(38, 6))) AS amount
    FROM purchases AS p
    CROSS JOIN value_window AS w
    WHERE p.order_date <= w.holdout_end
    GROUP BY p.customer_id, p.order_date
)
SELECT
    d.customer_id,
    min(d.order_date) AS first_day,
    max(CASE WHEN d.order_date <= w.calibration_end THEN d.order_date END) AS last_day,
    sum(CASE WHEN d.order_date <= w.calibration_end THEN 1 ELSE 0 END) AS purchase_days,
    CAST(sum(CASE WHEN d.order_date <= w.calibration_end THEN d.amount END) AS DOUBLE) AS amount,
    CAST(first_value(d.amount ORDER BY d.order_date) AS DOUBLE) AS first_day_amount,
    sum(CASE WHEN d.order_date > w.calibration_end THEN 1 ELSE 0 END) AS holdout_days
FROM days AS d
CROSS JOIN value_window AS w
GROUP BY d.customer_id, w.calibration_end
HAVING min(d.order_date) <= w.calibration_end
ORDER BY d.customer_id
