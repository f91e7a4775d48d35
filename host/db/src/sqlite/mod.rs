//! SQLite's side of the engine: one write connection on a thread of its own, shared by group
//! commit; checkpoints on another thread; read connections used on the caller's thread; the
//! lock file that keeps a second host off the database; and the statement runner they share.

pub(crate) mod checkpointer;
pub(crate) mod group_commit;
pub(crate) mod host_lock;
pub(crate) mod read_connections;
pub(crate) mod rows;
pub(crate) mod write_thread;
