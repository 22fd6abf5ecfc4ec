-- What each endpoint can obtain (issue 4's repository analysis).
--
-- An agent reports the versions its sync repositories and cache offer, plus the repositories its
-- archive covers. Reports are content-addressed like package states: endpoints reporting the same
-- thing share one set. Sets are not history: one that no live endpoint has pointed at for an hour
-- is collected by the reaper (ps_availability_collect).

CREATE TABLE availability_sets (
    availability_id      text PRIMARY KEY CHECK (availability_id ~ '^[0-9a-f]{64}$'),
    archive_repositories text[] NOT NULL,
    offered_count        integer NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    -- Refreshed on every report naming the set; collection waits an hour after the last one,
    -- so a report that is still committing never loses its set.
    last_reported_at     timestamptz NOT NULL DEFAULT now()
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

-- Stores a canonical availability report once under its content address, or refreshes it.
CREATE FUNCTION ps_store_availability(p_id text, p_archive text[], p_offers jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO availability_sets (availability_id, archive_repositories, offered_count)
    VALUES (p_id, p_archive, jsonb_array_length(p_offers))
    ON CONFLICT (availability_id) DO NOTHING;
    IF FOUND THEN
        INSERT INTO availability_offers (availability_id, name, version, source)
        SELECT p_id, x.name, x.version, x.source
        FROM jsonb_to_recordset(p_offers) AS x(name text, version text, source text);
    ELSE
        UPDATE availability_sets SET last_reported_at = now() WHERE availability_id = p_id;
    END IF;
END $$;

-- Points a live endpoint at its latest availability report. Takes the endpoint lock like every
-- other change to an endpoint.
CREATE FUNCTION ps_endpoint_record_availability(p_endpoint uuid, p_id text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ps_lock_endpoint(p_endpoint);
    UPDATE endpoints
    SET availability_id = p_id, availability_reported_at = now(), last_seen = now()
    WHERE endpoint_id = p_endpoint AND deleted_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'endpoint % not found', p_endpoint USING ERRCODE = 'PS001';
    END IF;
END $$;

-- Deletes sets no live endpoint uses and nobody reported for p_min_age; returns how many.
CREATE FUNCTION ps_availability_collect(p_min_age interval) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    DELETE FROM availability_sets s
    WHERE s.last_reported_at < now() - p_min_age
      AND NOT EXISTS (SELECT 1 FROM endpoints e
                      WHERE e.availability_id = s.availability_id AND e.deleted_at IS NULL);
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
