//! Running a child process the way the license commands need: argv only (never a shell),
//! its own process group, a small environment, stdout and stderr in one pipe (the tail of
//! 16 KiB kept), and a timeout after which the group gets SIGTERM and, 10 s later, SIGKILL.
//! Whatever the child leaves behind in its group is killed once it exits.
//!
//! The [`Runner`] trait is the seam tests use to replace process execution.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::BoxFuture;

/// Bytes of output kept (the tail).
pub const OUTPUT_TAIL: usize = 16 * 1024;

/// A command to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// After this the process group gets SIGTERM, then SIGKILL after `kill_grace`.
    pub timeout: Duration,
    pub kill_grace: Duration,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit code; `None` when killed by a signal, timed out or never started.
    pub exit_code: Option<i32>,
    /// stdout and stderr interleaved as written, lossy UTF-8, the last [`OUTPUT_TAIL`] bytes.
    pub output: String,
    pub timed_out: bool,
    /// Set when the program could not be started (the sentence says why).
    pub spawn_error: Option<String>,
    pub started_at: SystemTime,
    pub finished_at: SystemTime,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && self.spawn_error.is_none()
    }
}

/// Runs commands. The real one is [`ProcessRunner`].
pub trait Runner: Send + Sync {
    fn run(&self, spec: CommandSpec) -> BoxFuture<'_, CommandOutput>;
}

/// Runs real processes.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessRunner;

impl Runner for ProcessRunner {
    fn run(&self, spec: CommandSpec) -> BoxFuture<'_, CommandOutput> {
        Box::pin(async move { todo!("ProcessRunner::run {:?}", spec.program) })
    }
}
