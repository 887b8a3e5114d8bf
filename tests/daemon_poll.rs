//! The real daemon's polling (contract 5.1): rate against a store that ignores long-poll,
//! held polls, a store that is down and comes back, garbage from the store.
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::daemon::{eventually, set_config, Daemon};
use support::sandbox::{store, Sandbox};
use support::store::FakeStore;

const BUY: &str = "https://local-shop.example.com/buy";

/// Waits until the store holds one poll open, or fails with the requests and the log.
fn wait_for_held_poll(store: &FakeStore, d: &Daemon) {
    assert!(
        store.wait_for(|s| s.held_polls() == 1, Duration::from_secs(10)),
        "no held poll: {:?}; log:\n{}",
        store
            .requests()
            .iter()
            .map(|r| (&r.method, &r.query, r.header("if-none-match")))
            .collect::<Vec<_>>(),
        d.log_text()
    );
}

#[test]
fn a_store_that_ignores_long_poll_is_not_hammered() {
    let store = store();
    store.set_honour_wait(false);
    let sb = Sandbox::new(&store.url(), "", "");
    set_config(&sb, "central", "long_poll", "25");
    set_config(&sb, "central", "poll_interval", "2");
    let d = Daemon::start(&sb);
    std::thread::sleep(Duration::from_secs(5));
    let polls = store.poll_count();
    // The first answer (200) and three quick 304s in a row (contract 5.1 version 2: only
    // three mark a store as not holding) come at once, then one poll every ~2 s.
    assert!(
        (1..=7).contains(&polls),
        "{polls} polls in ~5 s; log:\n{}",
        d.log_text()
    );
    assert!(store
        .requests()
        .iter()
        .filter(|r| r.is_poll())
        .any(|r| r.wait() == Some(25)));
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn held_polls_are_few_and_new_work_runs_promptly() {
    let store = store();
    let sb = Sandbox::new(&store.url(), "", "");
    set_config(&sb, "central", "long_poll", "25");
    set_config(&sb, "central", "poll_interval", "2");
    let d = Daemon::start(&sb);
    wait_for_held_poll(&store, &d);
    std::thread::sleep(Duration::from_secs(3));
    let polls = store.poll_count();
    assert!(
        polls <= 3,
        "{polls} polls although the store holds them; log:\n{}",
        d.log_text()
    );
    assert_eq!(store.held_polls(), 1);

    let t0 = Instant::now();
    store.set_instructions(json!({"jobs": [{"id": "held-1", "type": "retrieve_keys"}]}));
    assert!(
        store.wait_for(|s| s.results().len() == 1, Duration::from_secs(3)),
        "a job added while a poll was held did not run within 3 s; log:\n{}",
        d.log_text()
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(store.results()[0].1["status"], "succeeded");
    assert_eq!(d.stop().code(), Some(0));
}

fn down_then_up(use_poll_now: bool) {
    let store = store();
    store.set_raw_instructions(503, b"maintenance".to_vec());
    let sb = Sandbox::new(&store.url(), &format!("buy_url = {BUY}"), "");
    sb.write_panel_ini("[extensions]\nbuyUrl = \"https://stale.example.com\"\n");
    let d = Daemon::start(&sb);
    // Local values are enforced without the store.
    assert!(eventually(Duration::from_secs(5), || sb.read_panel_ini()
        == format!("[extensions]\nbuyUrl = \"{BUY}\"\n")));
    let s = d
        .wait_status(
            |s| s["central"]["consecutive_failures"].as_u64().unwrap() > 0,
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| panic!("no failed poll shown; log:\n{}", d.log_text()));
    assert_eq!(s["health"]["status"], "degraded");
    assert_eq!(s["central"]["state"], "backing_off");
    assert_eq!(s["central"]["last_poll_ok"], false);
    assert!(s["central"]["last_error"].as_str().unwrap().contains("503"), "{s}");
    assert_eq!(d.agent(&["status"]).status.code(), Some(1));

    store.set_instructions(json!({"jobs": [{"id": "after-outage", "type": "retrieve_keys"}]}));
    let limit = if use_poll_now {
        assert_eq!(d.agent(&["poll-now"]).status.code(), Some(0));
        Duration::from_secs(5)
    } else {
        Duration::from_secs(12)
    };
    let s = d
        .wait_status(
            |s| {
                s["health"]["status"] == "ok"
                    && s["jobs"]["undelivered_results"] == 0
                    && s["jobs"]["recent"][0]["id"] == "after-outage"
            },
            limit,
        )
        .unwrap_or_else(|| {
            panic!(
                "no recovery within {limit:?}: {}; log:\n{}",
                d.status_json(),
                d.log_text()
            )
        });
    assert_eq!(s["central"]["consecutive_failures"], 0);
    assert_eq!(s["central"]["state"], "healthy");
    assert_eq!(store.results().len(), 1);
    assert_eq!(store.results()[0].1["status"], "succeeded");
    assert_eq!(d.agent(&["status"]).status.code(), Some(0));
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn store_down_at_start_then_up_with_poll_now() {
    down_then_up(true);
}

#[test]
fn store_down_at_start_then_up_recovers_by_itself() {
    down_then_up(false);
}

fn garbage(body: Vec<u8>, says: &str) {
    let store = store();
    store.set_raw_instructions(200, body);
    let sb = Sandbox::new(&store.url(), "", "");
    let ini = "; keep me\r\n[extensions]\r\nbuyUrl = \"https://old.example.com\"\r\n";
    sb.write_panel_ini(ini);
    let mtime = std::fs::metadata(&sb.panel_ini).unwrap().modified().unwrap();
    let d = Daemon::start(&sb);
    let s = d
        .wait_status(|s| s["central"]["last_poll_ok"] == false, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("the bad answer is not shown; log:\n{}", d.log_text()));
    assert_eq!(s["health"]["status"], "degraded");
    let problems = s["health"]["problems"].to_string();
    assert!(problems.contains(says), "{problems}");
    assert!(
        problems.contains(&store.url()),
        "the problem should name the store: {problems}"
    );
    // Still running and answering, panel.ini untouched.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.status_json()["daemon"]["running"], true);
    assert_eq!(sb.read_panel_ini(), ini);
    assert_eq!(std::fs::metadata(&sb.panel_ini).unwrap().modified().unwrap(), mtime);
    assert!(sb.license_calls().is_empty());
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn invalid_json_from_the_store_leaves_the_daemon_running_and_panel_ini_untouched() {
    garbage(
        b"{\"panel_ini\": {\"buy_url\": \"https://x.example.com\"".to_vec(),
        "refused",
    );
}

#[test]
fn a_2_mib_answer_leaves_the_daemon_running_and_panel_ini_untouched() {
    let mut body = b"{\"panel_ini\": {\"buy_url\": \"https://x.example.com\"}, \"pad\": \"".to_vec();
    body.resize(2 * 1024 * 1024, b'a');
    body.extend_from_slice(b"\"}");
    garbage(body, "larger than");
}

#[test]
fn poll_now_does_not_wait_for_a_held_poll() {
    let store = store();
    let sb = Sandbox::new(&store.url(), "", "");
    set_config(&sb, "central", "long_poll", "25");
    let d = Daemon::start(&sb);
    wait_for_held_poll(&store, &d);
    let polls = store.poll_count();
    assert_eq!(d.agent(&["poll-now"]).status.code(), Some(0));
    assert!(
        store.wait_for(|s| s.poll_count() > polls, Duration::from_secs(3)),
        "poll-now waited for the held poll; log:\n{}",
        d.log_text()
    );
    // The replacement is held again (the store may still count the abandoned one), and
    // nothing polls in a loop.
    assert!(store.wait_for(|s| s.held_polls() >= 1, Duration::from_secs(5)));
    std::thread::sleep(Duration::from_secs(1));
    assert!(store.poll_count() <= polls + 2, "{} polls", store.poll_count() - polls);
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn the_report_goes_at_start_and_on_change_not_on_every_poll() {
    let store = store();
    store.set_honour_wait(false);
    let sb = Sandbox::new(&store.url(), "", "");
    set_config(&sb, "central", "poll_interval", "1");
    let d = Daemon::start(&sb);
    assert!(
        eventually(Duration::from_secs(10), || store.poll_count() >= 4),
        "{}",
        d.log_text()
    );
    assert_eq!(store.reports().len(), 1, "one report for several unchanged polls");
    // A change the report carries: the store's buy_url lands in panel.ini.
    store.set_instructions(json!({"panel_ini": {"buy_url": BUY}}));
    assert!(
        eventually(Duration::from_secs(10), || store.reports().len() == 2),
        "{}",
        d.log_text()
    );
    assert_eq!(store.reports()[1]["panel_ini"]["buy_url"], BUY);
    assert_eq!(d.stop().code(), Some(0));
    // A restart reports again even though nothing changed.
    let d = Daemon::start(&sb);
    assert!(
        eventually(Duration::from_secs(10), || store.reports().len() == 3),
        "{}",
        d.log_text()
    );
    assert_eq!(d.stop().code(), Some(0));
}

/// Each wake drops the held poll and opens one new one: the store never sees two open at
/// once, and the abandoned ones end (the store notices the closed connection).
#[test]
fn wakes_never_leave_two_polls_open() {
    let store = store();
    let sb = Sandbox::new(&store.url(), "", "");
    set_config(&sb, "central", "long_poll", "25");
    let d = Daemon::start(&sb);
    wait_for_held_poll(&store, &d);
    for _ in 0..5 {
        let polls = store.poll_count();
        assert_eq!(d.agent(&["poll-now"]).status.code(), Some(0));
        assert!(
            store.wait_for(
                |s| s.poll_count() > polls && s.held_polls() == 1,
                Duration::from_secs(5)
            ),
            "after poll-now: {} polls, {} held; log:\n{}",
            store.poll_count() - polls,
            store.held_polls(),
            d.log_text()
        );
    }
    assert_eq!(store.max_open_polls(), 1, "log:\n{}", d.log_text());
    assert_eq!(d.stop().code(), Some(0));
    assert!(
        store.wait_for(|s| s.held_polls() == 0, Duration::from_secs(5)),
        "a stopped daemon's held poll was not closed"
    );
}

/// A store that answers waiting polls unchanged at once, three times in a row, is not
/// holding them: then, and only then, `poll_interval` applies.
#[test]
fn three_quick_unchanged_answers_in_a_row_mark_a_store_as_not_holding() {
    let store = store();
    store.set_honour_wait(false);
    let sb = Sandbox::new(&store.url(), "", "");
    set_config(&sb, "central", "long_poll", "25");
    let d = Daemon::start(&sb);
    // The first poll (200, new ETag), then three 304s at once; then poll_interval (60 s).
    assert!(
        store.wait_for(|s| s.poll_count() >= 4, Duration::from_secs(5)),
        "{} polls: one quick 304 was taken for a store that does not hold; log:\n{}",
        store.poll_count(),
        d.log_text()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(store.poll_count(), 4, "log:\n{}", d.log_text());
    assert_eq!(d.stop().code(), Some(0));
}

/// A store whose `max_wait` (5 s) is below half the agent's `long_poll` (25 s) still holds
/// polls: each unchanged answer after >= 1 s of holding is followed by the next poll at once.
#[test]
fn a_store_capping_the_hold_below_half_long_poll_still_runs_new_work_at_once() {
    let store = store();
    store.set_max_hold(Duration::from_secs(5));
    let sb = Sandbox::new(&store.url(), "", "");
    set_config(&sb, "central", "long_poll", "25");
    let d = Daemon::start(&sb);
    // The 200, a poll held 5 s and answered 304, and the next one held again at once.
    assert!(
        store.wait_for(|s| s.poll_count() >= 3 && s.held_polls() == 1, Duration::from_secs(12)),
        "no poll held after the capped one: {} polls; log:\n{}",
        store.poll_count(),
        d.log_text()
    );
    let t0 = Instant::now();
    store.set_instructions(json!({"jobs": [{"id": "capped-1", "type": "retrieve_keys"}]}));
    assert!(
        store.wait_for(|s| s.results().len() == 1, Duration::from_secs(3)),
        "a job queued while the capped store held the poll did not run; log:\n{}",
        d.log_text()
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(d.stop().code(), Some(0));
}

/// A central stopping answers held polls `503` + `Retry-After: 1`: the agent polls again
/// about a second later, runs what is queued then, and its health never changes.
#[test]
fn a_503_with_retry_after_to_a_held_poll_is_retried_then_without_a_failure() {
    let store = store();
    let sb = Sandbox::new(&store.url(), "", "");
    set_config(&sb, "central", "long_poll", "25");
    let d = Daemon::start(&sb);
    wait_for_held_poll(&store, &d);
    assert_eq!(d.status_json()["health"]["status"], "ok");
    let polls = store.poll_count();

    let t0 = Instant::now();
    store.answer_held_polls_503(1);
    store.set_instructions(json!({"jobs": [{"id": "after-restart", "type": "retrieve_keys"}]}));
    // Health is watched all along: the 503 is never shown as a failure.
    let deadline = t0 + Duration::from_secs(3);
    while store.results().is_empty() && Instant::now() < deadline {
        let s = d.status_json();
        assert_eq!(s["health"]["status"], "ok", "after {:?}: {s}", t0.elapsed());
        assert_eq!(s["central"]["consecutive_failures"], 0, "{s}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        store.results().len(),
        1,
        "the job queued at the restart did not run within ~3 s; log:\n{}",
        d.log_text()
    );
    let again = store
        .requests()
        .iter()
        .filter(|r| r.is_poll())
        .nth(polls)
        .map(|r| r.at.duration_since(t0))
        .expect("no poll after the 503");
    assert!(
        again >= Duration::from_millis(800),
        "polled again after {again:?}, not after Retry-After"
    );
    let s = d.status_json();
    assert_eq!(s["health"]["status"], "ok", "{s}");
    assert_eq!(s["central"]["consecutive_failures"], 0, "{s}");
    assert_eq!(s["central"]["last_poll_ok"], true, "{s}");
    assert_eq!(d.stop().code(), Some(0));
}
