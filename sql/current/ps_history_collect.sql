CREATE OR REPLACE FUNCTION public.ps_history_collect(p_retention interval, p_after uuid, p_batch integer, OUT last_endpoint uuid, OUT deleted integer)
 RETURNS record
 LANGUAGE plpgsql
AS $function$
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
END $function$
;
