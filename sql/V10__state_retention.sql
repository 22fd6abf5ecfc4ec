-- Retention of package states: states nothing needs any more are collected.
--
-- A state is needed while it is
--   - an endpoint's current state,
--   - in an endpoint's history within the retention (or the entry a revert from the current one
--     returns to, however old, so one step of undo always survives; while a revert is pending or
--     in progress, also the entry a revert after it will return to, which ps_op_complete copies
--     from the entry the revert returns to),
--   - a pool's target, current or in its history (pool_targets),
--   - the target or result of an operation, or in a history entry an operation refers to.
-- Everything else older than the retention goes, in two steps that the host runs periodically
-- (host/src/retention.rs), one replica at a time:
--   1. ps_history_collect drops the history entries older than the retention that are not
--      needed, endpoint by endpoint, under each endpoint's lock (the lock every history change
--      takes), skipping endpoints busy right now; an entry whose revert target goes gets none.
--      Operations are created and completed only under the same lock, so the entries an active
--      revert will need are known while the endpoint is collected.
--   2. ps_states_collect deletes the states no row refers to any more, older than the retention.
--
-- A report may store a state (content-addressed: the same id as an existing one) while the
-- collector deletes it. ps_store_state therefore holds a shared advisory lock on the state's id
-- until its transaction ends, and the collector deletes a state only while it holds the same
-- lock exclusively (pg_try_advisory_xact_lock, skipping states it cannot lock). A report thus
-- either finds the state and keeps it until its own reference commits, or waits for the
-- collector to commit and stores the state again. Advisory locks live in memory: unlike a row
-- lock, pinning a state that thousands of endpoints share writes nothing. Every other new
-- reference to a state copies one from a row that keeps it (an endpoint's current entry, a
-- pool target, an operation's history entry). The collector checks references again after
-- taking its locks, in a new statement that sees what committed meanwhile; a reference that
-- commits later still fails the delete's foreign key check, which rolls the batch back, and the
-- next round sees the state referenced.

CREATE OR REPLACE FUNCTION ps_store_state(p_state_id text, p_packages jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(ps_state_lock_key(p_state_id));
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

-- The advisory lock key of a state: the first 64 bits of its sha256 id. A one-bigint advisory
-- key never collides with the two-integer keys of the endpoint and pool locks.
CREATE FUNCTION ps_state_lock_key(p_state_id text) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT ('x' || left(p_state_id, 16))::bit(64)::bigint
$$;

-- Drops unneeded history entries older than p_retention of up to p_batch endpoints after
-- p_after (in endpoint_id order; NULL: from the first). Returns the last endpoint looked at
-- (NULL when there was none: the pass is complete) and how many entries were dropped.
CREATE FUNCTION ps_history_collect(p_retention interval, p_after uuid, p_batch integer,
                                   OUT last_endpoint uuid, OUT deleted integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_endpoint uuid;
    v_current bigint;
    v_undo bigint;
    v_next_undo bigint;
    v_doomed bigint[];
    v_count integer;
BEGIN
    deleted := 0;
    FOR v_endpoint IN
        SELECT e.endpoint_id FROM endpoints e
        WHERE (p_after IS NULL OR e.endpoint_id > p_after)
          AND EXISTS (SELECT 1 FROM endpoint_states h
                      WHERE h.endpoint_id = e.endpoint_id
                        AND h.recorded_at < now() - p_retention
                        AND h.history_id IS DISTINCT FROM e.current_history_id)
        ORDER BY e.endpoint_id
        LIMIT p_batch
    LOOP
        last_endpoint := v_endpoint;
        -- An endpoint whose lock is held is changing right now; the next pass gets it.
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(1, hashtext(v_endpoint::text));
        SELECT current_history_id INTO v_current FROM endpoints WHERE endpoint_id = v_endpoint;
        SELECT revert_to INTO v_undo FROM endpoint_states WHERE history_id = v_current;
        -- The undo step a revert in flight leaves behind (at most one operation is active).
        SELECT r.revert_to INTO v_next_undo
        FROM operations o JOIN endpoint_states r ON r.history_id = o.revert_history_id
        WHERE o.endpoint_id = v_endpoint AND o.status IN ('pending', 'in_progress');
        SELECT array_agg(h.history_id) INTO v_doomed
        FROM endpoint_states h
        WHERE h.endpoint_id = v_endpoint
          AND h.recorded_at < now() - p_retention
          AND h.history_id IS DISTINCT FROM v_current
          AND h.history_id IS DISTINCT FROM v_undo
          AND h.history_id IS DISTINCT FROM v_next_undo
          AND NOT EXISTS (SELECT 1 FROM operations o
                          WHERE o.endpoint_id = v_endpoint
                            AND (o.revert_history_id = h.history_id
                                 OR o.planned_history_id = h.history_id
                                 OR o.start_history_id = h.history_id));
        CONTINUE WHEN v_doomed IS NULL;
        UPDATE endpoint_states SET revert_to = NULL
        WHERE endpoint_id = v_endpoint AND revert_to = ANY (v_doomed)
          AND NOT (history_id = ANY (v_doomed));
        DELETE FROM endpoint_states WHERE history_id = ANY (v_doomed);
        GET DIAGNOSTICS v_count = ROW_COUNT;
        deleted := deleted + v_count;
    END LOOP;
END $$;

-- Deletes up to p_batch states older than p_retention that no row refers to, skipping any a
-- report holds right now; returns how many went (fewer than p_batch ends a round).
CREATE FUNCTION ps_states_collect(p_retention interval, p_batch integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_locked text[];
    v_count integer;
BEGIN
    -- Candidates first, locks after: a lock taken in the same WHERE could be tried (and held
    -- to commit) on every old state before the reference checks ruled it out. A state a
    -- report holds is skipped; the next round sees it referenced.
    SELECT array_agg(c.state_id) INTO v_locked
    FROM (
        SELECT s.state_id FROM package_states s
        WHERE s.created_at < now() - p_retention
          AND NOT EXISTS (SELECT 1 FROM endpoints e WHERE e.current_state_id = s.state_id)
          AND NOT EXISTS (SELECT 1 FROM endpoint_states h WHERE h.state_id = s.state_id)
          AND NOT EXISTS (SELECT 1 FROM pools p WHERE p.target_state_id = s.state_id)
          AND NOT EXISTS (SELECT 1 FROM pool_targets t WHERE t.state_id = s.state_id)
          AND NOT EXISTS (SELECT 1 FROM operations o
                          WHERE o.target_state_id = s.state_id OR o.result_state_id = s.state_id)
        LIMIT p_batch
    ) c
    WHERE pg_try_advisory_xact_lock(ps_state_lock_key(c.state_id));
    IF v_locked IS NULL THEN
        RETURN 0;
    END IF;
    -- A new statement, a new snapshot: a report that referenced a candidate and committed
    -- before its lock was taken is seen now, and its state is kept.
    DELETE FROM package_states s
    WHERE s.state_id = ANY (v_locked)
      AND NOT EXISTS (SELECT 1 FROM endpoints e WHERE e.current_state_id = s.state_id)
      AND NOT EXISTS (SELECT 1 FROM endpoint_states h WHERE h.state_id = s.state_id)
      AND NOT EXISTS (SELECT 1 FROM pools p WHERE p.target_state_id = s.state_id)
      AND NOT EXISTS (SELECT 1 FROM pool_targets t WHERE t.state_id = s.state_id)
      AND NOT EXISTS (SELECT 1 FROM operations o
                      WHERE o.target_state_id = s.state_id OR o.result_state_id = s.state_id);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    -- Fewer than a batch (none left, or some skipped or kept) ends the round; what was skipped
    -- waits for the next one.
    RETURN v_count;
END $$;

-- The collector's reference checks and the foreign keys of every deleted state or history
-- entry look rows up by these columns; without indexes each lookup scans the whole table.
CREATE INDEX endpoint_states_state ON endpoint_states (state_id);
CREATE INDEX endpoint_states_revert_to ON endpoint_states (revert_to) WHERE revert_to IS NOT NULL;
CREATE INDEX endpoints_current_state ON endpoints (current_state_id);
CREATE INDEX pool_targets_state ON pool_targets (state_id);
CREATE INDEX operations_target_state ON operations (target_state_id);
CREATE INDEX operations_result_state ON operations (result_state_id) WHERE result_state_id IS NOT NULL;
CREATE INDEX operations_revert_history ON operations (revert_history_id)
    WHERE revert_history_id IS NOT NULL;
CREATE INDEX operations_planned_history ON operations (planned_history_id)
    WHERE planned_history_id IS NOT NULL;
CREATE INDEX operations_start_history ON operations (start_history_id)
    WHERE start_history_id IS NOT NULL;
