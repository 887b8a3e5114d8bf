//! Logging: to journald with structured fields when stderr is the journal (systemd sets
//! `JOURNAL_STREAM` to stderr's device and inode), else plain lines on stderr.
//! `PLESK_RESELLER_AGENT_LOG` (error, warn, info, debug, trace) sets the level.
//! On Windows: plain lines on stderr in the console, and the service logs to a rotating file
//! ([`init_file`], `platform::windows::logfile`).

#[cfg(unix)]
use std::os::unix::fs::MetadataExt;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::prelude::*;

pub const LEVEL_ENV: &str = "PLESK_RESELLER_AGENT_LOG";

/// True when stderr is connected to the journal.
#[cfg(unix)]
pub fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let v = v.to_string_lossy();
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(meta.dev()) && ino.parse::<u64>().ok() == Some(meta.ino())
}

/// There is no journal on Windows.
#[cfg(windows)]
pub fn stderr_is_journal() -> bool {
    false
}

fn level(default: LevelFilter) -> LevelFilter {
    std::env::var(LEVEL_ENV)
        .ok()
        .and_then(|v| v.parse::<LevelFilter>().ok())
        .unwrap_or(default)
}

/// Windows service: lines with their time to `path`, rotated at 5 MiB (3 old files kept).
#[cfg(windows)]
pub fn init_file(path: &std::path::Path, default: LevelFilter) {
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(crate::platform::windows::logfile::RotatingFile::new(path.to_path_buf()))
        .with_target(false)
        .with_ansi(false);
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(level(default)))
        .try_init();
}

/// Installs the global subscriber; `default` is the level when the environment sets none.
pub fn init(default: LevelFilter) {
    let level = level(default);
    #[cfg(unix)]
    if stderr_is_journal() {
        if let Ok(layer) = tracing_journald::layer() {
            let _ = tracing_subscriber::registry()
                .with(
                    layer
                        .with_syslog_identifier("plesk-reseller-agent".into())
                        .with_filter(level),
                )
                .try_init();
            return;
        }
    }
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .without_time();
    let _ = tracing_subscriber::registry().with(fmt.with_filter(level)).try_init();
}
