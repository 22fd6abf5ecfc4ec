CREATE OR REPLACE FUNCTION public.ps_op_lock(p_op uuid)
 RETURNS operations
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_endpoint uuid;
    op operations;
BEGIN
    SELECT endpoint_id INTO v_endpoint FROM operations WHERE operation_id = p_op;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'operation % not found', p_op USING ERRCODE = 'PS002';
    END IF;
    PERFORM ps_lock_endpoint(v_endpoint);
    SELECT * INTO op FROM operations WHERE operation_id = p_op FOR UPDATE;
    RETURN op;
END $function$
;
