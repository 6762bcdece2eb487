-- NPS answers up to the run date with a customer, from the feedback_scored
-- partition of the run date: what closed_loop.rs looks the answer after a
-- negative ticket up in (see closed_loop.sql).
SELECT customer_key(customer_id) AS customer_key, at, message_id, rating
FROM feedback_scored
WHERE dt = $run_date
    AND source = 'survey'
    AND rating_scale = 'nps'
    AND rating IS NOT NULL
    AND customer_id IS NOT NULL
