-- Every support ticket opened up to the end of the run date, as the
-- staging view stg_tickets keeps it (latest export wins; later events are
-- not yet known), with the business's first reply and the customer's message
-- from the same export (the lake partition the view's row came from), for
-- the tickets exported from texts_from on (placeholder, YYYY-MM-DD). The
-- hours until the same customer's next ticket on the same topic are
-- computed after reading (inputs::tickets): as a window, PARTITION BY
-- customer_id, topic made 1.5M partitions of one or two rows and took 3.6 s
-- of the 5 s query at a million customers. The rows are put in ticket_id
-- order after reading too: sorted here, with their replies and messages,
-- the job alone peaked at 2,089 and 2,134 MiB; sorted after, 1,911 and 1,924.
WITH kept AS (
    SELECT
        s.ticket_id,
        s.customer_id,
        extract(epoch FROM s.created_at) AS created_epoch,
        s.channel,
        s.handled_by,
        s.topic,
        CAST(s.satisfaction AS BIGINT) AS satisfaction,
        s.reopened,
        s.first_response_hours,
        s.resolution_hours,
        s.follow_up_hours,
        -- a reply sent after the run date is not yet known (stg_tickets
        -- blanks its first_response_at the same way)
        CASE
            WHEN l.first_response_at IS NOT NULL AND l.first_response_at >= run_date() + INTERVAL '1 day' THEN NULL
            ELSE l.reply
        END AS reply,
        l.message,
        s.source_dt
    FROM stg_tickets AS s
    -- texts_from: the first export day whose texts the job reads (the
    -- scores of earlier ones are carried from the night before, see
    -- empathy/carry.rs); a filter on the partition column, so the older
    -- partitions' texts are not read at all
    LEFT JOIN (
        SELECT ticket_id, dt, first_response_at, reply, message
        FROM tickets
        WHERE dt >= DATE '{texts_from}'
    ) AS l
        ON l.ticket_id = s.ticket_id AND l.dt = s.source_dt
)
SELECT
    ticket_id,
    customer_id,
    created_epoch,
    channel,
    handled_by,
    topic,
    satisfaction,
    reopened,
    first_response_hours,
    resolution_hours,
    follow_up_hours,
    reply,
    message,
    source_dt
FROM kept
