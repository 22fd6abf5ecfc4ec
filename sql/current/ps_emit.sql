CREATE OR REPLACE FUNCTION public.ps_emit(p_type text, p_operation uuid, p_endpoint uuid, p_pool uuid, p_payload jsonb)
 RETURNS bigint
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO operation_events (event_type, operation_id, endpoint_id, pool_id, payload)
    VALUES (p_type, p_operation, p_endpoint, p_pool, p_payload)
    RETURNING event_id INTO v_id;
    RETURN v_id;
END $function$
;
