//! The real panel.ini on disk: read, lock, back up, write atomically.
//!
//! Writes only when the content differs from the desired state (no needless mtime change),
//! through a temporary file in the same directory with the old file's mode and owner, fsync,
//! rename, fsync of the directory. A symlink is followed and its target replaced. The
//! exclusive lock `state_dir/locks/panel.ini.lock` serializes the daemon and `sync`.
//! Before the first change the original is kept as `state_dir/backup/panel.ini.orig`, before
//! each change the previous version as `state_dir/backup/panel.ini.prev`.
//! A missing file is created with mode 0644.

use std::io;
use std::path::{Path, PathBuf};

use super::editor::{Desired, Managed};

/// What went wrong with panel.ini; every variant names the path at fault.
#[derive(Debug, thiserror::Error)]
pub enum PanelIniError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot lock {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error("cannot keep a backup at {path}: {source}")]
    Backup { path: PathBuf, source: io::Error },
}

/// The outcome of one reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// The file actually read and written (the symlink's target when panel.ini is a link).
    pub path: PathBuf,
    /// True when the file was rewritten.
    pub changed: bool,
    /// The managed keys as they are now in the file.
    pub actual: Managed,
}

/// Brings the file at `path` to `desired`. `state_dir` holds the lock and the backups.
pub fn reconcile(path: &Path, desired: &Desired, state_dir: &Path) -> Result<Reconciled, PanelIniError> {
    let _ = (desired, state_dir);
    todo!("panel_ini::file::reconcile {}", path.display())
}

/// Reads the managed keys without changing anything (a missing file has none).
pub fn read(path: &Path) -> Result<Managed, PanelIniError> {
    todo!("panel_ini::file::read {}", path.display())
}
