//! The long-running daemon.

pub mod control;
pub mod push;
pub mod watch;
