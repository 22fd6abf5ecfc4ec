-- Stored procedures: every operation transition, state recording and pool target change.
--
-- Locking protocol (advisory, transaction-scoped), always taken in this order:
--   1. the endpoint:  pg_advisory_xact_lock(1, hashtext(endpoint_id))
--   2. the pool:      shared while an endpoint's state or pool changes,
--                     exclusive while the pool target changes: pg_advisory_xact_lock(2, hashtext(pool_id))
-- so a pool target change sees a stable set of endpoint states and vice versa, and two host
-- replicas cannot interleave transitions of one endpoint. Endpoint rows are locked FOR NO KEY
-- UPDATE, which does not conflict with the FOR KEY SHARE locks that inserting an operation (a
-- foreign key to endpoints) holds; FOR UPDATE would let set-as-latest deadlock with other work.
--
-- Illegal transitions raise their own SQLSTATE (class PS); the host maps each to an HTTP status
-- and a stable problem `code`:
--   PS001 endpoint not found          PS002 operation not found        PS003 operation conflict
--   PS007 idempotency key mismatch    PS008 pool not found             PS010 operation not pending
--   PS011 operation not in progress   PS012 operation already finished PS013 cancel not requested
--   PS014 stale plan                  PS015 endpoint busy              PS016 pool not empty
--   PS017 state not found             PS090 append-only table

CREATE FUNCTION ps_lock_endpoint(p_endpoint uuid) RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(1, hashtext(p_endpoint::text))
$$;

CREATE FUNCTION ps_lock_pool(p_pool uuid) RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(2, hashtext(p_pool::text))
$$;

CREATE FUNCTION ps_lock_pool_shared(p_pool uuid) RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock_shared(2, hashtext(p_pool::text))
$$;

CREATE FUNCTION ps_audit(p_actor text, p_action text, p_subject_type text, p_subject_id text,
                         p_details jsonb DEFAULT '{}'::jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO audit_log (actor, action, subject_type, subject_id, details)
    VALUES (p_actor, p_action, p_subject_type, p_subject_id, coalesce(p_details, '{}'::jsonb))
$$;

-- Appends an event and notifies listeners in the same transaction: subscribers never see an
-- event whose change was rolled back, and never miss one that committed.
CREATE FUNCTION ps_emit(p_type text, p_operation uuid, p_endpoint uuid, p_pool uuid, p_payload jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO operation_events (event_type, operation_id, endpoint_id, pool_id, payload)
    VALUES (p_type, p_operation, p_endpoint, p_pool, p_payload)
    RETURNING event_id INTO v_id;
    PERFORM pg_notify('pacsync_events', json_build_object(
        'event_id', v_id, 'event_type', p_type, 'endpoint_id', p_endpoint, 'pool_id', p_pool)::text);
    RETURN v_id;
END $$;

CREATE FUNCTION ps_emit_op(p_type text, p_op operations) RETURNS bigint LANGUAGE sql AS $$
    SELECT ps_emit(p_type, p_op.operation_id, p_op.endpoint_id, p_op.pool_id, to_jsonb(p_op))
$$;

-- Stores a content-addressed state once; a second writer of the same state waits on the primary
-- key and then finds the rows complete.
CREATE FUNCTION ps_store_state(p_state_id text, p_packages jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO package_states (state_id, package_count)
    VALUES (p_state_id, jsonb_array_length(p_packages))
    ON CONFLICT (state_id) DO NOTHING;
    IF FOUND THEN
        INSERT INTO state_packages (state_id, name, version, repository, architecture, reason)
        SELECT p_state_id, x.name, x.version, x.repository, x.architecture, x.reason
        FROM jsonb_to_recordset(p_packages)
             AS x(name text, version text, repository text, architecture text, reason text);
    END IF;
END $$;

-- Makes p_state the endpoint's current state, adding a history row when it changed.
-- Caller holds the endpoint lock.
CREATE FUNCTION ps_append_history(p_endpoint uuid, p_state text, p_arch text, p_pacman_version text,
                                  p_operation uuid) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    e endpoints;
    v_id bigint;
BEGIN
    SELECT * INTO e FROM endpoints WHERE endpoint_id = p_endpoint FOR NO KEY UPDATE;
    IF e.current_state_id IS NOT DISTINCT FROM p_state THEN
        RETURN e.current_history_id;
    END IF;
    INSERT INTO endpoint_states (endpoint_id, state_id, revert_to, architecture, pacman_version, operation_id)
    VALUES (p_endpoint, p_state, e.current_history_id, p_arch, p_pacman_version, p_operation)
    RETURNING history_id INTO v_id;
    UPDATE endpoints SET current_state_id = p_state, current_history_id = v_id WHERE endpoint_id = p_endpoint;
    RETURN v_id;
END $$;

-- Records a state reported by the endpoint itself.
CREATE FUNCTION ps_endpoint_record_state(p_endpoint uuid, p_state text, p_arch text, p_pacman_version text)
RETURNS endpoints LANGUAGE plpgsql AS $$
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
END $$;

-- Sets the classification computed by the host's policy; emits sync_status_changed on change.
-- Caller holds the endpoint lock or the pool lock.
CREATE FUNCTION ps_endpoint_set_sync_status(p_endpoint uuid, p_status text) RETURNS void
LANGUAGE plpgsql AS $$
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
END $$;

-- Moves the pool target to p_state as a new generation, kept in pool_targets.
CREATE FUNCTION ps_pool_set_target(p_pool uuid, p_state text, p_operation uuid, p_endpoint uuid, p_actor text)
RETURNS bigint LANGUAGE plpgsql AS $$
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
END $$;

-- Locks the operation's endpoint and returns the operation row, locked.
CREATE FUNCTION ps_op_lock(p_op uuid) RETURNS operations LANGUAGE plpgsql AS $$
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
END $$;

CREATE FUNCTION ps_op_create(
    p_operation uuid, p_endpoint uuid, p_type text, p_details jsonb,
    p_target_state text, p_target_generation bigint, p_revert_history bigint,
    p_plan jsonb, p_policy jsonb, p_actor text, p_idempotency_key text, p_fingerprint text)
RETURNS operations LANGUAGE plpgsql AS $$
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
END $$;

-- pending -> in_progress, claimed by the agent with a lease. A sync operation whose pool target
-- moved since it was planned must be re-planned: the caller passes the new plan and the
-- generation it was computed for, and a plan for any other generation is refused as stale.
CREATE FUNCTION ps_op_start(p_op uuid, p_lease_seconds integer, p_actor text,
                            p_plan jsonb DEFAULT NULL, p_target_state text DEFAULT NULL,
                            p_target_generation bigint DEFAULT NULL, p_policy jsonb DEFAULT NULL)
RETURNS operations LANGUAGE plpgsql AS $$
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
END $$;

-- Progress heartbeat: records progress and renews the lease.
CREATE FUNCTION ps_op_progress(p_op uuid, p_percentage integer, p_stage text, p_action text,
                               p_lease_seconds integer) RETURNS operations LANGUAGE plpgsql AS $$
DECLARE
    op operations;
BEGIN
    op := ps_op_lock(p_op);
    IF op.status <> 'in_progress' THEN
        RAISE EXCEPTION 'operation % is %, not in progress', p_op, op.status
            USING ERRCODE = 'PS011', DETAIL = op.status;
    END IF;
    UPDATE operations
    SET progress_percentage = p_percentage, progress_stage = p_stage, progress_action = p_action,
        lease_expires_at = now() + make_interval(secs => p_lease_seconds), updated_at = now()
    WHERE operation_id = p_op
    RETURNING * INTO op;
    UPDATE endpoints SET last_seen = now() WHERE endpoint_id = op.endpoint_id;
    PERFORM ps_emit_op('operation_progress', op);
    RETURN op;
END $$;

-- in_progress -> completed with the state the endpoint ended in (already stored).
CREATE FUNCTION ps_op_complete(p_op uuid, p_result_state text, p_arch text, p_pacman_version text,
                               p_actor text) RETURNS operations LANGUAGE plpgsql AS $$
DECLARE
    op operations;
    v_current bigint;
BEGIN
    op := ps_op_lock(p_op);
    IF op.status <> 'in_progress' THEN
        RAISE EXCEPTION 'operation % is %, not in progress', p_op, op.status
            USING ERRCODE = 'PS011', DETAIL = op.status;
    END IF;
    PERFORM ps_lock_pool_shared(op.pool_id);
    v_current := ps_append_history(op.endpoint_id, p_result_state,
        coalesce(p_arch, (SELECT architecture FROM endpoints WHERE endpoint_id = op.endpoint_id)),
        coalesce(p_pacman_version, (SELECT pacman_version FROM endpoints WHERE endpoint_id = op.endpoint_id)),
        p_op);
    -- Keep the history an undo stack: after a revert, the next revert goes one step further
    -- back; after any other change, a revert returns to where the operation started.
    UPDATE endpoint_states
    SET revert_to = CASE WHEN op.operation_type = 'revert'
                         THEN (SELECT revert_to FROM endpoint_states WHERE history_id = op.revert_history_id)
                         ELSE op.start_history_id END
    WHERE history_id = v_current AND operation_id = p_op;
    UPDATE operations
    SET status = 'completed', completed_at = now(), updated_at = now(), lease_expires_at = NULL,
        progress_percentage = 100, progress_stage = 'completed', progress_action = NULL,
        result_state_id = p_result_state
    WHERE operation_id = p_op
    RETURNING * INTO op;
    UPDATE endpoints
    SET last_seen = now(), architecture = coalesce(p_arch, architecture),
        pacman_version = coalesce(p_pacman_version, pacman_version)
    WHERE endpoint_id = op.endpoint_id;
    PERFORM ps_emit_op('operation_completed', op);
    PERFORM ps_audit(p_actor, 'operation.complete', 'operation', p_op::text,
        jsonb_build_object('result_state_id', p_result_state));
    RETURN op;
END $$;

-- pending | in_progress -> failed.
CREATE FUNCTION ps_op_fail(p_op uuid, p_code text, p_message text, p_actor text)
RETURNS operations LANGUAGE plpgsql AS $$
DECLARE
    op operations;
BEGIN
    op := ps_op_lock(p_op);
    IF op.status NOT IN ('pending', 'in_progress') THEN
        RAISE EXCEPTION 'operation % is already %', p_op, op.status
            USING ERRCODE = 'PS012', DETAIL = op.status;
    END IF;
    UPDATE operations
    SET status = 'failed', completed_at = now(), updated_at = now(), lease_expires_at = NULL,
        error_code = p_code, error_message = p_message
    WHERE operation_id = p_op
    RETURNING * INTO op;
    PERFORM ps_emit_op('operation_failed', op);
    PERFORM ps_audit(p_actor, 'operation.fail', 'operation', p_op::text,
        jsonb_build_object('code', p_code, 'message', p_message));
    RETURN op;
END $$;

-- pending -> cancelled at once; in_progress -> cancel_requested, acknowledged by the agent.
CREATE FUNCTION ps_op_cancel(p_op uuid, p_actor text) RETURNS operations LANGUAGE plpgsql AS $$
DECLARE
    op operations;
BEGIN
    op := ps_op_lock(p_op);
    IF op.status = 'pending' THEN
        UPDATE operations
        SET status = 'cancelled', completed_at = now(), updated_at = now(), cancel_requested = true
        WHERE operation_id = p_op
        RETURNING * INTO op;
        PERFORM ps_emit_op('operation_cancelled', op);
    ELSIF op.status = 'in_progress' THEN
        IF NOT op.cancel_requested THEN
            UPDATE operations SET cancel_requested = true, updated_at = now()
            WHERE operation_id = p_op
            RETURNING * INTO op;
            PERFORM ps_emit_op('operation_cancel_requested', op);
        END IF;
    ELSE
        RAISE EXCEPTION 'operation % is already %', p_op, op.status
            USING ERRCODE = 'PS012', DETAIL = op.status;
    END IF;
    PERFORM ps_audit(p_actor, 'operation.cancel', 'operation', p_op::text,
        jsonb_build_object('status', op.status));
    RETURN op;
END $$;

-- The agent acknowledges a requested cancel at a safe point: in_progress -> cancelled, with the
-- state it actually reached when it has one.
CREATE FUNCTION ps_op_ack_cancel(p_op uuid, p_result_state text, p_arch text, p_pacman_version text,
                                 p_actor text) RETURNS operations LANGUAGE plpgsql AS $$
DECLARE
    op operations;
BEGIN
    op := ps_op_lock(p_op);
    IF op.status <> 'in_progress' THEN
        RAISE EXCEPTION 'operation % is %, not in progress', p_op, op.status
            USING ERRCODE = 'PS011', DETAIL = op.status;
    END IF;
    IF NOT op.cancel_requested THEN
        RAISE EXCEPTION 'operation % has no cancel request to acknowledge', p_op USING ERRCODE = 'PS013';
    END IF;
    IF p_result_state IS NOT NULL THEN
        PERFORM ps_lock_pool_shared(op.pool_id);
        PERFORM ps_append_history(op.endpoint_id, p_result_state, p_arch, p_pacman_version, p_op);
    END IF;
    UPDATE operations
    SET status = 'cancelled', completed_at = now(), updated_at = now(), lease_expires_at = NULL,
        result_state_id = p_result_state
    WHERE operation_id = p_op
    RETURNING * INTO op;
    UPDATE endpoints
    SET last_seen = now(), architecture = coalesce(p_arch, architecture),
        pacman_version = coalesce(p_pacman_version, pacman_version)
    WHERE endpoint_id = op.endpoint_id;
    PERFORM ps_emit_op('operation_cancelled', op);
    PERFORM ps_audit(p_actor, 'operation.cancelled', 'operation', p_op::text, '{}'::jsonb);
    RETURN op;
END $$;

-- Fails every in_progress operation whose lease ran out; run by the single elected reaper.
CREATE FUNCTION ps_op_expire_leases(p_actor text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
    op operations;
    v_count integer := 0;
BEGIN
    FOR v_id IN SELECT operation_id FROM operations
                WHERE status = 'in_progress' AND lease_expires_at < now()
                ORDER BY lease_expires_at LIMIT 1000
    LOOP
        op := ps_op_lock(v_id);
        -- Re-check under the lock: the agent may have renewed or finished meanwhile.
        CONTINUE WHEN op.status <> 'in_progress' OR op.lease_expires_at >= now();
        UPDATE operations
        SET status = 'failed', completed_at = now(), updated_at = now(), lease_expires_at = NULL,
            error_code = 'LEASE_EXPIRED',
            error_message = 'the agent stopped reporting progress before the lease expired'
        WHERE operation_id = v_id
        RETURNING * INTO op;
        PERFORM ps_emit_op('operation_failed', op);
        PERFORM ps_audit(p_actor, 'operation.expire', 'operation', v_id::text, '{}'::jsonb);
        v_count := v_count + 1;
    END LOOP;
    RETURN v_count;
END $$;

-- Moves an endpoint to another pool; the host re-classifies it in the same transaction.
CREATE FUNCTION ps_endpoint_move(p_endpoint uuid, p_pool uuid, p_actor text) RETURNS endpoints
LANGUAGE plpgsql AS $$
DECLARE
    e endpoints;
    v_from uuid;
BEGIN
    PERFORM ps_lock_endpoint(p_endpoint);
    SELECT pool_id INTO v_from FROM endpoints WHERE endpoint_id = p_endpoint AND deleted_at IS NULL FOR NO KEY UPDATE;
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
    UPDATE endpoints SET pool_id = p_pool WHERE endpoint_id = p_endpoint RETURNING * INTO e;
    PERFORM ps_audit(p_actor, 'endpoint.move', 'endpoint', p_endpoint::text,
        jsonb_build_object('from_pool_id', v_from, 'to_pool_id', p_pool));
    RETURN e;
END $$;

-- Soft-deletes an endpoint: its tokens stop working, its active operation ends, history stays.
CREATE FUNCTION ps_endpoint_delete(p_endpoint uuid, p_actor text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    op operations;
BEGIN
    PERFORM ps_lock_endpoint(p_endpoint);
    PERFORM 1 FROM endpoints WHERE endpoint_id = p_endpoint AND deleted_at IS NULL FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'endpoint % not found', p_endpoint USING ERRCODE = 'PS001';
    END IF;
    FOR op IN SELECT * FROM operations
              WHERE endpoint_id = p_endpoint AND status IN ('pending', 'in_progress') FOR UPDATE
    LOOP
        UPDATE operations
        SET status = 'failed', completed_at = now(), updated_at = now(), lease_expires_at = NULL,
            error_code = 'ENDPOINT_DELETED', error_message = 'the endpoint was deleted'
        WHERE operation_id = op.operation_id
        RETURNING * INTO op;
        PERFORM ps_emit_op('operation_failed', op);
    END LOOP;
    UPDATE endpoints SET deleted_at = now(), token_generation = token_generation + 1
    WHERE endpoint_id = p_endpoint;
    PERFORM ps_audit(p_actor, 'endpoint.delete', 'endpoint', p_endpoint::text, '{}'::jsonb);
END $$;

-- Soft-deletes a pool that no live endpoint belongs to.
CREATE FUNCTION ps_pool_delete(p_pool uuid, p_actor text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ps_lock_pool(p_pool);
    PERFORM 1 FROM pools WHERE pool_id = p_pool AND deleted_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pool % not found', p_pool USING ERRCODE = 'PS008';
    END IF;
    IF EXISTS (SELECT 1 FROM endpoints WHERE pool_id = p_pool AND deleted_at IS NULL) THEN
        RAISE EXCEPTION 'pool % still has endpoints; move or delete them first', p_pool
            USING ERRCODE = 'PS016';
    END IF;
    UPDATE pools SET deleted_at = now(), updated_at = now() WHERE pool_id = p_pool;
    DELETE FROM enrollment_tokens WHERE pool_id = p_pool;
    PERFORM ps_audit(p_actor, 'pool.delete', 'pool', p_pool::text, '{}'::jsonb);
END $$;
