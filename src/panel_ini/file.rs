//! The real panel.ini on disk: read, lock, back up, write atomically.
//!
//! Writes only when the content differs from the desired state (no needless mtime change),
//! through a temporary file in the same directory with the old file's mode and owner, fsync,
//! rename, fsync of the directory. A symlink is followed and its target replaced. The
//! exclusive lock `state_dir/locks/panel.ini.lock` serializes the daemon and `sync`.
//! Before the first change the original is kept as `state_dir/backup/panel.ini.orig`, before
//! each change the previous version as `state_dir/backup/panel.ini.prev`.
//! A missing file is created with mode 0644.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::editor::{self, Desired, Managed};
use crate::fsutil::{self, Ownership};

/// Larger than any sane panel.ini; refuse instead of reading a runaway file into memory.
const MAX_SIZE: u64 = 16 * 1024 * 1024;
/// Mode of a panel.ini the agent creates.
const NEW_FILE_MODE: u32 = 0o644;

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
///
/// When panel.ini did not exist before the agent's first change, `panel.ini.orig` is written
/// empty, so a restore from it gives back an (empty) file with the same meaning.
pub fn reconcile(
    path: &Path,
    desired: &Desired,
    state_dir: &Path,
) -> Result<Reconciled, PanelIniError> {
    let target = resolve(path).map_err(|source| PanelIniError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let _lock = lock(state_dir)?;

    let read_err = |source| PanelIniError::Read {
        path: target.clone(),
        source,
    };
    let (old, meta) = match fs::metadata(&target) {
        Ok(meta) => {
            let bytes = fsutil::read_capped(&target, MAX_SIZE).map_err(read_err)?;
            (bytes, Some(meta))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (None, None),
        Err(e) => return Err(read_err(e)),
    };
    let old_bytes = old.as_deref().unwrap_or_default();
    let new = editor::apply(old_bytes, desired);
    // A missing file that would stay empty is not created.
    if new == old_bytes {
        return Ok(Reconciled {
            path: target,
            changed: false,
            actual: editor::read_managed(&new),
        });
    }

    backup(state_dir, old_bytes)?;
    let (mode, owner) = match &meta {
        Some(m) => (
            m.permissions().mode() & 0o7777,
            Ownership {
                uid: Some(m.uid()),
                gid: Some(m.gid()),
            },
        ),
        None => (NEW_FILE_MODE, Ownership::default()),
    };
    fsutil::write_atomic_owned(&target, &new, mode, owner).map_err(|source| {
        PanelIniError::Write {
            path: target.clone(),
            source,
        }
    })?;
    Ok(Reconciled {
        path: target,
        changed: true,
        actual: editor::read_managed(&new),
    })
}

/// Reads the managed keys without changing anything (a missing file has none).
pub fn read(path: &Path) -> Result<Managed, PanelIniError> {
    match fsutil::read_capped(path, MAX_SIZE) {
        Ok(Some(bytes)) => Ok(editor::read_managed(&bytes)),
        Ok(None) => Ok(Managed::default()),
        Err(source) => Err(PanelIniError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The file to read and replace: `path` itself, or the final target of a symlink chain (also
/// when that target does not exist yet, so a dangling link gets its file created).
fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = fs::read_link(&current)?;
                current = if link.is_absolute() {
                    link
                } else {
                    fsutil::parent_dir(&current).join(link)
                };
            }
            Ok(_) => return fs::canonicalize(&current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "too many levels of symbolic links at {}",
        path.display()
    )))
}

/// Creates `dir` with mode 0700 when missing (parents too), leaving an existing one as it is.
fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Takes the exclusive lock that serializes every read-modify-write of panel.ini; released
/// when the returned value is dropped.
fn lock(state_dir: &Path) -> Result<Flock<File>, PanelIniError> {
    let dir = state_dir.join("locks");
    let path = dir.join("panel.ini.lock");
    let err = |source| PanelIniError::Lock {
        path: path.clone(),
        source,
    };
    private_dir(&dir).map_err(err)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(err)?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| err(io::Error::from(errno)))
}

/// Keeps the first original ever seen (`.orig`, never overwritten) and the version about to be
/// replaced (`.prev`), both readable by root only.
fn backup(state_dir: &Path, old: &[u8]) -> Result<(), PanelIniError> {
    let dir = state_dir.join("backup");
    private_dir(&dir).map_err(|source| PanelIniError::Backup {
        path: dir.clone(),
        source,
    })?;
    let orig = dir.join("panel.ini.orig");
    let exists = fs::symlink_metadata(&orig)
        .map(|_| true)
        .or_else(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Ok(false)
            } else {
                Err(e)
            }
        })
        .map_err(|source| PanelIniError::Backup {
            path: orig.clone(),
            source,
        })?;
    if !exists {
        fsutil::write_atomic(&orig, old, 0o600).map_err(|source| PanelIniError::Backup {
            path: orig.clone(),
            source,
        })?;
    }
    let prev = dir.join("panel.ini.prev");
    fsutil::write_atomic(&prev, old, 0o600)
        .map_err(|source| PanelIniError::Backup { path: prev, source })
}
