-- Plugin runtime: stored plugins, their key-value state, robots bound to stages, the durable job
-- queue and the dispatcher's position in the event stream.

ALTER TABLE events ADD COLUMN depth BIGINT NOT NULL DEFAULT 0;

CREATE TABLE plugins (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    kind TEXT NOT NULL,
    world TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    limits TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    module BLOB NOT NULL,
    builtin BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE plugin_kv (
    plugin TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (plugin, key)
);

CREATE TABLE robots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type_key TEXT NOT NULL,
    funnel_key TEXT NOT NULL,
    stage_key TEXT NOT NULL,
    plugin TEXT NOT NULL,
    version_req TEXT NOT NULL,
    config TEXT NOT NULL,
    condition TEXT,
    delay_s BIGINT NOT NULL,
    mode TEXT NOT NULL,
    position BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX robots_by_stage ON robots (type_key, funnel_key, stage_key, position);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    robot_id BIGINT NOT NULL,
    item_id BIGINT NOT NULL,
    type_key TEXT NOT NULL,
    funnel_key TEXT NOT NULL,
    stage_key TEXT NOT NULL,
    event_id BIGINT NOT NULL,
    actor TEXT NOT NULL,
    depth BIGINT NOT NULL,
    after_job BIGINT,
    status TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    lease_until BIGINT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX jobs_by_due ON jobs (status, due_at);
CREATE INDEX jobs_by_item ON jobs (item_id, status);

CREATE TABLE cursors (
    name TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
INSERT INTO cursors (name, position) VALUES ('robots', 0);
