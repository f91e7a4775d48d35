//! Assignments: a person's part in a process — an approval to decide, a form to fill in. The
//! answer is validated against the form (422 naming the field), recorded, written to the item's
//! fields when the step says so, and the process is woken to go on, all in one transaction.
//!
//! The [`super::Assignments`] aggregate (`core.assignments()`).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::notifications::NewNotification;
use super::{Assignments, Caller, ServiceError, ServiceResult};
use voronka_model::FieldError;
use voronka_model::actor::Actor;
use voronka_model::field::{FieldDef, FieldKind, Reference};
use voronka_model::item::{ItemPatch, ItemRef};
use voronka_model::process::{Assignment, FormField, StepKind, WriteTo, is_rows};
use voronka_model::time::now_micros;
use voronka_store::processes as repo;

/// `POST /assignments/{id}/complete` body.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteAssignment {
    /// `approve` or `reject` (approvals).
    #[serde(default)]
    pub decision: Option<String>,
    /// A comment kept with the assignment, at most 20,000 characters (trimmed); blank, `null` or
    /// absent leaves none.
    #[serde(default)]
    pub comment: Option<String>,
    /// Answers to the form, by field key (requests for information).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// `GET /assignments` filters.
#[derive(Debug, Clone, Default)]
pub struct AssignmentQuery {
    /// `open` (default), `done`, `cancelled` or `all`.
    pub status: Option<String>,
    /// Only this user's (administrators, or the caller themselves).
    pub user: Option<i64>,
    /// Everyone's (administrators).
    pub all: bool,
    /// Only those of this item.
    pub item: Option<ItemRef>,
}

/// Most rows of a repeatable form field.
const MAX_ROWS: usize = 500;

impl Assignments<'_> {
    /// Assignments matching `query` (`status` `open` by default; `all` for every one), by id.
    /// Without a filter, the caller's own; administrators may ask for another user's or for
    /// everyone's (`all`), others get 403. With an item, that item's assignments, everyone's
    /// when the caller may read the item (their own otherwise).
    pub async fn list(
        &self,
        caller: &Caller,
        query: &AssignmentQuery,
        after: i64,
        limit: i64,
    ) -> ServiceResult<(Vec<Assignment>, Option<i64>)> {
        let status = match query.status.as_deref().unwrap_or("open") {
            "all" => None,
            s @ ("open" | "done" | "cancelled") => Some(s),
            other => {
                return Err(ServiceError::invalid("status", format!("`{other}` is not open, done, cancelled or all")));
            }
        };
        let mut user = super::list_owner(caller, query.user, query.all, "assignments")?;
        if let Some(item) = query.item.as_ref().filter(|_| query.user.is_none() && !query.all)
            && self.core.items().get(caller, &item.type_key, item.id).await.is_ok()
        {
            user = None;
        }
        let filter = repo::AssignmentFilter { user, item: query.item.as_ref(), status };
        let mut rows = repo::assignments(self.core.store.reader(), &filter, after, limit).await?;
        let next = super::page_cursor(&mut rows, limit, |a| a.id);
        Ok((rows, next))
    }

    async fn for_caller(&self, caller: &Caller, id: i64) -> ServiceResult<Assignment> {
        let mut conn = self.core.store.reader().clone();
        match repo::assignment(&mut conn, id).await? {
            Some(a) if a.user == caller.principal.user_id || caller.principal.is_admin => Ok(a),
            _ => Err(ServiceError::NotFound(format!("no assignment {id}"))),
        }
    }

    /// Completes one of the caller's open assignments.
    pub async fn complete(&self, caller: &Caller, id: i64, input: CompleteAssignment) -> ServiceResult<Assignment> {
        let mut assignment = self.for_caller(caller, id).await?;
        if assignment.user != caller.principal.user_id {
            return Err(ServiceError::Forbidden(format!("assignment {id} is another user's")));
        }
        if assignment.status != "open" {
            return Err(ServiceError::Conflict(format!("assignment {id} is {}", assignment.status)));
        }
        let comment = input.comment.map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
        if comment.as_ref().is_some_and(|c| c.chars().count() > 20_000) {
            return Err(ServiceError::invalid("comment", "at most 20,000 characters"));
        }
        let (instance, program) = self.core.processes().instance_program(assignment.process).await?;
        let step = program.steps.iter().find(|s| s.id == assignment.step).map(|s| s.kind.clone());
        let mut files = Vec::new();
        let mut write_fields = None;
        match (assignment.kind.as_str(), &step) {
            ("approval", _) => match input.decision.as_deref() {
                Some("approve" | "reject") => assignment.decision = input.decision.clone(),
                _ => return Err(ServiceError::invalid("decision", "decide with `approve` or `reject`")),
            },
            ("request-info", Some(StepKind::RequestInfo { write_to, .. })) => {
                if input.decision.is_some() {
                    return Err(ServiceError::invalid(
                        "decision",
                        "a request for information takes answers, not a decision",
                    ));
                }
                let answers = self.check_answers(caller, &assignment.form, &input.fields, &mut files).await?;
                if *write_to == WriteTo::Fields {
                    write_fields = Some(answers.clone());
                }
                assignment.answers = Some(Value::Object(answers));
            }
            _ => return Err(ServiceError::Conflict(format!("assignment {id} no longer matches its process"))),
        }
        assignment.comment = comment;
        let now = now_micros();
        let mut tx = self.core.store.begin();
        // The instance first, as every change of a process does (no deadlock, no lost wake-up).
        repo::lock_instance(&mut tx, instance.id).await?;
        if !repo::complete_assignment(&mut tx, &assignment, now).await? {
            return Err(ServiceError::Conflict(format!("assignment {id} is no longer open")));
        }
        let process = Caller::automation(Actor::Process { id: instance.id, name: instance.template.clone() }, 1);
        if let Some(fields) = write_fields {
            let patch = ItemPatch { fields: Some(fields), ..ItemPatch::default() };
            self.core
                .items()
                .update_in(&mut tx, &process, &assignment.item.type_key, assignment.item.id, patch, None)
                .await?;
        }
        // Files answered are about the item: those who may read it may read them.
        voronka_store::files::attach(&mut tx, &files, &assignment.item);
        let text = match assignment.decision.as_deref() {
            Some("approve") => "approved",
            Some(_) => "rejected",
            None => "answered",
        };
        let data = json!({ "assignment": id, "user": caller.principal.user_id, "decision": assignment.decision });
        repo::log(
            &mut tx,
            instance.id,
            Some(&assignment.step),
            &format!("User {} {text}", caller.principal.user_id),
            &data,
            now,
        );
        // A person's answer starts a new chain of automation.
        repo::resume(&mut tx, instance.id, i64::from(caller.depth));
        tx.commit().await?;
        self.core.committed();
        self.core.signals().processes.notify_one();
        assignment.status = "done".into();
        assignment.completed_at = Some(voronka_model::time::to_rfc3339(now));
        Ok(assignment)
    }

    /// Hands one's open assignment (or, for an administrator, anyone's) to another active user,
    /// who is notified.
    pub async fn delegate(&self, caller: &Caller, id: i64, to: i64) -> ServiceResult<Assignment> {
        let mut assignment = self.for_caller(caller, id).await?;
        if assignment.status != "open" {
            return Err(ServiceError::Conflict(format!("assignment {id} is {}", assignment.status)));
        }
        match voronka_store::people::get_user(self.core.store.reader(), to).await? {
            Some(u) if u.active => {}
            _ => return Err(ServiceError::invalid("to", format!("no active user {to}"))),
        }
        let now = now_micros();
        let mut tx = self.core.store.begin();
        repo::lock_instance(&mut tx, assignment.process).await?;
        let step = repo::assignments_of_step(&mut tx, assignment.process, &assignment.step).await?;
        if step.iter().any(|a| a.user == to && a.status != "cancelled") {
            return Err(ServiceError::invalid("to", format!("user {to} already has a part in this step")));
        }
        if !repo::delegate(&mut tx, id, to).await? {
            return Err(ServiceError::Conflict(format!("assignment {id} is no longer open")));
        }
        let text = format!("User {} handed the assignment to user {to}", caller.principal.user_id);
        repo::log(&mut tx, assignment.process, Some(&assignment.step), &text, &json!({ "assignment": id }), now);
        let note = NewNotification {
            user: to,
            kind: "assignment",
            text: format!("Handed to you: {}", assignment.title),
            about: Some(assignment.item.clone()),
            data: json!({ "assignment": id, "process": assignment.process }),
        };
        self.core.notifications().notify_in(&mut tx, caller, note).await?;
        tx.commit().await?;
        self.core.committed();
        assignment.user = to;
        Ok(assignment)
    }

    /// Checks answers against a form: required fields, kinds, rows; users and files must exist
    /// (files must be the caller's to see). Returns the normalised answers; files are collected.
    async fn check_answers(
        &self,
        caller: &Caller,
        form: &[FormField],
        given: &Map<String, Value>,
        files: &mut Vec<i64>,
    ) -> ServiceResult<Map<String, Value>> {
        let mut errors = Vec::new();
        let mut refs = Vec::new();
        for key in given.keys() {
            if !form.iter().any(|f| &f.key == key) {
                errors.push(FieldError::new(format!("fields.{key}"), "not a field of this form"));
            }
        }
        let answers = check_form(form, given, "fields", &mut errors, &mut refs);
        for (path, reference) in refs {
            match reference {
                Reference::User(id) => {
                    if !voronka_store::people::get_user(self.core.store.reader(), id).await?.is_some_and(|u| u.active) {
                        errors.push(FieldError::new(path, format!("no active user {id}")));
                    }
                }
                Reference::File(id) => match self.core.files().get(caller, id).await {
                    Ok(_) => files.push(id),
                    Err(_) => errors.push(FieldError::new(path, format!("no file {id}; upload it to /files first"))),
                },
                Reference::Item { id, .. } => {
                    errors.push(FieldError::new(path, format!("item links are not form answers ({id})")))
                }
            }
        }
        if errors.is_empty() { Ok(answers) } else { Err(ServiceError::Validation(errors)) }
    }
}

/// Validates `given` against `form`, collecting errors under `path` and references to check.
fn check_form(
    form: &[FormField],
    given: &Map<String, Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
    refs: &mut Vec<(String, Reference)>,
) -> Map<String, Value> {
    let mut answers = Map::new();
    for field in form {
        let at = format!("{path}.{}", field.key);
        let value = given.get(&field.key).filter(|v| !v.is_null());
        let Some(value) = value else {
            if field.required {
                errors.push(FieldError::new(at, "this field is required"));
            }
            continue;
        };
        if is_rows(field) {
            let Some(rows) = value.as_array() else {
                errors.push(FieldError::new(at, "expected a list of rows"));
                continue;
            };
            if field.required && rows.is_empty() {
                errors.push(FieldError::new(at.clone(), "at least one row is required"));
            }
            if rows.len() > MAX_ROWS {
                errors.push(FieldError::new(at.clone(), format!("at most {MAX_ROWS} rows")));
                continue;
            }
            let mut out = Vec::new();
            for (i, row) in rows.iter().enumerate() {
                let row_at = format!("{at}[{i}]");
                match row.as_object() {
                    Some(row) => {
                        for key in row.keys().filter(|k| !field.fields.iter().any(|f| &f.key == *k)) {
                            errors.push(FieldError::new(format!("{row_at}.{key}"), "not a column of these rows"));
                        }
                        out.push(Value::Object(check_form(&field.fields, row, &row_at, errors, refs)));
                    }
                    None => errors.push(FieldError::new(row_at, "expected a row (an object)")),
                }
            }
            answers.insert(field.key.clone(), Value::Array(out));
            continue;
        }
        let Some(kind) = FieldKind::parse(&field.kind) else { continue };
        let def = FieldDef {
            key: field.key.clone(),
            title: field.title.clone(),
            kind,
            required: field.required,
            multiple: false,
            options: field.options.clone(),
            target: None,
        };
        match def.validate(value) {
            Ok((normalised, found)) => {
                refs.extend(found.into_iter().map(|r| (at.clone(), r)));
                answers.insert(field.key.clone(), normalised);
            }
            Err(message) => errors.push(FieldError::new(at, message)),
        }
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> Vec<FormField> {
        serde_json::from_value(json!([
            {"key": "b_size", "kind": "string", "required": true},
            {"key": "payments", "kind": "rows", "required": true, "fields": [
                {"key": "amount", "kind": "number", "required": true},
                {"key": "due", "kind": "date"}]}
        ]))
        .unwrap_or_default()
    }

    #[test]
    fn answers_are_checked_field_by_field_and_row_by_row() {
        let mut errors = Vec::new();
        let given = json!({"payments": [{"amount": "x"}, {"due": "2026-02-30"}, 5]});
        check_form(&form(), given.as_object().unwrap_or(&Map::new()), "fields", &mut errors, &mut Vec::new());
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "fields.b_size",
                "fields.payments[0].amount",
                "fields.payments[1].amount",
                "fields.payments[1].due",
                "fields.payments[2]"
            ]
        );
        let mut errors = Vec::new();
        let given = json!({"b_size": "2x3", "payments": [{"amount": "1200.50", "due": "2026-03-01"}]});
        let answers =
            check_form(&form(), given.as_object().unwrap_or(&Map::new()), "fields", &mut errors, &mut Vec::new());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(answers["payments"][0]["amount"], json!(1200.5));
    }
}
