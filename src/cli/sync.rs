//! `sync`: one full pass. When a daemon runs, it does the pass and this waits for it.

use std::path::Path;
use std::time::Duration;

use super::{config_and_runtime, Outcome};
use crate::daemon::control::{self, ControlRequest, Reply};
use crate::engine::{DaemonFacts, Deps, Engine};

pub fn run(config_path: &Path) -> Outcome {
    let (cfg, rt) = match config_and_runtime(config_path) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    rt.block_on(async move {
        // A running daemon does the pass itself; two writers of one journal could run a job twice.
        let lock_path = cfg.agent.state_dir.join("agent.lock");
        if let Err(e) = crate::fsutil::ensure_private_dir(&cfg.agent.state_dir, 0o700) {
            return Outcome::fail(format!(
                "cannot use the state directory {}: {e}",
                cfg.agent.state_dir.display()
            ));
        }
        let _lock = match crate::fsutil::try_lock(&lock_path, &format!("{} sync\n", std::process::id())) {
            Ok(Some(l)) => l,
            Ok(None) => return via_daemon(&cfg.agent.socket).await,
            Err(e) => return Outcome::fail(format!("cannot lock {}: {e}", lock_path.display())),
        };
        let state_dir = cfg.agent.state_dir.clone();
        let mut engine = match Engine::new(cfg, Deps::real()) {
            Ok(e) => e,
            Err(e) => return Outcome::fail(e),
        };
        engine.refresh_plesk_facts().await;
        let outcome = engine.pass(None).await;
        let _ = crate::status::persist(&state_dir, &engine.status(&DaemonFacts::default()));
        if outcome.ok() {
            Outcome::Success
        } else {
            Outcome::Failure(outcome.failures)
        }
    })
}

/// Asks the running daemon for the pass and waits for it.
async fn via_daemon(socket: &Path) -> Outcome {
    match control::ask(socket, ControlRequest::Sync, Duration::from_secs(24 * 3600)).await {
        Ok(Reply::Sync(r)) if r.failures.is_empty() => Outcome::Success,
        Ok(Reply::Sync(r)) => Outcome::Failure(r.failures),
        Ok(Reply::Refused(why)) => Outcome::fail(why),
        Ok(other) => Outcome::fail(format!("the daemon answered {other:?} to sync")),
        Err(e) => Outcome::fail(format!(
            "the state directory is locked by another agent process, and it did not take the request: {e}"
        )),
    }
}
