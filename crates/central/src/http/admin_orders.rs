//! The admin API's orders: `POST/GET /admin/v1/orders`, `GET /admin/v1/orders/{id}`,
//! `POST /admin/v1/orders/{id}/retry`, over [`Orders`] (the domain keeps no HTTP).

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

use crate::commerce::orders::{NewOrder, OrderError, Orders, STATES};
use crate::fleet::store::StoreError;
use crate::http::app::App;

fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "error": msg }))).into_response()
}

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

pub fn router(app: App) -> Router {
    Router::new()
        .route("/admin/v1/orders", get(list).post(add))
        .route("/admin/v1/orders/{id}", get(show))
        .route("/admin/v1/orders/{id}/retry", post(retry))
        .with_state(app)
}

fn orders_of(app: &App) -> Result<&Arc<Orders>, Response> {
    app.orders
        .as_ref()
        .ok_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "orders are not served here"))
}

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

#[derive(Deserialize)]
struct Filter {
    state: Option<String>,
}

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
