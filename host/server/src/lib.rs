//! The Voronka server, the `voronka` binary's library: the REST API ([`api`]: HTTP, auth,
//! problem documents, OpenAPI), the command line's plugin upload ([`cli`]), the demo company
//! ([`demo`]), and starting and stopping the server ([`server`]).
//!
//! The top of the house: it wires `voronka-core` (the use cases and automation) to HTTP and
//! the command line, and holds no rule of its own. Nothing imports it.

pub mod api;
pub mod cli;
pub mod demo;
pub mod server;
