-- The support tickets the enrichment can still need at the end of the day ($interval_end; $since_90d
-- is 90 days before it):
-- created in the last 90 days, still open, or resolved in the last 90 days. A ticket that fails all
-- three never qualifies again (the window only moves forward), so yesterday's state plus today's
-- drop (`rows`) equals a scan of the whole history over an empty `previous` (a test proves it), and
-- the enrichment reads one small file instead of every ticket partition ever written.
SELECT ticket_id, customer_id, created_at, priority, resolved_at
FROM (
    SELECT ticket_id, customer_id, created_at, priority, resolved_at FROM previous
    UNION ALL
    SELECT ticket_id, customer_id, created_at, priority, resolved_at FROM rows
)
WHERE created_at < $interval_end
  AND (created_at >= $since_90d
       OR resolved_at IS NULL
       OR resolved_at >= $since_90d)
ORDER BY created_at, ticket_id
