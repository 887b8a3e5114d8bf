//! What the engine keeps across restarts besides the journal: the instructions in force
//! with their ETag (`state_dir/instructions.json`, 0600: it may hold activation codes), so
//! a restart does not forget the store's panel.ini values while the store is unreachable.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::central::RawInstructions;

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
    pub instructions: RawInstructions,
}

pub(crate) fn instructions_path(state_dir: &Path) -> PathBuf {
    state_dir.join("instructions.json")
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
