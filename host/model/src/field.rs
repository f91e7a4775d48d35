//! Custom fields: kinds, definitions and validation of values.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::money::Money;
use super::time::{parse_rfc3339, to_rfc3339};

/// Kind of a custom field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FieldKind {
    /// One line of text, at most 1,000 characters.
    String,
    /// Long text, at most 100,000 characters.
    Text,
    /// A number (JSON number or numeric string).
    Number,
    /// Decimal amount and currency: `{"value":"10.00","currency":"RUB"}`.
    Money,
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339 timestamp, stored in UTC.
    Datetime,
    /// `true` / `false`.
    Bool,
    /// One of the field's `options`.
    Enum,
    /// The id of an existing user, e.g. `5`.
    User,
    /// An item id of the field's `target` type.
    ItemLink,
    /// A stored file: `{"id": 12, "name": "..."}`.
    File,
    /// A resource booking: `{"resource":"...","from":"<datetime>","to":"<datetime>"}`.
    Booking,
}

impl FieldKind {
    /// Reads a kind by its API name (`item-link`, `datetime`, ...).
    pub fn parse(name: &str) -> Option<FieldKind> {
        serde_json::from_value(Value::String(name.to_string())).ok()
    }
}

/// A custom field of an entity type.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldDef {
    /// Key, unique in the type.
    pub key: String,
    /// Display title, 1 to 200 characters.
    pub title: String,
    /// Kind of value the field holds; decides how values are checked and normalised.
    pub kind: FieldKind,
    /// A value must be present on create and can never be cleared.
    pub required: bool,
    /// The value is a list of values of the kind.
    pub multiple: bool,
    /// Allowed values of an `enum` field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Target type of an `item-link` field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Something a value points at that must exist; checked against the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A user, by id.
    User(i64),
    /// A file of the file store.
    File(i64),
    /// An item of a type.
    Item {
        /// The type the item must be of (the field's `target`).
        type_key: String,
        /// The id of the item the value names.
        id: i64,
    },
}

/// Longest `string` value.
pub const MAX_STRING: usize = 1_000;
/// Longest `text` value.
pub const MAX_TEXT: usize = 100_000;
/// Most values of a `multiple` field.
pub const MAX_VALUES: usize = 1_000;

impl FieldDef {
    /// Validates a value for this field and returns it normalised, with the references it makes.
    /// `null` is handled by the caller (it clears the field).
    pub fn validate(&self, value: &Value) -> Result<(Value, Vec<Reference>), String> {
        let mut refs = Vec::new();
        if self.multiple {
            let list = value.as_array().ok_or("this field takes a list of values")?;
            if list.len() > MAX_VALUES {
                return Err(format!("at most {MAX_VALUES} values"));
            }
            let mut out = Vec::with_capacity(list.len());
            for (i, v) in list.iter().enumerate() {
                out.push(self.validate_one(v, &mut refs).map_err(|e| format!("value {i}: {e}"))?);
            }
            Ok((Value::Array(out), refs))
        } else {
            let v = self.validate_one(value, &mut refs)?;
            Ok((v, refs))
        }
    }

    fn validate_one(&self, value: &Value, refs: &mut Vec<Reference>) -> Result<Value, String> {
        match self.kind {
            FieldKind::String | FieldKind::Text => {
                let s = value.as_str().ok_or("expected a string")?;
                let max = if self.kind == FieldKind::String { MAX_STRING } else { MAX_TEXT };
                if s.chars().count() > max {
                    return Err(format!("longer than {max} characters"));
                }
                Ok(Value::String(s.to_string()))
            }
            FieldKind::Number => match value {
                Value::Number(n) => Ok(Value::Number(n.clone())),
                Value::String(s) => s
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| format!("`{s}` is not a number")),
                _ => Err("expected a number".into()),
            },
            FieldKind::Money => Money::from_json(value).map(|m| m.to_json()),
            FieldKind::Date => {
                let s = value.as_str().ok_or("expected a date like \"2026-11-27\"")?;
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map(|d| Value::String(d.format("%Y-%m-%d").to_string()))
                    .map_err(|_| format!("`{s}` is not a date like \"2026-11-27\""))
            }
            FieldKind::Datetime => {
                let s = value.as_str().ok_or("expected an RFC 3339 timestamp")?;
                parse_datetime(s).map(Value::String)
            }
            FieldKind::Bool => value.as_bool().map(Value::Bool).ok_or_else(|| "expected true or false".into()),
            FieldKind::Enum => {
                let s = value.as_str().ok_or("expected one of the options")?;
                if self.options.iter().any(|o| o == s) {
                    Ok(Value::String(s.to_string()))
                } else {
                    Err(format!("`{s}` is not one of {}", self.options.join(", ")))
                }
            }
            FieldKind::User => {
                let id = value.as_i64().filter(|id| *id > 0).ok_or("expected a user id")?;
                refs.push(Reference::User(id));
                Ok(Value::from(id))
            }
            FieldKind::ItemLink => {
                let id = value.as_i64().filter(|id| *id > 0).ok_or("expected an item id")?;
                let type_key = self.target.clone().unwrap_or_default();
                refs.push(Reference::Item { type_key, id });
                Ok(Value::from(id))
            }
            FieldKind::File => {
                let object = value.as_object().ok_or("expected a stored file like {\"id\": 12}")?;
                let id = match object.get("id") {
                    Some(Value::Number(n)) => n.as_i64(),
                    Some(Value::String(s)) => s.parse::<i64>().ok(),
                    _ => None,
                };
                let id = id.filter(|id| *id > 0).ok_or("a file needs the `id` of a file uploaded to /files")?;
                refs.push(Reference::File(id));
                let name = object.get("name").and_then(Value::as_str).unwrap_or("");
                Ok(serde_json::json!({"id": id, "name": name}))
            }
            FieldKind::Booking => {
                let object = value
                    .as_object()
                    .ok_or("expected a booking like {\"resource\":\"...\",\"from\":\"...\",\"to\":\"...\"}")?;
                let resource = object.get("resource").and_then(Value::as_str).filter(|s| !s.is_empty());
                let resource = resource.ok_or("a booking needs a `resource`")?;
                let from = object.get("from").and_then(Value::as_str).ok_or("a booking needs `from`")?;
                let to = object.get("to").and_then(Value::as_str).ok_or("a booking needs `to`")?;
                let (from, to) = (parse_datetime(from)?, parse_datetime(to)?);
                if from >= to {
                    return Err("a booking must end after it starts".into());
                }
                Ok(serde_json::json!({"resource": resource, "from": from, "to": to}))
            }
        }
    }
}

/// Parses RFC 3339 and renders it in UTC, so stored datetimes compare as text.
fn parse_datetime(text: &str) -> Result<String, String> {
    parse_rfc3339(text)
        .map(to_rfc3339)
        .ok_or_else(|| format!("`{text}` is not an RFC 3339 timestamp like \"2026-11-27T10:00:00Z\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(kind: FieldKind) -> FieldDef {
        FieldDef {
            key: "f".into(),
            title: "F".into(),
            kind,
            required: false,
            multiple: false,
            options: vec!["email".into(), "phone".into()],
            target: Some("contact".into()),
        }
    }

    #[test]
    fn each_kind_accepts_and_refuses() {
        let ok = |k, v: Value| def(k).validate(&v).map(|(v, _)| v);
        assert_eq!(ok(FieldKind::String, json!("x")).unwrap(), json!("x"));
        assert!(ok(FieldKind::String, json!(1)).is_err());
        assert!(ok(FieldKind::String, json!("x".repeat(1001))).is_err());
        assert_eq!(ok(FieldKind::Number, json!("2.5")).unwrap(), json!(2.5));
        assert!(ok(FieldKind::Number, json!("two")).is_err());
        assert!(ok(FieldKind::Money, json!({"value":"1.50","currency":"EUR"})).is_ok());
        assert_eq!(ok(FieldKind::Date, json!("2026-01-05")).unwrap(), json!("2026-01-05"));
        assert!(ok(FieldKind::Date, json!("2026-13-05")).is_err());
        assert_eq!(
            ok(FieldKind::Datetime, json!("2026-01-05T10:00:00+01:00")).unwrap(),
            json!("2026-01-05T09:00:00.000000Z")
        );
        assert!(ok(FieldKind::Bool, json!("yes")).is_err());
        assert!(ok(FieldKind::Enum, json!("email")).is_ok());
        assert!(ok(FieldKind::Enum, json!("fax")).unwrap_err().contains("email, phone"));
        assert!(ok(FieldKind::User, json!(-1)).is_err());
        assert!(ok(FieldKind::File, json!({"name":"a.pdf"})).is_err());
        assert!(
            ok(
                FieldKind::Booking,
                json!({"resource":"installer-1","from":"2026-01-05T10:00:00Z","to":"2026-01-05T09:00:00Z"})
            )
            .is_err()
        );
        assert!(
            ok(
                FieldKind::Booking,
                json!({"resource":"installer-1","from":"2026-01-05T10:00:00Z","to":"2026-01-05T12:00:00Z"})
            )
            .is_ok()
        );
    }

    #[test]
    fn references_are_collected() {
        let (_, refs) = def(FieldKind::ItemLink).validate(&json!(5)).unwrap();
        assert_eq!(refs, vec![Reference::Item { type_key: "contact".into(), id: 5 }]);
        let mut multi = def(FieldKind::User);
        multi.multiple = true;
        let (v, refs) = multi.validate(&json!([1, 2])).unwrap();
        assert_eq!(v, json!([1, 2]));
        assert_eq!(refs.len(), 2);
        assert!(multi.validate(&json!(1)).is_err());
    }
}
