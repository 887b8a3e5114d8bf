//! `sync` against a loopback HTTP store: the real binary, the stand-in plesk, real files.
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::sandbox::{store, text, Sandbox, CODE, CODE_MASKED, TOKEN};

const BUY: &str = "https://shop.example.com/buy?ref=plesk&lang=en";
const CATALOG: &str = "http://catalog.example.com:8080";

#[test]
fn sync_sets_panel_ini_runs_both_jobs_and_delivers_masked_results() {
    let store = store();
    let sb = Sandbox::new(&store.url(), "", "");
    sb.plesk_switch("key_id", "PLSK123456780001");
    sb.write_panel_ini("; Plesk panel.ini\n[debug]\nenabled = on\n");
    store.set_instructions(json!({
        "panel_ini": {"buy_url": BUY, "catalog_url": CATALOG},
        "jobs": [
            {"id": "ord-1001", "type": "install_key", "activation_code": CODE},
            {"id": "ord-1002", "type": "retrieve_keys"}
        ]
    }));

    let out = sb.agent(&["sync"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");

    assert_eq!(
        sb.read_panel_ini(),
        format!("; Plesk panel.ini\n[debug]\nenabled = on\n\n[extensions]\nbuyUrl = \"{BUY}\"\ncatalog.url = \"{CATALOG}\"\n")
    );
    assert_eq!(
        sb.license_calls(),
        vec![format!("bin license -i {CODE}"), "bin license --retrieve".to_string()]
    );

    let results = store.results();
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(results[0].0, "ord-1001");
    assert_eq!(results[1].0, "ord-1002");
    for (_, r) in &results {
        assert_eq!(r["status"], "succeeded");
        assert_eq!(r["exit_code"], 0);
        assert_eq!(r["attempts"], 1);
        for k in ["started_at", "finished_at"] {
            let t = r[k].as_str().unwrap();
            assert!(
                t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
                "{k}: {t}"
            );
        }
    }
    let out0 = results[0].1["output"].as_str().unwrap();
    assert!(
        !out0.contains(CODE) && !out0.contains("K6QK03"),
        "unmasked code in result: {out0}"
    );
    assert!(results[1].1["output"]
        .as_str()
        .unwrap()
        .contains("Updating license key"));
    assert!(!stderr.contains("K6QK03"), "unmasked code in logs: {stderr}");

    let polls: Vec<_> = store.requests().into_iter().filter(|r| r.is_poll()).collect();
    assert_eq!(polls.len(), 1);
    assert_eq!(
        polls[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(polls[0].header("x-plesk-key-number"), Some("PLSK.12345678.0001"));
    assert!(polls[0]
        .header("user-agent")
        .unwrap()
        .starts_with("plesk-reseller-agent/"));

    let reports = store.reports();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r["panel_ini"]["buy_url"], BUY);
    assert_eq!(r["panel_ini"]["in_sync"], true);
    assert_eq!(r["problems"], json!([]));
    assert_eq!(r["plesk_version"], "18.0.64.1");
    // The key installed by the job, read again after it succeeded.
    assert!(r["plesk_key_number"].as_str().unwrap().starts_with("PLSK."));
    assert!(!serde_json::to_string(r).unwrap().contains("K6QK03"));
    // The masked form is what the result carries.
    let _ = CODE_MASKED;
}

#[test]
fn invalid_jobs_are_rejected_and_never_reach_the_command() {
    let store = store();
    let sb = Sandbox::new(&store.url(), "", "");
    store.set_instructions(json!({
        "jobs": [
            {"id": "bad-code", "type": "install_key", "activation_code": "a00000-k6qk03-ksg046"},
            {"id": "no-code", "type": "install_key"},
            {"id": "odd-type", "type": "format_disk"},
            {"id": "../etc", "type": "retrieve_keys"},
            {"type": "retrieve_keys"}
        ]
    }));
    let out = sb.agent(&["sync"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(sb.license_calls().is_empty(), "{:?}", sb.license_calls());
    let results = store.results();
    let ids: Vec<&str> = results.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["bad-code", "no-code", "odd-type"]);
    for (_, r) in &results {
        assert_eq!(r["status"], "rejected");
        assert_eq!(r["exit_code"], serde_json::Value::Null);
        assert!(!r["output"].as_str().unwrap().is_empty());
    }
    let report = store.reports().pop().unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
}

#[test]
fn failing_command_gives_failed_with_its_output_and_exit_code() {
    let store = store();
    let sb = Sandbox::new(&store.url(), "", "");
    sb.plesk_switch("fail", "Error: the key server said no\n");
    sb.plesk_switch("fail_code", "4");
    store.set_instructions(json!({"jobs": [{"id": "j1", "type": "retrieve_keys"}]}));
    let out = sb.agent(&["sync"]);
    assert_eq!(out.status.code(), Some(1));
    let (_, r) = store.results().pop().unwrap();
    assert_eq!(r["status"], "failed");
    assert_eq!(r["exit_code"], 4);
    assert!(r["output"].as_str().unwrap().contains("the key server said no"));
}

#[test]
fn hanging_command_times_out_and_its_grandchild_is_gone() {
    let store = store();
    let sb = Sandbox::new(&store.url(), "", "");
    let cfg = std::fs::read_to_string(&sb.config)
        .unwrap()
        .replace("timeout = 20", "timeout = 1");
    std::fs::write(&sb.config, cfg).unwrap();
    sb.plesk_switch("hang", "");
    sb.plesk_switch("grandchild", "");
    store.set_instructions(json!({"jobs": [{"id": "j1", "type": "install_key", "activation_code": CODE}]}));
    let out = sb.agent(&["sync"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let (_, r) = store.results().pop().unwrap();
    assert_eq!(r["status"], "failed");
    assert_eq!(r["exit_code"], serde_json::Value::Null);
    assert!(r["output"].as_str().unwrap().contains("timed out"), "{r}");
    let pid: i32 = std::fs::read_to_string(sb.plesk_dir.join("grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone = (0..40).any(|_| {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.split(") ").nth(1).unwrap_or("").starts_with('Z'))
            .unwrap_or(false);
        if alive {
            std::thread::sleep(Duration::from_millis(50));
        }
        !alive
    });
    assert!(gone, "grandchild {pid} still alive");
}

#[test]
fn oversized_and_invalid_bodies_are_refused_whole_and_leave_panel_ini_alone() {
    let store = store();
    let sb = Sandbox::new(&store.url(), "", "");
    store.set_instructions(json!({"panel_ini": {"buy_url": BUY}}));
    assert_eq!(sb.agent(&["sync"]).status.code(), Some(0));
    let before = sb.read_panel_ini();
    assert!(before.contains(BUY));

    let mut big =
        br#"{"panel_ini":{"buy_url":"https://evil.example.com"},"jobs":[{"id":"x","type":"retrieve_keys"}],"pad":""#
            .to_vec();
    big.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024));
    big.extend(b"\"}");
    store.set_raw_instructions(200, big);
    let out = sb.agent(&["sync"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("larger than"), "{}", text(&out.stderr));
    assert_eq!(sb.read_panel_ini(), before);

    store.set_raw_instructions(200, b"{\"panel_ini\": {\"buy_url\": 42}, \"jobs\": []}".to_vec());
    let out = sb.agent(&["sync"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("buy_url"), "{}", text(&out.stderr));
    store.set_raw_instructions(200, b"<html>oops".to_vec());
    let out = sb.agent(&["sync"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not JSON"), "{}", text(&out.stderr));

    assert_eq!(sb.read_panel_ini(), before, "the previous instructions stay in force");
    assert!(sb.license_calls().is_empty());
    let status = sb.agent(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["health"]["status"], "degraded");
    assert_eq!(v["central"]["last_poll_ok"], false);
}

#[test]
fn a_job_with_a_stored_result_is_never_run_again() {
    let store = store();
    let sb = Sandbox::new(&store.url(), "", "");
    store.set_instructions(json!({"jobs": [{"id": "once", "type": "install_key", "activation_code": CODE}]}));
    assert_eq!(sb.agent(&["sync"]).status.code(), Some(0));
    // The store "lost" the result and still lists the job.
    assert_eq!(sb.agent(&["sync"]).status.code(), Some(0));
    assert_eq!(sb.license_calls().len(), 1);
    let results = store.results();
    assert_eq!(results.len(), 2, "the stored result is delivered again");
    assert_eq!(results[0].1, results[1].1);
}

#[test]
fn a_result_the_store_refused_is_delivered_by_the_next_sync() {
    let store = store();
    let sb = Sandbox::new(&store.url(), "", "");
    store.result_statuses(&[500]);
    store.set_instructions(json!({"jobs": [{"id": "r1", "type": "retrieve_keys"}]}));
    let out = sb.agent(&["sync"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("500"), "{}", text(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&sb.agent(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["jobs"]["undelivered_results"], 1);

    let out = sb.agent(&["sync"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(sb.license_calls().len(), 1);
    let results = store.results();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].1, results[1].1);
}

/// Starts `sync` and SIGKILLs it once its license command runs; `what` names the run in the
/// failure message.
fn kill_sync_mid_job(sb: &Sandbox, what: &str) {
    let mut child = sb
        .command(&["sync"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(sb.wait_job_started(Duration::from_secs(10)), "{what} never started");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The orphaned command is Plesk's business; stop it so it does not finish later.
    sb.kill_job_group();
}

#[test]
fn killed_during_a_job_the_next_sync_finishes_it_and_delivers_one_result() {
    let store = store();
    let sb = Sandbox::new(&store.url(), "", "");
    sb.plesk_switch("delay", "30");
    store.set_instructions(json!({"jobs": [{"id": "crash-1", "type": "install_key", "activation_code": CODE}]}));
    kill_sync_mid_job(&sb, "the license command");
    assert!(store.results().is_empty());

    sb.plesk_unswitch("delay");
    let out = sb.agent(&["sync"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(sb.license_calls().len(), 2, "run again after the crash");
    let results = store.results();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].1["status"], "succeeded");
    assert_eq!(results[0].1["attempts"], 2);
    assert_eq!(sb.agent(&["sync"]).status.code(), Some(0));
    assert_eq!(sb.license_calls().len(), 2, "never re-run after success");
}

#[test]
fn refused_values_leave_panel_ini_byte_identical_and_are_reported() {
    let store = store();
    let sb = Sandbox::new(&store.url(), "", "");
    let original = "\u{feff}; keep me\r\n[extensions]\r\nbuyUrl = \"https://old.example.com\"\r\n";
    for bad in [
        "http://shop.example.com",
        "https://shop.example.com/\"x",
        "https://shop.example.com/$x",
        "https://shop.example.com/\\x",
        "https://shop.example.com/\nx",
        "shop.example.com",
    ] {
        sb.write_panel_ini(original);
        store.set_instructions(json!({"panel_ini": {"buy_url": bad, "catalog_url": CATALOG}}));
        let out = sb.agent(&["sync"]);
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        assert!(text(&out.stderr).contains("buy_url"), "{bad:?}: {}", text(&out.stderr));
        assert_eq!(sb.read_panel_ini(), original, "{bad:?} changed the file");
        let problems = store.reports().pop().unwrap()["problems"].clone();
        assert!(problems.to_string().contains("buy_url"), "{problems}");
    }
}

#[test]
fn empty_string_from_the_store_removes_the_key_whatever_the_local_config_says() {
    let store = store();
    let sb = Sandbox::new(&store.url(), "buy_url = https://local.example.com", "");
    sb.write_panel_ini("[extensions]\nbuyUrl = \"https://x.example.com\"\nblacklist = a,b\n");
    store.set_instructions(json!({"panel_ini": {"buy_url": ""}}));
    assert_eq!(sb.agent(&["sync"]).status.code(), Some(0));
    assert_eq!(sb.read_panel_ini(), "[extensions]\nblacklist = a,b\n");
    // Without a store value, the local one applies.
    store.set_instructions(json!({"panel_ini": {"buy_url": null}}));
    assert_eq!(sb.agent(&["sync"]).status.code(), Some(0));
    assert_eq!(
        sb.read_panel_ini(),
        "[extensions]\nblacklist = a,b\nbuyUrl = \"https://local.example.com\"\n"
    );
}

#[test]
fn wrong_token_is_an_error_naming_the_url_never_the_token() {
    let store = store();
    let sb = Sandbox::new(&store.url(), "", "");
    std::fs::write(sb.dir.path().join("token"), "wrong-token\n").unwrap();
    let out = sb.agent(&["sync"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("401") && err.contains(&store.url()), "{err}");
    assert!(!err.contains("wrong-token"));
}

#[test]
fn a_job_interrupted_three_times_is_failed_not_run_a_fourth_time() {
    let store = store();
    let sb = Sandbox::new(&store.url(), "", "");
    sb.plesk_switch("delay", "30");
    store.set_instructions(json!({"jobs": [{"id": "doomed", "type": "retrieve_keys"}]}));
    for attempt in 1..=3 {
        sb.forget_job_started();
        kill_sync_mid_job(&sb, &format!("attempt {attempt}"));
    }
    let out = sb.agent(&["sync"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(sb.license_calls().len(), 3, "never a fourth run");
    let results = store.results();
    assert_eq!(results.len(), 1, "{results:?}");
    let r = &results[0].1;
    assert_eq!(r["status"], "failed");
    assert_eq!(r["attempts"], 3);
    assert_eq!(r["exit_code"], serde_json::Value::Null);
    assert!(r["output"].as_str().unwrap().contains("interrupted 3 times"), "{r}");
}
