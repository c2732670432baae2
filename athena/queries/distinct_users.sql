-- Distinct users per event type per day over the last 7 days, from the payload's
-- user_id. approx_distinct is HyperLogLog: a fraction of the memory and time of
-- count(DISTINCT ...), within about 2% of the exact count.
SELECT
    event_type,
    created_date,
    approx_distinct(json_extract_scalar(payload, '$.user_id')) AS users,
    count(*) AS events
FROM events
WHERE created_date >= CAST(current_date - INTERVAL '6' DAY AS varchar)
GROUP BY event_type, created_date
ORDER BY created_date, event_type
