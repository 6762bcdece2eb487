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
    LEFT JOIN voice_segments AS g ON customer_key(g.customer_id) = customer_key(f.customer_id)
    WHERE f.dt = $run_date
),
-- one pass over the messages: each pairs with the metrics it counts in (a
-- survey answer in its scale's metric and, when its words were scored, in
-- sentiment); a UNION of one branch per metric read and joined them 4 times
facts AS (
    SELECT
        at,
        touchpoint,
        language,
        segment,
        m.metric,
        CASE m.metric
            WHEN 'nps' THEN CASE WHEN rating >= 9 THEN 1.0 ELSE 0.0 END
            WHEN 'csat' THEN CASE WHEN rating >= 4 THEN 1.0 ELSE 0.0 END
            WHEN 'ces' THEN CAST(rating AS DOUBLE)
            ELSE sentiment
        END AS a,
        CASE m.metric
            WHEN 'nps' THEN CASE WHEN rating <= 6 THEN 1.0 ELSE 0.0 END
            WHEN 'csat' THEN 0.0
            WHEN 'ces' THEN CAST(rating * rating AS DOUBLE)
            ELSE sentiment * sentiment
        END AS b
    FROM messages
    CROSS JOIN (VALUES ('nps'), ('csat'), ('ces'), ('sentiment')) AS m (metric)
    WHERE CASE m.metric
        WHEN 'sentiment' THEN scored AND sentiment IS NOT NULL
        ELSE source = 'survey' AND rating_scale = m.metric AND rating IS NOT NULL
    END
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
