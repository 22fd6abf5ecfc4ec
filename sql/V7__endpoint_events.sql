-- Endpoint lifecycle on the event log, so that live streams learn of it:
--   endpoint_deleted: the endpoint's tokens are revoked; its open streams are closed.
--   endpoint_moved:   the endpoint now follows another pool's target. The row belongs to the new
--                     pool and names the old one in its payload, so both pools' dashboards see it.
-- Bodies are those of V2 plus the ps_emit calls.

-- Resuming streams look for these across pools (a pool's dashboard for moves out of it, an
-- endpoint's stream for the target changes of each pool it was in).
CREATE INDEX operation_events_pool_changes ON operation_events (position)
    WHERE event_type IN ('target_changed', 'endpoint_moved');

CREATE OR REPLACE FUNCTION ps_endpoint_move(p_endpoint uuid, p_pool uuid, p_actor text) RETURNS endpoints
LANGUAGE plpgsql AS $$
DECLARE
    e endpoints;
    v_from uuid;
BEGIN
    PERFORM ps_lock_endpoint(p_endpoint);
    SELECT pool_id INTO v_from FROM endpoints WHERE endpoint_id = p_endpoint AND deleted_at IS NULL FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'endpoint % not found', p_endpoint USING ERRCODE = 'PS001';
    END IF;
    PERFORM ps_lock_pool_shared(p_pool);
    IF NOT EXISTS (SELECT 1 FROM pools WHERE pool_id = p_pool AND deleted_at IS NULL) THEN
        RAISE EXCEPTION 'pool % not found', p_pool USING ERRCODE = 'PS008';
    END IF;
    IF EXISTS (SELECT 1 FROM operations WHERE endpoint_id = p_endpoint AND status IN ('pending', 'in_progress')) THEN
        RAISE EXCEPTION 'endpoint % has an active operation; cancel it before moving the endpoint', p_endpoint
            USING ERRCODE = 'PS015';
    END IF;
    UPDATE endpoints SET pool_id = p_pool WHERE endpoint_id = p_endpoint RETURNING * INTO e;
    PERFORM ps_audit(p_actor, 'endpoint.move', 'endpoint', p_endpoint::text,
        jsonb_build_object('from_pool_id', v_from, 'to_pool_id', p_pool));
    IF v_from IS DISTINCT FROM p_pool THEN
        PERFORM ps_emit('endpoint_moved', NULL, p_endpoint, p_pool,
            jsonb_build_object('endpoint_id', p_endpoint, 'from_pool_id', v_from, 'to_pool_id', p_pool));
    END IF;
    RETURN e;
END $$;

CREATE OR REPLACE FUNCTION ps_endpoint_delete(p_endpoint uuid, p_actor text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    op operations;
    v_pool uuid;
BEGIN
    PERFORM ps_lock_endpoint(p_endpoint);
    SELECT pool_id INTO v_pool FROM endpoints WHERE endpoint_id = p_endpoint AND deleted_at IS NULL FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'endpoint % not found', p_endpoint USING ERRCODE = 'PS001';
    END IF;
    FOR op IN SELECT * FROM operations
              WHERE endpoint_id = p_endpoint AND status IN ('pending', 'in_progress') FOR UPDATE
    LOOP
        UPDATE operations
        SET status = 'failed', completed_at = now(), updated_at = now(), lease_expires_at = NULL,
            error_code = 'ENDPOINT_DELETED', error_message = 'the endpoint was deleted'
        WHERE operation_id = op.operation_id
        RETURNING * INTO op;
        PERFORM ps_emit_op('operation_failed', op);
    END LOOP;
    UPDATE endpoints SET deleted_at = now(), token_generation = token_generation + 1
    WHERE endpoint_id = p_endpoint;
    PERFORM ps_audit(p_actor, 'endpoint.delete', 'endpoint', p_endpoint::text, '{}'::jsonb);
    PERFORM ps_emit('endpoint_deleted', NULL, p_endpoint, v_pool,
        jsonb_build_object('endpoint_id', p_endpoint, 'pool_id', v_pool));
END $$;
