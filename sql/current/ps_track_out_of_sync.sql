CREATE OR REPLACE FUNCTION public.ps_track_out_of_sync()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF NEW.sync_status NOT IN ('ahead', 'behind', 'diverged') THEN
        NEW.out_of_sync_since := NULL;
    ELSIF TG_OP = 'INSERT' OR OLD.sync_status NOT IN ('ahead', 'behind', 'diverged') THEN
        NEW.out_of_sync_since := now();
    ELSE
        -- Moving between ahead, behind and diverged keeps the endpoint out of sync.
        NEW.out_of_sync_since := OLD.out_of_sync_since;
    END IF;
    RETURN NEW;
END $function$
;
