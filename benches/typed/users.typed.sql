-- Distinct users and events of one type per day, on the typed view.
SELECT created_date, approx_distinct(user_id) AS users, count(*) AS events
FROM events_session
WHERE created_date >= CAST(current_date - INTERVAL '6' DAY AS varchar)
GROUP BY created_date
ORDER BY created_date
