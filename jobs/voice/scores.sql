-- Counts and sums of every voice score at the finest grain (metric, day,
-- touchpoint, language, segment), from the feedback_scored partition of the
-- run date; the job rolls them up to periods (all, day, ISO week, month) and
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
        f.source,
        f.rating,
        f.rating_scale,
        f.scored,
        f.sentiment
    FROM feedback_scored AS f
    LEFT JOIN voice_segments AS g ON g.customer_id = f.customer_id
    WHERE f.dt = $run_date
),
facts AS (
    SELECT at, touchpoint, language, segment, 'nps' AS metric,
        CASE WHEN rating >= 9 THEN 1.0 ELSE 0.0 END AS a,
        CASE WHEN rating <= 6 THEN 1.0 ELSE 0.0 END AS b
    FROM messages
    WHERE source = 'survey' AND rating_scale = 'nps' AND rating IS NOT NULL
    UNION ALL
    SELECT at, touchpoint, language, segment, 'csat' AS metric,
        CASE WHEN rating >= 4 THEN 1.0 ELSE 0.0 END AS a,
        0.0 AS b
    FROM messages
    WHERE source = 'survey' AND rating_scale = 'csat' AND rating IS NOT NULL
    UNION ALL
    SELECT at, touchpoint, language, segment, 'ces' AS metric,
        CAST(rating AS DOUBLE) AS a,
        CAST(rating * rating AS DOUBLE) AS b
    FROM messages
    WHERE source = 'survey' AND rating_scale = 'ces' AND rating IS NOT NULL
    UNION ALL
    SELECT at, touchpoint, language, segment, 'sentiment' AS metric,
        sentiment AS a,
        sentiment * sentiment AS b
    FROM messages
    WHERE scored AND sentiment IS NOT NULL
)
SELECT
    metric,
    CAST(at AS DATE) AS day,
    touchpoint,
    language,
    segment,
    count(*) AS n,
    sum(a) AS sum_a,
    sum(b) AS sum_b
FROM facts
GROUP BY metric, CAST(at AS DATE), touchpoint, language, segment
ORDER BY metric, day, touchpoint, language, segment
