-- model: csat_daily
-- materialized: table
-- purpose: Customer satisfaction (CSAT) per day and touchpoint, for the trend in the owner's report.
-- grain: one row per response date (UTC day of responded_at) and touchpoint with at least one CSAT answer up to the run date; days without answers have no row
-- incremental: response_date by stg_feedback.responded_at
-- column response_date: calendar day of the answers (date, UTC)
-- column touchpoint: where the experience happened (in_store, online, delivery, support; NULL when not exported)
-- column responses: CSAT answers (count)
-- column satisfied: answers scoring 4 or 5 (count)
-- column csat_pct: 100 * satisfied / responses (percent)
-- column mean_score: mean CSAT score (1-5 scale)
-- test response_date: not_null
-- test touchpoint: accepted_values in_store online delivery support
-- test responses: not_null, range 1 *
-- test satisfied: not_null, range 0 *
-- test csat_pct: not_null, range 0 100
-- test mean_score: not_null, range 1 5
WITH counts AS (
    SELECT
        response_date,
        touchpoint,
        count(*) AS responses,
        sum(CASE WHEN score >= 4 THEN 1 ELSE 0 END) AS satisfied,
        avg(CAST(score AS DOUBLE)) AS mean_score
    FROM stg_feedback
    WHERE survey_type = 'csat'
    GROUP BY response_date, touchpoint
)
SELECT
    response_date,
    touchpoint,
    responses,
    satisfied,
    100.0 * satisfied / NULLIF(responses, 0) AS csat_pct,
    mean_score
FROM counts
ORDER BY response_date, touchpoint
