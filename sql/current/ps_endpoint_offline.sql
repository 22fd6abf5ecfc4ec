CREATE OR REPLACE FUNCTION public.ps_endpoint_offline(p_endpoint uuid)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
DECLARE
    e endpoints;
BEGIN
    UPDATE endpoints SET online_until = NULL
    WHERE endpoint_id = p_endpoint AND online_until > now() AND deleted_at IS NULL
    RETURNING * INTO e;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM ps_emit('endpoint_offline', NULL, e.endpoint_id, e.pool_id,
        jsonb_build_object('endpoint_id', e.endpoint_id, 'pool_id', e.pool_id));
    RETURN true;
END $function$
;
