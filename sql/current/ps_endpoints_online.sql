CREATE OR REPLACE FUNCTION public.ps_endpoints_online(p_endpoints uuid[], p_lease interval)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
    e record;
    v_count integer := 0;
BEGIN
    FOR e IN
        WITH before AS (
            SELECT endpoint_id, online_until FROM endpoints
            WHERE endpoint_id = ANY(p_endpoints) AND deleted_at IS NULL
            ORDER BY endpoint_id
            FOR NO KEY UPDATE
        )
        UPDATE endpoints n SET online_until = now() + p_lease
        FROM before b
        WHERE n.endpoint_id = b.endpoint_id
        RETURNING n.endpoint_id, n.pool_id, b.online_until IS NULL OR b.online_until <= now() AS was_offline
    LOOP
        IF e.was_offline THEN
            PERFORM ps_emit('endpoint_online', NULL, e.endpoint_id, e.pool_id,
                jsonb_build_object('endpoint_id', e.endpoint_id, 'pool_id', e.pool_id));
            v_count := v_count + 1;
        END IF;
    END LOOP;
    RETURN v_count;
END $function$
;
