-- Decision table "sentiment_instrument": every scored-or-unscored message of
-- an identified customer in the audit window (marts/feedback_scored of the
-- run date), with the rating the customer gave alongside it.
SELECT
    c.customer_row,
    f.source,
    f.scored,
    f.sentiment,
    CAST(f.rating AS DOUBLE) AS rating,
    CAST(f.rating_scale AS VARCHAR) AS rating_scale
FROM feedback_scored AS f
JOIN audit_customers AS c ON c.customer_key = customer_key(f.customer_id)
WHERE f.dt = run_date()
    AND CAST(f.at AS DATE) >= window_start()
    -- the timestamp too, for the statistics (as in service_tickets.sql)
    AND f.at >= CAST(window_start() AS TIMESTAMP)
