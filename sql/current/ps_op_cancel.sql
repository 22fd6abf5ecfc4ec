CREATE OR REPLACE FUNCTION public.ps_op_cancel(p_op uuid, p_actor text)
 RETURNS operations
 LANGUAGE plpgsql
AS $function$
DECLARE
    op operations;
BEGIN
    op := ps_op_lock(p_op);
    IF op.status = 'pending' THEN
        UPDATE operations
        SET status = 'cancelled', completed_at = now(), updated_at = now(), cancel_requested = true
        WHERE operation_id = p_op
        RETURNING * INTO op;
        PERFORM ps_emit_op('operation_cancelled', op);
    ELSIF op.status = 'in_progress' THEN
        IF NOT op.cancel_requested THEN
            UPDATE operations SET cancel_requested = true, updated_at = now()
            WHERE operation_id = p_op
            RETURNING * INTO op;
            PERFORM ps_emit_op('operation_cancel_requested', op);
        END IF;
    ELSE
        RAISE EXCEPTION 'operation % is already %', p_op, op.status
            USING ERRCODE = 'PS012', DETAIL = op.status;
    END IF;
    PERFORM ps_audit(p_actor, 'operation.cancel', 'operation', p_op::text,
        jsonb_build_object('status', op.status));
    RETURN op;
END $function$
;
