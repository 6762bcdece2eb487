-- model: stg_feedback
-- materialized: view
-- purpose: Every survey answer (NPS, CSAT, CES, empathy items) given up to the end of the run date, de-duplicated across export days, without the free-text comment.
-- grain: one row per response_id: the record from the latest partition dt <= run date (copies a later export replaced are listed in superseded), kept when responded_at < run date + 1 day
-- incremental tests: exported on source_dt, entering on responded_at
-- column response_id: answer key
-- column customer_id: pseudonymous customer id of the respondent
-- column responded_at: when the answer was given (timestamp, UTC)
-- column response_date: calendar day of responded_at (date, UTC)
-- column survey_type: scale of the score (nps, csat, ces, empathy)
-- column score: the answer (NPS 0-10, CSAT 1-5, CES 1-7, empathy items 1-7)
-- column touchpoint: where the experience happened (in_store, online, delivery, support)
-- column item: SERVQUAL empathy item number 1-5 (empathy surveys only)
-- column source_dt: export day (partition dt) of the record kept (date)
-- test response_id: not_null
-- response_id is unique by construction, so it has no unique test (one over every
-- record ever exported cost 5 s a night at a million customers) because
-- ingest keeps one row per key and day, the superseded pass fails on a key
-- twice in one partition and lists every earlier copy, and the view drops them
-- test customer_id: not_null
-- test responded_at: not_null
-- test survey_type: not_null, accepted_values nps csat ces empathy
-- test score: not_null, range 0 10
-- test touchpoint: accepted_values in_store online delivery support
-- test item: range 1 5
WITH latest AS (
    SELECT
        f.response_id,
        f.customer_id,
        f.responded_at,
        f.survey_type,
        f.score,
        f.touchpoint,
        f.item,
        f.dt
    FROM feedback AS f
    WHERE f.dt <= run_date()
        -- the latest export of a record wins: drop copies a later export replaced
        AND NOT EXISTS (
            SELECT 1 FROM superseded AS s
            WHERE s.table_name = 'feedback' AND s.record_key = f.response_id AND s.source_dt = f.dt
        )
)
SELECT
    k.response_id,
    k.customer_id,
    k.responded_at,
    CAST(k.responded_at AS DATE) AS response_date,
    k.survey_type,
    k.score,
    k.touchpoint,
    k.item,
    k.dt AS source_dt
FROM latest AS k
WHERE k.responded_at < run_date() + INTERVAL '1 day'
