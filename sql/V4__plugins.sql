-- Uploaded policy components, content-addressed by sha256, and the pool's reference to one.
CREATE TABLE plugins (
    plugin_id     uuid PRIMARY KEY,
    sha256        text NOT NULL UNIQUE CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    name          text NOT NULL,
    version       text NOT NULL,
    summary       text NOT NULL,
    config_schema jsonb NOT NULL,
    component     bytea NOT NULL,
    size_bytes    integer NOT NULL,
    uploaded_by   text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- NULL for built-in policies (named by policy_plugin); a plugin in use cannot be deleted.
ALTER TABLE pools ADD COLUMN policy_plugin_id uuid REFERENCES plugins ON DELETE RESTRICT;
