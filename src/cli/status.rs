//! `status [--json]`: the daemon's state, or the last persisted one when no daemon runs.

use std::path::Path;

use super::{fail, load_config, EXIT_FAILED, EXIT_NOT_RUNNING, EXIT_OK};
use crate::daemon::control::{self, ControlError, ControlRequest};
use crate::status::{self, Status};

pub fn run(config_path: &Path, json: bool) -> i32 {
    let cfg = match load_config(config_path) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let asked = super::runtime().map(|rt| {
        rt.block_on(control::request(
            &cfg.agent.socket,
            &ControlRequest::Status,
            super::CONTROL_TIMEOUT,
        ))
    });
    match asked {
        Ok(Ok(r)) if r.ok => match serde_json::from_value::<Status>(r.body) {
            Ok(s) => {
                print(&s, json);
                return exit_for(&s);
            }
            Err(e) => return fail(format!("the daemon's status could not be read: {e}")),
        },
        Ok(Ok(r)) => return fail(r.error.unwrap_or_else(|| "the daemon refused the request".into())),
        Ok(Err(ControlError::NotRunning { .. })) => {}
        Ok(Err(e)) => return fail(e),
        Err(e) => return fail(e),
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
    EXIT_NOT_RUNNING
}

pub(crate) fn print(s: &Status, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(s).expect("status serializes"));
    } else {
        print!("{}", s.render_text());
    }
}

pub(crate) fn exit_for(s: &Status) -> i32 {
    if s.health.is_ok() {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}
