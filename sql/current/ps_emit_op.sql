CREATE OR REPLACE FUNCTION public.ps_emit_op(p_type text, p_op operations)
 RETURNS bigint
 LANGUAGE sql
AS $function$
    SELECT ps_emit(p_type, p_op.operation_id, p_op.endpoint_id, p_op.pool_id, to_jsonb(p_op))
$function$
;
