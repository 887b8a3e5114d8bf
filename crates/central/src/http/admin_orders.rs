//! The admin API's orders: `POST/GET /admin/v1/orders`, `GET /admin/v1/orders/{id}`,
//! `POST /admin/v1/orders/{id}/retry`, over [`Orders`] (the domain keeps no HTTP).

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

use crate::commerce::orders::{NewOrder, Order, OrderError, Orders, STATES};
use crate::fleet::store::StoreError;
use crate::http::admin::error;
use crate::http::app::App;
use crate::http::openapi::ErrorBody;

fn order_error(e: OrderError) -> Response {
    let status = match &e {
        OrderError::BadId(_) | OrderError::Shape | OrderError::BadKeyNumber(_) => StatusCode::BAD_REQUEST,
        OrderError::NotSold(_) | OrderError::NoPleskItem => StatusCode::UNPROCESSABLE_ENTITY,
        OrderError::NoKa => StatusCode::SERVICE_UNAVAILABLE,
        OrderError::Conflict(_) | OrderError::NotRetriable { .. } => StatusCode::CONFLICT,
        OrderError::NoOrder(_) | OrderError::Store(StoreError::NoHost(_)) => StatusCode::NOT_FOUND,
        OrderError::Store(StoreError::NoKeyNumber(_) | StoreError::AmbiguousKeyNumber { .. }) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        OrderError::Store(_) | OrderError::Db { .. } => {
            tracing::error!("{e}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    error(status, &e.to_string())
}

/// The orders routes, with their descriptions (merged into `admin::routes`).
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(show))
        .routes(routes!(retry))
}

fn orders_of(app: &App) -> Result<&Arc<Orders>, Response> {
    app.orders
        .as_ref()
        .ok_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "orders are not served here"))
}

/// Takes an order from the store: KA creates the key, then a job installs it on the host.
/// Returns at once; the order moves on by itself (`state`).
#[utoipa::path(
    post,
    path = "/admin/v1/orders",
    tag = "orders",
    operation_id = "add_order",
    request_body = NewOrder,
    responses(
        (status = 201, description = "Taken (pending).", body = Order),
        (status = 200, description = "The same order id with the same parameters: the stored order.", body = Order),
        (status = 400, description = "Not JSON, a bad order id or key number, or neither shape (host + plesk, key_number + extension).", body = ErrorBody),
        (status = 404, description = "No such host.", body = ErrorBody),
        (status = 409, description = "The order id exists with other parameters.", body = ErrorBody),
        (status = 422, description = "The extension is not in [sell], the config has no Plesk item, or no host (or more than one) reported the key number.", body = ErrorBody),
        (status = 503, description = "KA is not configured, or orders are not served here.", body = ErrorBody),
    )
)]
async fn add(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let orders = match orders_of(&app) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let bytes = match super::body::read_body(body, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req: NewOrder = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("the order is not valid: {e}")),
    };
    match orders.add(&req).await {
        Ok((o, true)) => (StatusCode::CREATED, Json(o)).into_response(),
        Ok((o, false)) => (StatusCode::OK, Json(o)).into_response(),
        Err(e) => order_error(e),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Filter {
    /// Only orders in this state.
    #[param(schema_with = state_schema)]
    state: Option<String>,
}

fn state_schema() -> utoipa::openapi::Object {
    crate::fleet::store::one_of(STATES)
}

/// The orders.
#[utoipa::path(
    get,
    path = "/admin/v1/orders",
    tag = "orders",
    operation_id = "list_orders",
    params(Filter),
    responses(
        (status = 200, description = "The orders.", body = Vec<Order>),
        (status = 400, description = "An unknown state.", body = ErrorBody),
        (status = 503, description = "Orders are not served here.", body = ErrorBody),
    )
)]
async fn list(State(app): State<App>, Query(f): Query<Filter>) -> Response {
    let orders = match orders_of(&app) {
        Ok(o) => o,
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
    match orders.list(f.state.as_deref()).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => order_error(e),
    }
}

/// One order, with KA's answer verbatim when it failed or needs attention.
#[utoipa::path(
    get,
    path = "/admin/v1/orders/{id}",
    tag = "orders",
    operation_id = "show_order",
    params(("id" = String, Path, description = "The order id.")),
    responses(
        (status = 200, description = "The order.", body = Order),
        (status = 404, description = "No such order.", body = ErrorBody),
        (status = 503, description = "Orders are not served here.", body = ErrorBody),
    )
)]
async fn show(State(app): State<App>, Path(id): Path<String>) -> Response {
    let orders = match orders_of(&app) {
        Ok(o) => o,
        Err(r) => return r,
    };
    match orders.get(&id).await {
        Ok(o) => Json(o).into_response(),
        Err(e) => order_error(e),
    }
}

/// Drives an order in attention or failed again, from a lookup in KA (a new purchase only if
/// the lookup finds no key of this order).
#[utoipa::path(
    post,
    path = "/admin/v1/orders/{id}/retry",
    tag = "orders",
    operation_id = "retry_order",
    params(("id" = String, Path, description = "The order id.")),
    responses(
        (status = 200, description = "The order, driven again.", body = Order),
        (status = 404, description = "No such order.", body = ErrorBody),
        (status = 409, description = "The order is neither in attention nor failed.", body = ErrorBody),
        (status = 503, description = "Orders are not served here.", body = ErrorBody),
    )
)]
async fn retry(State(app): State<App>, Path(id): Path<String>) -> Response {
    let orders = match orders_of(&app) {
        Ok(o) => o,
        Err(r) => return r,
    };
    match orders.retry(&id).await {
        Ok(o) => Json(o).into_response(),
        Err(e) => order_error(e),
    }
}
