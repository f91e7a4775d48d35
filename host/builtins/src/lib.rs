//! The plugin components Voronka ships, built by `build.rs` from the top-level `plugins/` (and
//! `examples/rust-robot`) for WebAssembly and embedded here as bytes: the built-in robots the
//! host installs at start, and the plugins its tests and benchmarks run.
//!
//! Data only: this crate imports nothing of Voronka's, and nothing imports it but the crates
//! that install or test plugins.

/// `(name, component)` of every built-in robot.
pub const ROBOTS: [(&str, &[u8]); 6] = [
    ("set-field", include_bytes!(concat!(env!("OUT_DIR"), "/set_field.wasm"))),
    ("move-to-stage", include_bytes!(concat!(env!("OUT_DIR"), "/move_to_stage.wasm"))),
    ("add-comment", include_bytes!(concat!(env!("OUT_DIR"), "/add_comment.wasm"))),
    ("create-linked-item", include_bytes!(concat!(env!("OUT_DIR"), "/create_linked_item.wasm"))),
    ("create-task", include_bytes!(concat!(env!("OUT_DIR"), "/create_task.wasm"))),
    ("start-process", include_bytes!(concat!(env!("OUT_DIR"), "/start_process.wasm"))),
];

/// The `add-comment` robot's component (adds a timeline entry rendered from `config.text`);
/// tests upload it again under other names.
pub const ADD_COMMENT: &[u8] = ROBOTS[2].1;

/// Plugins for tests and benchmarks.
pub mod test {
    /// A robot that misbehaves on request (`config.mode`: loop, memory, stack, panic, output,
    /// denied, ok), built with WASI: the sandbox's tests.
    pub const HOSTILE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hostile.wasm"));
    /// A robot that does nothing: the cost of a call.
    pub const NOOP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/noop.wasm"));
    /// A trigger matching `item.updated` events whose item's title holds the configured word.
    pub const KEYWORD_TRIGGER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/keyword_trigger.wasm"));
    /// A business-process step multiplying the variable `n` by the config's `factor`.
    pub const BP_STEP_DOUBLER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bp_step_doubler.wasm"));
    /// The Rust example robot of `examples/rust-robot`, built as integrators build it.
    pub const SET_DEADLINE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/set_deadline.wasm"));
}

#[cfg(test)]
mod tests {
    use super::ROBOTS;

    /// The built-in robots are built without WASI (`build.rs`): a fresh instance resolves
    /// only the Voronka interfaces.
    #[test]
    fn built_in_robots_import_only_the_voronka_interfaces() {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        let engine = wasmtime::Engine::new(&config).unwrap();
        for (name, bytes) in ROBOTS {
            let component = wasmtime::component::Component::new(&engine, bytes).unwrap();
            let imports: Vec<String> =
                component.component_type().imports(&engine).map(|(import, _)| import.to_string()).collect();
            assert!(imports.iter().any(|import| import.starts_with("voronka:plugin/")), "{name}: {imports:?}");
            assert!(imports.iter().all(|import| import.starts_with("voronka:plugin/")), "{name}: {imports:?}");
        }
    }
}
