//! The host side of a plugin call: what the runtime may read through [`Domain`] (as the
//! caller the plugin acts for, with its access checks), and applying the writes a call
//! buffered, in the transaction that records what the call concluded.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use voronka_model::item::{Item, ItemPatch, ItemRef};
use voronka_runtime::host::{Domain, DomainFuture, HostCalls, HostError, Write};
use voronka_store::Tx;

use super::items::TimelineNote;
use super::notifications::NewNotification;
use super::{Caller, Core, ServiceError, ServiceResult};

impl From<ServiceError> for HostError {
    fn from(e: ServiceError) -> HostError {
        match e {
            ServiceError::NotFound(m) => HostError::new("not-found", m),
            ServiceError::Validation(errors) => HostError::new(
                "invalid",
                errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "),
            ),
            ServiceError::Forbidden(m) | ServiceError::AutomaticMovesOnly(m) => HostError::new("denied", m),
            ServiceError::Conflict(m) => HostError::new("conflict", m),
            ServiceError::TooLarge(m) => HostError::new("invalid", m),
            e @ ServiceError::PreconditionFailed { .. } => HostError::new("conflict", e.to_string()),
            ServiceError::Store(e) => {
                tracing::error!(error = %e, "storage failure in a host call");
                HostError::new("internal", "the host failed to read its storage")
            }
        }
    }
}

/// The domain as a plugin call sees it: the use cases, as the caller the plugin acts for.
struct PluginReads {
    core: Arc<Core>,
    caller: Caller,
}

impl Domain for PluginReads {
    fn get_item<'a>(&'a self, type_key: &'a str, id: i64) -> DomainFuture<'a, Option<Item>> {
        Box::pin(async move {
            match self.core.items().get(&self.caller, type_key, id).await {
                Ok(item) => Ok(Some(item)),
                Err(ServiceError::NotFound(_)) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn find_items<'a>(&'a self, type_key: &'a str, filters: Vec<(String, String)>) -> DomainFuture<'a, Vec<Item>> {
        Box::pin(async move { Ok(self.core.items().list(&self.caller, type_key, &filters).await?.items) })
    }

    fn kv_get<'a>(&'a self, plugin: &'a str, key: &'a str) -> DomainFuture<'a, Option<String>> {
        Box::pin(async move {
            voronka_store::plugins::kv_get(self.core.store().reader(), plugin, key)
                .await
                .map_err(|e| ServiceError::from(e).into())
        })
    }
}

/// The host calls of one call of `plugin`, granted `capabilities`, acting as `caller`.
pub fn host_calls(
    core: &Arc<Core>,
    plugin: &str,
    capabilities: Vec<voronka_model::capability::Capability>,
    caller: Caller,
) -> HostCalls {
    HostCalls::new(Arc::new(PluginReads { core: core.clone(), caller }), plugin, capabilities)
}

/// Wakes the loops that watch what a call's writes created (deadlines of tasks, processes
/// started); call after the writes committed.
pub fn after_commit(core: &Core, writes: &[Write]) {
    if writes.iter().any(|w| matches!(w, Write::CreateTask { .. })) {
        core.signals().deadlines.notify_one();
    }
    if writes.iter().any(|w| matches!(w, Write::StartProcess { .. })) {
        core.signals().processes.notify_one();
    }
}

/// Applies buffered writes inside `tx` as `caller`, in order, mapping provisional ids.
pub async fn apply_writes(
    core: &Core,
    tx: &mut Tx,
    caller: &Caller,
    plugin: &str,
    writes: &[Write],
) -> ServiceResult<()> {
    let mut ids: HashMap<i64, i64> = HashMap::new();
    let real = |ids: &HashMap<i64, i64>, id: i64| -> ServiceResult<i64> {
        if id < 0 {
            ids.get(&id).copied().ok_or_else(|| ServiceError::invalid("id", format!("no item was created as {id}")))
        } else {
            Ok(id)
        }
    };
    for write in writes {
        match write {
            Write::Create { type_key, input, provisional } => {
                let mut input = input.clone();
                for parent in &mut input.parents {
                    parent.id = real(&ids, parent.id)?;
                }
                let item = core.items().create_in(tx, caller, type_key, input).await?;
                ids.insert(*provisional, item.id);
            }
            Write::UpdateFields { type_key, id, fields } => {
                let patch = ItemPatch { fields: Some(fields.clone()), ..ItemPatch::default() };
                core.items().update_in(tx, caller, type_key, real(&ids, *id)?, patch, None).await?;
            }
            Write::Move { type_key, id, request } => {
                core.items().move_to_in(tx, caller, type_key, real(&ids, *id)?, request.clone(), None).await?;
            }
            Write::Return { type_key, id, stage } => {
                core.items().return_to_funnel_in(tx, caller, type_key, real(&ids, *id)?, stage.as_deref()).await?;
            }
            Write::LinkParent { type_key, id, parent } => {
                let id = real(&ids, *id)?;
                let item = core.items().load_in(tx, caller, type_key, id).await?;
                let mut parents = item.parents.clone();
                let parent = ItemRef { type_key: parent.type_key.clone(), id: real(&ids, parent.id)? };
                if !parents.contains(&parent) {
                    parents.push(parent);
                    let patch = ItemPatch { parents: Some(parents), ..ItemPatch::default() };
                    core.items().update_in(tx, caller, type_key, id, patch, None).await?;
                }
            }
            Write::TimelineEntry { type_key, id, text } => {
                let kind = voronka_model::item::TimelineKind::System;
                let item = ItemRef { type_key: type_key.clone(), id: real(&ids, *id)? };
                let data = Value::Object(Map::new());
                core.items().add_timeline_entry_in(tx, caller, &item, TimelineNote { kind, text, data: &data }).await?;
            }
            Write::CreateTask { input } => {
                let mut input = input.as_ref().clone();
                for link in &mut input.links {
                    link.id = real(&ids, link.id)?;
                }
                core.tasks().create_in(tx, caller, input).await?;
            }
            Write::StartProcess { template, item, params } => {
                let item = ItemRef { type_key: item.type_key.clone(), id: real(&ids, item.id)? };
                let caller = Caller { depth: caller.depth + 1, ..caller.clone() };
                core.processes().start_in(tx, &caller, template, &item, params.clone(), None).await?;
            }
            Write::Notify { user, text, about } => {
                let about = match about {
                    Some(a) => Some(ItemRef { type_key: a.type_key.clone(), id: real(&ids, a.id)? }),
                    None => None,
                };
                let data = serde_json::json!({ "plugin": plugin });
                let new = NewNotification { user: *user, kind: "plugin", text: text.clone(), about, data };
                core.notifications().notify_in(tx, caller, new).await?;
            }
            Write::Kv { key, value } => {
                voronka_store::plugins::kv_put(tx, plugin, key, value.as_deref()).await?;
            }
        }
    }
    Ok(())
}
