//! Items: create, read, change, move, delete; stage history, timeline and children. The
//! [`super::Items`] aggregate (`core.items()`), with listing in `list.rs`.
//!
//! Every change runs in one transaction that also writes stage history, a timeline entry and a
//! domain event to the outbox.

use serde_json::{Map, Value, json};

use super::{Caller, Items, ServiceError, ServiceResult, lost_race, page_cursor};
use voronka_model::FieldError;
use voronka_model::access::Access;
use voronka_model::actor::Actor;
use voronka_model::assignee::Assignee;
use voronka_model::entity_type::TypeSchema;
use voronka_model::event::EventKind;
use voronka_model::field::Reference;
use voronka_model::file::StoredFile;
use voronka_model::funnel::{Funnel, ManualMoves};
use voronka_model::item::{
    HistoryEntry, Item, ItemPatch, ItemRef, MoveRequest, NewItem, Responsible, StagePoint, TimelineEntry, TimelineKind,
    VersionCheck,
};
use voronka_model::money::Money;
use voronka_model::time::{now_micros, to_rfc3339};
use voronka_store::items::{self as repo, ItemWrite};
use voronka_store::journal::NewEntry;
use voronka_store::outbox::{self, NewEvent};
use voronka_store::people::{self, PeopleTable};
use voronka_store::{Tx, journal};

/// Longest item title, in characters (a title must also not be blank).
const MAX_TITLE: usize = 500;
/// Most parent links of one item.
const MAX_PARENTS: usize = 100;

/// Collects validation problems and references to check in the database.
#[derive(Default)]
struct Check {
    errors: Vec<FieldError>,
    refs: Vec<(String, Reference)>,
    /// Files the item already names: an update that keeps them does not check them again.
    kept_files: Vec<i64>,
}

impl Check {
    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    fn title(&mut self, title: &str) {
        if title.trim().is_empty() {
            self.error("title", "a title is required");
        } else if title.chars().count() > MAX_TITLE {
            self.error("title", format!("at most {MAX_TITLE} characters"));
        }
    }

    fn amount(&mut self, schema: &TypeSchema, amount: &Option<Value>) -> Option<Money> {
        let money = amount.as_ref()?;
        if !schema.def.has_amount {
            self.error("amount", format!("type `{}` has no amount", schema.def.key));
            return None;
        }
        match Money::from_json(money) {
            Ok(m) => Some(m),
            Err(e) => {
                self.error("amount", e);
                None
            }
        }
    }

    fn links(&mut self, responsible: Option<i64>, contact: Option<i64>, company: Option<i64>) {
        if let Some(id) = responsible {
            self.refs.push(("responsible".into(), Reference::User(id)));
        }
        if let Some(id) = contact {
            self.refs.push(("contact".into(), Reference::Item { type_key: "contact".into(), id }));
        }
        if let Some(id) = company {
            self.refs.push(("company".into(), Reference::Item { type_key: "company".into(), id }));
        }
    }

    fn parents(&mut self, schema: &TypeSchema, parents: &[ItemRef], own_id: Option<i64>) {
        if parents.len() > MAX_PARENTS {
            self.error("parents", format!("at most {MAX_PARENTS} parents"));
        }
        for (i, parent) in parents.iter().enumerate() {
            let field = format!("parents[{i}]");
            if !schema.def.parents.contains(&parent.type_key) {
                let allowed = if schema.def.parents.is_empty() { "none".into() } else { schema.def.parents.join(", ") };
                self.error(
                    field,
                    format!(
                        "`{}` items cannot be parents of `{}` items (allowed: {allowed})",
                        parent.type_key, schema.def.key
                    ),
                );
            } else if Some(parent.id) == own_id {
                self.error(field, "an item cannot be its own parent");
            } else if parents[..i].contains(parent) {
                self.error(field, "duplicate parent");
            } else {
                self.refs.push((field, Reference::Item { type_key: parent.type_key.clone(), id: parent.id }));
            }
        }
    }

    /// Validates `values` into `target`; `creating` also demands every required field.
    fn fields(
        &mut self,
        schema: &TypeSchema,
        values: &Map<String, Value>,
        target: &mut Map<String, Value>,
        creating: bool,
    ) {
        for (key, value) in values {
            let name = format!("fields.{key}");
            let Some(def) = schema.field(key) else {
                self.error(name, format!("type `{}` has no field `{key}`", schema.def.key));
                continue;
            };
            if value.is_null() {
                if def.required {
                    self.error(name, "this field is required and cannot be cleared");
                } else {
                    target.remove(key);
                }
                continue;
            }
            match def.validate(value) {
                Ok((normalised, refs)) => {
                    target.insert(key.clone(), normalised);
                    self.refs.extend(refs.into_iter().map(|r| (name.clone(), r)));
                }
                Err(message) => self.error(name, message),
            }
        }
        if creating {
            for def in schema.fields.iter().filter(|f| f.required) {
                if !target.contains_key(&def.key) {
                    self.error(format!("fields.{}", def.key), "this field is required");
                }
            }
        }
    }

    /// Checks references inside the transaction and fails with every problem found. A file
    /// may be named by the item it is attached to, or, unattached, by its uploader (and by
    /// automation); the unattached ones named are returned, to be attached to the item.
    async fn finish(mut self, tx: &mut Tx, caller: &Caller, item: Option<&ItemRef>) -> ServiceResult<Vec<i64>> {
        let mut attach = Vec::new();
        for (field, reference) in std::mem::take(&mut self.refs) {
            match reference {
                Reference::User(id) => {
                    if !people::exists(tx, PeopleTable::Users, id).await? {
                        self.error(field, format!("no user {id}"));
                    }
                }
                Reference::File(id) if self.kept_files.contains(&id) => {}
                Reference::File(id) => match voronka_store::files::get_in(tx, id).await? {
                    // Unattached: its uploader's (or automation's) to place; it joins the item.
                    Some(file @ StoredFile { item: None, .. }) => {
                        if caller.principal.is_admin || file.created_by == caller.principal.user_id {
                            attach.push(id)
                        } else {
                            self.error(field, format!("no file {id} of yours; upload it to /files first"))
                        }
                    }
                    // Attached: to this item, or to one the caller may read.
                    Some(StoredFile { item: Some(owner), .. }) => {
                        let readable = item == Some(&owner)
                            || caller.principal.is_admin
                            || match repo::get_in(tx, &owner.type_key, owner.id).await? {
                                Some(o) => caller.principal.access(&o.type_key, o.funnel.as_deref()) >= Access::Read,
                                None => false,
                            };
                        if !readable {
                            self.error(field, format!("no file {id} you may read"));
                        }
                    }
                    None => self.error(field, format!("no file {id}; upload it to /files first")),
                },
                Reference::Item { type_key, id } => match repo::type_of(tx, id).await? {
                    Some(t) if t == type_key => {}
                    Some(t) => self.error(field, format!("item {id} is a `{t}`, not a `{type_key}`")),
                    None => self.error(field, format!("no `{type_key}` item {id}")),
                },
            }
        }
        if self.errors.is_empty() { Ok(attach) } else { Err(ServiceError::Validation(self.errors)) }
    }
}

fn point(item: &Item) -> StagePoint {
    StagePoint { funnel: item.funnel.clone(), stage: item.stage.clone() }
}

fn write_of(item: &Item) -> ItemWrite {
    ItemWrite {
        funnel: item.funnel.clone(),
        stage: item.stage.clone(),
        title: item.title.clone(),
        amount: item.amount.clone(),
        responsible: item.responsible,
        contact: item.contact,
        company: item.company,
        fields: item.fields.clone(),
    }
}

impl Items<'_> {
    /// Creates an item at version 1 in the given (or default) funnel and stage, if the caller
    /// may write there; its stage's robots are queued.
    pub async fn create(&self, caller: &Caller, type_key: &str, input: NewItem) -> ServiceResult<Item> {
        self.core
            .write(|mut tx| {
                let input = input.clone();
                async move {
                    let item = self.create_in(&mut tx, caller, type_key, input).await?;
                    Ok((tx, item))
                }
            })
            .await
    }

    /// The responsible user a new item names: a user id as given, or resolved against the
    /// first parent (`inherit`, a role, a relation). Errors name the field `responsible`.
    async fn responsible_of(&self, tx: &mut Tx, caller: &Caller, input: &NewItem) -> ServiceResult<Option<i64>> {
        let responsible = match &input.responsible {
            None => return Ok(None),
            Some(Responsible::User(id)) => return Ok(Some(*id)),
            Some(other) => other,
        };
        let parent = match input.parents.first() {
            Some(parent) => Some(self.load_in(tx, caller, &parent.type_key, parent.id).await.map_err(|e| match e {
                ServiceError::NotFound(m) => ServiceError::invalid("parents[0]", m),
                other => other,
            })?),
            None => None,
        };
        match responsible {
            Responsible::User(id) => Ok(Some(*id)),
            Responsible::Inherit => match parent {
                Some(parent) => Ok(parent.responsible),
                None => Err(ServiceError::invalid(
                    "responsible",
                    "`inherit` takes the first parent's responsible: name a parent",
                )),
            },
            Responsible::Assignee(assignee) => {
                if matches!(assignee, Assignee::Relation { .. }) && parent.is_none() {
                    return Err(ServiceError::invalid(
                        "responsible",
                        "a relation is resolved against the first parent: name a parent",
                    ));
                }
                Ok(Some(self.core.people().resolve_one_assignee("responsible", assignee, parent.as_ref()).await?))
            }
        }
    }

    /// Creates an item inside `tx`.
    pub async fn create_in(&self, tx: &mut Tx, caller: &Caller, type_key: &str, input: NewItem) -> ServiceResult<Item> {
        let schema = self.core.visible_schema(caller, type_key).await?;
        let mut check = Check::default();
        let (funnel, stage) = if schema.def.has_stages {
            let funnel = match &input.funnel {
                Some(key) => schema.funnel(key),
                None => schema.default_funnel(),
            };
            match funnel {
                None => {
                    check.error(
                        "funnel",
                        format!("no funnel `{}` in type `{type_key}`", input.funnel.as_deref().unwrap_or("")),
                    );
                    (None, None)
                }
                Some(funnel) => {
                    let stage = match &input.stage {
                        Some(key) => funnel.stage(key),
                        None => funnel.stages.first(),
                    };
                    if stage.is_none() {
                        check.error(
                            "stage",
                            format!("no stage `{}` in funnel `{}`", input.stage.as_deref().unwrap_or(""), funnel.key),
                        );
                    }
                    (Some(funnel.key.clone()), stage.map(|s| s.key.clone()))
                }
            }
        } else {
            if input.funnel.is_some() || input.stage.is_some() {
                check.error("stage", format!("type `{type_key}` has no stages"));
            }
            (None, None)
        };
        self.core.require(caller, type_key, funnel.as_deref(), Access::Write)?;
        check.title(&input.title);
        let amount = check.amount(&schema, &input.amount);
        let responsible = match self.responsible_of(tx, caller, &input).await {
            Ok(responsible) => responsible,
            Err(ServiceError::Validation(errors)) => {
                check.errors.extend(errors);
                None
            }
            Err(e) => return Err(e),
        };
        check.links(responsible, input.contact, input.company);
        check.parents(&schema, &input.parents, None);
        let mut fields = Map::new();
        check.fields(&schema, &input.fields, &mut fields, true);
        if !check.errors.is_empty() {
            return Err(ServiceError::Validation(check.errors));
        }
        let write = ItemWrite {
            funnel,
            stage,
            title: input.title.trim().to_string(),
            amount,
            responsible,
            contact: input.contact,
            company: input.company,
            fields,
        };
        let now = now_micros();
        let files = check.finish(tx, caller, None).await?;
        let user = caller.actor.user_id();
        let id = repo::insert(tx, type_key, &write, &input.parents, user, now).await?;
        voronka_store::files::attach(tx, &files, &ItemRef { type_key: type_key.to_string(), id });
        let item = Item {
            id,
            type_key: type_key.to_string(),
            funnel: write.funnel,
            stage: write.stage,
            title: write.title,
            amount: write.amount,
            responsible: write.responsible,
            contact: write.contact,
            company: write.company,
            parents: input.parents,
            fields: write.fields,
            version: 1,
            created_by: user,
            created_at: to_rfc3339(now),
            updated_by: user,
            updated_at: to_rfc3339(now),
        };
        let snapshot = serde_json::to_value(&item).unwrap_or(Value::Null);
        let data = json!({});
        let entry = NewEntry {
            item_id: id,
            kind: TimelineKind::System,
            text: "Created",
            data: &data,
            actor: &caller.actor,
            at: now,
        };
        tx.defer(journal::entry_statement(&entry, false));
        if item.funnel.is_some() {
            // The stage history starts where the item did: time in its first stage counts too.
            let nowhere = StagePoint { funnel: None, stage: None };
            tx.defer(journal::move_statement(id, &nowhere, &point(&item), &caller.actor, now));
        }
        let event = NewEvent {
            kind: EventKind::ItemCreated,
            type_key: Some(type_key),
            item_id: Some(id),
            actor: &caller.actor,
            depth: caller.depth,
            payload: json!({ "item": snapshot }),
        };
        outbox::record(tx, &event, now);
        let robots = self.core.robots().enter_stage(caller, &item, false, now).await?;
        for statement in robots.statements {
            tx.defer(statement);
        }
        self.core.robots().note_stage_entry(tx, caller, &item, robots.notes).await;
        Ok(item)
    }

    /// Reads an item the caller may see.
    pub async fn get(&self, caller: &Caller, type_key: &str, id: i64) -> ServiceResult<Item> {
        self.core.visible_schema(caller, type_key).await?;
        let mut conn = self.core.store.key_reader().await?;
        let item = repo::get(&mut conn, type_key, id).await?;
        match item {
            Some(item) if caller.principal.access(type_key, item.funnel.as_deref()) >= Access::Read => Ok(item),
            _ => Err(ServiceError::NotFound(format!("no `{type_key}` item {id}"))),
        }
    }

    /// Loads an item for a change inside `tx`, checking access and the version (`If-Match`).
    async fn load_for_change(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        type_key: &str,
        id: i64,
        if_match: VersionCheck<'_>,
        need: Access,
    ) -> ServiceResult<Item> {
        // A copy the transaction holds, or, while it has not written yet, a read from the read
        // pool, off the writer's turn; the write checks the version it read. A transaction that
        // holds its turn reads the item locked until it commits.
        let item = if let Some(item) = voronka_store::items::lent(tx, type_key, id) {
            Some(item.clone())
        } else if tx.is_fresh() {
            let mut conn = self.core.store.key_reader().await?;
            repo::get(&mut conn, type_key, id).await?
        } else {
            repo::get_for_change(tx, type_key, id).await?
        };
        let item = match item {
            Some(item) if caller.principal.access(type_key, item.funnel.as_deref()) >= Access::Read => item,
            _ => return Err(ServiceError::NotFound(format!("no `{type_key}` item {id}"))),
        };
        self.core.require(caller, type_key, item.funnel.as_deref(), need)?;
        if let Some(accepts) = if_match
            && !accepts(item.version)
        {
            return Err(ServiceError::PreconditionFailed { current: item.version });
        }
        Ok(item)
    }

    /// Reads an item inside `tx` (seeing the transaction's own changes).
    pub async fn load_in(&self, tx: &mut Tx, caller: &Caller, type_key: &str, id: i64) -> ServiceResult<Item> {
        self.load_for_change(tx, caller, type_key, id, None, Access::Read).await
    }

    /// Changes title, amount, links, parents or custom fields. Returns the item as stored.
    pub async fn update(
        &self,
        caller: &Caller,
        type_key: &str,
        id: i64,
        patch: ItemPatch,
        if_match: VersionCheck<'_>,
    ) -> ServiceResult<Item> {
        self.core
            .write(|mut tx| {
                let patch = patch.clone();
                async move {
                    let item = self.update_in(&mut tx, caller, type_key, id, patch, if_match).await?;
                    Ok((tx, item))
                }
            })
            .await
    }

    /// The same inside `tx`.
    pub async fn update_in(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        type_key: &str,
        id: i64,
        patch: ItemPatch,
        if_match: VersionCheck<'_>,
    ) -> ServiceResult<Item> {
        let schema = self.core.visible_schema(caller, type_key).await?;
        if patch.stage.is_some() || patch.funnel.is_some() {
            return Err(ServiceError::invalid("stage", "stages and funnels change through POST .../move"));
        }
        let old = self.load_for_change(tx, caller, type_key, id, if_match, Access::Write).await?;
        let mut new = old.clone();
        let mut check = Check {
            kept_files: old.fields.values().filter_map(|v| v.get("id").and_then(Value::as_i64)).collect(),
            ..Check::default()
        };
        if let Some(title) = &patch.title {
            check.title(title);
            new.title = title.trim().to_string();
        }
        if let Some(amount) = &patch.amount {
            new.amount = check.amount(&schema, amount);
        }
        if let Some(v) = patch.responsible {
            new.responsible = v;
        }
        if let Some(v) = patch.contact {
            new.contact = v;
        }
        if let Some(v) = patch.company {
            new.company = v;
        }
        check.links(
            patch.responsible.flatten().filter(|v| Some(*v) != old.responsible),
            patch.contact.flatten().filter(|v| Some(*v) != old.contact),
            patch.company.flatten().filter(|v| Some(*v) != old.company),
        );
        if let Some(parents) = &patch.parents {
            check.parents(&schema, parents, Some(id));
            new.parents = parents.clone();
        }
        if let Some(values) = &patch.fields {
            check.fields(&schema, values, &mut new.fields, false);
        }
        let this = ItemRef { type_key: type_key.to_string(), id };
        let files = check.finish(tx, caller, Some(&this)).await?;
        voronka_store::files::attach(tx, &files, &this);
        let changes = diff(&old, &new);
        if changes.is_empty() {
            return Ok(old);
        }
        let now = now_micros();
        let parents = patch.parents.as_deref().filter(|p| *p != old.parents.as_slice());
        let names: Vec<&str> = changes.iter().filter_map(|c| c["field"].as_str()).collect();
        let text = format!("Changed {}", names.join(", "));
        let data = json!({ "changes": changes });
        let entry = NewEntry {
            item_id: id,
            kind: TimelineKind::System,
            text: &text,
            data: &data,
            actor: &caller.actor,
            at: now,
        };
        let event = NewEvent {
            kind: EventKind::ItemUpdated,
            type_key: Some(type_key),
            item_id: Some(id),
            actor: &caller.actor,
            depth: caller.depth,
            payload: data.clone(),
        };
        let mut then = vec![journal::entry_statement(&entry, false), outbox::event_statement(&event, now)];
        then.extend(self.core.robots().retime_relative(&new, &names, now).await?);
        if !repo::update(tx, id, old.version, &write_of(&new), parents, caller.actor.user_id(), now, then).await? {
            return Err(lost_race());
        }
        new.version = old.version + 1;
        new.updated_by = caller.actor.user_id();
        new.updated_at = to_rfc3339(now);
        if parents.is_none() {
            // (New parents are stored in id order; this copy keeps the caller's order.)
            voronka_store::items::lend(tx, new.clone());
        }
        Ok(new)
    }

    /// Moves an item to another stage, in its funnel or another one of its type.
    pub async fn move_to(
        &self,
        caller: &Caller,
        type_key: &str,
        id: i64,
        request: MoveRequest,
        if_match: VersionCheck<'_>,
    ) -> ServiceResult<Item> {
        self.core
            .write(|mut tx| {
                let request = request.clone();
                async move {
                    let item = self.move_to_in(&mut tx, caller, type_key, id, request, if_match).await?;
                    Ok((tx, item))
                }
            })
            .await
    }

    /// The same inside `tx`.
    pub async fn move_to_in(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        type_key: &str,
        id: i64,
        request: MoveRequest,
        if_match: VersionCheck<'_>,
    ) -> ServiceResult<Item> {
        let schema = self.core.visible_schema(caller, type_key).await?;
        if !schema.def.has_stages {
            return Err(ServiceError::invalid("stage", format!("type `{type_key}` has no stages")));
        }
        let old = self.load_for_change(tx, caller, type_key, id, if_match, Access::Write).await?;
        match self.move_loaded_in(tx, caller, &schema, old, &request).await? {
            Some(moved) => Ok(moved),
            None => Err(lost_race()),
        }
    }

    /// Moves an item back to the funnel it was in before its last change of funnel (from its
    /// stage history), to `stage` or, without one, to the stage it left there. Refused when the
    /// item never changed funnel.
    pub async fn return_to_funnel_in(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        type_key: &str,
        id: i64,
        stage: Option<&str>,
    ) -> ServiceResult<Item> {
        let Some(before) = journal::before_last_funnel_change(tx, id).await? else {
            return Err(ServiceError::Conflict(format!(
                "`{type_key}` item {id} cannot return to the funnel it came from: it has never changed funnel"
            )));
        };
        let request = MoveRequest {
            stage: stage.map(str::to_string).or(before.stage).unwrap_or_default(),
            funnel: before.funnel,
        };
        self.move_to_in(tx, caller, type_key, id, request, None).await
    }

    /// Moves an item already read (`old`, whose version the write checks) as `request` says;
    /// `None` when the item changed since it was read. Access to the target funnel is checked.
    pub async fn move_loaded_in(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        schema: &TypeSchema,
        old: Item,
        request: &MoveRequest,
    ) -> ServiceResult<Option<Item>> {
        let (type_key, id) = (old.type_key.clone(), old.id);
        let funnel_key = request.funnel.clone().or_else(|| old.funnel.clone()).unwrap_or_default();
        let Some(funnel) = schema.funnel(&funnel_key) else {
            return Err(ServiceError::invalid("funnel", format!("no funnel `{funnel_key}` in type `{type_key}`")));
        };
        if funnel.stage(&request.stage).is_none() {
            return Err(ServiceError::invalid(
                "stage",
                format!("no stage `{}` in funnel `{funnel_key}`", request.stage),
            ));
        }
        self.core.require(caller, &type_key, Some(&funnel_key), Access::Write)?;
        check_manual_move(caller, schema, old.funnel.as_deref(), funnel)?;
        let from = point(&old);
        let to = StagePoint { funnel: Some(funnel_key.clone()), stage: Some(request.stage.clone()) };
        if from == to {
            return Ok(Some(old));
        }
        let mut new = old.clone();
        new.funnel = to.funnel.clone();
        new.stage = to.stage.clone();
        let now = now_micros();
        let funnel_changed = from.funnel != to.funnel;
        let text = if funnel_changed {
            format!("Moved to funnel {} stage {}", funnel_key, request.stage)
        } else {
            format!("Moved to stage {}", request.stage)
        };
        let payload = json!({ "from": from, "to": to });
        let entry = NewEntry {
            item_id: id,
            kind: TimelineKind::System,
            text: &text,
            data: &payload,
            actor: &caller.actor,
            at: now,
        };
        let kind = if funnel_changed { EventKind::ItemFunnelChanged } else { EventKind::ItemStageChanged };
        let event = NewEvent {
            kind,
            type_key: Some(&type_key),
            item_id: Some(id),
            actor: &caller.actor,
            depth: caller.depth,
            payload: payload.clone(),
        };
        let robots = self.core.robots().enter_stage(caller, &new, true, now).await?;
        let mut then = vec![
            journal::move_statement(id, &from, &to, &caller.actor, now),
            journal::entry_statement(&entry, false),
            outbox::event_statement(&event, now),
        ];
        then.extend(robots.statements);
        if !repo::update(tx, id, old.version, &write_of(&new), None, caller.actor.user_id(), now, then).await? {
            return Ok(None);
        }
        new.version = old.version + 1;
        new.updated_by = caller.actor.user_id();
        new.updated_at = to_rfc3339(now);
        voronka_store::items::lend(tx, new.clone());
        self.core.robots().note_stage_entry(tx, caller, &new, robots.notes).await;
        Ok(Some(new))
    }

    /// Deletes an item (needs `admin` access to it); links to and from it go too.
    pub async fn delete(
        &self,
        caller: &Caller,
        type_key: &str,
        id: i64,
        if_match: VersionCheck<'_>,
    ) -> ServiceResult<()> {
        self.core.visible_schema(caller, type_key).await?;
        let mut tx = self.core.store.begin();
        let item = self.load_for_change(&mut tx, caller, type_key, id, if_match, Access::Admin).await?;
        if !repo::delete(&mut tx, id, item.version).await? {
            return Err(ServiceError::Conflict(format!("item {id} changed while it was being deleted; try again")));
        }
        let now = now_micros();
        let payload = json!({ "item": serde_json::to_value(&item).unwrap_or(Value::Null) });
        let event = NewEvent {
            kind: EventKind::ItemDeleted,
            type_key: Some(type_key),
            item_id: Some(id),
            actor: &caller.actor,
            depth: caller.depth,
            payload,
        };
        outbox::record(&mut tx, &event, now);
        tx.defer(voronka_store::jobs::cancel_pending(id, None, now));
        tx.commit().await?;
        self.core.committed();
        Ok(())
    }

    /// Stage history of an item, oldest first, from its creation (an entry from nowhere):
    /// `(entries, next cursor)`.
    pub async fn history(
        &self,
        caller: &Caller,
        type_key: &str,
        id: i64,
        after: i64,
        limit: i64,
    ) -> ServiceResult<(Vec<HistoryEntry>, Option<i64>)> {
        self.get(caller, type_key, id).await?;
        let mut entries = journal::history(self.core.store.reader(), id, after, limit).await?;
        let next = page_cursor(&mut entries, limit, |e| e.id);
        Ok((entries, next))
    }

    /// Timeline of an item, newest first: `(entries, next cursor)`.
    pub async fn timeline(
        &self,
        caller: &Caller,
        type_key: &str,
        id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> ServiceResult<(Vec<TimelineEntry>, Option<i64>)> {
        self.get(caller, type_key, id).await?;
        let mut entries = journal::timeline(self.core.store.reader(), id, before.unwrap_or(i64::MAX), limit).await?;
        let next = page_cursor(&mut entries, limit, |e| e.id);
        Ok((entries, next))
    }

    /// Adds a comment to an item's timeline (needs read access: commenting is not changing).
    pub async fn add_comment(
        &self,
        caller: &Caller,
        type_key: &str,
        id: i64,
        text: &str,
    ) -> ServiceResult<TimelineEntry> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 20_000 {
            return Err(ServiceError::invalid("text", "a comment of 1 to 20,000 characters is required"));
        }
        self.core.visible_schema(caller, type_key).await?;
        let (item, data) = (&ItemRef { type_key: type_key.to_string(), id }, &json!({}));
        self.core
            .write(|mut tx| async move {
                let note = TimelineNote { kind: TimelineKind::Comment, text, data };
                let entry = self.add_timeline_entry_in(&mut tx, caller, item, note).await?;
                Ok((tx, entry))
            })
            .await
    }

    /// Adds a comment or system entry to an item's timeline inside `tx` (needs read access).
    pub async fn add_timeline_entry_in(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        item: &ItemRef,
        note: TimelineNote<'_>,
    ) -> ServiceResult<TimelineEntry> {
        let TimelineNote { kind, text, data } = note;
        let (type_key, id) = (item.type_key.as_str(), item.id);
        let item = self.load_for_change(tx, caller, type_key, id, None, Access::Read).await?;
        let now = now_micros();
        let entry = NewEntry { item_id: item.id, kind, text, data, actor: &caller.actor, at: now };
        let entry_id = journal::add_entry(tx, &entry).await?;
        let event = NewEvent {
            kind: EventKind::ItemCommented,
            type_key: Some(type_key),
            item_id: Some(id),
            actor: &caller.actor,
            depth: caller.depth,
            payload: json!({ "entry": entry_id, "text": text }),
        };
        outbox::record(tx, &event, now);
        Ok(TimelineEntry {
            id: entry_id,
            kind,
            text: text.to_string(),
            data: json!({}),
            actor: caller.actor.clone(),
            at: to_rfc3339(now),
        })
    }
}

/// A timeline entry to add: its kind, text and structured details.
#[derive(Debug, Clone, Copy)]
pub struct TimelineNote<'a> {
    /// Comment or system entry.
    pub kind: TimelineKind,
    /// The entry's text, as stored and shown in the timeline.
    pub text: &'a str,
    /// Structured details stored with the entry, e.g. `{"robot": 3, "field": "due"}`; `{}` for
    /// none.
    pub data: &'a Value,
}

/// Refuses a person's move out of or into a funnel whose `manual_moves` setting does not let
/// them move items by hand; automation (robots, triggers, processes) always moves.
fn check_manual_move(caller: &Caller, schema: &TypeSchema, from: Option<&str>, to: &Funnel) -> ServiceResult<()> {
    if !matches!(caller.actor, Actor::User { .. }) {
        return Ok(());
    }
    let source = from.and_then(|key| schema.funnel(key));
    match source.into_iter().chain([to]).find(|funnel| !funnel.manual_moves.permits(caller.principal.is_admin)) {
        None => Ok(()),
        Some(funnel) if funnel.manual_moves == ManualMoves::Admins => Err(ServiceError::AutomaticMovesOnly(format!(
            "only administrators move items of funnel `{}` by hand; robots, triggers and processes move them",
            funnel.key
        ))),
        Some(funnel) => Err(ServiceError::AutomaticMovesOnly(format!(
            "items of funnel `{}` are moved only by automation (robots, triggers, processes), not by hand",
            funnel.key
        ))),
    }
}

/// The changed properties between two states of an item: `[{field, old, new}]`.
fn diff(old: &Item, new: &Item) -> Vec<Value> {
    let mut changes = Vec::new();
    let mut push = |field: String, a: Value, b: Value| {
        if a != b {
            changes.push(json!({ "field": field, "old": a, "new": b }));
        }
    };
    push("title".into(), json!(old.title), json!(new.title));
    push("amount".into(), json!(old.amount), json!(new.amount));
    push("responsible".into(), json!(old.responsible), json!(new.responsible));
    push("contact".into(), json!(old.contact), json!(new.contact));
    push("company".into(), json!(old.company), json!(new.company));
    push("parents".into(), json!(old.parents), json!(new.parents));
    let keys: std::collections::BTreeSet<&String> = old.fields.keys().chain(new.fields.keys()).collect();
    for key in keys {
        let a = old.fields.get(key).cloned().unwrap_or(Value::Null);
        let b = new.fields.get(key).cloned().unwrap_or(Value::Null);
        push(format!("fields.{key}"), a, b);
    }
    changes
}
