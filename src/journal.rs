//! Jobs and results on disk (contract section 7): one JSON file per job under
//! `state_dir/jobs/`, written and fsynced before the command starts ("running", with the
//! job itself so a restart can run it again) and before delivery ("done", with the result).
//! Completed ids are remembered for 30 days, at most 10 000 of them, so a job is never run
//! twice once it has a result. Undelivered results wait here until the store acknowledges
//! them, across restarts.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::central::{Job, JobResult};
use crate::clock::unix_secs;

/// How long a delivered result is remembered.
pub const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// How many completed jobs are remembered at most.
pub const MAX_COMPLETED: usize = 10_000;
/// Runs interrupted by a crash or restart before the job is given up as failed.
pub const MAX_ATTEMPTS: u32 = 3;
/// Largest job record read back.
const MAX_RECORD: u64 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write the job record {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read the job directory {path}: {source}")]
    ReadDir { path: PathBuf, source: io::Error },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    Running,
    Done,
}

/// One job as remembered on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub job_type: String,
    pub state: RecordState,
    /// How many times the command was started.
    pub attempts: u32,
    /// The job, kept only while running (it holds the activation code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Job>,
    #[serde(default)]
    pub first_started_at: Option<String>,
    #[serde(default)]
    pub result: Option<JobResult>,
    /// Unix seconds when the result was stored.
    #[serde(default)]
    pub finished_unix: u64,
    /// Unix seconds when the store last acknowledged the result.
    #[serde(default)]
    pub delivered_unix: Option<u64>,
}

impl Record {
    pub fn delivered(&self) -> bool {
        self.delivered_unix.is_some()
    }
}

/// The journal: the files, and an index of them in memory.
pub struct Journal {
    dir: PathBuf,
    records: BTreeMap<String, Record>,
    /// Files that could not be read, set aside: one sentence each.
    pub load_warnings: Vec<String>,
}

impl Journal {
    /// Opens `state_dir/jobs` (created 0700), reading every record. A record that cannot be
    /// parsed is renamed `*.corrupt` (kept for a person to look at) and reported.
    pub fn open(state_dir: &Path) -> Result<Journal, JournalError> {
        let dir = state_dir.join("jobs");
        crate::fsutil::ensure_private_dir(&dir, 0o700).map_err(|source| JournalError::Write {
            path: dir.clone(),
            source,
        })?;
        let mut records = BTreeMap::new();
        let mut load_warnings = Vec::new();
        let entries = fs::read_dir(&dir).map_err(|source| JournalError::ReadDir {
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp.") {
                let _ = fs::remove_file(&path); // a write interrupted by a crash
                continue;
            }
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            let parsed = crate::fsutil::read_capped(&path, MAX_RECORD)
                .ok()
                .flatten()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
                .filter(|r| r.id == id);
            match parsed {
                Some(r) => {
                    records.insert(r.id.clone(), r);
                }
                None => {
                    let aside = dir.join(format!("{name}.corrupt"));
                    let _ = fs::rename(&path, &aside);
                    load_warnings.push(format!(
                        "the job record {} could not be read and was moved to {}",
                        path.display(),
                        aside.display()
                    ));
                }
            }
        }
        Ok(Journal {
            dir,
            records,
            load_warnings,
        })
    }

    pub fn get(&self, id: &str) -> Option<&Record> {
        self.records.get(id)
    }

    /// Records that a job's command is about to start; returns the attempt number.
    pub fn begin(&mut self, job: &Job, now: SystemTime) -> Result<u32, JournalError> {
        let previous = self.records.get(&job.id);
        let attempts = previous.map_or(0, |r| r.attempts) + 1;
        let rec = Record {
            id: job.id.clone(),
            job_type: job.kind.type_name().to_string(),
            state: RecordState::Running,
            attempts,
            job: Some(job.clone()),
            first_started_at: previous
                .and_then(|r| r.first_started_at.clone())
                .or_else(|| Some(crate::clock::rfc3339(now))),
            result: None,
            finished_unix: 0,
            delivered_unix: None,
        };
        self.store(rec)?;
        Ok(attempts)
    }

    /// Stores a job's result (to be delivered). Works with or without a running record
    /// (rejected jobs never ran).
    pub fn finish(&mut self, id: &str, job_type: &str, result: JobResult, now: SystemTime) -> Result<(), JournalError> {
        let previous = self.records.get(id);
        let rec = Record {
            id: id.to_string(),
            job_type: job_type.to_string(),
            state: RecordState::Done,
            attempts: result.attempts,
            job: None,
            first_started_at: previous.and_then(|r| r.first_started_at.clone()),
            result: Some(result),
            finished_unix: unix_secs(now),
            delivered_unix: None,
        };
        self.store(rec)
    }

    /// The store acknowledged the result.
    pub fn mark_delivered(&mut self, id: &str, now: SystemTime) -> Result<(), JournalError> {
        let Some(mut rec) = self.records.get(id).cloned() else {
            return Ok(());
        };
        rec.delivered_unix = Some(unix_secs(now));
        self.store(rec)
    }

    /// The store still lists a job it has a result for: send the result again.
    pub fn mark_undelivered(&mut self, id: &str) -> Result<(), JournalError> {
        let Some(mut rec) = self.records.get(id).cloned() else {
            return Ok(());
        };
        if rec.delivered_unix.is_none() {
            return Ok(());
        }
        rec.delivered_unix = None;
        self.store(rec)
    }

    /// Jobs whose command was started and never finished (a crash or kill), oldest first.
    pub fn interrupted(&self) -> Vec<Record> {
        let mut v: Vec<Record> = self
            .records
            .values()
            .filter(|r| r.state == RecordState::Running)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.first_started_at.cmp(&b.first_started_at));
        v
    }

    /// Results waiting for the store's acknowledgement, oldest first.
    pub fn undelivered(&self) -> Vec<(String, JobResult, u64)> {
        let mut v: Vec<_> = self
            .records
            .values()
            .filter(|r| r.state == RecordState::Done && !r.delivered())
            .filter_map(|r| r.result.clone().map(|res| (r.id.clone(), res, r.finished_unix)))
            .collect();
        v.sort_by_key(|(_, _, t)| *t);
        v
    }

    /// The most recently finished jobs, newest first.
    pub fn recent(&self, n: usize) -> Vec<&Record> {
        let mut v: Vec<&Record> = self.records.values().filter(|r| r.state == RecordState::Done).collect();
        v.sort_by(|a, b| b.finished_unix.cmp(&a.finished_unix).then_with(|| a.id.cmp(&b.id)));
        v.truncate(n);
        v
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Forgets delivered results older than [`RETENTION`], then the oldest delivered ones
    /// beyond [`MAX_COMPLETED`]; also removes `*.corrupt` files older than the retention.
    /// Undelivered results are never dropped. Returns how many records were removed.
    pub fn prune(&mut self, now: SystemTime) -> usize {
        let now_s = unix_secs(now);
        let horizon = now_s.saturating_sub(RETENTION.as_secs());
        let mut doomed: Vec<String> = self
            .records
            .values()
            .filter(|r| r.state == RecordState::Done && r.delivered() && r.finished_unix < horizon)
            .map(|r| r.id.clone())
            .collect();
        let done = self.records.values().filter(|r| r.state == RecordState::Done).count() - doomed.len();
        if done > MAX_COMPLETED {
            let mut rest: Vec<&Record> = self
                .records
                .values()
                .filter(|r| r.state == RecordState::Done && r.delivered() && r.finished_unix >= horizon)
                .collect();
            rest.sort_by_key(|r| r.finished_unix);
            doomed.extend(rest.iter().take(done - MAX_COMPLETED).map(|r| r.id.clone()));
        }
        for id in &doomed {
            let _ = fs::remove_file(self.path_of(id));
            self.records.remove(id);
        }
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|m| unix_secs(m) < horizon);
                if e.file_name().to_string_lossy().ends_with(".corrupt") && old {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        if !doomed.is_empty() {
            let _ = crate::fsutil::sync_dir(&self.dir);
        }
        doomed.len()
    }

    fn path_of(&self, id: &str) -> PathBuf {
        // Ids are validated (`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`) before they get here.
        self.dir.join(format!("{id}.json"))
    }

    fn store(&mut self, rec: Record) -> Result<(), JournalError> {
        let path = self.path_of(&rec.id);
        let bytes = serde_json::to_vec_pretty(&rec).expect("a record always serializes");
        crate::fsutil::write_atomic(&path, &bytes, 0o600).map_err(|source| JournalError::Write { path, source })?;
        self.records.insert(rec.id.clone(), rec);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::central::{JobKind, ResultStatus};
    use std::time::UNIX_EPOCH;

    fn job(id: &str) -> Job {
        Job {
            id: id.into(),
            kind: JobKind::InstallKey {
                activation_code: "A00000-K6QK03-KSG046-H6BK67-1GE201".into(),
            },
        }
    }

    fn result(attempts: u32) -> JobResult {
        JobResult {
            status: ResultStatus::Succeeded,
            exit_code: Some(0),
            output: "ok".into(),
            attempts,
            started_at: "2026-11-26T12:00:00Z".into(),
            finished_at: "2026-11-26T12:00:03Z".into(),
        }
    }

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn running_record_survives_reopen_and_counts_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.begin(&job("ord-1"), at(100)).unwrap(), 1);
        let j2 = Journal::open(dir.path()).unwrap();
        let interrupted = j2.interrupted();
        assert_eq!(interrupted.len(), 1);
        assert_eq!(interrupted[0].job, Some(job("ord-1")));
        let mut j2 = j2;
        assert_eq!(j2.begin(&job("ord-1"), at(200)).unwrap(), 2);
        #[cfg(unix)]
        {
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &fs::metadata(dir.path().join("jobs/ord-1.json")).unwrap().permissions(),
            );
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn finished_job_drops_the_activation_code_and_waits_for_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.begin(&job("ord-1"), at(100)).unwrap();
        j.finish("ord-1", "install_key", result(1), at(103)).unwrap();
        let on_disk = fs::read_to_string(dir.path().join("jobs/ord-1.json")).unwrap();
        assert!(!on_disk.contains("K6QK03"), "{on_disk}");
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.undelivered().len(), 1);
        assert!(j.interrupted().is_empty());
        let mut j = j;
        j.mark_delivered("ord-1", at(104)).unwrap();
        assert!(Journal::open(dir.path()).unwrap().undelivered().is_empty());
        j.mark_undelivered("ord-1").unwrap();
        assert_eq!(Journal::open(dir.path()).unwrap().undelivered().len(), 1);
    }

    #[test]
    fn prune_keeps_undelivered_and_recent_results() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        let day = 24 * 3600;
        j.finish("old-delivered", "retrieve_keys", result(1), at(day)).unwrap();
        j.mark_delivered("old-delivered", at(day)).unwrap();
        j.finish("old-undelivered", "retrieve_keys", result(1), at(day))
            .unwrap();
        j.finish("new", "retrieve_keys", result(1), at(40 * day)).unwrap();
        j.mark_delivered("new", at(40 * day)).unwrap();
        assert_eq!(j.prune(at(40 * day)), 1);
        assert!(j.get("old-delivered").is_none());
        assert!(j.get("old-undelivered").is_some());
        assert!(j.get("new").is_some());
        assert!(!dir.path().join("jobs/old-delivered.json").exists());
    }

    #[test]
    fn corrupt_record_is_set_aside_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        Journal::open(dir.path()).unwrap();
        fs::write(dir.path().join("jobs/bad.json"), b"{not json").unwrap();
        let j = Journal::open(dir.path()).unwrap();
        assert!(j.is_empty());
        assert_eq!(j.load_warnings.len(), 1);
        assert!(dir.path().join("jobs/bad.json.corrupt").exists());
    }
}
