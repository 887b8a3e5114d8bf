//! plesk-reseller-central: the reseller store's side of the plesk-reseller-agent protocol —
//! a fleet registry with one token per Plesk server, a durable job queue on an embedded
//! database, held polls with ETags, idempotent results, signed wake pushes, and an admin API
//! with its CLI (contract: central-contract.md).

pub mod admin;
pub mod api;
pub mod app;
pub mod buy;
pub mod check;
pub mod cli;
pub mod cli_text;
pub mod client;
pub mod commerce;
pub mod config;
pub mod db;
pub mod fleet;
pub mod ka;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod times;
pub mod tls;
pub mod ui;
