//! The dispatcher: reads the outbox in order and queues a job for every robot of each stage an
//! item enters, in the same transaction as its position, so no event is missed or seen twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::MAX_CHAIN_DEPTH;
use super::Shutdown;
use crate::model::actor::Actor;
use crate::model::item::{ItemRef, TimelineKind};
use crate::model::time::now_micros;
use crate::service::items::TimelineNote;
use crate::service::{Caller, Service, ServiceResult};
use crate::store::jobs::{self, EventRow, NewJob};
use crate::store::robots::{Robot, RobotMode};

const CURSOR: &str = "robots";
const BATCH: i64 = 500;
/// Longest sleep between looks at a shared database's outbox (other hosts' events).
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Runs until shutdown.
pub async fn run(service: Arc<Service>, mut shutdown: Shutdown) {
    let idle = super::idle_poll(&service, IDLE_POLL);
    while !shutdown.is_fired() {
        match dispatch_batch(&service).await {
            Ok((events, jobs)) => {
                if jobs > 0 {
                    service.signals().jobs.notify_waiters();
                }
                if events as i64 == BATCH {
                    continue;
                }
            }
            Err(e) => tracing::error!(error = %e, "dispatching events failed; retrying"),
        }
        tokio::select! {
            _ = service.signals().robot_events.notified() => {}
            _ = tokio::time::sleep(idle) => {}
            _ = shutdown.fired() => {}
        }
    }
}

/// Where an event puts an item: (funnel, stage) entered, or `None` if it left every stage.
fn entered(event: &EventRow) -> Option<Option<(String, String)>> {
    let payload: Value = serde_json::from_str(&event.payload).ok()?;
    super::entered(&event.kind, &payload)
}

/// Dispatches one batch of events; returns how many events it read and jobs it queued.
pub async fn dispatch_batch(service: &Service) -> ServiceResult<(usize, usize)> {
    let store = service.store();
    let mut tx = store.begin().await?;
    let position = jobs::cursor(&mut tx, CURSOR).await?;
    let events = jobs::events_after(&mut tx, position, BATCH).await?;
    let Some(last) = events.last().map(|e| e.id) else {
        return Ok((0, 0));
    };
    let now = now_micros();
    let mut queued = 0;
    let mut noted = false;
    // Items with pending jobs (those queued below join them), and robots bound per (type,
    // funnel, stage): each read once per batch.
    let items: Vec<i64> = events.iter().filter_map(|e| e.item_id).collect();
    let mut with_pending = jobs::items_with_pending(&mut tx, &items).await?;
    let mut bound: HashMap<(String, String, String), Vec<(Robot, i64)>> = HashMap::new();
    for event in &events {
        let (Some(item_id), Some(type_key)) = (event.item_id, event.type_key.as_deref()) else { continue };
        let Some(place) = entered(event) else { continue };
        let keep = place.as_ref().map(|(f, s)| (f.as_str(), s.as_str()));
        if with_pending.contains(&item_id) {
            jobs::cancel_pending(&mut tx, item_id, keep, now);
        }
        let Some((funnel, stage)) = place else { continue };
        let key = (type_key.to_string(), funnel.clone(), stage.clone());
        let robots = match bound.get(&key) {
            Some(robots) => robots.clone(),
            None => {
                let robots = crate::store::robots::on_stage_in(&mut tx, type_key, &funnel, &stage).await?;
                bound.insert(key, robots.clone());
                robots
            }
        };
        // Robots added after the item entered do not run for it.
        let robots: Vec<_> = robots.into_iter().filter(|(_, created)| *created <= event.at).map(|(r, _)| r).collect();
        if robots.is_empty() {
            continue;
        }
        if event.depth >= MAX_CHAIN_DEPTH {
            let caller = Caller::automation(Actor::System, event.depth as u32);
            let text = format!(
                "Automation chain stopped: {MAX_CHAIN_DEPTH} steps of robots moving items in a row; robots of stage {stage} did not run"
            );
            let item = ItemRef { type_key: type_key.to_string(), id: item_id };
            let data = serde_json::json!({"depth": event.depth});
            let note = TimelineNote { kind: TimelineKind::System, text: &text, data: &data };
            match service.add_timeline_entry_in(&mut tx, &caller, &item, note).await {
                Ok(_) => noted = true,
                Err(e) => tracing::warn!(error = %e, item_id, "could not record a stopped chain"),
            }
            continue;
        }
        let mut previous: Option<i64> = None;
        let mut item = None;
        for robot in robots {
            let due_at = match &robot.relative_to {
                None => event.at + robot.delay_s * 1_000_000,
                Some(relative) => {
                    if item.is_none() {
                        item = crate::store::items::get_in(&mut tx, type_key, item_id).await?;
                    }
                    let Some(current) = item.as_ref() else {
                        // Deleted since: its deletion cancels what is queued for it anyway.
                        continue;
                    };
                    match super::field_time(&current.fields, &relative.field) {
                        // A time already past runs at once.
                        Some(at) => (at + relative.offset_s * 1_000_000).max(event.at),
                        None => {
                            let text = format!(
                                "Robot {} skipped: its time is relative to field {}, which is empty",
                                robot.plugin, relative.field
                            );
                            let note_item = ItemRef { type_key: type_key.to_string(), id: item_id };
                            let data = serde_json::json!({"robot": robot.id, "field": relative.field});
                            let note = TimelineNote { kind: TimelineKind::System, text: &text, data: &data };
                            let caller = Caller::automation(Actor::System, event.depth as u32);
                            match service.add_timeline_entry_in(&mut tx, &caller, &note_item, note).await {
                                Ok(_) => noted = true,
                                Err(e) => tracing::warn!(error = %e, item_id, "could not note a skipped robot"),
                            }
                            continue;
                        }
                    }
                }
            };
            let job = NewJob {
                robot_id: robot.id,
                schedule_id: None,
                item_id,
                type_key,
                funnel: &funnel,
                stage: &stage,
                event_id: event.id,
                actor: &event.actor,
                depth: event.depth,
                after_job: if robot.mode == RobotMode::AfterPrevious { previous } else { None },
                due_at,
            };
            previous = Some(jobs::enqueue(&mut tx, &job, now).await?);
            with_pending.insert(item_id);
            queued += 1;
        }
    }
    jobs::set_cursor(&mut tx, CURSOR, last);
    tx.commit().await?;
    if noted {
        service.committed();
    }
    Ok((events.len(), queued))
}
