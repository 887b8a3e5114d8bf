//! `sync`: one full pass. When a daemon runs, it does the pass and this waits for it.

use std::path::Path;

use super::{fail, load_config, runtime, EXIT_FAILED, EXIT_OK};
use crate::engine::{Deps, Engine};

pub fn run(config_path: &Path) -> i32 {
    let cfg = match load_config(config_path) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let rt = match runtime() {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    rt.block_on(async move {
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
