-- Whether an endpoint is online: its agent holds its own event stream open on some replica.
-- Each replica renews the endpoints whose streams it holds, in one statement every so often;
-- `online_until` is how long the last renewal vouches for. A replica that dies stops renewing,
-- and its endpoints read as offline once the lease runs out.
ALTER TABLE endpoints ADD COLUMN online_until timestamptz;

-- Marks endpoints online until now() + p_lease; announces `endpoint_online` for each that was
-- not online before. Returns how many it announced.
CREATE FUNCTION ps_endpoints_online(p_endpoints uuid[], p_lease interval) RETURNS integer
LANGUAGE plpgsql AS $$
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
END $$;

-- Marks an endpoint offline (its last stream on the caller's replica closed) and announces
-- `endpoint_offline` if it was online. A stream still open on another replica puts it back at
-- that replica's next renewal.
CREATE FUNCTION ps_endpoint_offline(p_endpoint uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    e endpoints;
BEGIN
    UPDATE endpoints SET online_until = NULL
    WHERE endpoint_id = p_endpoint AND online_until > now() AND deleted_at IS NULL
    RETURNING * INTO e;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM ps_emit('endpoint_offline', NULL, e.endpoint_id, e.pool_id,
        jsonb_build_object('endpoint_id', e.endpoint_id, 'pool_id', e.pool_id));
    RETURN true;
END $$;
