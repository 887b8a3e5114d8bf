//! The spool transport (contract section 6).
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;

use plesk_reseller_agent::central::spool::SpoolTransport;
use plesk_reseller_agent::central::{
    CentralError, JobResult, PanelIniValues, PollOutcome, PollRequest, RawInstructions, Report, ReportPanelIni,
    ResultStatus, Transport,
};
use serde_json::json;

fn poll_req(etag: Option<String>) -> PollRequest {
    PollRequest {
        etag,
        key_number: None,
        wait: None,
    }
}

fn result(status: ResultStatus) -> JobResult {
    JobResult {
        status,
        exit_code: None,
        output: "unknown job type \"x\"".into(),
        attempts: 0,
        started_at: "2026-11-26T12:00:00Z".into(),
        finished_at: "2026-11-26T12:00:00Z".into(),
    }
}

/// Names in `dir`, sorted, so a leftover temporary file shows up.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn kind_url_and_paths() {
    let dir = tempfile::tempdir().unwrap();
    let t = SpoolTransport::new(dir.path().to_path_buf());
    assert_eq!(t.kind(), "spool");
    assert_eq!(t.url(), format!("file://{}", dir.path().display()));
    assert_eq!(t.instructions_path(), dir.path().join("instructions.json"));
}

#[tokio::test]
async fn a_missing_file_means_nothing_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let t = SpoolTransport::new(dir.path().to_path_buf());
    assert_eq!(
        t.poll(poll_req(None)).await.unwrap(),
        PollOutcome::Instructions {
            instructions: RawInstructions::default(),
            etag: None
        }
    );
}

#[tokio::test]
async fn a_good_file_is_read_and_unchanged_content_is_not_modified() {
    let dir = tempfile::tempdir().unwrap();
    let t = SpoolTransport::new(dir.path().to_path_buf());
    let body = json!({
        "panel_ini": {"buy_url": "https://shop.example.com", "catalog_url": ""},
        "jobs": [{"id": "ord-1", "type": "retrieve_keys"}]
    });
    std::fs::write(t.instructions_path(), body.to_string()).unwrap();

    let PollOutcome::Instructions { instructions, etag } = t.poll(poll_req(None)).await.unwrap() else {
        panic!("expected instructions")
    };
    assert_eq!(
        instructions.panel_ini,
        Some(PanelIniValues {
            buy_url: Some("https://shop.example.com".into()),
            catalog_url: Some(String::new())
        })
    );
    assert_eq!(instructions.jobs, vec![json!({"id": "ord-1", "type": "retrieve_keys"})]);
    let etag = etag.expect("a content hash as etag");
    assert_eq!(etag.len(), 64, "hex sha256: {etag}");

    assert_eq!(
        t.poll(poll_req(Some(etag.clone()))).await.unwrap(),
        PollOutcome::NotModified
    );
    assert!(matches!(
        t.poll(poll_req(Some("other".into()))).await.unwrap(),
        PollOutcome::Instructions { .. }
    ));

    // Replaced content: a new etag.
    std::fs::write(t.instructions_path(), json!({"jobs": []}).to_string()).unwrap();
    let PollOutcome::Instructions { etag: new_etag, .. } = t.poll(poll_req(Some(etag.clone()))).await.unwrap() else {
        panic!("changed content must not be NotModified")
    };
    assert_ne!(new_etag.as_deref(), Some(etag.as_str()));
}

#[tokio::test]
async fn oversized_and_malformed_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = SpoolTransport::new(dir.path().to_path_buf());
    let path = t.instructions_path();

    std::fs::write(&path, vec![b' '; 1024 * 1024 + 1]).unwrap();
    match t.poll(poll_req(None)).await {
        Err(CentralError::TooLarge { url, limit }) => {
            assert_eq!(url, path.display().to_string());
            assert_eq!(limit, 1024 * 1024);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }

    std::fs::write(&path, "{\"jobs\": [").unwrap();
    match t.poll(poll_req(None)).await {
        Err(CentralError::BadInstructions { url, reason }) => {
            assert_eq!(url, path.display().to_string());
            assert!(reason.starts_with("not JSON"), "{reason}");
        }
        other => panic!("expected BadInstructions, got {other:?}"),
    }

    std::fs::write(&path, json!({"panel_ini": {"catalog_url": 8080}}).to_string()).unwrap();
    match t.poll(poll_req(None)).await {
        Err(CentralError::BadInstructions { reason, .. }) => {
            assert_eq!(reason, "panel_ini.catalog_url is a number, not a string")
        }
        other => panic!("expected BadInstructions, got {other:?}"),
    }
}

#[tokio::test]
async fn results_are_written_atomically_as_pretty_json() {
    let dir = tempfile::tempdir().unwrap();
    let t = SpoolTransport::new(dir.path().to_path_buf());
    t.send_result("ord-1001", &result(ResultStatus::Rejected))
        .await
        .unwrap();

    let results = dir.path().join("results");
    assert_eq!(names(&results), vec!["ord-1001.json"]);
    let file = results.join("ord-1001.json");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("\n  \"status\": \"rejected\""),
        "pretty JSON expected: {text}"
    );
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value,
        json!({"status": "rejected", "exit_code": null, "output": "unknown job type \"x\"", "attempts": 0,
               "started_at": "2026-11-26T12:00:00Z", "finished_at": "2026-11-26T12:00:00Z"})
    );
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o644);

    // A second delivery replaces the file and leaves no temporary file behind.
    t.send_result("ord-1001", &result(ResultStatus::Failed)).await.unwrap();
    assert_eq!(names(&results), vec!["ord-1001.json"]);
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(value["status"], "failed");
}

#[tokio::test]
async fn result_file_names_cannot_escape_the_results_directory() {
    let dir = tempfile::tempdir().unwrap();
    let t = SpoolTransport::new(dir.path().join("spool"));
    std::fs::create_dir(dir.path().join("spool")).unwrap();
    for bad in ["../escape", "..", "a/b", ""] {
        assert!(
            matches!(
                t.send_result(bad, &result(ResultStatus::Rejected)).await,
                Err(CentralError::Io { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(names(dir.path()), vec!["spool"]);
}

#[tokio::test]
async fn the_report_is_written_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let t = SpoolTransport::new(dir.path().to_path_buf());
    let report = Report {
        agent_version: "0.1.0".into(),
        plesk_key_number: None,
        plesk_version: Some("18.0.64".into()),
        panel_ini: ReportPanelIni {
            path: "/usr/local/psa/admin/conf/panel.ini".into(),
            buy_url: None,
            catalog_url: Some("http://catalog.example.com:8080".into()),
            in_sync: false,
            repairs: 3,
        },
        problems: vec!["panel.ini cannot be written".into()],
    };
    t.send_report(&report).await.unwrap();
    assert_eq!(names(dir.path()), vec!["report.json"]);
    let value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(value, serde_json::to_value(&report).unwrap());
    assert_eq!(value["panel_ini"]["repairs"], 3);
}

#[tokio::test]
async fn an_unwritable_spool_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the results directory should be.
    std::fs::write(dir.path().join("results"), "").unwrap();
    let t = SpoolTransport::new(dir.path().to_path_buf());
    let err = t
        .send_result("ord-1", &result(ResultStatus::Rejected))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&dir.path().join("results").display().to_string()),
        "{err}"
    );
}
