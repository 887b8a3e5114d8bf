//! plesk-reseller-central: the reseller store's side of the plesk-reseller-agent protocol —
//! a fleet registry with one token per Plesk server, a durable job queue on an embedded
//! database, held polls with ETags, idempotent results, signed wake pushes, orders that become
//! KA keys, and an admin API with its CLI (contract: central-contract.md).
//!
//! The crate is in layers, top to bottom; a module imports only from its own layer or one
//! below it (`tests/layers.rs` checks every `crate::` path):
//!
//! - [`cli`]: the command line, its admin-socket client, its texts and `check`.
//! - [`http`]: the HTTP faces — the agents' API, the admin API, Buy Now, the fleet page, the
//!   listeners and TLS — and [`http::app::App`], the state every handler shares.
//! - the domain: [`fleet`] (hosts, tokens, jobs, held polls, pushes, health, replicas) and
//!   [`commerce`] (orders; next licenses, enroll keys, events).
//! - the outside world: [`db`] (SQLite or PostgreSQL), [`events`] (the event feed's outbox,
//!   written by the fleet and commerce alike) and [`ka`] (the KA Partner API client).
//! - the base: [`config`], [`times`], [`metrics`], [`logging`].
//!
//! `main.rs` sits above them all and only calls [`cli::main`].

pub mod cli;
pub mod http;

pub mod commerce;
pub mod fleet;

pub mod db;
pub mod events;
pub mod ka;

pub mod config;
pub mod logging;
pub mod metrics;
pub mod times;
