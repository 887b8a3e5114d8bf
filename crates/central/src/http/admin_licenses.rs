//! The admin API's licenses (contract section 9): `GET /admin/v1/licenses[?host=&state=]`,
//! `POST /admin/v1/licenses` (adopt), `GET /admin/v1/licenses/{id|kn}`,
//! `POST /admin/v1/licenses/{id|kn}/operations` (suspend, resume, change, terminate,
//! refresh), `GET /admin/v1/license-operations/{id}`, over [`Licenses`] (no HTTP in the
//! domain). Bodies are plain serde structs.

// Handlers return a ready error Response; built once per failed request.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::commerce::licenses::{Adopt, License, LicenseError, Licenses, NewOperation, Operation, STATES};
use crate::fleet::store::StoreError;
use crate::http::admin::error;
use crate::http::app::App;
use crate::http::openapi::ErrorBody;

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

/// The licenses routes, with their descriptions (merged into `admin::routes`).
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list, adopt))
        .routes(routes!(show))
        .routes(routes!(operate))
        .routes(routes!(operation))
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Filter {
    /// Only the licenses on this host.
    host: Option<String>,
    /// Only the licenses in this state (active, suspended, terminated, expired).
    state: Option<String>,
}

/// The licenses the central bought or adopted (without their operations).
#[utoipa::path(
    get,
    path = "/admin/v1/licenses",
    tag = "licenses",
    operation_id = "list_licenses",
    params(Filter),
    responses(
        (status = 200, description = "The licenses.", body = Vec<License>),
        (status = 400, description = "An unknown state.", body = ErrorBody),
        (status = 503, description = "Licenses are not served here.", body = ErrorBody),
    )
)]
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

/// Adopts a key bought elsewhere: read from KA by key number or key id; nothing is bought.
#[utoipa::path(
    post,
    path = "/admin/v1/licenses",
    tag = "licenses",
    operation_id = "adopt_license",
    request_body = Adopt,
    responses(
        (status = 201, description = "Adopted.", body = License),
        (status = 200, description = "Already a license: the stored one.", body = License),
        (status = 400, description = "Not JSON, neither or both of key_number and key_id, or a bad key number.", body = ErrorBody),
        (status = 404, description = "No such host.", body = ErrorBody),
        (status = 502, description = "KA refused or could not be read; its answer verbatim.", body = ErrorBody),
        (status = 503, description = "KA is not configured, or licenses are not served here.", body = ErrorBody),
    )
)]
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

/// One license by KA key id or key number, with its operations (newest first).
#[utoipa::path(
    get,
    path = "/admin/v1/licenses/{id}",
    tag = "licenses",
    operation_id = "show_license",
    params(("id" = String, Path, description = "The KA key id or the key number.")),
    responses(
        (status = 200, description = "The license.", body = License),
        (status = 404, description = "No such license.", body = ErrorBody),
        (status = 503, description = "Licenses are not served here.", body = ErrorBody),
    )
)]
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

/// Starts an operation (suspend, resume, change, terminate, refresh); the same `op_id` again
/// returns the first operation and never calls KA twice. Returns at once; the operation
/// moves on by itself (`state`).
#[utoipa::path(
    post,
    path = "/admin/v1/licenses/{id}/operations",
    tag = "licenses",
    operation_id = "operate_license",
    params(("id" = String, Path, description = "The KA key id or the key number.")),
    request_body = NewOperation,
    responses(
        (status = 201, description = "Recorded (pending).", body = Operation),
        (status = 200, description = "The same op_id: the first operation and its outcome.", body = Operation),
        (status = 400, description = "Not JSON, an unknown kind, a bad op_id, or change without items.", body = ErrorBody),
        (status = 404, description = "No such license.", body = ErrorBody),
        (status = 409, description = "Terminated, another operation is pending (named), active extensions without with_extensions, or the op_id is used for something else.", body = ErrorBody),
        (status = 503, description = "KA is not configured, or licenses are not served here.", body = ErrorBody),
    )
)]
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

/// One operation by its id, with the host job's state beside it.
#[utoipa::path(
    get,
    path = "/admin/v1/license-operations/{id}",
    tag = "licenses",
    operation_id = "show_license_operation",
    params(("id" = String, Path, description = "The operation id.")),
    responses(
        (status = 200, description = "The operation.", body = Operation),
        (status = 404, description = "No such operation.", body = ErrorBody),
        (status = 503, description = "Licenses are not served here.", body = ErrorBody),
    )
)]
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
