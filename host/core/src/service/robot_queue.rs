//! Robot runs queued by the transaction that moves an item: entering a stage queues a job for
//! each robot bound to it (due after its delay, or relative to a date field), leaving a stage
//! cancels the jobs still pending there. Being part of the move's own transaction, an entry is
//! never missed nor queued twice, whatever crashes, and its jobs exist the moment it commits:
//! no pass over the event stream stands between a move and its robots.
//!
//! Part of the [`super::Robots`] aggregate (`core.robots()`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::json;

use super::items::TimelineNote;
use super::{Caller, Robots, ServiceResult};
use crate::automation::MAX_CHAIN_DEPTH;
use voronka_model::actor::Actor;
use voronka_model::item::{Item, ItemRef, TimelineKind};
use voronka_model::time::Micros;
use voronka_store::jobs::{self, NewJob};
use voronka_store::robots::{self as repo, Robot, RobotMode};
use voronka_store::{Statement, Tx};

/// A timeline note about robots that could not be queued, added once the move is written.
pub(crate) struct RobotNote {
    text: String,
    data: serde_json::Value,
}

/// What an item's arrival at a stage means for robots.
pub(crate) struct StageEntry {
    /// Statements to send right after the event recording the arrival (the jobs name it).
    pub statements: Vec<Statement>,
    /// Notes to add to the item's timeline afterwards.
    pub notes: Vec<RobotNote>,
}

impl Robots<'_> {
    /// Robots bound to a stage, in order; `None` when no robot is bound anywhere (then no robot
    /// run can be pending: unbinding a robot cancels its runs). Read once per configuration
    /// generation (binding changes move it, on every host), with one look at the generation.
    pub(crate) async fn stage_robots(
        &self,
        type_key: &str,
        funnel: &str,
        stage: &str,
    ) -> ServiceResult<Option<Arc<Vec<Robot>>>> {
        let generation = self.core.store.generation().await?;
        let key = (type_key.to_string(), funnel.to_string(), stage.to_string());
        let (any, cached) = match self.core.caches.stage_robots.lock() {
            Ok(cache) if cache.generation == generation => (cache.any, cache.by_stage.get(&key).cloned()),
            _ => (None, None),
        };
        let any = match any {
            Some(any) => any,
            None => repo::any(self.core.store.reader()).await?,
        };
        let robots = match cached {
            Some(robots) => Some(robots),
            None if any => Some(Arc::new(repo::on_stage(self.core.store.reader(), type_key, funnel, stage).await?)),
            None => None,
        };
        if let Ok(mut cache) = self.core.caches.stage_robots.lock() {
            if cache.generation != generation {
                *cache = super::StageRobots { generation, ..Default::default() };
            }
            cache.any = Some(any);
            if let Some(robots) = &robots {
                cache.by_stage.insert(key, robots.clone());
            }
        }
        Ok(robots)
    }

    /// The robot runs `item` (as it is after the change) gets for arriving at its stage at `at`:
    /// pending runs elsewhere are cancelled (`left` says whether it came from another stage),
    /// and a job is queued for each robot of the stage, unless the chain of automation that
    /// moved it is too long.
    pub(crate) async fn enter_stage(
        &self,
        caller: &Caller,
        item: &Item,
        left: bool,
        at: Micros,
    ) -> ServiceResult<StageEntry> {
        let mut entry = StageEntry { statements: Vec::new(), notes: Vec::new() };
        let (Some(funnel), Some(stage)) = (item.funnel.as_deref(), item.stage.as_deref()) else {
            return Ok(entry);
        };
        let Some(robots) = self.stage_robots(&item.type_key, funnel, stage).await? else {
            return Ok(entry);
        };
        if left {
            entry.statements.push(jobs::cancel_pending(item.id, Some((funnel, stage)), at));
        }
        if robots.is_empty() {
            return Ok(entry);
        }
        let depth = i64::from(caller.depth);
        if depth >= MAX_CHAIN_DEPTH {
            entry.notes.push(RobotNote {
                text: format!(
                    "Automation chain stopped: {MAX_CHAIN_DEPTH} steps of robots moving items in a row; robots of stage {stage} did not run"
                ),
                data: json!({"depth": depth}),
            });
            return Ok(entry);
        }
        let actor = caller.actor.to_json_string();
        let mut queued = false;
        for robot in robots.iter() {
            let due_at = match &robot.relative_to {
                None => at + robot.delay_s * 1_000_000,
                Some(relative) => match crate::automation::field_time(&item.fields, &relative.field) {
                    // A time already past runs at once.
                    Some(time) => (time + relative.offset_s * 1_000_000).max(at),
                    None => {
                        entry.notes.push(RobotNote {
                            text: format!(
                                "Robot {} skipped: its time is relative to field {}, which is empty",
                                robot.plugin, relative.field
                            ),
                            data: json!({"robot": robot.id, "field": relative.field}),
                        });
                        continue;
                    }
                },
            };
            let job = NewJob {
                robot_id: robot.id,
                schedule_id: None,
                item_id: item.id,
                type_key: &item.type_key,
                funnel,
                stage,
                event_id: None,
                actor: &actor,
                depth,
                // The first job queued has no predecessor in this transaction.
                after_previous: queued && robot.mode == RobotMode::AfterPrevious,
                due_at,
            };
            entry.statements.push(jobs::enqueue(&job, at));
            queued = true;
        }
        if queued {
            self.core.jobs_queued.store(true, Ordering::Release);
        }
        Ok(entry)
    }

    /// Statements moving the pending runs of `item`'s stage robots that are due relative to a
    /// date field among `changed` (change names as in `item.updated`, e.g. `fields.install_date`)
    /// to the field's new time, or cancelling them when it was emptied.
    pub(crate) async fn retime_relative(
        &self,
        item: &Item,
        changed: &[&str],
        at: Micros,
    ) -> ServiceResult<Vec<Statement>> {
        let mut statements = Vec::new();
        let (Some(funnel), Some(stage)) = (item.funnel.as_deref(), item.stage.as_deref()) else {
            return Ok(statements);
        };
        if !changed.iter().any(|c| c.starts_with("fields.")) {
            return Ok(statements);
        }
        let Some(robots) = self.stage_robots(&item.type_key, funnel, stage).await? else {
            return Ok(statements);
        };
        for robot in robots.iter() {
            let Some(relative) = &robot.relative_to else { continue };
            if !changed.iter().any(|c| c.strip_prefix("fields.") == Some(relative.field.as_str())) {
                continue;
            }
            let due = crate::automation::field_time(&item.fields, &relative.field)
                .map(|time| (time + relative.offset_s * 1_000_000).max(at));
            statements.push(jobs::retime_pending(item.id, robot.id, (funnel, stage), due, at));
            self.core.jobs_queued.store(true, Ordering::Release);
        }
        Ok(statements)
    }

    /// Adds the notes of a stage entry to the item's timeline inside `tx`, as the system.
    pub(crate) async fn note_stage_entry(&self, tx: &mut Tx, caller: &Caller, item: &Item, notes: Vec<RobotNote>) {
        let system = Caller::automation(Actor::System, caller.depth);
        let item_ref = ItemRef { type_key: item.type_key.clone(), id: item.id };
        for note in notes {
            let note_ref = TimelineNote { kind: TimelineKind::System, text: &note.text, data: &note.data };
            if let Err(e) = self.core.items().add_timeline_entry_in(tx, &system, &item_ref, note_ref).await {
                tracing::warn!(error = %e, item = item.id, "could not note robots not queued");
            }
        }
    }
}
