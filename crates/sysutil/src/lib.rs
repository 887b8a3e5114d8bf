//! What the agent and the catalog proxy both take from the system, in one crate both can
//! depend on (the proxy must not depend on the agent): the file watcher, sd-notify, careful
//! file I/O (atomic writes, capped reads, locks) and the INI value rules their configs share.
//! No product logic lives here.

// A PathBuf is larger on Windows, which pushes the INI error past clippy's size limit there.
#![cfg_attr(windows, allow(clippy::result_large_err))]

pub mod fsutil;
pub mod ini;
pub mod systemd;
pub mod watch;
#[cfg(windows)]
pub mod windows;
