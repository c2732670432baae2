-- The 20 latest events of one event type (here: payment), newest first, from
-- today's and yesterday's partitions (UTC).
SELECT created_datetime, event_name, event_uuid, payload
FROM events
WHERE event_type = 'payment'
    AND created_date >= CAST(current_date - INTERVAL '1' DAY AS varchar)
ORDER BY from_iso8601_timestamp(created_datetime) DESC, event_uuid, payload
LIMIT 20
