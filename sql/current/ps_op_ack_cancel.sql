CREATE OR REPLACE FUNCTION public.ps_op_ack_cancel(p_op uuid, p_result_state text, p_arch text, p_pacman_version text, p_actor text)
 RETURNS operations
 LANGUAGE plpgsql
AS $function$
DECLARE
    op operations;
BEGIN
    op := ps_op_lock(p_op);
    IF op.status <> 'in_progress' THEN
        RAISE EXCEPTION 'operation % is %, not in progress', p_op, op.status
            USING ERRCODE = 'PS011', DETAIL = op.status;
    END IF;
    IF NOT op.cancel_requested THEN
        RAISE EXCEPTION 'operation % has no cancel request to acknowledge', p_op USING ERRCODE = 'PS013';
    END IF;
    IF p_result_state IS NOT NULL THEN
        PERFORM ps_lock_pool_shared(op.pool_id);
        PERFORM ps_append_history(op.endpoint_id, p_result_state, p_arch, p_pacman_version, p_op);
    END IF;
    UPDATE operations
    SET status = 'cancelled', completed_at = now(), updated_at = now(), lease_expires_at = NULL,
        result_state_id = p_result_state
    WHERE operation_id = p_op
    RETURNING * INTO op;
    UPDATE endpoints
    SET last_seen = now(), architecture = coalesce(p_arch, architecture),
        pacman_version = coalesce(p_pacman_version, pacman_version)
    WHERE endpoint_id = op.endpoint_id;
    PERFORM ps_emit_op('operation_cancelled', op);
    PERFORM ps_audit(p_actor, 'operation.cancelled', 'operation', p_op::text, '{}'::jsonb);
    RETURN op;
END $function$
;
