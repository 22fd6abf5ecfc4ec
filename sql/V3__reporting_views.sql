-- Reporting views for analysts: stable, documented shapes over the operational tables, so that
-- reports do not break when internal columns change. All durations are in seconds.

-- One row per operation, with names resolved and timings computed.
CREATE VIEW report_operations AS
SELECT o.operation_id,
       o.operation_type,
       o.status,
       o.pool_id,
       p.name                                              AS pool_name,
       o.endpoint_id,
       e.name                                              AS endpoint_name,
       e.hostname,
       o.created_by,
       o.created_at,
       o.started_at,
       o.completed_at,
       extract(epoch FROM o.started_at - o.created_at)     AS queue_seconds,
       extract(epoch FROM o.completed_at - o.started_at)   AS run_seconds,
       extract(epoch FROM o.completed_at - o.created_at)   AS total_seconds,
       coalesce(jsonb_array_length(o.plan -> 'actions'), 0) AS planned_actions,
       o.plan ->> 'summary'                                AS plan_summary,
       o.target_generation,
       o.error_code,
       o.error_message,
       o.cancel_requested
FROM operations o
JOIN pools p ON p.pool_id = o.pool_id
JOIN endpoints e ON e.endpoint_id = o.endpoint_id;

-- Daily counts and timings per pool, operation type and outcome.
CREATE VIEW report_operations_daily AS
SELECT date_trunc('day', created_at)::date AS day,
       pool_id,
       pool_name,
       operation_type,
       status,
       count(*)                           AS operations,
       avg(run_seconds)                   AS avg_run_seconds,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY run_seconds) AS p95_run_seconds
FROM report_operations
GROUP BY 1, 2, 3, 4, 5;

-- Current sync status counts per live pool.
CREATE VIEW report_pool_sync_status AS
SELECT p.pool_id,
       p.name AS pool_name,
       p.target_generation,
       count(e.endpoint_id)                                       AS endpoints,
       count(e.endpoint_id) FILTER (WHERE e.sync_status = 'in_sync')  AS in_sync,
       count(e.endpoint_id) FILTER (WHERE e.sync_status = 'ahead')    AS ahead,
       count(e.endpoint_id) FILTER (WHERE e.sync_status = 'behind')   AS behind,
       count(e.endpoint_id) FILTER (WHERE e.sync_status = 'diverged') AS diverged,
       count(e.endpoint_id) FILTER (WHERE e.sync_status = 'unknown')  AS unknown
FROM pools p
LEFT JOIN endpoints e ON e.pool_id = p.pool_id AND e.deleted_at IS NULL
WHERE p.deleted_at IS NULL
GROUP BY p.pool_id, p.name, p.target_generation;

-- Failures by error code, for "what breaks most" reports.
CREATE VIEW report_failures AS
SELECT pool_name, operation_type, error_code, count(*) AS failures, max(completed_at) AS last_seen
FROM report_operations
WHERE status = 'failed'
GROUP BY pool_name, operation_type, error_code;
