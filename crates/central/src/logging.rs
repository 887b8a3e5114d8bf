//! Logging: to journald when stderr is the journal (systemd sets `JOURNAL_STREAM`), else
//! plain lines on stderr. `PLESK_RESELLER_CENTRAL_LOG` (error … trace) sets the level.

use std::os::unix::fs::MetadataExt;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::prelude::*;

pub const LEVEL_ENV: &str = "PLESK_RESELLER_CENTRAL_LOG";

fn stderr_is_journal() -> bool {
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

pub fn init(default: LevelFilter) {
    let level = std::env::var(LEVEL_ENV)
        .ok()
        .and_then(|v| v.parse::<LevelFilter>().ok())
        .unwrap_or(default);
    if stderr_is_journal() {
        if let Ok(layer) = tracing_journald::layer() {
            let layer = layer.with_syslog_identifier("plesk-reseller-central".into());
            let _ = tracing_subscriber::registry().with(layer.with_filter(level)).try_init();
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
