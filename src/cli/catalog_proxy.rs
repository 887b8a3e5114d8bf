//! `catalog-proxy`: the Extension Catalog whitelist proxy in the foreground (its own unit).
//! The proxy is the plesk-catalog-proxy crate; this only maps its result to an exit status.

use std::path::Path;

use super::Outcome;

pub fn run(config_path: &Path) -> Outcome {
    match plesk_catalog_proxy::run(config_path) {
        Ok(()) => Outcome::Success,
        Err(e) => Outcome::fail(e),
    }
}
