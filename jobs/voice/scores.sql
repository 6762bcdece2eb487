-- Counts and sums of every voice score at the finest grain (day,
-- touchpoint, language, segment; the metric is in the columns' names), from
-- the feedback_scored partition of the run date; the job rolls them up to periods (all, day, ISO week, month) and
-- dimensions (all, touchpoint, language, segment) and computes the
-- estimates and intervals:
--   nps:       sum_a = promoters (9-10), sum_b = detractors (0-6)
--   csat:      sum_a = satisfied answers (4-5), sum_b = 0
--   ces:       sum_a = sum of scores, sum_b = sum of squared scores
--   sentiment: sum_a = sum of compound scores, sum_b = sum of squares (scored messages only)
-- voice_segments is empty when marts/segments has no partition for the run
-- date; a NULL touchpoint, language or segment leaves the message out of
-- that dimension only.
WITH messages AS (
    SELECT
        f.at,
        f.touchpoint,
        f.language,
        g.segment,
        f.rating,
        f.sentiment,
        f.source = 'survey' AND f.rating_scale = 'nps' AND f.rating IS NOT NULL AS is_nps,
        f.source = 'survey' AND f.rating_scale = 'csat' AND f.rating IS NOT NULL AS is_csat,
        f.source = 'survey' AND f.rating_scale = 'ces' AND f.rating IS NOT NULL AS is_ces,
        f.scored AND f.sentiment IS NOT NULL AS is_scored
    FROM feedback_scored AS f
    LEFT JOIN voice_segments AS g ON customer_key(g.customer_id) = customer_key(f.customer_id)
    WHERE f.dt = $run_date
)
-- One pass, one group per (day, touchpoint, language, segment), every metric
-- a FILTERed count or sum beside the others; scores.rs turns each metric with
-- answers into a row of its own. Pairing every message with the four metrics
-- (a CROSS JOIN, then a CASE per metric) and grouping by the metric too took
-- 3 s of the voice job at a million customers.
SELECT
    CAST(at AS DATE) AS day,
    touchpoint,
    language,
    segment,
    count(*) FILTER (WHERE is_nps) AS nps_n,
    count(*) FILTER (WHERE is_nps AND rating >= 9) AS nps_a,
    count(*) FILTER (WHERE is_nps AND rating <= 6) AS nps_b,
    count(*) FILTER (WHERE is_csat) AS csat_n,
    count(*) FILTER (WHERE is_csat AND rating >= 4) AS csat_a,
    count(*) FILTER (WHERE is_ces) AS ces_n,
    sum(CAST(rating AS DOUBLE)) FILTER (WHERE is_ces) AS ces_a,
    sum(CAST(rating * rating AS DOUBLE)) FILTER (WHERE is_ces) AS ces_b,
    count(*) FILTER (WHERE is_scored) AS sentiment_n,
    sum(sentiment) FILTER (WHERE is_scored) AS sentiment_a,
    sum(sentiment * sentiment) FILTER (WHERE is_scored) AS sentiment_b
FROM messages
GROUP BY CAST(at AS DATE), touchpoint, language, segment
