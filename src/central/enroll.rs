//! Enrollment (contract version 2, section 5.5): while `token_file` is missing or empty, an
//! enroll key from `[central] enroll_key_file` is exchanged once (`POST {base}/v1/enroll`, no
//! bearer token) for this server's own token and push secret, which are written atomically
//! (0600, fsynced) before the key file is removed.
//!
//! [`EnrollingTransport`] is the HTTP transport of an agent that has no token yet: each poll
//! first enrolls, then goes on as [`HttpTransport`] without a restart. A refusal (400, 401,
//! 403, 409) or an unusable key file is shown as `central.state` = `enrolling` and tried
//! again only after [`REFUSED_RETRY`], whoever asks meanwhile (no request reaches the store);
//! network errors and 5xx back off as polls do. The key is never logged nor shown.

#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;

use super::http::{HttpTransport, CONNECT_TIMEOUT, REQUEST_TIMEOUT};
use super::{CentralError, JobResult, PollOutcome, PollRequest, Report, Transport};
use crate::clock::{Clock, SystemClock};
use crate::config::{CentralUrl, Config};
use crate::BoxFuture;

/// After a refusal, the next attempt waits this long (contract 5.5).
pub const REFUSED_RETRY: Duration = Duration::from_secs(300);
/// Largest key file read, and largest answer.
const CAP: u64 = 4096;

/// Why enrolling did not happen; names the file or URL, never the key.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EnrollError {
    #[error("not enrolled yet: the enroll key file {path} {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("not enrolled yet: the store refused the enroll key ({status}) at {url}: {sentence}")]
    Refused { url: String, status: u16, sentence: String },
    #[error("not enrolled yet: cannot reach {url}: {reason}")]
    Network { url: String, reason: String },
    #[error("not enrolled yet: the store answered {status} at {url}")]
    Status { url: String, status: u16 },
    #[error("not enrolled yet: cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

impl EnrollError {
    /// Whether the same attempt would fail the same way now: wait [`REFUSED_RETRY`].
    pub fn is_refusal(&self) -> bool {
        matches!(self, EnrollError::KeyFile { .. } | EnrollError::Refused { .. })
    }
}

/// Where enrollment reads and writes, from the config.
#[derive(Debug, Clone)]
pub struct EnrollFiles {
    pub base: String,
    pub host_id: String,
    pub token_file: PathBuf,
    pub key_file: PathBuf,
    pub push_secret_file: PathBuf,
}

impl EnrollFiles {
    pub fn of(cfg: &Config) -> Option<EnrollFiles> {
        let CentralUrl::Http(base) = &cfg.central.url else {
            return None;
        };
        Some(EnrollFiles {
            base: base.trim_end_matches('/').to_string(),
            host_id: cfg.central.host_id.clone(),
            token_file: cfg.central.token_file.clone(),
            key_file: cfg.central.enroll_key_file.clone(),
            push_secret_file: cfg.push.secret_file.clone(),
        })
    }
}

/// True when `token_file` is missing or holds only whitespace: enrollment is due.
pub fn token_missing(token_file: &Path) -> bool {
    match std::fs::read(token_file) {
        Ok(b) => b.iter().all(u8::is_ascii_whitespace),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// The key in `path`: owner-only, trailing whitespace removed, not empty.
pub fn read_key_file(path: &Path) -> Result<String, EnrollError> {
    let err = |reason: &str| EnrollError::KeyFile {
        path: path.into(),
        reason: reason.into(),
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(err("does not exist (and there is no token either)"))
        }
        Err(e) => return Err(err(&format!("cannot be read: {e}"))),
    };
    if !meta.is_file() {
        return Err(err("is not a regular file"));
    }
    #[cfg(unix)]
    if meta.permissions().mode() & 0o044 != 0 {
        return Err(err("is readable by group or others; chmod 600 it"));
    }
    #[cfg(windows)]
    if let Some(why) = crate::platform::secret_file_problem(path, &meta) {
        return Err(err(&why));
    }
    let bytes = match crate::fsutil::read_capped(path, CAP) {
        Ok(Some(b)) => b,
        Ok(None) => return Err(err("does not exist (and there is no token either)")),
        Err(e) => return Err(err(&format!("cannot be read: {e}"))),
    };
    read_key_text(&bytes).map_err(err)
}

/// The key in what a file or stdin held.
pub fn read_key_text(bytes: &[u8]) -> Result<String, &'static str> {
    let text = std::str::from_utf8(bytes).map_err(|_| "is not UTF-8 text")?;
    let key = text.trim();
    if key.is_empty() {
        return Err("is empty");
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("holds more than one word");
    }
    Ok(key.to_string())
}

#[derive(serde::Deserialize)]
struct Enrolled {
    token: String,
    push_secret: String,
}

/// One exchange: the key for a token and push secret, written atomically (0600, fsynced);
/// then the key file (if any) is removed.
pub async fn enroll(files: &EnrollFiles, key: &str, key_file: Option<&Path>) -> Result<(), EnrollError> {
    let url = format!("{}/v1/enroll", files.base);
    let client = reqwest::Client::builder()
        .user_agent(format!("plesk-reseller-agent/{}", crate::VERSION))
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| EnrollError::Network {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    let body = serde_json::json!({"enroll_key": key, "host_id": files.host_id, "agent_version": crate::VERSION});
    let response = client
        .post(&url)
        .header(CONTENT_TYPE, "application/json")
        .timeout(REQUEST_TIMEOUT)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| EnrollError::Network {
            url: url.clone(),
            // reqwest's error names the URL only; the key is in the body, never in it.
            reason: e.without_url().to_string(),
        })?;
    let status = response.status();
    let text = match response.bytes().await {
        Ok(b) if b.len() as u64 <= CAP => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    match status {
        StatusCode::CREATED | StatusCode::OK => {}
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::CONFLICT | StatusCode::BAD_REQUEST => {
            return Err(EnrollError::Refused {
                url,
                status: status.as_u16(),
                sentence: sentence(&text),
            })
        }
        other => {
            return Err(EnrollError::Status {
                url,
                status: other.as_u16(),
            })
        }
    }
    let got: Enrolled = serde_json::from_str(&text).map_err(|_| EnrollError::Status {
        url: url.clone(),
        status: status.as_u16(),
    })?;
    let write = |path: &Path, value: &str| {
        let written = crate::fsutil::write_atomic(path, format!("{value}\n").as_bytes(), 0o600);
        // Windows has no mode bits: SYSTEM and Administrators only, as `check` expects.
        #[cfg(windows)]
        let written = written.and_then(|()| crate::platform::windows::acl::restrict_to_admins(path));
        written.map_err(|e| EnrollError::Write {
            path: path.into(),
            reason: e.to_string(),
        })
    };
    // The push secret first: once the token is there, the agent counts as enrolled.
    write(&files.push_secret_file, &got.push_secret)?;
    write(&files.token_file, &got.token)?;
    if let Some(k) = key_file {
        if let Err(e) = std::fs::remove_file(k) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("enrolled, but cannot remove the enroll key file {}: {e}", k.display());
            }
        }
    }
    tracing::info!(host = %files.host_id, url = %files.base, "enrolled: the token and push secret are written");
    Ok(())
}

/// The store's sentence: plain text, or `{"error": …}`, one line, cut short.
fn sentence(text: &str) -> String {
    let s = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| text.trim().to_string());
    let line = s.lines().next().unwrap_or("").trim();
    match line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None if line.is_empty() => "(no reason given)".into(),
        None => line.to_string(),
    }
}

struct State {
    http: Option<Arc<HttpTransport>>,
    /// The last refusal and when the next attempt may go.
    refused: Option<(EnrollError, SystemTime)>,
}

/// The HTTP transport of an agent without a token: enrolls first, then is [`HttpTransport`].
pub struct EnrollingTransport {
    files: EnrollFiles,
    clock: Arc<dyn Clock>,
    state: tokio::sync::Mutex<State>,
    /// Requests sent to `/v1/enroll` (tests: never hammered).
    pub attempts: Mutex<u64>,
}

impl EnrollingTransport {
    pub fn new(files: EnrollFiles) -> Self {
        Self::with_clock(files, Arc::new(SystemClock))
    }

    pub fn with_clock(files: EnrollFiles, clock: Arc<dyn Clock>) -> Self {
        EnrollingTransport {
            files,
            clock,
            state: tokio::sync::Mutex::new(State {
                http: None,
                refused: None,
            }),
            attempts: Mutex::new(0),
        }
    }

    /// The real transport once there is a token; enrolls when due.
    async fn ready(&self) -> Result<Arc<HttpTransport>, CentralError> {
        let mut st = self.state.lock().await;
        if let Some(h) = &st.http {
            return Ok(h.clone());
        }
        // A token may have arrived otherwise (`enroll`, an operator): use it.
        if !token_missing(&self.files.token_file) {
            let h = Arc::new(HttpTransport::new(
                &self.files.base,
                &self.files.host_id,
                &self.files.token_file,
            )?);
            st.http = Some(h.clone());
            return Ok(h);
        }
        let now = self.clock.now();
        if let Some((e, next)) = &st.refused {
            if now < *next {
                return Err(enrolling(e, next.duration_since(now).unwrap_or_default()));
            }
        }
        let attempt = async {
            let key = read_key_file(&self.files.key_file)?;
            *self.attempts.lock().unwrap() += 1;
            enroll(&self.files, &key, Some(&self.files.key_file)).await
        };
        match attempt.await {
            Ok(()) => {
                st.refused = None;
                let h = Arc::new(HttpTransport::new(
                    &self.files.base,
                    &self.files.host_id,
                    &self.files.token_file,
                )?);
                st.http = Some(h.clone());
                Ok(h)
            }
            Err(e) if e.is_refusal() => {
                let changed = st.refused.as_ref().map(|(old, _)| old.to_string()) != Some(e.to_string());
                if changed {
                    tracing::error!("{e}; trying again every {} minutes", REFUSED_RETRY.as_secs() / 60);
                }
                let err = enrolling(&e, REFUSED_RETRY);
                st.refused = Some((e, now + REFUSED_RETRY));
                Err(err)
            }
            Err(EnrollError::Network { url, reason }) => Err(CentralError::Network { url, reason }),
            Err(EnrollError::Status { url, status }) => Err(CentralError::Status { url, status }),
            Err(e) => Err(CentralError::Enrolling {
                sentence: e.to_string(),
                retry_in: Duration::ZERO,
            }),
        }
    }
}

fn enrolling(e: &EnrollError, retry_in: Duration) -> CentralError {
    CentralError::Enrolling {
        sentence: e.to_string(),
        retry_in,
    }
}

impl Transport for EnrollingTransport {
    fn kind(&self) -> &'static str {
        "http"
    }
    fn url(&self) -> &str {
        &self.files.base
    }
    fn poll(&self, req: PollRequest) -> BoxFuture<'_, Result<PollOutcome, CentralError>> {
        Box::pin(async move { self.ready().await?.poll(req).await })
    }
    fn send_result<'a>(&'a self, job_id: &'a str, result: &'a JobResult) -> BoxFuture<'a, Result<(), CentralError>> {
        Box::pin(async move { self.ready().await?.send_result(job_id, result).await })
    }
    fn send_report<'a>(&'a self, report: &'a Report) -> BoxFuture<'a, Result<(), CentralError>> {
        Box::pin(async move { self.ready().await?.send_report(report).await })
    }
}

// Unix only: they set mode bits (the Windows ACL checks have their own tests in platform/).
#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    struct FakeClock(Mutex<SystemTime>);
    impl Clock for FakeClock {
        fn now(&self) -> SystemTime {
            *self.0.lock().unwrap()
        }
    }

    /// A store that refuses every enroll with 401 and counts the requests.
    fn refusing_store() -> (String, Arc<Mutex<u32>>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let n = Arc::new(Mutex::new(0));
        let seen = n.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let mut s = s;
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf);
                *seen.lock().unwrap() += 1;
                let body = "this enroll key is not valid\n";
                let _ = write!(
                    s,
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (format!("http://{addr}"), n)
    }

    #[tokio::test]
    async fn a_refusal_is_shown_and_tried_again_only_after_five_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("enroll.key");
        std::fs::write(&key_file, "prk_secretkeyvalue\n").unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (base, requests) = refusing_store();
        let files = EnrollFiles {
            base,
            host_id: "web-1".into(),
            token_file: dir.path().join("token"),
            key_file: key_file.clone(),
            push_secret_file: dir.path().join("push.secret"),
        };
        let clock = Arc::new(FakeClock(Mutex::new(SystemTime::now())));
        let t = EnrollingTransport::with_clock(files, clock.clone());
        let req = || PollRequest {
            etag: None,
            key_number: None,
            wait: None,
        };
        for _ in 0..5 {
            match t.poll(req()).await {
                Err(CentralError::Enrolling { sentence, .. }) => {
                    assert!(sentence.contains("this enroll key is not valid"), "{sentence}");
                    assert!(!sentence.contains("secretkeyvalue"), "{sentence}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(*requests.lock().unwrap(), 1, "one request, whoever asks meanwhile");
        *clock.0.lock().unwrap() += REFUSED_RETRY - Duration::from_secs(1);
        let _ = t.poll(req()).await;
        assert_eq!(*requests.lock().unwrap(), 1);
        *clock.0.lock().unwrap() += Duration::from_secs(1);
        let _ = t.poll(req()).await;
        assert_eq!(*requests.lock().unwrap(), 2, "again after five minutes");
        assert!(key_file.exists(), "a refused key stays");
        assert!(!dir.path().join("token").exists());
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("enroll.key");
        std::fs::write(&f, "prk_a_b\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_key_file(&f).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && e.contains("enroll.key"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_key_file(&f).unwrap(), "prk_a_b");
        assert!(token_missing(&dir.path().join("token")));
        std::fs::write(dir.path().join("token"), " \n").unwrap();
        assert!(token_missing(&dir.path().join("token")));
    }
}
