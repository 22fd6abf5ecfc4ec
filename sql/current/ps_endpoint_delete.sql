CREATE OR REPLACE FUNCTION public.ps_endpoint_delete(p_endpoint uuid, p_actor text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
END $function$
;
