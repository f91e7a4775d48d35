//! Voronka host: the CRM data model, its storage on SQLite or PostgreSQL, the use cases that
//! change it, and the REST API that exposes them.
//!
//! Layers, outermost first: [`api`] (HTTP, auth, problem documents) → [`service`] (one
//! function per use case, access checks, validation) → [`store`] (transactions over
//! SQLite/PostgreSQL, with stage history and the event outbox) — all over the plain types of
//! [`model`]. [`server`] wires them together; [`demo`] seeds the sample company.

pub mod api;
pub mod automation;
pub mod cli;
pub mod demo;
pub mod server;
pub mod service;
