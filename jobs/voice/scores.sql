-- Sufficient statistics of every cell of marts/voice_scores, from the
-- feedback_scored partition of the run date: one row per metric, period
-- type, period start, dimension and group with n and two sums, from which
-- the job computes the estimates and intervals:
--   nps:       sum_a = promoters (9-10), sum_b = detractors (0-6)
--   csat:      sum_a = satisfied answers (4-5), sum_b = 0
--   ces:       sum_a = sum of scores, sum_b = sum of squared scores
--   sentiment: sum_a = sum of compound scores, sum_b = sum of squares (scored messages only)
-- Periods: all (period_start NULL), day, week (ISO, from Monday), month.
-- Dimensions: all, touchpoint, language (of the message's words), segment
-- (voice_segments is empty when marts/segments has no partition for the
-- run date). Messages whose group is unknown are left out of that
-- dimension only.
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
    CROSS JOIN voice_run AS r
    LEFT JOIN voice_segments AS g ON g.customer_id = f.customer_id
    WHERE f.dt = r.run_date
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
),
periods AS (
    SELECT column1 AS period_type FROM (VALUES ('all'), ('day'), ('week'), ('month'))
),
dimensions AS (
    SELECT column1 AS dimension FROM (VALUES ('all'), ('touchpoint'), ('language'), ('segment'))
),
cells AS (
    SELECT
        x.metric,
        p.period_type,
        CASE p.period_type
            WHEN 'day' THEN CAST(date_trunc('day', x.at) AS DATE)
            WHEN 'week' THEN CAST(date_trunc('week', x.at) AS DATE)
            WHEN 'month' THEN CAST(date_trunc('month', x.at) AS DATE)
        END AS period_start,
        d.dimension,
        CASE d.dimension
            WHEN 'all' THEN 'all'
            WHEN 'touchpoint' THEN x.touchpoint
            WHEN 'language' THEN x.language
            WHEN 'segment' THEN x.segment
        END AS group_value,
        x.a,
        x.b
    FROM facts AS x
    CROSS JOIN periods AS p
    CROSS JOIN dimensions AS d
)
SELECT
    metric,
    period_type,
    period_start,
    dimension,
    group_value,
    count(*) AS n,
    sum(a) AS sum_a,
    sum(b) AS sum_b
FROM cells
WHERE group_value IS NOT NULL
GROUP BY metric, period_type, period_start, dimension, group_value
ORDER BY metric, period_type, period_start, dimension, group_value
