-- Events per type per day over the last 7 days (today and the 6 days before, UTC),
-- as stored: duplicates included (query events_unique for exact counts).
SELECT event_type, created_date, count(*) AS events
FROM events
WHERE created_date >= CAST(current_date - INTERVAL '6' DAY AS varchar)
GROUP BY event_type, created_date
ORDER BY created_date, events DESC, event_type
