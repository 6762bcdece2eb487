-- Decision table "service": one row per ticket opened in the audit window
-- (audit_tickets: service_tickets.sql, held by the job), with its times also
-- relative to the median of the ticket's channel: email is answered in
-- hours and chat in minutes, so a group that writes more emails would
-- otherwise look neglected, and a real delay within every channel would
-- drown in the channel mix.
WITH channel_medians AS (
    SELECT
        channel,
        median(first_response_hours) AS first_response_median,
        median(resolution_hours) AS resolution_median
    FROM audit_tickets
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
FROM audit_tickets AS t
JOIN channel_medians AS m ON m.channel = t.channel
