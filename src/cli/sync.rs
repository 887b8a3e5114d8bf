//! `sync`: one full pass. When a daemon runs, it does the pass and this waits for it.

use std::path::Path;
use std::time::Duration;

use super::{config_and_runtime, fail, EXIT_FAILED, EXIT_OK};
use crate::daemon::control::{self, ControlRequest};
use crate::engine::{Deps, Engine};

pub fn run(config_path: &Path) -> i32 {
    let (cfg, rt) = match config_and_runtime(config_path) {
        Ok(x) => x,
        Err(code) => return code,
    };
    rt.block_on(async move {
        // A running daemon does the pass itself; two writers of one journal could run a job twice.
        let lock_path = cfg.agent.state_dir.join("agent.lock");
        if let Err(e) = crate::fsutil::ensure_private_dir(&cfg.agent.state_dir, 0o700) {
            return fail(format!(
                "cannot use the state directory {}: {e}",
                cfg.agent.state_dir.display()
            ));
        }
        let _lock = match crate::fsutil::try_lock(&lock_path, &format!("{} sync\n", std::process::id())) {
            Ok(Some(l)) => l,
            Ok(None) => return via_daemon(&cfg.agent.socket).await,
            Err(e) => return fail(format!("cannot lock {}: {e}", lock_path.display())),
        };
        let state_dir = cfg.agent.state_dir.clone();
        let mut engine = match Engine::new(cfg, Deps::real()) {
            Ok(e) => e,
            Err(e) => return fail(e),
        };
        engine.refresh_plesk_facts().await;
        let outcome = engine.pass(None).await;
        let _ = crate::status::persist(&state_dir, &engine.status());
        if outcome.ok() {
            EXIT_OK
        } else {
            for f in &outcome.failures {
                eprintln!("plesk-reseller-agent: {f}");
            }
            EXIT_FAILED
        }
    })
}

/// Asks the running daemon for the pass and waits for it.
async fn via_daemon(socket: &Path) -> i32 {
    match control::request(socket, &ControlRequest::Sync, Duration::from_secs(24 * 3600)).await {
        Ok(r) => {
            let failures = r
                .body
                .get("failures")
                .and_then(|f| f.as_array())
                .cloned()
                .unwrap_or_default();
            for f in &failures {
                eprintln!("plesk-reseller-agent: {}", f.as_str().unwrap_or_default());
            }
            if let Some(e) = r.error {
                eprintln!("plesk-reseller-agent: {e}");
            }
            if r.ok {
                EXIT_OK
            } else {
                EXIT_FAILED
            }
        }
        Err(e) => fail(format!(
            "the state directory is locked by another agent process, and it did not take the request: {e}"
        )),
    }
}
