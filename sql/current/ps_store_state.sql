CREATE OR REPLACE FUNCTION public.ps_store_state(p_state_id text, p_packages jsonb)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
END $function$
;
