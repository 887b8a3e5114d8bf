//! The admin API (HTTP + JSON under `/admin/v1`): on the unix socket with local trust, and on
//! `admin_listen` behind the admin token. The CLI is a thin client of it.

// Helpers return a ready error Response for the handler to send as is; it is built once
// per failed request, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use plesk_reseller_protocol as proto;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::fleet::store::{Host, HostChanges, JobRow, StoreError};
use crate::fleet::tokens;
use crate::http::app::App;
use crate::http::openapi::ErrorBody;

/// Every admin route, each registered with its `#[utoipa::path]` description: the one list
/// both the router and the OpenAPI document (`crate::http::openapi`) are built from. One
/// `routes!(…)` per path, with the handlers of its methods (docs/openapi.md).
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_hosts, add_host))
        .routes(routes!(show_host, set_host, remove_host))
        .routes(routes!(rotate_token))
        .routes(routes!(list_jobs, add_job))
        .routes(routes!(show_job))
        .routes(routes!(cancel_job))
        .merge(super::admin_orders::routes())
        .merge(super::admin_licenses::routes())
        .merge(super::admin_events::routes())
        .merge(super::admin_enroll::routes())
        .routes(routes!(super::openapi::serve))
}

/// The admin API on the admin socket (local trust).
pub fn router(app: App) -> Router {
    routes().split_for_parts().0.with_state(app)
}

/// Same routes, but every request needs `Authorization: Bearer <admin token>` (TCP).
pub fn router_with_token(app: App) -> Router {
    let token = app.admin_token.clone();
    // route_layer: only a route that exists asks for the token, so an unknown path is a 404
    // (`not_found`), never a failed token that counts toward the address's lock-out.
    router(app).route_layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let token = token.clone();
            async move {
                let given = tokens::bearer(req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()));
                match (token.as_deref(), given) {
                    (Some(t), Some(g)) if tokens::same(t, g) => next.run(req).await,
                    _ => error(StatusCode::UNAUTHORIZED, "missing or wrong admin token"),
                }
            }
        },
    ))
}

/// The admin listener's answer to a path no route serves.
pub async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "there is no such admin route or page")
}

pub(crate) fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(ErrorBody { error: msg.into() })).into_response()
}

fn store_error(e: StoreError) -> Response {
    let status = match &e {
        StoreError::HostExists(_) | StoreError::NotQueued { .. } => StatusCode::CONFLICT,
        StoreError::NoHost(_) | StoreError::NoJob(_) => StatusCode::NOT_FOUND,
        StoreError::NoKeyNumber(_) | StoreError::AmbiguousKeyNumber { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        StoreError::Db { .. } => {
            tracing::error!("{e}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    error(status, &e.to_string())
}

async fn json_body<T: serde::de::DeserializeOwned>(body: Body, headers: &HeaderMap) -> Result<T, Response> {
    let bytes = super::body::read_body(body, headers).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("the request is not valid: {e}")))
}

fn check_url(what: &str, v: &Option<String>) -> Result<(), Response> {
    match v {
        Some(u) if !(u.is_empty() || u.starts_with("http://") || u.starts_with("https://")) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("the {what} {u:?} is not an http:// or https:// URL"),
        )),
        _ => Ok(()),
    }
}

/// A host to register.
#[derive(Deserialize, utoipa::ToSchema)]
struct NewHost {
    /// Letters, digits and . _ - (first a letter or digit, at most 128).
    id: String,
    /// An http:// or https:// URL for wake pushes; empty or absent: none.
    push_url: Option<String>,
}

/// A registered host's credentials, shown this once.
#[derive(Serialize, utoipa::ToSchema)]
struct HostCreated {
    id: String,
    /// The agent's bearer token (only its hash is stored).
    token: String,
    /// The secret that signs wake pushes to this host.
    push_secret: String,
}

/// Registers a Plesk server; its token and push secret are shown once.
#[utoipa::path(
    post,
    path = "/admin/v1/hosts",
    tag = "hosts",
    request_body = NewHost,
    responses(
        (status = 201, description = "Registered.", body = HostCreated),
        (status = 400, description = "Not JSON, or the host id or push URL is not valid.", body = ErrorBody),
        (status = 409, description = "The host exists.", body = ErrorBody),
    )
)]
async fn add_host(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let req: NewHost = match json_body(body, &headers).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if !proto::is_valid_host_id(&req.id) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!(
                "the host id {:?} is not letters, digits and . _ - (first a letter or digit, at most 128)",
                req.id
            ),
        );
    }
    if let Err(r) = check_url("push URL", &req.push_url) {
        return r;
    }
    let push_url = req.push_url.filter(|u| !u.is_empty());
    let (token, secret) = match (tokens::generate(), tokens::generate()) {
        (Ok(t), Ok(s)) => (t, s),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    match app
        .store
        .add_host(&req.id, &tokens::hash(&token), push_url.as_deref(), &secret)
        .await
    {
        Ok(()) => {
            if let Some(orders) = &app.orders {
                orders.host_changed(&req.id).await;
            }
            if let Some(licenses) = &app.licenses {
                licenses.host_changed().await;
            }
            (
                StatusCode::CREATED,
                Json(HostCreated {
                    id: req.id,
                    token,
                    push_secret: secret,
                }),
            )
                .into_response()
        }
        Err(e) => store_error(e),
    }
}

/// The fleet.
#[utoipa::path(
    get,
    path = "/admin/v1/hosts",
    tag = "hosts",
    responses((status = 200, description = "Every host.", body = Vec<Host>))
)]
async fn list_hosts(State(app): State<App>) -> Response {
    match app.store.hosts().await {
        Ok(h) => Json(h).into_response(),
        Err(e) => store_error(e),
    }
}

/// A host and the jobs queued for it.
#[derive(Serialize, utoipa::ToSchema)]
struct HostDetail {
    #[serde(flatten)]
    host: Host,
    queued_jobs: Vec<JobRow>,
}

/// One host: last seen, key number, agent version, its last report, queued jobs.
#[utoipa::path(
    get,
    path = "/admin/v1/hosts/{id}",
    tag = "hosts",
    params(("id" = String, Path, description = "The host id.")),
    responses(
        (status = 200, description = "The host.", body = HostDetail),
        (status = 404, description = "No such host.", body = ErrorBody),
    )
)]
async fn show_host(State(app): State<App>, Path(id): Path<String>) -> Response {
    let host = match app.store.host(&id).await {
        Ok(h) => h,
        Err(e) => return store_error(e),
    };
    let jobs = match app.store.jobs(Some(&id), Some("queued")).await {
        Ok(j) => j,
        Err(e) => return store_error(e),
    };
    Json(HostDetail {
        host,
        queued_jobs: jobs,
    })
    .into_response()
}

/// A field of a PATCH: absent = leave, `null` = back to the fleet value, a string = set.
fn change(v: &Value, key: &str) -> Result<Option<Option<String>>, Response> {
    match v.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("{key} must be a string or null"),
        )),
    }
}

/// Per-host panel.ini values and push URL (PATCH: only the fields given change).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Describes the body; set_host reads it field by field (absent ≠ null).
struct HostPatch {
    /// A string sets it (`""`: the key must be absent); `null`: back to the fleet value.
    buy_url: Option<String>,
    /// A string sets it (`""`: the key must be absent); `null`: back to the fleet value.
    catalog_url: Option<String>,
    /// A URL sets it; `""` or `null`: no pushes.
    push_url: Option<String>,
}

/// Changes a host's values; absent fields are left as they are.
#[utoipa::path(
    patch,
    path = "/admin/v1/hosts/{id}",
    tag = "hosts",
    params(("id" = String, Path, description = "The host id.")),
    request_body = HostPatch,
    responses(
        (status = 200, description = "The host after the change.", body = HostDetail),
        (status = 400, description = "Not JSON, a field is neither a string nor null, or a URL is not http(s).", body = ErrorBody),
        (status = 404, description = "No such host.", body = ErrorBody),
    )
)]
async fn set_host(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let v: Value = match json_body(body, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let parsed = (|| {
        Ok::<_, Response>(HostChanges {
            buy_url: change(&v, "buy_url")?,
            catalog_url: change(&v, "catalog_url")?,
            push_url: change(&v, "push_url")?,
        })
    })();
    let mut changes = match parsed {
        Ok(c) => c,
        Err(r) => return r,
    };
    for (what, c) in [
        ("buy URL", &changes.buy_url),
        ("catalog URL", &changes.catalog_url),
        ("push URL", &changes.push_url),
    ] {
        if let Some(v) = c {
            if let Err(r) = check_url(what, v) {
                return r;
            }
        }
    }
    // An empty push URL means no pushes, not a push to "".
    if let Some(Some(u)) = &changes.push_url {
        if u.is_empty() {
            changes.push_url = Some(None);
        }
    }
    match app.store.set_host(&id, &changes).await {
        Ok(()) => show_host(State(app), Path(id)).await,
        Err(e) => store_error(e),
    }
}

/// A host's new token, shown this once.
#[derive(Serialize, utoipa::ToSchema)]
struct NewToken {
    token: String,
}

/// Gives a host a new token; the old one stops working at once.
#[utoipa::path(
    post,
    path = "/admin/v1/hosts/{id}/rotate-token",
    tag = "hosts",
    params(("id" = String, Path, description = "The host id.")),
    responses(
        (status = 200, description = "The new token.", body = NewToken),
        (status = 404, description = "No such host.", body = ErrorBody),
    )
)]
async fn rotate_token(State(app): State<App>, Path(id): Path<String>) -> Response {
    let token = match tokens::generate() {
        Ok(t) => t,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    match app.store.rotate_token(&id, &tokens::hash(&token)).await {
        Ok(()) => Json(NewToken { token }).into_response(),
        Err(e) => store_error(e),
    }
}

/// What `DELETE /admin/v1/hosts/{id}` answers.
#[derive(Serialize, utoipa::ToSchema)]
struct HostRemoved {
    id: String,
    /// Always true.
    removed: bool,
}

/// Forgets a host.
#[utoipa::path(
    delete,
    path = "/admin/v1/hosts/{id}",
    tag = "hosts",
    params(("id" = String, Path, description = "The host id.")),
    responses(
        (status = 200, description = "Removed.", body = HostRemoved),
        (status = 404, description = "No such host.", body = ErrorBody),
    )
)]
async fn remove_host(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.store.remove_host(&id).await {
        Ok(()) => {
            if let Some(orders) = &app.orders {
                orders.host_changed(&id).await;
            }
            if let Some(licenses) = &app.licenses {
                licenses.host_changed().await;
            }
            Json(HostRemoved { id, removed: true }).into_response()
        }
        Err(e) => store_error(e),
    }
}

/// A job to queue: for `host`, or for the host whose last report carried `key_number`.
#[derive(Deserialize, utoipa::ToSchema)]
struct NewJob {
    /// The host id (give either this or `key_number`).
    host: Option<String>,
    /// A Plesk key number (`PLSK.12345678.0001`): the host that reported it.
    key_number: Option<String>,
    #[serde(rename = "type")]
    #[schema(schema_with = crate::fleet::store::job_type_schema)]
    kind: String,
    /// For `install_key` only: groups of 4 to 8 capital letters or digits (`A00000-K6QK03-…`).
    activation_code: Option<String>,
    /// 1 to 200 characters: the same key for the same host returns the first job (200).
    idempotency_key: Option<String>,
}

/// Checks a job request against the contract's grammars; the sentence names what is wrong.
fn validate_job(req: &NewJob) -> Result<(), String> {
    match (req.kind.as_str(), &req.activation_code) {
        ("install_key", Some(code)) if proto::is_activation_code(code) => {}
        ("install_key", Some(_)) => {
            return Err(
                "the activation code is not of the form A00000-K6QK03-… (groups of 4 to 8 capital letters or digits)"
                    .into(),
            )
        }
        ("install_key", None) => return Err("install_key needs an activation code".into()),
        ("retrieve_keys", None) => {}
        ("retrieve_keys", Some(_)) => return Err("retrieve_keys takes no activation code".into()),
        (other, _) => {
            return Err(format!(
                "the job type {other:?} is neither install_key nor retrieve_keys"
            ))
        }
    }
    if let Some(k) = &req.idempotency_key {
        if k.is_empty() || k.len() > 200 {
            return Err("the idempotency key must have 1 to 200 characters".into());
        }
    }
    Ok(())
}

/// Queues a job and wakes its host.
#[utoipa::path(
    post,
    path = "/admin/v1/jobs",
    tag = "jobs",
    request_body = NewJob,
    responses(
        (status = 201, description = "Queued.", body = JobRow),
        (status = 200, description = "The job queued before with the same idempotency key for this host.", body = JobRow),
        (status = 400, description = "Not JSON, or a field breaks its grammar (the sentence names it), or neither/both of host and key_number.", body = ErrorBody),
        (status = 404, description = "No such host.", body = ErrorBody),
        (status = 422, description = "No host, or more than one, reported that key number.", body = ErrorBody),
    )
)]
async fn add_job(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let req: NewJob = match json_body(body, &headers).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(msg) = validate_job(&req) {
        return error(StatusCode::BAD_REQUEST, &msg);
    }
    let host = match (&req.host, &req.key_number) {
        (Some(h), None) => h.clone(),
        (None, Some(k)) => {
            let Some(norm) = proto::normalize_key_number(k) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("the key number {k:?} is not of the form PLSK.12345678.0001"),
                );
            };
            match app.store.host_by_key_number(&norm).await {
                Ok(h) => h,
                Err(e) => return store_error(e),
            }
        }
        _ => return error(StatusCode::BAD_REQUEST, "give either a host or a key number"),
    };
    let added = app
        .store
        .add_job(
            &host,
            &req.kind,
            req.activation_code.as_deref(),
            req.idempotency_key.as_deref(),
        )
        .await;
    match added {
        Ok((job, true)) => (StatusCode::CREATED, Json(job)).into_response(),
        Ok((job, false)) => (StatusCode::OK, Json(job)).into_response(),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct JobFilter {
    /// Only this host's jobs.
    host: Option<String>,
    /// Only jobs in this state.
    #[param(schema_with = crate::fleet::store::job_state_schema)]
    state: Option<String>,
}

/// The queue and results.
#[utoipa::path(
    get,
    path = "/admin/v1/jobs",
    tag = "jobs",
    params(JobFilter),
    responses(
        (status = 200, description = "The jobs.", body = Vec<JobRow>),
        (status = 400, description = "An unknown state.", body = ErrorBody),
    )
)]
async fn list_jobs(State(app): State<App>, Query(f): Query<JobFilter>) -> Response {
    if let Some(s) = &f.state {
        if !crate::fleet::store::JOB_STATES.contains(&s.as_str()) {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "the state {s:?} is none of {}",
                    crate::fleet::store::JOB_STATES.join(", ")
                ),
            );
        }
    }
    match app.store.jobs(f.host.as_deref(), f.state.as_deref()).await {
        Ok(j) => Json(j).into_response(),
        Err(e) => store_error(e),
    }
}

/// One job and, once it ended, the agent's result.
#[utoipa::path(
    get,
    path = "/admin/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "The job id.")),
    responses(
        (status = 200, description = "The job.", body = JobRow),
        (status = 404, description = "No such job.", body = ErrorBody),
    )
)]
async fn show_job(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.store.job(&id).await {
        Ok(j) => Json(j).into_response(),
        Err(e) => store_error(e),
    }
}

/// Cancels a queued job (its order, if any, ends failed).
#[utoipa::path(
    post,
    path = "/admin/v1/jobs/{id}/cancel",
    tag = "jobs",
    params(("id" = String, Path, description = "The job id.")),
    responses(
        (status = 200, description = "The cancelled job.", body = JobRow),
        (status = 404, description = "No such job.", body = ErrorBody),
        (status = 409, description = "The job is not queued any more.", body = ErrorBody),
    )
)]
async fn cancel_job(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.store.cancel_job(&id).await {
        Ok(j) => {
            // Best effort: the order drivers' scan catches up with any order this misses.
            if let Some(orders) = &app.orders {
                if let Err(e) = orders.job_ended(&j).await {
                    tracing::warn!("{e}");
                }
                orders.wake();
            }
            Json(j).into_response()
        }
        Err(e) => store_error(e),
    }
}

/// Failed admin-token attempts allowed from one address within [`FAILURE_WINDOW`] ...
pub const FAILURES_ALLOWED: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// ... after which every request from it gets 429 for this long, the right token included
/// (so a guesser learns nothing while locked out).
pub const LOCKOUT: Duration = Duration::from_secs(300);
/// Addresses tracked at once; beyond it, new addresses share one count (a guesser with many
/// addresses cannot grow the map without bound, and is limited as one).
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    since: Instant,
    count: u32,
    locked_until: Option<Instant>,
}

/// Failed admin-token attempts per source address (IPv6 by /64: one host holds a whole one).
#[derive(Debug, Default)]
pub struct TokenFailures {
    map: HashMap<IpAddr, Failures>,
}

fn source(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

impl TokenFailures {
    /// How long `ip` must still wait, if it is locked out.
    pub fn locked(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let key = self.key(source(ip));
        let until = self.map.get(&key)?.locked_until?;
        if until > now {
            return Some(until - now);
        }
        self.map.remove(&key);
        None
    }

    pub fn failed(&mut self, ip: IpAddr, now: Instant) {
        let ip = source(ip);
        if !self.map.contains_key(&ip) && self.map.len() >= MAX_TRACKED {
            self.map
                .retain(|_, f| f.locked_until.is_some_and(|u| u > now) || now - f.since < FAILURE_WINDOW);
        }
        let key = self.key(ip);
        let f = self.map.entry(key).or_insert(Failures {
            since: now,
            count: 0,
            locked_until: None,
        });
        if now - f.since >= FAILURE_WINDOW {
            *f = Failures {
                since: now,
                count: 0,
                locked_until: None,
            };
        }
        f.count += 1;
        if f.count >= FAILURES_ALLOWED {
            f.locked_until = Some(now + LOCKOUT);
        }
    }

    /// `ip` itself, or the shared key when the map is full.
    fn key(&self, ip: IpAddr) -> IpAddr {
        if self.map.contains_key(&ip) || self.map.len() < MAX_TRACKED {
            ip
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        }
    }
}

/// Limits failed admin-token attempts (the admin API's bearer token and the fleet page's
/// Basic password alike) per source address on `admin_listen`: a request carrying a token
/// and answered 401 is a failure; a count only ends with its window (a success cannot reset
/// it: a public path such as the stylesheet answers 200 whatever token it carries). A
/// request without any token is not an attempt (a browser asks once without, to be
/// challenged).
pub fn limit_failed_tokens(router: Router) -> Router {
    let failures = Arc::new(Mutex::new(TokenFailures::default()));
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let failures = failures.clone();
            async move {
                let Some(ip) = req.extensions().get::<crate::http::server::Peer>().map(|p| p.0.ip()) else {
                    return next.run(req).await;
                };
                let lock = || failures.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(wait) = lock().locked(ip, Instant::now()) {
                    let mut r = error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too many wrong admin tokens from this address; try again later",
                    );
                    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                    r.headers_mut().insert(header::RETRY_AFTER, secs.max(1).into());
                    return r;
                }
                let tried = req.headers().contains_key(header::AUTHORIZATION);
                let r = next.run(req).await;
                if tried && r.status() == StatusCode::UNAUTHORIZED {
                    tracing::warn!("a wrong admin token from {ip}");
                    lock().failed(ip, Instant::now());
                }
                r
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_in_a_minute_lock_an_address_out_for_five_minutes() {
        let mut f = TokenFailures::default();
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let b: IpAddr = "192.0.2.8".parse().unwrap();
        for i in 0..9 {
            f.failed(a, t0 + Duration::from_secs(i));
        }
        assert_eq!(f.locked(a, t0 + Duration::from_secs(9)), None);
        f.failed(a, t0 + Duration::from_secs(9));
        assert_eq!(
            f.locked(a, t0 + Duration::from_secs(10)),
            Some(LOCKOUT - Duration::from_secs(1))
        );
        assert_eq!(f.locked(b, t0 + Duration::from_secs(10)), None, "another address");
        assert!(f.locked(a, t0 + Duration::from_secs(308)).is_some());
        assert_eq!(f.locked(a, t0 + Duration::from_secs(309)), None, "the lockout ends");

        // Failures spread over more than the window never lock out.
        let mut f = TokenFailures::default();
        for i in 0..30 {
            f.failed(a, t0 + Duration::from_secs(i * 7));
        }
        assert_eq!(f.locked(a, t0 + Duration::from_secs(210)), None);
    }

    #[test]
    fn an_ipv6_64_is_one_source_and_a_full_map_shares_one_count() {
        let mut f = TokenFailures::default();
        let t0 = Instant::now();
        for i in 0..10u32 {
            let ip: IpAddr = format!("2001:db8:0:1::{i:x}").parse().unwrap();
            f.failed(ip, t0);
        }
        assert!(f.locked("2001:db8:0:1::ffff".parse().unwrap(), t0).is_some());
        assert!(f.locked("2001:db8:0:2::1".parse().unwrap(), t0).is_none());

        let mut f = TokenFailures::default();
        for i in 0..MAX_TRACKED as u32 {
            f.failed(IpAddr::V4(std::net::Ipv4Addr::from(i)), t0);
        }
        for i in 0..10u32 {
            f.failed(IpAddr::V4(std::net::Ipv4Addr::from(0xC000_0000 + i)), t0);
        }
        assert_eq!(f.map.len(), MAX_TRACKED + 1);
        assert!(f.locked("198.51.100.1".parse().unwrap(), t0).is_some());
    }
}
