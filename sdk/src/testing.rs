//! An in-memory host for testing plugins natively with `cargo test`, no server needed.
//!
//! ```
//! use voronka_sdk::robot::{Context, Error, Guest, Outcome};
//! use voronka_sdk::testing::MemoryHost;
//!
//! /// Notes the item's size on its timeline.
//! struct Measure;
//!
//! impl Guest for Measure {
//!     fn run(ctx: Context) -> Result<Outcome, Error> {
//!         use voronka_sdk::ItemExt;
//!         let size = ctx.item.field_str("size").unwrap_or_default();
//!         voronka_sdk::timeline::add_entry(&ctx.item.type_key, ctx.item.id, &format!("Size {size}"))?;
//!         Ok(Outcome { message: Some("measured".into()) })
//!     }
//! }
//!
//! let mut host = MemoryHost::new();
//! let item = host.add_item("deal", "Kitchen", serde_json::json!({"size": "1200x600"}));
//! let outcome = host.run_robot::<Measure>(&item, "measuring", "{}").unwrap();
//! assert_eq!(outcome.message.as_deref(), Some("measured"));
//! assert_eq!(host.timeline, vec![("deal".to_string(), item.id, "Size 1200x600".to_string())]);
//! ```
//!
//! Triggers and business-process steps run the same way ([`MemoryHost::run_trigger`],
//! [`MemoryHost::run_bp_step`]). Writes apply at once (the real host applies them when the
//! plugin returns successfully). Capabilities are not checked here; the real host does.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::robot::voronka::plugin::items::Filter;
use crate::robot::voronka::plugin::log::Level;
use crate::robot::{Context, Guest, Outcome};
use crate::types::{Error, Item, ItemRef};

thread_local! {
    static HOST: RefCell<Option<MemoryHost>> = const { RefCell::new(None) };
}

/// Runs `f` with the host installed on this thread by a `MemoryHost::run_*` call.
pub(crate) fn with_host<T>(f: impl FnOnce(&mut MemoryHost) -> T) -> T {
    HOST.with(|h| {
        let mut h = h.borrow_mut();
        let host = h.as_mut().expect("host functions are only available while MemoryHost runs a plugin");
        f(host)
    })
}

/// A host kept in memory: items, timelines, kv, log lines, notifications and a fixed clock.
#[derive(Debug, Default, Clone)]
pub struct MemoryHost {
    /// Items by id.
    pub items: BTreeMap<i64, Item>,
    /// Timeline entries: (type, id, text).
    pub timeline: Vec<(String, i64, String)>,
    /// Key-value state.
    pub kv: BTreeMap<String, String>,
    /// Log lines.
    pub log: Vec<String>,
    /// Notifications: (user, text).
    pub notifications: Vec<(i64, String)>,
    /// Tasks created: the JSON input of each.
    pub tasks: Vec<serde_json::Value>,
    /// Processes started: (template, item, parameters).
    pub processes: Vec<(String, ItemRef, serde_json::Value)>,
    /// What `clock::now` answers, in microseconds since the Unix epoch.
    pub now: i64,
    /// Where each item was before its last change of funnel: (funnel, stage) by id.
    pub came_from: BTreeMap<i64, (String, String)>,
    next_id: i64,
}

fn not_found(type_key: &str, id: i64) -> Error {
    crate::error("not-found", format!("no `{type_key}` item {id}"))
}

impl MemoryHost {
    /// An empty host whose clock reads 2026-01-01T00:00:00Z.
    pub fn new() -> MemoryHost {
        MemoryHost { now: 1_767_225_600_000_000, next_id: 1, ..MemoryHost::default() }
    }

    /// Adds an item in funnel `default`, stage `new`, with custom fields (a JSON object).
    pub fn add_item(&mut self, type_key: &str, title: &str, fields: serde_json::Value) -> Item {
        let id = self.next_id.max(1);
        self.next_id = id + 1;
        let item = Item {
            id,
            type_key: type_key.to_string(),
            funnel: Some("default".into()),
            stage: Some("new".into()),
            title: title.to_string(),
            amount: None,
            responsible: None,
            parents: Vec::new(),
            fields: fields.to_string(),
            version: 1,
        };
        self.items.insert(id, item.clone());
        item
    }

    /// An item by type and id.
    pub fn item(&self, type_key: &str, id: i64) -> Option<&Item> {
        self.items.get(&id).filter(|i| i.type_key == type_key)
    }

    /// Runs robot `R` on `item` entering `stage` with a JSON `config`, against this host.
    pub fn run_robot<R: Guest>(&mut self, item: &Item, stage: &str, config: &str) -> Result<Outcome, Error> {
        let ctx = Context {
            item: item.clone(),
            stage: stage.to_string(),
            config: config.to_string(),
            actor: r#"{"kind":"user","id":1}"#.to_string(),
        };
        self.installed(|| R::run(ctx))
    }

    /// Runs trigger `T`'s `matches` on an event (JSON, as the host sends it: `kind`, `item`,
    /// `payload`) with a JSON `config`, against this host.
    pub fn run_trigger<T: crate::trigger::Guest>(&mut self, event: &str, config: &str) -> Result<bool, Error> {
        self.installed(|| T::matches(event.to_string(), config.to_string()))
    }

    /// Runs business-process step `S` on `item` with a JSON `config` and the process
    /// `variables` (a JSON object), against this host.
    pub fn run_bp_step<S: crate::bp_step::Guest>(
        &mut self,
        item: &Item,
        config: &str,
        variables: &str,
    ) -> Result<crate::bp_step::StepOutcome, Error> {
        let ctx = crate::bp_step::StepContext {
            item: item.clone(),
            config: config.to_string(),
            variables: variables.to_string(),
        };
        self.installed(|| S::execute(ctx))
    }

    /// Runs `call` with this host installed on the thread (the host functions reach it there);
    /// the host comes back with what the plugin did, even when the plugin panics.
    fn installed<T>(&mut self, call: impl FnOnce() -> T) -> T {
        /// Takes the host back from the thread when dropped, on return or unwinding.
        struct Installed<'a>(&'a mut MemoryHost);

        impl Drop for Installed<'_> {
            fn drop(&mut self) {
                *self.0 = HOST.with(|h| h.borrow_mut().take()).unwrap_or_default();
            }
        }

        HOST.with(|h| *h.borrow_mut() = Some(std::mem::take(self)));
        let _installed = Installed(self);
        call()
    }

    fn get_mut(&mut self, type_key: &str, id: i64) -> Result<&mut Item, Error> {
        self.items.get_mut(&id).filter(|i| i.type_key == type_key).ok_or_else(|| not_found(type_key, id))
    }

    pub(crate) fn get(&mut self, type_key: &str, id: i64) -> Result<Option<Item>, Error> {
        Ok(self.item(type_key, id).cloned())
    }

    pub(crate) fn find(&mut self, type_key: &str, filters: &[Filter], limit: u32) -> Result<Vec<Item>, Error> {
        let matches = |item: &Item| {
            filters.iter().all(|f| match f.name.as_str() {
                "stage" => item.stage.as_deref() == Some(f.value.as_str()),
                "funnel" => item.funnel.as_deref() == Some(f.value.as_str()),
                name => match name.strip_prefix("field.") {
                    Some(key) => crate::ItemExt::fields(item)
                        .get(key)
                        .is_some_and(|v| v.as_str().map_or(v.to_string(), str::to_string) == f.value),
                    None => true,
                },
            })
        };
        Ok(self.items.values().filter(|i| i.type_key == type_key && matches(i)).take(limit as usize).cloned().collect())
    }

    pub(crate) fn create(&mut self, type_key: &str, input: &str) -> Result<i64, Error> {
        let input: serde_json::Value =
            serde_json::from_str(input).map_err(|e| crate::error("invalid", format!("item input: {e}")))?;
        let title = input["title"].as_str().unwrap_or_default().to_string();
        let mut item = self.add_item(type_key, &title, input.get("fields").cloned().unwrap_or(serde_json::json!({})));
        if let Some(parents) = input["parents"].as_array() {
            item.parents = parents
                .iter()
                .filter_map(|p| Some(ItemRef { type_key: p["type"].as_str()?.to_string(), id: p["id"].as_i64()? }))
                .collect();
        }
        if let Some(stage) = input["stage"].as_str() {
            item.stage = Some(stage.to_string());
        }
        let id = item.id;
        self.items.insert(id, item);
        Ok(id)
    }

    pub(crate) fn update_fields(&mut self, type_key: &str, id: i64, fields: &str) -> Result<(), Error> {
        let changes: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(fields).map_err(|e| crate::error("invalid", format!("fields: {e}")))?;
        let item = self.get_mut(type_key, id)?;
        let mut current = crate::ItemExt::fields(item);
        for (key, value) in changes {
            if value.is_null() {
                current.remove(&key);
            } else {
                current.insert(key, value);
            }
        }
        item.fields = serde_json::Value::Object(current).to_string();
        item.version += 1;
        Ok(())
    }

    pub(crate) fn move_to_stage(
        &mut self,
        type_key: &str,
        id: i64,
        funnel: Option<&str>,
        stage: &str,
    ) -> Result<(), Error> {
        let item = self.get_mut(type_key, id)?;
        let left = (item.funnel.clone().unwrap_or_default(), item.stage.clone().unwrap_or_default());
        if let Some(funnel) = funnel {
            item.funnel = Some(funnel.to_string());
        }
        item.stage = Some(stage.to_string());
        item.version += 1;
        if item.funnel.as_deref() != Some(left.0.as_str()) {
            self.came_from.insert(id, left);
        }
        Ok(())
    }

    pub(crate) fn return_to_funnel(&mut self, type_key: &str, id: i64, stage: Option<&str>) -> Result<(), Error> {
        self.get_mut(type_key, id)?;
        let Some((funnel, left)) = self.came_from.get(&id).cloned() else {
            let message =
                format!("`{type_key}` item {id} cannot return to the funnel it came from: it has never changed funnel");
            return Err(crate::error("conflict", message));
        };
        self.move_to_stage(type_key, id, Some(&funnel), stage.unwrap_or(&left))
    }

    pub(crate) fn link_parent(&mut self, type_key: &str, id: i64, parent: &ItemRef) -> Result<(), Error> {
        let item = self.get_mut(type_key, id)?;
        if !item.parents.iter().any(|p| p.type_key == parent.type_key && p.id == parent.id) {
            item.parents.push(parent.clone());
        }
        Ok(())
    }

    pub(crate) fn timeline_add_entry(&mut self, type_key: &str, id: i64, text: &str) -> Result<(), Error> {
        self.get_mut(type_key, id)?;
        self.timeline.push((type_key.to_string(), id, text.to_string()));
        Ok(())
    }

    pub(crate) fn log_write(&mut self, level: Level, message: &str) {
        self.log.push(format!("{level:?}: {message}"));
    }

    pub(crate) fn clock_now(&mut self) -> i64 {
        self.now
    }

    pub(crate) fn notify_send(&mut self, user: i64, text: &str, _about: Option<&ItemRef>) -> Result<(), Error> {
        self.notifications.push((user, text.to_string()));
        Ok(())
    }

    pub(crate) fn processes_start(&mut self, template: &str, item: &ItemRef, params: &str) -> Result<i64, Error> {
        let params: serde_json::Value = serde_json::from_str(params)
            .map_err(|e| crate::error("invalid", format!("the parameters are not JSON: {e}")))?;
        self.processes.push((template.to_string(), item.clone(), params));
        Ok(-(self.processes.len() as i64))
    }

    pub(crate) fn tasks_create(&mut self, input: &str) -> Result<i64, Error> {
        let value: serde_json::Value =
            serde_json::from_str(input).map_err(|e| crate::error("invalid", format!("the task is not JSON: {e}")))?;
        self.tasks.push(value);
        Ok(-(self.tasks.len() as i64))
    }
}

/// `kv` of the in-memory host.
impl MemoryHost {
    pub(crate) fn kv_get(&mut self, key: &str) -> Result<Option<String>, Error> {
        Ok(self.kv.get(key).cloned())
    }

    pub(crate) fn kv_set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        self.kv.insert(key.to_string(), value.to_string());
        Ok(())
    }

    pub(crate) fn kv_delete(&mut self, key: &str) -> Result<(), Error> {
        self.kv.remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryHost;
    use crate::bp_step::{StepContext, StepOutcome};
    use crate::types::Error;

    /// Matches events on items whose stored title is the config's.
    struct TitleIs;

    impl crate::trigger::Guest for TitleIs {
        fn matches(event: String, config: String) -> Result<bool, Error> {
            let event: serde_json::Value = crate::config(&event)?;
            let config: serde_json::Value = crate::config(&config)?;
            let item = crate::items::get(
                event["item"]["type"].as_str().unwrap_or_default(),
                event["item"]["id"].as_i64().unwrap_or(0),
            )?;
            Ok(item.is_some_and(|i| config["title"] == i.title.as_str()))
        }
    }

    /// Counts its runs in `kv` and returns the count as a variable, branching on the config.
    struct Count;

    impl crate::bp_step::Guest for Count {
        fn execute(ctx: StepContext) -> Result<StepOutcome, Error> {
            let n = crate::kv::get("runs")?.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0) + 1;
            crate::kv::set("runs", &n.to_string())?;
            let branch: serde_json::Value = crate::config(&ctx.config)?;
            Ok(StepOutcome {
                variables: serde_json::json!({"runs": n, "item": ctx.item.id}).to_string(),
                branch: branch["branch"].as_str().map(str::to_string),
            })
        }
    }

    /// Writes a timeline entry, then panics.
    struct Panics;

    impl crate::robot::Guest for Panics {
        fn run(ctx: crate::robot::Context) -> Result<crate::robot::Outcome, Error> {
            crate::timeline::add_entry(&ctx.item.type_key, ctx.item.id, "before the panic")?;
            panic!("on purpose");
        }
    }

    #[test]
    fn the_host_keeps_its_state_when_a_plugin_panics() {
        let mut host = MemoryHost::new();
        let item = host.add_item("deal", "Kitchen", serde_json::json!({}));
        let panicked =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| host.run_robot::<Panics>(&item, "new", "{}")));
        assert!(panicked.is_err());
        assert!(host.item("deal", item.id).is_some(), "the items are still there");
        assert_eq!(host.timeline, vec![("deal".to_string(), item.id, "before the panic".to_string())]);
    }

    #[test]
    fn triggers_and_steps_run_against_the_host() {
        let mut host = MemoryHost::new();
        let item = host.add_item("deal", "Kitchen", serde_json::json!({}));
        let event = serde_json::json!({"kind": "item.updated", "item": {"type": "deal", "id": item.id}}).to_string();
        assert!(host.run_trigger::<TitleIs>(&event, r#"{"title":"Kitchen"}"#).unwrap());
        assert!(!host.run_trigger::<TitleIs>(&event, r#"{"title":"Wardrobe"}"#).unwrap());
        assert!(host.run_trigger::<TitleIs>("not json", "{}").is_err());
        for runs in 1..=2 {
            let outcome = host.run_bp_step::<Count>(&item, r#"{"branch":"yes"}"#, "{}").unwrap();
            assert_eq!(outcome.variables, serde_json::json!({"runs": runs, "item": item.id}).to_string());
            assert_eq!(outcome.branch.as_deref(), Some("yes"));
        }
        assert_eq!(host.kv.get("runs").map(String::as_str), Some("2"));
    }
}
