-- Decision table "service": one row per ticket opened in the audit window,
-- with the customer (its row of audit_customers, for its groups). Reads the
-- stg_tickets view (the transform's own SQL, run as of the run date), so the
-- service figures agree with
-- marts/service_levels: first response and resolution in hours (NULL while
-- unanswered or unresolved), reopened, and whether a negative rating (1-2)
-- got a follow-up within 48 hours. Tickets opened in the last day before the
-- end of the run date have not had their 48 hours yet: NULL, not "no".
-- Times also come relative to the median of the ticket's channel: email is
-- answered in hours and chat in minutes, so a group that writes more emails
-- would otherwise look neglected, and a real delay within every channel would
-- drown in the channel mix.
WITH tickets AS (
    SELECT
        c.customer_row,
        t.channel,
        t.handled_by,
        t.first_response_hours,
        t.resolution_hours,
        t.reopened,
        CASE
            WHEN t.satisfaction <= 2 AND t.created_at < run_date() - INTERVAL '1 day'
                THEN coalesce(t.follow_up_hours <= 48, false)
        END AS followed_up_48h
    FROM stg_tickets AS t
    JOIN audit_customers AS c ON c.customer_key = customer_key(t.customer_id)
    -- the same rows twice over: the day for the definition, the timestamp
    -- so that Parquet's row-group statistics skip what was opened before
    -- the window (the day is computed, which no statistic answers)
    WHERE t.created_date >= window_start()
        AND t.created_at >= CAST(window_start() AS TIMESTAMP)
),
channel_medians AS (
    SELECT
        channel,
        median(first_response_hours) AS first_response_median,
        median(resolution_hours) AS resolution_median
    FROM tickets
    GROUP BY channel
)
SELECT
    t.customer_row,
    t.handled_by,
    t.first_response_hours,
    t.first_response_hours / NULLIF(m.first_response_median, 0) AS first_response_vs_channel,
    t.resolution_hours,
    t.resolution_hours / NULLIF(m.resolution_median, 0) AS resolution_vs_channel,
    t.reopened,
    t.followed_up_48h
FROM tickets AS t
JOIN channel_medians AS m ON m.channel = t.channel
