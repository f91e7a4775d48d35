//! The generated bindings of the plugin contract (`wit/`) and the host side of its interfaces.
//!
//! One `bindgen!` of a host world that includes every plugin world: it generates the host
//! traits of every interface once (implemented here for [`PluginState`], each a thin shim over
//! [`crate::host::HostCalls`]) and the types of every world's export, which the world calls of
//! [`crate::world`] use.

use voronka_model::item::{Item as DomainItem, ItemRef};

use super::PluginState;
use crate::host::{HostError, LogLevel};

wasmtime::component::bindgen!({
    path: "../../wit/v0.1.0",
    inline: "
        package voronka:host;

        /// What the host links: every interface of every plugin world.
        world plugin-host {
            include voronka:plugin/robot@0.1.0;
            include voronka:plugin/trigger@0.1.0 with { error as trigger-error }
            include voronka:plugin/bp-step@0.1.0 with { error as step-error, item as step-item }
            include voronka:plugin/payment-schedule@0.1.0 with { error as schedule-error }
        }
    ",
    world: "voronka:host/plugin-host",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub(crate) use voronka::plugin::types;
use voronka::plugin::{clock, items, kv, log, notify, processes, tasks, timeline};

pub(crate) fn to_wit_item(item: &DomainItem) -> types::Item {
    types::Item {
        id: item.id,
        type_key: item.type_key.clone(),
        funnel: item.funnel.clone(),
        stage: item.stage.clone(),
        title: item.title.clone(),
        amount: item.amount.as_ref().map(|m| types::Money { value: m.value.clone(), currency: m.currency.clone() }),
        responsible: item.responsible,
        parents: item.parents.iter().map(|p| types::ItemRef { type_key: p.type_key.clone(), id: p.id }).collect(),
        fields: serde_json::Value::Object(item.fields.clone()).to_string(),
        version: item.version,
    }
}

fn to_wit_error(e: HostError) -> types::Error {
    types::Error { code: e.code, message: e.message }
}

type Wit<T> = wasmtime::Result<Result<T, types::Error>>;

impl types::Host for PluginState {}

impl items::Host for PluginState {
    async fn get(&mut self, type_key: String, id: i64) -> Wit<Option<types::Item>> {
        Ok(self.host.items_get(&type_key, id).await.map(|i| i.as_ref().map(to_wit_item)).map_err(to_wit_error))
    }

    async fn find(&mut self, type_key: String, filters: Vec<items::Filter>, limit: u32) -> Wit<Vec<types::Item>> {
        let filters = filters.into_iter().map(|f| (f.name, f.value)).collect();
        Ok(self
            .host
            .items_find(&type_key, filters, limit)
            .await
            .map(|l| l.iter().map(to_wit_item).collect())
            .map_err(to_wit_error))
    }

    async fn create(&mut self, type_key: String, input: String) -> Wit<i64> {
        Ok(self.host.items_create(&type_key, &input).map_err(to_wit_error))
    }

    async fn update_fields(&mut self, type_key: String, id: i64, fields: String) -> Wit<()> {
        Ok(self.host.items_update_fields(&type_key, id, &fields).map_err(to_wit_error))
    }

    async fn move_to_stage(&mut self, type_key: String, id: i64, funnel: Option<String>, stage: String) -> Wit<()> {
        Ok(self.host.items_move_to_stage(&type_key, id, funnel, &stage).map_err(to_wit_error))
    }

    async fn return_to_funnel(&mut self, type_key: String, id: i64, stage: Option<String>) -> Wit<()> {
        Ok(self.host.items_return_to_funnel(&type_key, id, stage).map_err(to_wit_error))
    }

    async fn link_parent(&mut self, type_key: String, id: i64, parent: types::ItemRef) -> Wit<()> {
        let parent = ItemRef { type_key: parent.type_key, id: parent.id };
        Ok(self.host.items_link_parent(&type_key, id, parent).map_err(to_wit_error))
    }
}

impl timeline::Host for PluginState {
    async fn add_entry(&mut self, type_key: String, id: i64, text: String) -> Wit<()> {
        Ok(self.host.timeline_add_entry(&type_key, id, &text).map_err(to_wit_error))
    }
}

impl tasks::Host for PluginState {
    async fn create(&mut self, input: String) -> Wit<i64> {
        Ok(self.host.tasks_create(&input).map_err(to_wit_error))
    }
}

impl processes::Host for PluginState {
    async fn start(&mut self, template: String, item: types::ItemRef, params: String) -> Wit<i64> {
        let item = ItemRef { type_key: item.type_key, id: item.id };
        Ok(self.host.processes_start(&template, item, &params).map_err(to_wit_error))
    }
}

impl kv::Host for PluginState {
    async fn get(&mut self, key: String) -> Wit<Option<String>> {
        Ok(self.host.kv_get(&key).await.map_err(to_wit_error))
    }

    async fn set(&mut self, key: String, value: String) -> Wit<()> {
        Ok(self.host.kv_set(&key, &value).map_err(to_wit_error))
    }

    async fn delete(&mut self, key: String) -> Wit<()> {
        Ok(self.host.kv_delete(&key).map_err(to_wit_error))
    }
}

impl log::Host for PluginState {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        self.host.log_write(level, &message);
        Ok(())
    }
}

impl clock::Host for PluginState {
    async fn now(&mut self) -> wasmtime::Result<i64> {
        Ok(self.host.clock_now())
    }
}

impl notify::Host for PluginState {
    async fn send(&mut self, user: i64, text: String, about: Option<types::ItemRef>) -> Wit<()> {
        let about = about.map(|a| ItemRef { type_key: a.type_key, id: a.id });
        Ok(self.host.notify_send(user, &text, about).map_err(to_wit_error))
    }
}
