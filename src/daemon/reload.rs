//! Reload (SIGHUP): re-read the config, keep the old one on error, hand the new one to the
//! engine once it is free.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::config::{self, Config, HostFacts};
use crate::engine::{self};

use super::shared::Shared;

/// Largest push secret read.
const MAX_SECRET: u64 = 64 * 1024;

pub(super) fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    match crate::fsutil::read_capped(path, MAX_SECRET) {
        Ok(Some(b)) => {
            let s = b.trim_ascii_end().to_vec();
            if s.is_empty() {
                Err(format!("the push secret file {} is empty", path.display()))
            } else {
                Ok(s)
            }
        }
        Ok(None) => Err(format!("the push secret file {} does not exist", path.display())),
        Err(e) => Err(format!("cannot read the push secret file {}: {e}", path.display())),
    }
}

/// Re-reads the config; on error the old one stays in force. Returns the new config and
/// transport for the engine. The panel keeper takes the new local values at once, so
/// panel.ini follows without waiting for a job that holds the engine.
pub(super) fn reload(
    config_path: &Path,
    shared: &Arc<Shared>,
    secret: &Arc<RwLock<Vec<u8>>>,
) -> Option<(Config, Option<Arc<dyn crate::central::Transport>>)> {
    let cfg = match config::load(config_path, &HostFacts::real()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("reload refused, the previous config stays in force: {e}");
            return None;
        }
    };
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let transport = match engine::transport_for(&cfg) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("reload refused, the previous config stays in force: {e}");
            return None;
        }
    };
    if cfg.push.listen.is_some() {
        match read_secret(&cfg.push.secret_file) {
            Ok(s) => *secret.write().unwrap() = s,
            Err(e) => tracing::error!("keeping the previous push secret: {e}"),
        }
    }
    {
        let mut p = shared.panel.lock().unwrap();
        p.set_local(
            cfg.panel.ini_path.clone(),
            cfg.panel.buy_url.clone(),
            cfg.panel.catalog_url.clone(),
        );
        p.reconcile(shared.clock.now());
    }
    Some((cfg, transport))
}

/// Gives the engine a reloaded config once it is free, then polls with it.
pub(super) async fn reload_engine(
    shared: Arc<Shared>,
    cfg: Config,
    transport: Option<Arc<dyn crate::central::Transport>>,
    config_path: PathBuf,
) {
    let mut engine = shared.engine.lock().await;
    let old = engine.config().clone();
    for (what, changed) in [
        ("[push] listen", old.push.listen != cfg.push.listen),
        ("[agent] socket", old.agent.socket != cfg.agent.socket),
        ("[agent] state_dir", old.agent.state_dir != cfg.agent.state_dir),
    ] {
        if changed {
            tracing::warn!("{what} changed; it takes effect at the next restart");
        }
    }
    engine.reload(cfg, transport);
    engine.reconcile_panel_ini();
    *shared.snapshot.lock().unwrap() = engine.view();
    drop(engine);
    shared.wake.notify_one();
    shared.publish();
    tracing::info!(path = %config_path.display(), "config reloaded");
}
