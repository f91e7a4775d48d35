//! The plugin runtime: Wasm components (wasmtime) and Rhai scripts behind one host API, each
//! call with time, memory and fuel limits and only the capabilities granted to its plugin.
//!
//! It owns the engines, compiling and caching plugins ([`Runtime::load`]), and one generic
//! call per world ([`Runtime::call`] with [`world::Robot`], [`world::Trigger`],
//! [`world::BpStep`] or [`world::PaymentSchedule`]). A plugin reaches the domain only through
//! the [`host::Domain`] trait, which the core implements; its writes come back buffered
//! ([`host::Write`]) for the core to apply in a transaction. This crate builds on
//! `voronka-model` only: it must not import the store, the core or HTTP.

pub mod host;
mod registry;
mod rhai;
mod wasm;
pub mod world;

pub use registry::{Loaded, Runtime};
pub use wasm::EPOCH_TICK;

/// A [`host::Domain`] with no items and no stored values, for tests of the runtime alone.
#[cfg(test)]
pub(crate) struct EmptyDomain;

#[cfg(test)]
impl host::Domain for EmptyDomain {
    fn get_item<'a>(&'a self, _: &'a str, _: i64) -> host::DomainFuture<'a, Option<voronka_model::item::Item>> {
        Box::pin(async { Ok(None) })
    }

    fn find_items<'a>(
        &'a self,
        _: &'a str,
        _: Vec<(String, String)>,
    ) -> host::DomainFuture<'a, Vec<voronka_model::item::Item>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn kv_get<'a>(&'a self, _: &'a str, _: &'a str) -> host::DomainFuture<'a, Option<String>> {
        Box::pin(async { Ok(None) })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::host::HOST_FUNCTIONS;

    /// `interface.function` of every function in the WIT's host interfaces, as wit-parser
    /// reads the contract (the Wasm binding implements each of them, or the host does not
    /// compile).
    fn wit_functions() -> BTreeSet<String> {
        let mut resolve = wit_parser::Resolve::default();
        let wit = concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit/v0.1.0");
        let (package, _) = resolve.push_path(wit).expect("the WIT parses");
        resolve.packages[package]
            .interfaces
            .iter()
            .flat_map(|(interface, id)| {
                resolve.interfaces[*id].functions.keys().map(move |function| format!("{interface}.{function}"))
            })
            .collect()
    }

    #[test]
    fn wit_and_rhai_offer_the_same_host_functions() {
        let listed: BTreeSet<String> = HOST_FUNCTIONS.iter().map(|s| s.to_string()).collect();
        assert_eq!(wit_functions(), listed, "the WIT and HOST_FUNCTIONS differ");
        let runtime = super::Runtime::new(None).expect("runtime");
        let rhai: BTreeSet<String> = runtime.rhai_host_functions().iter().cloned().collect();
        assert_eq!(rhai, listed, "the Rhai engine and HOST_FUNCTIONS differ");
    }
}
