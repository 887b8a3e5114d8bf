//! What every HTTP face shares to read a request: the body, bounded in size and time.

// It returns a ready error Response for the handler to send as is.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use plesk_reseller_protocol as proto;

/// Longest a client may take to send its body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

fn plain(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{msg}\n"),
    )
        .into_response()
}

/// Reads a body of at most 1 MiB within 30 s: 413 / 408 otherwise.
pub async fn read_body(body: Body, headers: &HeaderMap) -> Result<Bytes, Response> {
    read_body_max(body, headers, proto::MAX_BODY, "1 MiB").await
}

/// Reads a body of at most `max` bytes (`shown` in the 413's sentence) within 30 s.
pub async fn read_body_max(body: Body, headers: &HeaderMap, max: usize, shown: &str) -> Result<Bytes, Response> {
    let too_large = || {
        plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {shown}"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, max)).await {
        Err(_) => Err(plain(
            StatusCode::REQUEST_TIMEOUT,
            "the body took longer than 30 seconds",
        )),
        Ok(Err(e)) if format!("{e:?}").contains("LengthLimit") => Err(too_large()),
        Ok(Err(_)) => Err(plain(StatusCode::BAD_REQUEST, "the body could not be read")),
        Ok(Ok(b)) => Ok(b),
    }
}
