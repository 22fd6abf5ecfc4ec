CREATE OR REPLACE FUNCTION public.ps_pool_restore_target(p_pool uuid, p_state text, p_actor text)
 RETURNS bigint
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_generation bigint;
    v_restored bigint;
BEGIN
    PERFORM ps_lock_pool(p_pool);
    PERFORM 1 FROM pools WHERE pool_id = p_pool AND deleted_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pool % not found', p_pool USING ERRCODE = 'PS008';
    END IF;
    SELECT max(generation) INTO v_restored FROM pool_targets WHERE pool_id = p_pool AND state_id = p_state;
    IF v_restored IS NULL THEN
        RAISE EXCEPTION 'state % has never been the target of pool %', p_state, p_pool
            USING ERRCODE = 'PS017';
    END IF;
    UPDATE pools
    SET target_state_id = p_state, target_generation = target_generation + 1, updated_at = now()
    WHERE pool_id = p_pool
    RETURNING target_generation INTO v_generation;
    INSERT INTO pool_targets (pool_id, generation, state_id, operation_id, endpoint_id)
    VALUES (p_pool, v_generation, p_state, NULL, NULL);
    PERFORM ps_emit('target_changed', NULL, NULL, p_pool, jsonb_build_object(
        'pool_id', p_pool, 'generation', v_generation, 'state_id', p_state,
        'operation_id', NULL::uuid, 'endpoint_id', NULL::uuid));
    PERFORM ps_audit(p_actor, 'pool.restore_target', 'pool', p_pool::text,
        jsonb_build_object('generation', v_generation, 'state_id', p_state,
                           'restored_generation', v_restored));
    RETURN v_generation;
END $function$
;
