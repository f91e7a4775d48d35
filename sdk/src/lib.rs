//! The Voronka plugin SDK for Rust.
//!
//! A robot is a type implementing [`robot::Guest`], exported with [`export_robot!`], built as
//! a `cdylib` for `wasm32-wasip2` (or `wasm32-unknown-unknown`, see the README):
//!
//! ```no_run
//! use voronka_sdk::ItemExt;
//! use voronka_sdk::robot::{Context, Error, Guest, Outcome};
//!
//! struct Greeter;
//!
//! impl Guest for Greeter {
//!     fn run(ctx: Context) -> Result<Outcome, Error> {
//!         let name = ctx.item.field_str("name").unwrap_or_else(|| "friend".to_string());
//!         voronka_sdk::timeline::add_entry(&ctx.item.type_key, ctx.item.id, &format!("Hello, {name}"))?;
//!         Ok(Outcome { message: None })
//!     }
//! }
//!
//! voronka_sdk::export_robot!(Greeter);
//! ```
//!
//! A trigger implements [`trigger::Guest`] (`matches(event, config)`) and is exported with
//! [`export_trigger!`]; a business-process step implements [`bp_step::Guest`] and is exported
//! with [`export_bp_step!`].
//!
//! Host interfaces are at the top: [`items`], [`timeline`], [`kv`], [`log`], [`clock`],
//! [`notify`]. In a Wasm build they call the host; in a native build (`cargo test`) they call
//! the in-memory host of [`testing`], so a plugin can be tested with no server. JSON (item
//! fields, configs, inputs) travels as strings; [`ItemExt`] and [`config`] parse it.

/// Bindings of the `robot` world, and the host interfaces every world shares.
pub mod robot {
    wit_bindgen::generate!({
        path: "../wit/v0.1.0",
        world: "robot",
        pub_export_macro: true,
        export_macro_name: "export_robot",
        default_bindings_module: "voronka_sdk::robot",
        generate_all,
    });
}

/// Bindings of the `trigger` world.
pub mod trigger {
    wit_bindgen::generate!({
        path: "../wit/v0.1.0",
        world: "trigger",
        pub_export_macro: true,
        export_macro_name: "export_trigger",
        default_bindings_module: "voronka_sdk::trigger",
        with: {
            "voronka:plugin/types@0.1.0": crate::robot::voronka::plugin::types,
            "voronka:plugin/items@0.1.0": crate::robot::voronka::plugin::items,
            "voronka:plugin/kv@0.1.0": crate::robot::voronka::plugin::kv,
            "voronka:plugin/log@0.1.0": crate::robot::voronka::plugin::log,
            "voronka:plugin/clock@0.1.0": crate::robot::voronka::plugin::clock,
        },
    });
}

/// Bindings of the `bp-step` world (business-process steps).
pub mod bp_step {
    wit_bindgen::generate!({
        path: "../wit/v0.1.0",
        world: "bp-step",
        pub_export_macro: true,
        export_macro_name: "export_bp_step",
        default_bindings_module: "voronka_sdk::bp_step",
        with: {
            "voronka:plugin/types@0.1.0": crate::robot::voronka::plugin::types,
            "voronka:plugin/items@0.1.0": crate::robot::voronka::plugin::items,
            "voronka:plugin/timeline@0.1.0": crate::robot::voronka::plugin::timeline,
            "voronka:plugin/tasks@0.1.0": crate::robot::voronka::plugin::tasks,
            "voronka:plugin/processes@0.1.0": crate::robot::voronka::plugin::processes,
            "voronka:plugin/kv@0.1.0": crate::robot::voronka::plugin::kv,
            "voronka:plugin/log@0.1.0": crate::robot::voronka::plugin::log,
            "voronka:plugin/clock@0.1.0": crate::robot::voronka::plugin::clock,
            "voronka:plugin/notify@0.1.0": crate::robot::voronka::plugin::notify,
        },
    });
}

pub mod host;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use bp_step::export_bp_step;
pub use host::{clock, items, kv, log, notify, processes, tasks, timeline};
pub use robot::export_robot;
pub use robot::voronka::plugin::types;
pub use trigger::export_trigger;
pub use types::{Error, Item, ItemRef};

/// Reads JSON text (a config, a field value) into a type.
pub fn config<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, Error> {
    serde_json::from_str(json).map_err(|e| error("invalid-config", format!("the config is not valid: {e}")))
}

/// Builds an error with a machine code and a message.
pub fn error(code: &str, message: impl Into<String>) -> Error {
    Error { code: code.to_string(), message: message.into() }
}

/// Convenience on items.
pub trait ItemExt {
    /// The custom fields as a JSON object.
    fn fields(&self) -> serde_json::Map<String, serde_json::Value>;
    /// A string field.
    fn field_str(&self, key: &str) -> Option<String>;
}

impl ItemExt for Item {
    fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&self.fields).unwrap_or_default()
    }

    fn field_str(&self, key: &str) -> Option<String> {
        self.fields().get(key).and_then(|v| v.as_str()).map(str::to_string)
    }
}

/// Fills `{{item.title}}`, `{{item.id}}`, `{{item.stage}}`, `{{item.funnel}}`, `{{item.type}}`
/// and `{{item.fields.KEY}}` in a template from the item, with the host's own renderer
/// (`voronka-placeholders`): strings as they are, other values as JSON, missing ones as nothing.
pub fn render(template: &str, item: &Item) -> String {
    let fields = item.fields();
    let view = voronka_placeholders::ItemView {
        title: &item.title,
        id: item.id,
        stage: item.stage.as_deref(),
        funnel: item.funnel.as_deref(),
        type_key: &item.type_key,
        fields: &fields,
        variables: None,
    };
    voronka_placeholders::render(template, &view)
}

/// On `wasm32-unknown-unknown`, the allocator: the same dlmalloc as the standard library's,
/// but one that takes the free end of the module's initial memory before it grows the memory,
/// so a plugin built with room there (`-C link-arg=--initial-memory=...`) never grows it, and
/// the host reuses its memory for the next fresh instance as it was.
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
