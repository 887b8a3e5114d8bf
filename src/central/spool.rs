//! The spool transport (section 6): `dir/instructions.json` in, `dir/results/<job_id>.json`
//! and `dir/report.json` out, each written atomically.

use std::path::PathBuf;

use super::{CentralError, JobResult, PollOutcome, PollRequest, Report, Transport};
use crate::BoxFuture;

pub struct SpoolTransport {
    dir: PathBuf,
    url: String,
}

impl SpoolTransport {
    pub fn new(dir: PathBuf) -> Self {
        let url = format!("file://{}", dir.display());
        SpoolTransport { dir, url }
    }

    /// The file the daemon watches.
    pub fn instructions_path(&self) -> PathBuf {
        self.dir.join("instructions.json")
    }
}

impl Transport for SpoolTransport {
    fn kind(&self) -> &'static str {
        "spool"
    }
    fn url(&self) -> &str {
        &self.url
    }
    fn poll(&self, req: PollRequest) -> BoxFuture<'_, Result<PollOutcome, CentralError>> {
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
