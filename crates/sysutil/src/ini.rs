//! The INI rules every config of ours shares (the agent's `agent.ini`, the catalog proxy's
//! `[catalog_proxy]` section): how a file is read and parsed, and the value rules (inline
//! comments, whole seconds, absolute paths, http:// only on loopback). Each product checks
//! its own sections and keys; errors name the file, section and key.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest config file read.
const MAX_CONFIG: u64 = 256 * 1024;

/// What is wrong with a config file; every variant names the file (and the key at fault).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Syntax { path: PathBuf, reason: String },
    #[error("{path}: [{section}] {key} = {value:?}: {reason}")]
    Value {
        path: PathBuf,
        section: String,
        key: String,
        value: String,
        reason: String,
    },
}

/// Reads a config file as text (capped; the agent and the catalog proxy share the format).
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    let bytes = crate::fsutil::read_capped(path, MAX_CONFIG)
        .map_err(|e| ConfigError::Read {
            path: path.into(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| ConfigError::Read {
            path: path.into(),
            reason: "no such file".into(),
        })?;
    String::from_utf8(bytes).map_err(|_| ConfigError::Syntax {
        path: path.into(),
        reason: "not UTF-8 text".into(),
    })
}

/// Parses INI text the way every config of ours is read: rust-ini with quotes and escapes
/// off (backslashes stay as written), a BOM ignored.
pub fn parse_ini(path: &Path, text: &str) -> Result<ini::Ini, ConfigError> {
    let opt = ini::ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        ..Default::default()
    };
    ini::Ini::load_from_str_opt(text.trim_start_matches('\u{feff}'), opt).map_err(|e| ConfigError::Syntax {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// Drops a trailing `; comment` (`;` at the start or after whitespace) and surrounding
/// whitespace: rust-ini with quotes off keeps inline comments in the value.
pub fn clean_value(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let end = (0..bytes.len())
        .find(|&i| bytes[i] == b';' && (i == 0 || bytes[i - 1].is_ascii_whitespace()))
        .unwrap_or(bytes.len());
    raw[..end].trim().to_string()
}

/// Whole seconds from `min` to `max`.
pub fn whole_seconds(v: &str, min: u64, max: u64) -> Result<Duration, String> {
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Duration::from_secs(n)),
        _ => Err(format!("expected whole seconds from {min} to {max}")),
    }
}

/// An absolute path, as given.
pub fn absolute(v: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(v);
    if p.is_absolute() {
        Ok(p)
    } else {
        Err("must be an absolute path".into())
    }
}

/// Why a plain `http://` URL to another host is refused.
pub const HTTP_LOOPBACK_ONLY: &str =
    "http:// is accepted only for loopback hosts (127.0.0.0/8, ::1, localhost); use https://";

/// `localhost` or a loopback address (without brackets).
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
