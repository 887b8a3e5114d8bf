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
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

use crate::clock::{unix_secs, Clock};
use plesk_reseller_protocol::{paths::WAKE as WAKE_PATH, wake, ProtocolError, MAX_WAKE_BODY, SIGNATURE_HEADER};

/// Largest accepted body.
pub const MAX_BODY: usize = MAX_WAKE_BODY;
/// Connections served at once; more are dropped on accept.
pub const MAX_CONNECTIONS: usize = 64;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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
    let header: Result<Option<String>, ProtocolError> = match req.headers().get(SIGNATURE_HEADER) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.to_owned()))
            .map_err(|_| ProtocolError::SignatureMalformed),
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
        wake::verify(h.as_deref(), &body, &secret, now)
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
