-- Revenue per currency over the last 7 days, on the typed view.
SELECT currency, round(sum(amount), 2) AS revenue, count(*) AS payments
FROM events_payment
WHERE created_date >= CAST(current_date - INTERVAL '6' DAY AS varchar)
GROUP BY currency
ORDER BY currency
