//! The host API registered in the Rhai engine: each function of [`crate::host::HOST_FUNCTIONS`]
//! as `interface::name`, a thin shim over the call's [`crate::host::HostCalls`].

use rhai::{Dynamic, Engine, ImmutableString, Map, Module};

use voronka_model::item::ItemRef;

use super::{RhaiResult, to_dynamic, to_json, with_host};
use crate::host::LogLevel;

/// Registers every host function of [`crate::host::HOST_FUNCTIONS`] as `interface::name`;
/// returns `interface.function` (WIT naming) of each, for the parity test. The names come from
/// the registrations themselves (`register!`, `install!`), so none is listed that is not
/// registered under it.
pub(super) fn register(engine: &mut Engine) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    // A function of the module (named after its interface) under the name given.
    macro_rules! register {
        ($module:ident, $name:literal, $function:expr $(,)?) => {{
            let name = format!("{}.{}", stringify!($module), $name.replace('_', "-"));
            if !names.contains(&name) {
                names.push(name);
            }
            $module.set_native_fn($name, $function);
        }};
    }
    // The module, as a static module named after its interface.
    macro_rules! install {
        ($module:ident) => {
            engine.register_static_module(stringify!($module), $module.into())
        };
    }
    let mut items = Module::new();
    register!(items, "get", |type_key: ImmutableString, id: i64| {
        let item = with_host(|h, rt| rt.block_on(h.items_get(&type_key, id)))?;
        match item {
            Some(item) => to_dynamic(&item),
            None => Ok(Dynamic::UNIT),
        }
    });
    register!(items, "find", |type_key: ImmutableString, filters: Map, limit: i64| {
        let filters: Vec<(String, String)> = filters.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let limit = u32::try_from(limit.clamp(1, 500)).unwrap_or(50);
        let found = with_host(|h, rt| rt.block_on(h.items_find(&type_key, filters, limit)))?;
        found.iter().map(to_dynamic).collect::<RhaiResult<rhai::Array>>()
    });
    register!(items, "create", |type_key: ImmutableString, input: Dynamic| {
        let input = to_json(input)?;
        with_host(|h, _| h.items_create(&type_key, &input))
    });
    register!(items, "update_fields", |type_key: ImmutableString, id: i64, fields: Dynamic| {
        let fields = to_json(fields)?;
        with_host(|h, _| h.items_update_fields(&type_key, id, &fields))
    });
    register!(items, "move_to_stage", |type_key: ImmutableString, id: i64, stage: ImmutableString| {
        with_host(|h, _| h.items_move_to_stage(&type_key, id, None, &stage))
    });
    register!(items, "move_to_stage", |type_key: ImmutableString,
                                       id: i64,
                                       funnel: ImmutableString,
                                       stage: ImmutableString| {
        with_host(|h, _| h.items_move_to_stage(&type_key, id, Some(funnel.to_string()), &stage))
    });
    register!(items, "return_to_funnel", |type_key: ImmutableString, id: i64| {
        with_host(|h, _| h.items_return_to_funnel(&type_key, id, None))
    });
    register!(items, "return_to_funnel", |type_key: ImmutableString, id: i64, stage: ImmutableString| {
        with_host(|h, _| h.items_return_to_funnel(&type_key, id, Some(stage.to_string())))
    });
    register!(items, "link_parent", |type_key: ImmutableString,
                                     id: i64,
                                     parent_type: ImmutableString,
                                     parent_id: i64| {
        let parent = ItemRef { type_key: parent_type.to_string(), id: parent_id };
        with_host(|h, _| h.items_link_parent(&type_key, id, parent))
    });
    install!(items);

    let mut timeline = Module::new();
    register!(timeline, "add_entry", |type_key: ImmutableString, id: i64, text: ImmutableString| {
        with_host(|h, _| h.timeline_add_entry(&type_key, id, &text))
    });
    install!(timeline);

    let mut kv = Module::new();
    register!(kv, "get", |key: ImmutableString| {
        let value = with_host(|h, rt| rt.block_on(h.kv_get(&key)))?;
        Ok(value.map(Dynamic::from).unwrap_or(Dynamic::UNIT))
    });
    register!(kv, "set", |key: ImmutableString, value: ImmutableString| with_host(|h, _| h.kv_set(&key, &value)));
    register!(kv, "delete", |key: ImmutableString| with_host(|h, _| h.kv_delete(&key)));
    install!(kv);

    let mut log = Module::new();
    register!(log, "write", |level: ImmutableString, message: ImmutableString| {
        let level = match level.as_str() {
            "debug" => LogLevel::Debug,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            _ => LogLevel::Info,
        };
        with_host(|h, _| {
            h.log_write(level, &message);
            Ok(())
        })
    });
    install!(log);

    let mut clock = Module::new();
    register!(clock, "now", || with_host(|h, _| Ok(h.clock_now())));
    install!(clock);

    let mut notify = Module::new();
    register!(notify, "send", |user: i64, text: ImmutableString| with_host(|h, _| h.notify_send(user, &text, None)));
    register!(notify, "send", |user: i64, text: ImmutableString, about_type: ImmutableString, about_id: i64| {
        let about = ItemRef { type_key: about_type.to_string(), id: about_id };
        with_host(|h, _| h.notify_send(user, &text, Some(about)))
    });
    install!(notify);

    let mut tasks = Module::new();
    register!(tasks, "create", |input: Dynamic| {
        let input = to_json(input)?;
        with_host(|h, _| h.tasks_create(&input))
    });
    install!(tasks);

    let mut processes = Module::new();
    register!(processes, "start", |template: ImmutableString,
                                   item_type: ImmutableString,
                                   item_id: i64,
                                   params: Dynamic| {
        let params = to_json(params)?;
        let item = ItemRef { type_key: item_type.to_string(), id: item_id };
        with_host(|h, _| h.processes_start(&template, item, &params))
    });
    install!(processes);
    names
}
