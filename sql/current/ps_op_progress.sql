CREATE OR REPLACE FUNCTION public.ps_op_progress(p_op uuid, p_percentage integer, p_stage text, p_action text, p_lease_seconds integer)
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
    UPDATE operations
    SET progress_percentage = p_percentage, progress_stage = p_stage, progress_action = p_action,
        lease_expires_at = now() + make_interval(secs => p_lease_seconds), updated_at = now()
    WHERE operation_id = p_op
    RETURNING * INTO op;
    UPDATE endpoints SET last_seen = now() WHERE endpoint_id = op.endpoint_id;
    PERFORM ps_emit_op('operation_progress', op);
    RETURN op;
END $function$
;
