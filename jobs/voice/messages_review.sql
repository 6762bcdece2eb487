-- Public reviews posted up to the end of the run date, with their text, one
-- row per review_id. Same rule as sql/stg_reviews.sql (latest export
-- partition dt <= run date), which leaves the text out.
WITH ranked AS (
    SELECT
        v.review_id,
        v.customer_id,
        v.posted_at,
        v.platform,
        v.text,
        v.rating,
        row_number() OVER (PARTITION BY v.review_id ORDER BY v.dt DESC) AS record_rank
    FROM reviews AS v
    WHERE v.dt <= $run_date
)
SELECT
    k.review_id AS message_id,
    k.customer_id,
    k.posted_at AS at,
    k.platform AS touchpoint,
    k.text,
    CAST(k.rating AS BIGINT) AS rating,
    'stars' AS rating_scale,
    CAST(NULL AS TIMESTAMP) AS follow_up_at
FROM ranked AS k
WHERE k.record_rank = 1
    AND k.posted_at < $run_end
ORDER BY message_id
