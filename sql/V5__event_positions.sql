-- Events get a position in commit order, so that a reader taking "everything after position P"
-- never skips an event that commits late. event_id (bigserial) is allocated at insert time and
-- can commit out of order; position is allocated by a deferred constraint trigger at COMMIT,
-- under a global advisory lock, so positions become visible in increasing order. The lock is
-- held only between the trigger and the end of the commit, after every other lock the
-- transaction needs, so it cannot deadlock.

CREATE SEQUENCE operation_events_position;
ALTER TABLE operation_events ADD COLUMN position bigint UNIQUE;

-- The log stays append-only; the only update allowed is assigning a missing position once.
CREATE OR REPLACE FUNCTION ps_refuse_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Nested IFs: PL/pgSQL does not short-circuit, and audit_log rows have no position.
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'operation_events' THEN
        IF (to_jsonb(OLD) ->> 'position') IS NULL AND (to_jsonb(NEW) ->> 'position') IS NOT NULL
           AND (to_jsonb(NEW) - 'position') = (to_jsonb(OLD) - 'position') THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'PS090';
END $$;

CREATE FUNCTION ps_position_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_position bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(4, 0);
    v_position := nextval('operation_events_position');
    UPDATE operation_events SET position = v_position WHERE event_id = NEW.event_id;
    PERFORM pg_notify('pacsync_events', v_position::text);
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER operation_events_position AFTER INSERT ON operation_events
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ps_position_event();

-- Notification now happens at commit, with the position; ps_emit only appends.
CREATE OR REPLACE FUNCTION ps_emit(p_type text, p_operation uuid, p_endpoint uuid, p_pool uuid, p_payload jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO operation_events (event_type, operation_id, endpoint_id, pool_id, payload)
    VALUES (p_type, p_operation, p_endpoint, p_pool, p_payload)
    RETURNING event_id INTO v_id;
    RETURN v_id;
END $$;

CREATE INDEX operation_events_position_endpoint ON operation_events (endpoint_id, position);
CREATE INDEX operation_events_position_pool ON operation_events (pool_id, position);
