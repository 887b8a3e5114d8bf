//! Durable file writes shared by the journal, the spool transport, the status file and
//! panel.ini: a temporary file in the same directory, fsync, rename, fsync of the directory,
//! so a reader sees the old content or the new, never half of either.

#[cfg(unix)]
use std::fs::OpenOptions;
use std::fs::{self, File};
use std::io::{self, Read, Write};
#[cfg(unix)]
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Owner and group to give the new file (None: leave as created).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ownership {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Writes `bytes` to `path` atomically with permission bits `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_owned(path, bytes, mode, Ownership::default())
}

/// Like [`write_atomic`], and gives the file the owner and group asked for before it
/// becomes visible under its name.
pub fn write_atomic_owned(path: &Path, bytes: &[u8], mode: u32, owner: Ownership) -> io::Result<()> {
    let tmp = write_temp(path, bytes, mode, owner)?;
    let result = rename_over(&tmp, path).and_then(|()| sync_dir(&parent_dir(path)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The name of a temporary file for `name`: `.{name}.tmp.{pid}.{random}`.
fn temp_name(name: &str) -> String {
    format!(".{name}.tmp.{}.{}", std::process::id(), fastrand::u32(..))
}

/// True when `file` is a temporary file [`write_temp`] makes for `name`.
fn is_temp_of(file: &str, name: &str) -> bool {
    let Some(rest) = file.strip_prefix('.').and_then(|f| f.strip_prefix(name)) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(".tmp.") else {
        return false;
    };
    let mut parts = rest.split('.');
    let digits = |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
}

/// Removes the temporary files of interrupted atomic writes of `name` in `dir` (regular files
/// of exactly [`write_temp`]'s pattern, nothing else); returns the paths removed. Call it only
/// while no other writer of `name` can be between its temp write and its rename (under the
/// lock that serialises them), or a live write would lose its temp file.
pub fn remove_stale_temps(dir: &Path, name: &str) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        if !is_temp_of(file, name) || !entry.file_type()?.is_file() {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed.push(entry.path()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if !removed.is_empty() {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Writes `bytes` to a new temporary file beside `path` (mode, owner, fsync) and returns its
/// path; removed again on error.
pub(crate) fn write_temp(path: &Path, bytes: &[u8], mode: u32, owner: Ownership) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = parent_dir(path).join(temp_name(&name.to_string_lossy()));
    let result = (|| {
        let mut f = create_new_private(&tmp)?;
        f.write_all(bytes)?;
        #[cfg(unix)]
        if owner.uid.is_some() || owner.gid.is_some() {
            nix::unistd::fchown(
                &f,
                owner.uid.map(nix::unistd::Uid::from_raw),
                owner.gid.map(nix::unistd::Gid::from_raw),
            )
            .map_err(io::Error::from)?;
        }
        // fchmod after fchown: chown clears setuid bits, and the umask must not narrow the mode.
        #[cfg(unix)]
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        // Windows: the new file inherits its directory's ACL; mode and owner are unix ideas.
        #[cfg(windows)]
        let _ = (mode, owner);
        f.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The file a change was computed from: absent, or this inode with these bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Absent,
    File { dev: u64, ino: u64, sha256: [u8; 32] },
}

impl Seen {
    /// What was read: `meta` of the file `bytes` came from (None: there was no file).
    pub fn of(meta: Option<&fs::Metadata>, bytes: &[u8]) -> Seen {
        match meta {
            None => Seen::Absent,
            Some(m) => {
                let (dev, ino) = identity(m);
                Seen::File {
                    dev,
                    ino,
                    sha256: Sha256::digest(bytes).into(),
                }
            }
        }
    }

    /// True when `path` (not followed if a symlink) is still this file with these bytes.
    pub(crate) fn matches(&self, path: &Path, cap: u64) -> io::Result<bool> {
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(match (self, meta) {
            (Seen::Absent, None) => true,
            (Seen::File { dev, ino, sha256 }, Some(m)) if identity(&m) == (*dev, *ino) => {
                // Never a plain open: the name may have become a FIFO since the stat.
                match read_regular_capped(path, cap) {
                    Ok(Some((now, _))) => <[u8; 32]>::from(Sha256::digest(&now)) == *sha256,
                    // Grown past the cap, gone or replaced since the stat: not the file we read.
                    Ok(None) => false,
                    Err(e) if matches!(e.kind(), io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput) => false,
                    Err(e) => return Err(e),
                }
            }
            _ => false,
        })
    }
}

/// How [`replace_if_unchanged`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    /// The new bytes are in place, and what they replaced was the file seen.
    Done,
    /// Someone changed or replaced the file since it was seen; it was left as they made it.
    Changed,
}

/// Atomically replaces `path` with `bytes`, but only while it still is the file `seen` (the
/// one the bytes were computed from), so another program's newer file is never replaced by
/// one built from an older read. Files larger than `cap` count as changed.
///
/// There is no compare-and-rename in POSIX. So: the new file is written and fsynced first,
/// then `path` is checked (inode and sha256 of its bytes), then swapped in with
/// `renameat2(RENAME_EXCHANGE)`, which leaves the displaced file at the temporary name, and
/// that displaced file is checked again. A file that changed between the first check and the
/// swap is caught there and swapped back, unless yet another rename came in the meantime
/// (then it stays, being newer). What remains: a writer that reads `path` during the few
/// microseconds our bytes stand in place before such a swap-back may build on them. A file
/// that did not exist is created with `RENAME_NOREPLACE`. On a file system without
/// `renameat2` flags (EINVAL) a plain rename follows the first check, and the window is the
/// time between that check and the rename.
#[cfg(unix)]
pub fn replace_if_unchanged(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Ownership,
    seen: &Seen,
    cap: u64,
) -> io::Result<Replaced> {
    let tmp = write_temp(path, bytes, mode, owner)?;
    let result = swap_in(path, &tmp, seen, cap);
    if !matches!(result, Ok(Replaced::Done)) {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
fn swap_in(path: &Path, tmp: &Path, seen: &Seen, cap: u64) -> io::Result<Replaced> {
    use nix::errno::Errno;

    let dir = File::open(parent_dir(path))?;
    let (Some(name), Some(tmp_name)) = (path.file_name(), tmp.file_name()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"));
    };
    let ours = fs::symlink_metadata(tmp).map(|m| (m.dev(), m.ino()))?;
    if !seen.matches(path, cap)? {
        return Ok(Replaced::Changed);
    }
    // From here to the swap: no I/O, the window another writer could slip into.
    let flags = match seen {
        Seen::Absent => nix::libc::RENAME_NOREPLACE,
        Seen::File { .. } => nix::libc::RENAME_EXCHANGE,
    };
    match renameat2(&dir, tmp_name, name, flags) {
        Ok(()) => {}
        // Created (NOREPLACE) or removed (EXCHANGE) by someone since the check.
        Err(Errno::EEXIST) | Err(Errno::ENOENT) => return Ok(Replaced::Changed),
        Err(Errno::EINVAL) | Err(Errno::ENOSYS) => {
            fs::rename(tmp, path)?;
            dir.sync_all()?;
            return Ok(Replaced::Done);
        }
        Err(e) => return Err(e.into()),
    }
    if let Seen::Absent = seen {
        dir.sync_all()?;
        return Ok(Replaced::Done);
    }
    // `tmp` now names the file we displaced: it must be the one we read.
    if seen.matches(tmp, cap)? {
        fs::remove_file(tmp)?;
        dir.sync_all()?;
        return Ok(Replaced::Done);
    }
    // We displaced someone's newer file: put it back, unless our file was itself replaced
    // already (then that is newer still, and the displaced one is superseded).
    let now = fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()));
    if now == Some(ours) {
        renameat2(&dir, tmp_name, name, nix::libc::RENAME_EXCHANGE).map_err(io::Error::from)?;
    }
    dir.sync_all()?;
    Ok(Replaced::Changed)
}

/// `renameat2(2)` within one directory, called as a raw system call: glibc has a wrapper only
/// since 2.28 (nix's `renameat2` links to it), and the packaged binary must start on glibc
/// 2.17. A kernel without the call (before 3.15) answers ENOSYS, which callers treat like a
/// file system without the flags.
#[cfg(unix)]
fn renameat2(
    dir: &File,
    from: &std::ffi::OsStr,
    to: &std::ffi::OsStr,
    flags: nix::libc::c_uint,
) -> Result<(), nix::errno::Errno> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;

    let cstr = |s: &std::ffi::OsStr| std::ffi::CString::new(s.as_bytes()).map_err(|_| nix::errno::Errno::EINVAL);
    let (from, to) = (cstr(from)?, cstr(to)?);
    let fd = dir.as_raw_fd();
    // SAFETY: both paths are NUL-terminated and outlive the call; fd is an open directory.
    let r = unsafe { nix::libc::syscall(nix::libc::SYS_renameat2, fd, from.as_ptr(), fd, to.as_ptr(), flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(nix::errno::Errno::last())
    }
}

/// fsyncs a directory so a rename or unlink inside it survives a power cut.
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A new file only its owner may read (unix: created 0600).
#[cfg(unix)]
fn create_new_private(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

/// What tells one file from another under the same name: device and inode.
#[cfg(unix)]
fn identity(m: &fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// `rename(2)`: atomic replace of `to`.
#[cfg(unix)]
pub fn rename_over(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)
}

#[cfg(windows)]
pub use crate::windows::{
    create_new_private, file_kind, identity, lock_blocking, open_regular, rename_over, replace_if_unchanged, sync_dir,
    try_lock, FileLock,
};

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates `dir` (and parents) and narrows it to `mode` (unix; on Windows the directory keeps
/// the ACL it inherits from %ProgramData%\plesk-reseller-agent, set by the installer).
pub fn ensure_private_dir(dir: &Path, mode: u32) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        let meta = fs::metadata(dir)?;
        if meta.permissions().mode() & 0o7777 != mode {
            fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
        }
    }
    #[cfg(windows)]
    let _ = mode;
    Ok(())
}

/// Reads at most `cap` bytes of a file; `Ok(None)` when it does not exist,
/// an `InvalidData` error when it is larger than `cap`.
pub fn read_capped(path: &Path, cap: u64) -> io::Result<Option<Vec<u8>>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    read_to_cap(f, cap).map(Some)
}

/// Opens `path` for reading the way a root process must open a file others may have placed:
/// `O_NOFOLLOW` (a symlink at the last component is refused, ELOOP), `O_NONBLOCK` (a FIFO
/// with no writer would block `open(2)` for ever), and `fstat` of what was opened, which must
/// be a regular file. `Ok(None)` when nothing is there. A file that is not regular is an
/// `InvalidInput` error saying what it is.
#[cfg(unix)]
pub fn open_regular(path: &Path) -> io::Result<Option<(File, fs::Metadata)>> {
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is a symbolic link where a regular file was expected",
            ))
        }
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(&meta.file_type()));
    }
    Ok(Some((f, meta)))
}

/// What a file that is not a regular one is, in words: "a FIFO (named pipe)", "a directory"...
#[cfg(unix)]
pub fn file_kind(t: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// The error for a file of type `t` where a regular file must be.
pub fn not_regular(t: &fs::FileType) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("it is {}, not a regular file", file_kind(t)),
    )
}

/// [`open_regular`] and read at most `cap` bytes ([`read_to_cap`]).
pub fn read_regular_capped(path: &Path, cap: u64) -> io::Result<Option<(Vec<u8>, fs::Metadata)>> {
    match open_regular(path)? {
        None => Ok(None),
        Some((f, meta)) => Ok(Some((read_to_cap(f, cap)?, meta))),
    }
}

/// Reads `r` to its end; an `InvalidData` error when it holds more than `cap` bytes (only
/// `cap + 1` are ever read, so a huge file costs no more than a small one).
pub fn read_to_cap(r: impl Read, cap: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(cap + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {cap} bytes"),
        ));
    }
    Ok(buf)
}

/// An exclusive lock held for as long as the value lives.
#[cfg(unix)]
pub struct FileLock {
    _file: File,
}

/// Takes an exclusive lock on `path` (created 0600) without waiting: `Ok(None)` when another
/// process holds it. `note` is written into the file (e.g. the holder's pid) for people.
///
/// A POSIX record lock (`fcntl(F_SETLK)`), not `flock`: an flock belongs to the open file,
/// so a child that got a copy of the descriptor (a license command between its fork and its
/// exec, where close-on-exec has not acted yet) keeps it locked after we are SIGKILLed, and
/// a restart at once is refused. A record lock belongs to this process alone, is never
/// inherited and goes with the process. Its one pitfall: closing *any* descriptor of the
/// file in this process drops it, so nothing else here may open the lock file.
#[cfg(unix)]
pub fn try_lock(path: &Path, note: &str) -> io::Result<Option<FileLock>> {
    use nix::fcntl::{fcntl, FcntlArg};
    use nix::libc;

    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    // SAFETY: a plain C struct; all-zero is a valid value, the fields that matter are set below.
    let mut whole: libc::flock = unsafe { std::mem::zeroed() };
    whole.l_type = libc::F_WRLCK as _;
    whole.l_whence = libc::SEEK_SET as _;
    // l_start = 0, l_len = 0: the whole file, however long it grows.
    match fcntl(&f, FcntlArg::F_SETLK(&whole)) {
        Ok(_) => {
            let _ = f.set_len(0);
            let _ = f.write_all(note.as_bytes());
            Ok(Some(FileLock { _file: f }))
        }
        Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EACCES) => Ok(None),
        Err(e) => Err(io::Error::from(e)),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_with_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o640).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f.json")]);
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn seen(p: &Path) -> Seen {
        let bytes = fs::read(p).unwrap();
        Seen::of(Some(&fs::metadata(p).unwrap()), &bytes)
    }

    #[test]
    fn replace_if_unchanged_replaces_only_the_file_it_was_given() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("panel.ini");
        fs::write(&p, "a").unwrap();
        let s = seen(&p);
        assert_eq!(
            replace_if_unchanged(&p, b"ours", 0o644, Ownership::default(), &s, 100).unwrap(),
            Replaced::Done
        );
        assert_eq!(fs::read(&p).unwrap(), b"ours");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);

        // Someone renamed a newer file into place since it was read: theirs stays.
        let s = seen(&p);
        fs::write(dir.path().join("x"), "theirs").unwrap();
        fs::rename(dir.path().join("x"), &p).unwrap();
        assert_eq!(
            replace_if_unchanged(&p, b"ours2", 0o644, Ownership::default(), &s, 100).unwrap(),
            Replaced::Changed
        );
        assert_eq!(fs::read(&p).unwrap(), b"theirs");

        // Someone rewrote it in place (same inode, other bytes): theirs stays.
        let s = seen(&p);
        fs::write(&p, "theirs, edited").unwrap();
        assert_eq!(
            replace_if_unchanged(&p, b"ours3", 0o644, Ownership::default(), &s, 100).unwrap(),
            Replaced::Changed
        );
        assert_eq!(fs::read(&p).unwrap(), b"theirs, edited");

        // Absent when read, created since: theirs stays; still absent: ours is created.
        let q = dir.path().join("new.ini");
        fs::write(&q, "theirs").unwrap();
        assert_eq!(
            replace_if_unchanged(&q, b"ours", 0o644, Ownership::default(), &Seen::Absent, 100).unwrap(),
            Replaced::Changed
        );
        fs::remove_file(&q).unwrap();
        assert_eq!(
            replace_if_unchanged(&q, b"ours", 0o644, Ownership::default(), &Seen::Absent, 100).unwrap(),
            Replaced::Done
        );
        assert_eq!(fs::read(&q).unwrap(), b"ours");
        assert_eq!(names(dir.path()), ["new.ini", "panel.ini"], "no temp file is left");
    }

    #[test]
    fn stale_temps_of_the_name_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let keep = [
            "panel.ini",
            ".panel.ini.swp",
            ".panel.ini.tmp.12",
            ".panel.ini.tmp.12.x",
            ".panel.ini.tmp.12.34.5",
            ".panel.ini.bak.tmp.1.2",
            "panel.ini.tmp.1.2",
            ".other.tmp.1.2",
        ];
        for n in keep {
            fs::write(dir.path().join(n), "x").unwrap();
        }
        fs::create_dir(dir.path().join(".panel.ini.tmp.7.8")).unwrap();
        fs::write(dir.path().join(".panel.ini.tmp.123.4567"), "x").unwrap();
        fs::write(dir.path().join(".panel.ini.tmp.9.0"), "x").unwrap();
        let removed = remove_stale_temps(dir.path(), "panel.ini").unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        let mut want: Vec<_> = keep.iter().map(|s| s.to_string()).collect();
        want.push(".panel.ini.tmp.7.8".into());
        want.sort();
        assert_eq!(names(dir.path()), want);
        assert!(remove_stale_temps(&dir.path().join("none"), "panel.ini")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn read_capped_refuses_larger_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        fs::write(&p, vec![b'x'; 11]).unwrap();
        assert!(read_capped(&p, 10).is_err());
        assert_eq!(read_capped(&p, 11).unwrap().unwrap().len(), 11);
        assert!(read_capped(&dir.path().join("none"), 10).unwrap().is_none());
    }
}
