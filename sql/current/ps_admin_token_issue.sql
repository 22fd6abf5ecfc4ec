CREATE OR REPLACE FUNCTION public.ps_admin_token_issue(p_token uuid, p_name text, p_created timestamp with time zone, p_expires timestamp with time zone, p_actor text)
 RETURNS admin_tokens
 LANGUAGE plpgsql
AS $function$
DECLARE
    t admin_tokens;
BEGIN
    INSERT INTO admin_tokens (token_id, name, created_at, expires_at, created_by)
    VALUES (p_token, p_name, p_created, p_expires, p_actor)
    RETURNING * INTO t;
    PERFORM ps_audit(p_actor, 'admin_token.issue', 'admin_token', p_token::text,
        jsonb_build_object('name', p_name, 'expires_at', p_expires));
    RETURN t;
END $function$
;
