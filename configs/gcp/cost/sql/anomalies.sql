-- Project x service pairs whose cost on @date is more than @threshold times their average over
-- the seven days before it.
WITH daily AS (
    SELECT usage_date, project_id, service, SUM(cost) AS cost
    FROM cost.billing_export
    WHERE usage_date BETWEEN DATE_SUB(@date, INTERVAL 7 DAY) AND @date
    GROUP BY usage_date, project_id, service
),
baseline AS (
    SELECT project_id, service, AVG(cost) AS avg_cost
    FROM daily
    WHERE usage_date < @date
    GROUP BY project_id, service
)
SELECT d.usage_date, d.project_id, d.service,
       ROUND(d.cost, 2) AS cost, ROUND(b.avg_cost, 2) AS trailing_avg_cost,
       ROUND(d.cost / b.avg_cost, 2) AS ratio
FROM daily AS d
JOIN baseline AS b USING (project_id, service)
WHERE d.usage_date = @date AND d.cost > @threshold * b.avg_cost
