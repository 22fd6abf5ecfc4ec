CREATE OR REPLACE FUNCTION public.ps_op_start(p_op uuid, p_lease_seconds integer, p_actor text, p_plan jsonb DEFAULT NULL::jsonb, p_target_state text DEFAULT NULL::text, p_target_generation bigint DEFAULT NULL::bigint, p_policy jsonb DEFAULT NULL::jsonb)
 RETURNS operations
 LANGUAGE plpgsql
AS $function$
DECLARE
    op operations;
    p pools;
BEGIN
    op := ps_op_lock(p_op);
    IF op.status <> 'pending' THEN
        RAISE EXCEPTION 'operation % is %, not pending', p_op, op.status
            USING ERRCODE = 'PS010', DETAIL = op.status;
    END IF;
    PERFORM ps_lock_pool_shared(op.pool_id);
    IF op.operation_type = 'sync' THEN
        SELECT * INTO p FROM pools WHERE pool_id = op.pool_id;
        IF p.target_generation <> coalesce(p_target_generation, op.target_generation) THEN
            RAISE EXCEPTION 'operation % was planned for generation %, the pool target is at %',
                p_op, coalesce(p_target_generation, op.target_generation), p.target_generation
                USING ERRCODE = 'PS014';
        END IF;
    END IF;
    UPDATE operations
    SET status = 'in_progress', started_at = now(), updated_at = now(),
        lease_expires_at = now() + make_interval(secs => p_lease_seconds),
        start_history_id = (SELECT current_history_id FROM endpoints WHERE endpoint_id = op.endpoint_id),
        plan = coalesce(p_plan, plan),
        planned_history_id = CASE WHEN p_plan IS NULL THEN planned_history_id
                                  ELSE (SELECT current_history_id FROM endpoints WHERE endpoint_id = op.endpoint_id) END,
        target_state_id = coalesce(p_target_state, target_state_id),
        target_generation = coalesce(p_target_generation, target_generation),
        policy = coalesce(p_policy, policy),
        details = CASE WHEN p_plan IS NULL THEN details
                       ELSE details || jsonb_build_object('replanned_from_generation', op.target_generation) END
    WHERE operation_id = p_op
    RETURNING * INTO op;
    UPDATE endpoints SET last_seen = now() WHERE endpoint_id = op.endpoint_id;
    PERFORM ps_emit_op('operation_started', op);
    RETURN op;
END $function$
;
