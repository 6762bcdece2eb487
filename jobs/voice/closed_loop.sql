-- Negative tickets (satisfaction 1-2, or words scored negative) up to the
-- run date, from the feedback_scored partition of the run date: when the
-- follow-up came (hours after the ticket was opened; NULL when none is known
-- by the end of the run date), whether the follow-up window had closed by
-- then, and the customer's first NPS answer given after the window closed
-- (so that the answer can reflect the follow-up; NULL when none yet), with
-- the answer's id: several tickets of a customer can lead to one answer,
-- which closed_loop.rs counts once.
WITH messages AS (
    SELECT f.*
    FROM feedback_scored AS f
    WHERE f.dt = $run_date
),
negative AS (
    SELECT
        message_id,
        customer_key(customer_id) AS customer_key,
        at,
        touchpoint,
        (extract(epoch FROM follow_up_at) - extract(epoch FROM at)) / 3600.0 AS follow_up_hours,
        extract(epoch FROM at) + $followup_seconds AS window_end_epoch
    FROM messages
    WHERE source = 'ticket' AND (rating <= 2 OR label = 'negative')
),
answers AS (
    SELECT customer_key(customer_id) AS customer_key, message_id, at, rating
    FROM messages
    WHERE source = 'survey' AND rating_scale = 'nps' AND rating IS NOT NULL
),
-- the first answer per ticket as an aggregate: a window ranking every
-- later answer sorted all the pairs first
next_answer AS (
    SELECT
        n.message_id,
        first_value(a.rating ORDER BY a.at, a.message_id) AS rating,
        first_value(a.message_id ORDER BY a.at, a.message_id) AS answer_id
    FROM negative AS n
    JOIN answers AS a
        ON a.customer_key = n.customer_key
        AND extract(epoch FROM a.at) >= n.window_end_epoch
    GROUP BY n.message_id
)
SELECT
    n.at,
    n.touchpoint,
    n.customer_key,
    n.follow_up_hours,
    n.window_end_epoch <= $run_end_epoch AS window_closed,
    x.rating AS next_nps,
    x.answer_id
FROM negative AS n
LEFT JOIN next_answer AS x ON x.message_id = n.message_id
ORDER BY n.message_id
