-- model: web_daily
-- materialized: table
-- purpose: Web shop traffic, bounce and conversion per day, for the owner's report.
-- grain: one row per session date (UTC day of started_at) with at least one session up to the run date; days without sessions have no row
-- incremental: session_date by stg_web_sessions.started_at
-- column session_date: calendar day the sessions started (date, UTC)
-- column sessions: web sessions (count)
-- column logged_in_sessions: sessions with a logged-in customer (count)
-- column bounce_rate: share of sessions that bounced, over sessions with a bounce flag (ratio 0-1); NULL when no session has the flag
-- column conversion_rate: share of sessions that converted, over sessions with a conversion flag (ratio 0-1); NULL when no session has the flag
-- column avg_duration_s: mean session length (seconds)
-- column avg_page_views: mean pages viewed per session (pages)
-- test session_date: not_null, unique
-- test sessions: not_null, range 1 *
-- test logged_in_sessions: not_null, range 0 *
-- test bounce_rate: range 0 1
-- test conversion_rate: range 0 1
-- test avg_duration_s: range 0 86400
-- test avg_page_views: range 0 *
WITH counts AS (
    SELECT
        session_date,
        count(*) AS sessions,
        count(customer_id) AS logged_in_sessions,
        sum(CASE WHEN bounced THEN 1 ELSE 0 END) AS bounces,
        count(bounced) AS bounce_flagged,
        sum(CASE WHEN converted THEN 1 ELSE 0 END) AS conversions,
        count(converted) AS conversion_flagged,
        avg(CAST(duration_s AS DOUBLE)) AS avg_duration_s,
        avg(CAST(page_views AS DOUBLE)) AS avg_page_views
    FROM stg_web_sessions
    GROUP BY session_date
)
SELECT
    session_date,
    sessions,
    logged_in_sessions,
    CAST(bounces AS DOUBLE) / NULLIF(bounce_flagged, 0) AS bounce_rate,
    CAST(conversions AS DOUBLE) / NULLIF(conversion_flagged, 0) AS conversion_rate,
    avg_duration_s,
    avg_page_views
FROM counts
ORDER BY session_date
