//! `poll-now`: asks the running daemon to poll at once.

use std::path::Path;

use super::{config_and_runtime, fail, EXIT_NOT_RUNNING, EXIT_OK};
use crate::daemon::control::{self, ControlError, ControlRequest};

pub fn run(config_path: &Path) -> i32 {
    let (cfg, rt) = match config_and_runtime(config_path) {
        Ok(x) => x,
        Err(code) => return code,
    };
    match rt.block_on(control::request(
        &cfg.agent.socket,
        &ControlRequest::PollNow,
        super::CONTROL_TIMEOUT,
    )) {
        Ok(r) if r.ok => EXIT_OK,
        Ok(r) => fail(r.error.unwrap_or_else(|| "the daemon refused the request".into())),
        Err(ControlError::NotRunning { .. }) => {
            eprintln!(
                "plesk-reseller-agent: the daemon is not running (no answer on {}); start it with: systemctl start plesk-reseller-agent",
                cfg.agent.socket.display()
            );
            EXIT_NOT_RUNNING
        }
        Err(e) => fail(e),
    }
}
