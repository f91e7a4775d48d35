//! Waking the processes that wait for an event of their item: a watcher of the event stream
//! wakes the waiting instances of the items whose events were committed, so the engine looks
//! at their waits again.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;
use voronka_model::event::EventKind;
use voronka_model::item::ItemRef;
use voronka_store::processes as repo;

use super::IDLE_POLL;
use crate::automation::background::{self, Next as Pass};
use crate::automation::{NOT_STARTED, timing};
use crate::service::{Core, ServiceResult};

/// Wakes the processes that wait for an event of an item when such events are committed.
/// Each host reads the event stream from where it stood at start; at start every waiting
/// process is woken once, so events committed while no host watched are not missed.
pub async fn run_event_wakes(core: Arc<Core>, shutdown: CancellationToken) {
    let timing = timing(&core, IDLE_POLL, IDLE_POLL);
    // Where this host stands in the event stream; `NOT_STARTED` until the first pass takes the
    // stream's end, with every waiting process woken once.
    let position = &core.signals().process_events_read;
    let wakes = &core.signals().process_events;
    background::run("waking processes for events", wakes, timing, shutdown, || async {
        let from = position.load(Ordering::Acquire);
        if from == NOT_STARTED {
            let last = repo::last_event(core.store().reader()).await?;
            let mut tx = core.store().begin();
            repo::wake_all_event_waiters(&mut tx).await?;
            tx.commit().await?;
            position.store(last, Ordering::Release);
            core.signals().processes.notify_one();
            return Ok(Pass::Again);
        }
        let (last, more) = wake_for_events(&core, from).await?;
        position.store(last, Ordering::Release);
        Ok(if more { Pass::Again } else { Pass::Wait(None) })
    })
    .await
}

/// Wakes the waiting processes of the items of the events after `position`; returns the new
/// position and whether more events may wait.
async fn wake_for_events(core: &Core, position: i64) -> ServiceResult<(i64, bool)> {
    const BATCH: i64 = 500;
    let reader = core.store().reader();
    // The stream's end is read before the waiters are. A process waits for the events after the
    // stream's end at its start, and events are ordered behind that start (the event-order
    // lock), so when no process waits yet, none waits for the events up to here: they are
    // passed over unread.
    let end = repo::last_event(reader).await?;
    if !repo::any_event_waiter(reader).await? {
        return Ok((end.max(position), false));
    }
    let events = voronka_store::outbox::list(reader, position, None, BATCH).await?;
    let Some(last) = events.iter().take(BATCH as usize).map(|e| e.id).next_back() else { return Ok((position, false)) };
    let more = events.len() as i64 > BATCH;
    {
        // Each item with the least chain depth of its events.
        let mut items: Vec<(ItemRef, i64)> = Vec::new();
        for event in events.iter().take(BATCH as usize) {
            let (Some(type_key), Some(id)) = (&event.type_key, event.item_id) else { continue };
            if !(voronka_model::process::WAITABLE_EVENTS.contains(&event.kind) || event.kind == EventKind::ItemDeleted)
            {
                continue;
            }
            match items.iter_mut().find(|(i, _)| i.id == id && &i.type_key == type_key) {
                Some((_, depth)) => *depth = (*depth).min(event.depth),
                None => items.push((ItemRef { type_key: type_key.clone(), id }, event.depth)),
            }
        }
        if !items.is_empty() {
            let mut tx = core.store().begin();
            let woken = repo::wake_event_waiters(&mut tx, &items).await?;
            tx.commit().await?;
            if woken > 0 {
                core.signals().processes.notify_one();
            }
        }
    }
    Ok((last, more))
}
