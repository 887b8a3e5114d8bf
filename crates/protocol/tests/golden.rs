//! The bodies of contract section 5, as JSON files, against the protocol types: each golden
//! file parses into the expected value and that value renders the same JSON again.

use plesk_reseller_protocol::*;
use serde_json::{json, Value};

fn golden(name: &str) -> Value {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

const CODE: &str = "A00000-K6QK03-KSG046-H6BK67-1GE201";

fn example_instructions() -> Instructions {
    Instructions {
        panel_ini: Some(PanelIniValues {
            buy_url: Some("https://shop.example.com".into()),
            catalog_url: Some("http://catalog.example.com:8080".into()),
        }),
        jobs: vec![
            Job {
                id: "ord-1001".into(),
                kind: JobKind::InstallKey {
                    activation_code: CODE.into(),
                },
            },
            Job {
                id: "ord-1002".into(),
                kind: JobKind::RetrieveKeys,
            },
        ],
    }
}

#[test]
fn instructions_golden() {
    let want = golden("instructions.json");
    let typed: Instructions = serde_json::from_value(want.clone()).unwrap();
    assert_eq!(typed, example_instructions());
    assert_eq!(serde_json::to_value(&typed).unwrap(), want);
}

/// What a server renders (typed) and what the agent reads (raw) are the same JSON.
#[test]
fn typed_and_raw_instructions_agree() {
    let typed = example_instructions();
    let rendered = serde_json::to_vec(&typed).unwrap();
    let raw = parse_raw_instructions(&rendered).unwrap();
    assert_eq!(raw, RawInstructions::from(&typed));
    assert_eq!(
        serde_json::to_value(&raw).unwrap(),
        serde_json::to_value(&typed).unwrap()
    );
    assert_eq!(
        raw.jobs,
        golden("instructions.json")["jobs"].as_array().unwrap().clone()
    );
    // And the raw form renders back into the typed one.
    let again: Instructions = serde_json::from_slice(&serde_json::to_vec(&raw).unwrap()).unwrap();
    assert_eq!(again, typed);
}

#[test]
fn instructions_without_values_or_jobs() {
    for body in [json!({}), json!({"panel_ini": null, "jobs": null}), json!({"jobs": []})] {
        let raw = parse_raw_instructions(body.to_string().as_bytes()).unwrap();
        assert_eq!(raw, RawInstructions::default(), "{body}");
    }
    let typed: Instructions = serde_json::from_value(json!({"future": 1})).unwrap();
    assert_eq!(typed, Instructions::default());
    // An empty string is a value ("the key must be absent"), not "no value".
    let typed: Instructions = serde_json::from_value(json!({"panel_ini": {"buy_url": ""}})).unwrap();
    assert_eq!(typed.panel_ini.unwrap().buy_url.as_deref(), Some(""));
}

#[test]
fn typed_jobs_refuse_what_section_7_refuses_by_shape() {
    for bad in [
        json!({"id": "a", "type": "install_key"}),
        json!({"id": "a", "type": "format_disk"}),
        json!({"id": "a"}),
        json!({"type": "retrieve_keys"}),
    ] {
        assert!(serde_json::from_value::<Job>(bad.clone()).is_err(), "{bad}");
    }
}

#[test]
fn result_golden() {
    let want = golden("result.json");
    let typed: JobResult = serde_json::from_value(want.clone()).unwrap();
    assert_eq!(
        typed,
        JobResult {
            status: ResultStatus::Succeeded,
            exit_code: Some(0),
            output: "…".into(),
            attempts: 1,
            started_at: "2026-11-26T12:00:00Z".into(),
            finished_at: "2026-11-26T12:00:03Z".into(),
        }
    );
    assert_eq!(serde_json::to_value(&typed).unwrap(), want);

    let want = golden("result-rejected.json");
    let typed: JobResult = serde_json::from_value(want.clone()).unwrap();
    assert_eq!((typed.status, typed.exit_code), (ResultStatus::Rejected, None));
    assert_eq!(serde_json::to_value(&typed).unwrap(), want);
}

#[test]
fn result_status_is_one_of_three() {
    for (s, want) in [
        ("succeeded", ResultStatus::Succeeded),
        ("failed", ResultStatus::Failed),
        ("rejected", ResultStatus::Rejected),
    ] {
        assert_eq!(serde_json::from_value::<ResultStatus>(json!(s)).unwrap(), want);
        assert_eq!(want.as_str(), s);
    }
    for bad in ["ok", "Succeeded", ""] {
        assert!(serde_json::from_value::<ResultStatus>(json!(bad)).is_err(), "{bad}");
    }
    let mut body = golden("result.json");
    body.as_object_mut().unwrap().remove("output");
    assert!(serde_json::from_value::<JobResult>(body).is_err(), "output is required");
}

#[test]
fn report_golden() {
    let want = golden("report.json");
    let typed: Report = serde_json::from_value(want.clone()).unwrap();
    assert_eq!(
        typed,
        Report {
            agent_version: "0.1.0".into(),
            plesk_key_number: Some("PLSK.12345678.0001".into()),
            plesk_version: Some("18.0.64".into()),
            panel_ini: ReportPanelIni {
                path: "/usr/local/psa/admin/conf/panel.ini".into(),
                buy_url: Some("https://shop.example.com".into()),
                catalog_url: Some("http://catalog.example.com:8080".into()),
                in_sync: true,
                repairs: 0,
            },
            problems: vec![],
        }
    );
    assert_eq!(serde_json::to_value(&typed).unwrap(), want);
}

#[test]
fn report_nulls_and_unknown_fields() {
    let mut body = golden("report.json");
    body["plesk_key_number"] = Value::Null;
    body["plesk_version"] = Value::Null;
    body["panel_ini"]["buy_url"] = Value::Null;
    body["from_a_later_agent"] = json!({"x": 1});
    let typed: Report = serde_json::from_value(body).unwrap();
    assert_eq!(typed.plesk_key_number, None);
    assert_eq!(typed.panel_ini.buy_url, None);
    let mut body = golden("report.json");
    body["panel_ini"]["in_sync"] = json!("yes");
    assert!(serde_json::from_value::<Report>(body).is_err());
}
