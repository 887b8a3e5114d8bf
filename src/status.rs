//! The agent's state as `status` shows it (contract section 8): one struct, printed as JSON
//! for machines and as a short table for people. The daemon serves it on its socket and
//! persists it to `state_dir/status.json`, which `status` prints when no daemon runs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub schema_version: u32,
    pub daemon: Daemon,
    pub health: Health,
    pub central: Central,
    pub push: Push,
    pub panel_ini: PanelIni,
    pub plesk: Plesk,
    pub jobs: Jobs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Daemon {
    pub running: bool,
    pub pid: Option<u32>,
    pub version: String,
    pub started_at: Option<String>,
    pub uptime_s: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: String,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Central {
    pub url: Option<String>,
    /// `http`, `spool` or `none`.
    pub transport: String,
    pub last_poll_at: Option<String>,
    pub last_poll_ok: Option<bool>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    /// The connection's state: `idle`, `healthy`, `backing_off`, `auth_failing`, `unknown_host`, `enrolling`.
    #[serde(default)]
    pub state: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Push {
    pub listen: Option<String>,
    pub accepted: u64,
    pub rejected: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PanelIni {
    pub path: String,
    pub in_sync: bool,
    pub repairs: u64,
    pub last_repair_at: Option<String>,
    pub buy_url: KeyStatus,
    pub catalog_url: KeyStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyStatus {
    pub desired: Option<String>,
    pub actual: Option<String>,
    /// `central`, `local` or `none`.
    pub source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plesk {
    pub key_number: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Jobs {
    pub running: Option<String>,
    pub undelivered_results: u64,
    pub recent: Vec<RecentJob>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentJob {
    pub id: String,
    #[serde(rename = "type")]
    pub job_type: String,
    pub status: String,
    pub finished_at: Option<String>,
    pub attempts: u32,
}

impl Health {
    pub fn from_problems(problems: Vec<String>) -> Health {
        let status = if problems.is_empty() { "ok" } else { "degraded" };
        Health {
            status: status.into(),
            problems,
        }
    }

    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

/// Where the last known state is kept for `status` when no daemon runs.
pub fn persisted_path(state_dir: &Path) -> PathBuf {
    state_dir.join("status.json")
}

/// Writes the state for a later `status` (mode 0600, atomically).
pub fn persist(state_dir: &Path, status: &Status) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(status).expect("status always serializes");
    crate::fsutil::write_atomic(&persisted_path(state_dir), &bytes, 0o600)
}

/// Reads the persisted state, if any.
pub fn load_persisted(state_dir: &Path) -> Option<Status> {
    let bytes = crate::fsutil::read_capped(&persisted_path(state_dir), 4 * 1024 * 1024).ok()??;
    serde_json::from_slice(&bytes).ok()
}

fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

impl Status {
    /// The view for a person: what is wrong first, then one line per part.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        self.daemon.render(&mut s);
        self.health.render(&mut s);
        self.central.render(&mut s);
        self.push.render(&mut s);
        self.panel_ini.render(&mut s);
        let _ = writeln!(
            s,
            "plesk:      key {}, version {}",
            or_dash(&self.plesk.key_number),
            or_dash(&self.plesk.version)
        );
        self.jobs.render(&mut s);
        s
    }
}

// The parts of [`Status::render_text`], each appending its lines.

impl Daemon {
    fn render(&self, s: &mut String) {
        if self.running {
            let _ = writeln!(
                s,
                "daemon:     running (pid {}, version {}, up {}s)",
                self.pid.map_or("-".into(), |p| p.to_string()),
                self.version,
                self.uptime_s.unwrap_or(0)
            );
        } else {
            let _ = writeln!(
                s,
                "daemon:     not running (start it with: systemctl start plesk-reseller-agent); last known state below"
            );
        }
    }
}

impl Health {
    fn render(&self, s: &mut String) {
        let _ = writeln!(s, "health:     {}", self.status);
        for p in &self.problems {
            let _ = writeln!(s, "  problem:  {p}");
        }
    }
}

impl Central {
    fn render(&self, s: &mut String) {
        let _ = writeln!(s, "central:    {} ({})", or_dash(&self.url), self.transport);
        let _ = writeln!(
            s,
            "  last poll: {} {}{}",
            or_dash(&self.last_poll_at),
            match self.last_poll_ok {
                Some(true) => "ok",
                Some(false) => "FAILED",
                None => "",
            },
            if self.consecutive_failures > 0 {
                format!(
                    " ({} failures in a row: {})",
                    self.consecutive_failures,
                    or_dash(&self.last_error)
                )
            } else {
                String::new()
            }
        );
    }
}

impl Push {
    fn render(&self, s: &mut String) {
        if let Some(l) = &self.listen {
            let _ = writeln!(
                s,
                "push:       {l} (accepted {}, rejected {})",
                self.accepted, self.rejected
            );
        }
    }
}

impl PanelIni {
    fn render(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "panel.ini:  {} ({}, {} repair{}{})",
            self.path,
            if self.in_sync { "in sync" } else { "NOT in sync" },
            self.repairs,
            if self.repairs == 1 { "" } else { "s" },
            self.last_repair_at
                .as_ref()
                .map_or(String::new(), |t| format!(", last {t}"))
        );
        for (name, k) in [("buyUrl", &self.buy_url), ("catalog.url", &self.catalog_url)] {
            let _ = writeln!(
                s,
                "  {name:<12} desired {} ({}), actual {}",
                or_dash(&k.desired),
                k.source,
                or_dash(&k.actual)
            );
        }
    }
}

impl Jobs {
    fn render(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "jobs:       running {}, undelivered results {}",
            or_dash(&self.running),
            self.undelivered_results
        );
        for r in &self.recent {
            let _ = writeln!(
                s,
                "  {:<24} {:<14} {:<10} {} (attempts {})",
                r.id,
                r.job_type,
                r.status,
                or_dash(&r.finished_at),
                r.attempts
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        Status {
            schema_version: SCHEMA_VERSION,
            daemon: Daemon {
                running: true,
                pid: Some(7),
                version: "0.1.0".into(),
                started_at: None,
                uptime_s: Some(3),
            },
            health: Health::from_problems(vec![]),
            central: Central {
                url: None,
                transport: "none".into(),
                last_poll_at: None,
                last_poll_ok: None,
                consecutive_failures: 0,
                last_error: None,
                state: "idle".into(),
            },
            push: Push::default(),
            panel_ini: PanelIni {
                path: "/p".into(),
                in_sync: true,
                repairs: 0,
                last_repair_at: None,
                buy_url: KeyStatus {
                    desired: None,
                    actual: None,
                    source: "none".into(),
                },
                catalog_url: KeyStatus {
                    desired: None,
                    actual: None,
                    source: "none".into(),
                },
            },
            plesk: Plesk::default(),
            jobs: Jobs::default(),
        }
    }

    #[test]
    fn json_has_the_contract_field_names() {
        let v = serde_json::to_value(sample()).unwrap();
        for path in [
            "/schema_version",
            "/daemon/running",
            "/daemon/uptime_s",
            "/health/status",
            "/health/problems",
            "/central/last_poll_ok",
            "/central/consecutive_failures",
            "/push/accepted",
            "/panel_ini/buy_url/source",
            "/panel_ini/last_repair_at",
            "/plesk/key_number",
            "/jobs/undelivered_results",
            "/jobs/recent",
        ] {
            assert!(v.pointer(path).is_some(), "missing {path}");
        }
        assert_eq!(v["health"]["status"], "ok");
    }

    #[test]
    fn degraded_when_problems() {
        assert_eq!(Health::from_problems(vec!["x".into()]).status, "degraded");
    }
}
