//! The central's configuration: `central.ini` (contract section 2), read once at start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where the config is when neither `--config` nor the environment says otherwise.
pub const DEFAULT_PATH: &str = "/etc/plesk-reseller-central/central.ini";
/// Overrides [`DEFAULT_PATH`].
pub const PATH_ENV: &str = "PLESK_RESELLER_CENTRAL_CONFIG";

/// A config that cannot be used; names the file and, where it applies, the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("the config {path} is not valid INI: {reason}")]
    Syntax { path: PathBuf, reason: String },
    #[error("in the config {path}, [{section}] {key} = {value:?} {reason}")]
    Value {
        path: PathBuf,
        section: String,
        key: String,
        value: String,
        reason: String,
    },
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub admin_socket: PathBuf,
    pub admin_listen: Option<SocketAddr>,
    pub admin_token_file: Option<PathBuf>,
    pub max_wait: u64,
    /// Connections served at once on the agents' listener; beyond it, 503.
    pub max_connections: usize,
}

/// `[ka]`: the KA Partner API account orders are bought with.
#[derive(Debug, Clone, Default)]
pub struct KaConfig {
    pub url: String,
    pub username: String,
    pub password_file: Option<PathBuf>,
    pub owner_id: String,
    pub plesk_item: String,
    /// How a parent key is named on create (the one request shape KA leaves open).
    pub parent_form: ParentForm,
    /// Seconds per KA request.
    pub timeout: u64,
    /// Seconds between reads of every live license from KA (reconcile); 0 = off.
    pub reconcile_interval: u64,
    /// KA requests at once, for reconcile and license operations.
    pub max_concurrency: usize,
}

/// How the parent key is named when an extension key is created attached to it. KA's docs say
/// only "pass the main Plesk key number"; the field semantics (page 77843) address keys by
/// `keyId`, so that is the default. `KeyNumber` is the other reading, one switch away
/// (`[ka] parent_form = key_number`). Marked as a guess in plesk-facts.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParentForm {
    #[default]
    KeyId,
    KeyNumber,
}

impl ParentForm {
    pub fn parse(s: &str) -> Option<ParentForm> {
        match s {
            "key_id" => Some(ParentForm::KeyId),
            "key_number" => Some(ParentForm::KeyNumber),
            _ => None,
        }
    }
}

/// The whole file.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub server: ServerConfig,
    pub database_url: String,
    /// Fleet-wide desired values; an empty value in the file means none.
    pub fleet_buy_url: Option<String>,
    pub fleet_catalog_url: Option<String>,
    pub ka: KaConfig,
    pub buy_redirect: Option<String>,
    /// `[sell]`: extension id → KA item constant, in file order.
    pub sell: Vec<(String, String)>,
    /// `[fleet] offline_after`: seconds unseen before `host.offline`.
    pub offline_after: u64,
    pub webhooks: WebhooksConfig,
    /// `[section] key` of every key this version does not know.
    pub unknown: Vec<String>,
}

/// `[webhooks]` (contract section 11). `url` None: no webhooks (the feed is still kept).
#[derive(Debug, Clone, Default)]
pub struct WebhooksConfig {
    pub url: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// None: every event type (`*`); else the listed names, checked against the event types
    /// by `check` and at start (the base layer does not know them).
    pub events: Option<Vec<String>>,
}

/// `--config`, else the environment, else [`DEFAULT_PATH`].
pub fn resolve_path(cli: Option<&Path>) -> PathBuf {
    if let Some(p) = cli {
        return p.to_path_buf();
    }
    match std::env::var_os(PATH_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_PATH),
    }
}

/// Reads and parses the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.into(),
        reason: e.to_string(),
    })?;
    parse(path, &text)
}

const KNOWN: &[(&str, &[&str])] = &[
    (
        "server",
        &[
            "listen",
            "tls_cert",
            "tls_key",
            "admin_socket",
            "admin_listen",
            "admin_token_file",
            "max_wait",
            "max_connections",
        ],
    ),
    ("database", &["url"]),
    ("fleet", &["buy_url", "catalog_url", "offline_after"]),
    (
        "ka",
        &[
            "url",
            "username",
            "password_file",
            "owner_id",
            "plesk_item",
            "parent_form",
            "timeout",
            "reconcile_interval",
            "max_concurrency",
        ],
    ),
    ("store", &["buy_redirect"]),
    ("webhooks", &["url", "secret_file", "events"]),
];

struct Sections<'a> {
    path: &'a Path,
    map: BTreeMap<String, BTreeMap<String, String>>,
}

impl Sections<'_> {
    fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.map
            .get(section)?
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn text(&self, section: &str, key: &str, default: &str) -> String {
        self.get(section, key).unwrap_or(default).to_string()
    }

    fn bad(&self, section: &str, key: &str, reason: &str) -> ConfigError {
        ConfigError::Value {
            path: self.path.into(),
            section: section.into(),
            key: key.into(),
            value: self.get(section, key).unwrap_or("").into(),
            reason: reason.into(),
        }
    }

    fn addr(&self, section: &str, key: &str, default: Option<&str>) -> Result<Option<SocketAddr>, ConfigError> {
        match self.get(section, key).or(default) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| self.bad(section, key, "is not an address of the form IP:PORT")),
        }
    }

    fn abs_path(&self, section: &str, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        match self.get(section, key) {
            None => Ok(None),
            Some(v) if v.starts_with('/') => Ok(Some(PathBuf::from(v))),
            Some(_) => Err(self.bad(section, key, "is not an absolute path")),
        }
    }

    fn number(&self, section: &str, key: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        match self.get(section, key) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(self.bad(section, key, &format!("is not a whole number from {min} to {max}"))),
            },
        }
    }
}

/// Parses config text; `path` is only named in messages.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let s = sections(path, text)?;
    let listen = s.addr("server", "listen", Some("0.0.0.0:8790"))?.expect("default");
    let admin_listen = s.addr("server", "admin_listen", None)?;
    let admin_token_file = s.abs_path("server", "admin_token_file")?;
    if admin_listen.is_some() && admin_token_file.is_none() {
        return Err(s.bad("server", "admin_listen", "needs [server] admin_token_file"));
    }
    let server = ServerConfig {
        listen,
        tls_cert: s.abs_path("server", "tls_cert")?,
        tls_key: s.abs_path("server", "tls_key")?,
        admin_socket: s
            .abs_path("server", "admin_socket")?
            .unwrap_or_else(|| PathBuf::from("/run/plesk-reseller-central/admin.sock")),
        admin_listen,
        admin_token_file,
        max_wait: s.number("server", "max_wait", 60, 1, 3600)?,
        max_connections: s.number("server", "max_connections", 20_000, 16, 1_000_000)? as usize,
    };
    match (&server.tls_cert, &server.tls_key) {
        (Some(_), None) => {
            return Err(s.bad(
                "server",
                "tls_key",
                "is empty, but tls_cert is set: give both or neither",
            ))
        }
        (None, Some(_)) => {
            return Err(s.bad(
                "server",
                "tls_cert",
                "is empty, but tls_key is set: give both or neither",
            ))
        }
        _ => {}
    }
    // The admin token is a bearer secret: beyond loopback it travels only inside TLS.
    if let Some(a) = server.admin_listen {
        if !a.ip().to_canonical().is_loopback() && server.tls_cert.is_none() {
            return Err(s.bad(
                "server",
                "admin_listen",
                "is beyond loopback and needs [server] tls_cert (and tls_key), else the admin token would cross the network in clear",
            ));
        }
    }
    let database_url = s.text("database", "url", "sqlite:///var/lib/plesk-reseller-central/central.db");
    // Both of libpq's schemes are PostgreSQL (as in db::Dialect::of_url).
    if !["sqlite://", "postgres://", "postgresql://"]
        .iter()
        .any(|scheme| database_url.starts_with(scheme))
    {
        return Err(s.bad("database", "url", "is neither sqlite:///PATH nor postgres://…"));
    }
    for key in ["buy_url", "catalog_url"] {
        if let Some(v) = s.get("fleet", key) {
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                return Err(s.bad("fleet", key, "is not an http:// or https:// URL"));
            }
        }
    }
    let ka = KaConfig {
        url: s.text("ka", "url", "https://api.central.plesk.com/30/"),
        username: s.text("ka", "username", ""),
        password_file: s.abs_path("ka", "password_file")?,
        owner_id: s.text("ka", "owner_id", ""),
        plesk_item: s.text("ka", "plesk_item", ""),
        parent_form: match s.get("ka", "parent_form") {
            None => ParentForm::default(),
            Some(v) => {
                ParentForm::parse(v).ok_or_else(|| s.bad("ka", "parent_form", "is neither key_id nor key_number"))?
            }
        },
        timeout: s.number("ka", "timeout", 30, 1, 300)?,
        reconcile_interval: s.number("ka", "reconcile_interval", 21600, 0, 30 * 86400)?,
        max_concurrency: s.number("ka", "max_concurrency", 4, 1, 64)? as usize,
    };
    if !(ka.url.starts_with("https://") || ka.url.starts_with("http://")) || !ka.url.ends_with('/') {
        return Err(s.bad("ka", "url", "is not an http(s) URL ending in /"));
    }
    let webhooks = webhooks(&s)?;
    let sell = s
        .map
        .get("sell")
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok(Config {
        path: path.into(),
        server,
        database_url,
        fleet_buy_url: s.get("fleet", "buy_url").map(str::to_string),
        fleet_catalog_url: s.get("fleet", "catalog_url").map(str::to_string),
        ka,
        buy_redirect: s.get("store", "buy_redirect").map(str::to_string),
        sell,
        offline_after: s.number("fleet", "offline_after", 600, 1, 30 * 86_400)?,
        webhooks,
        unknown: unknown_keys(&s),
    })
}

/// Whether `url`'s host is a loopback address or `localhost`.
fn loopback_host(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// `[webhooks]`: https, or http on loopback only (the body and signature would cross the
/// network in clear); a URL needs a secret file.
fn webhooks(s: &Sections) -> Result<WebhooksConfig, ConfigError> {
    let url = s.get("webhooks", "url").map(str::to_string);
    if let Some(u) = &url {
        let https = u.starts_with("https://") && u.len() > "https://".len();
        let http_loopback = u.starts_with("http://") && loopback_host(u);
        if !https && !http_loopback {
            return Err(s.bad(
                "webhooks",
                "url",
                "is neither an https:// URL nor an http:// URL on loopback (127.0.0.1, [::1], localhost)",
            ));
        }
    }
    let secret_file = s.abs_path("webhooks", "secret_file")?;
    if url.is_some() && secret_file.is_none() {
        return Err(s.bad("webhooks", "url", "needs [webhooks] secret_file (whsec_<base64>)"));
    }
    let events = match s.get("webhooks", "events").map(str::trim) {
        None | Some("*") => None,
        Some(list) => Some(
            list.split(',')
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect(),
        ),
    };
    Ok(WebhooksConfig {
        url,
        secret_file,
        events,
    })
}

fn sections<'a>(path: &'a Path, text: &str) -> Result<Sections<'a>, ConfigError> {
    let opt = ini::ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        ..Default::default()
    };
    let ini =
        ini::Ini::load_from_str_opt(text.trim_start_matches('\u{feff}'), opt).map_err(|e| ConfigError::Syntax {
            path: path.into(),
            reason: e.to_string(),
        })?;
    let mut map: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (section, props) in ini.iter() {
        let name = section.unwrap_or("").to_string();
        let entry = map.entry(name).or_default();
        for (k, v) in props.iter() {
            entry.insert(k.to_string(), clean_value(v));
        }
    }
    Ok(Sections { path, map })
}

fn unknown_keys(s: &Sections) -> Vec<String> {
    let mut out = Vec::new();
    for (section, keys) in &s.map {
        if section == "sell" {
            continue;
        }
        let known = KNOWN.iter().find(|(n, _)| n == section).map(|(_, k)| *k);
        for key in keys.keys() {
            if !known.is_some_and(|k| k.contains(&key.as_str())) {
                out.push(if section.is_empty() {
                    key.clone()
                } else {
                    format!("[{section}] {key}")
                });
            }
        }
    }
    out
}

/// Drops a trailing `; comment` (`;` after whitespace) and surrounding whitespace.
fn clean_value(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let end = (0..bytes.len())
        .find(|&i| bytes[i] == b';' && (i == 0 || bytes[i - 1].is_ascii_whitespace()))
        .unwrap_or(bytes.len());
    raw[..end].trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("/etc/c.ini"), text)
    }

    #[test]
    fn contract_example_parses_with_defaults() {
        let c = p(
            "[server]\nlisten = 0.0.0.0:8790   ; the agents' API\nmax_wait = 60\n[fleet]\nbuy_url =\n\
                   [sell]\next-a = ITEM-A\n[database]\nurl = sqlite:///tmp/x.db\n",
        )
        .unwrap();
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:8790");
        assert_eq!(c.fleet_buy_url, None);
        assert_eq!(c.sell, vec![("ext-a".into(), "ITEM-A".into())]);
        assert!(c.unknown.is_empty());
        assert_eq!(
            c.server.admin_socket,
            PathBuf::from("/run/plesk-reseller-central/admin.sock")
        );
    }

    #[test]
    fn bad_values_name_file_section_and_key() {
        let e = p("[server]\nmax_wait = 0\n").unwrap_err().to_string();
        assert!(e.contains("/etc/c.ini") && e.contains("[server] max_wait"), "{e}");
        let e = p("[server]\nadmin_listen = 127.0.0.1:1\n").unwrap_err().to_string();
        assert!(e.contains("admin_token_file"), "{e}");
        let token = "admin_token_file = /etc/t\n";
        for beyond in ["0.0.0.0:1", "192.0.2.1:1", "[::]:1", "[2001:db8::1]:1"] {
            let e = p(&format!("[server]\nadmin_listen = {beyond}\n{token}"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("[server] admin_listen") && e.contains("[server] tls_cert"),
                "{e}"
            );
        }
        for fine in ["127.0.0.1:1", "[::1]:1", "[::ffff:127.0.0.1]:1"] {
            assert!(
                p(&format!("[server]\nadmin_listen = {fine}\n{token}")).is_ok(),
                "{fine}"
            );
        }
        let tls = "tls_cert = /etc/c.crt\ntls_key = /etc/c.key\n";
        assert!(p(&format!("[server]\nadmin_listen = 0.0.0.0:1\n{token}{tls}")).is_ok());
        let e = p("[fleet]\nbuy_url = ftp://x\n").unwrap_err().to_string();
        assert!(e.contains("[fleet] buy_url"), "{e}");
        let e = p("[server]\ntls_cert = /etc/c.crt\n").unwrap_err().to_string();
        assert!(e.contains("[server] tls_key") && e.contains("both or neither"), "{e}");
        let e = p("[database]\nurl = mysql://db/c\n").unwrap_err().to_string();
        assert!(e.contains("[database] url"), "{e}");
        for ok in ["postgres://u@db/c", "postgresql://u@db/c"] {
            assert_eq!(p(&format!("[database]\nurl = {ok}\n")).unwrap().database_url, ok);
        }
    }

    #[test]
    fn the_shipped_central_ini_parses_with_no_unknown_key() {
        let c = p(include_str!("../central.ini")).unwrap();
        assert!(c.unknown.is_empty(), "{:?}", c.unknown);
        assert_eq!(c.server.max_wait, 60);
        assert_eq!(c.database_url, "sqlite:///var/lib/plesk-reseller-central/central.db");
    }

    #[test]
    fn reconcile_settings_default_and_are_bounded() {
        let c = p("[server]\nlisten = 127.0.0.1:0\n").unwrap();
        assert_eq!((c.ka.reconcile_interval, c.ka.max_concurrency), (21600, 4));
        let c = p("[ka]\nreconcile_interval = 0\nmax_concurrency = 1\n").unwrap();
        assert_eq!((c.ka.reconcile_interval, c.ka.max_concurrency), (0, 1));
        let e = p("[ka]\nmax_concurrency = 0\n").unwrap_err().to_string();
        assert!(e.contains("[ka] max_concurrency") && e.contains("from 1 to 64"), "{e}");
        let e = p("[ka]\nreconcile_interval = soon\n").unwrap_err().to_string();
        assert!(e.contains("[ka] reconcile_interval"), "{e}");
    }

    #[test]
    fn webhooks_need_https_or_loopback_and_a_secret_file() {
        let sec = "secret_file = /etc/wh.secret\n";
        for ok in [
            "https://shop.example.com/hook",
            "http://127.0.0.1:8080/hook",
            "http://[::1]:80/h",
            "http://localhost/h",
        ] {
            let c = p(&format!("[webhooks]\nurl = {ok}\n{sec}")).unwrap();
            assert_eq!(c.webhooks.url.as_deref(), Some(ok));
            assert_eq!(c.webhooks.events, None);
        }
        for bad in [
            "http://shop.example.com/hook",
            "http://127.0.0.1.example.com/h",
            "ftp://x",
            "https://",
        ] {
            let e = p(&format!("[webhooks]\nurl = {bad}\n{sec}")).unwrap_err().to_string();
            assert!(e.contains("[webhooks] url") && e.contains(bad), "{e}");
        }
        let e = p("[webhooks]\nurl = https://x/h\n").unwrap_err().to_string();
        assert!(e.contains("secret_file"), "{e}");
        let c = p(&format!(
            "[webhooks]\nurl = https://x/h\n{sec}events = order.done, host.offline\n"
        ))
        .unwrap();
        assert_eq!(
            c.webhooks.events,
            Some(vec!["order.done".into(), "host.offline".into()])
        );
        assert_eq!(c.offline_after, 600);
        assert_eq!(p("[fleet]\noffline_after = 30\n").unwrap().offline_after, 30);
    }

    #[test]
    fn unknown_keys_are_listed() {
        let c = p("[server]\nlisten = 127.0.0.1:0\nlisen = x\n[other]\na = 1\n").unwrap();
        assert_eq!(c.unknown, vec!["[other] a".to_string(), "[server] lisen".to_string()]);
    }
}
