//! Wait: the thread waits for a time — a duration, a moment, or a date field's time plus an
//! offset — or for an event of the item (a change, with a given field changed or a given stage
//! entered). A time already past, or an empty field, waits for nothing.

use serde_json::{Value, json};
use voronka_model::process::{Thread, Wait};
use voronka_model::time::{Micros, parse_rfc3339};
use voronka_store::Tx;
use voronka_store::processes as repo;

use crate::automation::process::{Next, Run};
use crate::service::ServiceResult;

impl Run<'_> {
    /// Waits for an event of the item of `kind` (with `field` changed, or `stage` entered) after
    /// the stream's end now.
    pub(super) async fn wait_for_event(
        &self,
        tx: &mut Tx,
        kind: &str,
        field: Option<&str>,
        stage: Option<&str>,
    ) -> ServiceResult<Next> {
        let after = repo::last_event_in(tx).await?;
        let (kind, field, stage) = (kind.to_string(), field.map(str::to_string), stage.map(str::to_string));
        Ok(Next::Wait(Wait::Event { kind, field, stage, after }))
    }

    /// When a timer wait ends: after `duration_s`, at `until`, or at the time of the item's
    /// `until_field` plus `offset_s`; none when that time is unknown (an empty field, or text
    /// that is not a time).
    pub(super) fn timer_end(
        &self,
        duration_s: Option<i64>,
        until: Option<&str>,
        until_field: Option<&str>,
        offset_s: i64,
    ) -> Option<Micros> {
        if let Some(s) = duration_s {
            Some(self.now + s * 1_000_000)
        } else if let Some(text) = until {
            parse_rfc3339(text)
        } else {
            until_field
                .and_then(|f| crate::automation::field_time(&self.item.fields, f))
                .and_then(|at| at.checked_add(offset_s.checked_mul(1_000_000)?))
        }
    }

    /// Waits until `at`, or goes on at once (with a note in the log) if it has passed or is
    /// unknown.
    pub(super) fn wait_for_time(&self, tx: &mut Tx, id: &str, pc: usize, at: Option<Micros>) -> Next {
        match at {
            Some(at) if at > self.now => Next::Wait(Wait::Timer { at }),
            _ => {
                self.log(tx, id, "Nothing to wait for: the time has passed or the field is empty", json!({}));
                Next::Goto(pc + 1)
            }
        }
    }

    /// Whether an event the thread waits for has come since `after`; if not, the wait moves past
    /// the events looked at.
    pub(super) async fn event_seen(
        &mut self,
        tx: &mut Tx,
        thread: &Thread,
        kind: &str,
        field: Option<&str>,
        stage: Option<&str>,
        mut after: i64,
    ) -> ServiceResult<bool> {
        let item = self.item_ref();
        loop {
            let events = repo::item_events_after(tx, &item, kind, after).await?;
            if events.iter().any(|(_, payload)| event_matches(payload, field, stage)) {
                return Ok(true);
            }
            let Some((last, _)) = events.last() else { break };
            after = *last;
        }
        // Events looked at are not looked at again.
        if let Some(t) = self.instance.state.threads.iter_mut().find(|t| t.id == thread.id) {
            let (kind, field, stage) = (kind.to_string(), field.map(str::to_string), stage.map(str::to_string));
            t.wait = Some(Wait::Event { kind, field, stage, after });
        }
        Ok(false)
    }
}

/// Whether an item event's payload has the field change or the stage a wait asks for.
fn event_matches(payload: &Value, field: Option<&str>, stage: Option<&str>) -> bool {
    let field_ok = field.is_none_or(|f| {
        let names = [f.to_string(), format!("fields.{f}")];
        payload["changes"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["field"].as_str().is_some_and(|n| names.iter().any(|x| x == n))))
    });
    let stage_ok = stage.is_none_or(|s| payload["to"]["stage"].as_str() == Some(s));
    field_ok && stage_ok
}
