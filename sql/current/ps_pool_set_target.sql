CREATE OR REPLACE FUNCTION public.ps_pool_set_target(p_pool uuid, p_state text, p_operation uuid, p_endpoint uuid, p_actor text)
 RETURNS bigint
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_generation bigint;
BEGIN
    PERFORM ps_lock_pool(p_pool);
    UPDATE pools
    SET target_state_id = p_state, target_generation = target_generation + 1, updated_at = now()
    WHERE pool_id = p_pool AND deleted_at IS NULL
    RETURNING target_generation INTO v_generation;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pool % not found', p_pool USING ERRCODE = 'PS008';
    END IF;
    INSERT INTO pool_targets (pool_id, generation, state_id, operation_id, endpoint_id)
    VALUES (p_pool, v_generation, p_state, p_operation, p_endpoint);
    PERFORM ps_emit('target_changed', p_operation, NULL, p_pool, jsonb_build_object(
        'pool_id', p_pool, 'generation', v_generation, 'state_id', p_state,
        'operation_id', p_operation, 'endpoint_id', p_endpoint));
    PERFORM ps_audit(p_actor, 'pool.set_target', 'pool', p_pool::text,
        jsonb_build_object('generation', v_generation, 'state_id', p_state, 'operation_id', p_operation));
    RETURN v_generation;
END $function$
;
