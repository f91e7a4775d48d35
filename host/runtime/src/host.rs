//! The host API that plugins call: implemented once here, bound twice (WIT for Wasm in
//! `wasm::bindings`, plain functions for Rhai in `rhai::functions`).
//!
//! Reads go to the domain at once, through [`Domain`]. Writes are buffered ([`Write`]) and
//! applied by the caller of the plugin in one transaction together with what the call
//! concluded, so a plugin that fails leaves nothing half-written. Items a plugin creates get
//! provisional negative ids, usable in its later calls.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Map, Value};

use voronka_model::capability::Capability;
use voronka_model::item::{Item, ItemRef, MoveRequest, NewItem};
use voronka_model::task::TaskRequest;
use voronka_model::time::now_micros;

/// A future a [`Domain`] answers with.
pub type DomainFuture<'a, T> = Pin<Box<dyn Future<Output = HostResult<T>> + Send + 'a>>;

/// What the runtime asks of the domain while a plugin runs: the reads of the host API, on
/// behalf of the caller the plugin acts for (the core implements it over its use cases, with
/// their access checks).
pub trait Domain: Send + Sync {
    /// An item, `None` when it does not exist.
    fn get_item<'a>(&'a self, type_key: &'a str, id: i64) -> DomainFuture<'a, Option<Item>>;
    /// Items of a type matching list filters as the REST API takes them (`limit` among them).
    fn find_items<'a>(&'a self, type_key: &'a str, filters: Vec<(String, String)>) -> DomainFuture<'a, Vec<Item>>;
    /// A value the plugin keeps under `key`.
    fn kv_get<'a>(&'a self, plugin: &'a str, key: &'a str) -> DomainFuture<'a, Option<String>>;
}

/// Every host function, as `interface.function` in WIT naming. Both bindings must provide
/// exactly these (a test compares them with the WIT file and the Rhai engine).
pub const HOST_FUNCTIONS: [&str; 16] = [
    "items.get",
    "items.find",
    "items.create",
    "items.update-fields",
    "items.move-to-stage",
    "items.return-to-funnel",
    "items.link-parent",
    "timeline.add-entry",
    "tasks.create",
    "processes.start",
    "kv.get",
    "kv.set",
    "kv.delete",
    "log.write",
    "clock.now",
    "notify.send",
];

/// An error returned to the plugin: a machine code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    /// `denied`, `invalid`, `not-found`, `unavailable`, `internal`.
    pub code: String,
    /// What went wrong, in words.
    pub message: String,
}

impl HostError {
    /// An error of `code` (see [`HostError::code`]).
    pub fn new(code: &str, message: impl Into<String>) -> HostError {
        HostError { code: code.to_string(), message: message.into() }
    }

    /// The error of a call the plugin was not granted.
    pub fn denied(capability: Capability) -> HostError {
        HostError::new("denied", format!("the plugin lacks the `{}` capability", capability.as_str()))
    }
}

/// Result of host calls.
pub type HostResult<T> = Result<T, HostError>;

/// Log levels of `log.write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Detail for debugging: written at the host log's `debug` level.
    Debug,
    /// Written at the host log's `info` level.
    Info,
    /// Written at the host log's `warn` level.
    Warn,
    /// Written at the host log's `error` level.
    Error,
}

/// A buffered change, applied after the plugin returns successfully.
#[derive(Debug, Clone)]
pub enum Write {
    /// `items.create`.
    Create {
        /// Key of the type to create an item of.
        type_key: String,
        /// The item, as `POST /items/{type}` takes it; parents may name provisional ids.
        input: NewItem,
        /// Provisional id handed to the plugin.
        provisional: i64,
    },
    /// `items.update-fields`.
    UpdateFields {
        /// The item's type key.
        type_key: String,
        /// The item's id, or a provisional id from an `items.create` of the same call.
        id: i64,
        /// Field values by key; `null` clears a field.
        fields: Map<String, Value>,
    },
    /// `items.move-to-stage`.
    Move {
        /// The item's type key.
        type_key: String,
        /// The item's id, or a provisional id from an `items.create` of the same call.
        id: i64,
        /// The stage to move to, and the funnel (the current one when absent).
        request: MoveRequest,
    },
    /// `items.return-to-funnel`.
    Return {
        /// The item's type key.
        type_key: String,
        /// The item's id (an item created by the same call has no funnel to return to).
        id: i64,
        /// The stage of the funnel it returns to; the stage it left there when absent.
        stage: Option<String>,
    },
    /// `items.link-parent`.
    LinkParent {
        /// The child item's type key.
        type_key: String,
        /// The child item's id, or a provisional id from an `items.create` of the same call.
        id: i64,
        /// The parent to add (nothing changes if it is linked already); its id may be provisional.
        parent: ItemRef,
    },
    /// `timeline.add-entry`.
    TimelineEntry {
        /// The item's type key.
        type_key: String,
        /// The item's id, or a provisional id from an `items.create` of the same call.
        id: i64,
        /// The entry's text, written as a `system` entry.
        text: String,
    },
    /// `tasks.create`.
    CreateTask {
        /// The task, as `POST /tasks` takes it (links may name items created by the same call).
        input: Box<TaskRequest>,
    },
    /// `processes.start`.
    StartProcess {
        /// Key of the process template to start, in its latest version.
        template: String,
        /// The item (may be one created by the same call).
        item: ItemRef,
        /// The process's initial variables.
        params: Map<String, Value>,
    },
    /// `notify.send`.
    Notify {
        /// Id of the user to notify; nothing is written for an inactive user.
        user: i64,
        /// The message, trimmed, 1 to 2,000 characters.
        text: String,
        /// The item it is about.
        about: Option<ItemRef>,
    },
    /// `kv.set` / `kv.delete` (`None`).
    Kv {
        /// Key in the plugin's own key-value store (`kv.set` takes 1 to 255 bytes).
        key: String,
        /// The value to store (at most 64 KiB), or `None` to delete the key.
        value: Option<String>,
    },
}

/// Longest value a plugin can store under one kv key.
const MAX_KV_VALUE: usize = 64 * 1024;
/// Most buffered writes of one call.
const MAX_WRITES: usize = 1_000;

/// One plugin call's access to the host.
pub struct HostCalls {
    domain: Arc<dyn Domain>,
    plugin: String,
    capabilities: Vec<Capability>,
    writes: Vec<Write>,
    kv_overlay: HashMap<String, Option<String>>,
    next_provisional: i64,
    denied: Option<Capability>,
    read_stored: bool,
}

impl HostCalls {
    /// Host access for one call of `plugin` with its granted capabilities, reading through
    /// `domain`.
    pub fn new(domain: Arc<dyn Domain>, plugin: &str, capabilities: Vec<Capability>) -> HostCalls {
        HostCalls {
            domain,
            plugin: plugin.to_string(),
            capabilities,
            writes: Vec::new(),
            kv_overlay: HashMap::new(),
            next_provisional: -1,
            denied: None,
            read_stored: false,
        }
    }

    /// The buffered writes, in call order.
    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    /// Whether the plugin read stored state (items, its key-value store) through the host:
    /// what it read is the committed state, without writes not committed yet.
    pub fn read_stored(&self) -> bool {
        self.read_stored
    }

    /// The first capability the plugin was refused, if any.
    pub fn denied(&self) -> Option<Capability> {
        self.denied
    }

    fn check(&mut self, capability: Capability) -> HostResult<()> {
        if self.capabilities.contains(&capability) {
            Ok(())
        } else {
            self.denied.get_or_insert(capability);
            Err(HostError::denied(capability))
        }
    }

    fn buffer(&mut self, write: Write) -> HostResult<()> {
        if self.writes.len() >= MAX_WRITES {
            return Err(HostError::new("invalid", format!("at most {MAX_WRITES} writes per call")));
        }
        self.writes.push(write);
        Ok(())
    }

    /// `items.get`.
    pub async fn items_get(&mut self, type_key: &str, id: i64) -> HostResult<Option<Item>> {
        self.check(Capability::ItemsRead)?;
        self.read_stored = true;
        self.domain.get_item(type_key, id).await
    }

    /// `items.find`.
    pub async fn items_find(
        &mut self,
        type_key: &str,
        filters: Vec<(String, String)>,
        limit: u32,
    ) -> HostResult<Vec<Item>> {
        self.check(Capability::ItemsRead)?;
        self.read_stored = true;
        let mut params: Vec<(String, String)> =
            filters.into_iter().filter(|(k, _)| k != "limit" && k != "cursor").collect();
        params.push(("limit".into(), limit.clamp(1, 500).to_string()));
        self.domain.find_items(type_key, params).await
    }

    /// `items.create`: `input` is a JSON object shaped like `POST /items/{type}`.
    pub fn items_create(&mut self, type_key: &str, input: &str) -> HostResult<i64> {
        self.check(Capability::ItemsWrite)?;
        let input: NewItem =
            serde_json::from_str(input).map_err(|e| HostError::new("invalid", format!("item input: {e}")))?;
        let provisional = self.next_provisional;
        self.next_provisional -= 1;
        self.buffer(Write::Create { type_key: type_key.to_string(), input, provisional })?;
        Ok(provisional)
    }

    /// `items.update-fields`: `fields` is a JSON object; `null` clears a field.
    pub fn items_update_fields(&mut self, type_key: &str, id: i64, fields: &str) -> HostResult<()> {
        self.check(Capability::ItemsWrite)?;
        let fields: Map<String, Value> = serde_json::from_str(fields)
            .map_err(|e| HostError::new("invalid", format!("fields must be a JSON object: {e}")))?;
        self.buffer(Write::UpdateFields { type_key: type_key.to_string(), id, fields })
    }

    /// `items.move-to-stage`.
    pub fn items_move_to_stage(
        &mut self,
        type_key: &str,
        id: i64,
        funnel: Option<String>,
        stage: &str,
    ) -> HostResult<()> {
        self.check(Capability::ItemsWrite)?;
        let request = MoveRequest { stage: stage.to_string(), funnel };
        self.buffer(Write::Move { type_key: type_key.to_string(), id, request })
    }

    /// `items.return-to-funnel`.
    pub fn items_return_to_funnel(&mut self, type_key: &str, id: i64, stage: Option<String>) -> HostResult<()> {
        self.check(Capability::ItemsWrite)?;
        self.buffer(Write::Return { type_key: type_key.to_string(), id, stage })
    }

    /// `items.link-parent`.
    pub fn items_link_parent(&mut self, type_key: &str, id: i64, parent: ItemRef) -> HostResult<()> {
        self.check(Capability::ItemsWrite)?;
        self.buffer(Write::LinkParent { type_key: type_key.to_string(), id, parent })
    }

    /// `timeline.add-entry`.
    pub fn timeline_add_entry(&mut self, type_key: &str, id: i64, text: &str) -> HostResult<()> {
        self.check(Capability::ItemsWrite)?;
        self.buffer(Write::TimelineEntry { type_key: type_key.to_string(), id, text: text.to_string() })
    }

    /// `kv.get`: sees this call's own `kv.set`s.
    pub async fn kv_get(&mut self, key: &str) -> HostResult<Option<String>> {
        self.check(Capability::Kv)?;
        self.read_stored = true;
        if let Some(value) = self.kv_overlay.get(key) {
            return Ok(value.clone());
        }
        self.domain.kv_get(&self.plugin, key).await
    }

    /// `kv.set`.
    pub fn kv_set(&mut self, key: &str, value: &str) -> HostResult<()> {
        self.check(Capability::Kv)?;
        if key.is_empty() || key.len() > 255 || value.len() > MAX_KV_VALUE {
            return Err(HostError::new(
                "invalid",
                format!("keys are 1 to 255 bytes, values at most {MAX_KV_VALUE} bytes"),
            ));
        }
        self.kv_overlay.insert(key.to_string(), Some(value.to_string()));
        self.buffer(Write::Kv { key: key.to_string(), value: Some(value.to_string()) })
    }

    /// `kv.delete`.
    pub fn kv_delete(&mut self, key: &str) -> HostResult<()> {
        self.check(Capability::Kv)?;
        self.kv_overlay.insert(key.to_string(), None);
        self.buffer(Write::Kv { key: key.to_string(), value: None })
    }

    /// `log.write`: into the host's log, tagged with the plugin (messages cut at 4 KiB).
    pub fn log_write(&mut self, level: LogLevel, message: &str) {
        let message: String = message.chars().take(4096).collect();
        let plugin = self.plugin.as_str();
        match level {
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Info => tracing::info!(plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }

    /// `clock.now`: microseconds since the Unix epoch.
    pub fn clock_now(&mut self) -> i64 {
        now_micros()
    }

    /// `notify.send`: a notification to a user's inbox, written with the call's other changes.
    pub fn notify_send(&mut self, user: i64, text: &str, about: Option<ItemRef>) -> HostResult<()> {
        self.check(Capability::Notify)?;
        let text = text.trim();
        if text.is_empty() || text.chars().count() > voronka_model::notification::MAX_TEXT {
            let max = voronka_model::notification::MAX_TEXT;
            return Err(HostError::new("invalid", format!("a notification of 1 to {max} characters is required")));
        }
        self.buffer(Write::Notify { user, text: text.to_string(), about })
    }

    /// `processes.start`: a process on an item, started with the call's other changes; returns
    /// a provisional id.
    pub fn processes_start(&mut self, template: &str, item: ItemRef, params: &str) -> HostResult<i64> {
        self.check(Capability::ProcessesStart)?;
        let params = match serde_json::from_str::<Value>(params) {
            Ok(Value::Object(map)) => map,
            Ok(Value::Null) => Map::new(),
            _ => return Err(HostError::new("invalid", "the parameters must be a JSON object")),
        };
        let provisional = self.next_provisional;
        self.next_provisional -= 1;
        self.buffer(Write::StartProcess { template: template.to_string(), item, params })?;
        Ok(provisional)
    }

    /// `tasks.create`: a task, created with the call's other changes; returns a provisional id.
    pub fn tasks_create(&mut self, input: &str) -> HostResult<i64> {
        self.check(Capability::TasksWrite)?;
        let input: TaskRequest = serde_json::from_str(input)
            .map_err(|e| HostError::new("invalid", format!("the task is not valid: {e}")))?;
        let provisional = self.next_provisional;
        self.next_provisional -= 1;
        self.buffer(Write::CreateTask { input: Box::new(input) })?;
        Ok(provisional)
    }
}
