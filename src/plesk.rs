//! The Plesk commands the agent runs (contract section 7), through the `plesk` wrapper:
//! `bin license -i <code>`, `bin license --retrieve`, `bin keyinfo --list`, `version`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::runner::{CommandOutput, Runner};

/// Grace between SIGTERM and SIGKILL for a timed-out command.
pub const KILL_GRACE: Duration = Duration::from_secs(10);
/// Timeout for the quick read-only commands (`keyinfo`, `version`).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// What went wrong reading Plesk's state; names the command at fault.
#[derive(Debug, thiserror::Error)]
pub enum PleskError {
    #[error("`{command}` failed: {reason}")]
    Command { command: String, reason: String },
}

/// The Plesk wrapper and how to run it.
#[derive(Clone)]
pub struct Plesk {
    pub command: PathBuf,
    /// Timeout of the license commands.
    pub timeout: Duration,
    pub kill_grace: Duration,
    pub runner: Arc<dyn Runner>,
}

impl Plesk {
    pub fn new(command: PathBuf, timeout: Duration, runner: Arc<dyn Runner>) -> Self {
        Plesk {
            command,
            timeout,
            kill_grace: KILL_GRACE,
            runner,
        }
    }

    /// `<command> bin license -i <code>`; the code must have passed
    /// [`crate::mask::is_activation_code`].
    pub async fn install_key(&self, activation_code: &str) -> CommandOutput {
        todo!("install_key {}", activation_code.len())
    }

    /// `<command> bin license --retrieve`.
    pub async fn retrieve_keys(&self) -> CommandOutput {
        todo!("retrieve_keys")
    }

    /// The main key number from `bin keyinfo --list`, normalised; `Ok(None)` when Plesk has none.
    pub async fn key_number(&self) -> Result<Option<String>, PleskError> {
        todo!("key_number")
    }

    /// The version from `version` (last token of the line starting `Product version`).
    pub async fn version(&self) -> Result<Option<String>, PleskError> {
        todo!("version")
    }
}

/// `plesk_key_id` value from `keyinfo --list` output.
pub fn parse_keyinfo(output: &str) -> Option<&str> {
    todo!("parse_keyinfo {}", output.len())
}

/// `PLSK123456780001` / `plsk.12345678.0001` → `PLSK.12345678.0001`; `0` or all zeros → None.
pub fn normalize_key_number(raw: &str) -> Option<String> {
    todo!("normalize_key_number {raw}")
}

/// The last token of the line starting `Product version`.
pub fn parse_version(output: &str) -> Option<&str> {
    todo!("parse_version {}", output.len())
}
