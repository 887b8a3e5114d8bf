//! The Linux side of the platform layer: what the agent always did, moved here unchanged.

use std::path::{Path, PathBuf};

/// The config file when neither `--config` nor the environment names one.
pub const CONFIG_PATH: &str = "/etc/plesk-reseller-agent/agent.ini";
pub const PLESK_COMMAND: &str = "/usr/sbin/plesk";
pub const TOKEN_FILE: &str = "/etc/plesk-reseller-agent/token";
pub const ENROLL_KEY_FILE: &str = "/etc/plesk-reseller-agent/enroll.key";
pub const PUSH_SECRET_FILE: &str = "/etc/plesk-reseller-agent/push.secret";
pub const STATE_DIR: &str = "/var/lib/plesk-reseller-agent";
pub const CONTROL_SOCKET: &str = "/run/plesk-reseller-agent/agent.sock";
/// `plesk bin license …` and `plesk bin keyinfo --list`.
pub const LICENSE_UTILITY: &str = "license";
pub const KEYINFO_LIST: [&str; 3] = ["bin", "keyinfo", "--list"];

/// The host's name, the default host id.
pub fn hostname() -> Option<String> {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok())
}

/// PRODUCT_ROOT_D from psa.conf + `/admin/conf/panel.ini`, else `/usr/local/psa/…`.
pub fn default_panel_ini(psa_conf: &Path) -> PathBuf {
    let root = std::fs::read_to_string(psa_conf)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut parts = line.split_whitespace();
                (parts.next() == Some("PRODUCT_ROOT_D"))
                    .then(|| parts.next().map(str::to_string))
                    .flatten()
            })
        })
        .filter(|r| r.starts_with('/'))
        .unwrap_or_else(|| "/usr/local/psa".to_string());
    Path::new(&root).join("admin/conf/panel.ini")
}
