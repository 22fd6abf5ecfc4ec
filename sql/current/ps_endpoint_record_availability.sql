CREATE OR REPLACE FUNCTION public.ps_endpoint_record_availability(p_endpoint uuid, p_id text, p_archive text[], p_offers jsonb)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM ps_lock_endpoint(p_endpoint);
    LOOP
        INSERT INTO availability_sets (availability_id, archive_repositories, offered_count)
        VALUES (p_id, p_archive, jsonb_array_length(p_offers))
        ON CONFLICT (availability_id) DO NOTHING;
        IF FOUND THEN
            INSERT INTO availability_offers (availability_id, name, version, source)
            SELECT p_id, x.name, x.version, x.source
            FROM jsonb_to_recordset(p_offers) AS x(name text, version text, source text);
            EXIT;
        END IF;
        -- It exists: pin it. If the collector deleted it in between, store it again.
        PERFORM 1 FROM availability_sets WHERE availability_id = p_id FOR KEY SHARE;
        EXIT WHEN FOUND;
    END LOOP;
    UPDATE endpoints
    SET availability_id = p_id, availability_reported_at = now(), last_seen = now()
    WHERE endpoint_id = p_endpoint AND deleted_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'endpoint % not found', p_endpoint USING ERRCODE = 'PS001';
    END IF;
END $function$
;
