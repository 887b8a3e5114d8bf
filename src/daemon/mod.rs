//! The long-running daemon.

pub mod control;
pub mod push;
pub mod schedule;
pub mod service;
pub mod systemd;
pub mod watch;
