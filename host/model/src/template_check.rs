//! The checks a business-process template passes when it is saved, beyond its own shape
//! ([`crate::process::compile`]): against the type it runs on and the plugins installed. A
//! template that passes can run: no unknown keys (`deadline` for `deadline_s`), assignees of
//! known shapes and relations, `set-fields` naming fields of the type with values of their kind,
//! moves to stages of the type's funnels, `plugin` steps naming `bp-step` plugins, and texts
//! whose placeholders all exist. Every problem is named by its path (`steps[2].assignee.relation`).
//!
//! Stored versions are not checked again when they are loaded: a field removed later makes a
//! step fail when it runs, not the versions saved before.

use serde_json::Value;

use super::FieldError;
use super::assignee::{Assignee, Relation};
use super::entity_type::TypeSchema;
use super::field::FieldKind;
use super::process::StepKind;

/// What a template is checked against.
pub struct TemplateEnv<'a> {
    /// The type its instances run on.
    pub schema: &'a TypeSchema,
    /// Why a `plugin` step's plugin and version requirement cannot run as a `bp-step` (the
    /// error's field is the step's key, `plugin` or `version`); `None` when they can.
    pub plugin: &'a dyn Fn(&str, &str) -> Option<FieldError>,
}

/// Every problem of the steps (`steps`, as posted) against `env`. Steps that are not valid
/// steps at all are left to [`crate::process::compile`], which names them.
pub fn check_template(steps: &[Value], env: &TemplateEnv<'_>) -> Vec<FieldError> {
    let mut check = Check { env, errors: Vec::new() };
    check.sequence("steps", steps);
    check.errors
}

struct Check<'a, 'e> {
    env: &'a TemplateEnv<'e>,
    errors: Vec<FieldError>,
}

impl Check<'_, '_> {
    fn error(&mut self, field: String, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    fn sequence(&mut self, path: &str, steps: &[Value]) {
        for (i, value) in steps.iter().enumerate() {
            self.step(&format!("{path}[{i}]"), value);
        }
    }

    fn step(&mut self, path: &str, value: &Value) {
        let Ok(kind) = serde_json::from_value::<StepKind>(value.clone()) else { return };
        if let Ok(known) = serde_json::to_value(&kind) {
            let name = known.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
            self.unknown_keys(path, value, &known, &format!("a {name} step"), true);
        }
        match &kind {
            StepKind::Task { title, description, assignee, .. } => {
                self.text(&format!("{path}.title"), title);
                self.text(&format!("{path}.description"), description);
                self.assignee(&format!("{path}.assignee"), assignee, true);
            }
            StepKind::Approval { assignees, title, .. } => {
                for (i, assignee) in assignees.iter().enumerate() {
                    self.assignee(&format!("{path}.assignees[{i}]"), assignee, false);
                }
                if let Some(title) = title {
                    self.text(&format!("{path}.title"), title);
                }
            }
            StepKind::RequestInfo { assignee, form, write_to, title } => {
                self.assignee(&format!("{path}.assignee"), assignee, false);
                if let Some(title) = title {
                    self.text(&format!("{path}.title"), title);
                }
                if *write_to == super::process::WriteTo::Fields {
                    for (i, field) in form.iter().enumerate() {
                        if !super::process::is_rows(field) && self.env.schema.field(&field.key).is_none() {
                            self.error(
                                format!("{path}.form[{i}].key"),
                                format!(
                                    "answers go to fields (write_to: fields) and type `{}` has no field `{}`",
                                    self.env.schema.def.key, field.key
                                ),
                            );
                        }
                    }
                }
            }
            StepKind::SetFields { fields } => {
                for (key, value) in fields {
                    let at = format!("{path}.fields.{key}");
                    match self.env.schema.field(key) {
                        None => self.error(at, format!("type `{}` has no field `{key}`", self.env.schema.def.key)),
                        Some(def) if value.is_null() && def.required => {
                            self.error(at, "this field is required and cannot be cleared")
                        }
                        Some(def) if !value.is_null() => {
                            if let Err(message) = def.validate(value) {
                                self.error(at, message);
                            }
                        }
                        Some(_) => {}
                    }
                }
            }
            StepKind::Condition { then, otherwise, .. } => {
                self.sequence(&format!("{path}.then"), then);
                self.sequence(&format!("{path}.else"), otherwise);
            }
            StepKind::Parallel { branches } => {
                for (i, branch) in branches.iter().enumerate() {
                    self.sequence(&format!("{path}.branches[{i}]"), branch);
                }
            }
            StepKind::Wait { until_field, field, stage, .. } => {
                if let Some(key) = until_field {
                    match self.env.schema.field(key).map(|f| f.kind) {
                        Some(FieldKind::Date | FieldKind::Datetime) => {}
                        Some(_) => self.error(format!("{path}.until_field"), format!("`{key}` is not a date field")),
                        None => self.no_field(format!("{path}.until_field"), key),
                    }
                }
                if let Some(key) = field
                    && self.env.schema.field(key).is_none()
                    && !super::trigger::is_builtin_field(key)
                {
                    self.no_field(format!("{path}.field"), key);
                }
                if let Some(stage) = stage {
                    self.stage(&format!("{path}.stage"), None, stage);
                }
            }
            StepKind::Notify { to, text } => {
                self.assignee(&format!("{path}.to"), to, false);
                self.text(&format!("{path}.text"), text);
            }
            StepKind::Move { stage, funnel, .. } => {
                if let Some(stage) = stage {
                    self.stage(path, funnel.as_deref(), stage);
                }
            }
            StepKind::Plugin { plugin, version, .. } => {
                if let Some(e) = (self.env.plugin)(plugin, version) {
                    self.error(format!("{path}.{}", e.field), e.message);
                }
            }
            StepKind::StartProcess { .. } => {}
        }
    }

    /// Keys of `given` that `known` (the same value as parsed and written back) lacks: keys
    /// nothing reads. Nested objects (form fields, their columns) are compared alike; values
    /// kept whole (configs, field values, nested steps) come back unchanged.
    fn unknown_keys(&mut self, path: &str, given: &Value, known: &Value, what: &str, step: bool) {
        match (given, known) {
            (Value::Object(given), Value::Object(known)) => {
                for (key, value) in given {
                    match known.get(key) {
                        Some(back) => self.unknown_keys(&format!("{path}.{key}"), value, back, "it", false),
                        None if step && key == "id" => {}
                        None => {
                            let takes: Vec<&str> = known.keys().map(String::as_str).filter(|k| *k != "kind").collect();
                            let takes = if step { [&["id"][..], takes.as_slice()].concat() } else { takes };
                            self.error(
                                format!("{path}.{key}"),
                                format!("unknown key `{key}`: {what} takes {}", takes.join(", ")),
                            );
                        }
                    }
                }
            }
            (Value::Array(given), Value::Array(known)) => {
                for (i, (value, back)) in given.iter().zip(known).enumerate() {
                    self.unknown_keys(&format!("{path}[{i}]"), value, back, "it", false);
                }
            }
            _ => {}
        }
    }

    /// An assignee: `{"user": id}`, `{"role": key}` or `{"relation": ..}` (and a bare user id
    /// where `user_id` allows it, as tasks take it).
    fn assignee(&mut self, path: &str, value: &Value, user_id: bool) {
        if user_id && value.is_i64() {
            return;
        }
        if let Some(map) = value.as_object() {
            if map.len() > 1 {
                let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                self.error(path.to_string(), format!("one of user, role or relation, not {}", keys.join(" and ")));
                return;
            }
            if let Some(relation) = map.get("relation")
                && serde_json::from_value::<Relation>(relation.clone()).is_err()
            {
                self.error(
                    format!("{path}.relation"),
                    format!("unknown relation {relation}; use responsible or department-head"),
                );
                return;
            }
        }
        if let Err(e) = Assignee::from_json(path, value) {
            self.errors.push(e);
        }
    }

    /// A text's placeholders: item properties, fields of the type, process variables.
    fn text(&mut self, path: &str, text: &str) {
        let fields: Vec<&str> = self.env.schema.fields.iter().map(|f| f.key.as_str()).collect();
        if let Err(message) = voronka_placeholders::check(text, &fields, true) {
            self.error(path.to_string(), message);
        }
    }

    /// A stage of `funnel`, or of any funnel of the type when none is named; `path` is the
    /// step's (the problem names its `funnel` or `stage`).
    fn stage(&mut self, path: &str, funnel: Option<&str>, stage: &str) {
        let schema = self.env.schema;
        let type_key = &schema.def.key;
        match funnel {
            Some(key) => match schema.funnel(key) {
                None => self.error(format!("{path}.funnel"), format!("no funnel `{key}` in type `{type_key}`")),
                Some(f) if f.stage(stage).is_none() => {
                    self.error(format!("{path}.stage"), format!("no stage `{stage}` in funnel `{key}`"))
                }
                Some(_) => {}
            },
            None if !schema.def.has_stages => {
                self.error(format!("{path}.stage"), format!("type `{type_key}` has no stages"))
            }
            None if !schema.funnels.iter().any(|f| f.stage(stage).is_some()) => {
                self.error(format!("{path}.stage"), format!("no stage `{stage}` in the funnels of type `{type_key}`"))
            }
            None => {}
        }
    }

    fn no_field(&mut self, path: String, key: &str) {
        let type_key = self.env.schema.def.key.clone();
        self.error(path, format!("type `{type_key}` has no field `{key}`"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity_type::EntityType;
    use crate::field::FieldDef;
    use crate::funnel::{Funnel, Stage};
    use serde_json::json;

    fn deal() -> TypeSchema {
        let stage =
            |key: &str| Stage { key: key.into(), title: key.into(), semantics: crate::funnel::Semantics::Process };
        let field = |key: &str, kind: FieldKind| FieldDef {
            key: key.into(),
            title: key.into(),
            kind,
            required: false,
            multiple: false,
            options: vec![],
            target: None,
        };
        TypeSchema {
            def: EntityType {
                key: "deal".into(),
                title: "Deal".into(),
                builtin: true,
                has_stages: true,
                has_funnels: true,
                has_amount: true,
                parents: vec![],
            },
            fields: vec![field("floor", FieldKind::Number), field("size", FieldKind::String)],
            funnels: vec![
                Funnel {
                    key: "sales".into(),
                    title: "Sales".into(),
                    is_default: true,
                    stages: vec![stage("new"), stage("won")],
                    manual_moves: Default::default(),
                },
                Funnel {
                    key: "claims".into(),
                    title: "Claims".into(),
                    is_default: false,
                    stages: vec![stage("open")],
                    manual_moves: Default::default(),
                },
            ],
        }
    }

    fn problems(steps: Value) -> Vec<(String, String)> {
        let schema = deal();
        let plugin = |name: &str, _: &str| {
            (name != "doubler")
                .then(|| FieldError::new("plugin", format!("plugin `{name}` is of world trigger, not bp-step")))
        };
        let env = TemplateEnv { schema: &schema, plugin: &plugin };
        let steps = steps.as_array().cloned().unwrap_or_default();
        check_template(&steps, &env).into_iter().map(|e| (e.field, e.message)).collect()
    }

    fn fields(steps: Value) -> Vec<String> {
        problems(steps).into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn a_runnable_template_passes() {
        let steps = json!([
            {"id": "t", "kind": "task", "title": "Measure {{item.title}} on floor {{item.fields.floor}}",
             "assignee": 5, "deadline_s": 60},
            {"id": "a", "kind": "approval", "assignees": [{"relation": "department-head"}, {"role": "boards"}]},
            {"id": "c", "kind": "condition", "when": "true",
             "then": [{"id": "s", "kind": "set-fields", "fields": {"floor": 2, "size": null}}],
             "else": [{"id": "n", "kind": "notify", "to": {"user": 1}, "text": "{{vars.a}}"}]},
            {"id": "r", "kind": "request-info", "assignee": {"relation": "responsible"}, "write_to": "fields",
             "form": [{"key": "size", "title": "Size", "kind": "string", "required": true}]},
            {"id": "m", "kind": "move", "stage": "open", "funnel": "claims"},
            {"id": "b", "kind": "move", "return": true},
            {"id": "w", "kind": "move", "stage": "won"},
            {"id": "p", "kind": "plugin", "plugin": "doubler", "config": {"any": "thing"}}
        ]);
        assert_eq!(problems(steps), vec![]);
    }

    #[test]
    fn names_each_problem_by_its_path() {
        let steps = json!([
            {"id": "t", "kind": "task", "title": "x", "assignee": {"relation": "boss"}, "deadline": 60},
            {"id": "c", "kind": "condition", "when": "true", "then": [
                {"id": "s", "kind": "set-fields", "fields": {"colour": "red", "floor": "third"}}]},
            {"id": "m", "kind": "move", "stage": "nowhere"},
            {"id": "f", "kind": "move", "stage": "won", "funnel": "claims"},
            {"id": "p", "kind": "plugin", "plugin": "keyword"},
            {"id": "n", "kind": "notify", "to": {"user": 1}, "text": "Hi {{item.titel}}"},
            {"id": "r", "kind": "request-info", "assignee": {"user": 1},
             "form": [{"key": "size", "kind": "string", "require": true}]}
        ]);
        let found = problems(steps);
        let at: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            at,
            vec![
                "steps[0].deadline",
                "steps[0].assignee.relation",
                "steps[1].then[0].fields.colour",
                "steps[1].then[0].fields.floor",
                "steps[2].stage",
                "steps[3].stage",
                "steps[4].plugin",
                "steps[5].text",
                "steps[6].form[0].require",
            ]
        );
        assert!(found[0].1.starts_with("unknown key `deadline`: a task step takes id, "), "{}", found[0].1);
        assert!(found[0].1.contains("deadline_s"), "{}", found[0].1);
        assert_eq!(found[1].1, "unknown relation \"boss\"; use responsible or department-head");
        assert_eq!(found[4].1, "no stage `nowhere` in the funnels of type `deal`");
        assert_eq!(found[6].1, "plugin `keyword` is of world trigger, not bp-step");
    }

    #[test]
    fn answers_written_to_fields_need_the_fields() {
        let steps = json!([{"id": "r", "kind": "request-info", "assignee": {"user": 1}, "write_to": "fields",
            "form": [{"key": "colour", "kind": "string"}]}]);
        assert_eq!(fields(steps), vec!["steps[0].form[0].key"]);
    }
}
