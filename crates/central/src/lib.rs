//! plesk-reseller-central: the reseller store's side of the plesk-reseller-agent protocol —
//! a fleet registry with one token per Plesk server, a durable job queue on an embedded
//! database, held polls with ETags, idempotent results, signed wake pushes, and an admin API
//! with its CLI (contract: central-contract.md).

pub mod check;
pub mod cli;
pub mod cli_text;
pub mod client;
pub mod commerce;
pub mod config;
pub mod db;
pub mod fleet;
pub mod http;
pub mod ka;
pub mod logging;
pub mod metrics;
pub mod times;
