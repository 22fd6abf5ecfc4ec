-- pacsync schema: pools, endpoints, content-addressed package states, operations, event log, audit.
--
-- The database is the coordination point between host replicas: every operation transition goes
-- through the stored procedures in V2, which take advisory locks and append to operation_events.

CREATE TABLE package_states (
    -- sha256 (hex) of the canonical, name-sorted package list; see pacsync_core::PackageState.
    state_id      text PRIMARY KEY CHECK (state_id ~ '^[0-9a-f]{64}$'),
    package_count integer NOT NULL CHECK (package_count >= 0),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE state_packages (
    state_id     text NOT NULL REFERENCES package_states ON DELETE CASCADE,
    name         text NOT NULL,
    version      text NOT NULL,
    repository   text,
    architecture text,
    reason       text NOT NULL CHECK (reason IN ('explicit', 'dependency')),
    PRIMARY KEY (state_id, name)
);

CREATE TABLE pools (
    pool_id           uuid PRIMARY KEY,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    description       text NOT NULL DEFAULT '',
    target_state_id   text REFERENCES package_states,
    target_generation bigint NOT NULL DEFAULT 0,
    policy_plugin     text NOT NULL DEFAULT 'mirror',
    policy_config     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- Pools are soft-deleted so that operation history keeps its pool.
    deleted_at        timestamptz
);
CREATE UNIQUE INDEX pools_live_name ON pools (name) WHERE deleted_at IS NULL;

-- Every target a pool has had, in generation order.
CREATE TABLE pool_targets (
    pool_id      uuid NOT NULL REFERENCES pools,
    generation   bigint NOT NULL,
    state_id     text NOT NULL REFERENCES package_states,
    operation_id uuid,
    endpoint_id  uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pool_id, generation)
);

CREATE TABLE endpoints (
    endpoint_id        uuid PRIMARY KEY,
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    hostname           text NOT NULL CHECK (length(hostname) BETWEEN 1 AND 255),
    pool_id            uuid NOT NULL REFERENCES pools,
    current_state_id   text REFERENCES package_states,
    current_history_id bigint,
    architecture       text,
    pacman_version     text,
    sync_status        text NOT NULL DEFAULT 'unknown'
                       CHECK (sync_status IN ('in_sync', 'ahead', 'behind', 'diverged', 'unknown')),
    last_seen          timestamptz,
    -- Bumped to revoke every token issued before; tokens carry the generation they were issued at.
    token_generation   integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    -- Endpoints are soft-deleted so that operation history keeps its endpoint.
    deleted_at         timestamptz
);
CREATE UNIQUE INDEX endpoints_live_name ON endpoints (name) WHERE deleted_at IS NULL;
CREATE INDEX endpoints_pool ON endpoints (pool_id) WHERE deleted_at IS NULL;

-- Every state an endpoint has been in. revert_to makes the history an undo stack: it points at
-- the row a revert from this row returns to.
CREATE TABLE endpoint_states (
    history_id     bigserial PRIMARY KEY,
    endpoint_id    uuid NOT NULL REFERENCES endpoints,
    state_id       text NOT NULL REFERENCES package_states,
    revert_to      bigint REFERENCES endpoint_states,
    architecture   text,
    pacman_version text,
    -- The operation that was in progress when the state was recorded, if any.
    operation_id   uuid,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX endpoint_states_endpoint ON endpoint_states (endpoint_id, history_id DESC);
ALTER TABLE endpoints
    ADD CONSTRAINT endpoints_current_history FOREIGN KEY (current_history_id) REFERENCES endpoint_states;

CREATE TABLE enrollment_tokens (
    -- Only the sha256 of the token is stored; the token itself is shown once.
    token_hash  text PRIMARY KEY,
    pool_id     uuid NOT NULL REFERENCES pools,
    expires_at  timestamptz NOT NULL,
    max_uses    integer CHECK (max_uses IS NULL OR max_uses > 0),
    uses        integer NOT NULL DEFAULT 0,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE operations (
    operation_id        uuid PRIMARY KEY,
    endpoint_id         uuid NOT NULL REFERENCES endpoints,
    pool_id             uuid NOT NULL REFERENCES pools,
    operation_type      text NOT NULL CHECK (operation_type IN ('sync', 'set_latest', 'revert')),
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'cancelled')),
    details             jsonb NOT NULL DEFAULT '{}'::jsonb,
    target_state_id     text REFERENCES package_states,
    target_generation   bigint,
    revert_history_id   bigint REFERENCES endpoint_states,
    -- The endpoint's history entry the plan was computed from, and the one it started from.
    planned_history_id  bigint REFERENCES endpoint_states,
    start_history_id    bigint REFERENCES endpoint_states,
    result_state_id     text REFERENCES package_states,
    plan                jsonb,
    policy              jsonb,
    progress_percentage smallint NOT NULL DEFAULT 0 CHECK (progress_percentage BETWEEN 0 AND 100),
    progress_stage      text,
    progress_action     text,
    cancel_requested    boolean NOT NULL DEFAULT false,
    lease_expires_at    timestamptz,
    error_code          text,
    error_message       text,
    created_by          text NOT NULL,
    idempotency_key     text,
    request_fingerprint text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    completed_at        timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((status IN ('completed', 'failed', 'cancelled')) = (completed_at IS NOT NULL)),
    CHECK ((status = 'in_progress') = (lease_expires_at IS NOT NULL)),
    CHECK (status <> 'failed' OR error_code IS NOT NULL)
);
-- At most one active operation per endpoint, whatever any host replica does.
CREATE UNIQUE INDEX operations_one_active_per_endpoint
    ON operations (endpoint_id) WHERE status IN ('pending', 'in_progress');
CREATE UNIQUE INDEX operations_idempotency
    ON operations (created_by, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX operations_endpoint_recent ON operations (endpoint_id, created_at DESC, operation_id DESC);
CREATE INDEX operations_pool_recent ON operations (pool_id, created_at DESC, operation_id DESC);
CREATE INDEX operations_leases ON operations (lease_expires_at) WHERE status = 'in_progress';

-- Append-only log of everything subscribers see; the WebSocket hub reads it in id order.
CREATE TABLE operation_events (
    event_id     bigserial PRIMARY KEY,
    event_type   text NOT NULL,
    operation_id uuid REFERENCES operations,
    endpoint_id  uuid,
    pool_id      uuid,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX operation_events_endpoint ON operation_events (endpoint_id, event_id);
CREATE INDEX operation_events_pool ON operation_events (pool_id, event_id);

CREATE TABLE audit_log (
    audit_id     bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    action       text NOT NULL,
    subject_type text NOT NULL,
    subject_id   text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_subject ON audit_log (subject_type, subject_id, audit_id);

-- The event log and the audit log are append-only, even for a careless UPDATE in psql.
CREATE FUNCTION ps_refuse_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'PS090';
END $$;
CREATE TRIGGER operation_events_append_only BEFORE UPDATE OR DELETE ON operation_events
    FOR EACH ROW EXECUTE FUNCTION ps_refuse_mutation();
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION ps_refuse_mutation();
