//! The admin API's enroll keys: `POST/GET /admin/v1/enroll-keys`,
//! `POST /admin/v1/enroll-keys/{id}/revoke`, over the fleet's enroll keys (section 10).
//! Bodies are plain serde structs.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::fleet::enroll::{EnrollError, NewKey};
use crate::http::app::App;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/admin/v1/enroll-keys", get(list).post(create))
        .route("/admin/v1/enroll-keys/{id}/revoke", post(revoke))
        .with_state(app)
}

/// `POST /admin/v1/enroll-keys`; the answer (201) is a `CreatedKey`: the key, once.
#[derive(Debug, Deserialize)]
pub struct CreateRequest {
    /// How many hosts the key may enroll (default 1).
    pub uses: Option<i64>,
    /// Its lifetime: `30m`, `1h`, `7d` (default 24h, at most 90 days).
    pub expires: Option<String>,
    /// A glob over host ids, e.g. `web-*`.
    pub host_pattern: Option<String>,
    /// The one host id the key enrolls (or re-enrolls); 1 use.
    pub host: Option<String>,
    pub note: Option<String>,
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "error": msg }))).into_response()
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

async fn list(State(app): State<App>) -> Response {
    match app.store.enroll_keys().await {
        Ok(k) => Json(k).into_response(),
        Err(e) => enroll_error(e),
    }
}

async fn revoke(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.store.revoke_enroll_key(&id).await {
        Ok(k) => {
            tracing::info!(key = %id, "enroll key {id} revoked");
            Json(k).into_response()
        }
        Err(e) => enroll_error(e),
    }
}
