-- Robot runs are queued by the transaction that moves an item; the dispatcher's position is gone.
DELETE FROM cursors WHERE name = 'robots';
