CREATE OR REPLACE FUNCTION public.ps_lock_endpoint(p_endpoint uuid)
 RETURNS void
 LANGUAGE sql
AS $function$
    SELECT pg_advisory_xact_lock(1, hashtext(p_endpoint::text))
$function$
;
