//! The wake-up push listener (contract 5.4).
//!
//! `POST /v1/wake` with a valid `X-Signature` only wakes the main loop; the work itself
//! always comes from the authenticated poll. Wakes are stored as a single
//! [`Notify`] permit, so any number of pushes during a poll coalesce into one more poll.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use hmac::{KeyInit, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

use crate::clock::{unix_secs, Clock};

/// The only path the listener serves.
pub const WAKE_PATH: &str = "/v1/wake";
/// The header carrying `t=<unix seconds>,v1=<hex hmac>`.
pub const SIGNATURE_HEADER: &str = "x-signature";
/// Largest accepted body.
pub const MAX_BODY: usize = 64 * 1024;
/// How far `t` may be from now, either way.
pub const TOLERANCE_SECS: u64 = 300;
/// Connections served at once; more are dropped on accept.
pub const MAX_CONNECTIONS: usize = 64;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why a push was refused with 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("the request has no X-Signature header")]
    Missing,
    #[error("the X-Signature header is not of the form t=<unix seconds>,v1=<hex HMAC-SHA256>")]
    Malformed,
    #[error("the X-Signature timestamp {t} is more than 300 seconds away from the agent's clock ({now})")]
    Stale { t: u64, now: u64 },
    #[error("the X-Signature does not match the request body")]
    Mismatch,
}

/// Checks `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
///
/// Parts may come in any order; several `v1=` are allowed (key rotation) and the push is
/// accepted if any matches; unknown parts are ignored. An empty secret accepts nothing:
/// anyone could sign with it.
pub fn verify_signature(header: Option<&str>, body: &[u8], secret: &[u8], now_unix: u64) -> Result<(), PushError> {
    let header = match header.map(str::trim) {
        None | Some("") => return Err(PushError::Missing),
        Some(h) => h,
    };
    let mut t: Option<u64> = None;
    let mut sigs: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((key, value)) = part.split_once('=') else {
            return Err(PushError::Malformed);
        };
        match key.trim() {
            "t" => {
                let value = value.trim();
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(PushError::Malformed);
                }
                let parsed = value.parse::<u64>().map_err(|_| PushError::Malformed)?;
                // Two different timestamps leave it unclear what was signed.
                if t.is_some_and(|old| old != parsed) {
                    return Err(PushError::Malformed);
                }
                t = Some(parsed);
            }
            "v1" => match hex::decode(value.trim()) {
                Ok(sig) if sig.len() == 32 => sigs.push(sig),
                _ => {}
            },
            _ => {}
        }
    }
    let Some(t) = t else {
        return Err(PushError::Malformed);
    };
    // A v1 that is not 64 hex digits cannot match anything: the sender is broken.
    if sigs.is_empty() {
        return Err(PushError::Malformed);
    }
    if t.abs_diff(now_unix) > TOLERANCE_SECS {
        return Err(PushError::Stale { t, now: now_unix });
    }
    if secret.is_empty() {
        return Err(PushError::Mismatch);
    }
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| PushError::Mismatch)?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    // verify_slice compares in constant time; each candidate needs its own clone.
    if sigs.iter().any(|sig| mac.clone().verify_slice(sig).is_ok()) {
        Ok(())
    } else {
        Err(PushError::Mismatch)
    }
}

/// Counts for `status` (`push.accepted`, `push.rejected`).
#[derive(Debug, Default)]
pub struct PushCounters {
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
}

/// Serves the push listener on an already bound `listener` until `shutdown` completes.
///
/// `secret` is read per request, so a reload (SIGHUP) takes effect for the next push.
pub async fn serve(
    listener: TcpListener,
    secret: Arc<RwLock<Vec<u8>>>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    counters: Arc<PushCounters>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let ctx = Arc::new(Ctx {
        secret,
        clock,
        wake,
        counters,
        refusals: Default::default(),
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(false);
    let builder = Arc::new(builder);

    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "push listener cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "push listener is at {MAX_CONNECTIONS} connections; dropping one");
            continue;
        };
        let ctx = ctx.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(handle(&ctx, peer, req).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(REQUEST_TIMEOUT, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "push connection ended with an error")
                }
                Err(_) => {
                    tracing::info!(%peer, "push request not completed within 10 seconds; connection closed")
                }
            }
            drop(permit);
        });
    }
    tracing::debug!("push listener stopped");
}

struct Ctx {
    secret: Arc<RwLock<Vec<u8>>>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    counters: Arc<PushCounters>,
    refusals: std::sync::Mutex<RefusalLog>,
}

/// At most one "push refused" log line per this interval: a scanner must not flood the
/// journal (the count in `status` stays exact).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// When the last refusal was logged, and how many were not logged since.
#[derive(Default)]
struct RefusalLog {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl Ctx {
    fn reject(&self, peer: SocketAddr, status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        let suppressed = {
            let mut log = self.refusals.lock().unwrap();
            let now = std::time::Instant::now();
            if log.last.is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_INTERVAL) {
                log.suppressed += 1;
                None
            } else {
                log.last = Some(now);
                Some(std::mem::take(&mut log.suppressed))
            }
        };
        if let Some(more) = suppressed {
            if status == StatusCode::UNAUTHORIZED {
                tracing::warn!(%peer, reason, refused_unlogged = more, "push refused");
            } else {
                tracing::info!(%peer, status = status.as_u16(), reason, refused_unlogged = more, "push refused");
            }
        }
        response(status, reason)
    }
}

async fn handle(ctx: &Ctx, peer: SocketAddr, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() != WAKE_PATH {
        return ctx.reject(peer, StatusCode::NOT_FOUND, "not found");
    }
    if req.method() != Method::POST {
        let mut resp = ctx.reject(peer, StatusCode::METHOD_NOT_ALLOWED, "only POST is allowed");
        resp.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return ctx.reject(peer, StatusCode::PAYLOAD_TOO_LARGE, "body over 64 KiB");
    }
    // A non-UTF-8 header is present but unreadable: malformed, not missing.
    let header: Result<Option<String>, PushError> = match req.headers().get(SIGNATURE_HEADER) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.to_owned())).map_err(|_| PushError::Malformed),
    };
    // Limited also caps chunked bodies that declare no length.
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return ctx.reject(peer, StatusCode::PAYLOAD_TOO_LARGE, "body over 64 KiB");
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "push body could not be read");
            return ctx.reject(peer, StatusCode::BAD_REQUEST, "body could not be read");
        }
    };
    let now = unix_secs(ctx.clock.now());
    let verdict = header.and_then(|h| {
        // Copy out of the lock: a std guard must not live across an await.
        let secret = match ctx.secret.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        verify_signature(h.as_deref(), &body, &secret, now)
    });
    match verdict {
        Ok(()) => {
            ctx.counters.accepted.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "push accepted; waking the poll loop");
            ctx.wake.notify_one();
            response(StatusCode::ACCEPTED, "accepted")
        }
        Err(e) => ctx.reject(peer, StatusCode::UNAUTHORIZED, &e.to_string()),
    }
}

fn response(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn accepts_a_valid_signature_in_any_part_order() {
        let sig = sign(b"k", NOW, b"{}");
        let a = format!("t={NOW},v1={sig}");
        let b = format!("v1={sig}, t={NOW}, v0=whatever");
        assert_eq!(verify_signature(Some(&a), b"{}", b"k", NOW), Ok(()));
        assert_eq!(verify_signature(Some(&b), b"{}", b"k", NOW), Ok(()));
    }

    #[test]
    fn accepts_when_any_of_several_v1_matches() {
        let good = sign(b"new", NOW, b"");
        let old = sign(b"old", NOW, b"");
        let h = format!("t={NOW},v1={old},v1={good}");
        assert_eq!(verify_signature(Some(&h), b"", b"new", NOW), Ok(()));
        let h = format!("t={NOW},v1={old}");
        assert_eq!(verify_signature(Some(&h), b"", b"new", NOW), Err(PushError::Mismatch));
    }

    #[test]
    fn missing_and_malformed_headers() {
        assert_eq!(verify_signature(None, b"", b"k", NOW), Err(PushError::Missing));
        assert_eq!(verify_signature(Some("  "), b"", b"k", NOW), Err(PushError::Missing));
        let sig = sign(b"k", NOW, b"");
        for h in [
            format!("v1={sig}"),
            format!("t=,v1={sig}"),
            format!("t=-5,v1={sig}"),
            format!("t=12x,v1={sig}"),
            format!("t={NOW}"),
            format!("t={NOW},v1=zz"),
            format!("t={NOW},v1={}", &sig[..10]),
            format!("t={NOW};v1={sig}"),
            format!("t={NOW},t={},v1={sig}", NOW + 1),
            "garbage".to_string(),
        ] {
            assert_eq!(
                verify_signature(Some(&h), b"", b"k", NOW),
                Err(PushError::Malformed),
                "{h}"
            );
        }
    }

    #[test]
    fn window_is_300_seconds_either_way() {
        for t in [NOW - 300, NOW + 300] {
            let h = format!("t={t},v1={}", sign(b"k", t, b"x"));
            assert_eq!(verify_signature(Some(&h), b"x", b"k", NOW), Ok(()));
        }
        for t in [NOW - 301, NOW + 301, 0] {
            let h = format!("t={t},v1={}", sign(b"k", t, b"x"));
            assert_eq!(
                verify_signature(Some(&h), b"x", b"k", NOW),
                Err(PushError::Stale { t, now: NOW })
            );
        }
    }

    #[test]
    fn signature_covers_timestamp_and_body() {
        let sig = sign(b"k", NOW, b"body");
        let h = format!("t={},v1={sig}", NOW + 1);
        assert_eq!(verify_signature(Some(&h), b"body", b"k", NOW), Err(PushError::Mismatch));
        let h = format!("t={NOW},v1={sig}");
        assert_eq!(verify_signature(Some(&h), b"bodY", b"k", NOW), Err(PushError::Mismatch));
        assert_eq!(verify_signature(Some(&h), b"body", b"K", NOW), Err(PushError::Mismatch));
        // Upper-case hex is still the same signature.
        let h = format!("t={NOW},v1={}", sig.to_uppercase());
        assert_eq!(verify_signature(Some(&h), b"body", b"k", NOW), Ok(()));
    }

    #[test]
    fn empty_secret_accepts_nothing() {
        let h = format!("t={NOW},v1={}", sign(b"", NOW, b""));
        assert_eq!(verify_signature(Some(&h), b"", b"", NOW), Err(PushError::Mismatch));
    }

    #[test]
    fn error_messages_never_carry_the_secret() {
        let h = format!("t={NOW},v1={}", sign(b"topsecret", NOW, b""));
        let e = verify_signature(Some(&h), b"", b"othersecret", NOW).unwrap_err();
        assert!(!e.to_string().contains("topsecret") && !e.to_string().contains("othersecret"));
        let e = PushError::Stale { t: 1, now: NOW };
        assert!(e.to_string().contains("1700000000"));
    }
}
