-- Public reviews posted up to the end of the run date, with their text, one
-- row per review_id. Same rule as sql/stg_reviews.sql (latest export
-- partition dt <= run date), which leaves the text out.
WITH latest AS (
    SELECT
        v.review_id,
        v.customer_id,
        v.posted_at,
        v.platform,
        v.text,
        v.rating
    FROM reviews AS v
    -- the slice of the messages this query reads (slice_* parameters, see
    -- voice::messages::Slice): every one up to the run date, or those new
    -- since an earlier night's feedback_scored
    WHERE v.dt > $slice_dt_after AND v.dt <= $slice_dt_upto
        AND v.posted_at >= $slice_at_from AND v.posted_at < $slice_at_before
        -- the latest export of a record wins: drop the copies a later export
        -- replaced, as the transform listed them for the run date (a window
        -- over every record took seconds per million: each key its own partition)
        AND NOT EXISTS (
            SELECT 1 FROM superseded AS s
            WHERE s.table_name = 'reviews' AND s.record_key = v.review_id AND s.source_dt = v.dt
        )
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
FROM latest AS k
ORDER BY message_id
