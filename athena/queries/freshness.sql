-- Data freshness per event type: the newest event's time and how many minutes it
-- is behind now. Reads today's and yesterday's partitions (UTC) only: a type
-- missing from the result has been silent for more than a day.
SELECT
    event_type,
    date_format(from_unixtime(max(created_at)), '%Y-%m-%d %H:%i:%s') AS newest_event_utc,
    round((to_unixtime(now()) - max(created_at)) / 60, 1) AS minutes_behind
FROM events
WHERE created_date >= CAST(current_date - INTERVAL '1' DAY AS varchar)
GROUP BY event_type
ORDER BY minutes_behind DESC, event_type
