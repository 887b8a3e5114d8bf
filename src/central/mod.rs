//! The reseller's central store, protocol version 1 (contract sections 5 and 6).
//!
//! - this file: the protocol's types, parsing of instructions, and the [`Transport`] seam;
//! - [`http`]: the HTTP transport (reqwest + rustls);
//! - [`spool`]: the spool-directory transport (`url = file:///dir`).
//!
//! The engine only sees [`Transport`], so it does not know which one it talks to.

pub mod http;
pub mod spool;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::BoxFuture;

/// Largest body accepted from the store (poll answers, spool instructions).
pub const MAX_BODY: usize = 1024 * 1024;

/// What went wrong talking to the store; every variant names the URL or path at fault
/// (never the token).
#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    #[error("the store refused the token ({status}) at {url}")]
    Unauthorized { url: String, status: u16 },
    #[error("the store does not know this host (404) at {url}")]
    UnknownHost { url: String },
    #[error("the store answered {status} at {url}")]
    Status { url: String, status: u16 },
    #[error("cannot reach {url}: {reason}")]
    Network { url: String, reason: String },
    #[error("the answer from {url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("the instructions from {url} were refused: {reason}")]
    BadInstructions { url: String, reason: String },
    #[error("cannot read the token file {path}: {reason}")]
    Token { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `panel_ini` of the instructions: `None` = no value from the store; `Some("")` = the key
/// must be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelIniValues {
    #[serde(default)]
    pub buy_url: Option<String>,
    #[serde(default)]
    pub catalog_url: Option<String>,
}

/// A poll answer, checked as a whole: right JSON types for `panel_ini`, its fields and `jobs`.
/// Each job is kept as raw JSON; [`parse_job`] judges them one by one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Instructions {
    #[serde(default)]
    pub panel_ini: Option<PanelIniValues>,
    #[serde(default)]
    pub jobs: Vec<serde_json::Value>,
}

/// A job that passed every check of section 7.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    #[serde(flatten)]
    pub kind: JobKind,
}

/// The two kinds of work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobKind {
    InstallKey { activation_code: String },
    RetrieveKeys,
}

impl JobKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            JobKind::InstallKey { .. } => "install_key",
            JobKind::RetrieveKeys => "retrieve_keys",
        }
    }
}

/// One element of `jobs`, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedJob {
    /// Run it.
    Valid(Job),
    /// Answer `rejected` with `reason`; nothing runs.
    Rejected {
        id: String,
        job_type: Option<String>,
        reason: String,
    },
    /// No usable id: cannot be answered; log, show as a problem, skip.
    Unanswerable { reason: String },
}

/// Parses a poll body: refused whole when it is not JSON, too large, or the top-level
/// fields have the wrong types.
pub fn parse_instructions(body: &[u8]) -> Result<Instructions, String> {
    todo!("parse_instructions {}", body.len())
}

/// Judges one element of `jobs` (section 7): id grammar, known type, valid activation code.
pub fn parse_job(raw: &serde_json::Value) -> ParsedJob {
    todo!("parse_job {raw}")
}

/// True for `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`.
pub fn is_valid_job_id(id: &str) -> bool {
    todo!("is_valid_job_id {id}")
}

/// A job's result (section 5.2), as delivered and as stored in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    /// `succeeded`, `failed` or `rejected`.
    pub status: ResultStatus,
    pub exit_code: Option<i32>,
    /// Masked, at most 16 KiB (the tail).
    pub output: String,
    pub attempts: u32,
    pub started_at: String,
    pub finished_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    Succeeded,
    Failed,
    Rejected,
}

impl ResultStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultStatus::Succeeded => "succeeded",
            ResultStatus::Failed => "failed",
            ResultStatus::Rejected => "rejected",
        }
    }
}

/// The report (section 5.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub agent_version: String,
    pub plesk_key_number: Option<String>,
    pub plesk_version: Option<String>,
    pub panel_ini: ReportPanelIni,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportPanelIni {
    pub path: String,
    pub buy_url: Option<String>,
    pub catalog_url: Option<String>,
    pub in_sync: bool,
    pub repairs: u64,
}

/// What a poll brought.
#[derive(Debug, Clone, PartialEq)]
pub enum PollOutcome {
    /// New instructions (and the ETag to send next time, when the store gave one).
    Instructions {
        instructions: Instructions,
        etag: Option<String>,
    },
    /// `304`: keep the persisted instructions.
    NotModified,
}

/// Arguments of one poll.
#[derive(Debug, Clone, Default)]
pub struct PollRequest {
    pub etag: Option<String>,
    pub key_number: Option<String>,
    /// Long-poll: how long the store may hold the request (`?wait=`); None or zero: no wait.
    pub wait: Option<Duration>,
}

/// How the agent talks to the store. HTTP and spool implement it; tests may too.
pub trait Transport: Send + Sync {
    /// `http` or `spool`.
    fn kind(&self) -> &'static str;
    /// The store's URL (`https://…` or `file:///…`), for logs and status.
    fn url(&self) -> &str;
    fn poll(&self, req: PollRequest) -> BoxFuture<'_, Result<PollOutcome, CentralError>>;
    /// Delivers one result; Ok means acknowledged (2xx or 409 over HTTP).
    fn send_result<'a>(
        &'a self,
        job_id: &'a str,
        result: &'a JobResult,
    ) -> BoxFuture<'a, Result<(), CentralError>>;
    fn send_report<'a>(&'a self, report: &'a Report) -> BoxFuture<'a, Result<(), CentralError>>;
}
