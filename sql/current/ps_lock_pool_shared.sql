CREATE OR REPLACE FUNCTION public.ps_lock_pool_shared(p_pool uuid)
 RETURNS void
 LANGUAGE sql
AS $function$
    SELECT pg_advisory_xact_lock_shared(2, hashtext(p_pool::text))
$function$
;
