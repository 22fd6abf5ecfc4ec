CREATE OR REPLACE FUNCTION public.ps_state_lock_key(p_state_id text)
 RETURNS bigint
 LANGUAGE sql
 IMMUTABLE
AS $function$
    SELECT ('x' || left(p_state_id, 16))::bit(64)::bigint
$function$
;
