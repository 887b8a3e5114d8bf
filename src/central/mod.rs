//! The reseller's central store, protocol version 1 (contract sections 5 and 6).
//!
//! - this file: the agent's reading of the protocol (the types are the shared
//!   `plesk_reseller_protocol`'s): per-job judgement, and the [`Transport`] seam;
//! - [`http`]: the HTTP transport (reqwest + rustls);
//! - [`spool`]: the spool-directory transport (`url = file:///dir`).
//!
//! The engine only sees [`Transport`], so it does not know which one it talks to.

pub mod enroll;
pub mod http;
pub mod spool;

use std::path::PathBuf;
use std::time::Duration;

use crate::BoxFuture;

pub use plesk_reseller_protocol::{
    is_valid_job_id, Job, JobKind, JobResult, PanelIniValues, RawInstructions, Report, ReportPanelIni, ResultStatus,
    MAX_BODY,
};

use plesk_reseller_protocol::messages::json_kind;

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
    #[error("the store is restarting (503, Retry-After: {secs} s) at {url}")]
    RetryAfter { url: String, secs: u64 },
    #[error("cannot reach {url}: {reason}")]
    Network { url: String, reason: String },
    #[error("the answer from {url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("the instructions from {url} were refused: {reason}")]
    BadInstructions { url: String, reason: String },
    #[error("cannot read the token file {path}: {reason}")]
    Token { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// No token yet, and the enroll key was refused or cannot be used (section 5.5); the
    /// next attempt is due in `retry_in`.
    #[error("{sentence}")]
    Enrolling { sentence: String, retry_in: Duration },
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

/// Reads a poll body from `url` (a transport's), refused whole as section 5.1 says.
pub fn parse_instructions(url: &str, body: &[u8]) -> Result<RawInstructions, CentralError> {
    plesk_reseller_protocol::parse_raw_instructions(body).map_err(|e| CentralError::BadInstructions {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

/// Quotes a store-supplied string for a message, cut to a readable length.
fn quoted(s: &str) -> String {
    const LIMIT: usize = 64;
    match s.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

/// Judges one element of `jobs` (section 7): id grammar, known type, valid activation code.
pub fn parse_job(raw: &serde_json::Value) -> ParsedJob {
    let obj = match raw {
        serde_json::Value::Object(obj) => obj,
        other => {
            return ParsedJob::Unanswerable {
                reason: format!("a job is {}, not an object", json_kind(other)),
            }
        }
    };
    let id = match obj.get("id") {
        None | Some(serde_json::Value::Null) => {
            return ParsedJob::Unanswerable {
                reason: "a job has no id".to_string(),
            };
        }
        Some(serde_json::Value::String(id)) => id,
        Some(other) => {
            return ParsedJob::Unanswerable {
                reason: format!("a job's id is {}, not a string", json_kind(other)),
            }
        }
    };
    if !is_valid_job_id(id) {
        return ParsedJob::Unanswerable {
            reason: format!(
                "job id {} is not valid (letters, digits, . _ -, first a letter or digit, at most 128)",
                quoted(id)
            ),
        };
    }
    let rejected = |job_type: Option<&str>, reason: String| ParsedJob::Rejected {
        id: id.clone(),
        job_type: job_type.map(str::to_string),
        reason,
    };
    let job_type = match obj.get("type") {
        None | Some(serde_json::Value::Null) => return rejected(None, "the job has no type".to_string()),
        Some(serde_json::Value::String(t)) => t.as_str(),
        Some(other) => return rejected(None, format!("type is {}, not a string", json_kind(other))),
    };
    let kind = match job_type {
        "install_key" => match obj.get("activation_code") {
            None | Some(serde_json::Value::Null) => {
                return rejected(Some(job_type), "activation_code is missing".to_string());
            }
            // The reason never quotes the code: it may be a real code with a typo.
            Some(serde_json::Value::String(code)) if plesk_reseller_protocol::is_activation_code(code) => {
                JobKind::InstallKey {
                    activation_code: code.clone(),
                }
            }
            Some(serde_json::Value::String(_)) => {
                return rejected(
                    Some(job_type),
                    "activation_code is not a valid activation code".to_string(),
                );
            }
            Some(other) => {
                return rejected(
                    Some(job_type),
                    format!("activation_code is {}, not a string", json_kind(other)),
                );
            }
        },
        "retrieve_keys" => JobKind::RetrieveKeys,
        other => return rejected(Some(other), format!("unknown job type {}", quoted(other))),
    };
    ParsedJob::Valid(Job { id: id.clone(), kind })
}

/// What a poll brought.
#[derive(Debug, Clone, PartialEq)]
pub enum PollOutcome {
    /// New instructions (and the ETag to send next time, when the store gave one).
    Instructions {
        instructions: RawInstructions,
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
    /// Delivers one result; Ok means acknowledged (2xx, 409 or 410 over HTTP).
    fn send_result<'a>(&'a self, job_id: &'a str, result: &'a JobResult) -> BoxFuture<'a, Result<(), CentralError>>;
    fn send_report<'a>(&'a self, report: &'a Report) -> BoxFuture<'a, Result<(), CentralError>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CODE: &str = "A00000-K6QK03-KSG046-H6BK67-1GE201";

    fn parse(v: serde_json::Value) -> Result<RawInstructions, CentralError> {
        parse_instructions("https://store.test", v.to_string().as_bytes())
    }

    #[test]
    fn full_example_parses() {
        let ins = parse(json!({
            "panel_ini": { "buy_url": "https://shop.example.com", "catalog_url": "http://catalog.example.com:8080" },
            "jobs": [
                { "id": "ord-1001", "type": "install_key", "activation_code": CODE },
                { "id": "ord-1002", "type": "retrieve_keys" }
            ],
            "future_field": 1
        }))
        .unwrap();
        assert_eq!(
            ins.panel_ini,
            Some(PanelIniValues {
                buy_url: Some("https://shop.example.com".into()),
                catalog_url: Some("http://catalog.example.com:8080".into()),
            })
        );
        assert_eq!(ins.jobs.len(), 2);
        assert_eq!(
            parse_job(&ins.jobs[0]),
            ParsedJob::Valid(Job {
                id: "ord-1001".into(),
                kind: JobKind::InstallKey {
                    activation_code: CODE.into()
                }
            })
        );
        assert_eq!(
            parse_job(&ins.jobs[1]),
            ParsedJob::Valid(Job {
                id: "ord-1002".into(),
                kind: JobKind::RetrieveKeys
            })
        );
    }

    #[test]
    fn jobs_without_usable_id_are_unanswerable() {
        for raw in [
            json!("ord-1"),
            json!(null),
            json!({"type": "retrieve_keys"}),
            json!({"id": null, "type": "retrieve_keys"}),
            json!({"id": 7, "type": "retrieve_keys"}),
            json!({"id": ".", "type": "retrieve_keys"}),
            json!({"id": "..", "type": "retrieve_keys"}),
            json!({"id": "a/b", "type": "retrieve_keys"}),
            json!({"id": "-a", "type": "retrieve_keys"}),
            json!({"id": "x".repeat(129), "type": "retrieve_keys"}),
        ] {
            assert!(matches!(parse_job(&raw), ParsedJob::Unanswerable { .. }), "{raw}");
        }
        let ParsedJob::Unanswerable { reason } = parse_job(&json!({"id": "y".repeat(1000)})) else {
            panic!("expected unanswerable")
        };
        assert!(reason.len() < 200, "long ids are shortened in the reason: {reason}");
    }

    #[test]
    fn invalid_jobs_with_an_id_are_rejected() {
        let rejected = |raw: serde_json::Value| match parse_job(&raw) {
            ParsedJob::Rejected { id, job_type, reason } => (id, job_type, reason),
            other => panic!("{raw} gave {other:?}"),
        };
        assert_eq!(
            rejected(json!({"id": "j1"})),
            ("j1".into(), None, "the job has no type".into())
        );
        assert_eq!(
            rejected(json!({"id": "j1", "type": 3})),
            ("j1".into(), None, "type is a number, not a string".into())
        );
        assert_eq!(
            rejected(json!({"id": "j1", "type": "format_disk"})),
            (
                "j1".into(),
                Some("format_disk".into()),
                "unknown job type \"format_disk\"".into()
            )
        );
        assert_eq!(
            rejected(json!({"id": "j1", "type": "install_key"})),
            (
                "j1".into(),
                Some("install_key".into()),
                "activation_code is missing".into()
            )
        );
        assert_eq!(
            rejected(json!({"id": "j1", "type": "install_key", "activation_code": 12345})).2,
            "activation_code is a number, not a string"
        );
        let lower = CODE.to_lowercase();
        let (_, ty, reason) = rejected(json!({"id": "j1", "type": "install_key", "activation_code": lower}));
        assert_eq!(ty.as_deref(), Some("install_key"));
        assert_eq!(reason, "activation_code is not a valid activation code");
        assert!(!reason.contains(&lower) && !reason.contains("K6QK03"));
        // Shell metacharacters never reach a command.
        let (_, _, reason) =
            rejected(json!({"id": "j1", "type": "install_key", "activation_code": format!("{CODE}; rm -rf /")}));
        assert_eq!(reason, "activation_code is not a valid activation code");
    }

    #[test]
    fn retrieve_keys_ignores_extra_fields() {
        assert_eq!(
            parse_job(&json!({"id": "r", "type": "retrieve_keys", "activation_code": "junk", "x": {}})),
            ParsedJob::Valid(Job {
                id: "r".into(),
                kind: JobKind::RetrieveKeys
            })
        );
    }
}
