//! The admin API's licenses (contract section 9): `GET /admin/v1/licenses[?host=&state=]`,
//! `POST /admin/v1/licenses` (adopt), `GET /admin/v1/licenses/{id|kn}`,
//! `POST /admin/v1/licenses/{id|kn}/operations` (suspend, resume, change, terminate,
//! refresh), `GET /admin/v1/license-operations/{op}`, over [`Licenses`] (no HTTP in the
//! domain). Bodies are plain serde structs.

// Handlers return a ready error Response; built once per failed request.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::commerce::licenses::{Adopt, LicenseError, Licenses, NewOperation, STATES};
use crate::fleet::store::StoreError;
use crate::http::app::App;

fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "error": msg }))).into_response()
}

fn license_error(e: LicenseError) -> Response {
    let status = match &e {
        LicenseError::BadOpId(_)
        | LicenseError::BadKind(_)
        | LicenseError::BadItems
        | LicenseError::AdoptShape
        | LicenseError::BadKeyNumber(_) => StatusCode::BAD_REQUEST,
        LicenseError::NoLicense(_) | LicenseError::NoOperation(_) | LicenseError::Store(StoreError::NoHost(_)) => {
            StatusCode::NOT_FOUND
        }
        LicenseError::Terminated(_)
        | LicenseError::Busy { .. }
        | LicenseError::ActiveExtensions { .. }
        | LicenseError::OpConflict(_) => StatusCode::CONFLICT,
        LicenseError::NoKa => StatusCode::SERVICE_UNAVAILABLE,
        LicenseError::Ka { .. } => StatusCode::BAD_GATEWAY,
        LicenseError::Store(_) | LicenseError::Db { .. } => {
            tracing::error!("{e}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    error(status, &e.to_string())
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/admin/v1/licenses", get(list).post(adopt))
        .route("/admin/v1/licenses/{id}", get(show))
        .route("/admin/v1/licenses/{id}/operations", post(operate))
        .route("/admin/v1/license-operations/{op}", get(operation))
        .with_state(app)
}

fn licenses_of(app: &App) -> Result<&Arc<Licenses>, Response> {
    app.licenses
        .as_ref()
        .ok_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "licenses are not served here"))
}

async fn body_of<T: serde::de::DeserializeOwned>(body: Body, headers: &HeaderMap, what: &str) -> Result<T, Response> {
    let bytes = super::body::read_body(body, headers).await?;
    serde_json::from_slice(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, &format!("the {what} is not valid: {e}")))
}

#[derive(Deserialize)]
struct Filter {
    host: Option<String>,
    state: Option<String>,
}

async fn list(State(app): State<App>, Query(f): Query<Filter>) -> Response {
    let licenses = match licenses_of(&app) {
        Ok(l) => l,
        Err(r) => return r,
    };
    if let Some(s) = &f.state {
        if !STATES.contains(&s.as_str()) {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the state {s:?} is none of {}", STATES.join(", ")),
            );
        }
    }
    match licenses.list(f.host.as_deref(), f.state.as_deref()).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => license_error(e),
    }
}

async fn adopt(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let licenses = match licenses_of(&app) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let req: Adopt = match body_of(body, &headers, "adoption").await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match licenses.adopt(&req).await {
        Ok((l, true)) => (StatusCode::CREATED, Json(l)).into_response(),
        Ok((l, false)) => (StatusCode::OK, Json(l)).into_response(),
        Err(e) => license_error(e),
    }
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Response {
    let licenses = match licenses_of(&app) {
        Ok(l) => l,
        Err(r) => return r,
    };
    match licenses.show(&id).await {
        Ok(l) => Json(l).into_response(),
        Err(e) => license_error(e),
    }
}

async fn operate(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let licenses = match licenses_of(&app) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let req: NewOperation = match body_of(body, &headers, "operation").await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match licenses.operate(&id, &req).await {
        Ok((o, true)) => (StatusCode::CREATED, Json(o)).into_response(),
        Ok((o, false)) => (StatusCode::OK, Json(o)).into_response(),
        Err(e) => license_error(e),
    }
}

async fn operation(State(app): State<App>, Path(op): Path<String>) -> Response {
    let licenses = match licenses_of(&app) {
        Ok(l) => l,
        Err(r) => return r,
    };
    match licenses.operation(&op).await {
        Ok(o) => Json(o).into_response(),
        Err(e) => license_error(e),
    }
}
