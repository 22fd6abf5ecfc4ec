CREATE OR REPLACE FUNCTION public.ps_lock_pool(p_pool uuid)
 RETURNS void
 LANGUAGE sql
AS $function$
    SELECT pg_advisory_xact_lock(2, hashtext(p_pool::text))
$function$
;
