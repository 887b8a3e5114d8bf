//! `status [--json]`: the daemon's state, or the last persisted one when no daemon runs.

use std::path::Path;

use super::{load_config, Outcome};
use crate::daemon::control::{self, ControlError, ControlRequest, Reply};
use crate::status::{self, Status};

pub fn run(config_path: &Path, json: bool) -> Outcome {
    let cfg = match load_config(config_path) {
        Ok(c) => c,
        Err(e) => return Outcome::fail(e),
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(e) => return Outcome::fail(e),
    };
    match rt.block_on(control::ask(
        &cfg.agent.socket,
        ControlRequest::Status,
        super::CONTROL_TIMEOUT,
    )) {
        Ok(Reply::Status(s)) => {
            print(&s, json);
            return outcome_for(&s);
        }
        Ok(Reply::Refused(why)) => return Outcome::fail(why),
        Ok(other) => return Outcome::fail(format!("the daemon answered {other:?} to a status request")),
        Err(ControlError::NotRunning { .. }) => {}
        Err(e) => return Outcome::fail(e),
    }
    // No daemon: the last persisted state.
    match status::load_persisted(&cfg.agent.state_dir) {
        Some(mut s) => {
            s.daemon.running = false;
            s.daemon.pid = None;
            s.daemon.uptime_s = None;
            print(&s, json);
        }
        None => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"schema_version": 1, "daemon": {"running": false}})
                );
            } else {
                println!(
                    "daemon:     not running (start it with: systemctl start plesk-reseller-agent); no state saved yet"
                );
            }
        }
    }
    Outcome::NotRunning(None)
}

pub(crate) fn print(s: &Status, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(s).expect("status serializes"));
    } else {
        print!("{}", s.render_text());
    }
}

/// Healthy or degraded; the printed status already says why.
pub(crate) fn outcome_for(s: &Status) -> Outcome {
    if s.health.is_ok() {
        Outcome::Success
    } else {
        Outcome::Failure(Vec::new())
    }
}
