//! The real panel.ini on disk: read, lock, back up, write atomically.
//!
//! Writes only when the content differs from the desired state (no needless mtime change),
//! through a temporary file in the same directory with the old file's mode and owner, fsync,
//! a swap that only goes through while the file is still the one read (others write it
//! without our lock), fsync of the directory. Temp files a crash left are removed under the
//! lock. A symlink is followed and its target replaced, but only through root-owned
//! directories no one else can write, and never when dangling; anything that is not a
//! regular file (a FIFO, device, socket, directory) is refused before it is opened, and
//! opened only without blocking or following a link (the agent runs as root). The
//! exclusive lock `state_dir/locks/panel.ini.lock` serializes the daemon and `sync`.
//! Before the first change the original is kept as `state_dir/backup/panel.ini.orig`, before
//! each change the previous version as `state_dir/backup/panel.ini.prev`.
//! A missing file is created with mode 0644.

use std::fs;
#[cfg(unix)]
use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[cfg(unix)]
use nix::fcntl::{Flock, FlockArg};

use super::editor::{self, Desired, Managed};
use crate::fsutil::{self, Ownership, Replaced, Seen};

/// Larger than any sane panel.ini; refuse instead of reading a runaway file into memory.
const MAX_SIZE: u64 = 16 * 1024 * 1024;
/// Times the file may change under one reconcile before the agent gives up for this pass.
pub const MAX_TRIES: u32 = 5;
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
    #[error(
        "{path} changed under the agent {tries} times in a row; left as the other writer made it until its next change"
    )]
    Contended { path: PathBuf, tries: u32 },
    /// A FIFO, device, socket or directory: never opened in a way that can block, never written.
    #[error("refusing {path}: it is {kind}, not a regular file; remove it and put Plesk's panel.ini file there")]
    NotRegular { path: PathBuf, kind: &'static str },
    /// A symlink whose link or target directory others could change: root must not write through it.
    #[error("refusing {link}: it is a symlink and {why}, so another user could redirect the agent's root writes; make that directory root-owned and not group/other-writable, or replace the link with the file")]
    UnsafeLink { link: PathBuf, why: String },
    #[error("refusing {link}: it is a symlink to {target}, which does not exist, and the agent never creates a file through a link; create the target or replace the link with the file")]
    Dangling { link: PathBuf, target: PathBuf },
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
///
/// Plesk, its Panel.ini Editor and admins write the file too, without our lock: the new
/// bytes replace the file only while it still is the one they were computed from (see
/// [`fsutil::replace_if_unchanged`]); otherwise they are computed again from the new file,
/// up to [`MAX_TRIES`] times, then [`PanelIniError::Contended`] (the other writer's next
/// change triggers the next try).
pub fn reconcile(path: &Path, desired: &Desired, state_dir: &Path) -> Result<Reconciled, PanelIniError> {
    let target = resolve(path)?;
    let _lock = lock(state_dir)?;
    // Under the lock no write of ours is under way: any temp file is a crash's debris.
    remove_debris(&target, state_dir);

    for _ in 0..MAX_TRIES {
        let (old, meta) = read_with_meta(&target)?;
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
        #[cfg(unix)]
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
        // Windows: the new file inherits the directory's ACL; mode and owner are unix ideas.
        #[cfg(windows)]
        let (mode, owner) = (NEW_FILE_MODE, Ownership::default());
        let seen = Seen::of(meta.as_ref(), old_bytes);
        match fsutil::replace_if_unchanged(&target, &new, mode, owner, &seen, MAX_SIZE) {
            Ok(Replaced::Done) => {
                return Ok(Reconciled {
                    path: target,
                    changed: true,
                    actual: editor::read_managed(&new),
                })
            }
            Ok(Replaced::Changed) => {
                tracing::debug!(path = %target.display(), "panel.ini changed while the agent wrote it; reading it again");
            }
            Err(source) => {
                return Err(PanelIniError::Write {
                    path: target.clone(),
                    source,
                })
            }
        }
    }
    Err(PanelIniError::Contended {
        path: target,
        tries: MAX_TRIES,
    })
}

/// The file's bytes and the metadata of the very file they were read from (None, None when
/// it does not exist). Opened without following a link and without blocking, and refused
/// unless it is a regular file ([`fsutil::open_regular`]).
fn read_with_meta(path: &Path) -> Result<(Option<Vec<u8>>, Option<fs::Metadata>), PanelIniError> {
    match fsutil::read_regular_capped(path, MAX_SIZE) {
        Ok(Some((bytes, meta))) => Ok((Some(bytes), Some(meta))),
        Ok(None) => Ok((None, None)),
        Err(source) => Err(read_error(path, source)),
    }
}

/// A read error, with "not a regular file" as its own variant.
fn read_error(path: &Path, source: io::Error) -> PanelIniError {
    match fs::symlink_metadata(path) {
        Ok(m) if source.kind() == io::ErrorKind::InvalidInput && !m.is_file() && !m.file_type().is_symlink() => {
            PanelIniError::NotRegular {
                path: path.to_path_buf(),
                kind: fsutil::file_kind(&m.file_type()),
            }
        }
        _ => PanelIniError::Read {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// Removes temp files that writes interrupted by a crash left beside panel.ini (in Plesk's
/// own conf directory) and in the backup directory: only names of our own pattern. A failure
/// is logged, never fatal: the debris does no harm but clutter.
fn remove_debris(target: &Path, state_dir: &Path) {
    let backups = state_dir.join("backup");
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned());
    let places = [
        (fsutil::parent_dir(target), name.clone().unwrap_or_default()),
        (backups.clone(), "panel.ini.prev".to_string()),
        (backups, "panel.ini.orig".to_string()),
    ];
    for (dir, name) in places {
        if name.is_empty() {
            continue;
        }
        match fsutil::remove_stale_temps(&dir, &name) {
            Ok(removed) => {
                for p in removed {
                    tracing::info!(path = %p.display(), "removed a temp file an interrupted write left");
                }
            }
            Err(e) => tracing::warn!(dir = %dir.display(), "cannot clear interrupted writes' temp files: {e}"),
        }
    }
}

/// Reads the managed keys without changing anything (a missing file has none), under the
/// same rules as a write: a link only when safe, a regular file only.
pub fn read(path: &Path) -> Result<Managed, PanelIniError> {
    let target = resolve(path)?;
    Ok(match read_with_meta(&target)? {
        (Some(bytes), _) => editor::read_managed(&bytes),
        (None, _) => Managed::default(),
    })
}

/// Checks, without opening anything that could block, that the agent may read and write
/// panel.ini at `path`; returns the file it would edit (`check` uses it).
pub fn inspect(path: &Path) -> Result<PathBuf, PanelIniError> {
    let target = resolve(path)?;
    read_with_meta(&target)?;
    Ok(target)
}

/// The file to read and replace: `path` itself, or the final target of a symlink chain.
///
/// The agent runs as root: a link is followed only when the directory holding it and the
/// directory holding the final target are owned by root and not writable by group or others
/// (otherwise whoever can change them could point root's write at any file), and a dangling
/// link is refused rather than created through. Anything at the end that is not a regular
/// file is refused from its `lstat`, before any `open`.
fn resolve(path: &Path) -> Result<PathBuf, PanelIniError> {
    let read_err = |source| PanelIniError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut current = path.to_path_buf();
    let mut linked = false;
    for _ in 0..40 {
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let dir = fsutil::parent_dir(&current);
                trusted_dir(&dir).map_err(|why| PanelIniError::UnsafeLink {
                    link: path.to_path_buf(),
                    why: format!("the directory holding the link {}, {why}", dir.display()),
                })?;
                let link = fs::read_link(&current).map_err(read_err)?;
                current = if link.is_absolute() { link } else { dir.join(link) };
                linked = true;
            }
            Ok(m) => {
                if !m.is_file() {
                    return Err(PanelIniError::NotRegular {
                        path: current,
                        kind: fsutil::file_kind(&m.file_type()),
                    });
                }
                let real = fs::canonicalize(&current).map_err(read_err)?;
                if linked {
                    let dir = fsutil::parent_dir(&real);
                    trusted_dir(&dir).map_err(|why| PanelIniError::UnsafeLink {
                        link: path.to_path_buf(),
                        why: format!("the directory holding its target {}, {why}", dir.display()),
                    })?;
                }
                return Ok(real);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && linked => {
                return Err(PanelIniError::Dangling {
                    link: path.to_path_buf(),
                    target: current,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(read_err(e)),
        }
    }
    Err(read_err(io::Error::other("too many levels of symbolic links")))
}

#[cfg(unix)]
/// `Ok` when `dir` is owned by root (or by the agent's own user, when it does not run as
/// root) and not writable by group or others; else why not, in words.
fn trusted_dir(dir: &Path) -> Result<(), String> {
    let m = fs::metadata(dir).map_err(|e| format!("cannot be checked ({e})"))?;
    let euid = nix::unistd::geteuid().as_raw();
    if m.uid() != 0 && m.uid() != euid {
        return Err(format!("is owned by uid {}, not root", m.uid()));
    }
    let mode = m.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!("is writable by group or others (mode {mode:04o})"));
    }
    Ok(())
}

#[cfg(unix)]
/// Creates `dir` with mode 0700 when missing (parents too), leaving an existing one as it is.
fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(unix)]
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

/// Windows: links are followed through any directory (who may write a directory is its ACL,
/// not checked here); the agent runs as SYSTEM like Plesk's own services.
#[cfg(windows)]
fn trusted_dir(_dir: &Path) -> Result<(), String> {
    Ok(())
}

/// Windows: the state directory's ACL (inherited from %ProgramData%\plesk-reseller-agent) applies.
#[cfg(windows)]
fn private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

/// Windows: the same lock with `LockFileEx`, waiting for the holder like `flock` does.
#[cfg(windows)]
fn lock(state_dir: &Path) -> Result<fsutil::FileLock, PanelIniError> {
    let dir = state_dir.join("locks");
    let path = dir.join("panel.ini.lock");
    let err = |source| PanelIniError::Lock {
        path: path.clone(),
        source,
    };
    private_dir(&dir).map_err(err)?;
    fsutil::lock_blocking(&path).map_err(err)
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
    fsutil::write_atomic(&prev, old, 0o600).map_err(|source| PanelIniError::Backup { path: prev, source })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::panel_ini::editor::Wish;
    use std::os::unix::fs::symlink;

    fn want(buy: &str, cat: &str) -> Desired {
        Desired {
            buy_url: Wish::Set(buy.into()),
            catalog_url: Wish::Set(cat.into()),
        }
    }

    const SYNCED: &str = "[extensions]\nbuyUrl = \"https://a.example\"\ncatalog.url = \"http://p.example:8080\"\n";

    #[test]
    fn in_sync_file_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let (ini, state) = (dir.path().join("panel.ini"), dir.path().join("state"));
        fs::write(&ini, SYNCED).unwrap();
        let old_time = filetime(&ini);
        let before = fs::metadata(&ini).unwrap();
        let r = reconcile(&ini, &want("https://a.example", "http://p.example:8080"), &state).unwrap();
        assert!(!r.changed);
        assert_eq!(r.actual.buy_url.as_deref(), Some("https://a.example"));
        let after = fs::metadata(&ini).unwrap();
        assert_eq!(before.ino(), after.ino());
        assert_eq!(old_time, filetime(&ini));
        assert!(!state.join("backup").exists(), "no backup without a change");
    }

    fn filetime(p: &Path) -> (i64, i64) {
        let m = fs::metadata(p).unwrap();
        (m.mtime(), m.mtime_nsec())
    }

    #[test]
    fn change_keeps_mode_and_owner_and_reports_new_values() {
        let dir = tempfile::tempdir().unwrap();
        let (ini, state) = (dir.path().join("panel.ini"), dir.path().join("state"));
        fs::write(&ini, "; mine\r\n[extensions]\r\nbuyUrl = old\r\n").unwrap();
        fs::set_permissions(&ini, fs::Permissions::from_mode(0o640)).unwrap();
        let euid = nix::unistd::geteuid();
        // As root, hand the file to another owner to see it kept; otherwise keep our own.
        let (uid, gid) = if euid.is_root() {
            (4321, 4322)
        } else {
            (euid.as_raw(), nix::unistd::getegid().as_raw())
        };
        if euid.is_root() {
            nix::unistd::chown(&ini, Some(uid.into()), Some(gid.into())).unwrap();
        }
        let r = reconcile(&ini, &want("https://a.example", "http://p.example:8080"), &state).unwrap();
        assert!(r.changed);
        assert_eq!(r.path, fs::canonicalize(&ini).unwrap());
        assert_eq!(
            r.actual,
            Managed {
                buy_url: Some("https://a.example".into()),
                catalog_url: Some("http://p.example:8080".into())
            }
        );
        assert_eq!(
            fs::read_to_string(&ini).unwrap(),
            "; mine\r\n[extensions]\r\nbuyUrl = \"https://a.example\"\r\ncatalog.url = \"http://p.example:8080\"\r\n"
        );
        let m = fs::metadata(&ini).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o640);
        assert_eq!((m.uid(), m.gid()), (uid, gid));
        assert_eq!(read(&ini).unwrap(), r.actual);
    }

    #[test]
    fn symlink_is_kept_and_its_target_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().join("real");
        fs::create_dir(&real_dir).unwrap();
        // Whatever the umask: a safe link's target directory is not group/other-writable.
        fs::set_permissions(&real_dir, fs::Permissions::from_mode(0o755)).unwrap();
        let target = real_dir.join("panel.ini");
        fs::write(&target, "[debug]\nenabled = on\n").unwrap();
        let link = dir.path().join("panel.ini");
        symlink("real/panel.ini", &link).unwrap();
        let r = reconcile(
            &link,
            &want("https://a.example", "https://c.example"),
            &dir.path().join("s"),
        )
        .unwrap();
        assert!(r.changed);
        assert_eq!(r.path, fs::canonicalize(&target).unwrap());
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(
            fs::read_to_string(&target).unwrap(),
            "[debug]\nenabled = on\n\n[extensions]\nbuyUrl = \"https://a.example\"\ncatalog.url = \"https://c.example\"\n"
        );
    }

    #[test]
    fn dangling_symlink_is_refused_and_its_target_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("panel.ini");
        let target = dir.path().join("elsewhere.ini");
        symlink(&target, &link).unwrap();
        let err = reconcile(
            &link,
            &want("https://a.example", "https://c.example"),
            &dir.path().join("s"),
        )
        .unwrap_err();
        assert!(matches!(err, PanelIniError::Dangling { .. }), "{err}");
        assert!(err.to_string().contains(&*link.to_string_lossy()), "{err}");
        assert!(!target.exists(), "the agent created a file through a dangling link");
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert!(matches!(read(&link), Err(PanelIniError::Dangling { .. })));
    }

    /// A link in `link_dir` to `target_dir/panel.ini` (holding `before`); returns (link, target).
    fn linked(link_dir: &Path, target_dir: &Path, before: &str) -> (PathBuf, PathBuf) {
        fs::create_dir_all(link_dir).unwrap();
        fs::create_dir_all(target_dir).unwrap();
        let target = target_dir.join("panel.ini");
        fs::write(&target, before).unwrap();
        let link = link_dir.join("panel.ini");
        symlink(&target, &link).unwrap();
        (link, target)
    }

    fn assert_refused_untouched(link: &Path, target: &Path, before: &str, state: &Path, why: &str) {
        let err = reconcile(link, &want("https://a.example", "https://c.example"), state).unwrap_err();
        assert!(matches!(err, PanelIniError::UnsafeLink { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&*link.to_string_lossy()) && msg.contains(why), "{msg}");
        assert_eq!(fs::read(target).unwrap(), before.as_bytes(), "the target was written");
        assert!(!state.join("backup").exists(), "nothing is touched, not even backups");
        assert!(matches!(read(link), Err(PanelIniError::UnsafeLink { .. })));
    }

    #[test]
    fn link_is_refused_when_its_directory_or_its_targets_is_group_or_other_writable() {
        let dir = tempfile::tempdir().unwrap();
        let before = "[extensions]\nbuyUrl = \"https://old.example\"\n";
        let (link, target) = linked(&dir.path().join("conf1"), &dir.path().join("t1"), before);
        fs::set_permissions(dir.path().join("conf1"), fs::Permissions::from_mode(0o777)).unwrap();
        assert_refused_untouched(&link, &target, before, &dir.path().join("s1"), "mode 0777");

        let (link, target) = linked(&dir.path().join("conf2"), &dir.path().join("t2"), before);
        fs::set_permissions(dir.path().join("t2"), fs::Permissions::from_mode(0o775)).unwrap();
        assert_refused_untouched(&link, &target, before, &dir.path().join("s2"), "mode 0775");
    }

    #[test]
    fn link_is_refused_when_a_directory_is_not_owned_by_root() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to give a directory away");
            return;
        }
        let nobody = 65534;
        let dir = tempfile::tempdir().unwrap();
        let before = "; theirs\n";
        let (link, target) = linked(&dir.path().join("conf1"), &dir.path().join("t1"), before);
        nix::unistd::chown(&dir.path().join("conf1"), Some(nobody.into()), None).unwrap();
        assert_refused_untouched(&link, &target, before, &dir.path().join("s1"), "uid 65534");

        let (link, target) = linked(&dir.path().join("conf2"), &dir.path().join("t2"), before);
        nix::unistd::chown(&dir.path().join("t2"), Some(nobody.into()), None).unwrap();
        assert_refused_untouched(&link, &target, before, &dir.path().join("s2"), "uid 65534");
    }

    #[test]
    fn fifo_device_socket_and_directory_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.ini");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let sock = dir.path().join("sock.ini");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let subdir = dir.path().join("dir.ini");
        fs::create_dir(&subdir).unwrap();
        let link_to_fifo = dir.path().join("link.ini");
        symlink(&fifo, &link_to_fifo).unwrap();
        for (p, kind) in [
            (&fifo, "FIFO"),
            (&sock, "socket"),
            (&subdir, "directory"),
            (&PathBuf::from("/dev/null"), "device"),
            (&link_to_fifo, "FIFO"),
        ] {
            // A blocking open of a FIFO would never return: the test would hang, not fail.
            let err = reconcile(
                p,
                &want("https://a.example", "https://c.example"),
                &dir.path().join("s"),
            )
            .unwrap_err();
            assert!(matches!(err, PanelIniError::NotRegular { .. }), "{p:?}: {err}");
            assert!(err.to_string().contains(kind), "{err}");
            assert!(matches!(read(p), Err(PanelIniError::NotRegular { .. })), "{p:?}");
            assert!(matches!(inspect(p), Err(PanelIniError::NotRegular { .. })), "{p:?}");
        }
        // A FIFO slipped in after the lstat is still refused by the open itself.
        let err = fsutil::read_regular_capped(&fifo, 10).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
    }

    #[test]
    fn backups_keep_first_original_and_previous_version() {
        let dir = tempfile::tempdir().unwrap();
        let (ini, state) = (dir.path().join("panel.ini"), dir.path().join("state"));
        let first = "[extensions]\nblacklist = a,b\n";
        fs::write(&ini, first).unwrap();
        reconcile(&ini, &want("https://one.example", "https://c.example"), &state).unwrap();
        let after_one = fs::read_to_string(&ini).unwrap();
        reconcile(&ini, &want("https://two.example", "https://c.example"), &state).unwrap();
        let orig = state.join("backup/panel.ini.orig");
        let prev = state.join("backup/panel.ini.prev");
        assert_eq!(fs::read_to_string(&orig).unwrap(), first, ".orig is never overwritten");
        assert_eq!(fs::read_to_string(&prev).unwrap(), after_one);
        for p in [&orig, &prev] {
            assert_eq!(fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        for d in ["backup", "locks"] {
            assert_eq!(fs::metadata(state.join(d)).unwrap().permissions().mode() & 0o777, 0o700);
        }
    }

    #[test]
    fn missing_file_is_created_0644_and_orig_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (ini, state) = (dir.path().join("panel.ini"), dir.path().join("state"));
        assert_eq!(read(&ini).unwrap(), Managed::default());
        let leave = Desired {
            buy_url: Wish::Leave,
            catalog_url: Wish::Remove,
        };
        assert!(!reconcile(&ini, &leave, &state).unwrap().changed);
        assert!(!ini.exists(), "nothing to write, nothing created");
        let r = reconcile(&ini, &want("https://a.example", "https://c.example"), &state).unwrap();
        assert!(r.changed);
        assert_eq!(fs::metadata(&ini).unwrap().permissions().mode() & 0o7777, 0o644);
        assert_eq!(fs::read(state.join("backup/panel.ini.orig")).unwrap(), b"");
    }

    #[test]
    fn unreadable_path_error_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let ini = dir.path().join("panel.ini");
        fs::create_dir(&ini).unwrap();
        let err = reconcile(
            &ini,
            &want("https://a.example", "https://c.example"),
            &dir.path().join("s"),
        )
        .unwrap_err();
        assert!(err.to_string().contains(&*ini.to_string_lossy()), "{err}");
    }

    #[test]
    fn concurrent_reconciles_never_lose_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (ini, state) = (dir.path().join("panel.ini"), dir.path().join("state"));
        let base = "; keep\n[extensions]\nblacklist = x\n[debug]\nlevel = 3\n";
        fs::write(&ini, base).unwrap();
        let threads: Vec<_> = ["https://one.example", "https://two.example"]
            .into_iter()
            .map(|url| {
                let (ini, state) = (ini.clone(), state.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        reconcile(&ini, &want(url, "https://c.example"), &state).unwrap();
                        let text = fs::read_to_string(&ini).unwrap();
                        assert_eq!(text.matches("buyUrl").count(), 1, "{text}");
                        assert!(text.starts_with("; keep\n[extensions]\nblacklist = x\n"), "{text}");
                        assert!(text.ends_with("[debug]\nlevel = 3\n"), "{text}");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
