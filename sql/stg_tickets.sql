-- model: stg_tickets
-- materialized: view
-- purpose: Every support ticket opened up to the end of the run date, de-duplicated across export days, as known at the end of the run date and without the free-text message and reply.
-- grain: one row per ticket_id: the record from the latest partition dt <= run date (copies a later export replaced are listed in superseded), kept when created_at < run date + 1 day
-- incremental tests: exported on source_dt, entering on created_at
-- column ticket_id: ticket key from the helpdesk
-- column customer_id: pseudonymous customer id of the customer who asked
-- column created_at: when the ticket was opened (timestamp, UTC)
-- column created_date: calendar day of created_at (date, UTC)
-- column first_response_at: first answer (timestamp, UTC); NULL when unanswered or answered only after the run date
-- column resolved_at: resolution (timestamp, UTC); NULL when unresolved or resolved only after the run date
-- column channel: contact channel (email, chat, phone)
-- column handled_by: who handled the ticket (human, bot, bot_then_human)
-- column topic: what the customer needed (order_issue, product_quality, billing, delivery, allergy_info, other)
-- column satisfaction: the customer's rating of the support (1-5; NULL when not rated)
-- column follow_up_at: follow-up after a negative rating (timestamp, UTC); NULL when none or only after the run date
-- column reopened: whether the ticket was reopened (NULL when not exported)
-- column first_response_hours: first_response_at minus created_at (hours); NULL when unanswered
-- column resolution_hours: resolved_at minus created_at (hours); NULL when unresolved
-- column follow_up_hours: follow_up_at minus created_at (hours); NULL when no follow-up
-- column source_dt: export day (partition dt) of the record kept (date)
-- test ticket_id: not_null
-- ticket_id is unique by construction, so it has no unique test (one over every
-- record ever exported cost 5 s a night at a million customers) because
-- ingest keeps one row per key and day, the superseded pass fails on a key
-- twice in one partition and lists every earlier copy, and the view drops them
-- test customer_id: not_null
-- test created_at: not_null
-- test channel: not_null, accepted_values email chat phone
-- test handled_by: not_null, accepted_values human bot bot_then_human
-- test topic: accepted_values order_issue product_quality billing delivery allergy_info other
-- test satisfaction: range 1 5
WITH latest AS (
    SELECT
        t.ticket_id,
        t.customer_id,
        t.created_at,
        t.first_response_at,
        t.resolved_at,
        t.channel,
        t.handled_by,
        t.topic,
        t.satisfaction,
        t.follow_up_at,
        t.reopened,
        t.dt
    FROM tickets AS t
    WHERE t.dt <= run_date()
        -- the latest export of a record wins: drop copies a later export replaced
        AND NOT EXISTS (
            SELECT 1 FROM superseded AS s
            WHERE s.table_name = 'tickets' AND s.record_key = t.ticket_id AND s.source_dt = t.dt
        )
),
as_of AS (
    -- later events in an export are not yet known at the end of the run date
    SELECT
        k.ticket_id,
        k.customer_id,
        k.created_at,
        CASE WHEN k.first_response_at < run_date() + INTERVAL '1 day' THEN k.first_response_at END AS first_response_at,
        CASE WHEN k.resolved_at < run_date() + INTERVAL '1 day' THEN k.resolved_at END AS resolved_at,
        k.channel,
        k.handled_by,
        k.topic,
        k.satisfaction,
        CASE WHEN k.follow_up_at < run_date() + INTERVAL '1 day' THEN k.follow_up_at END AS follow_up_at,
        k.reopened,
        k.dt
    FROM latest AS k
    WHERE k.created_at < run_date() + INTERVAL '1 day'
)
SELECT
    ticket_id,
    customer_id,
    created_at,
    CAST(created_at AS DATE) AS created_date,
    first_response_at,
    resolved_at,
    channel,
    handled_by,
    topic,
    satisfaction,
    follow_up_at,
    reopened,
    (extract(epoch FROM first_response_at) - extract(epoch FROM created_at)) / 3600.0 AS first_response_hours,
    (extract(epoch FROM resolved_at) - extract(epoch FROM created_at)) / 3600.0 AS resolution_hours,
    (extract(epoch FROM follow_up_at) - extract(epoch FROM created_at)) / 3600.0 AS follow_up_hours,
    dt AS source_dt
FROM as_of
