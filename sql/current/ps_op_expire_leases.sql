CREATE OR REPLACE FUNCTION public.ps_op_expire_leases(p_actor text)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
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
END $function$
;
