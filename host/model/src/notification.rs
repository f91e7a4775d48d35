//! Notifications: short messages in a user's inbox, about an item or a task.

use serde::Serialize;

use super::item::ItemRef;

/// A notification as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Notification {
    /// Notification id; `POST /notifications/{id}/read` marks it read.
    pub id: i64,
    /// The user whose inbox it is in.
    pub user: i64,
    /// What it is about: `task-assigned`, `task-completed`, `task-overdue`, `assignment`,
    /// `approval-outcome`, `plugin`, `process`.
    pub kind: String,
    /// The message, 1 to 2,000 characters.
    pub text: String,
    /// The item it is about.
    pub about: Option<ItemRef>,
    /// Details (task id, assignment id, ...).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// When it was written (RFC 3339).
    pub created_at: String,
    /// When the user read it (RFC 3339); `null` while unread.
    pub read_at: Option<String>,
}

/// Longest notification text, in characters.
pub const MAX_TEXT: usize = 2_000;
