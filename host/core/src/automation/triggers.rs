//! The trigger dispatcher: reads the outbox in order and, for each event, moves the items whose
//! triggers match — the item the event is about (field, responsible and plugin triggers) and
//! the items linked to it (linked-item-stage triggers). Each move commits together with the
//! dispatcher's position, so a crash neither loses nor repeats one; the position is compared
//! when it is written, so of several hosts on one database exactly one applies each event.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use voronka_model::event::EventKind;
use voronka_model::plugin::World;

use serde_json::{Value, json};

use tokio_util::sync::CancellationToken;

use super::MAX_CHAIN_DEPTH;
use super::background::{self, Next};
use crate::service::items::TimelineNote;
use crate::service::plugin_host::host_calls;
use crate::service::triggers::trigger_actor;
use crate::service::{Caller, Core, ServiceError, ServiceResult};
use voronka_model::actor::Actor;
use voronka_model::capability::Capability;
use voronka_model::item::{Item, ItemRef, TimelineKind};
use voronka_model::trigger::TriggerRule;
use voronka_runtime::world::{Trigger, TriggerInput};
use voronka_store::catalog::Catalog;
use voronka_store::jobs;
use voronka_store::outbox::{self, StoredEvent};
use voronka_store::triggers::{self as repo, StoredTrigger};

/// The name of the trigger dispatcher's place in the event stream (`cursors` table).
pub const CURSOR: &str = "triggers";
const BATCH: i64 = 200;
/// Longest sleep between looks at a shared database's outbox (other hosts' events).
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Attempts at one event before the dispatcher gives up on it and goes on.
const EVENT_ATTEMPTS: u32 = 5;

/// Most events whose plans commit in one transaction.
const GROUP: usize = 100;
/// Pause between passes over the events while no trigger exists.
const NO_TRIGGERS_PAUSE: Duration = Duration::from_millis(250);
/// Pause before looking again at an event that could not be applied.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// How far a batch got.
#[derive(Debug, PartialEq, Eq)]
pub enum Pass {
    /// A full batch: more events may wait.
    More,
    /// Every event so far is applied.
    CaughtUp,
    /// Stopped at an event to look at again soon.
    Stopped,
    /// No trigger exists: the events were passed over unread.
    NoTriggers,
}

/// Runs until shutdown.
pub async fn run(core: Arc<Core>, shutdown: CancellationToken) {
    let timing = super::timing(&core, IDLE_POLL, RETRY_PAUSE);
    let stuck = tokio::sync::Mutex::new(Stuck::default());
    let events = &core.signals().trigger_events;
    background::run("applying triggers", events, timing, shutdown, || async {
        Ok(match dispatch_batch(&core, &mut *stuck.lock().await).await? {
            Pass::More => Next::Again,
            Pass::CaughtUp => Next::Wait(None),
            // With no trigger, the events of a busy host are passed over a few times a second,
            // not at every commit.
            Pass::NoTriggers => Next::Rest(NO_TRIGGERS_PAUSE),
            Pass::Stopped => Next::Retry(RETRY_PAUSE),
        })
    })
    .await
}

/// A trigger with its parsed rule.
struct Rule {
    trigger: StoredTrigger,
    rule: TriggerRule,
}

/// The event the dispatcher failed to get past, and how often: a move that keeps failing (a
/// store fault, an item changing on every attempt) is given up after [`EVENT_ATTEMPTS`] so the
/// events after it still run.
#[derive(Default)]
pub struct Stuck {
    event: i64,
    attempts: u32,
}

impl Stuck {
    /// Counts a failed attempt at `event`; true when it is time to skip it.
    fn failed(&mut self, event: i64) -> bool {
        if self.event != event {
            *self = Stuck { event, attempts: 0 };
        }
        self.attempts += 1;
        self.attempts >= EVENT_ATTEMPTS
    }
}

/// What an event causes: moves, and notes for the timelines (failed plugin triggers, stopped
/// chains), written together with the dispatcher's position.
#[derive(Default)]
struct Plan<'r> {
    moves: Vec<(Item, &'r StoredTrigger)>,
    notes: Vec<(ItemRef, String, Value)>,
}

impl Plan<'_> {
    fn is_empty(&self) -> bool {
        self.moves.is_empty() && self.notes.is_empty()
    }
}

/// Events a plugin trigger is asked about: changes of items, not comments (failure notes are
/// comments) or deletions.
const PLUGIN_EVENTS: [EventKind; 4] =
    [EventKind::ItemCreated, EventKind::ItemUpdated, EventKind::ItemStageChanged, EventKind::ItemFunnelChanged];

/// Applies the triggers to one batch of events.
pub async fn dispatch_batch(core: &Arc<Core>, stuck: &mut Stuck) -> ServiceResult<Pass> {
    let reader = core.store().reader();
    let triggers = repo::all(reader).await?;
    if triggers.is_empty() {
        let mut tx = core.store().begin();
        jobs::pass_over_unwatched(&mut tx, CURSOR, repo::ANY_TRIGGER);
        tx.commit().await?;
        return Ok(Pass::NoTriggers);
    }
    let mut position = jobs::position(reader, CURSOR).await?;
    let mut events = outbox::list(reader, position, None, BATCH).await?;
    events.truncate(BATCH as usize);
    let Some(last) = events.last().map(|e| e.id) else { return Ok(Pass::CaughtUp) };
    let full = events.len() as i64 == BATCH;
    let mut rules = Vec::new();
    for trigger in triggers {
        match TriggerRule::parse(&trigger.kind, &trigger.config) {
            Ok(rule) => rules.push(Rule { trigger, rule }),
            Err(e) => tracing::warn!(trigger = trigger.id, "a stored trigger is unreadable and is ignored: {e:?}"),
        }
    }
    if !rules.is_empty() {
        let catalog = core.catalog().await?;
        // The items of the batch's events, read at once; an item a flushed plan moved is read
        // again when next needed.
        let ids: Vec<i64> = events.iter().filter_map(|e| e.item_id).collect::<HashSet<_>>().into_iter().collect();
        let mut items =
            Items { known: voronka_store::items::get_many(reader, &ids).await?, fetched: ids.into_iter().collect() };
        // Plans of consecutive events commit together; an event about an item a waiting plan
        // moves is planned only after that plan committed, so it sees the move.
        let mut group: Vec<(&StoredEvent, Plan<'_>)> = Vec::new();
        let mut touched: HashSet<i64> = HashSet::new();
        for event in &events {
            if event.item_id.is_some_and(|id| touched.contains(&id)) || group.len() >= GROUP {
                match flush(core, &mut position, std::mem::take(&mut group), stuck).await? {
                    Pass::Stopped => return Ok(Pass::Stopped),
                    _ => items.forget(touched.drain()),
                }
            }
            let planned = plan(core, &catalog, &rules, event, &mut items).await;
            let planned = match planned {
                Ok(p) if p.moves.iter().any(|(item, _)| touched.contains(&item.id)) => {
                    // It moves an item a waiting plan moves too: commit that first, then look again.
                    match flush(core, &mut position, std::mem::take(&mut group), stuck).await? {
                        Pass::Stopped => return Ok(Pass::Stopped),
                        _ => items.forget(touched.drain()),
                    }
                    plan(core, &catalog, &rules, event, &mut items).await
                }
                other => other,
            };
            match planned {
                Ok(p) if p.is_empty() => {}
                Ok(p) => {
                    touched.extend(p.moves.iter().map(|(item, _)| item.id));
                    group.push((event, p));
                }
                Err(e) => {
                    if let Pass::Stopped = flush(core, &mut position, std::mem::take(&mut group), stuck).await? {
                        return Ok(Pass::Stopped);
                    }
                    items.forget(touched.drain());
                    if !stuck.failed(event.id) {
                        return Err(e);
                    }
                    tracing::error!(event = event.id, error = %e, "triggers gave up on an event after {EVENT_ATTEMPTS} attempts");
                }
            }
        }
        if let Pass::Stopped = flush(core, &mut position, group, stuck).await? {
            return Ok(Pass::Stopped);
        }
    }
    if last > position {
        let mut tx = core.store().begin();
        if !jobs::advance_cursor(&mut tx, CURSOR, position, last).await? {
            return Ok(Pass::Stopped);
        }
        match tx.commit().await {
            Ok(()) => {}
            // Another host moved the position meanwhile.
            Err(voronka_store::DbError::CheckFailed) => return Ok(Pass::Stopped),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(if full { Pass::More } else { Pass::CaughtUp })
}

/// Commits a group of plans together with the position at the group's last event, moving
/// `position` on. When the group fails as a whole, its plans are tried one by one, so one that
/// keeps failing is found and, after [`EVENT_ATTEMPTS`], given up. `Stopped` when an event is to
/// be looked at again.
async fn flush(
    core: &Core,
    position: &mut i64,
    group: Vec<(&StoredEvent, Plan<'_>)>,
    stuck: &mut Stuck,
) -> ServiceResult<Pass> {
    if group.is_empty() {
        return Ok(Pass::CaughtUp);
    }
    if group.len() > 1 && matches!(apply(core, *position, &group).await, Ok(true)) {
        *position = group.last().map_or(*position, |(event, _)| event.id);
        return Ok(Pass::CaughtUp);
    }
    for one in group.chunks(1) {
        let event = one[0].0;
        match apply(core, *position, one).await {
            Ok(true) => *position = event.id,
            Ok(false) | Err(_) if !stuck.failed(event.id) => return Ok(Pass::Stopped),
            outcome => tracing::error!(
                event = event.id,
                error = ?outcome.err(),
                "triggers gave up on an event after {EVENT_ATTEMPTS} attempts"
            ),
        }
    }
    Ok(Pass::CaughtUp)
}

/// Commits what events cause together with the position at the last of them. `false` when
/// another host moved the position meanwhile or an item changed since it was read.
async fn apply(core: &Core, position: i64, plans: &[(&StoredEvent, Plan<'_>)]) -> ServiceResult<bool> {
    let Some(last) = plans.last().map(|(event, _)| event.id) else { return Ok(true) };
    let mut tx = core.store().begin();
    if !jobs::advance_cursor(&mut tx, CURSOR, position, last).await? {
        return Ok(false);
    }
    for (event, plan) in plans {
        let system = Caller::automation(Actor::System, event.depth as u32 + 1);
        for (target, text, data) in &plan.notes {
            let note = TimelineNote { kind: TimelineKind::System, text, data };
            match core.items().add_timeline_entry_in(&mut tx, &system, target, note).await {
                Ok(_) | Err(ServiceError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        for (item, trigger) in &plan.moves {
            match core.triggers().move_item_in(&mut tx, item, trigger, event.depth as u32 + 1).await {
                Ok(_) => {}
                Err(ServiceError::PreconditionFailed { .. } | ServiceError::NotFound(_)) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }
    match tx.commit().await {
        Ok(()) => {}
        // The position moved meanwhile, or an item changed since it was read.
        Err(voronka_store::DbError::CheckFailed) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    core.committed();
    Ok(true)
}

/// What `event` causes: for each item concerned, the trigger that wins (among triggers created
/// before the event), or a note instead when the chain of automation is too long to go on.
async fn plan<'r>(
    core: &Arc<Core>,
    catalog: &Catalog,
    rules: &'r [Rule],
    event: &StoredEvent,
    items: &mut Items,
) -> ServiceResult<Plan<'r>> {
    let mut plan = Plan::default();
    let rules: Vec<&Rule> = rules.iter().filter(|r| r.trigger.since_event < event.id).collect();
    if rules.is_empty() {
        return Ok(plan);
    }
    if event.kind == EventKind::TaskCompleted {
        plan_task_completed(core, catalog, &rules, event, &mut plan, items).await?;
    } else if let (Some(item_id), Some(type_key)) = (event.item_id, event.type_key.as_deref())
        && event.kind != EventKind::ItemDeleted
    {
        plan_item_event(core, catalog, &rules, event, (type_key, item_id), &mut plan, items).await?;
    }
    if event.depth >= MAX_CHAIN_DEPTH {
        for (item, trigger) in std::mem::take(&mut plan.moves) {
            let text = format!(
                "Automation chain stopped: {MAX_CHAIN_DEPTH} automation steps in a row; trigger {} did not move the item to stage {}",
                trigger.id, trigger.stage
            );
            let data = json!({"trigger": trigger.id, "depth": event.depth});
            plan.notes.push((ItemRef { type_key: item.type_key.clone(), id: item.id }, text, data));
        }
    }
    Ok(plan)
}

/// The moves a completed task causes: each item it is linked to moves by the task-completed
/// trigger of its funnel that wins.
async fn plan_task_completed<'r>(
    core: &Arc<Core>,
    catalog: &Catalog,
    rules: &[&'r Rule],
    event: &StoredEvent,
    plan: &mut Plan<'r>,
    items: &mut Items,
) -> ServiceResult<()> {
    let task = &event.payload["task"];
    let rules: Vec<&Rule> = rules.iter().copied().filter(|r| r.rule.matches_task(task)).collect();
    if rules.is_empty() {
        return Ok(());
    }
    let links: Vec<ItemRef> = serde_json::from_value(task["links"].clone()).unwrap_or_default();
    for link in links {
        let Some(item) = items.current(core, &link.type_key, link.id).await? else { continue };
        let (Some(schema), Some(funnel)) = (catalog.get(&item.type_key), item.funnel.as_deref()) else { continue };
        let matched = rules
            .iter()
            .filter(|r| r.trigger.type_key == item.type_key && r.trigger.funnel == funnel)
            .map(|r| &r.trigger);
        if let Some(winner) = core.triggers().choose(schema, &item, matched) {
            plan.moves.push((item, winner));
        }
    }
    Ok(())
}

/// The moves an event about an item causes: by the item's own triggers, and by those of the
/// items linked to it when it entered a stage.
async fn plan_item_event<'r>(
    core: &Arc<Core>,
    catalog: &Catalog,
    rules: &[&'r Rule],
    event: &StoredEvent,
    (type_key, item_id): (&str, i64),
    plan: &mut Plan<'r>,
    items: &mut Items,
) -> ServiceResult<()> {
    let Some(item) = items.current(core, type_key, item_id).await? else { return Ok(()) };
    // Triggers on the item's own funnel.
    if let (Some(schema), Some(funnel)) = (catalog.get(type_key), item.funnel.as_deref()) {
        let mut matched = Vec::new();
        for r in rules.iter().filter(|r| r.trigger.type_key == type_key && r.trigger.funnel == funnel) {
            let hit = match &r.rule {
                TriggerRule::FieldChanged { .. } | TriggerRule::ResponsibleChanged { .. } => {
                    event.kind == EventKind::ItemUpdated
                        && event.payload["changes"].as_array().is_some_and(|c| r.rule.matches_changes(c))
                }
                TriggerRule::Plugin { plugin, version, config } if PLUGIN_EVENTS.contains(&event.kind) => {
                    // A trigger never reacts to its own move.
                    let own = matches!(&event.actor, Actor::Trigger { id, .. } if *id == r.trigger.id);
                    let asked = (plugin.as_str(), version.as_str(), config);
                    !own && ask_plugin(core, &r.trigger, asked, event, &item, plan).await?
                }
                _ => false,
            };
            if hit {
                matched.push(&r.trigger);
            }
        }
        if let Some(winner) = core.triggers().choose(schema, &item, matched) {
            plan.moves.push((item.clone(), winner));
        }
    }
    // Triggers of the items linked to it, when it entered a stage.
    if let Some(Some((funnel, stage))) = super::entered(event.kind, &event.payload) {
        let linked_rules: Vec<&Rule> =
            rules.iter().copied().filter(|r| r.rule.matches_linked(type_key, &funnel, &stage)).collect();
        if !linked_rules.is_empty() {
            let mut linked = item.parents.clone();
            linked.extend(voronka_store::items::children_of(core.store().reader(), item.id).await?);
            let mut seen = HashSet::new();
            linked.retain(|l| l.id != item.id && seen.insert(l.id));
            for link in linked {
                let Some(other) = items.current(core, &link.type_key, link.id).await? else { continue };
                let (Some(schema), Some(other_funnel)) = (catalog.get(&other.type_key), other.funnel.as_deref()) else {
                    continue;
                };
                let matched = linked_rules
                    .iter()
                    .filter(|r| r.trigger.type_key == other.type_key && r.trigger.funnel == other_funnel)
                    .map(|r| &r.trigger);
                if let Some(winner) = core.triggers().choose(schema, &other, matched) {
                    plan.moves.push((other, winner));
                }
            }
        }
    }
    Ok(())
}

/// Items as they stand, read once per batch (and again after this dispatcher moved them).
struct Items {
    known: std::collections::HashMap<i64, Item>,
    /// Ids read (found or not) and not forgotten since.
    fetched: HashSet<i64>,
}

impl Items {
    /// The item as it stands now; `None` when it is gone.
    async fn current(&mut self, core: &Core, type_key: &str, id: i64) -> ServiceResult<Option<Item>> {
        if self.fetched.contains(&id) {
            return Ok(self.known.get(&id).filter(|i| i.type_key == type_key).cloned());
        }
        let item = match core.items().get(&Caller::automation(Actor::System, 0), type_key, id).await {
            Ok(item) => Some(item),
            Err(ServiceError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        self.fetched.insert(id);
        if let Some(item) = &item {
            self.known.insert(id, item.clone());
        }
        Ok(item)
    }

    /// Forgets items moved since they were read.
    fn forget(&mut self, ids: impl Iterator<Item = i64>) {
        for id in ids {
            self.fetched.remove(&id);
            self.known.remove(&id);
        }
    }
}

/// Asks a plugin trigger whether `event` matches. The plugin may read items (when granted) and
/// nothing else; its failure counts as "no" and is noted on the item's timeline.
async fn ask_plugin(
    core: &Arc<Core>,
    trigger: &StoredTrigger,
    (plugin, version, config): (&str, &str, &Value),
    event: &StoredEvent,
    item: &Item,
    plan: &mut Plan<'_>,
) -> ServiceResult<bool> {
    let resolved = match core.plugins().resolve(plugin, version, World::Trigger).await {
        Ok(r) => r,
        Err(ServiceError::NotFound(m)) => {
            plan.notes.push(failure_note(trigger, item, plugin, &m));
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    let capabilities: Vec<Capability> =
        resolved.version.capabilities.iter().copied().filter(|c| *c == Capability::ItemsRead).collect();
    let caller = Caller::automation(trigger_actor(trigger), event.depth as u32 + 1);
    let host = host_calls(core, plugin, capabilities, caller);
    let mut event_json = serde_json::to_value(event).unwrap_or(Value::Null);
    event_json["item"] = serde_json::to_value(item).unwrap_or(Value::Null);
    let input = TriggerInput { event: event_json.to_string(), config: config.to_string() };
    let limits = resolved.version.limits;
    match core.runtime().call::<Trigger>(&resolved.loaded, host, &limits, input).await {
        Ok((matched, _)) => Ok(matched),
        Err(failure) => {
            let text = format!("{} ({}): {failure}", resolved.version.version, failure.kind());
            plan.notes.push(failure_note(trigger, item, plugin, &text));
            Ok(false)
        }
    }
}

/// The timeline note of a failed plugin trigger.
fn failure_note(trigger: &StoredTrigger, item: &Item, plugin: &str, message: &str) -> (ItemRef, String, Value) {
    tracing::warn!(trigger = trigger.id, plugin, "trigger failed: {message}");
    let text = format!("Trigger {} (plugin {plugin}) failed: {message}", trigger.id);
    let data = json!({"trigger": trigger.id, "plugin": plugin, "message": message});
    (ItemRef { type_key: item.type_key.clone(), id: item.id }, text, data)
}
