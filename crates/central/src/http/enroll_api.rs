//! `POST /v1/enroll` on the agents' listener (contract version 2, section 10): an enroll key
//! for a host's own token and push secret. No bearer token; a body of at most 4 KiB; at most
//! 10 failed attempts per source address a minute, then `429` until the minute is over.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::Deserialize;

use crate::fleet::enroll::EnrollError;
use crate::http::app::App;
use crate::http::server::Peer;

/// The largest enroll request (contract: 4 KiB).
pub const MAX_ENROLL_BODY: usize = 4096;
/// Failed attempts a source address may make in one [`WINDOW`].
pub const FAILURES_ALLOWED: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Sources remembered at once; beyond that they share one count (memory stays bounded).
const MAX_TRACKED: usize = 10_000;

/// Failed enroll attempts per source (an IPv6 /64 is one source), in fixed one-minute windows.
#[derive(Default)]
pub struct Failures {
    map: HashMap<IpAddr, (Instant, u32)>,
}

fn source(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

impl Failures {
    fn key(&mut self, ip: IpAddr, now: Instant) -> IpAddr {
        let ip = source(ip);
        if self.map.contains_key(&ip) || self.map.len() < MAX_TRACKED {
            return ip;
        }
        self.map.retain(|_, (since, _)| now - *since < WINDOW);
        if self.map.len() < MAX_TRACKED {
            ip
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        }
    }

    /// How long `ip` must still wait, if it made its allowance of failures this minute.
    pub fn blocked(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let key = self.key(ip, now);
        let (since, count) = *self.map.get(&key)?;
        if now - since >= WINDOW {
            self.map.remove(&key);
            return None;
        }
        (count >= FAILURES_ALLOWED).then(|| WINDOW - (now - since))
    }

    pub fn failed(&mut self, ip: IpAddr, now: Instant) {
        let key = self.key(ip, now);
        let e = self.map.entry(key).or_insert((now, 0));
        if now - e.0 >= WINDOW {
            *e = (now, 0);
        }
        e.1 += 1;
    }
}

pub fn router(app: App) -> Router {
    let failures = Arc::new(Mutex::new(Failures::default()));
    Router::new()
        .route(
            "/v1/enroll",
            post(
                move |State(app): State<App>, peer: Option<Extension<Peer>>, headers: HeaderMap, body: Body| {
                    enroll(app, failures.clone(), peer.map(|p| p.0 .0.ip()), headers, body)
                },
            ),
        )
        .with_state(app)
}

fn plain(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{msg}\n"),
    )
        .into_response()
}

#[derive(Deserialize)]
struct EnrollRequest {
    enroll_key: String,
    host_id: String,
    #[allow(dead_code)]
    agent_version: Option<String>,
}

async fn enroll(
    app: App,
    failures: Arc<Mutex<Failures>>,
    ip: Option<IpAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let lock = || failures.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(ip) = ip {
        if let Some(wait) = lock().blocked(ip, Instant::now()) {
            let mut r = plain(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed enroll attempts from this address; try again in a minute",
            );
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            r.headers_mut().insert(header::RETRY_AFTER, secs.max(1).into());
            return r;
        }
    }
    let answer = async {
        let bytes = super::body::read_body_max(body, &headers, MAX_ENROLL_BODY, "4 KiB").await?;
        let req: EnrollRequest = serde_json::from_slice(&bytes).map_err(|_| {
            plain(
                StatusCode::BAD_REQUEST,
                "the body is not {\"enroll_key\": …, \"host_id\": …, \"agent_version\": …}",
            )
        })?;
        match app.store.enroll(&req.enroll_key, &req.host_id).await {
            Ok(e) => {
                // The key is never logged; its id is the part before the secret.
                let key_id = req.enroll_key.split('_').nth(1).unwrap_or("?");
                tracing::info!(
                    host = %e.host_id,
                    key = %key_id,
                    "host {} by enroll key {key_id}",
                    if e.re_enrolled { "re-enrolled" } else { "enrolled" }
                );
                if let Some(orders) = &app.orders {
                    orders.host_changed(&e.host_id).await;
                }
                Ok((StatusCode::CREATED, Json(e)).into_response())
            }
            Err(e) => Err(enroll_error(e)),
        }
    }
    .await;
    match answer {
        Ok(r) => r,
        Err(r) => {
            if let (Some(ip), true) = (ip, r.status().is_client_error()) {
                tracing::warn!("a refused enroll attempt from {ip} ({})", r.status());
                lock().failed(ip, Instant::now());
            }
            r
        }
    }
}

fn enroll_error(e: EnrollError) -> Response {
    let status = match &e {
        EnrollError::Unusable => StatusCode::UNAUTHORIZED,
        EnrollError::PatternMismatch { .. } | EnrollError::BoundElsewhere { .. } => StatusCode::FORBIDDEN,
        EnrollError::BadHostId(_) | EnrollError::BadRequest(_) => StatusCode::BAD_REQUEST,
        EnrollError::HostExists(_) => StatusCode::CONFLICT,
        EnrollError::NoKey(_) => StatusCode::UNAUTHORIZED,
        EnrollError::Random(_) | EnrollError::Store(_) => {
            tracing::error!("{e}");
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the central's database failed; see its log",
            );
        }
    };
    plain(status, &e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_a_minute_then_429_until_the_minute_ends() {
        let mut f = Failures::default();
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        for i in 0..9 {
            f.failed(a, t0 + Duration::from_secs(i));
        }
        assert_eq!(f.blocked(a, t0 + Duration::from_secs(10)), None);
        f.failed(a, t0 + Duration::from_secs(10));
        assert_eq!(
            f.blocked(a, t0 + Duration::from_secs(20)),
            Some(Duration::from_secs(40))
        );
        assert_eq!(f.blocked("192.0.2.8".parse().unwrap(), t0), None, "another address");
        assert_eq!(f.blocked(a, t0 + WINDOW), None, "a new minute");
    }
}
