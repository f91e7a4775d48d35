//! The CRM domain: entity types, fields, funnels, items, people, access, events, tasks,
//! processes, and what a plugin is (its kind, world, capabilities and limits).
//!
//! Everything here is plain data plus pure validation. This crate is the bottom of the house:
//! it must not import a database, HTTP or plugin-runtime crate (sqlx, axum, wasmtime, rhai), nor
//! any other Voronka crate but `voronka-placeholders` (the text renderer it shares with the
//! plugin SDK); storage (`voronka-store`) and the use cases (`voronka-core`) build
//! on it.

pub mod access;
pub mod actor;
pub mod assignee;
pub mod capability;
pub mod entity_type;
pub mod event;
pub mod field;
pub mod file;
pub mod funnel;
pub mod item;
pub mod limits;
pub mod money;
pub mod notification;
pub mod people;
pub mod plugin;
pub mod process;
pub mod schedule;
pub mod task;
pub mod template_check;
pub mod time;
pub mod trigger;
pub mod webhook;

/// The text renderer shared with the plugin SDK: placeholders such as `{{item.title}}`.
pub use voronka_placeholders as placeholders;

/// A key (of a type, field, funnel, stage or role) is lower-case ASCII: a letter, then letters,
/// digits, `-` or `_`, at most 64 characters.
pub fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && key.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A validation problem with one named input field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Path of the offending input, e.g. `fields.source` or `stages[2].key`.
    pub field: String,
    /// What is wrong, in words.
    pub message: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// The names an enum's variants have in JSON, in declaration order, as its serde derive knows
/// them: the one list the API document's enums (step kinds, trigger kinds, ...) are read from.
/// Serde names every variant in the error for a name none has; `tag` is the field an internally
/// tagged enum (`#[serde(tag = "kind")]`) reads its variant from, `None` for a plain one.
pub fn variant_names<T: serde::de::DeserializeOwned>(tag: Option<&str>) -> Vec<String> {
    const NO_VARIANT: &str = "\u{0}";
    let probe = match tag {
        Some(tag) => serde_json::json!({ (tag): NO_VARIANT }),
        None => serde_json::json!(NO_VARIANT),
    };
    let Err(error) = serde_json::from_value::<T>(probe) else { return Vec::new() };
    let text = error.to_string();
    let Some((_, expected)) = text.split_once("expected") else { return Vec::new() };
    expected.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_names_come_from_the_serde_derive() {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "kebab-case")]
        #[allow(dead_code)]
        enum Plain {
            One,
            TwoWords,
            #[serde(rename = "x:y")]
            Third,
        }
        #[derive(serde::Deserialize)]
        #[serde(tag = "kind", rename_all = "kebab-case")]
        #[allow(dead_code)]
        enum Tagged {
            Only { n: i64 },
            Other,
        }
        assert_eq!(variant_names::<Plain>(None), ["one", "two-words", "x:y"]);
        assert_eq!(variant_names::<Tagged>(Some("kind")), ["only", "other"]);
        assert_eq!(variant_names::<capability::Capability>(None).len(), 6);
        assert_eq!(variant_names::<plugin::World>(None), plugin::World::ALL.map(|w| w.as_str()));
    }

    #[test]
    fn keys() {
        assert!(is_valid_key("production"));
        assert!(is_valid_key("b_size-2"));
        assert!(!is_valid_key(""));
        assert!(!is_valid_key("2x"));
        assert!(!is_valid_key("Deal"));
        assert!(!is_valid_key("a/b"));
        assert!(!is_valid_key(&"a".repeat(65)));
    }
}
