//! The built-in robots, compiled from `plugins/` by the build script and installed at start.

use crate::service::plugins::Manifest;
use voronka_model::limits::Limits;
use voronka_model::plugin::{PluginKind, World};

/// Version under which the built-in robots of this build are installed.
pub const BUILTIN_VERSION: &str = "1.1.0";

/// `(name, component)` of every built-in robot.
pub const BUILTINS: [(&str, &[u8]); 6] = [
    ("set-field", include_bytes!(concat!(env!("OUT_DIR"), "/set_field.wasm"))),
    ("move-to-stage", include_bytes!(concat!(env!("OUT_DIR"), "/move_to_stage.wasm"))),
    ("add-comment", include_bytes!(concat!(env!("OUT_DIR"), "/add_comment.wasm"))),
    ("create-linked-item", include_bytes!(concat!(env!("OUT_DIR"), "/create_linked_item.wasm"))),
    ("create-task", include_bytes!(concat!(env!("OUT_DIR"), "/create_task.wasm"))),
    ("start-process", include_bytes!(concat!(env!("OUT_DIR"), "/start_process.wasm"))),
];

/// The manifest of a built-in robot: it changes items; `create-task` creates tasks and
/// `start-process` starts processes.
pub fn manifest(name: &str) -> Manifest {
    let mut capabilities = vec!["items:write".to_string()];
    match name {
        "create-task" => capabilities.push("tasks:write".into()),
        "start-process" => capabilities.push("processes:start".into()),
        _ => {}
    }
    Manifest {
        name: name.to_string(),
        version: BUILTIN_VERSION.to_string(),
        kind: PluginKind::Wasm,
        world: World::Robot,
        capabilities,
        limits: Limits::DEFAULT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in robots are built without WASI (host/build.rs): a fresh instance resolves
    /// only the Voronka interfaces.
    #[test]
    fn built_in_robots_import_only_the_voronka_interfaces() {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        let engine = wasmtime::Engine::new(&config).unwrap();
        for (name, bytes) in BUILTINS {
            let component = wasmtime::component::Component::new(&engine, bytes).unwrap();
            let imports: Vec<String> =
                component.component_type().imports(&engine).map(|(import, _)| import.to_string()).collect();
            assert!(imports.iter().any(|import| import.starts_with("voronka:plugin/")), "{name}: {imports:?}");
            assert!(imports.iter().all(|import| import.starts_with("voronka:plugin/")), "{name}: {imports:?}");
        }
    }
}
