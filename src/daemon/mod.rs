//! The long-running daemon.
//!
//! - [`service`]: `run`, the loop that wires everything to one engine; its tasks in
//!   `poller` (when to pass), `files` (file events), `shared` (what `status` reads),
//!   `reload` (SIGHUP), [`shutdown`] (signals);
//! - [`schedule`]: when to poll next (rate ceiling, interval, backoff);
//! - [`push`]: the signed wake-up listener;
//! - [`control`]: the local socket `status`, `poll-now` and `sync` talk to.
//!
//! The file watcher and the systemd notifier serve the catalog proxy too: `crate::watch`,
//! `crate::systemd`.

pub mod control;
mod files;
mod poller;
pub mod push;
mod reload;
pub mod schedule;
pub mod service;
mod shared;
pub mod shutdown;
