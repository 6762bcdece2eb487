-- model: stg_reviews
-- materialized: view
-- purpose: Every public review posted up to the end of the run date, de-duplicated across export days, without the review text.
-- grain: one row per review_id: the record from the latest partition dt <= run date (copies a later export replaced are listed in superseded), kept when posted_at < run date + 1 day
-- incremental tests: exported on source_dt, entering on posted_at
-- column review_id: review key
-- column posted_at: when the review was posted (timestamp, UTC)
-- column posted_date: calendar day of posted_at (date, UTC)
-- column customer_id: pseudonymous customer id of the reviewer; NULL for anonymous reviews
-- column platform: where the review was posted (google, tripadvisor, website)
-- column rating: stars (1-5)
-- column replied_at: when the business replied (timestamp, UTC); NULL when not replied or replied only after the run date
-- column reply_hours: replied_at minus posted_at (hours); NULL when not replied
-- column source_dt: export day (partition dt) of the record kept (date)
-- test review_id: not_null
-- review_id is unique by construction, so it has no unique test (one over every
-- record ever exported cost 5 s a night at a million customers) because
-- ingest keeps one row per key and day, the superseded pass fails on a key
-- twice in one partition and lists every earlier copy, and the view drops them
-- test posted_at: not_null
-- test platform: accepted_values google tripadvisor website
-- test rating: not_null, range 1 5
WITH latest AS (
    SELECT
        v.review_id,
        v.posted_at,
        v.customer_id,
        v.platform,
        v.rating,
        v.replied_at,
        v.dt
    FROM reviews AS v
    WHERE v.dt <= run_date()
        -- the latest export of a record wins: drop copies a later export replaced
        AND NOT EXISTS (
            SELECT 1 FROM superseded AS s
            WHERE s.table_name = 'reviews' AND s.record_key = v.review_id AND s.source_dt = v.dt
        )
),
as_of AS (
    SELECT
        k.review_id,
        k.posted_at,
        k.customer_id,
        k.platform,
        k.rating,
        CASE WHEN k.replied_at < run_date() + INTERVAL '1 day' THEN k.replied_at END AS replied_at,
        k.dt
    FROM latest AS k
    WHERE k.posted_at < run_date() + INTERVAL '1 day'
)
SELECT
    review_id,
    posted_at,
    CAST(posted_at AS DATE) AS posted_date,
    customer_id,
    platform,
    rating,
    replied_at,
    (extract(epoch FROM replied_at) - extract(epoch FROM posted_at)) / 3600.0 AS reply_hours,
    dt AS source_dt
FROM as_of
