//! `agent.ini` → typed settings (contract section 3). Read with rust-ini, escapes off
//! (Windows-style backslashes stay as written); every error names the file, section and key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plesk_reseller_protocol::is_valid_host_id;
use plesk_sysutil::ini::{absolute, clean_value, is_loopback_host, whole_seconds, HTTP_LOOPBACK_ONLY};
pub use plesk_sysutil::ini::{parse_ini, read_text, ConfigError};

/// Where the config is looked for when neither `--config` nor the environment says.
pub const DEFAULT_PATH: &str = crate::platform::CONFIG_PATH;
/// Environment variable overriding [`DEFAULT_PATH`].
pub const ENV_VAR: &str = "PLESK_RESELLER_AGENT_CONFIG";
/// Plesk's own configuration, naming PRODUCT_ROOT_D.
pub const PSA_CONF: &str = "/etc/psa/psa.conf";

/// Every key the agent knows, by section; anything else is reported, never used.
const KNOWN: &[(&str, &[&str])] = &[
    (
        "central",
        &[
            "url",
            "host_id",
            "token_file",
            "enroll_key_file",
            "poll_interval",
            "long_poll",
        ],
    ),
    ("panel", &["ini_path", "buy_url", "catalog_url"]),
    ("plesk", &["command", "timeout"]),
    ("push", &["listen", "secret_file"]),
    ("agent", &["state_dir", "socket"]),
];

/// Where the store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CentralUrl {
    /// No store: local settings only.
    None,
    /// `https://…`, or `http://` on a loopback host; without a trailing slash.
    Http(String),
    /// `file:///dir`: the spool transport.
    Spool(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Central {
    pub url: CentralUrl,
    pub host_id: String,
    pub token_file: PathBuf,
    /// Used only while `token_file` is missing or empty (contract 5.5).
    pub enroll_key_file: PathBuf,
    pub poll_interval: Duration,
    /// Zero disables long-poll.
    pub long_poll: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panel {
    pub ini_path: PathBuf,
    pub buy_url: Option<String>,
    pub catalog_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PleskCfg {
    pub command: PathBuf,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub listen: Option<SocketAddr>,
    pub secret_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCfg {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    pub central: Central,
    pub panel: Panel,
    pub plesk: PleskCfg,
    pub push: Push,
    pub agent: AgentCfg,
    /// Unknown sections and keys, duplicate keys: one sentence each, for `check` and the log.
    pub warnings: Vec<String>,
}

/// Facts about the host the defaults depend on; tests replace them.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub psa_conf: PathBuf,
    pub hostname: Option<String>,
}

impl HostFacts {
    pub fn real() -> Self {
        HostFacts {
            psa_conf: PathBuf::from(PSA_CONF),
            hostname: crate::platform::hostname(),
        }
    }
}

/// The config path: `--config`, else `$PLESK_RESELLER_AGENT_CONFIG`, else [`DEFAULT_PATH`].
pub fn resolve_path(cli: Option<&Path>) -> PathBuf {
    if let Some(p) = cli {
        return p.to_path_buf();
    }
    match std::env::var_os(ENV_VAR) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_PATH),
    }
}

/// Reads and checks the config file.
pub fn load(path: &Path, facts: &HostFacts) -> Result<Config, ConfigError> {
    parse(path, &read_text(path)?, facts)
}

/// Parses config text; `path` is only used in messages and to resolve nothing else.
pub fn parse(path: &Path, text: &str, facts: &HostFacts) -> Result<Config, ConfigError> {
    let ini = parse_ini(path, text)?;
    let (v, warnings) = Values::collect(path, &ini);
    Ok(Config {
        path: path.into(),
        central: central(&v, facts)?,
        panel: Panel {
            ini_path: match v.get("panel", "ini_path") {
                Some(_) => v.absolute("panel", "ini_path", "")?,
                None => default_panel_ini(&facts.psa_conf),
            },
            buy_url: v.get("panel", "buy_url"),
            catalog_url: v.get("panel", "catalog_url"),
        },
        plesk: PleskCfg {
            command: v.absolute("plesk", "command", crate::platform::PLESK_COMMAND)?,
            timeout: v.seconds("plesk", "timeout", 300, 1, 86_400)?,
        },
        push: Push {
            listen: match v.get("push", "listen") {
                None => None,
                Some(s) => Some(
                    s.parse::<SocketAddr>()
                        .map_err(|_| v.bad("push", "listen", &s, "expected address:port, e.g. 0.0.0.0:8787"))?,
                ),
            },
            secret_file: v.path("push", "secret_file", crate::platform::PUSH_SECRET_FILE),
        },
        agent: AgentCfg {
            state_dir: v.absolute("agent", "state_dir", crate::platform::STATE_DIR)?,
            socket: v.absolute("agent", "socket", crate::platform::CONTROL_SOCKET)?,
        },
        warnings,
    })
}

/// The `[central]` section; the host id defaults to the hostname when that is usable.
fn central(v: &Values, facts: &HostFacts) -> Result<Central, ConfigError> {
    let url = match v.get("central", "url") {
        None => CentralUrl::None,
        Some(s) => parse_central_url(&s).map_err(|r| v.bad("central", "url", &s, &r))?,
    };
    let host_id = match v.get("central", "host_id") {
        Some(h) if is_valid_host_id(&h) => h,
        Some(h) => {
            return Err(v.bad(
                "central",
                "host_id",
                &h,
                "use letters, digits, '.', '_' and '-', starting with a letter or digit (at most 128)",
            ))
        }
        None => match facts.hostname.clone().unwrap_or_default() {
            h if is_valid_host_id(&h) => h,
            _ => {
                return Err(v.bad(
                    "central",
                    "host_id",
                    "",
                    "empty, and the hostname is not usable as a host id; set it",
                ))
            }
        },
    };
    Ok(Central {
        url,
        host_id,
        token_file: v.path("central", "token_file", crate::platform::TOKEN_FILE),
        enroll_key_file: v.path("central", "enroll_key_file", crate::platform::ENROLL_KEY_FILE),
        poll_interval: v.seconds("central", "poll_interval", 60, 1, 86_400)?,
        long_poll: v.seconds("central", "long_poll", 25, 0, 3_600)?,
    })
}

/// The known keys' values (comments removed), and the file they came from for messages.
struct Values<'a> {
    path: &'a Path,
    map: std::collections::HashMap<(String, String), String>,
}

impl<'a> Values<'a> {
    /// Takes the known keys; unknown sections and keys, keys outside a section and repeated
    /// keys become warnings.
    fn collect(path: &'a Path, ini: &ini::Ini) -> (Values<'a>, Vec<String>) {
        let mut warnings = Vec::new();
        let mut map: std::collections::HashMap<(String, String), String> = Default::default();
        for (section, props) in ini.iter() {
            let Some(section) = section else {
                for (key, _) in props.iter() {
                    warnings.push(format!(
                        "{}: key {key:?} outside any section is ignored",
                        path.display()
                    ));
                }
                continue;
            };
            let known = KNOWN.iter().find(|(s, _)| *s == section);
            for (key, value) in props.iter() {
                match known {
                    None => warnings.push(format!("{}: unknown section [{section}] is ignored", path.display())),
                    Some((_, keys)) if !keys.contains(&key) => {
                        warnings.push(format!("{}: unknown key [{section}] {key} is ignored", path.display()))
                    }
                    Some(_) => {
                        let k = (section.to_string(), key.to_string());
                        if map.insert(k, clean_value(value)).is_some() {
                            warnings.push(format!(
                                "{}: [{section}] {key} is set more than once; the last one is used",
                                path.display()
                            ));
                        }
                    }
                }
            }
            if known.is_none() && props.is_empty() {
                warnings.push(format!("{}: unknown section [{section}] is ignored", path.display()));
            }
        }
        warnings.dedup();
        (Values { path, map }, warnings)
    }

    /// A non-empty value.
    fn get(&self, s: &str, k: &str) -> Option<String> {
        self.map
            .get(&(s.to_string(), k.to_string()))
            .filter(|v| !v.is_empty())
            .cloned()
    }

    fn bad(&self, s: &str, k: &str, v: &str, reason: &str) -> ConfigError {
        ConfigError::Value {
            path: self.path.into(),
            section: s.into(),
            key: k.into(),
            value: v.into(),
            reason: reason.into(),
        }
    }

    fn seconds(&self, s: &str, k: &str, default: u64, min: u64, max: u64) -> Result<Duration, ConfigError> {
        match self.get(s, k) {
            None => Ok(Duration::from_secs(default)),
            Some(v) => whole_seconds(&v, min, max).map_err(|r| self.bad(s, k, &v, &r)),
        }
    }

    /// A path, as given, or `default`.
    fn path(&self, s: &str, k: &str, default: &str) -> PathBuf {
        self.get(s, k).map_or_else(|| default.into(), PathBuf::from)
    }

    /// An absolute path, or `default`.
    fn absolute(&self, s: &str, k: &str, default: &str) -> Result<PathBuf, ConfigError> {
        match self.get(s, k) {
            Some(v) => absolute(&v).map_err(|r| self.bad(s, k, &v, &r)),
            None => Ok(default.into()),
        }
    }
}

fn parse_central_url(v: &str) -> Result<CentralUrl, String> {
    if let Some(rest) = v.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err("a spool URL must be file:///absolute/dir".into());
        }
        return Ok(CentralUrl::Spool(PathBuf::from(rest)));
    }
    let (scheme, rest) = v
        .split_once("://")
        .ok_or("expected https://…, http:// on a loopback host, or file:///dir")?;
    if rest.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("not a valid URL".into());
    }
    if rest.contains('?') || rest.contains('#') {
        return Err("must not have a query or fragment".into());
    }
    let base = v.trim_end_matches('/').to_string();
    match scheme {
        "https" => {
            host_of(rest).ok_or("has no host")?;
            Ok(CentralUrl::Http(base))
        }
        "http" => {
            let host = host_of(rest).ok_or("has no host")?;
            if is_loopback_host(&host) {
                Ok(CentralUrl::Http(base))
            } else {
                Err(HTTP_LOOPBACK_ONLY.into())
            }
        }
        _ => Err("expected https://…, http:// on a loopback host, or file:///dir".into()),
    }
}

/// The host of `host[:port]/path` (brackets removed for IPv6); None when empty or with userinfo.
fn host_of(rest: &str) -> Option<String> {
    let authority = rest.split('/').next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let host = if let Some(r) = authority.strip_prefix('[') {
        r.split(']').next()?.to_string()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h).to_string()
    };
    (!host.is_empty()).then_some(host)
}

/// Where panel.ini is when the config does not say: on Linux PRODUCT_ROOT_D from psa.conf +
/// `/admin/conf/panel.ini`, else `/usr/local/psa/…` (Windows: `crate::platform`).
pub fn default_panel_ini(psa_conf: &Path) -> PathBuf {
    crate::platform::default_panel_ini(psa_conf)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn facts() -> HostFacts {
        HostFacts {
            psa_conf: "/nonexistent/psa.conf".into(),
            hostname: Some("web-042".into()),
        }
    }

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("/etc/x/agent.ini"), text, &facts())
    }

    #[test]
    fn contract_example_with_inline_comments_parses() {
        let c = p("[central]\nurl = https://store.example.com/plesk-agent/ ; the store\nhost_id = web-1 ; name\n\
                   poll_interval = 30\nlong_poll = 0\n[panel]\nbuy_url = https://shop.example.com\n[push]\nlisten = 0.0.0.0:8787\n")
            .unwrap();
        assert_eq!(
            c.central.url,
            CentralUrl::Http("https://store.example.com/plesk-agent".into())
        );
        assert_eq!(c.central.host_id, "web-1");
        assert_eq!(c.central.poll_interval, Duration::from_secs(30));
        assert_eq!(c.central.long_poll, Duration::ZERO);
        assert_eq!(c.panel.buy_url.as_deref(), Some("https://shop.example.com"));
        assert_eq!(c.panel.catalog_url, None);
        assert_eq!(c.push.listen, Some("0.0.0.0:8787".parse().unwrap()));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = p("").unwrap();
        assert_eq!(c.central.url, CentralUrl::None);
        assert_eq!(c.central.host_id, "web-042");
        assert_eq!(c.central.token_file, PathBuf::from("/etc/plesk-reseller-agent/token"));
        assert_eq!(c.central.poll_interval, Duration::from_secs(60));
        assert_eq!(c.central.long_poll, Duration::from_secs(25));
        assert_eq!(c.panel.ini_path, PathBuf::from("/usr/local/psa/admin/conf/panel.ini"));
        assert_eq!(c.plesk.command, PathBuf::from("/usr/sbin/plesk"));
        assert_eq!(c.plesk.timeout, Duration::from_secs(300));
        assert_eq!(c.push.listen, None);
        assert_eq!(c.agent.state_dir, PathBuf::from("/var/lib/plesk-reseller-agent"));
        assert_eq!(c.agent.socket, PathBuf::from("/run/plesk-reseller-agent/agent.sock"));
    }

    #[test]
    fn product_root_comes_from_psa_conf() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("psa.conf");
        std::fs::write(
            &conf,
            "# Plesk\nPRODUCT_ROOT_D\t\t/opt/psa\nHTTPD_VHOSTS_D /var/www/vhosts\n",
        )
        .unwrap();
        assert_eq!(default_panel_ini(&conf), PathBuf::from("/opt/psa/admin/conf/panel.ini"));
        assert_eq!(
            default_panel_ini(&dir.path().join("missing")),
            PathBuf::from("/usr/local/psa/admin/conf/panel.ini")
        );
    }

    #[test]
    fn http_only_on_loopback_and_spool_urls() {
        assert!(p("[central]\nurl = http://127.0.0.5:8080/x\n").is_ok());
        assert!(p("[central]\nurl = http://[::1]:8080\n").is_ok());
        assert!(p("[central]\nurl = http://localhost/\n").is_ok());
        let e = p("[central]\nurl = http://store.example.com\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[central] url") && e.contains("loopback"), "{e}");
        assert!(p("[central]\nurl = ftp://x\n").is_err());
        let c = p("[central]\nurl = file:///var/spool/agent\n").unwrap();
        assert_eq!(c.central.url, CentralUrl::Spool("/var/spool/agent".into()));
    }

    #[test]
    fn bad_values_name_file_section_and_key() {
        let e = p("[central]\npoll_interval = soon\n").unwrap_err().to_string();
        assert!(
            e.starts_with("/etc/x/agent.ini: [central] poll_interval = \"soon\""),
            "{e}"
        );
        assert!(p("[central]\nhost_id = ../etc\n").is_err());
        assert!(p("[push]\nlisten = everywhere\n").is_err());
        assert!(p("[agent]\nstate_dir = relative/dir\n").is_err());
    }

    #[test]
    fn unknown_sections_and_keys_are_warnings_not_used() {
        let c = p("[central]\nurl =\nsecret = x\n[mystery]\na = 1\n").unwrap();
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("[central] secret"));
        assert!(c.warnings[1].contains("[mystery]"));
    }

    #[test]
    fn backslashes_are_kept() {
        let c = p("[plesk]\ncommand = /opt/x\\y\n").unwrap();
        assert_eq!(c.plesk.command, PathBuf::from("/opt/x\\y"));
    }
}
