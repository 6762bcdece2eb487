-- Survey answers up to the end of the run date, with their comment, one row
-- per response_id. Same rule as sql/stg_feedback.sql (the record of the
-- latest export partition dt <= run date wins; answers after the run date
-- are not yet known), which leaves the comment out.
WITH ranked AS (
    SELECT
        f.response_id,
        f.customer_id,
        f.responded_at,
        f.survey_type,
        f.score,
        f.comment,
        f.touchpoint,
        row_number() OVER (PARTITION BY f.response_id ORDER BY f.dt DESC) AS record_rank
    FROM feedback AS f
    WHERE f.dt <= $run_date
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
FROM ranked AS k
WHERE k.record_rank = 1
    AND k.responded_at < $run_end
ORDER BY message_id
