CREATE OR REPLACE FUNCTION public.ps_op_fail(p_op uuid, p_code text, p_message text, p_actor text)
 RETURNS operations
 LANGUAGE plpgsql
AS $function$
DECLARE
    op operations;
BEGIN
    op := ps_op_lock(p_op);
    IF op.status NOT IN ('pending', 'in_progress') THEN
        RAISE EXCEPTION 'operation % is already %', p_op, op.status
            USING ERRCODE = 'PS012', DETAIL = op.status;
    END IF;
    UPDATE operations
    SET status = 'failed', completed_at = now(), updated_at = now(), lease_expires_at = NULL,
        error_code = p_code, error_message = p_message
    WHERE operation_id = p_op
    RETURNING * INTO op;
    PERFORM ps_emit_op('operation_failed', op);
    PERFORM ps_audit(p_actor, 'operation.fail', 'operation', p_op::text,
        jsonb_build_object('code', p_code, 'message', p_message));
    RETURN op;
END $function$
;
