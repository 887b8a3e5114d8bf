//! `run`: the daemon in the foreground.

use std::path::Path;

use super::{config_and_runtime, Outcome};
use crate::daemon::service;
use crate::engine::Deps;

pub fn run(config_path: &Path) -> Outcome {
    // One thread: the daemon waits on the network and on one child at a time, and a
    // current-thread runtime keeps its idle memory and CPU at almost nothing.
    let (cfg, rt) = match config_and_runtime(config_path) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    rt.block_on(async move {
        let signals = match service::os_signals() {
            Ok(s) => s,
            Err(e) => return Outcome::fail(format!("cannot install signal handlers: {e}")),
        };
        match service::run(config_path.to_path_buf(), cfg, Deps::real(), signals).await {
            Ok(()) => Outcome::Success,
            Err(e) => Outcome::fail(e),
        }
    })
}
