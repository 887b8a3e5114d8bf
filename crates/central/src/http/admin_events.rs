//! The admin API's event feed: `GET /admin/v1/events?after=ID&limit=N[&type=T][&undelivered=true]`,
//! over [`crate::events::Feed`]. Ids increase in commit order, so a store catches up by
//! asking again with `after` = the last id it has.

// Handlers return a ready error Response; built once per failed request.
#![allow(clippy::result_large_err)]

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::events::{Event, EventType, Query as FeedQuery};
use crate::http::admin::error;
use crate::http::app::App;
use crate::http::openapi::ErrorBody;

/// The most events one request returns (and the default).
pub const MAX_LIMIT: i64 = 1000;

/// The feed's route, with its description (merged into `admin::routes`).
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(list))
}

/// The query string.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events with a larger id (default 0: from the oldest kept).
    pub after: Option<i64>,
    /// At most this many (1 to 1000, default 1000).
    pub limit: Option<i64>,
    /// Only events of this type, e.g. `order.done`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Only events whose webhook is pending or undeliverable.
    #[serde(default)]
    pub undelivered: bool,
}

/// The event feed, oldest first: what the store also gets as webhooks, kept 30 days.
#[utoipa::path(
    get,
    path = "/admin/v1/events",
    tag = "events",
    operation_id = "list_events",
    params(EventsQuery),
    responses(
        (status = 200, description = "The events after `after`, at most `limit`.", body = Vec<Event>),
        (status = 400, description = "A limit out of 1..1000, a negative `after`, or an unknown type.", body = ErrorBody),
        (status = 503, description = "The event feed is not served here.", body = ErrorBody),
    )
)]
async fn list(State(app): State<App>, Query(q): Query<EventsQuery>) -> Response {
    let Some(w) = &app.webhooks else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the event feed is not served here");
    };
    let limit = q.limit.unwrap_or(MAX_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("the limit {limit} is not from 1 to {MAX_LIMIT}"),
        );
    }
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("after={after} is not an event id (0 or more)"),
        );
    }
    if let Some(t) = &q.kind {
        if EventType::parse(t).is_none() {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the event type {t:?} is none of {}", EventType::names()),
            );
        }
    }
    let fq = FeedQuery {
        after,
        kind: q.kind.clone(),
        undelivered: q.undelivered,
        limit,
    };
    match w.feed.list(&fq).await {
        Ok(events) => Json(events).into_response(),
        Err(e) => {
            tracing::error!("{e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
        }
    }
}
