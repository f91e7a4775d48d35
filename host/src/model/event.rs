//! Domain events, written to the outbox in the same transaction as the change they describe.

use serde::Serialize;

/// Kinds of domain event. Later subsystems (tasks, invoices, bookings, e-mail) add kinds here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventKind {
    /// An item was created.
    ItemCreated,
    /// Title, amount, links or custom fields changed (payload lists old and new values).
    ItemUpdated,
    /// The stage changed within a funnel.
    ItemStageChanged,
    /// The item moved to another funnel.
    ItemFunnelChanged,
    /// The item was deleted (payload carries its last state).
    ItemDeleted,
    /// A comment was added to the timeline.
    ItemCommented,
    /// A task was created (payload: the task).
    TaskCreated,
    /// A task changed (payload: the task and its changes).
    TaskUpdated,
    /// A task was completed (payload: the task with its result).
    TaskCompleted,
    /// A task's deadline passed before it was completed.
    TaskOverdue,
    /// A notification was written to a user's inbox.
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
}
