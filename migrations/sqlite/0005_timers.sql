-- Timers: robots due relative to a date field of the item, and schedules (cron in a time zone)
-- that run a robot plugin over the items of a scope. A schedule's runs are jobs of the robot
-- queue with `schedule_id` set (and `robot_id` 0).

ALTER TABLE robots ADD COLUMN relative_field TEXT;
ALTER TABLE robots ADD COLUMN relative_offset_s BIGINT NOT NULL DEFAULT 0;

CREATE TABLE schedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    plugin TEXT NOT NULL,
    version_req TEXT NOT NULL,
    config TEXT NOT NULL,
    type_key TEXT NOT NULL,
    funnel_key TEXT,
    stage_key TEXT,
    active BIGINT NOT NULL,
    next_at BIGINT,
    last_run_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX schedules_due ON schedules (active, next_at);

ALTER TABLE jobs ADD COLUMN schedule_id BIGINT;
