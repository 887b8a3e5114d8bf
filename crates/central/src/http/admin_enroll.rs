//! The admin API's enroll keys: `POST/GET /admin/v1/enroll-keys`,
//! `POST /admin/v1/enroll-keys/{id}/revoke`, over the fleet's enroll keys (section 10).
//! Bodies are plain serde structs.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::fleet::enroll::{CreatedKey, EnrollError, KeyRow, NewKey};
use crate::http::admin::error;
use crate::http::app::App;
use crate::http::openapi::ErrorBody;

/// The enroll keys' routes, with their descriptions (merged into `admin::routes`).
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

/// `POST /admin/v1/enroll-keys`; the answer (201) is a `CreatedKey`: the key, once.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateRequest {
    /// How many hosts the key may enroll (default 1).
    pub uses: Option<i64>,
    /// Its lifetime: `30m`, `1h`, `7d` (default 24h, at most 90 days).
    pub expires: Option<String>,
    /// A glob over host ids, e.g. `web-*`.
    pub host_pattern: Option<String>,
    /// The one host id the key enrolls (or re-enrolls); 1 use.
    pub host: Option<String>,
    /// For people: what the key is for.
    pub note: Option<String>,
}

fn enroll_error(e: EnrollError) -> Response {
    let status = match &e {
        EnrollError::NoKey(_) => StatusCode::NOT_FOUND,
        EnrollError::BadRequest(_) | EnrollError::BadHostId(_) => StatusCode::BAD_REQUEST,
        EnrollError::Random(_) | EnrollError::Store(_) => {
            tracing::error!("{e}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, &e.to_string())
}

/// Makes an enroll key; the key (`prk_<id>_<secret>`) is in this answer and nowhere else.
#[utoipa::path(
    post,
    path = "/admin/v1/enroll-keys",
    tag = "enroll-keys",
    operation_id = "create_enroll_key",
    request_body = CreateRequest,
    responses(
        (status = 201, description = "Made; the key is shown this once.", body = CreatedKey),
        (status = 400, description = "Not JSON, both host and host_pattern, a bad host id or pattern, uses or lifetime out of range.", body = ErrorBody),
    )
)]
async fn create(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let bytes = match super::body::read_body(body, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req: CreateRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("the request is not valid: {e}")),
    };
    let new = NewKey {
        uses: req.uses,
        expires: req.expires,
        host_pattern: req.host_pattern.filter(|p| !p.is_empty()),
        host: req.host.filter(|h| !h.is_empty()),
        note: req.note.filter(|n| !n.is_empty()),
    };
    match app.store.create_enroll_key(&new).await {
        Ok(k) => {
            tracing::info!(key = %k.row.id, "enroll key {} created", k.row.id);
            (StatusCode::CREATED, Json(k)).into_response()
        }
        Err(e) => enroll_error(e),
    }
}

/// The enroll keys: uses left, expiry, pattern or host, last use, the hosts each enrolled.
/// Never the key.
#[utoipa::path(
    get,
    path = "/admin/v1/enroll-keys",
    tag = "enroll-keys",
    operation_id = "list_enroll_keys",
    responses((status = 200, description = "The keys.", body = Vec<KeyRow>))
)]
async fn list(State(app): State<App>) -> Response {
    match app.store.enroll_keys().await {
        Ok(k) => Json(k).into_response(),
        Err(e) => enroll_error(e),
    }
}

/// Revokes a key at once; the hosts it enrolled keep their own tokens.
#[utoipa::path(
    post,
    path = "/admin/v1/enroll-keys/{id}/revoke",
    tag = "enroll-keys",
    operation_id = "revoke_enroll_key",
    params(("id" = String, Path, description = "The key's id (the part after prk_).")),
    responses(
        (status = 200, description = "Revoked.", body = KeyRow),
        (status = 404, description = "No such key.", body = ErrorBody),
    )
)]
async fn revoke(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.store.revoke_enroll_key(&id).await {
        Ok(k) => {
            tracing::info!(key = %id, "enroll key {id} revoked");
            Json(k).into_response()
        }
        Err(e) => enroll_error(e),
    }
}
