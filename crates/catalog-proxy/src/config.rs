//! The `[catalog_proxy]` section of the agent's INI file (catalog-proxy contract,
//! "Command and configuration"). Other sections belong to the agent and are ignored here;
//! unknown keys inside `[catalog_proxy]` are reported as warnings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ProxyError;
use plesk_sysutil::ini::{absolute, clean_value, is_loopback_host, whole_seconds, HTTP_LOOPBACK_ONLY};

const SECTION: &str = "catalog_proxy";
const KEYS: &[&str] = &[
    "listen",
    "upstream",
    "allow",
    "allow_file",
    "cache_ttl",
    "stale_if_error",
];

/// Timeout of one upstream request, connection to last body byte.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The file it came from (empty for configs built in code).
    pub path: PathBuf,
    pub listen: SocketAddr,
    /// Scheme, host and optional port, without a trailing slash.
    pub upstream: String,
    /// Codes from `allow`.
    pub allow: Vec<String>,
    pub allow_file: Option<PathBuf>,
    pub cache_ttl: Duration,
    pub stale_if_error: Duration,
    /// Not configurable in the file (the contract fixes 30 s); tests shorten it.
    pub upstream_timeout: Duration,
    /// Unknown keys and repeated keys in `[catalog_proxy]`.
    pub warnings: Vec<String>,
}

impl ProxyConfig {
    /// The contract's defaults.
    pub fn defaults() -> Self {
        ProxyConfig {
            path: PathBuf::new(),
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            upstream: "https://ext.plesk.com".into(),
            allow: Vec::new(),
            allow_file: None,
            cache_ttl: Duration::from_secs(600),
            stale_if_error: Duration::from_secs(172_800),
            upstream_timeout: UPSTREAM_TIMEOUT,
            warnings: Vec::new(),
        }
    }
}

/// Reads the config file and its `[catalog_proxy]` section.
pub fn load(path: &Path) -> Result<ProxyConfig, ProxyError> {
    parse(path, &plesk_sysutil::ini::read_text(path)?)
}

/// Parses config text; `path` is used in messages.
pub fn parse(path: &Path, text: &str) -> Result<ProxyConfig, ProxyError> {
    let ini = plesk_sysutil::ini::parse_ini(path, text)?;
    let mut cfg = ProxyConfig {
        path: path.into(),
        ..ProxyConfig::defaults()
    };
    let mut values: Vec<(String, String)> = Vec::new();
    for (section, props) in ini.iter() {
        if section != Some(SECTION) {
            continue;
        }
        for (key, value) in props.iter() {
            if !KEYS.contains(&key) {
                cfg.warnings
                    .push(format!("{}: unknown key [{SECTION}] {key} is ignored", path.display()));
                continue;
            }
            if let Some(slot) = values.iter_mut().find(|(k, _)| k == key) {
                cfg.warnings.push(format!(
                    "{}: [{SECTION}] {key} is set more than once; the last one is used",
                    path.display()
                ));
                slot.1 = clean_value(value);
            } else {
                values.push((key.to_string(), clean_value(value)));
            }
        }
    }
    let bad = |k: &str, v: &str, reason: &str| ProxyError::ConfigValue {
        path: path.into(),
        key: k.into(),
        value: v.into(),
        reason: reason.into(),
    };
    for (key, v) in values.iter().filter(|(_, v)| !v.is_empty()) {
        match key.as_str() {
            "listen" => {
                cfg.listen = v
                    .parse()
                    .map_err(|_| bad(key, v, "expected address:port, e.g. 0.0.0.0:8080"))?
            }
            "upstream" => cfg.upstream = parse_upstream(v).map_err(|r| bad(key, v, &r))?,
            "allow" => {
                cfg.allow = v
                    .split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect()
            }
            "allow_file" => cfg.allow_file = Some(absolute(v).map_err(|r| bad(key, v, &r))?),
            "cache_ttl" => cfg.cache_ttl = whole_seconds(v, 0, 7 * 86_400).map_err(|r| bad(key, v, &r))?,
            "stale_if_error" => cfg.stale_if_error = whole_seconds(v, 0, 365 * 86_400).map_err(|r| bad(key, v, &r))?,
            _ => {}
        }
    }
    Ok(cfg)
}

/// `https://host[:port]`, or `http://` for loopback hosts; no path, query or fragment.
fn parse_upstream(v: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(v).map_err(|e| format!("not a valid URL ({e})"))?;
    let host = url.host_str().ok_or("has no host")?.to_string();
    match url.scheme() {
        "https" => {}
        "http" => {
            if !is_loopback_host(host.trim_start_matches('[').trim_end_matches(']')) {
                return Err(HTTP_LOOPBACK_ONLY.into());
            }
        }
        _ => return Err("expected https://host".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("must be scheme and host only (the request path is appended)".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<ProxyConfig, ProxyError> {
        parse(Path::new("/etc/x/agent.ini"), text)
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = p("[central]\nurl = https://store.example.com\n").unwrap();
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.upstream, "https://ext.plesk.com");
        assert!(c.allow.is_empty());
        assert_eq!(c.allow_file, None);
        assert_eq!(c.cache_ttl, Duration::from_secs(600));
        assert_eq!(c.stale_if_error, Duration::from_secs(172_800));
        assert!(
            c.warnings.is_empty(),
            "the agent's sections are not ours: {:?}",
            c.warnings
        );
    }

    #[test]
    fn contract_example_with_comments_parses() {
        let c = p(
            "[catalog_proxy]\nlisten = 127.0.0.1:9090\nupstream = http://127.0.0.1:5000/ ; tests\n\
                   allow = wp-toolkit-pro, seo-toolkit ,,imunify ; sold here\nallow_file = /etc/x/allow.txt\n\
                   cache_ttl = 60\nstale_if_error = 0\n",
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(c.upstream, "http://127.0.0.1:5000");
        assert_eq!(c.allow, ["wp-toolkit-pro", "seo-toolkit", "imunify"]);
        assert_eq!(c.allow_file, Some(PathBuf::from("/etc/x/allow.txt")));
        assert_eq!(c.cache_ttl, Duration::from_secs(60));
        assert_eq!(c.stale_if_error, Duration::ZERO);
    }

    #[test]
    fn empty_values_keep_defaults() {
        let c = p("[catalog_proxy]\nlisten =\nupstream =   ; default\nallow =\nallow_file =\n").unwrap();
        assert_eq!(c.upstream, "https://ext.plesk.com");
        assert_eq!(c.allow_file, None);
    }

    #[test]
    fn upstream_must_be_https_or_loopback_http_without_path() {
        assert!(p("[catalog_proxy]\nupstream = http://ext.plesk.com\n")
            .unwrap_err()
            .to_string()
            .contains("loopback"));
        assert!(p("[catalog_proxy]\nupstream = http://[::1]:81\n").is_ok());
        assert!(p("[catalog_proxy]\nupstream = http://localhost:81\n").is_ok());
        assert!(p("[catalog_proxy]\nupstream = https://ext.plesk.com/api\n").is_err());
        assert!(p("[catalog_proxy]\nupstream = https://u:p@ext.plesk.com\n").is_err());
        assert!(p("[catalog_proxy]\nupstream = ftp://ext.plesk.com\n").is_err());
    }

    #[test]
    fn bad_values_name_file_section_and_key_and_unknown_keys_warn() {
        let e = p("[catalog_proxy]\ncache_ttl = soon\n").unwrap_err().to_string();
        assert!(
            e.starts_with("/etc/x/agent.ini: [catalog_proxy] cache_ttl = \"soon\""),
            "{e}"
        );
        assert!(p("[catalog_proxy]\nlisten = everywhere\n").is_err());
        assert!(p("[catalog_proxy]\nallow_file = relative.txt\n").is_err());
        let c = p("[catalog_proxy]\nallowed = x\nallow = a\nallow = b\n").unwrap();
        assert_eq!(c.allow, ["b"]);
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("[catalog_proxy] allowed"));
    }
}
