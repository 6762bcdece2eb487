-- model: nps_daily
-- materialized: table
-- purpose: Net Promoter Score per day and touchpoint, for the trend in the owner's report.
-- grain: one row per response date (UTC day of responded_at) and touchpoint with at least one NPS answer up to the run date; days without answers have no row
-- incremental: response_date by stg_feedback.responded_at
-- column response_date: calendar day of the answers (date, UTC)
-- column touchpoint: where the experience happened (in_store, online, delivery, support; NULL when not exported)
-- column responses: NPS answers (count)
-- column promoters: answers scoring 9 or 10 (count)
-- column passives: answers scoring 7 or 8 (count)
-- column detractors: answers scoring 0 to 6 (count)
-- column net_promoter_score: 100 * (promoters - detractors) / responses (NPS points, -100 to 100)
-- test response_date: not_null
-- test touchpoint: accepted_values in_store online delivery support
-- test responses: not_null, range 1 *
-- test promoters: not_null, range 0 *
-- test passives: not_null, range 0 *
-- test detractors: not_null, range 0 *
-- test net_promoter_score: not_null, range -100 100
WITH counts AS (
    SELECT
        response_date,
        touchpoint,
        count(*) AS responses,
        sum(CASE WHEN score >= 9 THEN 1 ELSE 0 END) AS promoters,
        sum(CASE WHEN score BETWEEN 7 AND 8 THEN 1 ELSE 0 END) AS passives,
        sum(CASE WHEN score <= 6 THEN 1 ELSE 0 END) AS detractors
    FROM stg_feedback
    WHERE survey_type = 'nps'
    GROUP BY response_date, touchpoint
)
SELECT
    response_date,
    touchpoint,
    responses,
    promoters,
    passives,
    detractors,
    100.0 * (promoters - detractors) / NULLIF(responses, 0) AS net_promoter_score
FROM counts
ORDER BY response_date, touchpoint
