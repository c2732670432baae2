-- The funnel on the typed views of cart and checkout.
WITH first_cart AS (
    SELECT user_id, min(created_ts) AS first_at
    FROM events_cart
    WHERE created_date >= CAST(current_date - INTERVAL '6' DAY AS varchar) AND user_id IS NOT NULL
    GROUP BY user_id
),
last_checkout AS (
    SELECT user_id, max(created_ts) AS last_at
    FROM events_checkout
    WHERE created_date >= CAST(current_date - INTERVAL '6' DAY AS varchar) AND user_id IS NOT NULL
    GROUP BY user_id
)
SELECT count(*) AS cart_users, count(c.user_id) AS converted_users
FROM first_cart f
LEFT JOIN last_checkout c ON c.user_id = f.user_id AND c.last_at >= f.first_at
