CREATE OR REPLACE FUNCTION public.ps_admin_token_guard()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
           AND (to_jsonb(NEW) - 'revoked_at' - 'revoked_by') = (to_jsonb(OLD) - 'revoked_at' - 'revoked_by') THEN
            PERFORM pg_notify('pacsync_admin_tokens', NEW.token_id::text);
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'admin tokens are only ever revoked, once' USING ERRCODE = 'PS090';
END $function$
;
