-- The reporting schema: stable, documented views for analysts, and a role that may read them and
-- nothing else. The host is free to change its own tables; the views in `reporting` keep their
-- names and columns, so saved queries and dashboards keep working. They replace the public
-- `report_*` views. Times are timestamptz; durations are seconds; days are UTC dates.

CREATE SCHEMA reporting;
COMMENT ON SCHEMA reporting IS
    'pacsync reporting: stable views over the operation history, for analysts (role pacsync_reporting)';

DROP VIEW report_failures;
DROP VIEW report_operations_daily;
DROP VIEW report_operations;
DROP VIEW report_pool_sync_status;
DROP VIEW report_endpoint_offers;

-- Since when an endpoint has been out of sync (ahead, behind or diverged), kept by a trigger so
-- that every writer of sync_status keeps it, one endpoint at a time or set-based.
ALTER TABLE endpoints ADD COLUMN out_of_sync_since timestamptz;

CREATE FUNCTION ps_track_out_of_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.sync_status NOT IN ('ahead', 'behind', 'diverged') THEN
        NEW.out_of_sync_since := NULL;
    ELSIF TG_OP = 'INSERT' OR OLD.sync_status NOT IN ('ahead', 'behind', 'diverged') THEN
        NEW.out_of_sync_since := now();
    ELSE
        -- Moving between ahead, behind and diverged keeps the endpoint out of sync.
        NEW.out_of_sync_since := OLD.out_of_sync_since;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER endpoints_out_of_sync_since BEFORE INSERT OR UPDATE OF sync_status ON endpoints
    FOR EACH ROW EXECUTE FUNCTION ps_track_out_of_sync();

-- Endpoints already out of sync: from the status changes recorded in the event log, the first
-- change of the current out-of-sync run; the endpoint's creation if the log has none.
UPDATE endpoints e
SET out_of_sync_since = coalesce((
        SELECT min(ev.created_at)
        FROM operation_events ev
        WHERE ev.endpoint_id = e.endpoint_id
          AND ev.event_type = 'sync_status_changed'
          AND ev.event_id > coalesce((
                SELECT max(back.event_id)
                FROM operation_events back
                WHERE back.endpoint_id = e.endpoint_id
                  AND back.event_type = 'sync_status_changed'
                  AND back.payload ->> 'sync_status' IN ('in_sync', 'unknown')), 0)),
        e.created_at)
WHERE e.sync_status IN ('ahead', 'behind', 'diverged');

-- pacman's version order (alpm_pkg_vercmp), for the views that tell upgrades from downgrades.
-- It works on bytes, as pacman does: character classes are ASCII's, separators are counted in
-- bytes, and segments compare as C strings. Proved against pacman's `vercmp` by
-- tests/tests/reporting/vercmp.rs.
CREATE FUNCTION reporting.rpmvercmp(a bytea, b bytea) RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    la integer := length(a);
    lb integer := length(b);
    one integer := 0;
    two integer := 0;
    ptr1 integer := 0;
    ptr2 integer := 0;
    c integer;
    isnum boolean;
    seg1 bytea;
    seg2 bytea;
BEGIN
    IF a = b THEN
        RETURN 0;
    END IF;
    WHILE one < la AND two < lb LOOP
        -- Skip the separators (anything but ASCII letters and digits).
        LOOP
            EXIT WHEN one >= la;
            c := get_byte(a, one);
            EXIT WHEN c BETWEEN 48 AND 57 OR c BETWEEN 65 AND 90 OR c BETWEEN 97 AND 122;
            one := one + 1;
        END LOOP;
        LOOP
            EXIT WHEN two >= lb;
            c := get_byte(b, two);
            EXIT WHEN c BETWEEN 48 AND 57 OR c BETWEEN 65 AND 90 OR c BETWEEN 97 AND 122;
            two := two + 1;
        END LOOP;
        EXIT WHEN one >= la OR two >= lb;
        -- Separators of different lengths decide.
        IF one - ptr1 <> two - ptr2 THEN
            RETURN CASE WHEN one - ptr1 < two - ptr2 THEN -1 ELSE 1 END;
        END IF;
        ptr1 := one;
        ptr2 := two;
        -- The next all-digit or all-letter segment, of the kind the first string has here.
        c := get_byte(a, ptr1);
        isnum := c BETWEEN 48 AND 57;
        IF isnum THEN
            WHILE ptr1 < la AND get_byte(a, ptr1) BETWEEN 48 AND 57 LOOP ptr1 := ptr1 + 1; END LOOP;
            WHILE ptr2 < lb AND get_byte(b, ptr2) BETWEEN 48 AND 57 LOOP ptr2 := ptr2 + 1; END LOOP;
        ELSE
            LOOP
                EXIT WHEN ptr1 >= la;
                c := get_byte(a, ptr1);
                EXIT WHEN NOT (c BETWEEN 65 AND 90 OR c BETWEEN 97 AND 122);
                ptr1 := ptr1 + 1;
            END LOOP;
            LOOP
                EXIT WHEN ptr2 >= lb;
                c := get_byte(b, ptr2);
                EXIT WHEN NOT (c BETWEEN 65 AND 90 OR c BETWEEN 97 AND 122);
                ptr2 := ptr2 + 1;
            END LOOP;
        END IF;
        -- A numeric segment is newer than a letter segment (an empty one here).
        IF two = ptr2 THEN
            RETURN CASE WHEN isnum THEN 1 ELSE -1 END;
        END IF;
        IF isnum THEN
            -- Numbers of any length: without leading zeros, more digits is greater.
            WHILE one < ptr1 AND get_byte(a, one) = 48 LOOP one := one + 1; END LOOP;
            WHILE two < ptr2 AND get_byte(b, two) = 48 LOOP two := two + 1; END LOOP;
            IF ptr1 - one <> ptr2 - two THEN
                RETURN CASE WHEN ptr1 - one > ptr2 - two THEN 1 ELSE -1 END;
            END IF;
        END IF;
        seg1 := substring(a FROM one + 1 FOR ptr1 - one);
        seg2 := substring(b FROM two + 1 FOR ptr2 - two);
        IF seg1 < seg2 THEN
            RETURN -1;
        ELSIF seg1 > seg2 THEN
            RETURN 1;
        END IF;
        one := ptr1;
        two := ptr2;
    END LOOP;
    IF one >= la AND two >= lb THEN
        RETURN 0;
    END IF;
    -- What is left decides: a remaining letter segment is older than nothing, anything else
    -- newer.
    IF (one >= la AND NOT (get_byte(b, two) BETWEEN 65 AND 90 OR get_byte(b, two) BETWEEN 97 AND 122))
       OR (one < la AND (get_byte(a, one) BETWEEN 65 AND 90 OR get_byte(a, one) BETWEEN 97 AND 122)) THEN
        RETURN -1;
    END IF;
    RETURN 1;
END $$;
COMMENT ON FUNCTION reporting.rpmvercmp(bytea, bytea) IS
    'rpmvercmp of one version part (epoch, pkgver or pkgrel), as pacman compares them';

CREATE FUNCTION reporting.vercmp(a text, b text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    parts bytea[];
    evr bytea;
    s integer;
    se integer;
    epoch bytea;
    version bytea;
    release bytea;
    ret integer;
BEGIN
    IF a = b THEN
        RETURN 0;
    END IF;
    -- parseEVR: [epoch:]pkgver[-pkgrel]; no epoch is epoch 0, the release is after the last '-'.
    FOREACH evr IN ARRAY ARRAY[convert_to(a, 'UTF8'), convert_to(b, 'UTF8')] LOOP
        s := 0;
        WHILE s < length(evr) AND get_byte(evr, s) BETWEEN 48 AND 57 LOOP s := s + 1; END LOOP;
        se := NULL;
        FOR i IN REVERSE length(evr) - 1 .. s LOOP
            IF get_byte(evr, i) = 45 THEN
                se := i;
                EXIT;
            END IF;
        END LOOP;
        IF s < length(evr) AND get_byte(evr, s) = 58 THEN
            epoch := CASE WHEN s = 0 THEN '\x30'::bytea ELSE substring(evr FROM 1 FOR s) END;
            s := s + 1;
        ELSE
            epoch := '\x30'::bytea;
            s := 0;
        END IF;
        IF se IS NULL THEN
            version := substring(evr FROM s + 1);
            release := NULL;
        ELSE
            version := substring(evr FROM s + 1 FOR se - s);
            release := substring(evr FROM se + 2);
        END IF;
        parts := parts || ARRAY[epoch, version, release];
    END LOOP;
    ret := reporting.rpmvercmp(parts[1], parts[4]);
    IF ret = 0 THEN
        ret := reporting.rpmvercmp(parts[2], parts[5]);
        -- A release on one side only does not count.
        IF ret = 0 AND parts[3] IS NOT NULL AND parts[6] IS NOT NULL THEN
            ret := reporting.rpmvercmp(parts[3], parts[6]);
        END IF;
    END IF;
    RETURN ret;
END $$;
COMMENT ON FUNCTION reporting.vercmp(text, text) IS
    'pacman''s vercmp: -1, 0 or 1 as version a is older than, equal to or newer than b';

-- One row per operation: the base the other operation views summarise.
CREATE VIEW reporting.operations AS
SELECT o.operation_id,
       o.operation_type,
       o.status,
       o.pool_id,
       p.name                                                AS pool_name,
       o.endpoint_id,
       e.name                                                AS endpoint_name,
       e.hostname,
       o.created_by,
       o.created_at,
       o.started_at,
       o.completed_at,
       extract(epoch FROM o.started_at - o.created_at)::double precision   AS wait_seconds,
       extract(epoch FROM o.completed_at - o.started_at)::double precision AS duration_seconds,
       coalesce(jsonb_array_length(o.plan -> 'actions'), 0)  AS planned_actions,
       o.target_generation,
       o.error_code,
       o.error_message
FROM public.operations o
JOIN public.pools p ON p.pool_id = o.pool_id
JOIN public.endpoints e ON e.endpoint_id = o.endpoint_id;
COMMENT ON VIEW reporting.operations IS
    'One row per operation (sync, set_latest, revert) with its pool, endpoint, outcome and timings. '
    'wait_seconds: created to started; duration_seconds: started to finished (NULL until both happened).';

CREATE VIEW reporting.operations_daily AS
SELECT (created_at AT TIME ZONE 'UTC')::date                                   AS day,
       pool_id,
       pool_name,
       operation_type,
       status,
       count(*)                                                                AS operations,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_seconds)           AS duration_p50_seconds,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_seconds)          AS duration_p95_seconds
FROM reporting.operations
GROUP BY 1, 2, 3, 4, 5;
COMMENT ON VIEW reporting.operations_daily IS
    'Operations per pool, UTC day of creation, type and status, with the p50 and p95 of their '
    'duration (started to finished; operations that never ran do not count in the percentiles).';

CREATE VIEW reporting.failure_reasons AS
SELECT error_code,
       failures,
       rank() OVER (ORDER BY failures DESC) AS rank,
       endpoints,
       last_failed_at,
       last_error_message,
       last_operation_id,
       last_pool_name,
       last_endpoint_name
FROM (
    SELECT error_code,
           count(*)                     AS failures,
           count(DISTINCT endpoint_id)  AS endpoints,
           max(completed_at)            AS last_failed_at,
           (array_agg(error_message ORDER BY completed_at DESC, operation_id))[1] AS last_error_message,
           (array_agg(operation_id ORDER BY completed_at DESC, operation_id))[1]  AS last_operation_id,
           (array_agg(pool_name ORDER BY completed_at DESC, operation_id))[1]     AS last_pool_name,
           (array_agg(endpoint_name ORDER BY completed_at DESC, operation_id))[1] AS last_endpoint_name
    FROM reporting.operations
    WHERE status = 'failed'
    GROUP BY error_code
) f;
COMMENT ON VIEW reporting.failure_reasons IS
    'Why operations failed: one row per error code, ranked by how often (rank 1 = most failures), '
    'with how many endpoints it hit and its last occurrence.';

CREATE VIEW reporting.endpoint_drift AS
WITH live AS (
    SELECT e.endpoint_id, e.name, e.hostname, e.pool_id, p.name AS pool_name, e.sync_status,
           e.out_of_sync_since, e.last_seen, e.current_state_id, p.target_state_id,
           p.target_generation
    FROM public.endpoints e
    JOIN public.pools p ON p.pool_id = e.pool_id
    WHERE e.deleted_at IS NULL AND p.deleted_at IS NULL
),
-- Endpoints sharing a state share its differences: each pair of states is compared once.
pairs AS (
    SELECT DISTINCT current_state_id, target_state_id
    FROM live
    WHERE current_state_id IS NOT NULL AND target_state_id IS NOT NULL
),
compared AS (
    SELECT pr.current_state_id, pr.target_state_id, d.*
    FROM pairs pr
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE have.name IS NULL)                AS to_install,
               count(*) FILTER (WHERE cmp < 0)                         AS to_upgrade,
               count(*) FILTER (WHERE cmp > 0)                         AS to_downgrade,
               count(*) FILTER (WHERE want.name IS NULL)               AS to_remove,
               count(*) FILTER (WHERE cmp = 0 AND have.reason <> want.reason) AS to_set_reason
        FROM (SELECT name, version, reason FROM public.state_packages
              WHERE state_id = pr.current_state_id) have
        FULL JOIN (SELECT name, version, reason FROM public.state_packages
                   WHERE state_id = pr.target_state_id) want ON want.name = have.name
        CROSS JOIN LATERAL (
            SELECT CASE
                       WHEN have.name IS NULL OR want.name IS NULL THEN NULL
                       WHEN have.version = want.version THEN 0
                       ELSE reporting.vercmp(have.version, want.version)
                   END AS cmp
        ) v
    ) d
)
SELECT l.endpoint_id,
       l.name AS endpoint_name,
       l.hostname,
       l.pool_id,
       l.pool_name,
       l.sync_status,
       l.target_generation,
       c.to_install,
       c.to_upgrade,
       c.to_downgrade,
       c.to_remove,
       c.to_set_reason,
       l.out_of_sync_since,
       l.last_seen
FROM live l
LEFT JOIN compared c
       ON c.current_state_id = l.current_state_id AND c.target_state_id = l.target_state_id;
COMMENT ON VIEW reporting.endpoint_drift IS
    'Each live endpoint against its pool''s target: how many packages a sync to the target would '
    'install, upgrade, downgrade, remove or only re-mark (install reason), compared with pacman''s '
    'vercmp and before the pool''s policy skips any; NULL counts when the endpoint has not reported '
    'or the pool has no target. out_of_sync_since: since when it has been ahead, behind or diverged.';

CREATE VIEW reporting.package_versions AS
WITH states AS (
    SELECT e.pool_id, e.current_state_id, count(*) AS endpoints
    FROM public.endpoints e
    WHERE e.deleted_at IS NULL AND e.current_state_id IS NOT NULL
    GROUP BY e.pool_id, e.current_state_id
)
SELECT p.pool_id,
       p.name                  AS pool_name,
       sp.name                 AS package,
       sp.version,
       sum(s.endpoints)::bigint AS endpoints,
       t.version               AS target_version,
       t.version IS NOT NULL AND reporting.vercmp(sp.version, t.version) = 0 AS is_target_version
FROM states s
JOIN public.pools p ON p.pool_id = s.pool_id AND p.deleted_at IS NULL
JOIN public.state_packages sp ON sp.state_id = s.current_state_id
LEFT JOIN public.state_packages t ON t.state_id = p.target_state_id AND t.name = sp.name
GROUP BY p.pool_id, p.name, sp.name, sp.version, t.version;
COMMENT ON VIEW reporting.package_versions IS
    'Version spread: per pool, package and installed version, on how many live endpoints it is '
    'installed (by their last reported state), and the version the pool''s target has (NULL when '
    'the target lacks the package).';

CREATE VIEW reporting.target_changes AS
SELECT t.pool_id,
       p.name                                                        AS pool_name,
       t.generation,
       t.state_id,
       lag(t.state_id) OVER (PARTITION BY t.pool_id ORDER BY t.generation) AS previous_state_id,
       t.created_at                                                  AS changed_at,
       CASE a.action
           WHEN 'pool.set_target' THEN 'set_latest'
           WHEN 'pool.restore_target' THEN 'restore'
       END                                                           AS change,
       a.actor,
       split_part(a.actor, ':', 1)                                   AS actor_kind,
       CASE WHEN a.actor LIKE 'admin:%' THEN substr(a.actor, 7) END  AS admin_subject,
       CASE WHEN a.actor LIKE 'endpoint:%' THEN substr(a.actor, 10)::uuid END AS actor_endpoint_id,
       t.endpoint_id                                                 AS source_endpoint_id,
       se.name                                                       AS source_endpoint_name,
       t.operation_id,
       (a.details ->> 'restored_generation')::bigint                 AS restored_generation
FROM public.pool_targets t
JOIN public.pools p ON p.pool_id = t.pool_id
LEFT JOIN public.endpoints se ON se.endpoint_id = t.endpoint_id
LEFT JOIN public.audit_log a
       ON a.subject_type = 'pool' AND a.subject_id = t.pool_id::text
      AND a.action IN ('pool.set_target', 'pool.restore_target')
      AND (a.details ->> 'generation')::bigint = t.generation;
COMMENT ON VIEW reporting.target_changes IS
    'The audit trail of pool targets: every generation, when it was made, by whom (actor: '
    '"admin:<subject>" or "endpoint:<id>", split into actor_kind, admin_subject and '
    'actor_endpoint_id), how (set_latest from source_endpoint_id''s state, or restore of an earlier '
    'target) and which state it replaced.';

CREATE VIEW reporting.operation_policies AS
SELECT o.operation_id,
       o.operation_type,
       o.status,
       o.pool_id,
       p.name                      AS pool_name,
       o.endpoint_id,
       e.name                      AS endpoint_name,
       o.created_at,
       o.policy ->> 'plugin'       AS plugin,
       o.policy ->> 'name'         AS plugin_name,
       o.policy ->> 'hash'         AS plugin_sha256,
       o.policy -> 'config'        AS config
FROM public.operations o
JOIN public.pools p ON p.pool_id = o.pool_id
JOIN public.endpoints e ON e.endpoint_id = o.endpoint_id;
COMMENT ON VIEW reporting.operation_policies IS
    'Which policy each operation was planned with: plugin (a built-in name, "native-mirror" for '
    'reverts, or an uploaded plugin''s id), its self-reported name, the sha256 of the component '
    'and the pool config it ran with. NULL for set_latest, which plans nothing.';

CREATE VIEW reporting.pool_sync_status AS
SELECT p.pool_id,
       p.name AS pool_name,
       p.target_generation,
       count(e.endpoint_id)                                           AS endpoints,
       count(e.endpoint_id) FILTER (WHERE e.sync_status = 'in_sync')  AS in_sync,
       count(e.endpoint_id) FILTER (WHERE e.sync_status = 'ahead')    AS ahead,
       count(e.endpoint_id) FILTER (WHERE e.sync_status = 'behind')   AS behind,
       count(e.endpoint_id) FILTER (WHERE e.sync_status = 'diverged') AS diverged,
       count(e.endpoint_id) FILTER (WHERE e.sync_status = 'unknown')  AS unknown
FROM public.pools p
LEFT JOIN public.endpoints e ON e.pool_id = p.pool_id AND e.deleted_at IS NULL
WHERE p.deleted_at IS NULL
GROUP BY p.pool_id, p.name, p.target_generation;
COMMENT ON VIEW reporting.pool_sync_status IS
    'Each live pool now: its target generation and how many live endpoints are in each sync status.';

CREATE VIEW reporting.endpoint_offers AS
SELECT p.pool_id, p.name AS pool_name, e.endpoint_id, e.name AS endpoint_name,
       o.name AS package, o.version, o.source, e.availability_reported_at
FROM public.endpoints e
JOIN public.pools p ON p.pool_id = e.pool_id
JOIN public.availability_offers o ON o.availability_id = e.availability_id
WHERE e.deleted_at IS NULL;
COMMENT ON VIEW reporting.endpoint_offers IS
    'What each live endpoint last reported it can obtain: one row per package version and source '
    '(sync repository, package cache or rollback store).';

-- The analysts' role: it reads the reporting schema and nothing else, and logs in once
-- `pacsync-host reporting-password` has given it a password. Roles belong to the whole cluster,
-- so another database may have made it already; a database user without CREATEROLE cannot,
-- and then `pacsync-host reporting-password`, run as a user who may, makes it later.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pacsync_reporting') THEN
        IF NOT EXISTS (SELECT FROM pg_roles
                       WHERE rolname = current_user AND (rolsuper OR rolcreaterole)) THEN
            RAISE WARNING 'role pacsync_reporting not created: % may not create roles; run '
                          '`pacsync-host reporting-password` as a user who may', current_user;
            RETURN;
        END IF;
        BEGIN
            CREATE ROLE pacsync_reporting NOLOGIN;
            -- Every session starts read-only: one more wall behind the missing privileges.
            ALTER ROLE pacsync_reporting SET default_transaction_read_only = on;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- made meanwhile for another database of the cluster
        END;
    END IF;
    GRANT USAGE ON SCHEMA reporting TO pacsync_reporting;
    GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO pacsync_reporting;
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA reporting TO pacsync_reporting;
    ALTER DEFAULT PRIVILEGES IN SCHEMA reporting GRANT SELECT ON TABLES TO pacsync_reporting;
END $$;
