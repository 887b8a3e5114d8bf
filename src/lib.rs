//! plesk-reseller-agent: keeps Plesk's panel.ini at a reseller's values and runs the
//! reseller store's license work through `plesk bin license` at once.
//!
//! The binary (`src/main.rs`) only calls [`cli::run`]; everything else lives here so
//! tests and benchmarks drive the same code the daemon runs.

// A PathBuf is larger on Windows, which pushes the config error past clippy's size limit there.
#![cfg_attr(windows, allow(clippy::result_large_err))]

pub mod backoff;
pub mod central;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod journal;
pub mod logging;
pub mod panel_ini;
pub mod platform;
pub mod plesk;
pub mod runner;
pub mod status;

// Shared with the catalog proxy through plesk-sysutil; re-exported so `crate::watch` etc.
// read as before.
pub use plesk_sysutil::{fsutil, systemd, watch};

/// The agent's version, as sent in `User-Agent` and reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A boxed future, so traits with async methods stay object-safe (the engine holds
/// `Arc<dyn Transport>` and `Arc<dyn Runner>`, which tests replace).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
