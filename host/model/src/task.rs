//! Tasks: work assigned to a person, linked to the items it is about, with a deadline, a
//! checklist and, when asked for, a result to complete it.

use serde::{Deserialize, Serialize};

use super::actor::Actor;
use super::item::ItemRef;

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Not started.
    New,
    /// Being worked on.
    InProgress,
    /// Done (only through completion, which checks the result).
    Completed,
    /// Put off.
    Deferred,
}

impl TaskStatus {
    /// The stored and public name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::New => "new",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Completed => "completed",
            TaskStatus::Deferred => "deferred",
        }
    }

    /// Reads a stored or requested name.
    pub fn parse(text: &str) -> Option<TaskStatus> {
        match text {
            "new" => Some(TaskStatus::New),
            "in_progress" => Some(TaskStatus::InProgress),
            "completed" => Some(TaskStatus::Completed),
            "deferred" => Some(TaskStatus::Deferred),
            _ => None,
        }
    }
}

/// One line of a task's checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecklistEntry {
    /// What to check.
    pub text: String,
    /// Whether it is done.
    #[serde(default)]
    pub done: bool,
}

/// A task as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Task {
    /// Id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Status.
    pub status: TaskStatus,
    /// The user who does it.
    pub responsible: i64,
    /// Who created it: a user, or the robot or process that did.
    pub creator: Actor,
    /// Users who follow it.
    pub auditors: Vec<i64>,
    /// Deadline (RFC 3339).
    pub deadline: Option<String>,
    /// Past its deadline and not completed.
    pub overdue: bool,
    /// Completion needs a result text.
    pub require_result: bool,
    /// The result given on completion.
    pub result: Option<String>,
    /// Checklist.
    pub checklist: Vec<ChecklistEntry>,
    /// Tags (the "task completed" trigger can match one).
    pub tags: Vec<String>,
    /// The items it is about.
    pub links: Vec<ItemRef>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
    /// Completed (RFC 3339).
    pub completed_at: Option<String>,
    /// Version, raised by every change.
    pub version: i64,
}

/// Longest task title, in characters.
pub const MAX_TITLE: usize = 500;
/// Longest description or result, in characters.
pub const MAX_TEXT: usize = 20_000;
/// Most checklist entries, links, auditors or tags of one task.
pub const MAX_LIST: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in [TaskStatus::New, TaskStatus::InProgress, TaskStatus::Completed, TaskStatus::Deferred] {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::Value::from(s.as_str())));
        }
        assert_eq!(TaskStatus::parse("done"), None);
    }
}
