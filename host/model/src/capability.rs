//! Capabilities: what a plugin may ask of the host, granted by the administrator at install.

use serde::{Deserialize, Serialize};

/// A group of host calls a plugin may make, granted by the administrator at install; named
/// as in the manifest (`items:read`, `kv`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Capability {
    /// Read items (`items.get`, `items.find`).
    #[serde(rename = "items:read")]
    ItemsRead,
    /// Change items (`items.create`, `update-fields`, `move-to-stage`, `link-parent`,
    /// `timeline.add-entry`).
    #[serde(rename = "items:write")]
    ItemsWrite,
    /// Keep state (`kv.*`).
    #[serde(rename = "kv")]
    Kv,
    /// Notify users (`notify.send`).
    #[serde(rename = "notify")]
    Notify,
    /// Create tasks (`tasks.create`).
    #[serde(rename = "tasks:write")]
    TasksWrite,
    /// Start business processes (`processes.start`).
    #[serde(rename = "processes:start")]
    ProcessesStart,
}

impl Capability {
    /// The name used in manifests and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::ItemsRead => "items:read",
            Capability::ItemsWrite => "items:write",
            Capability::Kv => "kv",
            Capability::Notify => "notify",
            Capability::TasksWrite => "tasks:write",
            Capability::ProcessesStart => "processes:start",
        }
    }
}
