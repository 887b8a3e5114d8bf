//! `status`, `poll-now` and the state-directory lock against the real daemon (contract
//! sections 2, 8 and 9).
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::daemon::{set_config, Daemon};
use support::sandbox::{store, text, Sandbox};

const T: Duration = Duration::from_secs(5);
const BUY: &str = "https://shop.example.com/buy";

/// The example of contract section 8, verbatim except for the elided strings.
fn contract_example() -> Value {
    json!({
      "schema_version": 1,
      "daemon": { "running": true, "pid": 1234, "version": "0.1.0", "started_at": "…", "uptime_s": 42 },
      "health": { "status": "ok", "problems": [] },
      "central": { "url": "…", "transport": "http", "last_poll_at": "…", "last_poll_ok": true,
                   "consecutive_failures": 0, "last_error": null },
      "push": { "listen": null, "accepted": 0, "rejected": 0 },
      "panel_ini": { "path": "…", "in_sync": true, "repairs": 0, "last_repair_at": null,
                     "buy_url":     { "desired": "…", "actual": "…", "source": "central" },
                     "catalog_url": { "desired": null, "actual": null, "source": "none" } },
      "plesk": { "key_number": "PLSK.12345678.0001" },
      "jobs": { "running": null, "undelivered_results": 0,
                "recent": [ { "id": "ord-1001", "type": "install_key", "status": "succeeded",
                              "finished_at": "…", "attempts": 1 } ] }
    })
}

/// Every field of `want` is in `got` with the same JSON type; a null in the example is a
/// value that may be absent, so there null or a string is accepted.
fn same_shape(want: &Value, got: &Value, at: &str) {
    match want {
        Value::Object(m) => {
            let g = got.as_object().unwrap_or_else(|| panic!("{at}: not an object: {got}"));
            for (k, w) in m {
                let v = g.get(k).unwrap_or_else(|| panic!("{at}.{k} is missing"));
                same_shape(w, v, &format!("{at}.{k}"));
            }
        }
        Value::Array(a) => {
            let g = got.as_array().unwrap_or_else(|| panic!("{at}: not an array: {got}"));
            if let Some(w) = a.first() {
                assert!(!g.is_empty(), "{at}: empty, the test needs an element");
                for v in g {
                    same_shape(w, v, &format!("{at}[]"));
                }
            }
        }
        Value::Null => assert!(got.is_null() || got.is_string(), "{at}: {got}"),
        Value::Bool(_) => assert!(got.is_boolean(), "{at}: {got}"),
        Value::Number(_) => assert!(got.is_u64(), "{at}: {got}"),
        Value::String(_) => assert!(got.is_string(), "{at}: {got}"),
    }
}

#[test]
fn status_json_matches_the_contract_and_exit_codes_follow_health() {
    let store = store();
    store.set_instructions(json!({
        "panel_ini": {"buy_url": BUY},
        "jobs": [{"id": "ord-1001", "type": "install_key", "activation_code": support::sandbox::CODE}]
    }));
    let sb = Sandbox::new(&store.url(), "", "");
    sb.plesk_switch("key_id", "PLSK123456780001");

    // No daemon yet.
    let out = sb.agent(&["poll-now"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not running"), "{}", text(&out.stderr));

    let d = Daemon::start(&sb);
    let s = d
        .wait_status(
            |s| s["jobs"]["recent"].as_array().is_some_and(|r| !r.is_empty()) && s["jobs"]["undelivered_results"] == 0,
            T,
        )
        .unwrap_or_else(|| panic!("the job did not finish; log:\n{}", d.log_text()));
    same_shape(&contract_example(), &s, "status");
    assert_eq!(s["daemon"]["running"], true);
    assert_eq!(s["daemon"]["pid"], d.pid());
    assert_eq!(s["daemon"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["health"], json!({"status": "ok", "problems": []}));
    assert_eq!(s["central"]["url"], store.url());
    assert_eq!(s["central"]["transport"], "http");
    assert_eq!(s["panel_ini"]["path"], sb.panel_ini.display().to_string());
    assert_eq!(
        s["panel_ini"]["buy_url"],
        json!({"desired": BUY, "actual": BUY, "source": "central"})
    );
    assert_eq!(
        s["panel_ini"]["catalog_url"],
        json!({"desired": null, "actual": null, "source": "none"})
    );
    assert_eq!(s["push"]["listen"], Value::Null);
    assert!(s["plesk"]["key_number"].as_str().unwrap().starts_with("PLSK."));
    assert_eq!(s["jobs"]["recent"][0]["id"], "ord-1001");
    assert_eq!(s["jobs"]["recent"][0]["type"], "install_key");
    assert_eq!(s["jobs"]["recent"][0]["status"], "succeeded");
    assert_eq!(s["jobs"]["running"], Value::Null);
    assert!(!s.to_string().contains("K6QK03"));

    let out = d.agent(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // poll-now polls.
    let polls = store.poll_count();
    let out = d.agent(&["poll-now"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(store.wait_for(|s| s.poll_count() > polls, T), "poll-now caused no poll");

    // Degraded: the store fails.
    store.set_raw_instructions(500, b"oops".to_vec());
    assert_eq!(d.agent(&["poll-now"]).status.code(), Some(0));
    assert!(d.wait_status(|s| s["health"]["status"] == "degraded", T).is_some());
    let out = d.agent(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("500"), "{}", text(&out.stdout));

    assert_eq!(d.stop().code(), Some(0));
    // No daemon: the last persisted state, exit 3.
    let out = sb.agent(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["daemon"]["running"], false);
    assert_eq!(s["health"]["status"], "degraded");
    assert_eq!(s["jobs"]["recent"][0]["id"], "ord-1001");
    let out = sb.agent(&["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stdout).contains("ord-1001"), "{}", text(&out.stdout));
    assert_eq!(sb.agent(&["poll-now"]).status.code(), Some(3));
}

#[test]
fn a_second_daemon_on_the_same_state_directory_refuses_to_start() {
    let sb = Sandbox::new("", &format!("buy_url = {BUY}"), "");
    let first = Daemon::start(&sb);
    let mut second = Daemon::spawn(&sb);
    let st = second
        .wait_exit(T)
        .unwrap_or_else(|| panic!("the second daemon kept running; log:\n{}", second.log_text()));
    assert_eq!(st.code(), Some(1));
    let log = second.log_text();
    assert!(
        log.contains(&sb.state_dir.display().to_string()) && log.contains("another daemon"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    // The first one still answers on its socket.
    assert_eq!(first.status_json()["daemon"]["pid"], first.pid());

    // Also with another socket, so only the state directory is shared.
    let other_socket = sb.dir.path().join("run/second.sock");
    set_config(&sb, "agent", "socket", &other_socket.display().to_string());
    let mut third = Daemon::spawn(&sb);
    let st = third.wait_exit(T).expect("the third daemon kept running");
    assert_eq!(st.code(), Some(1));
    assert!(third.log_text().contains(&sb.state_dir.display().to_string()));
    assert!(!other_socket.exists());
    assert_eq!(first.stop().code(), Some(0));
}
