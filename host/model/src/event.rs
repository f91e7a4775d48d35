//! Domain events, written to the outbox in the same transaction as the change they describe.

use serde::{Deserialize, Serialize};

/// Kinds of domain event. Later subsystems (tasks, invoices, bookings, e-mail) add kinds here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventKind {
    /// An item was created.
    #[serde(rename = "item.created")]
    ItemCreated,
    /// Title, amount, links or custom fields changed (payload lists old and new values).
    #[serde(rename = "item.updated")]
    ItemUpdated,
    /// The stage changed within a funnel.
    #[serde(rename = "item.stage_changed")]
    ItemStageChanged,
    /// The item moved to another funnel.
    #[serde(rename = "item.funnel_changed")]
    ItemFunnelChanged,
    /// The item was deleted (payload carries its last state).
    #[serde(rename = "item.deleted")]
    ItemDeleted,
    /// A comment was added to the timeline.
    #[serde(rename = "item.commented")]
    ItemCommented,
    /// A task was created (payload: the task).
    #[serde(rename = "task.created")]
    TaskCreated,
    /// A task changed (payload: the task and its changes).
    #[serde(rename = "task.updated")]
    TaskUpdated,
    /// A task was completed (payload: the task with its result).
    #[serde(rename = "task.completed")]
    TaskCompleted,
    /// A task's deadline passed before it was completed.
    #[serde(rename = "task.overdue")]
    TaskOverdue,
    /// A notification was written to a user's inbox.
    #[serde(rename = "notification.created")]
    NotificationCreated,
}

impl EventKind {
    /// Every kind, for validating subscriptions.
    pub const ALL: [EventKind; 11] = [
        EventKind::ItemCreated,
        EventKind::ItemUpdated,
        EventKind::ItemStageChanged,
        EventKind::ItemFunnelChanged,
        EventKind::ItemDeleted,
        EventKind::ItemCommented,
        EventKind::TaskCreated,
        EventKind::TaskUpdated,
        EventKind::TaskCompleted,
        EventKind::TaskOverdue,
        EventKind::NotificationCreated,
    ];

    /// The event's public name, e.g. `item.stage_changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ItemCreated => "item.created",
            EventKind::ItemUpdated => "item.updated",
            EventKind::ItemStageChanged => "item.stage_changed",
            EventKind::ItemFunnelChanged => "item.funnel_changed",
            EventKind::ItemDeleted => "item.deleted",
            EventKind::ItemCommented => "item.commented",
            EventKind::TaskCreated => "task.created",
            EventKind::TaskUpdated => "task.updated",
            EventKind::TaskCompleted => "task.completed",
            EventKind::TaskOverdue => "task.overdue",
            EventKind::NotificationCreated => "notification.created",
        }
    }

    /// The kind of a public name, if it is one.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_named_alike_everywhere() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).ok(), Some(serde_json::json!(kind.as_str())));
        }
        assert_eq!(EventKind::parse("item.moved"), None);
    }
}
