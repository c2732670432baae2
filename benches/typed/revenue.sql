-- Revenue per currency over the last 7 days, written by hand over events_unique.
SELECT
    json_extract_scalar(payload, '$.currency') AS currency,
    round(sum(CAST(json_extract_scalar(payload, '$.amount') AS double)), 2) AS revenue,
    count(*) AS payments
FROM events_unique
WHERE event_type = 'payment'
    AND created_date >= CAST(current_date - INTERVAL '6' DAY AS varchar)
GROUP BY json_extract_scalar(payload, '$.currency')
ORDER BY currency
