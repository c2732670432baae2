-- Duplicates the events_unique view removes, per type and day over the last 7
-- days: events stored more than once (same event_uuid and created time to the
-- millisecond) and the extra rows they add. Producer retries across Firehose
-- batches show up here.
SELECT
    event_type,
    created_date,
    count(*) AS duplicated_events,
    sum(copies - 1) AS extra_rows
FROM (
    SELECT event_type, created_date, event_uuid, count(*) AS copies
    FROM events
    WHERE created_date >= CAST(current_date - INTERVAL '6' DAY AS varchar)
    GROUP BY event_type, created_date, event_uuid, from_iso8601_timestamp(created_datetime)
    HAVING count(*) > 1
)
GROUP BY event_type, created_date
ORDER BY created_date, extra_rows DESC, event_type
