-- Negative tickets (satisfaction 1-2, or words scored negative) up to the
-- run date, from the feedback_scored partition of the run date: when the
-- follow-up came (hours after the ticket was opened; NULL when none is known
-- by the end of the run date) and whether the follow-up window had closed by
-- then. The customer's first NPS answer after the window closed is looked up
-- in closed_loop.rs among the rows of closed_loop_answers.sql: as a join
-- here, every ticket met every later answer of its customer and an ordered
-- aggregate picked the first, 3 of the job's 15 seconds at a million
-- customers.
SELECT
    message_id,
    customer_key(customer_id) AS customer_key,
    at,
    touchpoint,
    (extract(epoch FROM follow_up_at) - extract(epoch FROM at)) / 3600.0 AS follow_up_hours,
    extract(epoch FROM at) + $followup_seconds <= $run_end_epoch AS window_closed
FROM feedback_scored
WHERE dt = $run_date AND source = 'ticket' AND (rating <= 2 OR label = 'negative')
ORDER BY message_id
