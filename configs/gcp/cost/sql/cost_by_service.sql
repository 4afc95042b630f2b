-- The day's cost per service (@date is a bound DATE parameter).
SELECT usage_date, service, ROUND(SUM(cost), 2) AS cost, COUNT(*) AS line_items
FROM cost.billing_export
WHERE usage_date = @date
GROUP BY usage_date, service
