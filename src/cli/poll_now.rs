//! `poll-now`: asks the running daemon to poll at once.

use std::path::Path;

use super::{config_and_runtime, Outcome};
use crate::daemon::control::{self, ControlError, ControlRequest, Reply};

pub fn run(config_path: &Path) -> Outcome {
    let (cfg, rt) = match config_and_runtime(config_path) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    match rt.block_on(control::ask(
        &cfg.agent.socket,
        ControlRequest::PollNow,
        super::CONTROL_TIMEOUT,
    )) {
        Ok(Reply::PollNow) => Outcome::Success,
        Ok(Reply::Refused(why)) => Outcome::fail(why),
        Ok(other) => Outcome::fail(format!("the daemon answered {other:?} to poll-now")),
        Err(ControlError::NotRunning { .. }) => Outcome::NotRunning(Some(format!(
            "the daemon is not running (no answer on {}); start it with: systemctl start plesk-reseller-agent",
            cfg.agent.socket.display()
        ))),
        Err(e) => Outcome::fail(e),
    }
}
