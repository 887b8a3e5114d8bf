//! What differs between Linux and Windows, behind one small layer (issue 24): default paths,
//! the license utility's names and the host name here; on Windows also secret file checks by
//! ACL (the unix mode-bit checks stay where they were), the named pipe, the Job object, the
//! service manager, the Event Log and the log file (`windows/`). The control channel, process trees, the service manager and logging have
//! their platform parts next to their shared code (`daemon/control.rs`, `runner.rs`,
//! `daemon/shutdown.rs`, `logging.rs`), using what is here and in `windows/`.
//! Everything else — the INI editor, the engine, the protocol, the journal — is shared code.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

#[cfg(windows)]
pub mod windows;
#[cfg(windows)]
pub use self::windows::defaults::*;
#[cfg(windows)]
pub use self::windows::{default_panel_ini, hostname, is_executable, is_writable, secret_file_problem};
