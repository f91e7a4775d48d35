-- Business processes: versioned templates, instances (their threads' positions and variables),
-- their log, and the assignments (approvals, requests for information) they give people.

CREATE TABLE process_templates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    version BIGINT NOT NULL,
    type_key TEXT NOT NULL,
    title TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (key, version)
);

CREATE TABLE process_instances (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    template_key TEXT NOT NULL,
    template_version BIGINT NOT NULL,
    type_key TEXT NOT NULL,
    item_id BIGINT NOT NULL,
    parent_id BIGINT,
    depth BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    variables TEXT NOT NULL,
    runnable BIGINT NOT NULL,
    waits_event BIGINT NOT NULL DEFAULT 0,
    wake_at BIGINT,
    lease_until BIGINT,
    error TEXT,
    started_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT,
    version BIGINT NOT NULL
);
-- The engine's two ways in: instances woken, instances whose timer comes.
CREATE INDEX process_instances_runnable ON process_instances (id) WHERE status = 'running' AND runnable = 1;
CREATE INDEX process_instances_timers ON process_instances (wake_at) WHERE status = 'running' AND wake_at IS NOT NULL;
CREATE INDEX process_instances_by_item ON process_instances (type_key, item_id);
CREATE INDEX process_instances_by_parent ON process_instances (parent_id);
-- Processes waiting for an event of their item look at that item's events.
CREATE INDEX events_by_item ON events (item_id, id);

CREATE TABLE process_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id BIGINT NOT NULL,
    step_id TEXT,
    text TEXT NOT NULL,
    data TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX process_log_by_instance ON process_log (instance_id, id);

CREATE TABLE assignments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id BIGINT NOT NULL,
    step_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    title TEXT NOT NULL,
    form TEXT NOT NULL,
    type_key TEXT NOT NULL,
    item_id BIGINT NOT NULL,
    decision TEXT,
    comment TEXT,
    answers TEXT,
    due_at BIGINT,
    created_at BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE INDEX assignments_by_user ON assignments (user_id, status);
CREATE INDEX assignments_by_step ON assignments (instance_id, step_id);

ALTER TABLE tasks ADD COLUMN process_id BIGINT;
