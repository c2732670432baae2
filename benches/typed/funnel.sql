-- athena/queries/funnel.sql as written: users with a cart event who later checked out.
WITH first_cart AS (
    SELECT json_extract_scalar(payload, '$.user_id') AS user_id, min(from_iso8601_timestamp(created_datetime)) AS first_at
    FROM events_unique
    WHERE event_type = 'cart'
        AND created_date >= CAST(current_date - INTERVAL '6' DAY AS varchar)
        AND json_extract_scalar(payload, '$.user_id') IS NOT NULL
    GROUP BY json_extract_scalar(payload, '$.user_id')
),
last_checkout AS (
    SELECT json_extract_scalar(payload, '$.user_id') AS user_id, max(from_iso8601_timestamp(created_datetime)) AS last_at
    FROM events_unique
    WHERE event_type = 'checkout'
        AND created_date >= CAST(current_date - INTERVAL '6' DAY AS varchar)
        AND json_extract_scalar(payload, '$.user_id') IS NOT NULL
    GROUP BY json_extract_scalar(payload, '$.user_id')
)
SELECT count(*) AS cart_users, count(c.user_id) AS converted_users
FROM first_cart f
LEFT JOIN last_checkout c ON c.user_id = f.user_id AND c.last_at >= f.first_at
