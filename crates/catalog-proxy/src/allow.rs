//! The allow list: codes of Plesk-sold extensions the reseller shows. It is the union of
//! `allow` (fixed at start) and `allow_file` (re-read when it changes, within 1 s).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// Largest allow file read.
const MAX_ALLOW_FILE: u64 = 4 * 1024 * 1024;
/// The backstop poll: catches changes notify cannot see (directory created later, lost events).
const POLL: Duration = Duration::from_millis(500);

/// One version of the allow list.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub codes: HashSet<String>,
    /// Changes whenever `codes` changes.
    pub generation: u64,
    /// Why `allow_file` could not be read, if it could not.
    pub problem: Option<String>,
}

impl Snapshot {
    pub fn contains(&self, code: &str) -> bool {
        self.codes.contains(code)
    }
}

pub struct AllowList {
    fixed: Vec<String>,
    file: Option<PathBuf>,
    current: RwLock<Arc<Snapshot>>,
}

impl AllowList {
    /// Reads `file` now (a missing or unreadable one counts as empty, with a warning).
    pub fn new(fixed: Vec<String>, file: Option<PathBuf>) -> Self {
        let list = AllowList {
            fixed,
            file,
            current: RwLock::new(Arc::new(Snapshot::default())),
        };
        list.reload();
        list
    }

    pub fn current(&self) -> Arc<Snapshot> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Re-reads `allow_file`; returns true when the list or its problem changed.
    pub fn reload(&self) -> bool {
        let mut codes: HashSet<String> = self.fixed.iter().cloned().collect();
        let mut problem = None;
        if let Some(path) = &self.file {
            match plesk_sysutil::fsutil::read_capped(path, MAX_ALLOW_FILE) {
                Ok(Some(bytes)) => codes.extend(parse_allow_file(&String::from_utf8_lossy(&bytes))),
                Ok(None) => {
                    problem = Some(format!(
                        "allow_file {} does not exist; it counts as empty",
                        path.display()
                    ))
                }
                Err(e) => {
                    problem = Some(format!(
                        "cannot read allow_file {}: {e}; it counts as empty",
                        path.display()
                    ))
                }
            }
        }
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        if guard.codes == codes && guard.problem == problem {
            return false;
        }
        if let Some(p) = &problem {
            if guard.problem.as_ref() != Some(p) {
                tracing::warn!("{p}");
            }
        }
        let generation = guard.generation + 1;
        if guard.codes != codes {
            tracing::info!(codes = codes.len(), "allow list changed");
        }
        *guard = Arc::new(Snapshot {
            codes,
            generation,
            problem,
        });
        true
    }
}

/// One code per line; `;` starts a comment anywhere; whitespace, CRLF and a BOM ignored.
pub fn parse_allow_file(text: &str) -> Vec<String> {
    text.trim_start_matches('\u{feff}')
        .lines()
        .map(|line| line.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

/// Keeps `allow` current until the returned task is aborted: notify on the file's directory,
/// plus a cheap metadata poll as a backstop.
pub fn spawn_reloader(allow: Arc<AllowList>) -> Option<tokio::task::JoinHandle<()>> {
    let path = allow.file()?.to_path_buf();
    Some(tokio::spawn(async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let _watch = match plesk_sysutil::watch::watch(vec![path.clone()], tx) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("{e}; polling allow_file {} instead", path.display());
                None
            }
        };
        let mut seen = stamp(&path);
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = rx.recv() => {
                    if ev.is_none() {
                        // The watcher stopped; the poll keeps going.
                        std::future::pending::<()>().await;
                    }
                    while rx.try_recv().is_ok() {}
                    seen = stamp(&path);
                    allow.reload();
                }
                _ = tick.tick() => {
                    let now = stamp(&path);
                    if now != seen {
                        seen = now;
                        allow.reload();
                    }
                }
            }
        }
    }))
}

type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    // Windows: no stable file id in std's Metadata; mtime and length tell a change.
    #[cfg(windows)]
    let ino = 0;
    Some((m.modified().ok()?, m.len(), ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_format_comments_crlf_bom_whitespace() {
        let codes = parse_allow_file(
            "\u{feff}wp-toolkit ; our best seller\r\n  seo-toolkit\t\r\n;only a comment\n\nimunify;x\n",
        );
        assert_eq!(codes, ["wp-toolkit", "seo-toolkit", "imunify"]);
    }

    #[test]
    fn union_of_fixed_and_file_and_missing_file_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("allow.txt");
        let list = AllowList::new(vec!["a".into()], Some(f.clone()));
        let s = list.current();
        assert!(s.contains("a") && s.codes.len() == 1);
        assert!(s.problem.as_deref().unwrap().contains("allow.txt"));
        std::fs::write(&f, "b\n").unwrap();
        assert!(list.reload());
        let s2 = list.current();
        assert!(s2.contains("a") && s2.contains("b") && s2.problem.is_none());
        assert!(s2.generation > s.generation);
        assert!(!list.reload(), "an unchanged file is no change");
    }
}
