//! `catalog-proxy`: the Extension Catalog whitelist proxy in the foreground (its own unit).

use std::path::Path;

use super::Outcome;
use crate::catalog_proxy;
use crate::systemd;

pub fn run(config_path: &Path) -> Outcome {
    let cfg = match catalog_proxy::config::load(config_path) {
        Ok(c) => c,
        Err(e) => return Outcome::fail(e),
    };
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    // One thread serves everything: answers come from memory, and parsing and gzip of
    // large bodies run on the blocking pool.
    let rt = match super::runtime() {
        Ok(r) => r,
        Err(e) => return Outcome::fail(e),
    };
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => return Outcome::fail(format!("cannot install signal handlers: {e}")),
        };
        let running = match catalog_proxy::start(cfg).await {
            Ok(r) => r,
            Err(e) => return Outcome::fail(e),
        };
        tracing::info!(
            listen = %running.addr,
            upstream = %running.proxy.config.upstream,
            allow = running.proxy.allow.current().codes.len(),
            "catalog proxy serving"
        );
        systemd::ready();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        systemd::stopping();
        running.stop().await;
        Outcome::Success
    })
}
