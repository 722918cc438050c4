-- Per-customer order aggregates as of the end of $as_of.
-- One definition for both modes: a full recompute binds `previous` to an empty relation and `orders`
-- to every raw partition up to $as_of; the incremental mode binds `previous` to the state of the day
-- before and `orders` to the day's partition only. Sums, counts, min and max compose, so both agree
-- exactly (a test proves it).
SELECT
    customer_id,
    CAST(sum(total_revenue) AS DECIMAL(18, 2)) AS total_revenue,
    CAST(sum(order_count) AS BIGINT) AS order_count,
    min(first_order_date) AS first_order_date,
    max(last_order_date) AS last_order_date
FROM (
    SELECT customer_id, total_revenue, order_count, first_order_date, last_order_date
    FROM previous
    UNION ALL
    SELECT
        customer_id,
        CAST(total_amount AS DECIMAL(18, 2)),
        1,
        CAST(order_ts AS DATE),
        CAST(order_ts AS DATE)
    FROM orders
    WHERE CAST(order_ts AS DATE) <= $as_of
)
GROUP BY customer_id
ORDER BY customer_id
