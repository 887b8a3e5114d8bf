//! The HTTP transport (section 5): bearer token, `User-Agent`, ETag / `If-None-Match`,
//! `X-Plesk-Key-Number`, long-poll timeout `wait + 10 s`, bodies capped at 1 MiB read in
//! chunks, https only except for loopback hosts.

use std::path::Path;
use std::time::Duration;

use super::{CentralError, JobResult, PollOutcome, PollRequest, Report, Transport};
use crate::BoxFuture;

/// Timeout of requests that are not long-polls.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Added to `wait` for a long-poll's timeout.
pub const LONG_POLL_SLACK: Duration = Duration::from_secs(10);

pub struct HttpTransport {
    base: String,
    host_id: String,
    token: String,
    client: reqwest::Client,
}

impl HttpTransport {
    /// `base` is `[central] url` (already checked by config: https, or http on loopback);
    /// the token is read from `token_file` with trailing whitespace removed.
    pub fn new(base: &str, host_id: &str, token_file: &Path) -> Result<Self, CentralError> {
        let _ = (base, host_id, token_file);
        todo!()
    }
}

impl Transport for HttpTransport {
    fn kind(&self) -> &'static str {
        "http"
    }
    fn url(&self) -> &str {
        &self.base
    }
    fn poll(&self, req: PollRequest) -> BoxFuture<'_, Result<PollOutcome, CentralError>> {
        let _ = (&self.host_id, &self.token, &self.client);
        Box::pin(async move { todo!("{req:?}") })
    }
    fn send_result<'a>(
        &'a self,
        job_id: &'a str,
        result: &'a JobResult,
    ) -> BoxFuture<'a, Result<(), CentralError>> {
        Box::pin(async move { todo!("{job_id} {result:?}") })
    }
    fn send_report<'a>(&'a self, report: &'a Report) -> BoxFuture<'a, Result<(), CentralError>> {
        Box::pin(async move { todo!("{report:?}") })
    }
}
