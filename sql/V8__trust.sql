-- Trust model: who may change a pool's target, enrollment tokens an admin can list and revoke,
-- endpoint permissions, and endpoint names unique per pool.
--
--   pools.target_setters              who may move the target with set-as-latest: any endpoint of
--                                     the pool, only endpoints with may_set_target, or admins only.
--                                     Admins always may. The host checks it under the pool lock,
--                                     which every change of target_setters also takes.
--   endpoints.may_set_target          an admin's grant, used when target_setters = 'designated';
--                                     it is for one pool, so a move to another withdraws it.
--   endpoints.constrains_availability false: the endpoint's reported availability no longer limits
--                                     what the rest of the pool is planned to install.
--   enrollment_tokens.token_id        the public handle of a token (the secret is only hashed).
--   enrollment_tokens.revoked_at      set once; a revoked token registers nothing.

ALTER TABLE pools
    ADD COLUMN target_setters text NOT NULL DEFAULT 'any_endpoint'
        CONSTRAINT pools_target_setters CHECK (target_setters IN ('any_endpoint', 'designated', 'admins'));

ALTER TABLE endpoints
    ADD COLUMN may_set_target boolean NOT NULL DEFAULT false,
    ADD COLUMN constrains_availability boolean NOT NULL DEFAULT true;

-- A volatile default gives every existing token its own id.
ALTER TABLE enrollment_tokens
    ADD COLUMN token_id uuid NOT NULL DEFAULT gen_random_uuid()
        CONSTRAINT enrollment_tokens_token_id UNIQUE,
    ADD COLUMN revoked_at timestamptz;
CREATE INDEX enrollment_tokens_pool ON enrollment_tokens (pool_id, created_at);

-- Names are unique within a pool, so one pool's machines cannot take another pool's names. The
-- index keeps its name: the host maps a violation of it to ENDPOINT_NAME_TAKEN.
DROP INDEX endpoints_live_name;
CREATE UNIQUE INDEX endpoints_live_name ON endpoints (pool_id, name) WHERE deleted_at IS NULL;

-- Makes a state the pool has had as its target the target again, as a new generation: an
-- admin's undo of a bad set-as-latest. Recorded in pool_targets (without operation or
-- endpoint), announced as target_changed like any target change, audited as
-- pool.restore_target with the latest generation that had the state. A state the pool never
-- had as target is refused with PS017 (state not found). The caller re-classifies the pool's
-- endpoints in the same transaction, under the pool lock this takes.
CREATE FUNCTION ps_pool_restore_target(p_pool uuid, p_state text, p_actor text) RETURNS bigint
LANGUAGE plpgsql AS $$
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
END $$;

-- Moves an endpoint to another pool. An admin granted may_set_target with one pool's endpoints
-- in mind, so a move to another pool withdraws it, in the move's transaction; the move's audit
-- record says whether it did (may_set_target_withdrawn). constrains_availability stays: it is
-- about how far the endpoint's own reports can be trusted, wherever it is.
CREATE OR REPLACE FUNCTION ps_endpoint_move(p_endpoint uuid, p_pool uuid, p_actor text) RETURNS endpoints
LANGUAGE plpgsql AS $$
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
END $$;
