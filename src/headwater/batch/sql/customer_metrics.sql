-- The customer-metrics snapshot as of $as_of (data interval ends at $interval_end, exclusive):
-- order metrics from `order_state`, enriched with support (`tickets`) and marketing (`marketing`)
-- activity. Money stays DECIMAL: averages and CLV are rounded half-up in integer cents.
-- The window starts $since_30d and $since_90d are $interval_end minus 30 and 90 days, passed in:
-- TIMESTAMPTZ interval arithmetic goes through ICU calendars, per row, at ~2x the query's cost.
WITH base AS (
    SELECT
        customer_id,
        total_revenue,
        order_count,
        first_order_date,
        last_order_date,
        CAST(total_revenue * 100 AS BIGINT) AS revenue_cents,  -- DECIMAL(18, 2): < 10^16 cents
        CAST(date_diff('day', last_order_date, CAST($as_of AS DATE)) AS INTEGER) AS days_since_last_order,
        CAST(date_diff('day', first_order_date, last_order_date) + 1 AS INTEGER) AS customer_lifetime_days
    FROM order_state
),
support AS (
    SELECT
        customer_id,
        count(*) FILTER (WHERE created_at >= $since_30d) AS tickets_30d,
        count(*) FILTER (WHERE created_at >= $since_90d) AS tickets_90d,
        count(*) FILTER (WHERE created_at >= $since_30d AND priority = 'high') AS high_priority_tickets_30d,
        count(*) FILTER (WHERE resolved_at IS NULL OR resolved_at >= $interval_end) AS open_tickets,
        -- whole seconds, as date_diff('second', ...) counts them, without its ICU calendar walk
        round(avg((epoch_us(resolved_at) // 1000000 - epoch_us(created_at) // 1000000) / 3600.0) FILTER (
            WHERE resolved_at < $interval_end AND resolved_at >= $since_90d
        ), 2) AS mean_resolution_hours_90d
    FROM tickets
    WHERE created_at < $interval_end
    GROUP BY customer_id
),
mkt AS (
    SELECT
        customer_id,
        count(*) FILTER (WHERE event_type = 'email_open') AS email_opens_30d,
        count(*) FILTER (WHERE event_type = 'email_click') AS email_clicks_30d,
        count(*) FILTER (WHERE event_type = 'campaign_view') AS campaign_views_30d
    FROM marketing
    WHERE event_ts >= $since_30d AND event_ts < $interval_end
    GROUP BY customer_id
),
scored AS (
    SELECT
        b.*,
        coalesce(s.tickets_30d, 0) AS tickets_30d,
        coalesce(s.tickets_90d, 0) AS tickets_90d,
        coalesce(s.high_priority_tickets_30d, 0) AS high_priority_tickets_30d,
        coalesce(s.open_tickets, 0) AS open_tickets,
        s.mean_resolution_hours_90d,
        coalesce(m.email_opens_30d, 0) AS email_opens_30d,
        coalesce(m.email_clicks_30d, 0) AS email_clicks_30d,
        coalesce(m.campaign_views_30d, 0) AS campaign_views_30d,
        -- How late is the customer against their own rhythm? One-order customers get a 30-day prior gap.
        b.days_since_last_order / greatest(
            CASE WHEN b.order_count > 1
                THEN (b.customer_lifetime_days - 1) / (b.order_count - 1)
                ELSE 30.0 END,
            1.0
        ) AS recency_ratio
    FROM base AS b
    LEFT JOIN support AS s USING (customer_id)
    LEFT JOIN mkt AS m USING (customer_id)
),
snapshot AS (
SELECT
    CAST($as_of AS DATE) AS snapshot_date,
    customer_id,
    total_revenue,
    CAST(CAST((2 * revenue_cents + order_count) // (2 * order_count) AS DECIMAL(18, 0)) * 0.01
        AS DECIMAL(18, 2)) AS avg_order_value,
    order_count,
    first_order_date,
    last_order_date,
    days_since_last_order,
    customer_lifetime_days,
    -- estimated_clv = avg_order_value * order_count * (lifetime_days / 365) * 2
    --               = total_revenue * lifetime_days * 2 / 365, rounded half-up to the cent.
    -- In BIGINT while 4 * cents * days cannot overflow it (every real customer); HUGEINT beyond,
    -- where its 128-bit division costs ~6x more per row.
    CAST(CAST(CASE
        WHEN revenue_cents < 1000000000000 AND customer_lifetime_days < 1000000
            THEN (4 * revenue_cents * customer_lifetime_days + 365) // 730
        ELSE CAST((4 * CAST(revenue_cents AS HUGEINT) * customer_lifetime_days + 365) // 730 AS BIGINT)
    END AS DECIMAL(18, 0)) * 0.01 AS DECIMAL(18, 2)) AS estimated_clv,
    round(least(
        1.0,
        1.0 / (1.0 + exp(-1.5 * (recency_ratio - 2.0)))
            + 0.05 * least(tickets_30d + high_priority_tickets_30d, 4)
    ), 4) AS churn_risk,
    tickets_30d,
    tickets_90d,
    high_priority_tickets_30d,
    open_tickets,
    mean_resolution_hours_90d,
    email_opens_30d,
    email_clicks_30d,
    campaign_views_30d,
    CASE WHEN email_opens_30d > 0 THEN round(email_clicks_30d / email_opens_30d, 4) END AS click_rate_30d
FROM scored
)
SELECT
    *,
    CASE WHEN churn_risk >= 0.7 THEN 'high' WHEN churn_risk >= 0.4 THEN 'medium' ELSE 'low' END
        AS churn_risk_level
FROM snapshot
ORDER BY customer_id
