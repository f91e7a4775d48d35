//! Items (deals, contacts, production orders, ...), their stage history and timeline.

use serde::{Deserialize, Serialize};

use serde_json::{Map, Value};

use super::actor::Actor;
use super::money::Money;

/// A reference to an item of a type, e.g. a parent link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRef {
    /// Type key.
    #[serde(rename = "type")]
    pub type_key: String,
    /// Item id.
    pub id: i64,
}

/// An item as the API shows it. (`Default` is an empty, unsaved item: id 0, no type.)
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Item {
    /// Id, unique across types.
    pub id: i64,
    /// Type key.
    #[serde(rename = "type")]
    pub type_key: String,
    /// Funnel key (types with stages).
    pub funnel: Option<String>,
    /// Stage key (types with stages).
    pub stage: Option<String>,
    /// Title.
    pub title: String,
    /// Amount (types with amounts).
    pub amount: Option<Money>,
    /// Responsible user id.
    pub responsible: Option<i64>,
    /// Linked contact item id.
    pub contact: Option<i64>,
    /// Linked company item id.
    pub company: Option<i64>,
    /// Parent items.
    pub parents: Vec<ItemRef>,
    /// Custom field values by key.
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Optimistic-concurrency version, also sent as the ETag.
    pub version: i64,
    /// Creator's user id.
    pub created_by: Option<i64>,
    /// Creation time.
    pub created_at: String,
    /// Last writer's user id.
    pub updated_by: Option<i64>,
    /// Last change time.
    pub updated_at: String,
}

/// A place in a funnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StagePoint {
    /// Funnel key.
    pub funnel: Option<String>,
    /// Stage key.
    pub stage: Option<String>,
}

/// One stage or funnel change.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// Entry id (also the cursor).
    pub id: i64,
    /// Where the item was.
    pub from: StagePoint,
    /// Where it went.
    pub to: StagePoint,
    /// Who moved it.
    pub actor: Actor,
    /// When.
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
    /// Entry id.
    pub id: i64,
    /// Comment or system.
    pub kind: TimelineKind,
    /// Text.
    pub text: String,
    /// Structured details of a system entry.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Author.
    pub actor: Actor,
    /// When.
    pub at: String,
}

/// `POST /items/{type}` body.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// Title.
    pub title: String,
    /// Funnel key (default funnel when absent).
    pub funnel: Option<String>,
    /// Stage key (first stage when absent).
    pub stage: Option<String>,
    /// Amount (types with amounts): `{"value":"150000.00","currency":"RUB"}`.
    #[schema(value_type = Option<Money>)]
    pub amount: Option<Value>,
    /// Responsible user id.
    pub responsible: Option<i64>,
    /// Contact item id.
    pub contact: Option<i64>,
    /// Company item id.
    pub company: Option<i64>,
    /// Parent items.
    #[serde(default)]
    pub parents: Vec<ItemRef>,
    /// Custom field values.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// `PATCH /items/{type}/{id}` body: present keys change, `null` clears.
#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemPatch {
    /// New title.
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
    /// Target stage.
    pub stage: String,
    /// Target funnel (the current one when absent).
    pub funnel: Option<String>,
}
