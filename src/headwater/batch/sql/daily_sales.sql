-- One row per sales day: the day's non-cancelled orders (cancelled ones never reach the raw zone).
SELECT
    CAST($as_of AS DATE) AS sales_date,
    count(*) AS order_count,
    CAST(coalesce(sum(total_amount), 0) AS DECIMAL(18, 2)) AS revenue,
    count(DISTINCT customer_id) AS unique_customers,
    count(*) FILTER (WHERE status = 'refunded') AS refunded_orders,
    (SELECT count(*) FROM order_state WHERE first_order_date = CAST($as_of AS DATE)) AS new_customers
FROM orders
WHERE DATE '1970-01-01' + CAST(epoch_us(order_ts) // 86400000000 AS INTEGER) = $as_of  -- UTC day, no ICU cast
