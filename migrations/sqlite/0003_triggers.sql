-- Triggers: rules on a funnel's stage that move an item there when an event matches, and the
-- trigger dispatcher's position in the event stream (it starts at the end of the stream, so
-- events written before triggers existed fire none); each trigger reacts only to events after
-- `since_event`, the last event when it was created.

CREATE TABLE triggers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type_key TEXT NOT NULL,
    funnel_key TEXT NOT NULL,
    stage_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    allow_backwards BIGINT NOT NULL,
    condition TEXT,
    secret TEXT,
    plugin TEXT,
    since_event BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX triggers_by_funnel ON triggers (type_key, funnel_key);
CREATE UNIQUE INDEX triggers_by_secret ON triggers (secret);

INSERT INTO cursors (name, position) SELECT 'triggers', COALESCE(MAX(id), 0) FROM events;
