-- Purchase days per customer (value job and `attune value fit`). Reads
-- purchases(customer_id, order_date, amount) and the constant
-- holdout_end(). Several orders on one day are one purchase
-- with their amounts summed, as Fader, Hardie & Lee count transactions; the
-- rest (first purchase, repeat count, recency, mean repeat value, long gaps)
-- is folded per customer in Rust, which at a million customers is several
-- times faster than a second GROUP BY with an ordered first_value. Amounts
-- are summed as DECIMAL(38, 6): exact, so the result does not depend on the
-- order in which parallel partial sums meet (a DOUBLE sum can differ in its
-- last bits from run to run, and marts must be byte-identical for the same
-- input).
SELECT p.customer_id, p.order_date, sum(CAST(p.amount AS DECIMAL(38, 6))) AS amount
FROM purchases AS p
WHERE p.order_date <= holdout_end() AND p.customer_id IS NOT NULL
GROUP BY p.customer_id, p.order_date
