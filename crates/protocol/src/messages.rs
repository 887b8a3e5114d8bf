//! The JSON bodies of protocol version 1 (contract section 5): instructions (5.1), a job's
//! result (5.2), the report (5.3). Unknown fields are ignored everywhere; `null` and an
//! absent optional field mean the same.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ProtocolError, MAX_BODY};

/// `panel_ini` of the instructions: `None` = no value from the store; `Some("")` = the key
/// must be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelIniValues {
    #[serde(default)]
    pub buy_url: Option<String>,
    #[serde(default)]
    pub catalog_url: Option<String>,
}

/// A poll answer as the store renders it: every job well-formed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instructions {
    #[serde(default)]
    pub panel_ini: Option<PanelIniValues>,
    #[serde(default)]
    pub jobs: Vec<Job>,
}

/// A poll answer as the agent reads it: the top level checked (see
/// [`parse_raw_instructions`]), each job kept as raw JSON so a bad one can be refused on its
/// own (the agent's per-job judgement) instead of refusing the whole answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawInstructions {
    #[serde(default)]
    pub panel_ini: Option<PanelIniValues>,
    #[serde(default)]
    pub jobs: Vec<Value>,
}

impl From<&Instructions> for RawInstructions {
    fn from(ins: &Instructions) -> Self {
        RawInstructions {
            panel_ini: ins.panel_ini.clone(),
            // A Job always serialises (strings and a tag only).
            jobs: ins
                .jobs
                .iter()
                .map(|j| serde_json::to_value(j).unwrap_or(Value::Null))
                .collect(),
        }
    }
}

/// One job: `{"id": …, "type": "install_key", "activation_code": …}` or
/// `{"id": …, "type": "retrieve_keys"}`.
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
    /// The `type` field's value.
    pub fn type_name(&self) -> &'static str {
        match self {
            JobKind::InstallKey { .. } => "install_key",
            JobKind::RetrieveKeys => "retrieve_keys",
        }
    }
}

/// A job's result (section 5.2).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    pub status: ResultStatus,
    /// `null` for `rejected` (nothing ran) and for a command killed by a signal.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Masked; the tail, at most 16 KiB (`MAX_OUTPUT`).
    pub output: String,
    pub attempts: u32,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: String,
}

/// `succeeded`, `failed` (ran and failed, timed out, or interrupted too often) or
/// `rejected` (invalid, nothing ran).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub agent_version: String,
    /// Normalised (`PLSK.12345678.0001`); `null` when Plesk has no key.
    #[serde(default)]
    pub plesk_key_number: Option<String>,
    #[serde(default)]
    pub plesk_version: Option<String>,
    pub panel_ini: ReportPanelIni,
    pub problems: Vec<String>,
}

/// `panel_ini` of the report: the file, the values in force, whether it is in sync.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportPanelIni {
    pub path: String,
    #[serde(default)]
    pub buy_url: Option<String>,
    #[serde(default)]
    pub catalog_url: Option<String>,
    pub in_sync: bool,
    pub repairs: u64,
}

/// Reads a poll body (section 5.1): refused whole when it is over [`MAX_BODY`], not JSON,
/// or `panel_ini`, its fields or `jobs` have the wrong JSON type.
pub fn parse_raw_instructions(body: &[u8]) -> Result<RawInstructions, ProtocolError> {
    if body.len() > MAX_BODY {
        return Err(ProtocolError::TooLarge { limit: MAX_BODY });
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| ProtocolError::NotJson(e.to_string()))?;
    let top = match value {
        Value::Object(map) => map,
        other => return Err(wrong_type("the top level", &other, "an object")),
    };
    let panel_ini = match top.get("panel_ini") {
        None | Some(Value::Null) => None,
        Some(Value::Object(pi)) => Some(PanelIniValues {
            buy_url: optional_string(pi, "panel_ini.buy_url")?,
            catalog_url: optional_string(pi, "panel_ini.catalog_url")?,
        }),
        Some(other) => return Err(wrong_type("panel_ini", other, "an object")),
    };
    let jobs = match top.get("jobs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(jobs)) => jobs.clone(),
        Some(other) => return Err(wrong_type("jobs", other, "an array")),
    };
    Ok(RawInstructions { panel_ini, jobs })
}

fn wrong_type(what: &str, found: &Value, expected: &'static str) -> ProtocolError {
    ProtocolError::WrongType {
        what: what.to_string(),
        found: json_kind(found),
        expected,
    }
}

/// A field that may be absent or null, else must be a string.
fn optional_string(map: &Map<String, Value>, path: &str) -> Result<Option<String>, ProtocolError> {
    let field = path.rsplit('.').next().unwrap_or(path);
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(wrong_type(path, other, "a string")),
    }
}

/// "a number", "an object"…: the JSON type of `v`, for error sentences.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<RawInstructions, ProtocolError> {
        parse_raw_instructions(v.to_string().as_bytes())
    }

    #[test]
    fn absent_and_null_fields_mean_no_value() {
        assert_eq!(parse(json!({})).unwrap(), RawInstructions::default());
        assert_eq!(
            parse(json!({"panel_ini": null, "jobs": null})).unwrap(),
            RawInstructions::default()
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
            assert_eq!(parse(body.clone()).unwrap_err().to_string(), want, "body {body}");
        }
    }

    #[test]
    fn not_json_and_oversized_bodies_are_refused() {
        let e = parse_raw_instructions(b"<html>oops</html>").unwrap_err().to_string();
        assert!(e.starts_with("not JSON: "), "{e}");
        assert!(matches!(parse_raw_instructions(b""), Err(ProtocolError::NotJson(_))));
        let mut big = b"{\"x\":\"".to_vec();
        big.resize(MAX_BODY + 1 - 2, b'a');
        big.extend_from_slice(b"\"}");
        assert_eq!(big.len(), MAX_BODY + 1);
        assert_eq!(
            parse_raw_instructions(&big).unwrap_err().to_string(),
            format!("larger than {MAX_BODY} bytes")
        );
        // Exactly at the limit is fine.
        let mut exact = b"{\"x\":\"".to_vec();
        exact.resize(MAX_BODY - 2, b'a');
        exact.extend_from_slice(b"\"}");
        assert!(parse_raw_instructions(&exact).is_ok());
    }
}
