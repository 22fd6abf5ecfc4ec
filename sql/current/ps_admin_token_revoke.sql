CREATE OR REPLACE FUNCTION public.ps_admin_token_revoke(p_name text, p_actor text)
 RETURNS uuid
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_token uuid;
BEGIN
    UPDATE admin_tokens SET revoked_at = now(), revoked_by = p_actor
    WHERE name = p_name AND revoked_at IS NULL
    RETURNING token_id INTO v_token;
    IF v_token IS NOT NULL THEN
        PERFORM ps_audit(p_actor, 'admin_token.revoke', 'admin_token', v_token::text,
            jsonb_build_object('name', p_name));
    END IF;
    RETURN v_token;
END $function$
;
