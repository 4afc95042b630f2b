-- The day's cost per service ($date is bound, never formatted).
SELECT usage_date, service, ROUND(SUM(cost), 2) AS cost, COUNT(*) AS line_items
FROM raw_billing
WHERE usage_date = $date::DATE
GROUP BY usage_date, service
ORDER BY cost DESC
