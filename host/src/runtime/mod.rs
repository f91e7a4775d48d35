//! The plugin runtime: Wasm components and Rhai scripts behind one host API, each call with
//! time, memory and fuel limits and only the capabilities granted to its plugin.

pub mod builtin;
pub mod host_api;
pub mod registry;
pub mod rhai;
pub mod wasm;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::host_api::HOST_FUNCTIONS;

    /// `interface.function` of every function in the WIT's host interfaces (the Wasm binding
    /// implements each of them, or the host does not compile).
    fn wit_functions() -> BTreeSet<String> {
        let wit = include_str!("../../../wit/v0.1.0/plugin.wit");
        let mut found = BTreeSet::new();
        let mut interface: Option<&str> = None;
        for line in wit.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("interface ") {
                interface = rest.split_whitespace().next();
            } else if line.starts_with("world ") {
                interface = None;
            } else if let (Some(i), Some((name, _))) = (interface, line.split_once(": func(")) {
                found.insert(format!("{i}.{name}"));
            }
        }
        found
    }

    /// `interface.function` of every host function registered in the Rhai engine.
    fn rhai_functions() -> BTreeSet<String> {
        super::rhai::RhaiRuntime::new().host_functions().iter().cloned().collect()
    }

    #[test]
    fn wit_and_rhai_offer_the_same_host_functions() {
        let listed: BTreeSet<String> = HOST_FUNCTIONS.iter().map(|s| s.to_string()).collect();
        assert_eq!(wit_functions(), listed, "the WIT and HOST_FUNCTIONS differ");
        assert_eq!(rhai_functions(), listed, "the Rhai engine and HOST_FUNCTIONS differ");
    }
}
