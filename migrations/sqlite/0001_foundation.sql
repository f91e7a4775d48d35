-- Foundation: people, access, entity types, funnels, items, history, timeline, outbox.
-- Times are microseconds since the Unix epoch; flags are 0/1; JSON is stored as text.

CREATE TABLE generations (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO generations (id, value) VALUES (1, 1);

CREATE TABLE departments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    parent_id BIGINT REFERENCES departments(id),
    head_id BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    department_id BIGINT REFERENCES departments(id),
    active BIGINT NOT NULL DEFAULT 1,
    is_admin BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE roles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE role_permissions (
    role_id BIGINT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    type_key TEXT NOT NULL,
    funnel_key TEXT NOT NULL DEFAULT '',
    access TEXT NOT NULL,
    PRIMARY KEY (role_id, type_key, funnel_key)
);

CREATE TABLE user_roles (
    user_id BIGINT NOT NULL REFERENCES users(id),
    role_id BIGINT NOT NULL REFERENCES roles(id),
    PRIMARY KEY (user_id, role_id)
);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id),
    token_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE entity_types (
    key TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    builtin BIGINT NOT NULL,
    has_stages BIGINT NOT NULL,
    has_funnels BIGINT NOT NULL,
    has_amount BIGINT NOT NULL,
    parents TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE fields (
    type_key TEXT NOT NULL REFERENCES entity_types(key),
    key TEXT NOT NULL,
    title TEXT NOT NULL,
    kind TEXT NOT NULL,
    required BIGINT NOT NULL,
    multiple BIGINT NOT NULL,
    settings TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (type_key, key)
);

CREATE TABLE funnels (
    type_key TEXT NOT NULL REFERENCES entity_types(key),
    key TEXT NOT NULL,
    title TEXT NOT NULL,
    is_default BIGINT NOT NULL,
    position BIGINT NOT NULL,
    stages TEXT NOT NULL,
    PRIMARY KEY (type_key, key)
);

CREATE TABLE items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type_key TEXT NOT NULL REFERENCES entity_types(key),
    funnel_key TEXT,
    stage_key TEXT,
    title TEXT NOT NULL,
    amount_value TEXT,
    amount_currency TEXT,
    responsible_id BIGINT,
    contact_id BIGINT,
    company_id BIGINT,
    fields TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_by BIGINT,
    created_at BIGINT NOT NULL,
    updated_by BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX items_by_type ON items (type_key, id);
CREATE INDEX items_by_stage ON items (type_key, funnel_key, stage_key, id);
CREATE INDEX items_by_responsible ON items (type_key, responsible_id, id);

CREATE TABLE item_parents (
    item_id BIGINT NOT NULL,
    parent_id BIGINT NOT NULL,
    parent_type TEXT NOT NULL,
    PRIMARY KEY (item_id, parent_id)
);
CREATE INDEX item_parents_by_parent ON item_parents (parent_id, item_id);

CREATE TABLE stage_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id BIGINT NOT NULL,
    from_funnel TEXT,
    from_stage TEXT,
    to_funnel TEXT,
    to_stage TEXT,
    actor TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX stage_history_by_item ON stage_history (item_id, id);

CREATE TABLE timeline (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    data TEXT NOT NULL,
    actor TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX timeline_by_item ON timeline (item_id, id);

CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    type_key TEXT,
    item_id BIGINT,
    actor TEXT NOT NULL,
    payload TEXT NOT NULL,
    at BIGINT NOT NULL
);

CREATE TABLE idempotency_keys (
    user_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status BIGINT,
    body TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, key)
);

INSERT INTO entity_types (key, title, builtin, has_stages, has_funnels, has_amount, parents, created_at) VALUES
    ('deal', 'Deal', 1, 1, 1, 1, '[]', 0),
    ('contact', 'Contact', 1, 0, 0, 0, '[]', 0),
    ('company', 'Company', 1, 0, 0, 0, '[]', 0),
    ('invoice', 'Invoice', 1, 1, 0, 1, '["deal"]', 0);

INSERT INTO funnels (type_key, key, title, is_default, position, stages) VALUES
    ('deal', 'default', 'Deals', 1, 0,
     '[{"key":"new","title":"New","semantics":"process"},{"key":"in-progress","title":"In progress","semantics":"process"},{"key":"won","title":"Won","semantics":"success"},{"key":"lost","title":"Lost","semantics":"failure"}]'),
    ('invoice', 'default', 'Invoices', 1, 0,
     '[{"key":"draft","title":"Draft","semantics":"process"},{"key":"sent","title":"Sent","semantics":"process"},{"key":"paid","title":"Paid","semantics":"success"},{"key":"cancelled","title":"Cancelled","semantics":"failure"}]');
