CREATE OR REPLACE FUNCTION public.ps_availability_collect(p_min_age interval)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_count integer;
BEGIN
    DELETE FROM availability_sets
    WHERE availability_id IN (
        SELECT s.availability_id FROM availability_sets s
        WHERE s.created_at < now() - p_min_age
          AND NOT EXISTS (SELECT 1 FROM endpoints e
                          WHERE e.availability_id = s.availability_id AND e.deleted_at IS NULL)
        -- A set a report has just pinned is skipped; the next round sees it referenced.
        FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END $function$
;
