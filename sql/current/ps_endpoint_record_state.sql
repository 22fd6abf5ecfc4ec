CREATE OR REPLACE FUNCTION public.ps_endpoint_record_state(p_endpoint uuid, p_state text, p_arch text, p_pacman_version text)
 RETURNS endpoints
 LANGUAGE plpgsql
AS $function$
DECLARE
    e endpoints;
    v_active uuid;
BEGIN
    PERFORM ps_lock_endpoint(p_endpoint);
    SELECT * INTO e FROM endpoints WHERE endpoint_id = p_endpoint AND deleted_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'endpoint % not found', p_endpoint USING ERRCODE = 'PS001';
    END IF;
    PERFORM ps_lock_pool_shared(e.pool_id);
    SELECT operation_id INTO v_active FROM operations
    WHERE endpoint_id = p_endpoint AND status = 'in_progress';
    PERFORM ps_append_history(p_endpoint, p_state, p_arch, p_pacman_version, v_active);
    UPDATE endpoints
    SET architecture = p_arch, pacman_version = p_pacman_version, last_seen = now()
    WHERE endpoint_id = p_endpoint
    RETURNING * INTO e;
    RETURN e;
END $function$
;
