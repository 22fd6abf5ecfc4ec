CREATE OR REPLACE FUNCTION public.ps_states_collect(p_retention interval, p_batch integer)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_count integer;
BEGIN
    -- Candidates first, locks after: a lock taken in the same WHERE could be tried (and held
    -- to commit) on every old state before the reference checks ruled it out.
    WITH candidates AS MATERIALIZED (
        SELECT s.state_id FROM package_states s
        WHERE s.created_at < now() - p_retention
          AND NOT EXISTS (SELECT 1 FROM endpoints e WHERE e.current_state_id = s.state_id)
          AND NOT EXISTS (SELECT 1 FROM endpoint_states h WHERE h.state_id = s.state_id)
          AND NOT EXISTS (SELECT 1 FROM pools p WHERE p.target_state_id = s.state_id)
          AND NOT EXISTS (SELECT 1 FROM pool_targets t WHERE t.state_id = s.state_id)
          AND NOT EXISTS (SELECT 1 FROM operations o
                          WHERE o.target_state_id = s.state_id OR o.result_state_id = s.state_id)
        LIMIT p_batch
    )
    DELETE FROM package_states
    -- A state a report holds is skipped; the next round sees it referenced.
    WHERE state_id IN (SELECT state_id FROM candidates
                       WHERE pg_try_advisory_xact_lock(ps_state_lock_key(state_id)));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END $function$
;
