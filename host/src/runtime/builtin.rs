//! The built-in robots, compiled from `plugins/` by the build script and installed at start.

use crate::runtime::limits::Limits;
use crate::runtime::registry::PluginKind;
use crate::service::plugins::Manifest;

/// Version under which the built-in robots of this build are installed.
pub const BUILTIN_VERSION: &str = "1.0.0";

/// `(name, component)` of every built-in robot.
pub const BUILTINS: [(&str, &[u8]); 4] = [
    ("set-field", include_bytes!(concat!(env!("OUT_DIR"), "/set_field.wasm"))),
    ("move-to-stage", include_bytes!(concat!(env!("OUT_DIR"), "/move_to_stage.wasm"))),
    ("add-comment", include_bytes!(concat!(env!("OUT_DIR"), "/add_comment.wasm"))),
    ("create-linked-item", include_bytes!(concat!(env!("OUT_DIR"), "/create_linked_item.wasm"))),
];

/// The manifest of a built-in robot: it changes items and nothing else.
pub fn manifest(name: &str) -> Manifest {
    Manifest {
        name: name.to_string(),
        version: BUILTIN_VERSION.to_string(),
        kind: PluginKind::Wasm,
        world: "robot".into(),
        capabilities: vec!["items:write".into()],
        limits: Limits::DEFAULT,
    }
}
