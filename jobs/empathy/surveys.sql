-- Every SERVQUAL empathy survey answered up to the end of the run date: the
-- item rows (one per item) one customer gave at one moment about one
-- touchpoint, side by side. contact_id is the survey's first response_id.
SELECT
    min(response_id) AS contact_id,
    customer_id,
    extract(epoch FROM responded_at) AS at_epoch,
    touchpoint,
    max(CASE WHEN item = 1 THEN score END) AS item1,
    max(CASE WHEN item = 2 THEN score END) AS item2,
    max(CASE WHEN item = 3 THEN score END) AS item3,
    max(CASE WHEN item = 4 THEN score END) AS item4,
    max(CASE WHEN item = 5 THEN score END) AS item5
FROM stg_feedback
WHERE survey_type = 'empathy'
GROUP BY customer_id, responded_at, touchpoint
ORDER BY contact_id
