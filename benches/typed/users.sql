-- Distinct users and events of one type per day, by hand.
SELECT created_date, approx_distinct(json_extract_scalar(payload, '$.user_id')) AS users, count(*) AS events
FROM events_unique
WHERE event_type = 'session' AND created_date >= CAST(current_date - INTERVAL '6' DAY AS varchar)
GROUP BY created_date
ORDER BY created_date
