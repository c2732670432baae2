-- Hourly volume of one day (yesterday, UTC): events per hour and how many event
-- types were active in it. A dip shows a producer or delivery outage.
SELECT date_format(hour, '%Y-%m-%d %H:%i') AS hour_utc, events, event_types
FROM (
    SELECT
        date_trunc('hour', from_unixtime(created_at)) AS hour,
        count(*) AS events,
        count(DISTINCT event_type) AS event_types
    FROM events
    WHERE created_date = CAST(current_date - INTERVAL '1' DAY AS varchar)
    GROUP BY date_trunc('hour', from_unixtime(created_at))
)
ORDER BY hour_utc
