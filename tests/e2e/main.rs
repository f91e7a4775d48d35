//! End-to-end tests: each starts the real `voronka` binary and speaks HTTP to it, on SQLite and
//! on PostgreSQL (see `harness::both!`).

mod harness;

mod access;
mod catalog;
mod chains;
mod defects;
mod hosts;
mod idempotency;
mod items;
mod linked_items;
mod listing;
mod manual_moves;
mod people;
mod process_moves;
mod processes;
mod readme;
mod robots;
mod server;
mod tasks;
mod timers;
mod triggers;
mod validation;
mod webhooks;
