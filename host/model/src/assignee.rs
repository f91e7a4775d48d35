//! Who does a piece of work: a named user, the holders of a role, or a person related to the
//! item (its responsible, or the head of the responsible's department — the case's "head of
//! sales"). Tasks, robots and business-process steps name their assignees this way.

use serde::{Deserialize, Serialize};

use super::FieldError;

/// A person related to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Relation {
    /// The item's responsible user.
    Responsible,
    /// The head of the responsible's department (or of the department above, when the
    /// responsible heads their own).
    DepartmentHead,
}

/// An assignee as configured: `{"user": 5}`, `{"role": "production"}` or
/// `{"relation": "responsible" | "department-head"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Assignee {
    /// One particular user: `{"user": 5}`.
    User {
        /// Id of an active user.
        user: i64,
    },
    /// Every active holder of a role (for one task: the least busy of them).
    Role {
        /// Key of the role, e.g. `production`.
        role: String,
    },
    /// A person related to the item.
    Relation {
        /// `responsible` or `department-head`, of the item the work is about.
        relation: Relation,
    },
}

impl Assignee {
    /// Reads an assignee from JSON, naming `field` when it is not one.
    pub fn from_json(field: &str, value: &serde_json::Value) -> Result<Assignee, FieldError> {
        serde_json::from_value(value.clone()).map_err(|_| {
            FieldError::new(
                field,
                "expected {\"user\": id}, {\"role\": key} or {\"relation\": \"responsible\" | \"department-head\"}",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn assignee_shapes() {
        assert_eq!(Assignee::from_json("a", &json!({"user": 3})).ok(), Some(Assignee::User { user: 3 }));
        assert_eq!(
            Assignee::from_json("a", &json!({"role": "production"})).ok(),
            Some(Assignee::Role { role: "production".into() })
        );
        assert_eq!(
            Assignee::from_json("a", &json!({"relation": "department-head"})).ok(),
            Some(Assignee::Relation { relation: Relation::DepartmentHead })
        );
        assert!(Assignee::from_json("a", &json!({"relation": "boss"})).is_err());
        assert!(Assignee::from_json("a", &json!(5)).is_err());
    }
}
