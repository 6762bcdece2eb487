-- model: service_levels
-- materialized: table
-- purpose: Support responsiveness, resolution, satisfaction and closing the loop per day, channel and handler (human or bot), for the report and the fairness audit of bot routing.
-- grain: one row per created date (UTC day of created_at), channel and handled_by with at least one ticket up to the run date; days without tickets have no row
-- column created_date: calendar day the tickets were opened (date, UTC)
-- column channel: contact channel (email, chat, phone)
-- column handled_by: who handled the tickets (human, bot, bot_then_human)
-- column tickets: tickets opened (count)
-- column first_response_p50_hours: median of first_response_at - created_at over answered tickets (hours); NULL when none answered
-- column first_response_p90_hours: 90th percentile (continuous) of first_response_at - created_at over answered tickets (hours); NULL when none answered
-- column resolution_p50_hours: median of resolved_at - created_at over resolved tickets (hours); NULL when none resolved
-- column resolution_p90_hours: 90th percentile (continuous) of resolved_at - created_at over resolved tickets (hours); NULL when none resolved
-- column unanswered: tickets without a first response by the end of the run date (count)
-- column reopen_rate: reopened tickets / tickets with a reopened flag (ratio 0-1); NULL when no ticket has the flag
-- column rated: tickets with a satisfaction rating (count)
-- column mean_satisfaction: mean satisfaction rating over rated tickets (1-5); NULL when none rated
-- column negative_rated: tickets rated 1 or 2 (satisfaction <= 2) (count)
-- column followed_up_48h: negative-rated tickets with a follow_up_at no later than 48 hours after created_at, by the end of the run date (count)
-- column follow_up_rate_48h: followed_up_48h / negative_rated (ratio 0-1); NULL when no negative ratings
-- test created_date: not_null
-- test channel: not_null, accepted_values email chat phone
-- test handled_by: not_null, accepted_values human bot bot_then_human
-- test tickets: not_null, range 1 *
-- test first_response_p50_hours: range 0 *
-- test first_response_p90_hours: range 0 *
-- test resolution_p50_hours: range 0 *
-- test resolution_p90_hours: range 0 *
-- test unanswered: not_null, range 0 *
-- test reopen_rate: range 0 1
-- test rated: not_null, range 0 *
-- test mean_satisfaction: range 1 5
-- test negative_rated: not_null, range 0 *
-- test followed_up_48h: not_null, range 0 *
-- test follow_up_rate_48h: range 0 1
WITH counts AS (
    SELECT
        created_date,
        channel,
        handled_by,
        count(*) AS tickets,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY first_response_hours) AS first_response_p50_hours,
        percentile_cont(0.9) WITHIN GROUP (ORDER BY first_response_hours) AS first_response_p90_hours,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution_hours) AS resolution_p50_hours,
        percentile_cont(0.9) WITHIN GROUP (ORDER BY resolution_hours) AS resolution_p90_hours,
        sum(CASE WHEN first_response_at IS NULL THEN 1 ELSE 0 END) AS unanswered,
        sum(CASE WHEN reopened THEN 1 ELSE 0 END) AS reopens,
        count(reopened) AS reopen_flagged,
        count(satisfaction) AS rated,
        avg(CAST(satisfaction AS DOUBLE)) AS mean_satisfaction,
        sum(CASE WHEN satisfaction <= 2 THEN 1 ELSE 0 END) AS negative_rated,
        sum(CASE WHEN satisfaction <= 2 AND follow_up_hours <= 48 THEN 1 ELSE 0 END) AS followed_up_48h
    FROM stg_tickets
    GROUP BY created_date, channel, handled_by
)
SELECT
    created_date,
    channel,
    handled_by,
    tickets,
    first_response_p50_hours,
    first_response_p90_hours,
    resolution_p50_hours,
    resolution_p90_hours,
    unanswered,
    CAST(reopens AS DOUBLE) / NULLIF(reopen_flagged, 0) AS reopen_rate,
    rated,
    mean_satisfaction,
    negative_rated,
    followed_up_48h,
    CAST(followed_up_48h AS DOUBLE) / NULLIF(negative_rated, 0) AS follow_up_rate_48h
FROM counts
ORDER BY created_date, channel, handled_by
