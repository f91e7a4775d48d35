//! Voronka's use cases and its automation. The use cases ([`service`]) are one function per
//! thing a caller can do, grouped by aggregate over one shared context ([`service::Core`]):
//! each checks access, validates, and makes its change in one transaction together with
//! history, timeline and outbox events, whether a person, a robot, a trigger or a process
//! asked. The automation ([`automation`]) runs in the background over
//! the same use cases: job workers running robots, the trigger dispatcher, schedules, task
//! deadlines, webhooks and the business-process engine.
//!
//! It builds on `voronka-model`, `voronka-store` and `voronka-runtime` (whose `Domain` it
//! implements), and must not import HTTP or the command line: the `voronka` server crate
//! exposes it.

pub mod automation;
pub mod service;
