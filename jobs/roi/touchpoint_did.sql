-- Survey answers per customer, touchpoint group and period, for the difference
-- in differences of an initiative that changed one touchpoint.
-- Placeholders (replaced by the job with checked values): run_date and
-- started_on (YYYY-MM-DD), touchpoint (one of the feedback contract's touchpoints).
--
-- exposed = the answer is about touchpoint; in_after = given on or after
-- started_on (the effect is assumed to last, so "after" runs to the run date).
-- total: the sum of empathy item scores (1-7), or of +100 / -100 / 0 per NPS
-- answer (promoter / detractor / passive). Answers without a touchpoint say
-- nothing about either group and are left out.
WITH feedback_kept AS (
    SELECT
        f.customer_id,
        f.survey_type,
        f.score,
        f.touchpoint,
        CAST(f.responded_at AS DATE) AS response_date
    FROM feedback AS f
    WHERE f.dt <= DATE '{run_date}'
        AND f.survey_type IN ('empathy', 'nps')
        AND f.touchpoint IS NOT NULL
        AND NOT EXISTS (
            SELECT 1 FROM superseded AS s
            WHERE s.table_name = 'feedback' AND s.record_key = f.response_id AND s.source_dt = f.dt
        )
),
answers AS (
    SELECT
        k.customer_id,
        k.survey_type,
        CASE WHEN k.touchpoint = '{touchpoint}' THEN 1 ELSE 0 END AS exposed,
        CASE WHEN k.response_date >= DATE '{started_on}' THEN 1 ELSE 0 END AS in_after,
        CASE
            WHEN k.survey_type = 'nps' THEN
                CASE WHEN k.score >= 9 THEN 100 WHEN k.score <= 6 THEN -100 ELSE 0 END
            ELSE k.score
        END AS value
    FROM feedback_kept AS k
    JOIN customer_features AS c ON c.customer_id = k.customer_id AND c.dt = DATE '{run_date}'
    WHERE k.response_date <= DATE '{run_date}'
)
SELECT
    customer_id,
    survey_type,
    CAST(exposed AS BIGINT) AS exposed,
    CAST(in_after AS BIGINT) AS in_after,
    CAST(sum(value) AS DOUBLE) AS total,
    CAST(count(*) AS DOUBLE) AS answers
FROM answers
GROUP BY customer_id, survey_type, exposed, in_after
ORDER BY customer_id, survey_type, exposed, in_after
