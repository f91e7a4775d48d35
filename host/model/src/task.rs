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
    /// Not started yet: every task is created in this status.
    New,
    /// Being worked on; set with `PATCH /tasks/{id}`.
    InProgress,
    /// Done (only through completion, which checks the result).
    Completed,
    /// Put off for now; still open, and overdue once its deadline passes.
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
    /// What is to be done, 1 to 1,000 characters.
    pub text: String,
    /// Whether it is done.
    #[serde(default)]
    pub done: bool,
}

/// A task as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Task {
    /// Task id, as in `/tasks/{id}`.
    pub id: i64,
    /// Title, 1 to 500 characters.
    pub title: String,
    /// Description, at most 20,000 characters; empty when none.
    pub description: String,
    /// Where it stands; it becomes `completed` only through `POST /tasks/{id}/complete`.
    pub status: TaskStatus,
    /// The user who does it.
    pub responsible: i64,
    /// Who created it: a user, or the robot or process that did.
    pub creator: Actor,
    /// Users who follow it.
    pub auditors: Vec<i64>,
    /// Deadline (RFC 3339); `null` when none.
    pub deadline: Option<String>,
    /// Past its deadline and not completed.
    pub overdue: bool,
    /// Completion needs a result text.
    pub require_result: bool,
    /// The result given on completion; `null` until completed (reopening clears it).
    pub result: Option<String>,
    /// Checklist entries in order, at most 100.
    pub checklist: Vec<ChecklistEntry>,
    /// Tags (the "task completed" trigger can match one).
    pub tags: Vec<String>,
    /// The items it is about.
    pub links: Vec<ItemRef>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
    /// When it was completed (RFC 3339); `null` unless completed.
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
    /// Description, at most 20,000 characters; empty by default.
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
    /// Checklist entries in order, at most 100.
    #[serde(default)]
    pub checklist: Vec<ChecklistEntry>,
    /// Completion needs a result text.
    #[serde(default)]
    pub require_result: bool,
    /// Tags, at most 100 of 1 to 64 characters; a `task-completed` trigger can match one.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `PATCH /tasks/{id}` body: present keys change; `deadline: null` removes the deadline.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskPatch {
    /// New title, 1 to 500 characters.
    pub title: Option<String>,
    /// New description, at most 20,000 characters.
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
    /// Replaces the linked items (at most 100).
    pub links: Option<Vec<ItemRef>>,
    /// Replaces the auditors' user ids (at most 100); the creator or an administrator only.
    pub auditors: Option<Vec<i64>>,
    /// Replaces the checklist (at most 100 entries).
    pub checklist: Option<Vec<ChecklistEntry>>,
    /// Completion needs a result text.
    pub require_result: Option<bool>,
    /// Replaces the tags (at most 100, each 1 to 64 characters).
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
