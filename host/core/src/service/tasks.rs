//! Tasks: created by people, robots (`create-task`) and processes; assigned to one responsible
//! user (named, or resolved from a role or a relation to the linked item), followed by auditors,
//! linked to several items, completed with a result. Every change is an event (`task.created`,
//! `task.updated`, `task.completed`; `task.overdue` comes from the deadline watch) and the people
//! concerned are notified.
//!
//! The [`super::Tasks`] aggregate (`core.tasks()`).

use serde_json::{Value, json};

use super::notifications::NewNotification;
use super::{Caller, ServiceError, ServiceResult, Tasks};
use voronka_model::FieldError;
use voronka_model::access::Access;
use voronka_model::assignee::Assignee;
use voronka_model::event::EventKind;
use voronka_model::item::{Item, ItemRef};
use voronka_model::task::{ChecklistEntry, MAX_LIST, MAX_TEXT, MAX_TITLE, Task, TaskStatus};
use voronka_model::task::{TaskPatch, TaskRequest};
use voronka_model::time::{Micros, now_micros, parse_rfc3339, to_rfc3339};
use voronka_store::Tx;
use voronka_store::outbox::{self, NewEvent};
use voronka_store::tasks::{self as repo, TaskFilter, TaskRow};

/// `GET /tasks` filters.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    /// Tasks the caller does, created or follows.
    pub mine: bool,
    /// Only tasks this user is responsible for.
    pub responsible: Option<i64>,
    /// Only tasks linked to this item.
    pub linked: Option<ItemRef>,
    /// Only tasks in one of these statuses; any status when empty.
    pub statuses: Vec<TaskStatus>,
    /// Only tasks past their deadline and not completed.
    pub overdue: bool,
    /// Only tasks this user does, created or follows (administrators, or the caller themselves).
    pub user: Option<i64>,
    /// Every task, whoever's (administrators).
    pub all: bool,
}

/// The checks shared by creation and change, collecting every problem.
#[derive(Default)]
struct Checks(Vec<FieldError>);

impl Checks {
    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    fn title(&mut self, title: &str) -> String {
        let title = title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE {
            self.error("title", format!("a title of 1 to {MAX_TITLE} characters is required"));
        }
        title.to_string()
    }

    fn text(&mut self, field: &str, text: &str) {
        if text.chars().count() > MAX_TEXT {
            self.error(field, format!("at most {MAX_TEXT} characters"));
        }
    }

    fn list_len(&mut self, field: &str, len: usize) {
        if len > MAX_LIST {
            self.error(field, format!("at most {MAX_LIST} entries"));
        }
    }

    fn checklist(&mut self, checklist: &[ChecklistEntry]) {
        self.list_len("checklist", checklist.len());
        for (i, entry) in checklist.iter().enumerate() {
            if entry.text.trim().is_empty() || entry.text.chars().count() > 1_000 {
                self.error(format!("checklist[{i}].text"), "a text of 1 to 1,000 characters is required");
            }
        }
    }

    fn tags(&mut self, tags: &[String]) {
        self.list_len("tags", tags.len());
        for (i, tag) in tags.iter().enumerate() {
            if tag.trim().is_empty() || tag.chars().count() > 64 {
                self.error(format!("tags[{i}]"), "a tag of 1 to 64 characters is required");
            }
        }
    }

    fn deadline(&mut self, value: Option<&str>, in_s: Option<i64>, now: Micros) -> Option<Micros> {
        match (value, in_s) {
            (Some(_), Some(_)) => {
                self.error("deadline", "give `deadline` or `deadline_in_s`, not both");
                None
            }
            (Some(text), None) => {
                let at = parse_rfc3339(text);
                if at.is_none() {
                    self.error("deadline", "expected an RFC 3339 time like 2026-12-01T18:00:00Z");
                }
                at
            }
            (None, Some(s)) if (0..=10 * 365 * 86_400).contains(&s) => Some(now + s * 1_000_000),
            (None, Some(_)) => {
                self.error("deadline_in_s", "seconds from 0 to ten years");
                None
            }
            (None, None) => None,
        }
    }

    fn finish(self) -> ServiceResult<()> {
        if self.0.is_empty() { Ok(()) } else { Err(ServiceError::Validation(self.0)) }
    }
}

/// The property changes between two states of a task: `[{field, old, new}]`.
fn diff(old: &Task, new: &Task) -> Vec<Value> {
    let pairs = [
        ("title", json!(old.title), json!(new.title)),
        ("description", json!(old.description), json!(new.description)),
        ("responsible", json!(old.responsible), json!(new.responsible)),
        ("status", json!(old.status), json!(new.status)),
        ("deadline", json!(old.deadline), json!(new.deadline)),
        ("links", json!(old.links), json!(new.links)),
        ("auditors", json!(old.auditors), json!(new.auditors)),
        ("checklist", json!(old.checklist), json!(new.checklist)),
        ("require_result", json!(old.require_result), json!(new.require_result)),
        ("tags", json!(old.tags), json!(new.tags)),
        ("result", json!(old.result), json!(new.result)),
    ];
    pairs.into_iter().filter(|(_, a, b)| a != b).map(|(f, a, b)| json!({"field": f, "old": a, "new": b})).collect()
}

impl Tasks<'_> {
    /// Creates a task; its responsible is notified (unless they created it).
    pub async fn create(&self, caller: &Caller, input: TaskRequest) -> ServiceResult<Task> {
        let task = self
            .core
            .write(|mut tx| {
                let input = input.clone();
                async move {
                    let task = self.create_in(&mut tx, caller, input).await?;
                    Ok((tx, task))
                }
            })
            .await?;
        self.deadline_set(task.deadline.is_some());
        Ok(task)
    }

    /// Tells the deadline watch when a deadline was set (after the commit).
    fn deadline_set(&self, deadline: bool) {
        if deadline {
            self.core.signals().deadlines.notify_one();
        }
    }

    /// The same inside `tx` (robots and processes create tasks with their other writes).
    pub async fn create_in(&self, tx: &mut Tx, caller: &Caller, input: TaskRequest) -> ServiceResult<Task> {
        let now = now_micros();
        let mut checks = Checks::default();
        let title = checks.title(&input.title);
        checks.text("description", &input.description);
        checks.checklist(&input.checklist);
        checks.tags(&input.tags);
        checks.list_len("auditors", input.auditors.len());
        let deadline = checks.deadline(input.deadline.as_deref(), input.deadline_in_s, now);
        let links = self.check_links(tx, caller, &input.links, &mut checks).await?;
        let auditors = self.check_users("auditors", &input.auditors, &mut checks).await?;
        let responsible = match self.responsible(caller, input.responsible.as_ref(), links.first()).await {
            Ok(r) => r,
            Err(ServiceError::Validation(errors)) => {
                checks.0.extend(errors);
                0
            }
            Err(e) => return Err(e),
        };
        checks.finish()?;
        let mut task = Task {
            id: 0,
            title,
            description: input.description.trim().to_string(),
            status: TaskStatus::New,
            responsible,
            creator: caller.actor.clone(),
            auditors,
            deadline: deadline.map(to_rfc3339),
            overdue: false,
            require_result: input.require_result,
            result: None,
            checklist: input.checklist,
            tags: input.tags.iter().map(|t| t.trim().to_string()).collect(),
            links: links.iter().map(|i| ItemRef { type_key: i.type_key.clone(), id: i.id }).collect(),
            created_at: to_rfc3339(now),
            updated_at: to_rfc3339(now),
            completed_at: None,
            version: 1,
        };
        let row = TaskRow { task: &task, deadline, rewatch: true, completed_at: None };
        task.id = repo::insert(tx, &row, now).await?;
        task.overdue = deadline.is_some_and(|d| d <= now);
        self.record_event(tx, caller, EventKind::TaskCreated, json!({ "task": task }), now).await?;
        if caller.actor.user_id() != Some(task.responsible) {
            let text = format!("New task for you: {}", task.title);
            self.notify(tx, caller, &task, task.responsible, "task-assigned", text).await?;
        }
        Ok(task)
    }

    /// A task the caller may see: theirs (responsible, creator, auditor), one linked to an item
    /// they may read, or any for an administrator.
    pub async fn get(&self, caller: &Caller, id: i64) -> ServiceResult<Task> {
        let mut conn = self.core.store.key_reader().await?;
        let task = repo::get(&mut conn, id, now_micros()).await?;
        drop(conn);
        match task {
            Some(task) if self.may_see(caller, &task).await? => Ok(task),
            _ => Err(ServiceError::NotFound(format!("no task {id}"))),
        }
    }

    async fn may_see(&self, caller: &Caller, task: &Task) -> ServiceResult<bool> {
        let user = caller.principal.user_id;
        if caller.principal.is_admin || task.responsible == user || task.creator.user_id() == Some(user) {
            return Ok(true);
        }
        if task.auditors.contains(&user) {
            return Ok(true);
        }
        for link in &task.links {
            if self.core.items().get(caller, &link.type_key, link.id).await.is_ok() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Tasks matching `query`, by id. Others than administrators see their own tasks, or every
    /// task of an item they may read when they filter by it; asking for another user's tasks or
    /// everyone's (`all`) is for administrators (403 otherwise).
    pub async fn list(
        &self,
        caller: &Caller,
        query: TaskQuery,
        after: i64,
        limit: i64,
    ) -> ServiceResult<(Vec<Task>, Option<i64>)> {
        let user = caller.principal.user_id;
        if query.mine && (query.user.is_some() || query.all) {
            return Err(ServiceError::invalid("mine", "give one of `mine`, `user` and `all`"));
        }
        let participant = match (query.user, query.all) {
            (None, false) => query.mine.then_some(user),
            (wanted, all) => super::list_owner(caller, wanted, all, "tasks")?,
        };
        let mut filter = TaskFilter {
            participant,
            responsible: query.responsible,
            linked: query.linked.clone(),
            statuses: query.statuses,
            overdue: query.overdue,
        };
        if !caller.principal.is_admin && filter.participant.is_none() {
            let readable = match &query.linked {
                Some(item) => self.core.items().get(caller, &item.type_key, item.id).await.is_ok(),
                None => false,
            };
            if !readable {
                filter.participant = Some(user);
            }
        }
        let mut conn = self.core.store.reader().clone();
        let mut tasks = repo::list(&mut conn, &filter, now_micros(), after, limit).await?;
        let next = super::page_cursor(&mut tasks, limit, |t| t.id);
        Ok((tasks, next))
    }

    /// Changes a task (its creator, responsible or an administrator).
    pub async fn update(&self, caller: &Caller, id: i64, patch: TaskPatch) -> ServiceResult<Task> {
        let old = self.for_change(caller, id).await?;
        let owner = caller.principal.is_admin || old.creator.user_id() == Some(caller.principal.user_id);
        let terms = patch.responsible.is_some()
            || patch.deadline.is_some()
            || patch.auditors.is_some()
            || patch.require_result.is_some();
        if terms && !owner {
            return Err(ServiceError::Forbidden(
                "only the task's creator or an administrator may change its responsible, deadline, auditors or result rule"
                    .into(),
            ));
        }
        let now = now_micros();
        let mut task = old.clone();
        let mut checks = Checks::default();
        if let Some(title) = &patch.title {
            task.title = checks.title(title);
        }
        if let Some(description) = &patch.description {
            checks.text("description", description);
            task.description = description.trim().to_string();
        }
        let mut tx = self.core.store.begin();
        if let Some(links) = &patch.links {
            let items = self.check_links(&mut tx, caller, links, &mut checks).await?;
            task.links = items.iter().map(|i| ItemRef { type_key: i.type_key.clone(), id: i.id }).collect();
        }
        if let Some(responsible) = &patch.responsible {
            let first = match task.links.first() {
                Some(l) => {
                    self.core.items().get(&Caller::automation(caller.actor.clone(), 0), &l.type_key, l.id).await.ok()
                }
                None => None,
            };
            match self.responsible(caller, Some(responsible), first.as_ref()).await {
                Ok(r) => task.responsible = r,
                Err(ServiceError::Validation(errors)) => checks.0.extend(errors),
                Err(e) => return Err(e),
            }
        }
        let mut deadline = repo::deadline_of(&old);
        if let Some(value) = &patch.deadline {
            deadline = match value {
                None => None,
                Some(Value::String(text)) => checks.deadline(Some(text), None, now),
                _ => {
                    checks.error("deadline", "expected an RFC 3339 time or null");
                    None
                }
            };
            task.deadline = deadline.map(to_rfc3339);
        }
        match patch.status {
            Some(TaskStatus::Completed) => {
                checks.error("status", "complete a task with POST /tasks/{id}/complete (it checks the result)")
            }
            Some(status) => {
                if old.status == TaskStatus::Completed {
                    task.result = None;
                    task.completed_at = None;
                }
                task.status = status;
            }
            None => {}
        }
        if let Some(auditors) = &patch.auditors {
            checks.list_len("auditors", auditors.len());
            task.auditors = self.check_users("auditors", auditors, &mut checks).await?;
        }
        if let Some(checklist) = patch.checklist {
            checks.checklist(&checklist);
            task.checklist = checklist;
        }
        if let Some(require) = patch.require_result {
            task.require_result = require;
        }
        if let Some(tags) = patch.tags {
            checks.tags(&tags);
            task.tags = tags.iter().map(|t| t.trim().to_string()).collect();
        }
        checks.finish()?;
        let changes = diff(&old, &task);
        if changes.is_empty() {
            return Ok(old);
        }
        task.version += 1;
        task.updated_at = to_rfc3339(now);
        task.overdue = task.status != TaskStatus::Completed && deadline.is_some_and(|d| d <= now);
        // A new deadline, or a reopened task, is watched again.
        let rewatch = deadline != repo::deadline_of(&old)
            || (old.status == TaskStatus::Completed && task.status != TaskStatus::Completed);
        let completed_at = task.completed_at.as_deref().and_then(parse_rfc3339);
        let row = TaskRow { task: &task, deadline, rewatch, completed_at };
        if !repo::update(&mut tx, &row, now).await? {
            return Err(ServiceError::Conflict(format!("task {id} changed meanwhile; read it again")));
        }
        let payload = json!({ "task": task, "changes": changes });
        self.record_event(&mut tx, caller, EventKind::TaskUpdated, payload, now).await?;
        if task.responsible != old.responsible && caller.actor.user_id() != Some(task.responsible) {
            let text = format!("Task assigned to you: {}", task.title);
            self.notify(&mut tx, caller, &task, task.responsible, "task-assigned", text).await?;
        }
        tx.commit().await?;
        self.core.committed();
        self.deadline_set(rewatch);
        Ok(task)
    }

    /// Completes a task (its responsible, its creator or an administrator) with a result,
    /// required when the task says so. Its creator is notified.
    pub async fn complete(&self, caller: &Caller, id: i64, result: Option<String>) -> ServiceResult<Task> {
        let task = self
            .core
            .write(|mut tx| {
                let result = result.clone();
                async move {
                    let task = self.complete_in(&mut tx, caller, id, result).await?;
                    Ok((tx, task))
                }
            })
            .await?;
        self.core.signals().processes.notify_one();
        Ok(task)
    }

    /// The same inside `tx`.
    pub async fn complete_in(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        id: i64,
        result: Option<String>,
    ) -> ServiceResult<Task> {
        let old = self.for_change(caller, id).await?;
        if old.status == TaskStatus::Completed {
            return Err(ServiceError::Conflict(format!("task {id} is already completed")));
        }
        let result = result.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
        let mut checks = Checks::default();
        if let Some(text) = &result {
            checks.text("result", text);
        } else if old.require_result {
            checks.error("result", "this task needs a result to be completed");
        }
        checks.finish()?;
        let now = now_micros();
        let mut task = old.clone();
        task.status = TaskStatus::Completed;
        task.result = result;
        task.completed_at = Some(to_rfc3339(now));
        task.updated_at = to_rfc3339(now);
        task.overdue = false;
        task.version += 1;
        let row = TaskRow { task: &task, deadline: repo::deadline_of(&task), rewatch: false, completed_at: Some(now) };
        if !repo::update(tx, &row, now).await? {
            return Err(ServiceError::Conflict(format!("task {id} changed meanwhile; read it again")));
        }
        self.record_event(tx, caller, EventKind::TaskCompleted, json!({ "task": task }), now).await?;
        if let Some(process) = voronka_store::processes::process_of_task(tx, id).await? {
            // The process goes on as part of the completer's chain (a person's: a new one).
            voronka_store::processes::resume(tx, process, i64::from(caller.depth));
        }
        if let Some(creator) = task.creator.user_id()
            && caller.actor.user_id() != Some(creator)
        {
            let text = format!("Task completed: {}", task.title);
            self.notify(tx, caller, &task, creator, "task-completed", text).await?;
        }
        Ok(task)
    }

    /// Loads a task the caller may change: its responsible, its creator, or an administrator.
    async fn for_change(&self, caller: &Caller, id: i64) -> ServiceResult<Task> {
        let task = self.get(caller, id).await?;
        let user = caller.principal.user_id;
        if caller.principal.is_admin || task.responsible == user || task.creator.user_id() == Some(user) {
            Ok(task)
        } else {
            Err(ServiceError::Forbidden(format!(
                "only the responsible, the creator or an administrator may change task {id}"
            )))
        }
    }

    /// The linked items, each existing and readable by the caller; problems go to `checks`.
    async fn check_links(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        links: &[ItemRef],
        checks: &mut Checks,
    ) -> ServiceResult<Vec<Item>> {
        checks.list_len("links", links.len());
        let mut items: Vec<Item> = Vec::new();
        for (i, link) in links.iter().enumerate() {
            if items.iter().any(|it| it.type_key == link.type_key && it.id == link.id) {
                continue;
            }
            match self.core.items().load_in(tx, caller, &link.type_key, link.id).await {
                Ok(item) if item.type_key == link.type_key => {
                    // Linking is changing: a completed task can move the item by a trigger.
                    if self.core.require(caller, &item.type_key, item.funnel.as_deref(), Access::Write).is_err() {
                        checks.error(
                            format!("links[{i}]"),
                            format!("write access to `{}` item {} is required", link.type_key, link.id),
                        );
                    }
                    items.push(item)
                }
                Ok(_) | Err(ServiceError::NotFound(_) | ServiceError::Forbidden(_)) => {
                    checks.error(format!("links[{i}]"), format!("no `{}` item {}", link.type_key, link.id))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(items)
    }

    /// The listed users, each existing and active, without repeats.
    async fn check_users(&self, field: &str, users: &[i64], checks: &mut Checks) -> ServiceResult<Vec<i64>> {
        let mut out: Vec<i64> = Vec::new();
        for (i, id) in users.iter().enumerate() {
            match voronka_store::people::get_user(self.core.store.reader(), *id).await? {
                Some(u) if u.active => {
                    if !out.contains(id) {
                        out.push(*id)
                    }
                }
                _ => checks.error(format!("{field}[{i}]"), format!("no active user {id}")),
            }
        }
        Ok(out)
    }

    /// The responsible user of a task: a user id, an assignee resolved for `item`, or the
    /// caller when none is given.
    async fn responsible(&self, caller: &Caller, value: Option<&Value>, item: Option<&Item>) -> ServiceResult<i64> {
        let assignee = match value {
            None | Some(Value::Null) => match caller.actor.user_id() {
                Some(user) => Assignee::User { user },
                None => return Err(ServiceError::invalid("responsible", "automation must name the responsible")),
            },
            Some(Value::Number(n)) => match n.as_i64() {
                Some(user) => Assignee::User { user },
                None => return Err(ServiceError::invalid("responsible", "expected a user id")),
            },
            Some(other) => Assignee::from_json("responsible", other)?,
        };
        self.core.people().resolve_one_assignee("responsible", &assignee, item).await
    }

    async fn record_event(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        kind: EventKind,
        payload: Value,
        now: Micros,
    ) -> ServiceResult<()> {
        let event =
            NewEvent { kind, type_key: None, item_id: None, actor: &caller.actor, depth: caller.depth, payload };
        outbox::record(tx, &event, now);
        Ok(())
    }

    /// Notifies `user` about `task` (about its first linked item).
    async fn notify(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        task: &Task,
        user: i64,
        kind: &'static str,
        text: String,
    ) -> ServiceResult<()> {
        let new =
            NewNotification { user, kind, text, about: task.links.first().cloned(), data: json!({ "task": task.id }) };
        self.core.notifications().notify_in(tx, caller, new).await.map(drop)
    }

    /// Marks the tasks whose deadline passed overdue, each with a `task.overdue` event and a
    /// notification to its responsible; returns how many (at most `limit`).
    pub async fn mark_overdue(&self, limit: i64) -> ServiceResult<usize> {
        let now = now_micros();
        let mut tx = self.core.store.begin();
        let ids = repo::mark_overdue(&mut tx, now, limit).await?;
        let system = Caller::automation(voronka_model::actor::Actor::System, 0);
        for id in &ids {
            let task = match repo::get(&mut tx, *id, now).await {
                Ok(Some(task)) => task,
                Ok(None) => continue,
                Err(e @ voronka_store::StoreError::Corrupt { .. }) => {
                    tracing::error!(task = id, error = %e, "an overdue task is unreadable; it is marked without an event");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            self.record_event(&mut tx, &system, EventKind::TaskOverdue, json!({ "task": task }), now).await?;
            let text = format!("Task overdue: {}", task.title);
            match self.notify(&mut tx, &system, &task, task.responsible, "task-overdue", text).await {
                Ok(()) => {}
                Err(ServiceError::Validation(_)) => {
                    tracing::warn!(task = id, "an overdue task's responsible cannot be notified")
                }
                Err(e) => return Err(e),
            }
        }
        tx.commit().await?;
        if !ids.is_empty() {
            self.core.committed();
        }
        Ok(ids.len())
    }
}
