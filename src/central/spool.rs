//! The spool transport (section 6): `dir/instructions.json` in, `dir/results/<job_id>.json`
//! and `dir/report.json` out, each written atomically.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{
    is_valid_job_id, parse_instructions, CentralError, JobResult, PollOutcome, PollRequest, RawInstructions, Report,
    Transport, MAX_BODY,
};
use crate::fsutil::{read_capped, write_atomic};
use crate::BoxFuture;

pub struct SpoolTransport {
    dir: PathBuf,
    url: String,
}

impl SpoolTransport {
    pub fn new(dir: PathBuf) -> Self {
        let url = format!("file://{}", dir.display());
        SpoolTransport { dir, url }
    }

    /// The file the daemon watches.
    pub fn instructions_path(&self) -> PathBuf {
        self.dir.join("instructions.json")
    }
}

impl Transport for SpoolTransport {
    fn kind(&self) -> &'static str {
        "spool"
    }
    fn url(&self) -> &str {
        &self.url
    }
    fn poll(&self, req: PollRequest) -> BoxFuture<'_, Result<PollOutcome, CentralError>> {
        Box::pin(async move { self.poll_sync(&req) })
    }
    fn send_result<'a>(&'a self, job_id: &'a str, result: &'a JobResult) -> BoxFuture<'a, Result<(), CentralError>> {
        Box::pin(async move {
            let results = self.dir.join("results");
            // Ids are validated before they get here; re-check since this one becomes a file name.
            if !is_valid_job_id(job_id) {
                return Err(CentralError::Io {
                    path: results,
                    source: io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("job id {job_id:?} is not a valid file name"),
                    ),
                });
            }
            std::fs::create_dir_all(&results).map_err(|source| CentralError::Io {
                path: results.clone(),
                source,
            })?;
            write_json(&results.join(format!("{job_id}.json")), result)?;
            prune_results(&results, std::time::SystemTime::now());
            Ok(())
        })
    }
    fn send_report<'a>(&'a self, report: &'a Report) -> BoxFuture<'a, Result<(), CentralError>> {
        Box::pin(async move { write_json(&self.dir.join("report.json"), report) })
    }
}

impl SpoolTransport {
    fn poll_sync(&self, req: &PollRequest) -> Result<PollOutcome, CentralError> {
        let path = self.instructions_path();
        let body = match read_capped(&path, MAX_BODY as u64) {
            Ok(Some(body)) => body,
            // No file: the store has nothing for this host (no values, no jobs).
            Ok(None) => {
                return Ok(PollOutcome::Instructions {
                    instructions: RawInstructions::default(),
                    etag: None,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(CentralError::TooLarge {
                    url: path.display().to_string(),
                    limit: MAX_BODY,
                })
            }
            Err(source) => return Err(CentralError::Io { path, source }),
        };
        let etag = hex::encode(Sha256::digest(&body));
        if req.etag.as_deref() == Some(etag.as_str()) {
            return Ok(PollOutcome::NotModified);
        }
        let instructions = parse_instructions(&path.display().to_string(), &body)?;
        Ok(PollOutcome::Instructions {
            instructions,
            etag: Some(etag),
        })
    }
}

/// Pretty JSON with a final newline, written atomically, readable by the store's tooling.
fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), CentralError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| CentralError::Io {
        path: path.to_path_buf(),
        source: io::Error::other(e),
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes, 0o644).map_err(|source| CentralError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Result files older than this are removed: the store had a month to collect them, and
/// a spool directory nobody empties must not grow without end.
pub const RESULT_RETENTION: std::time::Duration = crate::journal::RETENTION;

/// Removes result files older than [`RESULT_RETENTION`] (best effort).
fn prune_results(results: &std::path::Path, now: std::time::SystemTime) {
    let Ok(entries) = std::fs::read_dir(results) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|m| now.duration_since(m).is_ok_and(|age| age > RESULT_RETENTION));
        if old && e.file_name().to_string_lossy().ends_with(".json") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod prune_tests {
    use super::*;

    #[test]
    fn old_result_files_are_pruned_new_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.json");
        let new = dir.path().join("new.json");
        std::fs::write(&old, "{}").unwrap();
        std::fs::write(&new, "{}").unwrap();
        let month_ago = std::time::SystemTime::now() - RESULT_RETENTION - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(month_ago)
            .unwrap();
        prune_results(dir.path(), std::time::SystemTime::now());
        assert!(!old.exists());
        assert!(new.exists());
    }
}
