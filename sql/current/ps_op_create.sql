CREATE OR REPLACE FUNCTION public.ps_op_create(p_operation uuid, p_endpoint uuid, p_type text, p_details jsonb, p_target_state text, p_target_generation bigint, p_revert_history bigint, p_plan jsonb, p_policy jsonb, p_actor text, p_idempotency_key text, p_fingerprint text)
 RETURNS operations
 LANGUAGE plpgsql
AS $function$
DECLARE
    e endpoints;
    op operations;
    v_active uuid;
    v_constraint text;
BEGIN
    PERFORM ps_lock_endpoint(p_endpoint);
    IF p_idempotency_key IS NOT NULL THEN
        SELECT * INTO op FROM operations
        WHERE created_by = p_actor AND idempotency_key = p_idempotency_key;
        IF FOUND THEN
            IF op.request_fingerprint IS DISTINCT FROM p_fingerprint THEN
                RAISE EXCEPTION 'Idempotency-Key % was first used for a different request', p_idempotency_key
                    USING ERRCODE = 'PS007';
            END IF;
            RETURN op;  -- replay: the caller sees a different operation_id than it proposed
        END IF;
    END IF;
    SELECT * INTO e FROM endpoints WHERE endpoint_id = p_endpoint AND deleted_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'endpoint % not found', p_endpoint USING ERRCODE = 'PS001';
    END IF;
    SELECT operation_id INTO v_active FROM operations
    WHERE endpoint_id = p_endpoint AND status IN ('pending', 'in_progress');
    IF FOUND THEN
        RAISE EXCEPTION 'endpoint % already has active operation %', p_endpoint, v_active
            USING ERRCODE = 'PS003', DETAIL = v_active::text;
    END IF;
    BEGIN
        INSERT INTO operations (operation_id, endpoint_id, pool_id, operation_type, details,
                                target_state_id, target_generation, revert_history_id, plan, policy,
                                created_by, idempotency_key, request_fingerprint, planned_history_id)
        VALUES (p_operation, p_endpoint, e.pool_id, p_type, coalesce(p_details, '{}'::jsonb),
                p_target_state, p_target_generation, p_revert_history, p_plan, p_policy,
                p_actor, p_idempotency_key, p_fingerprint, e.current_history_id)
        RETURNING * INTO op;
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
        IF v_constraint = 'operations_idempotency' THEN
            RAISE EXCEPTION 'Idempotency-Key % is in use by a concurrent request', p_idempotency_key
                USING ERRCODE = 'PS007';
        END IF;
        RAISE EXCEPTION 'endpoint % already has an active operation', p_endpoint USING ERRCODE = 'PS003';
    END;
    PERFORM ps_emit_op('operation_created', op);
    PERFORM ps_audit(p_actor, 'operation.create', 'operation', op.operation_id::text,
        jsonb_build_object('operation_type', p_type, 'endpoint_id', p_endpoint));
    RETURN op;
END $function$
;
