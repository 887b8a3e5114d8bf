//! Durable file writes shared by the journal, the spool transport, the status file and
//! panel.ini: a temporary file in the same directory, fsync, rename, fsync of the directory,
//! so a reader sees the old content or the new, never half of either.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        fastrand::u32(..)
    ));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        if owner.uid.is_some() || owner.gid.is_some() {
            nix::unistd::fchown(
                &f,
                owner.uid.map(nix::unistd::Uid::from_raw),
                owner.gid.map(nix::unistd::Gid::from_raw),
            )
            .map_err(io::Error::from)?;
        }
        // fchmod after fchown: chown clears setuid bits, and the umask must not narrow the mode.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// fsyncs a directory so a rename or unlink inside it survives a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates `dir` (and parents) and narrows it to `mode`.
pub fn ensure_private_dir(dir: &Path, mode: u32) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let meta = fs::metadata(dir)?;
    if meta.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
    }
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
    let mut buf = Vec::new();
    f.take(cap + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {cap} bytes"),
        ));
    }
    Ok(Some(buf))
}

/// An exclusive lock held for as long as the value lives.
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

#[cfg(test)]
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
