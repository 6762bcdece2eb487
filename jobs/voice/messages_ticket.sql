-- Support tickets opened up to the end of the run date, with the customer's
-- message, one row per ticket_id. Same rule as sql/stg_tickets.sql (latest
-- export partition dt <= run date; a follow-up after the run date is not yet
-- known), which leaves the message out.
WITH ranked AS (
    SELECT
        t.ticket_id,
        t.customer_id,
        t.created_at,
        t.channel,
        t.message,
        t.satisfaction,
        t.follow_up_at,
        row_number() OVER (PARTITION BY t.ticket_id ORDER BY t.dt DESC) AS record_rank
    FROM tickets AS t
    WHERE t.dt <= $run_date
)
SELECT
    k.ticket_id AS message_id,
    k.customer_id,
    k.created_at AS at,
    k.channel AS touchpoint,
    k.message AS text,
    CAST(k.satisfaction AS BIGINT) AS rating,
    'ticket_satisfaction' AS rating_scale,
    CASE WHEN k.follow_up_at < $run_end THEN k.follow_up_at END AS follow_up_at
FROM ranked AS k
WHERE k.record_rank = 1
    AND k.created_at < $run_end
ORDER BY message_id
