//! The long-running daemon.
//!
//! - [`service`]: `run`, the loop that wires everything to one engine;
//! - [`schedule`]: when to poll next (rate ceiling, interval, backoff);
//! - [`push`]: the signed wake-up listener;
//! - [`watch`]: file events for panel.ini and the spool;
//! - [`control`]: the local socket `status`, `poll-now` and `sync` talk to;
//! - [`systemd`]: READY, STATUS, STOPPING, watchdog.

pub mod control;
pub mod push;
pub mod schedule;
pub mod service;
pub mod systemd;
pub mod watch;
