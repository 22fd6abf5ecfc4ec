CREATE OR REPLACE FUNCTION public.ps_states_collect(p_retention interval)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_count integer;
BEGIN
    DELETE FROM package_states
    WHERE state_id IN (
        SELECT s.state_id FROM package_states s
        WHERE s.created_at < now() - p_retention
          AND NOT EXISTS (SELECT 1 FROM endpoints e WHERE e.current_state_id = s.state_id)
          AND NOT EXISTS (SELECT 1 FROM endpoint_states h WHERE h.state_id = s.state_id)
          AND NOT EXISTS (SELECT 1 FROM pools p WHERE p.target_state_id = s.state_id)
          AND NOT EXISTS (SELECT 1 FROM pool_targets t WHERE t.state_id = s.state_id)
          AND NOT EXISTS (SELECT 1 FROM operations o
                          WHERE o.target_state_id = s.state_id OR o.result_state_id = s.state_id)
        -- A state a report has just pinned is skipped; the next round sees it referenced.
        FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END $function$
;
