-- model: stg_web_sessions
-- materialized: view
-- purpose: Every web shop session started up to the end of the run date, de-duplicated across export days.
-- grain: one row per session_id: the record from the latest partition dt <= run date (copies a later export replaced are listed in superseded), kept when started_at < run date + 1 day
-- incremental tests: exported on source_dt, entering on started_at
-- column session_id: session key from the analytics tool
-- column customer_id: pseudonymous customer id of the logged-in customer; NULL for anonymous sessions
-- column started_at: when the session started (timestamp, UTC)
-- column session_date: calendar day of started_at (date, UTC)
-- column page_views: pages viewed in the session (count)
-- column duration_s: session length (seconds)
-- column bounced: whether the session left after a single page
-- column converted: whether the session ended in an order
-- column source_dt: export day (partition dt) of the record kept (date)
-- test session_id: not_null
-- session_id is unique by construction, so it has no unique test (one over every
-- record ever exported cost 5 s a night at a million customers) because
-- ingest keeps one row per key and day, the superseded pass fails on a key
-- twice in one partition and lists every earlier copy, and the view drops them
-- test started_at: not_null
-- test page_views: range 0 *
-- test duration_s: range 0 86400
WITH latest AS (
    SELECT
        w.session_id,
        w.customer_id,
        w.started_at,
        w.page_views,
        w.duration_s,
        w.bounced,
        w.converted,
        w.dt
    FROM web_sessions AS w
    WHERE w.dt <= run_date()
        -- the latest export of a record wins: drop copies a later export replaced
        AND NOT EXISTS (
            SELECT 1 FROM superseded AS s
            WHERE s.table_name = 'web_sessions' AND s.record_key = w.session_id AND s.source_dt = w.dt
        )
)
SELECT
    k.session_id,
    k.customer_id,
    k.started_at,
    CAST(k.started_at AS DATE) AS session_date,
    k.page_views,
    k.duration_s,
    k.bounced,
    k.converted,
    k.dt AS source_dt
FROM latest AS k
WHERE k.started_at < run_date() + INTERVAL '1 day'
