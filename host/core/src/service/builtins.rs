//! The built-in robots (`voronka-builtins`) as this host installs them at start: their
//! version and manifests.
//!
//! Part of the [`super::Plugins`] aggregate (`core.plugins()`).

use crate::service::plugins::Manifest;
use voronka_model::limits::Limits;
use voronka_model::plugin::{PluginKind, World};

/// Version under which the built-in robots of this build are installed.
pub const BUILTIN_VERSION: &str = "1.2.0";

/// The config keys a built-in robot reads (from `plugins/<name>/src/lib.rs`); a binding giving
/// another is refused. `None` for a name that is no built-in robot.
pub fn config_keys(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "set-field" => &["fields"],
        "move-to-stage" => &["stage", "funnel", "return"],
        "add-comment" => &["text"],
        "create-linked-item" => &["type", "title", "funnel", "stage", "copy", "fields", "responsible"],
        // The body of `POST /tasks`.
        "create-task" => &[
            "title",
            "description",
            "responsible",
            "deadline",
            "deadline_in_s",
            "links",
            "auditors",
            "checklist",
            "require_result",
            "tags",
        ],
        "start-process" => &["template", "params"],
        _ => return None,
    })
}

/// The config keys of a built-in robot whose texts take placeholders (`{{item.title}}`, ...).
pub fn text_keys(name: &str) -> &'static [&'static str] {
    match name {
        "add-comment" => &["text"],
        "create-task" => &["title", "description"],
        "create-linked-item" => &["title"],
        _ => &[],
    }
}

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
