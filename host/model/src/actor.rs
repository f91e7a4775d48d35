//! Who made a change: a person, or a piece of automation named precisely.

use serde::{Deserialize, Serialize};

/// The author of a change, recorded in stage history, timeline entries and events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Actor {
    /// A user acting through the API.
    User {
        /// The user's id.
        id: i64,
    },
    /// A robot bound to a stage.
    Robot {
        /// The robot binding's id.
        id: i64,
        /// The plugin that ran, e.g. `set-field@1.2.0`.
        name: String,
    },
    /// A trigger that moved the item.
    Trigger {
        /// The trigger's id.
        id: i64,
        /// The trigger's kind or name.
        name: String,
    },
    /// A schedule that ran a plugin on its timetable.
    Schedule {
        /// The schedule's id.
        id: i64,
        /// The plugin that ran, e.g. `add-comment@1.2.0`.
        name: String,
    },
    /// A business process instance.
    Process {
        /// The process instance's id.
        id: i64,
        /// Key of the process template it runs.
        name: String,
    },
    /// The host itself (start-up, demo data, migrations).
    System,
}

impl Actor {
    /// The user id, when a person acted.
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Actor::User { id } => Some(*id),
            _ => None,
        }
    }

    /// The actor as the JSON text stored in history, timeline, event, task and process rows.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{\"kind\":\"system\"}".to_string())
    }

    /// Reads a stored actor; unreadable rows read as `system` rather than failing a listing.
    pub fn from_json_str(text: &str) -> Actor {
        serde_json::from_str(text).unwrap_or(Actor::System)
    }
}
