-- The audited tickets of the "service" decision table (service.sql): one
-- row per ticket opened in the audit window, with the customer (its row of
-- audit_customers, for its groups). Reads the stg_tickets view (the
-- transform's own SQL, run as of the run date), so the service figures
-- agree with marts/service_levels: first response and resolution in hours
-- (NULL while unanswered or unresolved), reopened, and whether a negative
-- rating (1-2) got a follow-up within 48 hours. Tickets opened in the last
-- day before the end of the run date have not had their 48 hours yet:
-- NULL, not "no".
-- The job holds these rows as the table audit_tickets, which service.sql
-- reads twice (the rows and their channels' medians): as a CTE there,
-- DataFusion scanned and joined every ticket of the window twice.
SELECT
    c.customer_row,
    t.channel,
    t.handled_by,
    t.first_response_hours,
    t.resolution_hours,
    t.reopened,
    CASE
        WHEN t.satisfaction <= 2 AND t.created_at < run_date() - INTERVAL '1 day'
            THEN coalesce(t.follow_up_hours <= 48, false)
    END AS followed_up_48h
FROM stg_tickets AS t
JOIN audit_customers AS c ON c.customer_key = customer_key(t.customer_id)
-- the same rows twice over: the day for the definition, the timestamp
-- so that Parquet's row-group statistics skip what was opened before
-- the window (the day is computed, which no statistic answers)
WHERE t.created_date >= window_start()
    AND t.created_at >= CAST(window_start() AS TIMESTAMP)
