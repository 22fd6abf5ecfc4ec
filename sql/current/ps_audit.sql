CREATE OR REPLACE FUNCTION public.ps_audit(p_actor text, p_action text, p_subject_type text, p_subject_id text, p_details jsonb DEFAULT '{}'::jsonb)
 RETURNS void
 LANGUAGE sql
AS $function$
    INSERT INTO audit_log (actor, action, subject_type, subject_id, details)
    VALUES (p_actor, p_action, p_subject_type, p_subject_id, coalesce(p_details, '{}'::jsonb))
$function$
;
