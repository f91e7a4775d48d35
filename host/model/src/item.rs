//! Items (deals, contacts, production orders, ...), their stage history and timeline.

use serde::{Deserialize, Serialize};

use serde_json::{Map, Value};

use super::actor::Actor;
use super::assignee::Assignee;
use super::money::Money;

/// A reference to an item of a type, e.g. a parent link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRef {
    /// Key of the item's entity type, e.g. `deal`.
    #[serde(rename = "type")]
    pub type_key: String,
    /// The item's id (ids are unique across all types).
    pub id: i64,
}

/// An item as the API shows it. (`Default` is an empty, unsaved item: id 0, no type.)
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Item {
    /// Id, unique across types.
    pub id: i64,
    /// Key of the item's entity type, e.g. `deal`; fixed at creation.
    #[serde(rename = "type")]
    pub type_key: String,
    /// Funnel key (types with stages).
    pub funnel: Option<String>,
    /// Stage key (types with stages).
    pub stage: Option<String>,
    /// Title, 1 to 500 characters.
    pub title: String,
    /// Amount (types with amounts).
    pub amount: Option<Money>,
    /// Id of the user responsible for the item; `null` when nobody is.
    pub responsible: Option<i64>,
    /// Linked contact item id.
    pub contact: Option<i64>,
    /// Linked company item id.
    pub company: Option<i64>,
    /// Items this one is linked under (at most 100), of the types its type allows as parents.
    pub parents: Vec<ItemRef>,
    /// Custom field values by key.
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Optimistic-concurrency version, also sent as the ETag.
    pub version: i64,
    /// Id of the user who created it; `null` when automation or the host did.
    pub created_by: Option<i64>,
    /// Creation time (RFC 3339, UTC).
    pub created_at: String,
    /// Id of the user who changed it last; `null` when automation or the host did.
    pub updated_by: Option<i64>,
    /// Time of the last change or move (RFC 3339, UTC).
    pub updated_at: String,
}

/// A place in a funnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StagePoint {
    /// Key of the funnel, e.g. `sales`.
    pub funnel: Option<String>,
    /// Key of the stage in that funnel, e.g. `measuring`.
    pub stage: Option<String>,
}

/// One stage or funnel change.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// Entry id (also the cursor).
    pub id: i64,
    /// Where the item was; `null` in the first entry, written when the item was created in its
    /// first funnel and stage.
    pub from: Option<StagePoint>,
    /// Where the item was moved to.
    pub to: StagePoint,
    /// Who moved it: a user, or the robot, trigger, schedule or process that did.
    pub actor: Actor,
    /// When it moved (RFC 3339, UTC).
    pub at: String,
}

/// Kind of a timeline entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TimelineKind {
    /// Written by a person.
    Comment,
    /// Written by the host or automation.
    System,
}

/// A comment or system entry on an item's timeline.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    /// Entry id, increasing with time (also the cursor).
    pub id: i64,
    /// `comment` when a user wrote it, `system` when the host or automation did.
    pub kind: TimelineKind,
    /// The comment (1 to 20,000 characters), or what happened, e.g. `Created`.
    pub text: String,
    /// Structured details of a system entry.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Who wrote it: a user, or the robot, trigger, schedule, process or host that did.
    pub actor: Actor,
    /// When it was written (RFC 3339, UTC).
    pub at: String,
}

/// `POST /items/{type}` body.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// Title, 1 to 500 characters (surrounding spaces are trimmed).
    pub title: String,
    /// Funnel key (default funnel when absent).
    pub funnel: Option<String>,
    /// Stage key (first stage when absent).
    pub stage: Option<String>,
    /// Amount (types with amounts): `{"value":"150000.00","currency":"RUB"}`.
    #[schema(value_type = Option<Money>)]
    pub amount: Option<Value>,
    /// The user responsible for the item: a user id (the user must exist), `"inherit"` (the
    /// first parent's responsible), or an assignee resolved against the first parent
    /// (`{"role": "production"}`: the least busy holder; `{"relation": "responsible"}`,
    /// `{"relation": "department-head"}`).
    #[schema(value_type = Option<Value>)]
    pub responsible: Option<Responsible>,
    /// Id of a `contact` item to link.
    pub contact: Option<i64>,
    /// Id of a `company` item to link.
    pub company: Option<i64>,
    /// Parent items, at most 100, of the types this type allows as parents.
    #[serde(default)]
    pub parents: Vec<ItemRef>,
    /// Custom field values by field key; every required field must be given.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// Who a new item is for, as `POST /items/{type}` and plugins name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Responsible {
    /// A user by id.
    User(i64),
    /// The first parent's responsible (none when it has none).
    Inherit,
    /// A role or a person related to the first parent.
    Assignee(Assignee),
}

impl<'de> Deserialize<'de> for Responsible {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match &value {
            Value::Number(n) => {
                n.as_i64().map(Responsible::User).ok_or_else(|| serde::de::Error::custom("a user id is an integer"))
            }
            Value::String(s) if s == "inherit" => Ok(Responsible::Inherit),
            Value::Object(_) => serde_json::from_value(value).map(Responsible::Assignee).map_err(|_| {
                serde::de::Error::custom(
                    "expected {\"user\": id}, {\"role\": key} or {\"relation\": \"responsible\" | \"department-head\"}",
                )
            }),
            _ => {
                Err(serde::de::Error::custom("expected a user id, \"inherit\" or an assignee such as {\"role\": key}"))
            }
        }
    }
}

impl From<i64> for Responsible {
    fn from(user: i64) -> Responsible {
        Responsible::User(user)
    }
}

/// Which current versions of an item a change may apply to, as a test of the version (the
/// HTTP `If-Match` of its request); `None`: any.
pub type VersionCheck<'a> = Option<&'a (dyn Fn(i64) -> bool + Sync)>;

/// `PATCH /items/{type}/{id}` body: present keys change, `null` clears.
#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemPatch {
    /// New title, 1 to 500 characters.
    pub title: Option<String>,
    /// New amount; `null` clears.
    #[serde(default, with = "::serde_with::rust::double_option")]
    #[schema(value_type = Option<Money>)]
    pub amount: Option<Option<Value>>,
    /// New responsible; `null` clears.
    #[serde(default, with = "::serde_with::rust::double_option")]
    #[schema(value_type = Option<i64>)]
    pub responsible: Option<Option<i64>>,
    /// New contact; `null` clears.
    #[serde(default, with = "::serde_with::rust::double_option")]
    #[schema(value_type = Option<i64>)]
    pub contact: Option<Option<i64>>,
    /// New company; `null` clears.
    #[serde(default, with = "::serde_with::rust::double_option")]
    #[schema(value_type = Option<i64>)]
    pub company: Option<Option<i64>>,
    /// Replaces the parent links.
    pub parents: Option<Vec<ItemRef>>,
    /// Field values to set; `null` clears a field.
    #[schema(value_type = Object)]
    pub fields: Option<Map<String, Value>>,
    /// Refused: stages change through `/move`.
    #[serde(default)]
    #[schema(ignore)]
    pub stage: Option<Value>,
    /// Refused: funnels change through `/move`.
    #[serde(default)]
    #[schema(ignore)]
    pub funnel: Option<Value>,
}

/// `POST /items/{type}/{id}/move` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// Key of the stage to move to, in the target funnel.
    pub stage: String,
    /// Target funnel (the current one when absent).
    pub funnel: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignee::Relation;

    #[test]
    fn a_responsible_is_an_id_inherit_or_an_assignee() {
        let read = |text: &str| serde_json::from_str::<Responsible>(text).map_err(|e| e.to_string());
        assert_eq!(read("7"), Ok(Responsible::User(7)));
        assert_eq!(read(r#""inherit""#), Ok(Responsible::Inherit));
        assert_eq!(
            read(r#"{"relation": "department-head"}"#),
            Ok(Responsible::Assignee(Assignee::Relation { relation: Relation::DepartmentHead }))
        );
        assert!(read(r#""someone""#).is_err_and(|e| e.contains("inherit")));
        assert!(read(r#"{"team": 1}"#).is_err_and(|e| e.contains("role")));
        assert!(read("1.5").is_err());
    }
}
