//! The trigger dispatcher: reads the outbox in order and, for each event, moves the items whose
//! triggers match — the item the event is about (field, responsible and plugin triggers) and
//! the items linked to it (linked-item-stage triggers). Each move commits together with the
//! dispatcher's position, so a crash neither loses nor repeats one; the position is compared
//! when it is written, so of several hosts on one database exactly one applies each event.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{MAX_CHAIN_DEPTH, Shutdown};
use crate::model::actor::Actor;
use crate::model::item::{Item, ItemRef, TimelineKind};
use crate::model::trigger::TriggerRule;
use crate::runtime::capability::Capability;
use crate::runtime::host_api::HostCalls;
use crate::runtime::registry::Loaded;
use crate::service::items::TimelineNote;
use crate::service::triggers::trigger_actor;
use crate::service::{Caller, Service, ServiceError, ServiceResult};
use crate::store::jobs;
use crate::store::outbox::{self, StoredEvent};
use crate::store::triggers::{self as repo, StoredTrigger};

const CURSOR: &str = "triggers";
const BATCH: i64 = 200;
/// Longest sleep between looks at the outbox (other hosts' events on a shared database).
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Runs until shutdown.
pub async fn run(service: Arc<Service>, mut shutdown: Shutdown) {
    while !shutdown.is_fired() {
        match dispatch_batch(&service).await {
            Ok(n) if n as i64 >= BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "applying triggers failed; retrying"),
        }
        tokio::select! {
            _ = service.signals().events.notified() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
            _ = shutdown.fired() => {}
        }
    }
}

/// A trigger with its parsed rule.
struct Rule {
    trigger: StoredTrigger,
    rule: TriggerRule,
}

/// Applies the triggers to one batch of events; returns how many events it got through.
pub async fn dispatch_batch(service: &Arc<Service>) -> ServiceResult<usize> {
    let reader = service.store().reader();
    let mut position = jobs::position(reader, CURSOR).await?;
    let mut events = outbox::list(reader, position, None, BATCH).await?;
    events.truncate(BATCH as usize);
    let Some(last) = events.last().map(|e| e.id) else { return Ok(0) };
    let rules: Vec<Rule> = repo::all(reader)
        .await?
        .into_iter()
        .filter_map(|trigger| match TriggerRule::parse(&trigger.kind, &trigger.config) {
            Ok(rule) => Some(Rule { trigger, rule }),
            Err(_) => None,
        })
        .collect();
    let mut done = 0;
    if !rules.is_empty() {
        for event in &events {
            let moves = plan(service, &rules, event).await?;
            if !moves.is_empty() {
                if !apply(service, position, event, moves).await? {
                    return Ok(done);
                }
                position = event.id;
            }
            done += 1;
        }
    }
    if last > position {
        let mut tx = service.store().begin().await?;
        if jobs::cursor(&mut tx, CURSOR).await? != position {
            return Ok(done);
        }
        jobs::set_cursor(&mut tx, CURSOR, last);
        tx.commit().await?;
    }
    Ok(events.len())
}

/// Commits the moves an event causes together with the position at that event. `false` when
/// another host moved the position meanwhile or an item changed since it was read (the event
/// is then looked at again).
async fn apply(
    service: &Service,
    position: i64,
    event: &StoredEvent,
    moves: Vec<(Item, &StoredTrigger)>,
) -> ServiceResult<bool> {
    let mut tx = service.store().begin().await?;
    if jobs::cursor(&mut tx, CURSOR).await? != position {
        return Ok(false);
    }
    for (item, trigger) in moves {
        if event.depth >= MAX_CHAIN_DEPTH {
            let text = format!(
                "Automation chain stopped: {MAX_CHAIN_DEPTH} automation steps in a row; trigger {} did not move the item to stage {}",
                trigger.id, trigger.stage
            );
            let data = json!({"trigger": trigger.id, "depth": event.depth});
            let note = TimelineNote { kind: TimelineKind::System, text: &text, data: &data };
            let caller = Caller::automation(Actor::System, event.depth as u32);
            let target = ItemRef { type_key: item.type_key.clone(), id: item.id };
            service.add_timeline_entry_in(&mut tx, &caller, &target, note).await?;
            continue;
        }
        match service.move_by_trigger_in(&mut tx, &item, trigger, event.depth as u32 + 1).await {
            Ok(_) => {}
            Err(ServiceError::PreconditionFailed { .. } | ServiceError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    jobs::set_cursor(&mut tx, CURSOR, event.id);
    tx.commit().await?;
    service.committed();
    Ok(true)
}

/// The moves `event` causes: for each item concerned, the trigger that wins.
async fn plan<'r>(
    service: &Arc<Service>,
    rules: &'r [Rule],
    event: &StoredEvent,
) -> ServiceResult<Vec<(Item, &'r StoredTrigger)>> {
    let (Some(item_id), Some(type_key)) = (event.item_id, event.type_key.as_deref()) else {
        return Ok(Vec::new());
    };
    if event.kind == "item.deleted" {
        return Ok(Vec::new());
    }
    let Some(item) = current(service, type_key, item_id).await? else { return Ok(Vec::new()) };
    let catalog = service.catalog().await?;
    let mut moves = Vec::new();
    // Triggers on the item's own funnel.
    if let (Some(schema), Some(funnel)) = (catalog.get(type_key), item.funnel.as_deref()) {
        let mut matched = Vec::new();
        for r in rules.iter().filter(|r| r.trigger.type_key == type_key && r.trigger.funnel == funnel) {
            let hit = match &r.rule {
                TriggerRule::FieldChanged { .. } | TriggerRule::ResponsibleChanged { .. } => {
                    event.kind == "item.updated"
                        && event.payload["changes"].as_array().is_some_and(|c| r.rule.matches_changes(c))
                }
                TriggerRule::Plugin { plugin, version, config } => {
                    // A trigger never reacts to its own move.
                    let own = matches!(&event.actor, Actor::Trigger { id, .. } if *id == r.trigger.id);
                    !own && ask_plugin(service, &r.trigger, (plugin, version, config), event, &item).await?
                }
                _ => false,
            };
            if hit {
                matched.push(&r.trigger);
            }
        }
        if let Some(winner) = service.choose_trigger(schema, &item, matched) {
            moves.push((item.clone(), winner));
        }
    }
    // Triggers of items linked to it, when it entered a stage.
    if let Some(Some((funnel, stage))) = super::entered(&event.kind, &event.payload) {
        let linked_rules: Vec<&Rule> =
            rules.iter().filter(|r| r.rule.matches_linked(type_key, &funnel, &stage)).collect();
        if !linked_rules.is_empty() {
            let mut linked = item.parents.clone();
            linked.extend(crate::store::items::children_of(service.store().reader(), item.id).await?);
            for link in linked {
                let Some(other) = current(service, &link.type_key, link.id).await? else { continue };
                let (Some(schema), Some(other_funnel)) = (catalog.get(&other.type_key), other.funnel.as_deref()) else {
                    continue;
                };
                let matched = linked_rules
                    .iter()
                    .filter(|r| r.trigger.type_key == other.type_key && r.trigger.funnel == other_funnel)
                    .map(|r| &r.trigger);
                if let Some(winner) = service.choose_trigger(schema, &other, matched) {
                    moves.push((other, winner));
                }
            }
        }
    }
    Ok(moves)
}

/// The item as it stands now; `None` when it is gone.
async fn current(service: &Service, type_key: &str, id: i64) -> ServiceResult<Option<Item>> {
    match service.get_item(&Caller::automation(Actor::System, 0), type_key, id).await {
        Ok(item) => Ok(Some(item)),
        Err(ServiceError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Asks a plugin trigger whether `event` matches. The plugin may read items (when granted) and
/// nothing else; its failure counts as "no" and is noted on the item's timeline.
async fn ask_plugin(
    service: &Arc<Service>,
    trigger: &StoredTrigger,
    (plugin, version, config): (&str, &str, &Value),
    event: &StoredEvent,
    item: &Item,
) -> ServiceResult<bool> {
    let resolved = match service.resolve_plugin(plugin, version, "trigger").await {
        Ok(r) => r,
        Err(ServiceError::NotFound(m)) => {
            note_failure(service, trigger, item, plugin, &m).await?;
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    let capabilities: Vec<Capability> =
        resolved.version.capabilities.iter().copied().filter(|c| *c == Capability::ItemsRead).collect();
    let caller = Caller::automation(trigger_actor(trigger), event.depth as u32 + 1);
    let host = HostCalls::new(service.clone(), plugin, capabilities, caller);
    let mut event_json = serde_json::to_value(event).unwrap_or(Value::Null);
    event_json["item"] = serde_json::to_value(item).unwrap_or(Value::Null);
    let (event_text, config_text) = (event_json.to_string(), config.to_string());
    let limits = resolved.version.limits;
    let runtime = service.runtime();
    let verdict = match resolved.loaded.as_ref() {
        Loaded::Wasm(prepared) => runtime.wasm.run_trigger(prepared, host, &limits, event_text, config_text).await,
        Loaded::Rhai(ast) => runtime.rhai.run_trigger(ast.clone(), host, &limits, event_text, config_text).await,
    };
    match verdict {
        Ok(matched) => Ok(matched),
        Err(failure) => {
            let text = format!("{} ({}): {failure}", resolved.version.version, failure.kind());
            note_failure(service, trigger, item, plugin, &text).await?;
            Ok(false)
        }
    }
}

/// Notes a failed plugin trigger on the item's timeline.
async fn note_failure(
    service: &Service,
    trigger: &StoredTrigger,
    item: &Item,
    plugin: &str,
    message: &str,
) -> ServiceResult<()> {
    tracing::warn!(trigger = trigger.id, plugin, "trigger failed: {message}");
    let text = format!("Trigger {} (plugin {plugin}) failed: {message}", trigger.id);
    let data = json!({"trigger": trigger.id, "plugin": plugin, "message": message});
    let caller = Caller::automation(Actor::System, 0);
    let target = ItemRef { type_key: item.type_key.clone(), id: item.id };
    let mut tx = service.store().begin().await?;
    match service
        .add_timeline_entry_in(
            &mut tx,
            &caller,
            &target,
            TimelineNote { kind: TimelineKind::System, text: &text, data: &data },
        )
        .await
    {
        Ok(_) => Ok(tx.commit().await?),
        Err(ServiceError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}
