//! The Windows side of [`crate::fsutil`]: what POSIX gives the unix build (rename over an
//! open file, renameat2, O_NOFOLLOW, record locks) done with what Windows has.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::windows::io::AsRawHandle;
use std::path::Path;
use std::time::Duration;

use crate::fsutil::{parent_dir, write_temp, Ownership, Replaced, Seen};

/// Windows error codes a rename meets while another process holds the target open without
/// FILE_SHARE_DELETE (an editor, an indexer, an antivirus scan): worth another try.
const ERROR_ACCESS_DENIED: i32 = 5;
const ERROR_SHARING_VIOLATION: i32 = 32;
const ERROR_LOCK_VIOLATION: i32 = 33;

/// How often and how long [`rename_over`] tries: about 3 s in all, then the error stands.
const RENAME_TRIES: u32 = 12;
const RENAME_FIRST_WAIT: Duration = Duration::from_millis(20);
const RENAME_MAX_WAIT: Duration = Duration::from_millis(500);

/// Replaces `to` with `from`. `std::fs::rename` replaces an existing file on Windows (POSIX
/// semantics first, `MoveFileExW(MOVEFILE_REPLACE_EXISTING)` as the fallback), but fails
/// while another process holds `to` without share-delete: retried with a growing wait.
pub fn rename_over(from: &Path, to: &Path) -> io::Result<()> {
    let mut wait = RENAME_FIRST_WAIT;
    let mut tries = 0;
    loop {
        match fs::rename(from, to) {
            Ok(()) => return Ok(()),
            Err(e) if is_transient(&e) && tries + 1 < RENAME_TRIES => {
                tries += 1;
                std::thread::sleep(wait);
                wait = (wait * 2).min(RENAME_MAX_WAIT);
            }
            Err(e) => return Err(e),
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(ERROR_ACCESS_DENIED | ERROR_SHARING_VIOLATION | ERROR_LOCK_VIOLATION)
    )
}

/// NTFS journals its metadata; a directory cannot be opened as a file for `FlushFileBuffers`
/// without backup semantics, and there is nothing more a rename needs to be durable.
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// A new file; on Windows it inherits its directory's ACL (the installer makes
/// %ProgramData%\plesk-reseller-agent readable by SYSTEM and Administrators only).
pub fn create_new_private(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

/// Windows' std has no stable file id in `Metadata` (volume serial and file index are
/// unstable), so a file is known by its bytes alone: [`Seen`] compares the sha256.
pub fn identity(_m: &fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// Like the unix [`crate::fsutil::replace_if_unchanged`], without `renameat2`: the new file
/// is written first, the target checked (its bytes), then renamed over it with retries. The
/// window another writer could slip into is the time between the check and the rename.
pub fn replace_if_unchanged(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Ownership,
    seen: &Seen,
    cap: u64,
) -> io::Result<Replaced> {
    let tmp = write_temp(path, bytes, mode, owner)?;
    let result = (|| {
        if !seen.matches(path, cap)? {
            return Ok(Replaced::Changed);
        }
        if let Seen::Absent = seen {
            // No compare-and-create either: a file created since the check would be replaced.
            if path.exists() {
                return Ok(Replaced::Changed);
            }
        }
        rename_over(&tmp, path)?;
        sync_dir(&parent_dir(path))?;
        Ok(Replaced::Done)
    })();
    if !matches!(result, Ok(Replaced::Done)) {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Opens `path` for reading when it is a regular file; a symbolic link or junction at the
/// last component is refused (checked before the open: Windows has no O_NOFOLLOW in std).
pub fn open_regular(path: &Path) -> io::Result<Option<(File, fs::Metadata)>> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is a symbolic link where a regular file was expected",
            ))
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(crate::fsutil::not_regular(&meta.file_type()));
    }
    Ok(Some((f, meta)))
}

/// What a file that is not a regular one is, in words.
pub fn file_kind(t: &fs::FileType) -> &'static str {
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// An exclusive lock held for as long as the value lives (`LockFileEx`; Windows drops it when
/// the handle closes or the process ends).
pub struct FileLock {
    _file: File,
}

/// Takes an exclusive lock on `path` without waiting: `Ok(None)` when another process holds
/// it. The note is written before the lock (a locked range cannot be written through
/// another handle, and readers of the note would be refused while it is held).
pub fn try_lock(path: &Path, note: &str) -> io::Result<Option<FileLock>> {
    match lock_file(path, false)? {
        Some(mut f) => {
            // Writing through the handle that holds the lock is allowed.
            let _ = f.set_len(0);
            let _ = f.write_all(note.as_bytes());
            Ok(Some(FileLock { _file: f }))
        }
        None => Ok(None),
    }
}

/// Takes an exclusive lock on `path`, waiting while another process holds it.
pub fn lock_blocking(path: &Path) -> io::Result<FileLock> {
    match lock_file(path, true)? {
        Some(f) => Ok(FileLock { _file: f }),
        None => Err(io::Error::other("the lock was not granted")),
    }
}

fn lock_file(path: &Path, wait: bool) -> io::Result<Option<File>> {
    use windows_sys::Win32::Foundation::{ERROR_IO_PENDING, ERROR_LOCK_VIOLATION, HANDLE};
    use windows_sys::Win32::Storage::FileSystem::{LockFileEx, LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY};
    use windows_sys::Win32::System::IO::OVERLAPPED;

    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    // SAFETY: a plain C struct, all-zero is valid (offset 0: the lock starts at byte 0).
    let mut overlapped: OVERLAPPED = unsafe { std::mem::zeroed() };
    // SAFETY: the handle is open for this call's whole duration; the overlapped lives on the
    // stack across the synchronous call (the file was not opened for overlapped I/O).
    let ok = unsafe {
        LockFileEx(
            f.as_raw_handle() as HANDLE,
            if wait {
                LOCKFILE_EXCLUSIVE_LOCK
            } else {
                LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY
            },
            0,
            u32::MAX,
            u32::MAX,
            &mut overlapped,
        )
    };
    if ok == 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(c) if c == ERROR_LOCK_VIOLATION as i32 || c == ERROR_IO_PENDING as i32 => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_an_existing_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("panel.ini");
        fs::write(&p, "[extensions]\r\nbuyUrl = \"a\"\r\n").unwrap();
        crate::fsutil::write_atomic(&p, b"[extensions]\r\nbuyUrl = \"b\"\r\n", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"[extensions]\r\nbuyUrl = \"b\"\r\n");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("panel.ini")]);
    }

    #[test]
    fn replace_if_unchanged_keeps_a_file_changed_since_it_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("panel.ini");
        fs::write(&p, "a").unwrap();
        let seen = |p: &Path| Seen::of(Some(&fs::metadata(p).unwrap()), &fs::read(p).unwrap());
        let s = seen(&p);
        assert_eq!(
            replace_if_unchanged(&p, b"ours", 0o644, Ownership::default(), &s, 100).unwrap(),
            Replaced::Done
        );
        let s = seen(&p);
        fs::write(&p, "theirs").unwrap();
        assert_eq!(
            replace_if_unchanged(&p, b"ours2", 0o644, Ownership::default(), &s, 100).unwrap(),
            Replaced::Changed
        );
        assert_eq!(fs::read(&p).unwrap(), b"theirs");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file is left");
    }

    #[test]
    fn rename_over_waits_for_a_holder_that_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("new"), dir.path().join("panel.ini"));
        fs::write(&from, "new").unwrap();
        fs::write(&to, "old").unwrap();
        // Held without share-delete, the way an editor may hold it; let go after 200 ms.
        let held = File::open(&to).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(held);
        });
        rename_over(&from, &to).unwrap();
        release.join().unwrap();
        assert_eq!(fs::read(&to).unwrap(), b"new");
    }

    #[test]
    fn the_lock_is_exclusive_and_goes_with_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.lock");
        let held = try_lock(&p, "pid 1").unwrap().expect("first lock");
        assert!(try_lock(&p, "pid 2").unwrap().is_none(), "a second holder is refused");
        drop(held);
        assert!(try_lock(&p, "pid 3").unwrap().is_some(), "free again once dropped");
    }
}
