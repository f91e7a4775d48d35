//! The host interfaces as plugin code calls them: the Wasm imports in a `wasm32` build, the
//! in-memory host of [`crate::testing`] in a native build.

macro_rules! host_fn {
    ($(#[$doc:meta])* $module:ident :: $name:ident => $method:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "wasm32")]
            {
                crate::robot::voronka::plugin::$module::$name($($arg),*)
            }
            #[cfg(not(target_arch = "wasm32"))]
            {
                crate::testing::with_host(|host| host.$method($($arg),*))
            }
        }
    };
}

/// Items of every type.
pub mod items {
    pub use crate::robot::voronka::plugin::items::Filter;
    use crate::types::{Error, Item, ItemRef};

    host_fn!(/// Reads an item; `None` when it does not exist.
        items::get => get(type_key: &str, id: i64) -> Result<Option<Item>, Error>);
    host_fn!(/// Finds items of a type with REST-style filters.
        items::find => find(type_key: &str, filters: &[Filter], limit: u32) -> Result<Vec<Item>, Error>);
    host_fn!(/// Creates an item from a JSON object; returns its (provisional) id.
        items::create => create(type_key: &str, input: &str) -> Result<i64, Error>);
    host_fn!(/// Sets custom field values (a JSON object; `null` clears).
        items::update_fields => update_fields(type_key: &str, id: i64, fields: &str) -> Result<(), Error>);
    host_fn!(/// Moves an item to a stage, of another funnel when given.
        items::move_to_stage => move_to_stage(type_key: &str, id: i64, funnel: Option<&str>, stage: &str) -> Result<(), Error>);
    host_fn!(/// Moves an item back to the funnel it was in before its last change of funnel, to
        /// `stage` or, when `None`, to the stage it left there; an error when it never changed funnel.
        items::return_to_funnel => return_to_funnel(type_key: &str, id: i64, stage: Option<&str>) -> Result<(), Error>);
    host_fn!(/// Adds a parent link.
        items::link_parent => link_parent(type_key: &str, id: i64, parent: &ItemRef) -> Result<(), Error>);
}

/// Timelines.
pub mod timeline {
    use crate::types::Error;

    host_fn!(/// Adds a system entry.
        timeline::add_entry => timeline_add_entry(type_key: &str, id: i64, text: &str) -> Result<(), Error>);
}

/// The plugin's key-value state.
pub mod kv {
    use crate::types::Error;

    host_fn!(/// Reads a value.
        kv::get => kv_get(key: &str) -> Result<Option<String>, Error>);
    host_fn!(/// Stores a value.
        kv::set => kv_set(key: &str, value: &str) -> Result<(), Error>);
    host_fn!(/// Deletes a value.
        kv::delete => kv_delete(key: &str) -> Result<(), Error>);
}

/// The host's log.
pub mod log {
    pub use crate::robot::voronka::plugin::log::Level;

    host_fn!(/// Writes a line.
        log::write => log_write(level: Level, message: &str) -> ());
}

/// The host's clock.
pub mod clock {
    host_fn!(/// Microseconds since the Unix epoch.
        clock::now => clock_now() -> i64);
}

/// Notifications.
pub mod notify {
    use crate::types::{Error, ItemRef};

    host_fn!(/// Notifies a user, optionally about an item.
        notify::send => notify_send(user: i64, text: &str, about: Option<&ItemRef>) -> Result<(), Error>);
}

/// Tasks.
pub mod tasks {
    use crate::types::Error;

    host_fn!(/// Creates a task from a JSON object shaped like `POST /tasks`; returns its (provisional) id.
        tasks::create => tasks_create(input: &str) -> Result<i64, Error>);
}

/// Business processes.
pub mod processes {
    use crate::types::{Error, ItemRef};

    host_fn!(/// Starts a process on an item with parameters (a JSON object); returns its (provisional) id.
        processes::start => processes_start(template: &str, item: &ItemRef, params: &str) -> Result<i64, Error>);
}
