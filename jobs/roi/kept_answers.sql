-- The NPS answers the randomized comparison counts, as of the run date: every
-- NPS answer given up to the run date, its latest export only, each +100
-- (score 9-10), -100 (0-6) or 0 (7-8); their mean is the NPS.
-- Placeholders (replaced by the job with checked values): run_date (YYYY-MM-DD).
-- The job registers it as roi_answers; responded_at and dt stay for telling
-- the answers that entered after an earlier night (roi/outcomes.rs).
SELECT
    customer_key(f.customer_id) AS customer_key,
    CAST(f.responded_at AS DATE) AS response_date,
    CASE WHEN f.score >= 9 THEN 100 WHEN f.score <= 6 THEN -100 ELSE 0 END AS nps_value,
    f.responded_at,
    f.dt
FROM feedback AS f
WHERE f.dt <= DATE '{run_date}'
    AND f.survey_type = 'nps'
    AND CAST(f.responded_at AS DATE) <= DATE '{run_date}'
    AND NOT EXISTS (
        SELECT 1 FROM superseded AS s
        WHERE s.table_name = 'feedback' AND s.record_key = f.response_id AND s.source_dt = f.dt
    )
