-- Admin tokens, recorded so that each can be revoked on its own.
--
-- A row is an admin token the host handed out: its id (the JWT `jti`), the name it was issued
-- to (the JWT `sub`), its lifetime and who issued it. The token itself is never stored.
--
-- Names: a name belongs to at most one unrevoked token, expired ones included (revoke an
-- expired token to reuse its name); revoked rows stay as history, so a name can appear on
-- several revoked rows.
--
-- Revocation is final and reaches every replica: setting `revoked_at` notifies
-- `pacsync_admin_tokens` at commit with the token id as payload, whichever way the row is
-- revoked (the procedure below, or an UPDATE in psql); each replica keeps the revoked ids in
-- memory (host/src/auth/revocation.rs). A revoked row never changes again and no row is ever
-- deleted: the host honours any validly signed admin token whose id is not revoked, so a
-- deleted revoked row would make its token valid again.

CREATE TABLE admin_tokens (
    token_id   uuid PRIMARY KEY,
    name       text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    created_by text NOT NULL,
    revoked_at timestamptz,
    revoked_by text,
    CONSTRAINT admin_tokens_lifetime
        CHECK (expires_at > created_at AND expires_at <= created_at + interval '1 year'),
    CONSTRAINT admin_tokens_revoked_by CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
CREATE UNIQUE INDEX admin_tokens_live_name ON admin_tokens (name) WHERE revoked_at IS NULL;
-- What every replica reads at start and after losing its LISTEN connection.
CREATE INDEX admin_tokens_revoked_until ON admin_tokens (expires_at) WHERE revoked_at IS NOT NULL;

CREATE FUNCTION ps_admin_token_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
           AND (to_jsonb(NEW) - 'revoked_at' - 'revoked_by') = (to_jsonb(OLD) - 'revoked_at' - 'revoked_by') THEN
            PERFORM pg_notify('pacsync_admin_tokens', NEW.token_id::text);
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'admin tokens are only ever revoked, once' USING ERRCODE = 'PS090';
END $$;
CREATE TRIGGER admin_tokens_revoke_only BEFORE UPDATE OR DELETE ON admin_tokens
    FOR EACH ROW EXECUTE FUNCTION ps_admin_token_guard();

-- Records a token about to be handed out. A name held by an unrevoked token fails on
-- admin_tokens_live_name.
CREATE FUNCTION ps_admin_token_issue(p_token uuid, p_name text, p_created timestamptz,
                                     p_expires timestamptz, p_actor text)
RETURNS admin_tokens LANGUAGE plpgsql AS $$
DECLARE
    t admin_tokens;
BEGIN
    INSERT INTO admin_tokens (token_id, name, created_at, expires_at, created_by)
    VALUES (p_token, p_name, p_created, p_expires, p_actor)
    RETURNING * INTO t;
    PERFORM ps_audit(p_actor, 'admin_token.issue', 'admin_token', p_token::text,
        jsonb_build_object('name', p_name, 'expires_at', p_expires));
    RETURN t;
END $$;

-- Revokes the unrevoked token named p_name; returns its id, or NULL when there is none.
CREATE FUNCTION ps_admin_token_revoke(p_name text, p_actor text) RETURNS uuid LANGUAGE plpgsql AS $$
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
END $$;
