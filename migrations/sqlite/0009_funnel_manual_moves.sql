-- Who may move a funnel's items by hand: allowed (anyone with write access), admins, none.
ALTER TABLE funnels ADD COLUMN manual_moves TEXT NOT NULL DEFAULT 'allowed';
