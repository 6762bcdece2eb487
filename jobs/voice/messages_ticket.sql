-- Support tickets opened up to the end of the run date, with the customer's
-- message, one row per ticket_id. Same rule as sql/stg_tickets.sql (latest
-- export partition dt <= run date; a follow-up after the run date is not yet
-- known), which leaves the message out.
WITH latest AS (
    SELECT
        t.ticket_id,
        t.customer_id,
        t.created_at,
        t.channel,
        t.message,
        t.satisfaction,
        t.follow_up_at
    FROM tickets AS t
    -- the slice of the messages this query reads (slice_* parameters, see
    -- voice::messages::Slice): every one up to the run date, or those new
    -- since an earlier night's feedback_scored
    WHERE t.dt > $slice_dt_after AND t.dt <= $slice_dt_upto
        AND t.created_at >= $slice_at_from AND t.created_at < $slice_at_before
        -- or only the tickets whose follow-up came since (follow_up_at below
        -- is as of the run date)
        AND (NOT $slice_follow_ups_only
            OR (t.follow_up_at >= $slice_follow_up_from AND t.follow_up_at < $run_end))
        -- the latest export of a record wins: drop the copies a later export
        -- replaced, as the transform listed them for the run date (a window
        -- over every record took seconds per million: each key its own partition)
        AND NOT EXISTS (
            SELECT 1 FROM superseded AS s
            WHERE s.table_name = 'tickets' AND s.record_key = t.ticket_id AND s.source_dt = t.dt
        )
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
FROM latest AS k
ORDER BY message_id
