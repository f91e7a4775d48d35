//! Triggers on stages: list, create, change, delete; which trigger moves an item; the inbound
//! webhook.
//!
//! The [`super::Triggers`] aggregate (`core.triggers()`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use voronka_model::plugin::World;

use super::{Caller, ServiceError, ServiceResult, Triggers};
use voronka_model::FieldError;
use voronka_model::access::Access;
use voronka_model::actor::Actor;
use voronka_model::entity_type::TypeSchema;
use voronka_model::item::Item;
use voronka_model::item::MoveRequest;
use voronka_model::trigger::{TriggerRule, is_builtin_field};
use voronka_store::Tx;
use voronka_store::triggers::{self as repo, StoredTrigger};

/// `POST .../triggers` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// `field-changed`, `responsible-changed`, `linked-item-stage`, `task-completed`, `webhook`
    /// or `plugin`.
    #[schema(value_type = voronka_model::trigger::TriggerKind)]
    pub kind: String,
    /// The kind's settings, e.g. `{"field": "paid", "to": true}` (default `{}`).
    #[serde(default = "super::defaults::empty_object")]
    #[schema(value_type = Object)]
    pub config: Value,
    /// Move items that are in later stages back too (default: only items in earlier stages).
    #[serde(default)]
    pub allow_backwards: bool,
    /// Rhai expression over `item`; the trigger moves the item only when it is true.
    #[serde(default)]
    pub condition: Option<String>,
}

/// `PATCH .../triggers/{id}` body: present keys change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerPatch {
    /// New kind, one of those of `POST`; `config` must suit it. A webhook trigger keeps its URL
    /// only while it stays a webhook. Absent or `null` keeps the kind.
    #[schema(value_type = Option<voronka_model::trigger::TriggerKind>)]
    pub kind: Option<String>,
    /// New settings for the kind, replacing the old ones whole. Absent or `null` keeps them.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// `true` lets it move items back from later stages, `false` only forward. Absent or `null`
    /// keeps it.
    pub allow_backwards: Option<bool>,
    /// Condition; `""` removes it.
    pub condition: Option<String>,
}

/// A trigger as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Trigger {
    /// The trigger's id, as in `.../triggers/{id}`.
    pub id: i64,
    /// Key of the entity type whose items it moves.
    #[serde(rename = "type")]
    pub type_key: String,
    /// The funnel it works in: only items in this funnel move.
    pub funnel: String,
    /// The stage items move to.
    pub stage: String,
    /// What it waits for: `field-changed`, `responsible-changed`, `linked-item-stage`,
    /// `task-completed`, `webhook` or `plugin`.
    #[schema(value_type = voronka_model::trigger::TriggerKind)]
    pub kind: String,
    /// The kind's settings, e.g. `{"field": "paid", "to": true}`.
    #[schema(value_type = Object)]
    pub config: Value,
    /// Whether items in later stages move back too.
    pub allow_backwards: bool,
    /// Condition over `item`.
    pub condition: Option<String>,
    /// A webhook trigger's secret URL: `POST` `{"item": <id>}` to it (no token needed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When it was created.
    pub created_at: String,
}

impl Trigger {
    /// The API view of a stored trigger; `base` is the server's address as the client sees it.
    pub fn view(stored: StoredTrigger, base: &str) -> Trigger {
        Trigger {
            url: stored.secret.as_ref().map(|s| format!("{base}{}", webhook_path(s))),
            id: stored.id,
            type_key: stored.type_key,
            funnel: stored.funnel,
            stage: stored.stage,
            kind: stored.kind,
            config: stored.config,
            allow_backwards: stored.allow_backwards,
            condition: stored.condition,
            created_at: stored.created_at,
        }
    }
}

/// The path of a webhook trigger's URL.
pub fn webhook_path(secret: &str) -> String {
    format!("/api/v1/hooks/triggers/{secret}")
}

/// What a webhook call did. It names the item's place only: the caller holds a secret that moves
/// items, not a token that reads them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookOutcome {
    /// Whether the item moved.
    pub moved: bool,
    /// Why the item did not move, e.g. `the condition is false`; absent when it moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The item's id.
    pub item: i64,
    /// Its funnel after the call.
    pub funnel: Option<String>,
    /// Its stage after the call.
    pub stage: Option<String>,
}

impl WebhookOutcome {
    fn of(item: &Item, moved: bool, reason: Option<String>) -> WebhookOutcome {
        WebhookOutcome { moved, reason, item: item.id, funnel: item.funnel.clone(), stage: item.stage.clone() }
    }
}

impl Triggers<'_> {
    /// The triggers of a stage, oldest first.
    pub async fn list(
        &self,
        caller: &Caller,
        type_key: &str,
        funnel: &str,
        stage: &str,
    ) -> ServiceResult<Vec<StoredTrigger>> {
        self.core.types().check_stage(caller, type_key, funnel, stage, Access::Read).await?;
        let mut triggers = repo::on_stage(self.core.store.reader(), type_key, funnel, stage).await?;
        // A webhook's secret moves items: only those who may change triggers see it.
        if caller.principal.access(type_key, Some(funnel)) < Access::Admin {
            for trigger in &mut triggers {
                trigger.secret = None;
            }
        }
        Ok(triggers)
    }

    /// Creates a trigger on a stage (needs admin access to the type in that funnel). It reacts
    /// to events from now on.
    pub async fn create(
        &self,
        caller: &Caller,
        type_key: &str,
        funnel: &str,
        stage: &str,
        input: TriggerRequest,
    ) -> ServiceResult<StoredTrigger> {
        self.core.types().check_stage(caller, type_key, funnel, stage, Access::Admin).await?;
        let mut trigger = StoredTrigger {
            id: 0,
            type_key: type_key.to_string(),
            funnel: funnel.to_string(),
            stage: stage.to_string(),
            kind: input.kind,
            config: input.config,
            allow_backwards: input.allow_backwards,
            condition: input.condition.filter(|c| !c.trim().is_empty()),
            secret: None,
            plugin: None,
            since_event: 0,
            created_at: voronka_model::time::to_rfc3339(voronka_model::time::now_micros()),
        };
        self.check(&mut trigger).await?;
        let mut tx = self.core.store.begin();
        (trigger.id, trigger.since_event) = repo::insert(&mut tx, &trigger).await?;
        tx.commit().await?;
        Ok(trigger)
    }

    /// Changes a trigger on this stage (needs admin access to the type in that funnel): present
    /// keys change and the result is checked as at creation. `NotFound` when no such trigger is
    /// on this stage.
    pub async fn update(
        &self,
        caller: &Caller,
        stage: (&str, &str, &str),
        id: i64,
        patch: TriggerPatch,
    ) -> ServiceResult<StoredTrigger> {
        let mut trigger = self.on_stage(caller, stage, id, Access::Admin).await?;
        if let Some(v) = patch.kind {
            trigger.kind = v;
        }
        if let Some(v) = patch.config {
            trigger.config = v;
        }
        if let Some(v) = patch.allow_backwards {
            trigger.allow_backwards = v;
        }
        if let Some(v) = patch.condition {
            trigger.condition = Some(v).filter(|c| !c.trim().is_empty());
        }
        self.check(&mut trigger).await?;
        let mut tx = self.core.store.begin();
        repo::update(&mut tx, &trigger).await?;
        tx.commit().await?;
        Ok(trigger)
    }

    /// Deletes a trigger on this stage (needs admin access to the type in that funnel); a webhook
    /// trigger's URL stops working. `NotFound` when no such trigger is on this stage.
    pub async fn delete(&self, caller: &Caller, stage: (&str, &str, &str), id: i64) -> ServiceResult<()> {
        self.on_stage(caller, stage, id, Access::Admin).await?;
        let mut tx = self.core.store.begin();
        repo::delete(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn on_stage(
        &self,
        caller: &Caller,
        (type_key, funnel, stage): (&str, &str, &str),
        id: i64,
        need: Access,
    ) -> ServiceResult<StoredTrigger> {
        self.core.types().check_stage(caller, type_key, funnel, stage, need).await?;
        match repo::get(self.core.store.reader(), id).await? {
            Some(t) if t.type_key == type_key && t.funnel == funnel && t.stage == stage => Ok(t),
            _ => Err(ServiceError::NotFound(format!("no trigger {id} on this stage"))),
        }
    }

    /// Validates a trigger against the catalog and the plugins, normalises its config, and
    /// gives a webhook trigger its secret (kept across changes) and a plugin trigger its plugin.
    async fn check(&self, trigger: &mut StoredTrigger) -> ServiceResult<()> {
        let rule = TriggerRule::parse(&trigger.kind, &trigger.config).map_err(ServiceError::Validation)?;
        let catalog = self.core.catalog().await?;
        let mut errors = voronka_model::trigger::unknown_config_keys(&trigger.kind, &trigger.config);
        match &rule {
            TriggerRule::FieldChanged { field, to } => {
                let schema = catalog.get(&trigger.type_key);
                match schema.and_then(|s| s.field(field)) {
                    Some(def) => {
                        if let Some(to) = to {
                            match def.validate(to) {
                                Ok((normalised, _)) => {
                                    trigger.config["to"] = normalised;
                                }
                                Err(message) => errors.push(FieldError::new("config.to", message)),
                            }
                        }
                    }
                    None if is_builtin_field(field) => {}
                    None => errors.push(FieldError::new(
                        "config.field",
                        format!("no field `{field}` in type `{}`", trigger.type_key),
                    )),
                }
            }
            TriggerRule::LinkedItemStage { type_key, funnel, stage } => match catalog.get(type_key) {
                None => errors.push(FieldError::new("config.type", format!("no entity type `{type_key}`"))),
                Some(linked) => {
                    let related = linked.def.parents.contains(&trigger.type_key)
                        || catalog.get(&trigger.type_key).is_some_and(|s| s.def.parents.contains(type_key));
                    if !related {
                        errors.push(FieldError::new(
                            "config.type",
                            format!(
                                "`{type_key}` items are neither parents nor children of `{}` items",
                                trigger.type_key
                            ),
                        ));
                    }
                    let funnels: Vec<_> = match funnel {
                        Some(f) => linked.funnel(f).into_iter().collect(),
                        None => linked.funnels.iter().collect(),
                    };
                    if funnel.is_some() && funnels.is_empty() {
                        errors.push(FieldError::new(
                            "config.funnel",
                            format!("no funnel `{}` in type `{type_key}`", funnel.as_deref().unwrap_or_default()),
                        ));
                    } else if !funnels.iter().any(|f| f.stage(stage).is_some()) {
                        errors.push(FieldError::new(
                            "config.stage",
                            format!("no stage `{stage}` in the funnels of `{type_key}`"),
                        ));
                    }
                }
            },
            TriggerRule::Plugin { plugin, version, .. } => {
                if let Err(e) = self.core.plugins().check_binding(plugin, version, World::Trigger).await? {
                    errors.push(FieldError::new(format!("config.{}", e.field), e.message));
                }
            }
            TriggerRule::ResponsibleChanged { .. } | TriggerRule::TaskCompleted { .. } | TriggerRule::Webhook => {}
        }
        if let Some(condition) = &trigger.condition
            && let Err(e) = self.core.check_condition(condition)
        {
            errors.push(e);
        }
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        trigger.plugin = match &rule {
            TriggerRule::Plugin { plugin, .. } => Some(plugin.clone()),
            _ => None,
        };
        trigger.secret = match rule {
            TriggerRule::Webhook => trigger.secret.take().or_else(|| Some(super::auth::random_secret())),
            _ => None,
        };
        Ok(())
    }

    /// Why `trigger` cannot move `item` (`None` when it can): the item must be in the trigger's
    /// funnel, in an earlier stage (or any other stage when backwards moves are allowed), and
    /// satisfy the condition.
    pub fn blocked(&self, schema: &TypeSchema, item: &Item, trigger: &StoredTrigger) -> Option<String> {
        if item.funnel.as_deref() != Some(trigger.funnel.as_str()) {
            return Some(format!("the item is not in funnel `{}`", trigger.funnel));
        }
        let Some(funnel) = schema.funnel(&trigger.funnel) else {
            return Some(format!("funnel `{}` no longer exists", trigger.funnel));
        };
        let current = item.stage.as_deref().and_then(|s| funnel.stage_index(s));
        let target = funnel.stage_index(&trigger.stage);
        match (current, target) {
            (_, None) => return Some(format!("stage `{}` no longer exists", trigger.stage)),
            (Some(c), Some(t)) if c == t => return Some("the item is already in the stage".into()),
            (Some(c), Some(t)) if c > t && !trigger.allow_backwards => {
                return Some("the item is in a later stage and the trigger does not move backwards".into());
            }
            _ => {}
        }
        if let Some(condition) = &trigger.condition {
            match self.core.runtime.condition(condition, item) {
                Ok(true) => {}
                Ok(false) => return Some("the condition is false".into()),
                Err(e) => return Some(e),
            }
        }
        None
    }

    /// Of the triggers that matched an event for `item`, the one that moves it: among those
    /// that may, the one with the earliest target stage (then the oldest).
    pub fn choose<'a>(
        &self,
        schema: &TypeSchema,
        item: &Item,
        matched: impl IntoIterator<Item = &'a StoredTrigger>,
    ) -> Option<&'a StoredTrigger> {
        let funnel = schema.funnel(item.funnel.as_deref()?)?;
        matched
            .into_iter()
            .filter(|t| self.blocked(schema, item, t).is_none())
            .min_by_key(|t| (funnel.stage_index(&t.stage).unwrap_or(usize::MAX), t.id))
    }

    /// Moves `item` (as read, version checked) to `trigger`'s stage inside `tx`, recorded as the
    /// trigger's doing, `depth` steps into an automation chain.
    pub async fn move_item_in(
        &self,
        tx: &mut Tx,
        item: &Item,
        trigger: &StoredTrigger,
        depth: u32,
    ) -> ServiceResult<Item> {
        let caller = Caller::automation(trigger_actor(trigger), depth);
        let request = MoveRequest { stage: trigger.stage.clone(), funnel: Some(trigger.funnel.clone()) };
        let catalog = self.core.catalog().await?;
        let schema = catalog
            .get(&item.type_key)
            .ok_or_else(|| ServiceError::NotFound(format!("no entity type `{}`", item.type_key)))?;
        // The item as planned: the write checks its version, so no second read is needed.
        match self.core.items().move_loaded_in(tx, &caller, schema, item.clone(), &request).await? {
            Some(moved) => Ok(moved),
            None => Err(ServiceError::PreconditionFailed { current: item.version }),
        }
    }

    /// An outside system calls a webhook trigger's URL for an item: the item moves as the
    /// trigger says, or the outcome says why not. A change racing the call is retried.
    pub async fn fire_webhook(&self, secret: &str, item_id: i64) -> ServiceResult<WebhookOutcome> {
        let trigger = repo::by_secret(self.core.store.reader(), secret)
            .await?
            .ok_or_else(|| ServiceError::NotFound("no webhook trigger at this address".into()))?;
        let system = Caller::automation(trigger_actor(&trigger), 1);
        let catalog = self.core.catalog().await?;
        let schema = catalog
            .get(&trigger.type_key)
            .ok_or_else(|| ServiceError::NotFound(format!("no entity type `{}`", trigger.type_key)))?;
        let (system, trigger) = (&system, &trigger);
        self.core
            .write(|mut tx| async move {
                let item = self.core.items().load_in(&mut tx, system, &trigger.type_key, item_id).await?;
                if let Some(reason) = self.blocked(schema, &item, trigger) {
                    return Ok((tx, WebhookOutcome::of(&item, false, Some(reason))));
                }
                match self.move_item_in(&mut tx, &item, trigger, 1).await {
                    Ok(moved) => Ok((tx, WebhookOutcome::of(&moved, true, None))),
                    Err(ServiceError::PreconditionFailed { .. }) => Err(super::lost_race()),
                    Err(e) => Err(e),
                }
            })
            .await
    }
}

/// How a trigger is named in stage history and events.
pub fn trigger_actor(trigger: &StoredTrigger) -> Actor {
    Actor::Trigger { id: trigger.id, name: trigger.kind.clone() }
}
