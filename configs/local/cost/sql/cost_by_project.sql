-- The day's cost per project.
SELECT usage_date, project_id, ROUND(SUM(cost), 2) AS cost, COUNT(*) AS line_items
FROM raw_billing
WHERE usage_date = $date::DATE
GROUP BY usage_date, project_id
ORDER BY cost DESC
