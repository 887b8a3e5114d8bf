//! What the engine keeps across restarts besides the journal: the instructions in force
//! with their ETag (`state_dir/instructions.json`, 0600: it may hold activation codes), and
//! the last report the store accepted (`state_dir/report.json`), so a restart neither
//! forgets the store's panel.ini values nor re-sends an unchanged report.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::central::{Instructions, Report};

const MAX_STATE_FILE: u64 = 2 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("cannot save the instructions to {path}: {source}")]
pub struct SaveError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Persisted {
    pub etag: Option<String>,
    pub instructions: Instructions,
}

fn instructions_path(state_dir: &Path) -> PathBuf {
    state_dir.join("instructions.json")
}

fn report_path(state_dir: &Path) -> PathBuf {
    state_dir.join("report.json")
}

impl Persisted {
    /// The saved instructions; none (and a warning) when the file is missing or unreadable.
    pub fn load(state_dir: &Path) -> Persisted {
        let path = instructions_path(state_dir);
        match crate::fsutil::read_capped(&path, MAX_STATE_FILE) {
            Ok(None) => Persisted::default(),
            Ok(Some(b)) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!("ignoring the saved instructions {}: {e}", path.display());
                Persisted::default()
            }),
            Err(e) => {
                tracing::warn!("ignoring the saved instructions {}: {e}", path.display());
                Persisted::default()
            }
        }
    }

    pub fn save(&self, state_dir: &Path) -> Result<(), SaveError> {
        let path = instructions_path(state_dir);
        let bytes = serde_json::to_vec(self).expect("instructions always serialize");
        crate::fsutil::write_atomic(&path, &bytes, 0o600).map_err(|source| SaveError { path, source })
    }
}

pub fn load_last_report(state_dir: &Path) -> Option<Report> {
    let b = crate::fsutil::read_capped(&report_path(state_dir), MAX_STATE_FILE).ok()??;
    serde_json::from_slice(&b).ok()
}

pub fn save_last_report(state_dir: &Path, report: &Report) {
    let path = report_path(state_dir);
    let bytes = serde_json::to_vec_pretty(report).expect("a report always serializes");
    if let Err(e) = crate::fsutil::write_atomic(&path, &bytes, 0o600) {
        tracing::warn!("cannot save the last report to {}: {e}", path.display());
    }
}
