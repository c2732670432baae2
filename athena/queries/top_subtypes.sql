-- Top subtypes of one event type (here: payment) over the last 7 days, with each
-- subtype's share of the type's events. Events without a subtype show as (none).
SELECT
    coalesce(event_subtype, '(none)') AS event_subtype,
    count(*) AS events,
    round(CAST(count(*) AS double) * 100 / sum(count(*)) OVER (), 2) AS percent
FROM events
WHERE event_type = 'payment'
    AND created_date >= CAST(current_date - INTERVAL '6' DAY AS varchar)
GROUP BY event_subtype
ORDER BY events DESC, event_subtype
LIMIT 20
