//! Watches files (panel.ini, the spool's instructions.json, the proxy's allow file) for changes.
//!
//! Editors and configuration tools replace a file by writing a temporary file and renaming
//! it over the original; an inotify watch on the file itself dies with the old inode. So we
//! watch the parent directory and pick out events by file name. No debouncing here: the
//! consumer coalesces, and one message per notify event keeps the volume modest.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode, Event, EventKind};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot start the file watcher: {0}")]
    Setup(#[source] notify::Error),
    #[error("cannot watch {}: {source}", dir.display())]
    Dir {
        dir: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// Keeps the watch alive; dropping it stops watching.
pub struct FileWatch {
    _watcher: notify::RecommendedWatcher,
    dirs: Vec<PathBuf>,
}

impl FileWatch {
    /// The directories being watched.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

impl std::fmt::Debug for FileWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatch").field("dirs", &self.dirs).finish()
    }
}

/// (directory, file name) -> the watched paths (as the caller gave them) living there.
type Targets = HashMap<(PathBuf, OsString), Vec<PathBuf>>;

/// Starts watching `files`; every create/modify/rename/remove touching one of them sends
/// that file's path (as given) into `tx`.
///
/// A symlinked file also gets its target's directory watched (resolved once, now).
pub fn watch(files: Vec<PathBuf>, tx: UnboundedSender<PathBuf>) -> Result<FileWatch, WatchError> {
    watch_with(files, move |ev: FileEvent| {
        // A closed channel means the daemon is stopping; nothing to do.
        let _ = tx.send(ev.path);
    })
}

/// One watched file touched, and whether the event says its content is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEvent {
    pub path: PathBuf,
    /// True when a whole new file was renamed onto the name, or a writer closed it: the
    /// content can be read at once. False for events in the middle of a write (truncate,
    /// partial write, create), after which a reader should let the writer finish.
    pub complete: bool,
}

/// Like [`watch`], telling also whether each event leaves the file complete.
pub fn watch_events(files: Vec<PathBuf>, tx: UnboundedSender<FileEvent>) -> Result<FileWatch, WatchError> {
    watch_with(files, move |ev| {
        let _ = tx.send(ev);
    })
}

fn watch_with(files: Vec<PathBuf>, send: impl Fn(FileEvent) + Send + 'static) -> Result<FileWatch, WatchError> {
    let targets = targets_for(&files);
    let dirs: Vec<PathBuf> = targets
        .keys()
        .map(|(dir, _)| dir.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let all: Vec<PathBuf> = files.clone();

    let mut watcher = notify::recommended_watcher(move |res: notify::Result<Event>| match res {
        Ok(event) => {
            for ev in matches_with_kind(&targets, &all, &event) {
                send(ev);
            }
        }
        Err(e) => tracing::warn!(error = %e, "file watcher reported an error"),
    })
    .map_err(WatchError::Setup)?;

    for dir in &dirs {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Dir {
                dir: dir.clone(),
                source,
            })?;
        tracing::debug!(dir = %dir.display(), "watching directory");
    }
    Ok(FileWatch {
        _watcher: watcher,
        dirs,
    })
}

fn targets_for(files: &[PathBuf]) -> Targets {
    let mut targets = Targets::new();
    for file in files {
        let mut add = |p: &Path| {
            if let Some(key) = split(p) {
                let entry = targets.entry(key).or_default();
                if !entry.contains(file) {
                    entry.push(file.clone());
                }
            }
        };
        add(file);
        if std::fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_symlink()) {
            if let Some(target) = resolve_link(file) {
                add(&target);
            }
        }
    }
    targets
}

/// The final target of a symlink; for a dangling link, the first hop.
fn resolve_link(link: &Path) -> Option<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(link) {
        return Some(p);
    }
    let hop = std::fs::read_link(link).ok()?;
    Some(if hop.is_absolute() {
        hop
    } else {
        parent_dir(link).join(hop)
    })
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn split(p: &Path) -> Option<(PathBuf, OsString)> {
    Some((parent_dir(p), p.file_name()?.to_os_string()))
}

/// The watched files an event touches, each once.
#[cfg(test)]
fn matches(targets: &Targets, all: &[PathBuf], event: &Event) -> Vec<PathBuf> {
    matches_with_kind(targets, all, event)
        .into_iter()
        .map(|e| e.path)
        .collect()
}

/// The watched files an event touches, each once, with whether the event completes them.
fn matches_with_kind(targets: &Targets, all: &[PathBuf], event: &Event) -> Vec<FileEvent> {
    use notify::event::{ModifyKind, RenameMode};
    let complete_at = |i: usize| match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => true,
        // [from, to]: only the destination now holds a whole file.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => i == 1,
        _ => false,
    };
    let mut out: Vec<FileEvent> = Vec::new();
    for (i, p) in paths_touched(targets, all, event) {
        match out.iter_mut().find(|e| e.path == p) {
            Some(e) => e.complete |= complete_at(i),
            None => out.push(FileEvent {
                path: p,
                complete: complete_at(i),
            }),
        }
    }
    out
}

/// (index in the event's paths, watched file) for every watched file the event touches.
fn paths_touched(targets: &Targets, all: &[PathBuf], event: &Event) -> Vec<(usize, PathBuf)> {
    let relevant = match event.kind {
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        // The end of a write: the content is now complete.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        // Any/Other: e.g. an inotify queue overflow, after which events were lost.
        EventKind::Any | EventKind::Other => {
            if event.need_rescan() {
                return all.iter().map(|f| (usize::MAX, f.clone())).collect();
            }
            true
        }
    };
    let mut out = Vec::new();
    if !relevant {
        return out;
    }
    for (i, path) in event.paths.iter().enumerate() {
        let Some(key) = split(path) else { continue };
        if let Some(files) = targets.get(&key) {
            out.extend(files.iter().map(|f| (i, f.clone())));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, Flag, ModifyKind, RenameMode};

    fn ev(kind: EventKind, paths: &[&str]) -> Event {
        let mut e = Event::new(kind);
        for p in paths {
            e = e.add_path(PathBuf::from(p));
        }
        e
    }

    #[test]
    fn picks_out_events_by_name_including_rename_targets() {
        let files = vec![PathBuf::from("/etc/x/panel.ini")];
        let t = targets_for(&files);
        let rename = ev(
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &["/etc/x/.panel.ini.swp", "/etc/x/panel.ini"],
        );
        assert_eq!(matches(&t, &files, &rename), files);
        let other = ev(EventKind::Create(CreateKind::File), &["/etc/x/other.ini"]);
        assert!(matches(&t, &files, &other).is_empty());
        let elsewhere = ev(EventKind::Create(CreateKind::File), &["/etc/y/panel.ini"]);
        assert!(matches(&t, &files, &elsewhere).is_empty());
        let open = ev(
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            &["/etc/x/panel.ini"],
        );
        assert!(matches(&t, &files, &open).is_empty());
    }

    #[test]
    fn one_path_per_event_even_when_it_names_the_file_twice() {
        let files = vec![PathBuf::from("/d/a"), PathBuf::from("/d/b")];
        let t = targets_for(&files);
        let e = ev(EventKind::Modify(ModifyKind::Name(RenameMode::Both)), &["/d/a", "/d/b"]);
        assert_eq!(matches(&t, &files, &e), files);
        let e = ev(EventKind::Modify(ModifyKind::Any), &["/d/a", "/d/a"]);
        assert_eq!(matches(&t, &files, &e), vec![PathBuf::from("/d/a")]);
    }

    #[test]
    fn overflow_reports_every_file() {
        let files = vec![PathBuf::from("/d/a"), PathBuf::from("/e/b")];
        let t = targets_for(&files);
        let e = Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert_eq!(matches(&t, &files, &e), files);
    }

    #[test]
    fn bare_file_name_lives_in_the_current_directory() {
        assert_eq!(
            split(Path::new("panel.ini")),
            Some((PathBuf::from("."), OsString::from("panel.ini")))
        );
    }

    #[test]
    fn missing_directory_is_named_in_the_error() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let err = watch(vec![PathBuf::from("/nonexistent-dir-xyz/panel.ini")], tx).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("cannot watch /nonexistent-dir-xyz: "), "{msg}");
    }
}
