CREATE OR REPLACE FUNCTION public.ps_states_collect(p_retention interval, p_batch integer)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
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
END $function$
;
