//! The HTTP transport (section 5): bearer token, `User-Agent`, ETag / `If-None-Match`,
//! `X-Plesk-Key-Number`, long-poll timeout `wait + 10 s`, bodies capped at 1 MiB read in
//! chunks, https only except for loopback hosts.

#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;

use super::{parse_instructions, CentralError, JobResult, PollOutcome, PollRequest, Report, Transport, MAX_BODY};
use crate::BoxFuture;
use plesk_reseller_protocol::{paths, KEY_NUMBER_HEADER, WAIT_PARAM};

/// Timeout of requests that are not long-polls.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Added to `wait` for a long-poll's timeout.
pub const LONG_POLL_SLACK: Duration = Duration::from_secs(10);
/// Time allowed to open a TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest token file accepted.
const TOKEN_FILE_CAP: u64 = 64 * 1024;
/// How much of an acknowledgement's body is read before it is dropped.
const ACK_BODY_CAP: usize = 64 * 1024;

pub struct HttpTransport {
    base: String,
    host_id: String,
    token: String,
    client: reqwest::Client,
    request_timeout: Duration,
    long_poll_slack: Duration,
}

impl HttpTransport {
    /// `base` is `[central] url` (already checked by config: https, or http on loopback);
    /// the token is read from `token_file` with trailing whitespace removed.
    pub fn new(base: &str, host_id: &str, token_file: &Path) -> Result<Self, CentralError> {
        let token = read_token(token_file)?;
        let client = reqwest::Client::builder()
            .user_agent(format!("plesk-reseller-agent/{}", crate::VERSION))
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect from the store is an error: the token must not follow it elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CentralError::Network {
                url: base.to_string(),
                reason: format!("cannot set up the HTTP client: {}", error_reason(&e)),
            })?;
        Ok(HttpTransport {
            base: base.trim_end_matches('/').to_string(),
            host_id: host_id.to_string(),
            token,
            client,
            request_timeout: REQUEST_TIMEOUT,
            long_poll_slack: LONG_POLL_SLACK,
        })
    }

    /// Replaces [`REQUEST_TIMEOUT`] and [`LONG_POLL_SLACK`] (tests use short ones).
    pub fn with_timeouts(mut self, request: Duration, slack: Duration) -> Self {
        self.request_timeout = request;
        self.long_poll_slack = slack;
        self
    }

    fn instructions_url(&self) -> String {
        format!("{}{}", self.base, paths::instructions(&self.host_id))
    }

    fn result_url(&self, job_id: &str) -> String {
        format!("{}{}", self.base, paths::result(&self.host_id, job_id))
    }

    fn report_url(&self) -> String {
        format!("{}{}", self.base, paths::report(&self.host_id))
    }

    fn bearer(&self) -> HeaderValue {
        // Checked in read_token, so this cannot fail; fall back to an empty value regardless.
        let mut v = HeaderValue::from_str(&format!("Bearer {}", self.token)).unwrap_or(HeaderValue::from_static(""));
        v.set_sensitive(true);
        v
    }

    async fn poll_inner(&self, req: PollRequest) -> Result<PollOutcome, CentralError> {
        let base_url = self.instructions_url();
        let wait_secs = req.wait.map(|w| w.as_secs()).unwrap_or(0);
        let (url, timeout) = if wait_secs > 0 {
            (
                format!("{base_url}?{WAIT_PARAM}={wait_secs}"),
                Duration::from_secs(wait_secs) + self.long_poll_slack,
            )
        } else {
            (base_url, self.request_timeout)
        };
        let mut builder = self
            .client
            .get(&url)
            .header(AUTHORIZATION, self.bearer())
            .timeout(timeout);
        if let Some(etag) = req.etag.as_deref().and_then(|e| HeaderValue::from_str(e).ok()) {
            builder = builder.header(IF_NONE_MATCH, etag);
        }
        if let Some(key) = req.key_number.as_deref().and_then(|k| HeaderValue::from_str(k).ok()) {
            builder = builder.header(KEY_NUMBER_HEADER, key);
        }
        let mut response = builder.send().await.map_err(|e| network(&url, &e))?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_MODIFIED => return Ok(PollOutcome::NotModified),
            StatusCode::SERVICE_UNAVAILABLE => {
                // A store restarting says when to come back (version 2): not a failure.
                if let Some(secs) = retry_after(response.headers()) {
                    return Err(CentralError::RetryAfter { url, secs });
                }
                return Err(status_error(&url, StatusCode::SERVICE_UNAVAILABLE));
            }
            other => return Err(status_error(&url, other)),
        }
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        let body = read_body(&mut response, &url, MAX_BODY).await?;
        let instructions = parse_instructions(&url, &body)?;
        Ok(PollOutcome::Instructions { instructions, etag })
    }

    /// Sends a JSON body and treats 2xx (and, for a result, 409 and 410) as acknowledged.
    async fn send_json(
        &self,
        method: reqwest::Method,
        url: String,
        body: Vec<u8>,
        result: bool,
    ) -> Result<(), CentralError> {
        let mut response = self
            .client
            .request(method, &url)
            .header(AUTHORIZATION, self.bearer())
            .header(CONTENT_TYPE, "application/json")
            .timeout(self.request_timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| network(&url, &e))?;
        let status = response.status();
        // Drain a little so the connection can be reused; a huge or endless body is cut off.
        let _ = read_body(&mut response, &url, ACK_BODY_CAP).await;
        if status.is_success() || (result && status == StatusCode::CONFLICT) {
            Ok(())
        } else if result && status == StatusCode::GONE {
            // Version 2: the store no longer has the job (e.g. its host was removed); the
            // result has nowhere to go, and retrying it for ever helps no one.
            tracing::info!(url = %url, "the store no longer has this job (410 Gone); its result counts as delivered and is dropped");
            Ok(())
        } else {
            Err(status_error(&url, status))
        }
    }
}

impl Transport for HttpTransport {
    fn kind(&self) -> &'static str {
        "http"
    }
    fn url(&self) -> &str {
        &self.base
    }
    fn poll(&self, req: PollRequest) -> BoxFuture<'_, Result<PollOutcome, CentralError>> {
        Box::pin(self.poll_inner(req))
    }
    fn send_result<'a>(&'a self, job_id: &'a str, result: &'a JobResult) -> BoxFuture<'a, Result<(), CentralError>> {
        Box::pin(async move {
            let url = self.result_url(job_id);
            let body = serde_json::to_vec(result).map_err(|e| CentralError::Network {
                url: url.clone(),
                reason: format!("cannot encode the result: {e}"),
            })?;
            self.send_json(reqwest::Method::POST, url, body, true).await
        })
    }
    fn send_report<'a>(&'a self, report: &'a Report) -> BoxFuture<'a, Result<(), CentralError>> {
        Box::pin(async move {
            let url = self.report_url();
            let body = serde_json::to_vec(report).map_err(|e| CentralError::Network {
                url: url.clone(),
                reason: format!("cannot encode the report: {e}"),
            })?;
            self.send_json(reqwest::Method::PUT, url, body, false).await
        })
    }
}

/// Reads the token: owner-only file, trailing whitespace removed, usable in a header.
fn read_token(path: &Path) -> Result<String, CentralError> {
    let err = |reason: &str| CentralError::Token {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(err("it does not exist")),
        Err(e) => return Err(err(&e.to_string())),
    };
    if !meta.is_file() {
        return Err(err("it is not a regular file"));
    }
    #[cfg(unix)]
    if meta.permissions().mode() & 0o044 != 0 {
        return Err(err("it is readable by group or others; chmod 600 it"));
    }
    #[cfg(windows)]
    if let Some(why) = crate::platform::secret_file_problem(path, &meta) {
        return Err(err(&why));
    }
    let bytes = match crate::fsutil::read_capped(path, TOKEN_FILE_CAP) {
        Ok(Some(b)) => b,
        Ok(None) => return Err(err("it does not exist")),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(err(&format!("it is larger than {TOKEN_FILE_CAP} bytes")))
        }
        Err(e) => return Err(err(&e.to_string())),
    };
    let text = String::from_utf8(bytes).map_err(|_| err("it is not UTF-8 text"))?;
    let token = text.trim_end();
    if token.is_empty() {
        return Err(err("it is empty"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(err("it contains characters not allowed in an HTTP header"));
    }
    Ok(token.to_string())
}

/// Reads the body in chunks, stopping with `TooLarge` as soon as it passes `cap` bytes
/// (at once when Content-Length already says so).
async fn read_body(response: &mut reqwest::Response, url: &str, cap: usize) -> Result<Vec<u8>, CentralError> {
    let too_large = || CentralError::TooLarge {
        url: url.to_string(),
        limit: cap,
    };
    if response.content_length().is_some_and(|len| len > cap as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| network(url, &e))? {
        if body.len() + chunk.len() > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Most seconds of `Retry-After` taken as "restarting, come back then" (contract 5.1).
pub const MAX_RETRY_AFTER: u64 = 60;

/// `Retry-After` in whole seconds, when it is one and at most [`MAX_RETRY_AFTER`]; an HTTP
/// date or a longer delay is an ordinary failure with backoff.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: u64 = v.parse().ok()?;
    (secs <= MAX_RETRY_AFTER).then_some(secs)
}

fn status_error(url: &str, status: StatusCode) -> CentralError {
    let url = url.to_string();
    match status.as_u16() {
        401 | 403 => CentralError::Unauthorized {
            url,
            status: status.as_u16(),
        },
        404 => CentralError::UnknownHost { url },
        s => CentralError::Status { url, status: s },
    }
}

fn network(url: &str, e: &reqwest::Error) -> CentralError {
    CentralError::Network {
        url: url.to_string(),
        reason: error_reason(e),
    }
}

/// A short human phrase for a transport error. reqwest errors never carry request headers,
/// so the token cannot leak through here.
fn error_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_string();
    }
    let mut io_kind = None;
    let mut innermost = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        innermost = Some(s.to_string());
        source = s.source();
    }
    use std::io::ErrorKind::*;
    match io_kind {
        Some(ConnectionRefused) => return "connection refused".to_string(),
        Some(ConnectionReset) => return "connection reset by the server".to_string(),
        Some(ConnectionAborted) => return "connection aborted".to_string(),
        Some(TimedOut) => return "timed out".to_string(),
        Some(HostUnreachable) | Some(NetworkUnreachable) => return "host unreachable".to_string(),
        _ => {}
    }
    let detail = innermost.unwrap_or_else(|| e.to_string());
    if e.is_connect() {
        format!("cannot connect: {detail}")
    } else if e.is_body() || e.is_decode() {
        format!("the answer broke off: {detail}")
    } else {
        detail
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_from_a_base_without_trailing_slash() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "secret\n").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let t = HttpTransport::new("https://store.example.com/plesk-agent//", "web-042", &token).unwrap();
        assert_eq!(t.url(), "https://store.example.com/plesk-agent");
        assert_eq!(
            t.instructions_url(),
            "https://store.example.com/plesk-agent/v1/hosts/web-042/instructions"
        );
        assert_eq!(
            t.result_url("ord-1001"),
            "https://store.example.com/plesk-agent/v1/hosts/web-042/jobs/ord-1001/result"
        );
        assert_eq!(
            t.report_url(),
            "https://store.example.com/plesk-agent/v1/hosts/web-042/report"
        );
        assert!(t.bearer().is_sensitive());
    }

    #[test]
    fn token_with_control_characters_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "abc\ndef\n").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let Err(CentralError::Token { reason, .. }) = HttpTransport::new("https://x", "h", &token) else {
            panic!("expected a token error")
        };
        assert!(reason.contains("not allowed"), "{reason}");
    }
}
