//! Tasks: work assigned to a person, linked to the items it is about, with a deadline, a
//! checklist and, when asked for, a result to complete it.

use serde::{Deserialize, Serialize};

use serde_json::Value;

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

/// `POST /tasks` body (and the `tasks.create` host call's input).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    /// Title, 1 to 500 characters.
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Who does it: a user id, or an assignee (`{"user": id}`, `{"role": key}`,
    /// `{"relation": "responsible" | "department-head"}` of the first linked item). Default: the
    /// caller.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub responsible: Option<Value>,
    /// Deadline, RFC 3339.
    #[serde(default)]
    pub deadline: Option<String>,
    /// Deadline as seconds from now (instead of `deadline`).
    #[serde(default)]
    pub deadline_in_s: Option<i64>,
    /// Items it is about.
    #[serde(default)]
    pub links: Vec<ItemRef>,
    /// Users who follow it.
    #[serde(default)]
    pub auditors: Vec<i64>,
    /// Checklist.
    #[serde(default)]
    pub checklist: Vec<ChecklistEntry>,
    /// Completion needs a result text.
    #[serde(default)]
    pub require_result: bool,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `PATCH /tasks/{id}` body: present keys change; `deadline: null` removes the deadline.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskPatch {
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Responsible (as in creation).
    #[schema(value_type = Option<Object>)]
    pub responsible: Option<Value>,
    /// Deadline (RFC 3339) or `null`.
    #[serde(default, with = "::serde_with::rust::double_option")]
    #[schema(value_type = Option<String>)]
    pub deadline: Option<Option<Value>>,
    /// `new`, `in_progress` or `deferred` (completion has its own call; a completed task
    /// set back to another status is reopened).
    pub status: Option<TaskStatus>,
    /// Links.
    pub links: Option<Vec<ItemRef>>,
    /// Auditors.
    pub auditors: Option<Vec<i64>>,
    /// Checklist.
    pub checklist: Option<Vec<ChecklistEntry>>,
    /// Completion needs a result text.
    pub require_result: Option<bool>,
    /// Tags.
    pub tags: Option<Vec<String>>,
}

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
