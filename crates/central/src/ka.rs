//! Key Administrator (KA) Partner API v3 client: create a main Plesk key, create an extension
//! key attached to a main key, read a key, find keys by nickname, and the lifecycle calls of
//! a license (`PUT keys/<id>` to suspend, resume or change items; `DELETE keys/<id>`).
//!
//! What is documented and what is guessed is in `../shared/reference/ka-partner-api.md`; the
//! one open request shape (how the parent key is named on create) is [`ParentForm`].

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most of an answer kept: a key structure is a few KiB; an error body more than this is
/// not an answer KA gives.
const MAX_ANSWER: usize = 256 * 1024;

/// What went wrong with a KA call; every variant names the URL (never the password).
#[derive(Debug, thiserror::Error)]
pub enum KaError {
    /// KA answered with an error status; `body` is KA's answer verbatim (cut at 256 KiB).
    #[error("KA answered {status} to {method} {url}: {}", summary(body))]
    Api {
        method: &'static str,
        url: String,
        status: u16,
        body: String,
    },
    #[error("cannot reach KA at {url}: {reason}")]
    Network { url: String, reason: String },
    #[error("KA's answer to {method} {url} is not what the API documents: {reason}")]
    Answer {
        method: &'static str,
        url: String,
        reason: String,
    },
    /// KA said the key was created (2xx) but its answer cannot be read: the key exists, so
    /// the caller must look it up rather than give up or create another.
    #[error("KA created a key at {url} but its answer cannot be read: {reason}")]
    Unread { url: String, reason: String },
    #[error("KA's base URL {url:?} is not an http(s) URL ending in /")]
    BadUrl { url: String },
    #[error("cannot use the KA password file {path}: {reason}")]
    Password { path: PathBuf, reason: String },
}

impl KaError {
    /// True when the same call may be tried again later: KA was unreachable, slow, or failed
    /// on its side (5xx). A 4xx is KA's final word on that request.
    pub fn is_transient(&self) -> bool {
        match self {
            KaError::Network { .. } | KaError::Unread { .. } => true,
            KaError::Api { status, .. } => *status >= 500 || *status == 429,
            KaError::Answer { .. } | KaError::BadUrl { .. } | KaError::Password { .. } => false,
        }
    }

    /// KA's answer as it came, for the order's record.
    pub fn verbatim(&self) -> String {
        match self {
            KaError::Api { body, .. } => body.clone(),
            other => other.to_string(),
        }
    }
}

/// KA's error body (`{"code":"400","type":"24204","message":…,"details":…}`), read leniently:
/// every field optional, strings or numbers.
fn summary(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let field = |name: &str| {
        parsed.as_ref().and_then(|v| v.get(name)).and_then(|f| match f {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    match (field("message"), field("type"), field("details")) {
        (Some(m), t, d) => {
            let mut s = m;
            if let Some(t) = t {
                s.push_str(&format!(" (type {t})"));
            }
            if let Some(d) = d.filter(|d| !d.is_empty()) {
                s.push_str(&format!(" {d}"));
            }
            s
        }
        _ => body.chars().take(200).collect(),
    }
}

// The parent form is a `[ka]` setting, so config owns the type; the KA client only reads it
// (config never imports the client: the arrows point from here down to config).
use crate::config::KaConfig;
pub use crate::config::ParentForm;

/// Reads KA's password from a file that only root may read (it is the reseller's whole KA
/// account); trailing whitespace is not part of it.
pub fn read_password(path: &Path) -> Result<String, KaError> {
    let err = |reason: String| KaError::Password {
        path: path.into(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(err("group or others can read it; chmod 600 it".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let password = text.trim_end_matches(['\n', '\r', ' ', '\t']);
    if password.is_empty() {
        return Err(err("it is empty".into()));
    }
    Ok(password.to_string())
}

/// Where and as whom to call KA.
#[derive(Debug, Clone)]
pub struct KaSettings {
    /// Full base URL ending in `/`, e.g. `https://api.central.plesk.com/30/`.
    pub base_url: String,
    pub username: String,
    pub password: String,
    /// The KA customer the keys belong to; mandatory for a reseller account.
    pub owner_id: Option<String>,
    pub parent_form: ParentForm,
    /// Per request; KA's own clients use 10 s to 100 s.
    pub timeout: Duration,
}

impl KaSettings {
    /// From `[ka]`, when it is filled in (a username and a password file); the password
    /// file is read now, so an unusable one is an error at start, not at the first order.
    pub fn from_config(k: &KaConfig) -> Result<Option<KaSettings>, KaError> {
        let Some(path) = k.password_file.as_deref().filter(|_| !k.username.is_empty()) else {
            return Ok(None);
        };
        Ok(Some(KaSettings {
            base_url: k.url.clone(),
            username: k.username.clone(),
            password: read_password(path)?,
            owner_id: Some(k.owner_id.clone()).filter(|o| !o.is_empty()),
            parent_form: k.parent_form,
            timeout: Duration::from_secs(k.timeout),
        }))
    }
}

/// The key number's 8-digit core as KA's `keyId`: `PLSK.12345678.0001` → 12345678.
pub fn key_id_of(key_number: &str) -> Option<u64> {
    let mut parts = key_number.split('.');
    let (prefix, core) = (parts.next()?, parts.next()?);
    if !prefix.eq_ignore_ascii_case("PLSK") || core.len() != 8 || !core.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    core.parse().ok().filter(|&id| id != 0)
}

/// What a new key is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// KA item constants, e.g. `PLESK-12-WEB-HOST-1M`.
    pub items: Vec<String>,
    /// The main key to attach to (an extension key), by its key number.
    pub parent_key_number: Option<String>,
    /// Our order id: the only searchable field KA keeps for us, so a create whose answer was
    /// lost can be found again (`GET keys?nickname=`).
    pub nickname: String,
}

/// The parts of KA's license key structure the central uses; the whole answer is kept too.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub key_id: u64,
    pub key_number: String,
    pub activation_code: String,
    pub parent_key_id: Option<u64>,
    pub nickname: Option<String>,
    pub terminated: bool,
    /// KA's `suspended` (booleans or the strings "true"/"false").
    pub suspended: bool,
    /// KA's `status` (its value set is not documented: kept as given).
    pub status: Option<String>,
    pub expiration_date: Option<String>,
    pub auto_renew: Option<bool>,
    /// The item constants, in KA's order.
    pub items: Vec<String>,
    pub raw: Value,
}

/// What a `PUT keys/<id>` changes (a partial structure: omitted = no action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modify {
    Suspended(bool),
    /// The whole target list (KA: "caller needs to specify just the target state").
    Items(Vec<String>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyIdentifiersWire {
    key_id: u64,
    #[serde(default)]
    key_number: Option<String>,
    #[serde(default)]
    activation_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyWire {
    key_identifiers: KeyIdentifiersWire,
    #[serde(default)]
    parent_key_identifiers: Option<KeyIdentifiersWire>,
    #[serde(default)]
    nickname: Option<String>,
    #[serde(default)]
    terminated: Option<Value>,
    #[serde(default)]
    suspended: Option<Value>,
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    expiration_date: Option<String>,
    #[serde(default)]
    auto_renew: Option<Value>,
    #[serde(default)]
    items: Option<Vec<ItemRead>>,
}

#[derive(Deserialize)]
struct ItemRead {
    item: String,
}

/// A boolean as KA (or Plesk's own modules) may write it: `true` or `"true"`.
fn flag(v: &Option<Value>) -> Option<bool> {
    match v {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// One element of a search answer (KA's short structure).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShortKey {
    pub key_id: u64,
    #[serde(default)]
    pub parent_key_id: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    owner_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_key_identifiers: Option<Value>,
    nickname: &'a str,
    items: Vec<ItemWire<'a>>,
}

#[derive(Serialize)]
struct ItemWire<'a> {
    item: &'a str,
}

/// A KA Partner API v3 client.
#[derive(Debug, Clone)]
pub struct KaClient {
    settings: KaSettings,
    http: reqwest::Client,
}

impl KaClient {
    pub fn new(settings: KaSettings) -> Result<KaClient, KaError> {
        let base = &settings.base_url;
        if !(base.starts_with("https://") || base.starts_with("http://")) || !base.ends_with('/') {
            return Err(KaError::BadUrl { url: base.clone() });
        }
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("plesk-reseller-central/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| KaError::Network {
                url: base.clone(),
                reason: e.to_string(),
            })?;
        Ok(KaClient { settings, http })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.settings.base_url, path)
    }

    /// `POST keys?return-key-state=yes`: one key per call, as v3 allows. Not idempotent: the
    /// caller records that it is about to call, and on a lost answer looks the nickname up
    /// with [`KaClient::find_by_nickname`] before calling again.
    pub async fn create_key(&self, new: &NewKey) -> Result<Key, KaError> {
        let parent = match &new.parent_key_number {
            None => None,
            Some(kn) => Some(self.parent_identifiers(kn)?),
        };
        let body = CreateBody {
            owner_id: self.settings.owner_id.as_deref(),
            parent_key_identifiers: parent,
            nickname: &new.nickname,
            items: new.items.iter().map(|item| ItemWire { item }).collect(),
        };
        let url = self.url("keys?return-key-state=yes");
        let json = serde_json::to_string(&body).map_err(|e| KaError::Answer {
            method: "POST",
            url: url.clone(),
            reason: format!("cannot encode the request: {e}"),
        })?;
        let request = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json);
        let (status, text) = self.send("POST", &url, request).await?;
        if status != 201 && status != 200 {
            return Err(unexpected("POST", &url, status, &text));
        }
        parse_key("POST", &url, &text).map_err(|e| KaError::Unread {
            url: url.clone(),
            reason: e.to_string(),
        })
    }

    /// `GET keys/<keyId or activation code>`.
    pub async fn get_key(&self, id: &str) -> Result<Key, KaError> {
        let url = self.url(&format!("keys/{}", encode_path(id)));
        let (status, text) = self.send("GET", &url, self.http.get(&url)).await?;
        if status != 200 {
            return Err(unexpected("GET", &url, status, &text));
        }
        parse_key("GET", &url, &text)
    }

    /// `PUT keys/<id>?return-key-state=yes`: idempotent (KA's docs, page 77837), so a lost
    /// answer may be settled by reading the key back. `suspended` goes as a JSON boolean
    /// (documented type; Plesk's modules send strings and KA takes both).
    pub async fn modify_key(&self, key_id: u64, change: &Modify) -> Result<Key, KaError> {
        let body = match change {
            Modify::Suspended(s) => serde_json::json!({ "suspended": s }),
            Modify::Items(items) => {
                serde_json::json!({ "items": items.iter().map(|i| serde_json::json!({"item": i})).collect::<Vec<_>>() })
            }
        };
        let url = self.url(&format!("keys/{key_id}?return-key-state=yes"));
        let request = self
            .http
            .put(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let (status, text) = self.send("PUT", &url, request).await?;
        if status != 200 {
            return Err(unexpected("PUT", &url, status, &text));
        }
        parse_key("PUT", &url, &text)
    }

    /// `DELETE keys/<id>?return-key-state=yes`: terminate, final. KA answers a second one
    /// with 400 type 24204 ("detected as terminated").
    pub async fn terminate_key(&self, key_id: u64) -> Result<Option<Key>, KaError> {
        let url = self.url(&format!("keys/{key_id}?return-key-state=yes"));
        let (status, text) = self.send("DELETE", &url, self.http.delete(&url)).await?;
        if status != 200 && status != 204 {
            return Err(unexpected("DELETE", &url, status, &text));
        }
        // The body is documented only with the flag; an empty one is still a success.
        if text.trim().is_empty() {
            return Ok(None);
        }
        parse_key("DELETE", &url, &text).map(Some)
    }

    /// `GET keys?nickname=`: the keys we created for one order id.
    pub async fn find_by_nickname(&self, nickname: &str) -> Result<Vec<ShortKey>, KaError> {
        let url = self.url(&format!("keys?nickname={}", encode_query(nickname)));
        let (status, text) = self.send("GET", &url, self.http.get(&url)).await?;
        if status != 200 {
            return Err(unexpected("GET", &url, status, &text));
        }
        serde_json::from_str(&text).map_err(|e| KaError::Answer {
            method: "GET",
            url,
            reason: format!("not a list of keys: {e}"),
        })
    }

    fn parent_identifiers(&self, key_number: &str) -> Result<Value, KaError> {
        Ok(match self.settings.parent_form {
            ParentForm::KeyId => {
                let id = key_id_of(key_number).ok_or_else(|| KaError::Answer {
                    method: "POST",
                    url: self.url("keys"),
                    reason: format!("the key number {key_number:?} has no 8-digit key id"),
                })?;
                serde_json::json!({ "keyId": id })
            }
            ParentForm::KeyNumber => serde_json::json!({ "keyNumber": key_number }),
        })
    }

    /// Sends with the headers KA's docs ask for (page 77837), reads at most [`MAX_ANSWER`].
    async fn send(
        &self,
        method: &'static str,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, String), KaError> {
        let request = request
            .basic_auth(&self.settings.username, Some(&self.settings.password))
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::ACCEPT_CHARSET, "UTF-8");
        let network = |e: reqwest::Error| KaError::Network {
            url: url.to_string(),
            reason: if e.is_timeout() {
                format!("no answer within {:?}", self.settings.timeout)
            } else {
                e.without_url().to_string()
            },
        };
        let mut response = request.send().await.map_err(network)?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(network)? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(KaError::Answer {
                    method,
                    url: url.to_string(),
                    reason: format!("larger than {MAX_ANSWER} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

fn unexpected(method: &'static str, url: &str, status: u16, body: &str) -> KaError {
    KaError::Api {
        method,
        url: url.to_string(),
        status,
        body: body.to_string(),
    }
}

fn parse_key(method: &'static str, url: &str, text: &str) -> Result<Key, KaError> {
    let answer = |reason: String| KaError::Answer {
        method,
        url: url.to_string(),
        reason,
    };
    let raw: Value = serde_json::from_str(text).map_err(|e| answer(format!("not JSON: {e}")))?;
    let wire: KeyWire =
        serde_json::from_value(raw.clone()).map_err(|e| answer(format!("not a license key structure: {e}")))?;
    let ids = wire.key_identifiers;
    let key_number = ids
        .key_number
        .ok_or_else(|| answer("keyIdentifiers.keyNumber is missing".into()))?;
    let activation_code = ids
        .activation_code
        .ok_or_else(|| answer("keyIdentifiers.activationCode is missing".into()))?;
    // Plesk's own modules send booleans as strings ("true"); KA may answer the same way.
    let terminated = flag(&wire.terminated).unwrap_or(false);
    let status = match wire.status {
        Some(Value::String(s)) => Some(s),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    Ok(Key {
        suspended: flag(&wire.suspended).unwrap_or(false),
        status,
        expiration_date: wire.expiration_date,
        auto_renew: flag(&wire.auto_renew),
        items: wire.items.unwrap_or_default().into_iter().map(|i| i.item).collect(),
        key_id: ids.key_id,
        key_number,
        activation_code,
        parent_key_id: wire.parent_key_identifiers.map(|p| p.key_id),
        nickname: wire.nickname,
        terminated,
        raw,
    })
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encode_path(s: &str) -> String {
    encode_query(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_the_eight_digit_core() {
        assert_eq!(key_id_of("PLSK.12345678.0001"), Some(12345678));
        assert_eq!(key_id_of("PLSK.04867003"), Some(4867003));
        assert_eq!(key_id_of("PLSK.00000000.0001"), None);
        assert_eq!(key_id_of("PLSK.1234567.0001"), None);
        assert_eq!(key_id_of("KAV.12345678.0001"), None);
    }

    #[test]
    fn error_summary_reads_the_documented_body() {
        let body = r#"{"code":"400","type":"24204","message":"The license key is detected as terminated.","details":"Key number = PLSK.12345678.0001."}"#;
        assert_eq!(
            summary(body),
            "The license key is detected as terminated. (type 24204) Key number = PLSK.12345678.0001."
        );
        assert_eq!(summary(r#"{"code":400,"type":24204,"message":"m"}"#), "m (type 24204)");
        assert_eq!(summary("<html>bad gateway</html>"), "<html>bad gateway</html>");
    }

    #[test]
    fn transient_errors_are_network_and_5xx_only() {
        let api = |status| KaError::Api {
            method: "POST",
            url: "u".into(),
            status,
            body: String::new(),
        };
        assert!(api(503).is_transient());
        assert!(!api(400).is_transient());
        assert!(!api(401).is_transient());
        assert!(KaError::Network {
            url: "u".into(),
            reason: "r".into()
        }
        .is_transient());
    }
}
