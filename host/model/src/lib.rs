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

#[cfg(test)]
mod tests {
    use super::*;

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
