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
    Io { path: PathBuf, source: std::io::Error },
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
    if body.len() > MAX_BODY {
        return Err(format!("larger than {MAX_BODY} bytes"));
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let top = match value {
        serde_json::Value::Object(map) => map,
        other => return Err(format!("the top level is {}, not an object", json_kind(&other))),
    };
    let panel_ini = match top.get("panel_ini") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Object(pi)) => Some(PanelIniValues {
            buy_url: optional_string(pi, "panel_ini", "buy_url")?,
            catalog_url: optional_string(pi, "panel_ini", "catalog_url")?,
        }),
        Some(other) => return Err(format!("panel_ini is {}, not an object", json_kind(other))),
    };
    let jobs = match top.get("jobs") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(jobs)) => jobs.clone(),
        Some(other) => return Err(format!("jobs is {}, not an array", json_kind(other))),
    };
    Ok(Instructions { panel_ini, jobs })
}

/// A field that may be absent or null, else must be a string.
fn optional_string(
    map: &serde_json::Map<String, serde_json::Value>,
    parent: &str,
    field: &str,
) -> Result<Option<String>, String> {
    match map.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("{parent}.{field} is {}, not a string", json_kind(other))),
    }
}

/// "a number", "an object"…: the JSON type of `v`, for error sentences.
fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
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
            Some(serde_json::Value::String(code)) if valid_activation_code(code) => JobKind::InstallKey {
                activation_code: code.clone(),
            },
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

/// True for `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`.
pub fn is_valid_job_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    match bytes.first() {
        Some(first) if first.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    bytes.len() <= 128
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `^[A-Z0-9]{4,8}(-[A-Z0-9]{4,8}){2,7}$`. A private copy of `mask::is_activation_code`,
/// kept so parsing does not depend on the masking module.
fn valid_activation_code(code: &str) -> bool {
    let groups: Vec<&str> = code.split('-').collect();
    (3..=8).contains(&groups.len())
        && groups
            .iter()
            .all(|g| (4..=8).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
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
    fn send_result<'a>(&'a self, job_id: &'a str, result: &'a JobResult) -> BoxFuture<'a, Result<(), CentralError>>;
    fn send_report<'a>(&'a self, report: &'a Report) -> BoxFuture<'a, Result<(), CentralError>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CODE: &str = "A00000-K6QK03-KSG046-H6BK67-1GE201";

    fn parse(v: serde_json::Value) -> Result<Instructions, String> {
        parse_instructions(v.to_string().as_bytes())
    }

    #[test]
    fn job_id_grammar() {
        for good in ["a", "ord-1001", "A.b_c-9", "0", &"x".repeat(128)] {
            assert!(is_valid_job_id(good), "{good:?} should be valid");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "-a",
            ".a",
            "_a",
            "a b",
            "ä",
            "a\n",
            &"x".repeat(129),
        ] {
            assert!(!is_valid_job_id(bad), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn activation_code_grammar() {
        assert!(valid_activation_code(CODE));
        assert!(valid_activation_code("ABCD-EFGH-1234"));
        assert!(valid_activation_code("ABCDEFGH-ABCD-ABCD-ABCD-ABCD-ABCD-ABCD-ABCD"));
        for bad in [
            "a00000-K6QK03-KSG046",
            "ABCD-EFGH",
            "ABC-EFGH-1234",
            "ABCDEFGHI-EFGH-1234",
            "ABCD-EFGH-1234-",
            "ABCD--EFGH-1234",
            "ABCD-ABCD-ABCD-ABCD-ABCD-ABCD-ABCD-ABCD-ABCD",
            " ABCD-EFGH-1234",
            "",
        ] {
            assert!(!valid_activation_code(bad), "{bad:?} should be invalid");
        }
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
    fn absent_and_null_fields_mean_no_value() {
        assert_eq!(parse(json!({})).unwrap(), Instructions::default());
        assert_eq!(
            parse(json!({"panel_ini": null, "jobs": null})).unwrap(),
            Instructions::default()
        );
        let ins = parse(json!({"panel_ini": {"buy_url": null, "catalog_url": ""}})).unwrap();
        assert_eq!(
            ins.panel_ini,
            Some(PanelIniValues {
                buy_url: None,
                catalog_url: Some(String::new())
            })
        );
        assert_eq!(
            parse(json!({"panel_ini": {}})).unwrap().panel_ini,
            Some(PanelIniValues::default())
        );
    }

    #[test]
    fn wrong_types_refuse_the_whole_body() {
        let cases = [
            (
                json!({"panel_ini": {"buy_url": 5}}),
                "panel_ini.buy_url is a number, not a string",
            ),
            (
                json!({"panel_ini": {"catalog_url": ["x"]}}),
                "panel_ini.catalog_url is an array, not a string",
            ),
            (
                json!({"panel_ini": {"buy_url": true}}),
                "panel_ini.buy_url is a boolean, not a string",
            ),
            (
                json!({"panel_ini": "https://x"}),
                "panel_ini is a string, not an object",
            ),
            (json!({"jobs": {"id": "a"}}), "jobs is an object, not an array"),
            (json!({"jobs": "retrieve"}), "jobs is a string, not an array"),
            (json!([]), "the top level is an array, not an object"),
            (json!(null), "the top level is null, not an object"),
        ];
        for (body, want) in cases {
            assert_eq!(parse(body.clone()).unwrap_err(), want, "body {body}");
        }
    }

    #[test]
    fn not_json_and_oversized_bodies_are_refused() {
        let e = parse_instructions(b"<html>oops</html>").unwrap_err();
        assert!(e.starts_with("not JSON: "), "{e}");
        assert!(parse_instructions(b"").unwrap_err().starts_with("not JSON: "));
        let mut big = b"{\"x\":\"".to_vec();
        big.resize(MAX_BODY + 1 - 2, b'a');
        big.extend_from_slice(b"\"}");
        assert_eq!(big.len(), MAX_BODY + 1);
        assert!(parse_instructions(&big).unwrap_err().contains("larger than"));
        // Exactly at the limit is fine.
        let mut exact = b"{\"x\":\"".to_vec();
        exact.resize(MAX_BODY - 2, b'a');
        exact.extend_from_slice(b"\"}");
        assert!(parse_instructions(&exact).is_ok());
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
