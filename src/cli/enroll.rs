//! `enroll [--key-file F | --key-stdin] [--host-id ID]`: exchanges an enroll key for this
//! server's own token and push secret (contract 5.5), writes them, removes the key file.
//! A running daemon is then asked to poll at once, so it goes on without a restart.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{config_and_runtime, Outcome};
use crate::central::enroll::{self, EnrollFiles};
use crate::daemon::control::{self, ControlRequest};

pub fn run(config_path: &Path, key_file: Option<PathBuf>, key_stdin: bool, host_id: Option<String>) -> Outcome {
    let (cfg, rt) = match config_and_runtime(config_path) {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    let Some(mut files) = EnrollFiles::of(&cfg) else {
        return Outcome::fail(format!(
            "{}: [central] url is not an https:// store, so there is nothing to enroll with",
            cfg.path.display()
        ));
    };
    if let Some(h) = host_id {
        if !plesk_reseller_protocol::is_valid_host_id(&h) {
            return Outcome::fail(format!(
                "the host id {h:?} is not letters, digits and . _ - (first a letter or digit, at most 128)"
            ));
        }
        if h != files.host_id {
            tracing::warn!(
                "enrolling as {h}, but {} says host_id = {}; set [central] host_id = {h} there",
                cfg.path.display(),
                files.host_id
            );
        }
        files.host_id = h;
    }
    if !enroll::token_missing(&files.token_file) {
        return Outcome::fail(format!(
            "this agent already has a token in {}; remove it first to enroll again",
            files.token_file.display()
        ));
    }
    let (key, remove) = if key_stdin {
        let mut buf = Vec::new();
        if let Err(e) = std::io::stdin().take(4096).read_to_end(&mut buf) {
            return Outcome::fail(format!("cannot read the enroll key from stdin: {e}"));
        }
        match enroll::read_key_text(&buf) {
            Ok(k) => (k, None),
            Err(why) => return Outcome::fail(format!("the enroll key on stdin {why}")),
        }
    } else {
        let path = key_file.unwrap_or_else(|| files.key_file.clone());
        match enroll::read_key_file(&path) {
            Ok(k) => (k, Some(path)),
            Err(e) => return Outcome::fail(e),
        }
    };
    match rt.block_on(enroll::enroll(&files, &key, remove.as_deref())) {
        Ok(()) => {
            println!(
                "enrolled as {} at {}: token in {}, push secret in {}",
                files.host_id,
                files.base,
                files.token_file.display(),
                files.push_secret_file.display()
            );
            // A daemon waiting to enroll takes the token at its next poll: make it now.
            let _ = rt.block_on(control::ask(
                &cfg.agent.socket,
                ControlRequest::PollNow,
                super::CONTROL_TIMEOUT,
            ));
            Outcome::Success
        }
        Err(e) => Outcome::fail(e),
    }
}
