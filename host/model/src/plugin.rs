//! What a plugin is: its kind (a Wasm component or a Rhai script) and the world it implements.

use serde::{Deserialize, Serialize};

/// How a plugin is written: the manifest's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// A WebAssembly component.
    Wasm,
    /// A Rhai script.
    Rhai,
}

impl PluginKind {
    /// The name in manifests and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Wasm => "wasm",
            PluginKind::Rhai => "rhai",
        }
    }

    /// The kind of a stored name (`wasm` for anything but `rhai`, as stored rows only hold
    /// the two).
    pub fn from_stored(name: &str) -> PluginKind {
        if name == "rhai" { PluginKind::Rhai } else { PluginKind::Wasm }
    }
}

/// The world a plugin implements, which says what the host calls it for: the manifest's `world`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// Runs when an item enters the stage it is bound to (`run`).
    Robot,
    /// Decides whether an event moves an item (`matches`).
    Trigger,
    /// A step of a business process (`execute`).
    BpStep,
    /// Turns a form's answers into a list of payments (`generate`).
    PaymentSchedule,
}

impl World {
    /// Every world, in the WIT's order.
    pub const ALL: [World; 4] = [World::Robot, World::Trigger, World::BpStep, World::PaymentSchedule];

    /// The world's name in the WIT and in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            World::Robot => "robot",
            World::Trigger => "trigger",
            World::BpStep => "bp-step",
            World::PaymentSchedule => "payment-schedule",
        }
    }

    /// The world of a name, if it is one.
    pub fn parse(name: &str) -> Option<World> {
        World::ALL.into_iter().find(|world| world.as_str() == name)
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worlds_are_named_as_in_the_wit() {
        for world in World::ALL {
            assert_eq!(World::parse(world.as_str()), Some(world));
            assert_eq!(serde_json::to_value(world).ok(), Some(serde_json::json!(world.as_str())));
        }
        assert_eq!(World::parse("robots"), None);
        assert_eq!(PluginKind::from_stored("rhai"), PluginKind::Rhai);
    }
}
