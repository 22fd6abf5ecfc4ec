-- What each endpoint can obtain (issue 4's repository analysis).
--
-- An agent reports the versions its sync repositories and cache offer, plus the repositories its
-- archive covers. Reports are content-addressed like package states: endpoints reporting the same
-- thing share one set. Sets are not history: one that no live endpoint points at and that is
-- older than an hour is collected by the reaper (ps_availability_collect).
--
-- Locking: a report takes the endpoint's advisory lock first (like every endpoint change), then
-- KEY SHARE on its set, which keeps the collector (FOR UPDATE SKIP LOCKED) away from a set that
-- is about to be referenced, without making reports of a shared set wait for each other.

CREATE TABLE availability_sets (
    availability_id      text PRIMARY KEY CHECK (availability_id ~ '^[0-9a-f]{64}$'),
    archive_repositories text[] NOT NULL,
    offered_count        integer NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE availability_offers (
    availability_id text NOT NULL REFERENCES availability_sets ON DELETE CASCADE,
    name            text NOT NULL,
    version         text NOT NULL,
    source          text NOT NULL CHECK (source IN ('sync_repository', 'cache', 'archive')),
    PRIMARY KEY (availability_id, name, version, source)
);

ALTER TABLE endpoints
    ADD COLUMN availability_id text REFERENCES availability_sets ON DELETE SET NULL,
    ADD COLUMN availability_reported_at timestamptz;
CREATE INDEX endpoints_availability_idx ON endpoints (availability_id);

-- Makes a canonical availability report the live endpoint's current one, storing it once under
-- its content address.
CREATE FUNCTION ps_endpoint_record_availability(p_endpoint uuid, p_id text, p_archive text[],
                                                p_offers jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ps_lock_endpoint(p_endpoint);
    LOOP
        INSERT INTO availability_sets (availability_id, archive_repositories, offered_count)
        VALUES (p_id, p_archive, jsonb_array_length(p_offers))
        ON CONFLICT (availability_id) DO NOTHING;
        IF FOUND THEN
            INSERT INTO availability_offers (availability_id, name, version, source)
            SELECT p_id, x.name, x.version, x.source
            FROM jsonb_to_recordset(p_offers) AS x(name text, version text, source text);
            EXIT;
        END IF;
        -- It exists: pin it. If the collector deleted it in between, store it again.
        PERFORM 1 FROM availability_sets WHERE availability_id = p_id FOR KEY SHARE;
        EXIT WHEN FOUND;
    END LOOP;
    UPDATE endpoints
    SET availability_id = p_id, availability_reported_at = now(), last_seen = now()
    WHERE endpoint_id = p_endpoint AND deleted_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'endpoint % not found', p_endpoint USING ERRCODE = 'PS001';
    END IF;
END $$;

-- Deletes sets older than p_min_age that no live endpoint uses; returns how many.
CREATE FUNCTION ps_availability_collect(p_min_age interval) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    DELETE FROM availability_sets
    WHERE availability_id IN (
        SELECT s.availability_id FROM availability_sets s
        WHERE s.created_at < now() - p_min_age
          AND NOT EXISTS (SELECT 1 FROM endpoints e
                          WHERE e.availability_id = s.availability_id AND e.deleted_at IS NULL)
        -- A set a report has just pinned is skipped; the next round sees it referenced.
        FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END $$;

-- For analysts: what every live endpoint can obtain, one row per offered version.
CREATE VIEW report_endpoint_offers AS
SELECT p.name AS pool_name, e.endpoint_id, e.name AS endpoint_name,
       o.name AS package, o.version, o.source, e.availability_reported_at
FROM endpoints e
JOIN pools p ON p.pool_id = e.pool_id
JOIN availability_offers o ON o.availability_id = e.availability_id
WHERE e.deleted_at IS NULL;
