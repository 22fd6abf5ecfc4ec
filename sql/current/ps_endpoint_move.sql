CREATE OR REPLACE FUNCTION public.ps_endpoint_move(p_endpoint uuid, p_pool uuid, p_actor text)
 RETURNS endpoints
 LANGUAGE plpgsql
AS $function$
DECLARE
    e endpoints;
    v_from uuid;
    v_withdrawn boolean;
BEGIN
    PERFORM ps_lock_endpoint(p_endpoint);
    SELECT pool_id, may_set_target INTO v_from, v_withdrawn
    FROM endpoints WHERE endpoint_id = p_endpoint AND deleted_at IS NULL FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'endpoint % not found', p_endpoint USING ERRCODE = 'PS001';
    END IF;
    PERFORM ps_lock_pool_shared(p_pool);
    IF NOT EXISTS (SELECT 1 FROM pools WHERE pool_id = p_pool AND deleted_at IS NULL) THEN
        RAISE EXCEPTION 'pool % not found', p_pool USING ERRCODE = 'PS008';
    END IF;
    IF EXISTS (SELECT 1 FROM operations WHERE endpoint_id = p_endpoint AND status IN ('pending', 'in_progress')) THEN
        RAISE EXCEPTION 'endpoint % has an active operation; cancel it before moving the endpoint', p_endpoint
            USING ERRCODE = 'PS015';
    END IF;
    v_withdrawn := v_withdrawn AND v_from IS DISTINCT FROM p_pool;
    UPDATE endpoints
    SET pool_id = p_pool, may_set_target = may_set_target AND NOT v_withdrawn
    WHERE endpoint_id = p_endpoint RETURNING * INTO e;
    PERFORM ps_audit(p_actor, 'endpoint.move', 'endpoint', p_endpoint::text,
        jsonb_build_object('from_pool_id', v_from, 'to_pool_id', p_pool,
                           'may_set_target_withdrawn', v_withdrawn));
    IF v_from IS DISTINCT FROM p_pool THEN
        PERFORM ps_emit('endpoint_moved', NULL, p_endpoint, p_pool,
            jsonb_build_object('endpoint_id', p_endpoint, 'from_pool_id', v_from, 'to_pool_id', p_pool));
    END IF;
    RETURN e;
END $function$
;
