CREATE OR REPLACE FUNCTION public.ps_op_complete(p_op uuid, p_result_state text, p_arch text, p_pacman_version text, p_actor text)
 RETURNS operations
 LANGUAGE plpgsql
AS $function$
DECLARE
    op operations;
    v_current bigint;
BEGIN
    op := ps_op_lock(p_op);
    IF op.status <> 'in_progress' THEN
        RAISE EXCEPTION 'operation % is %, not in progress', p_op, op.status
            USING ERRCODE = 'PS011', DETAIL = op.status;
    END IF;
    PERFORM ps_lock_pool_shared(op.pool_id);
    v_current := ps_append_history(op.endpoint_id, p_result_state,
        coalesce(p_arch, (SELECT architecture FROM endpoints WHERE endpoint_id = op.endpoint_id)),
        coalesce(p_pacman_version, (SELECT pacman_version FROM endpoints WHERE endpoint_id = op.endpoint_id)),
        p_op);
    -- Keep the history an undo stack: after a revert, the next revert goes one step further
    -- back; after any other change, a revert returns to where the operation started.
    UPDATE endpoint_states
    SET revert_to = CASE WHEN op.operation_type = 'revert'
                         THEN (SELECT revert_to FROM endpoint_states WHERE history_id = op.revert_history_id)
                         ELSE op.start_history_id END
    WHERE history_id = v_current AND operation_id = p_op;
    UPDATE operations
    SET status = 'completed', completed_at = now(), updated_at = now(), lease_expires_at = NULL,
        progress_percentage = 100, progress_stage = 'completed', progress_action = NULL,
        result_state_id = p_result_state
    WHERE operation_id = p_op
    RETURNING * INTO op;
    UPDATE endpoints
    SET last_seen = now(), architecture = coalesce(p_arch, architecture),
        pacman_version = coalesce(p_pacman_version, pacman_version)
    WHERE endpoint_id = op.endpoint_id;
    PERFORM ps_emit_op('operation_completed', op);
    PERFORM ps_audit(p_actor, 'operation.complete', 'operation', p_op::text,
        jsonb_build_object('result_state_id', p_result_state));
    RETURN op;
END $function$
;
