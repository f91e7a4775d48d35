//! Trigger rules: when an event concerning an item matches, the item moves to the trigger's stage.

use serde_json::Value;

use super::FieldError;

/// The kinds a trigger can be, as named in the API.
pub const TRIGGER_KINDS: [&str; 6] =
    ["field-changed", "responsible-changed", "linked-item-stage", "task-completed", "webhook", "plugin"];

/// The keys of a trigger's config that its kind does not read (checked when a trigger is saved;
/// stored triggers are read as they are).
pub fn unknown_config_keys(kind: &str, config: &Value) -> Vec<FieldError> {
    let (Some(known), Some(map)) = (config_keys(kind), config.as_object()) else { return Vec::new() };
    let takes = if known.is_empty() { "no config".to_string() } else { known.join(", ") };
    map.keys()
        .filter(|k| !known.contains(&k.as_str()))
        .map(|key| {
            FieldError::new(format!("config.{key}"), format!("unknown key `{key}`: a {kind} trigger takes {takes}"))
        })
        .collect()
}

/// The config keys a trigger of a kind reads; `None` for an unknown kind.
fn config_keys(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "field-changed" => &["field", "to"],
        "responsible-changed" => &["to"],
        "linked-item-stage" => &["type", "funnel", "stage"],
        "task-completed" => &["title", "tag"],
        "webhook" => &[],
        "plugin" => &["plugin", "version", "config"],
        _ => return None,
    })
}

/// A trigger's `kind`, as the API document lists it; [`TriggerRule::parse`] reads each with its
/// config (a unit test keeps this list, [`TRIGGER_KINDS`] and the parser in step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerKind {
    /// A field changed.
    FieldChanged,
    /// The responsible user changed.
    ResponsibleChanged,
    /// A linked item entered a stage.
    LinkedItemStage,
    /// A linked task was completed.
    TaskCompleted,
    /// An outside system called the trigger's secret URL.
    Webhook,
    /// A plugin of world `trigger` decides.
    Plugin,
}

/// What a trigger waits for, parsed from its `kind` and `config`.
#[derive(Debug, Clone, PartialEq)]
pub enum TriggerRule {
    /// A field changed (`{"field": "paid", "to": true}`; `to` optional). Custom fields by key;
    /// `title`, `amount`, `contact`, `company` and `parents` by name.
    FieldChanged {
        /// A custom field key, or `title`, `amount`, `contact`, `company` or `parents`.
        field: String,
        /// The new value required, if any.
        to: Option<Value>,
    },
    /// The responsible user changed (`{"to": 7}`; `to` optional).
    ResponsibleChanged {
        /// The new responsible required, if any.
        to: Option<i64>,
    },
    /// A linked item (a parent or a child) of `type_key` entered `stage` (of `funnel`, when
    /// given): `{"type": "production", "funnel": "main", "stage": "done"}`.
    LinkedItemStage {
        /// The linked item's type.
        type_key: String,
        /// Its funnel; any when absent.
        funnel: Option<String>,
        /// The stage it entered.
        stage: String,
    },
    /// A task linked to the item was completed (`{"title": .., "tag": ..}`, both optional: the
    /// task's title or one of its tags must then be equal).
    TaskCompleted {
        /// The title required, if any.
        title: Option<String>,
        /// A tag required, if any.
        tag: Option<String>,
    },
    /// An outside system calls the trigger's secret URL with an item id.
    Webhook,
    /// A plugin of world `trigger` decides (`{"plugin": .., "version": .., "config": ..}`).
    Plugin {
        /// Name of an installed plugin of world `trigger`.
        plugin: String,
        /// `latest` or a semver requirement.
        version: String,
        /// Config handed to `matches`.
        config: Value,
    },
}

impl TriggerRule {
    /// Parses a trigger's `kind` and `config`; errors name the offending key.
    pub fn parse(kind: &str, config: &Value) -> Result<TriggerRule, Vec<FieldError>> {
        let Some(map) = config.as_object() else {
            return Err(vec![FieldError::new("config", "must be a JSON object")]);
        };
        let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_string);
        let missing = |key: &str| vec![FieldError::new(format!("config.{key}"), "is required (a string)")];
        match kind {
            "field-changed" => {
                let field = text("field").filter(|f| !f.is_empty()).ok_or_else(|| missing("field"))?;
                Ok(TriggerRule::FieldChanged { field, to: map.get("to").cloned().filter(|v| !v.is_null()) })
            }
            "responsible-changed" => match map.get("to") {
                None | Some(Value::Null) => Ok(TriggerRule::ResponsibleChanged { to: None }),
                Some(v) => match v.as_i64() {
                    Some(id) => Ok(TriggerRule::ResponsibleChanged { to: Some(id) }),
                    None => Err(vec![FieldError::new("config.to", "must be a user id")]),
                },
            },
            "linked-item-stage" => {
                let type_key = text("type").ok_or_else(|| missing("type"))?;
                let stage = text("stage").ok_or_else(|| missing("stage"))?;
                Ok(TriggerRule::LinkedItemStage { type_key, funnel: text("funnel"), stage })
            }
            "task-completed" => Ok(TriggerRule::TaskCompleted { title: text("title"), tag: text("tag") }),
            "webhook" => Ok(TriggerRule::Webhook),
            "plugin" => {
                let plugin = text("plugin").ok_or_else(|| missing("plugin"))?;
                let version = text("version").unwrap_or_else(|| "latest".into());
                let config = map.get("config").cloned().unwrap_or_else(|| Value::Object(Default::default()));
                Ok(TriggerRule::Plugin { plugin, version, config })
            }
            other => Err(vec![FieldError::new(
                "kind",
                format!("unknown trigger kind `{other}`; use one of {}", TRIGGER_KINDS.join(", ")),
            )]),
        }
    }

    /// The kind's API name.
    pub fn kind(&self) -> &'static str {
        match self {
            TriggerRule::FieldChanged { .. } => "field-changed",
            TriggerRule::ResponsibleChanged { .. } => "responsible-changed",
            TriggerRule::LinkedItemStage { .. } => "linked-item-stage",
            TriggerRule::TaskCompleted { .. } => "task-completed",
            TriggerRule::Webhook => "webhook",
            TriggerRule::Plugin { .. } => "plugin",
        }
    }

    /// Whether a completed task (its `title` and `tags`, from a `task.completed` event's
    /// payload) satisfies a task-completed rule.
    pub fn matches_task(&self, task: &Value) -> bool {
        match self {
            TriggerRule::TaskCompleted { title, tag } => {
                let title_ok = title.as_deref().is_none_or(|t| task["title"].as_str() == Some(t));
                let tags = task["tags"].as_array();
                let tag_ok =
                    tag.as_deref().is_none_or(|t| tags.is_some_and(|l| l.iter().any(|v| v.as_str() == Some(t))));
                title_ok && tag_ok
            }
            _ => false,
        }
    }

    /// Whether the changes of an `item.updated` event (`[{"field", "old", "new"}]`, custom
    /// fields as `fields.<key>`) satisfy a field or responsible rule.
    pub fn matches_changes(&self, changes: &[Value]) -> bool {
        let changed = |name: &str| changes.iter().find(|c| c["field"].as_str() == Some(name)).map(|c| &c["new"]);
        match self {
            TriggerRule::FieldChanged { field, to } => {
                let custom = format!("fields.{field}");
                let new = changed(&custom).or_else(|| if is_builtin_field(field) { changed(field) } else { None });
                new.is_some_and(|new| to.as_ref().is_none_or(|to| values_equal(to, new)))
            }
            TriggerRule::ResponsibleChanged { to } => {
                changed("responsible").is_some_and(|new| to.is_none_or(|to| new.as_i64() == Some(to)))
            }
            _ => false,
        }
    }

    /// Whether a linked item of `type_key` entering `funnel`/`stage` satisfies a linked rule.
    pub fn matches_linked(&self, type_key: &str, funnel: &str, stage: &str) -> bool {
        match self {
            TriggerRule::LinkedItemStage { type_key: t, funnel: f, stage: s } => {
                t == type_key && s == stage && f.as_deref().is_none_or(|f| f == funnel)
            }
            _ => false,
        }
    }
}

/// Item properties a field-changed trigger may name besides custom fields.
pub fn is_builtin_field(name: &str) -> bool {
    matches!(name, "title" | "amount" | "contact" | "company" | "parents")
}

/// Equality that treats `1` and `1.0`, and a number and its decimal string (money, numbers
/// stored as text), as the same value.
fn values_equal(expected: &Value, actual: &Value) -> bool {
    if expected == actual {
        return true;
    }
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    };
    matches!((number(expected), number(actual)), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The document's list, the list errors name and the parser know the same kinds.
    #[test]
    fn every_trigger_kind_is_listed_and_parsed() {
        assert_eq!(crate::variant_names::<TriggerKind>(None), TRIGGER_KINDS);
        for kind in TRIGGER_KINDS {
            let refused = TriggerRule::parse(kind, &json!({})).err().unwrap_or_default();
            assert!(refused.iter().all(|e| e.field != "kind"), "{kind}: {refused:?}");
        }
        assert!(TriggerRule::parse("teleport", &json!({})).is_err_and(|e| e[0].field == "kind"));
    }

    #[test]
    fn task_completed_matches_title_and_tag() {
        let any = TriggerRule::parse("task-completed", &json!({})).unwrap_or(TriggerRule::Webhook);
        let titled = TriggerRule::parse("task-completed", &json!({"title": "Measure"})).unwrap_or(TriggerRule::Webhook);
        let tagged = TriggerRule::parse("task-completed", &json!({"tag": "measuring"})).unwrap_or(TriggerRule::Webhook);
        let task = json!({"title": "Measure", "tags": ["measuring", "site"]});
        assert!(any.matches_task(&task));
        assert!(titled.matches_task(&task));
        assert!(tagged.matches_task(&task));
        let other = json!({"title": "Cut panels", "tags": []});
        assert!(any.matches_task(&other));
        assert!(!titled.matches_task(&other));
        assert!(!tagged.matches_task(&other));
        assert!(!TriggerRule::Webhook.matches_task(&task));
    }

    fn changes(field: &str, new: Value) -> Vec<Value> {
        vec![json!({"field": field, "old": null, "new": new})]
    }

    #[test]
    fn field_changed_matches_custom_and_builtin_fields_with_an_optional_value() {
        let paid = TriggerRule::parse("field-changed", &json!({"field": "paid", "to": true})).unwrap();
        assert!(paid.matches_changes(&changes("fields.paid", json!(true))));
        assert!(!paid.matches_changes(&changes("fields.paid", json!(false))));
        assert!(!paid.matches_changes(&changes("fields.other", json!(true))));
        let any = TriggerRule::parse("field-changed", &json!({"field": "title"})).unwrap();
        assert!(any.matches_changes(&changes("title", json!("New"))));
        let number = TriggerRule::parse("field-changed", &json!({"field": "area", "to": 12})).unwrap();
        assert!(number.matches_changes(&changes("fields.area", json!("12.0"))));
    }

    #[test]
    fn responsible_changed_matches_any_or_one_user() {
        let any = TriggerRule::parse("responsible-changed", &json!({})).unwrap();
        assert!(any.matches_changes(&changes("responsible", json!(3))));
        assert!(!any.matches_changes(&changes("title", json!("x"))));
        let seven = TriggerRule::parse("responsible-changed", &json!({"to": 7})).unwrap();
        assert!(seven.matches_changes(&changes("responsible", json!(7))));
        assert!(!seven.matches_changes(&changes("responsible", json!(3))));
    }

    #[test]
    fn linked_item_stage_matches_type_stage_and_optional_funnel() {
        let rule = TriggerRule::parse("linked-item-stage", &json!({"type": "production", "stage": "done"})).unwrap();
        assert!(rule.matches_linked("production", "main", "done"));
        assert!(!rule.matches_linked("production", "main", "queued"));
        assert!(!rule.matches_linked("deal", "main", "done"));
    }

    #[test]
    fn bad_configs_name_the_key() {
        let errors = TriggerRule::parse("field-changed", &json!({})).unwrap_err();
        assert_eq!(errors.first().map(|e| e.field.as_str()), Some("config.field"));
        let errors = TriggerRule::parse("teleport", &json!({})).unwrap_err();
        assert_eq!(errors.first().map(|e| e.field.as_str()), Some("kind"));
        let errors = TriggerRule::parse("webhook", &json!([])).unwrap_err();
        assert_eq!(errors.first().map(|e| e.field.as_str()), Some("config"));
    }

    #[test]
    fn unknown_config_keys_are_named() {
        let errors = unknown_config_keys("field-changed", &json!({"field": "paid", "value": true}));
        assert_eq!(errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), vec!["config.value"]);
        assert_eq!(errors[0].message, "unknown key `value`: a field-changed trigger takes field, to");
        assert!(unknown_config_keys("task-completed", &json!({"tag": "x"})).is_empty());
        assert_eq!(unknown_config_keys("webhook", &json!({"item": 1})).len(), 1);
    }
}
