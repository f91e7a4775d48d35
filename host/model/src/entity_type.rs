//! Entity types: the built-in `deal`, `contact`, `company`, `invoice` and custom "smart
//! processes" such as `production`.

use serde::Serialize;

use super::field::FieldDef;
use super::funnel::Funnel;

/// Keys of the built-in types, created by the first migration.
pub const BUILTIN_TYPES: [&str; 4] = ["deal", "contact", "company", "invoice"];

/// An entity type's settings.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EntityType {
    /// Unique key, e.g. `production`.
    pub key: String,
    /// Display title, 1 to 200 characters.
    pub title: String,
    /// Built-in types cannot be removed.
    pub builtin: bool,
    /// Items move through stages.
    pub has_stages: bool,
    /// More than the default funnel may be created.
    pub has_funnels: bool,
    /// Items carry an amount of money.
    pub has_amount: bool,
    /// Types whose items may be parents of this type's items.
    pub parents: Vec<String>,
}

/// A type with its fields and funnels: everything needed to validate a write.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TypeSchema {
    /// The type's own settings (key, title, flags, parents), inlined into this object.
    #[serde(flatten)]
    pub def: EntityType,
    /// Custom fields in display order.
    pub fields: Vec<FieldDef>,
    /// Funnels in display order (the default first).
    pub funnels: Vec<Funnel>,
}

impl TypeSchema {
    /// A field by key.
    pub fn field(&self, key: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.key == key)
    }

    /// A funnel by key.
    pub fn funnel(&self, key: &str) -> Option<&Funnel> {
        self.funnels.iter().find(|f| f.key == key)
    }

    /// The default funnel (types with stages always have one).
    pub fn default_funnel(&self) -> Option<&Funnel> {
        self.funnels.iter().find(|f| f.is_default).or(self.funnels.first())
    }
}
