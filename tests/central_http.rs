//! The HTTP transport against the fake store (contract section 5).
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plesk_reseller_agent::central::http::HttpTransport;
use plesk_reseller_agent::central::{
    CentralError, JobResult, PanelIniValues, PollOutcome, PollRequest, Report, ReportPanelIni, ResultStatus, Transport,
};
use serde_json::json;
use support::store::FakeStore;

const TOKEN: &str = "s3cret-token";

fn token_file(dir: &Path, content: &str, mode: u32) -> PathBuf {
    let p = dir.join("token");
    std::fs::write(&p, content).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// A store expecting [`TOKEN`] and a transport for host `web-042` holding it.
fn setup() -> (FakeStore, HttpTransport, tempfile::TempDir) {
    let store = FakeStore::start();
    store.expect_token(TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let t = HttpTransport::new(&store.url(), "web-042", &token_file(dir.path(), TOKEN, 0o600)).unwrap();
    (store, t, dir)
}

fn poll_req(etag: Option<&str>, wait: Option<u64>) -> PollRequest {
    PollRequest {
        etag: etag.map(str::to_string),
        key_number: None,
        wait: wait.map(Duration::from_secs),
    }
}

fn result() -> JobResult {
    JobResult {
        status: ResultStatus::Succeeded,
        exit_code: Some(0),
        output: "The license key was installed.".into(),
        attempts: 1,
        started_at: "2026-11-26T12:00:00Z".into(),
        finished_at: "2026-11-26T12:00:03Z".into(),
    }
}

#[tokio::test]
async fn every_request_carries_bearer_user_agent_and_conditional_headers() {
    let store = FakeStore::start();
    store.expect_token(TOKEN);
    let dir = tempfile::tempdir().unwrap();
    // Trailing whitespace and newline in the file are not part of the token.
    let tf = token_file(dir.path(), &format!("{TOKEN} \t\n\n"), 0o600);
    let t = HttpTransport::new(&format!("{}/", store.url()), "web-042", &tf).unwrap();

    let req = PollRequest {
        etag: Some("v0".into()),
        key_number: Some("PLSK.12345678.0001".into()),
        wait: None,
    };
    assert_eq!(t.poll(req).await.unwrap(), PollOutcome::NotModified);
    t.send_result("ord-1001", &result()).await.unwrap();

    let reqs = store.requests();
    assert_eq!(reqs.len(), 2);
    let poll = &reqs[0];
    assert_eq!(poll.method, "GET");
    assert_eq!(poll.path, "/plesk-agent/v1/hosts/web-042/instructions");
    assert_eq!(poll.query, None, "no wait asked, no query");
    assert_eq!(poll.header("if-none-match"), Some("v0"));
    assert_eq!(poll.header("x-plesk-key-number"), Some("PLSK.12345678.0001"));
    let ua = format!("plesk-reseller-agent/{}", plesk_reseller_agent::VERSION);
    for r in &reqs {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str()),
            "{}",
            r.path
        );
        assert_eq!(r.header("user-agent"), Some(ua.as_str()), "{}", r.path);
    }
}

#[tokio::test]
async fn poll_without_etag_or_key_sends_neither_header() {
    let (store, t, _dir) = setup();
    t.poll(poll_req(None, None)).await.unwrap();
    let r = &store.requests()[0];
    assert_eq!(r.header("if-none-match"), None);
    assert_eq!(r.header("x-plesk-key-number"), None);
}

#[tokio::test]
async fn new_instructions_come_with_their_etag_and_then_304() {
    let (store, t, _dir) = setup();
    store.set_instructions(json!({
        "panel_ini": {"buy_url": "https://shop.example.com", "catalog_url": null},
        "jobs": [{"id": "ord-1002", "type": "retrieve_keys"}]
    }));
    let PollOutcome::Instructions { instructions, etag } = t.poll(poll_req(Some("v0"), None)).await.unwrap() else {
        panic!("expected instructions")
    };
    assert_eq!(etag.as_deref(), Some("v1"));
    assert_eq!(
        instructions.panel_ini,
        Some(PanelIniValues {
            buy_url: Some("https://shop.example.com".into()),
            catalog_url: None
        })
    );
    assert_eq!(
        instructions.jobs,
        vec![json!({"id": "ord-1002", "type": "retrieve_keys"})]
    );

    assert_eq!(
        t.poll(poll_req(Some("v1"), None)).await.unwrap(),
        PollOutcome::NotModified
    );
}

#[tokio::test]
async fn a_200_without_etag_is_accepted() {
    let (store, t, _dir) = setup();
    store.set_raw_instructions(200, br#"{"jobs": []}"#.to_vec());
    let out = t.poll(poll_req(Some("v9"), None)).await.unwrap();
    assert_eq!(
        out,
        PollOutcome::Instructions {
            instructions: Default::default(),
            etag: None
        }
    );
}

#[tokio::test]
async fn long_poll_returns_as_soon_as_instructions_change() {
    let (store, t, _dir) = setup();
    let t = Arc::new(t);
    let started = Instant::now();
    let poll = tokio::spawn({
        let t = t.clone();
        async move { t.poll(poll_req(Some("v0"), Some(5))).await }
    });
    // Change the instructions only once the store is really holding the poll.
    let deadline = Instant::now() + Duration::from_secs(3);
    while store.held_polls() == 0 {
        assert!(Instant::now() < deadline, "the store never held the poll");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store.set_instructions(json!({"jobs": [{"id": "j1", "type": "retrieve_keys"}]}));
    let out = poll.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let PollOutcome::Instructions { instructions, etag } = out else {
        panic!("expected instructions")
    };
    assert_eq!(etag.as_deref(), Some("v1"));
    assert_eq!(instructions.jobs.len(), 1);
    assert_eq!(store.requests()[0].query.as_deref(), Some("wait=5"));
}

#[tokio::test]
async fn long_poll_without_change_ends_in_not_modified() {
    let (store, t, _dir) = setup();
    assert_eq!(
        t.poll(poll_req(Some("v0"), Some(1))).await.unwrap(),
        PollOutcome::NotModified
    );
    assert_eq!(store.requests()[0].query.as_deref(), Some("wait=1"));
}

#[tokio::test]
async fn zero_wait_sends_no_wait_parameter() {
    let (store, t, _dir) = setup();
    t.poll(poll_req(None, Some(0))).await.unwrap();
    assert_eq!(store.requests()[0].query, None);
}

#[tokio::test]
async fn error_statuses_are_mapped() {
    let (store, _t, dir) = setup();
    let wrong = {
        let p = dir.path().join("wrong");
        std::fs::write(&p, "not-the-token").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        HttpTransport::new(&store.url(), "web-042", &p).unwrap()
    };
    match wrong.poll(poll_req(None, None)).await {
        Err(CentralError::Unauthorized { status: 401, url }) => {
            assert!(url.ends_with("/v1/hosts/web-042/instructions"), "{url}");
        }
        other => panic!("expected 401, got {other:?}"),
    }

    let (store, t, _dir) = setup();
    store.expect_host("web-001");
    assert!(matches!(
        t.poll(poll_req(None, None)).await,
        Err(CentralError::UnknownHost { .. })
    ));

    let (store, t, _dir) = setup();
    for (code, check) in [
        (
            403u16,
            (|e: &CentralError| matches!(e, CentralError::Unauthorized { status: 403, .. }))
                as fn(&CentralError) -> bool,
        ),
        (500, |e| matches!(e, CentralError::Status { status: 500, .. })),
        (503, |e| matches!(e, CentralError::Status { status: 503, .. })),
        // A redirect is not followed: the token stays with the configured store.
        (302, |e| matches!(e, CentralError::Status { status: 302, .. })),
        (204, |e| matches!(e, CentralError::Status { status: 204, .. })),
    ] {
        store.set_raw_instructions(code, b"nope".to_vec());
        let err = t.poll(poll_req(None, None)).await.unwrap_err();
        assert!(check(&err), "{code} gave {err:?}");
        assert!(!err.to_string().contains(TOKEN));
    }
}

#[tokio::test]
async fn bodies_over_one_mib_are_refused() {
    let (store, t, _dir) = setup();
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(2 * 1024 * 1024)).into_bytes();
    store.set_raw_instructions(200, big.clone());
    let err = t.poll(poll_req(None, None)).await.unwrap_err();
    assert!(matches!(err, CentralError::TooLarge { limit: 1048576, .. }), "{err:?}");
    // Without Content-Length the client has to count while reading.
    store.set_raw_instructions_chunked(200, big);
    let err = t.poll(poll_req(None, None)).await.unwrap_err();
    assert!(matches!(err, CentralError::TooLarge { limit: 1048576, .. }), "{err:?}");
    // The connection pool survives: the next poll works.
    store.set_instructions(json!({}));
    assert!(matches!(
        t.poll(poll_req(None, None)).await.unwrap(),
        PollOutcome::Instructions { .. }
    ));
}

#[tokio::test]
async fn malformed_instructions_are_refused_whole() {
    let (store, t, _dir) = setup();
    store.set_raw_instructions(200, b"<html>maintenance</html>".to_vec());
    match t.poll(poll_req(None, None)).await {
        Err(CentralError::BadInstructions { reason, url }) => {
            assert!(reason.starts_with("not JSON"), "{reason}");
            assert!(url.starts_with(&store.url()), "{url}");
        }
        other => panic!("expected BadInstructions, got {other:?}"),
    }
    store.set_instructions(json!({"panel_ini": {"buy_url": 42}, "jobs": [{"id": "j", "type": "retrieve_keys"}]}));
    match t.poll(poll_req(None, None)).await {
        Err(CentralError::BadInstructions { reason, .. }) => {
            assert_eq!(reason, "panel_ini.buy_url is a number, not a string")
        }
        other => panic!("expected BadInstructions, got {other:?}"),
    }
    store.set_instructions(json!({"jobs": {"id": "j"}}));
    assert!(matches!(
        t.poll(poll_req(None, None)).await,
        Err(CentralError::BadInstructions { .. })
    ));
}

#[tokio::test]
async fn results_are_posted_as_json_and_409_and_410_are_acknowledgements() {
    let (store, t, _dir) = setup();
    t.send_result("ord-1001", &result()).await.unwrap();
    let r = &store.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/plesk-agent/v1/hosts/web-042/jobs/ord-1001/result");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        store.results(),
        vec![(
            "ord-1001".to_string(),
            json!({"status": "succeeded", "exit_code": 0, "output": "The license key was installed.",
                   "attempts": 1, "started_at": "2026-11-26T12:00:00Z", "finished_at": "2026-11-26T12:00:03Z"})
        )]
    );

    store.result_status(409);
    t.send_result("ord-1001", &result()).await.unwrap();
    store.result_status(201);
    t.send_result("ord-1001", &result()).await.unwrap();
    // Version 2: the store no longer has the job; acknowledged, never retried.
    store.result_status(410);
    t.send_result("ord-1001", &result()).await.unwrap();

    store.result_status(200);
    store.result_statuses(&[500, 400]);
    assert!(matches!(
        t.send_result("ord-1", &result()).await,
        Err(CentralError::Status { status: 500, .. })
    ));
    assert!(matches!(
        t.send_result("ord-1", &result()).await,
        Err(CentralError::Status { status: 400, .. })
    ));
    t.send_result("ord-1", &result()).await.unwrap();
    assert_eq!(store.results().len(), 7);
}

#[tokio::test]
async fn reports_are_put() {
    let (store, t, _dir) = setup();
    let report = Report {
        agent_version: "0.1.0".into(),
        plesk_key_number: Some("PLSK.12345678.0001".into()),
        plesk_version: None,
        panel_ini: ReportPanelIni {
            path: "/usr/local/psa/admin/conf/panel.ini".into(),
            buy_url: Some("https://shop.example.com".into()),
            catalog_url: None,
            in_sync: true,
            repairs: 2,
        },
        problems: vec![],
    };
    t.send_report(&report).await.unwrap();
    let r = &store.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("PUT", "/plesk-agent/v1/hosts/web-042/report")
    );
    assert_eq!(store.reports(), vec![serde_json::to_value(&report).unwrap()]);

    store.report_status(409);
    assert!(matches!(
        t.send_report(&report).await,
        Err(CentralError::Status { status: 409, .. })
    ));
}

#[test]
fn token_file_must_be_private_present_and_non_empty() {
    let dir = tempfile::tempdir().unwrap();
    let token_err = |p: &Path| match HttpTransport::new("https://store.example.com", "h", p) {
        Err(CentralError::Token { path, reason }) => {
            assert_eq!(path, p);
            reason
        }
        Err(other) => panic!("expected a token error, got {other:?}"),
        Ok(_) => panic!("{} was accepted", p.display()),
    };
    let p = token_file(dir.path(), TOKEN, 0o644);
    assert_eq!(token_err(&p), "it is readable by group or others; chmod 600 it");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(token_err(&p).contains("chmod 600"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o604)).unwrap();
    assert!(token_err(&p).contains("chmod 600"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(HttpTransport::new("https://store.example.com", "h", &p).is_ok());

    assert_eq!(token_err(&dir.path().join("missing")), "it does not exist");
    let empty = token_file(dir.path(), " \n\t\n", 0o600);
    assert_eq!(token_err(&empty), "it is empty");
    let msg = CentralError::Token {
        path: empty.clone(),
        reason: "it is empty".into(),
    }
    .to_string();
    assert!(msg.contains(&empty.display().to_string()));
}

/// A server that accepts connections and never answers.
fn silent_server() -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let mut held = Vec::new();
        // Two connections are enough for the test; keep them open until it ends.
        for s in listener.incoming().take(2).flatten() {
            held.push(s);
        }
        std::thread::sleep(Duration::from_secs(10));
    });
    (addr, h)
}

#[tokio::test]
async fn a_store_that_never_answers_times_out() {
    let (addr, _h) = silent_server();
    let dir = tempfile::tempdir().unwrap();
    let t = HttpTransport::new(
        &format!("http://{addr}"),
        "web-042",
        &token_file(dir.path(), TOKEN, 0o600),
    )
    .unwrap()
    .with_timeouts(Duration::from_secs(1), Duration::from_secs(1));

    let started = Instant::now();
    match t.poll(poll_req(None, None)).await {
        Err(CentralError::Network { reason, url }) => {
            assert_eq!(reason, "timed out");
            assert_eq!(url, format!("http://{addr}/v1/hosts/web-042/instructions"));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    // A long-poll gets wait + slack (1 + 1 s here), not the plain request timeout.
    let started = Instant::now();
    match t.poll(poll_req(None, Some(1))).await {
        Err(CentralError::Network { reason, .. }) => assert_eq!(reason, "timed out"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

#[tokio::test]
async fn refused_connections_are_named_without_the_token() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let t = HttpTransport::new(
        &format!("http://127.0.0.1:{port}"),
        "web-042",
        &token_file(dir.path(), TOKEN, 0o600),
    )
    .unwrap();
    let err = t.poll(poll_req(None, None)).await.unwrap_err();
    match &err {
        CentralError::Network { reason, .. } => assert_eq!(reason, "connection refused"),
        other => panic!("expected a network error, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")) && !msg.contains(TOKEN),
        "{msg}"
    );
}
