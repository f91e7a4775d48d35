//! The built-in robots (`voronka-builtins`) as this host installs them at start: their
//! version and manifests.
//!
//! Part of the [`super::Plugins`] aggregate (`core.plugins()`).

use crate::service::plugins::Manifest;
use voronka_model::limits::Limits;
use voronka_model::plugin::{PluginKind, World};

/// Version under which the built-in robots of this build are installed.
pub const BUILTIN_VERSION: &str = "1.2.0";

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
