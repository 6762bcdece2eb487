-- Purchases per customer (value job and `attune value fit`). Reads
-- purchases(customer_id, order_date, amount) and the constant
-- holdout_end(). No GROUP BY: one row per purchase streams into Rust, which
-- folds it per customer (several orders on one day are one purchase with
-- their amounts summed, as Fader, Hardie & Lee count transactions). Grouping
-- by customer and day here built a table as large as the orders themselves
-- (27 million groups at a million customers) and spilled it to disk.
-- A NULL amount (the value job's orders in another currency than the one
-- modelled) is a purchase without a value: it makes a purchase day, but no
-- day's value.
-- Amounts become DECIMAL(38, 6) and are summed as integers in Rust: exact,
-- so the result never depends on the order rows arrive in (a DOUBLE sum can
-- differ in its last bits, and marts must be byte-identical for the same
-- input).
SELECT p.customer_id, p.order_date, CAST(p.amount AS DECIMAL(38, 6)) AS amount
FROM purchases AS p
WHERE p.order_date <= holdout_end() AND p.customer_id IS NOT NULL
