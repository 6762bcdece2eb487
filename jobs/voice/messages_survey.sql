-- Survey answers up to the end of the run date, with their comment, one row
-- per response_id. Same rule as sql/stg_feedback.sql (the record of the
-- latest export partition dt <= run date wins; answers after the run date
-- are not yet known), which leaves the comment out.
WITH latest AS (
    SELECT
        f.response_id,
        f.customer_id,
        f.responded_at,
        f.survey_type,
        f.score,
        f.comment,
        f.touchpoint
    FROM feedback AS f
    -- the slice of the messages this query reads (slice_* parameters, see
    -- voice::messages::Slice): every one up to the run date, or those new
    -- since an earlier night's feedback_scored
    WHERE f.dt > $slice_dt_after AND f.dt <= $slice_dt_upto
        AND f.responded_at >= $slice_at_from AND f.responded_at < $slice_at_before
        -- the latest export of a record wins: drop the copies a later export
        -- replaced, as the transform listed them for the run date (a window
        -- over every record took seconds per million: each key its own partition)
        AND NOT EXISTS (
            SELECT 1 FROM superseded AS s
            WHERE s.table_name = 'feedback' AND s.record_key = f.response_id AND s.source_dt = f.dt
        )
)
SELECT
    k.response_id AS message_id,
    k.customer_id,
    k.responded_at AS at,
    k.touchpoint,
    k.comment AS text,
    CAST(k.score AS BIGINT) AS rating,
    k.survey_type AS rating_scale,
    CAST(NULL AS TIMESTAMP) AS follow_up_at
FROM latest AS k
ORDER BY message_id
