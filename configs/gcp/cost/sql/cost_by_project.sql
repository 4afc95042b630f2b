-- The day's cost per project.
SELECT usage_date, project_id, ROUND(SUM(cost), 2) AS cost, COUNT(*) AS line_items
FROM cost.billing_export
WHERE usage_date = @date
GROUP BY usage_date, project_id
