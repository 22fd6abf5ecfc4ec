CREATE OR REPLACE FUNCTION public.ps_pool_delete(p_pool uuid, p_actor text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM ps_lock_pool(p_pool);
    PERFORM 1 FROM pools WHERE pool_id = p_pool AND deleted_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pool % not found', p_pool USING ERRCODE = 'PS008';
    END IF;
    IF EXISTS (SELECT 1 FROM endpoints WHERE pool_id = p_pool AND deleted_at IS NULL) THEN
        RAISE EXCEPTION 'pool % still has endpoints; move or delete them first', p_pool
            USING ERRCODE = 'PS016';
    END IF;
    UPDATE pools SET deleted_at = now(), updated_at = now() WHERE pool_id = p_pool;
    DELETE FROM enrollment_tokens WHERE pool_id = p_pool;
    PERFORM ps_audit(p_actor, 'pool.delete', 'pool', p_pool::text, '{}'::jsonb);
END $function$
;
