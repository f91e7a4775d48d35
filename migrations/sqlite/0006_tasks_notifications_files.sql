-- Tasks (with auditors and links to several items), per-user notifications, and the file
-- store's metadata (the bytes live under the data dir, named by their SHA-256).

CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    responsible_id BIGINT NOT NULL,
    creator TEXT NOT NULL,
    creator_id BIGINT,
    status TEXT NOT NULL,
    deadline BIGINT,
    require_result BIGINT NOT NULL,
    result TEXT,
    checklist TEXT NOT NULL,
    tags TEXT NOT NULL,
    overdue_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    completed_at BIGINT,
    version BIGINT NOT NULL
);
CREATE INDEX tasks_by_responsible ON tasks (responsible_id, status);
CREATE INDEX tasks_by_deadline ON tasks (overdue_at, deadline);

CREATE TABLE task_auditors (
    task_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    PRIMARY KEY (task_id, user_id)
);
CREATE INDEX task_auditors_by_user ON task_auditors (user_id);

CREATE TABLE task_links (
    task_id BIGINT NOT NULL,
    type_key TEXT NOT NULL,
    item_id BIGINT NOT NULL,
    PRIMARY KEY (task_id, type_key, item_id)
);
CREATE INDEX task_links_by_item ON task_links (type_key, item_id);

CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    type_key TEXT,
    item_id BIGINT,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    read_at BIGINT
);
CREATE INDEX notifications_by_user ON notifications (user_id, id);
CREATE INDEX notifications_unread ON notifications (user_id, read_at);

CREATE TABLE files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    type_key TEXT,
    item_id BIGINT,
    created_by BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX files_by_item ON files (type_key, item_id);
