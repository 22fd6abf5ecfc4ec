CREATE OR REPLACE FUNCTION public.ps_endpoint_set_sync_status(p_endpoint uuid, p_status text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    e endpoints;
    v_previous text;
BEGIN
    SELECT sync_status INTO v_previous FROM endpoints WHERE endpoint_id = p_endpoint FOR NO KEY UPDATE;
    IF v_previous IS NOT DISTINCT FROM p_status THEN
        RETURN;
    END IF;
    UPDATE endpoints SET sync_status = p_status WHERE endpoint_id = p_endpoint RETURNING * INTO e;
    PERFORM ps_emit('sync_status_changed', NULL, e.endpoint_id, e.pool_id, jsonb_build_object(
        'endpoint_id', e.endpoint_id, 'pool_id', e.pool_id,
        'sync_status', p_status, 'previous_sync_status', v_previous));
END $function$
;
