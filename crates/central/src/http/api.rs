//! The agents' API (agent contract section 5, central contract section 3): the held poll
//! with ETag/304, results first-wins, reports; plus `/healthz` and `/metrics`.

// Helpers return a ready error Response for the handler to send as is; it is built once
// per failed request, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use plesk_reseller_protocol as proto;
use sha2::{Digest, Sha256};

use crate::fleet::store::{JobRow, ResultOutcome, StoreError};
use crate::fleet::tokens;
use crate::http::app::App;
use crate::metrics::HeldGuard;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/v1/hosts/{host}/instructions", get(instructions))
        .route("/v1/hosts/{host}/jobs/{job}/result", post(result))
        .route("/v1/hosts/{host}/report", put(report))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/buy", get(crate::http::buy::buy))
        .with_state(app.clone())
        .merge(super::enroll_api::router(app))
}

fn plain(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{msg}\n"),
    )
        .into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("{e}");
    plain(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the central's database failed; see its log",
    )
}

/// The host a request's bearer token belongs to, if it is `path_host`: 401 for no or an
/// unknown token, 403 for a valid token of another host (whether or not that host exists).
/// Answers the token's hash, for a held poll to check it again. A host's first request is
/// recorded as seen at once, later ones in the batch.
async fn authorize(app: &App, headers: &HeaderMap, path_host: &str) -> Result<String, Response> {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(token) = tokens::bearer(auth) else {
        return Err(plain(StatusCode::UNAUTHORIZED, "missing bearer token"));
    };
    let hash = tokens::hash(token);
    match app.store.host_by_token(&hash).await {
        Err(e) => Err(internal(e)),
        Ok(None) => Err(plain(StatusCode::UNAUTHORIZED, "unknown token")),
        Ok(Some((h, seen))) if h == path_host => {
            app.saw(&h);
            if seen.is_none() {
                app.store.first_seen(&h).await.map_err(internal)?;
            }
            Ok(hash)
        }
        Ok(Some(_)) => Err(plain(StatusCode::FORBIDDEN, "this token belongs to another host")),
    }
}

/// Whether `token_hash` is still `host`'s token (rotated or removed: no longer).
async fn still_valid(app: &App, token_hash: &str, host: &str) -> Result<bool, Response> {
    match app.store.host_by_token(token_hash).await {
        Ok(found) => Ok(found.is_some_and(|(h, _)| h == host)),
        Err(e) => Err(internal(e)),
    }
}

/// The poll answer for a host and its ETag: quoted hex SHA-256 of the body, so the same
/// body has the same ETag across restarts and any change of it changes the ETag.
pub fn render(app: &App, buy: Option<String>, catalog: Option<String>, jobs: &[JobRow]) -> (String, String) {
    let buy_url = buy.or_else(|| app.config.fleet_buy_url.clone());
    let catalog_url = catalog.or_else(|| app.config.fleet_catalog_url.clone());
    let panel_ini =
        (buy_url.is_some() || catalog_url.is_some()).then_some(proto::PanelIniValues { buy_url, catalog_url });
    let jobs = jobs
        .iter()
        .filter_map(|j| {
            let kind = match (j.kind.as_str(), &j.activation_code) {
                ("install_key", Some(code)) => proto::JobKind::InstallKey {
                    activation_code: code.clone(),
                },
                ("retrieve_keys", _) => proto::JobKind::RetrieveKeys,
                _ => return None,
            };
            Some(proto::Job { id: j.id.clone(), kind })
        })
        .collect();
    let body = serde_json::to_string(&proto::Instructions { panel_ini, jobs }).unwrap_or_default();
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(body.as_bytes()))[..32]);
    (body, etag)
}

#[derive(serde::Deserialize)]
struct WaitQuery {
    wait: Option<String>,
}

async fn instructions(
    State(app): State<App>,
    Path(host): Path<String>,
    q: Query<WaitQuery>,
    headers: HeaderMap,
) -> Response {
    let token_hash = match authorize(&app, &headers, &host).await {
        Ok(h) => h,
        Err(r) => return r,
    };
    app.metrics.polls.fetch_add(1, Ordering::Relaxed);
    let wait = q.wait.as_deref().and_then(|w| w.parse::<u64>().ok()).unwrap_or(0);
    let hold = wait.min(app.config.server.max_wait) * 1000;
    // Consul's spread: up to hold/16 more, so a fleet that polled together drifts apart.
    let jitter = if hold >= 16 { fastrand::u64(0..=hold / 16) } else { 0 };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(hold + jitter);
    let inm = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Subscribe before reading: a commit between the read and the wait still wakes us.
    let mut rx = app.store.waiters.subscribe(&host);
    let mut shutdown = app.shutdown.clone();
    let _held = HeldGuard::new(&app.metrics);
    let revoked = || plain(StatusCode::UNAUTHORIZED, "this token is no longer valid");
    loop {
        // At a stop, never an early 304: the agent would take this store for one that does
        // not hold polls and fall back to its poll_interval. 503 + Retry-After: 1 instead, and
        // without reading the database (every held poll answers at once).
        if hold > 0 && *shutdown.borrow() {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (header::RETRY_AFTER, "1"),
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                ],
                "the central is stopping; poll again in a second\n",
            )
                .into_response();
        }
        let (buy, catalog, jobs) = match app.store.poll_inputs(&host).await {
            Ok(v) => v,
            // Removed (`hosts rm`) while its poll was held: its token died with it.
            Err(StoreError::NoHost(_)) => return revoked(),
            Err(e) => return internal(e),
        };
        // The token again, AFTER the read and on every wake: a job the read saw was queued
        // after any rotation or removal this lookup could miss, so none reaches an old token.
        match still_valid(&app, &token_hash, &host).await {
            Ok(true) => {}
            Ok(false) => return revoked(),
            Err(r) => return r,
        }
        let (body, etag) = render(&app, buy, catalog, &jobs);
        if inm.as_deref() != Some(etag.as_str()) {
            return (
                StatusCode::OK,
                [(header::ETAG, etag), (header::CONTENT_TYPE, "application/json".into())],
                body,
            )
                .into_response();
        }
        // A stop that began while this poll read the database: back to the top for the 503.
        if hold > 0 && *shutdown.borrow() {
            continue;
        }
        if tokio::time::Instant::now() >= deadline {
            app.metrics.polls_304.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
        }
        tokio::select! {
            r = rx.changed() => { if r.is_err() { rx = app.store.waiters.subscribe(&host); } }
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn result(
    State(app): State<App>,
    Path((host, job)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = authorize(&app, &headers, &host).await {
        return r;
    }
    let bytes = match super::body::read_body(body, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("the result is not JSON: {e}")),
    };
    let parsed: proto::JobResult = match serde_json::from_value(value.clone()) {
        Ok(r) => r,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("the result is not a section 5.2 result: {e}"),
            )
        }
    };
    app.metrics.results.fetch_add(1, Ordering::Relaxed);
    let stored = app.store.put_result(&host, &job, parsed.status.as_str(), &value).await;
    if let (Ok(ResultOutcome::Stored), Some(orders)) = (&stored, &app.orders) {
        // The order of this job ends with it (an error here is caught up by the order workers' scan).
        if let Ok(j) = app.store.job(&job).await {
            if let Err(e) = orders.job_ended(&j).await {
                tracing::warn!("{e}");
            }
        }
    }
    match stored {
        Err(e) => internal(e),
        Ok(ResultOutcome::Stored) | Ok(ResultOutcome::SameAgain) => plain(StatusCode::OK, "ok"),
        Ok(ResultOutcome::Different) => plain(StatusCode::CONFLICT, "this job already has a different result"),
        Ok(ResultOutcome::Cancelled) => plain(StatusCode::CONFLICT, "this job was cancelled"),
        Ok(ResultOutcome::NotFound) => plain(StatusCode::NOT_FOUND, "this host has no such job"),
        // Version 2: the agent takes 410 as acknowledged and stops sending it.
        Ok(ResultOutcome::Gone) => plain(StatusCode::GONE, "the central no longer has this job"),
    }
}

async fn report(State(app): State<App>, Path(host): Path<String>, headers: HeaderMap, body: Body) -> Response {
    if let Err(r) = authorize(&app, &headers, &host).await {
        return r;
    }
    let bytes = match super::body::read_body(body, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => return plain(StatusCode::BAD_REQUEST, "the report is not a JSON object"),
    };
    app.metrics.reports.fetch_add(1, Ordering::Relaxed);
    let key = value
        .get("plesk_key_number")
        .and_then(|v| v.as_str())
        .and_then(proto::normalize_key_number);
    let version = value.get("agent_version").and_then(|v| v.as_str());
    match app
        .store
        .put_report(&host, &value.to_string(), key.as_deref(), version)
        .await
    {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => internal(e),
    }
}

async fn healthz(State(app): State<App>) -> Response {
    let version = env!("CARGO_PKG_VERSION");
    match app.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            format!("{{\"status\":\"ok\",\"version\":\"{version}\",\"database\":\"ok\"}}\n"),
        )
            .into_response(),
        Err(e) => {
            tracing::error!("{e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "application/json")],
                format!("{{\"status\":\"error\",\"version\":\"{version}\",\"database\":\"unreachable\"}}\n"),
            )
                .into_response()
        }
    }
}

async fn metrics(State(app): State<App>) -> Response {
    let counts = app.store.job_counts().await.unwrap_or_default();
    let mut text = app.metrics.render(crate::fleet::store::JOB_STATES, &counts);
    if let Ok(rows) = app.store.health_rows().await {
        let parts = rows.iter().map(|(seen, report)| (*seen, report.as_ref()));
        text.push_str(&crate::fleet::host_health::Census::of_parts(parts, app.store.now()).render_metrics());
    }
    if let Some(orders) = &app.orders {
        text.push_str(&orders.render_metrics().await);
    }
    if let Some(licenses) = &app.licenses {
        text.push_str(&licenses.render_metrics().await);
    }
    if let Some(w) = &app.webhooks {
        text.push_str(&w.render_metrics().await);
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}
