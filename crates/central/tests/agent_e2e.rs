//! The real central with SQLite and the real agent against it, through the stand-in plesk.

mod support;

use support::agent::Agent;
use support::central::Central;
use support::{files_hold, wait_for, CODE};

fn fleet(buy: &str) -> String {
    format!("[fleet]\nbuy_url = {buy}\n")
}

on_both! {
#[test]
fn a_job_queued_by_the_cli_runs_on_the_agent_and_its_result_is_in_jobs_show(db) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("central");
    let mut central = Central::on(&root, &fleet("https://shop.example.com/buy"), &db.url(&root));
    central.start();
    let added = central.add_host("web-1", &[]);
    let token = added["token"].as_str().unwrap().to_string();
    let mut agent = Agent::new(&dir.path().join("agent"), &central.url(), "web-1", &token, 25, "");
    agent.set_key("PLSK123456780001");
    agent.start();

    // The fleet buy_url reaches the agent's panel.ini.
    wait_for(30, "the fleet buy_url in panel.ini", || {
        agent
            .panel_ini()
            .contains("buyUrl = \"https://shop.example.com/buy\"")
            .then_some(())
    });
    // The agent's report makes the host findable by its key number.
    wait_for(30, "the host's key number", || {
        let h = central.json(&["hosts", "show", "web-1"]);
        (h["key_number"] == "PLSK.12345678.0001").then_some(h)
    });
    // Queued by key number (not normalised as typed), while the agent holds its poll.
    let job = central.json(&["jobs", "add", "--key-number", "plsk123456780001", "install-key", CODE]);
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["host"], "web-1");
    assert_eq!(job["type"], "install_key");
    assert_eq!(job["state"], "queued");
    let shown = wait_for(30, "the job's result", || {
        let j = central.json(&["jobs", "show", &id]);
        (j["state"] != "queued").then_some(j)
    });
    assert_eq!(shown["state"], "succeeded", "{shown}");
    assert_eq!(shown["result"]["status"], "succeeded");
    assert_eq!(shown["result"]["exit_code"], 0);
    assert_eq!(agent.license_calls(), vec![format!("bin license -i {CODE}")]);

    // The code leaves the database files once the job has ended.
    wait_for(10, "the activation code erased from the database files", || {
        (!files_hold(&central.db_files(), CODE)).then_some(())
    });
    // The token appears nowhere but in `hosts add`'s answer.
    let mut outputs = Vec::new();
    for args in [
        vec!["hosts", "list"],
        vec!["hosts", "show", "web-1"],
        vec!["jobs", "list"],
        vec!["jobs", "show", &id],
    ] {
        outputs.push(central.json(&args).to_string());
    }
    assert_eq!(central.stop(), Some(0));
    let mut files = central.db_files();
    files.push(central.log.clone());
    files.push(agent.log.clone());
    assert!(
        !files_hold(&files, &token),
        "the token is in the database, a log or the agent's log"
    );
    assert!(
        outputs.iter().all(|o| !o.contains(&token)),
        "the token is in --json output"
    );
    assert!(central.log_text().contains("stopped"), "{}", central.log_text());
}
}

on_both! {
#[test]
fn a_signed_wake_push_brings_a_job_to_an_agent_that_does_not_long_poll(db) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("central");
    let mut central = Central::on(&root, "", &db.url(&root));
    central.start();
    let push_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let added = central.add_host("web-2", &["--push-url", &format!("http://127.0.0.1:{push_port}")]);
    let secret_file = dir.path().join("push.secret");
    std::fs::write(&secret_file, added["push_secret"].as_str().unwrap()).unwrap();
    std::fs::set_permissions(&secret_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // long_poll = 0 and poll_interval = 60: without the push the job waits a minute.
    let extra = format!(
        "[push]\nlisten = 127.0.0.1:{push_port}\nsecret_file = {}\n",
        secret_file.display()
    );
    let mut agent = Agent::new(
        &dir.path().join("agent"),
        &central.url(),
        "web-2",
        added["token"].as_str().unwrap(),
        0,
        &extra,
    );
    agent.start();
    wait_for(30, "the agent's first poll", || {
        central.json(&["hosts", "show", "web-2"])["last_seen_at"]
            .as_str()
            .map(|_| ())
    });
    wait_for(30, "the agent's push listener", || {
        std::net::TcpStream::connect(("127.0.0.1", push_port)).ok().map(|_| ())
    });
    let job = central.json(&["jobs", "add", "--host", "web-2", "retrieve-keys"]);
    let id = job["id"].as_str().unwrap().to_string();
    let shown = wait_for(40, "the job's result after the push", || {
        let j = central.json(&["jobs", "show", &id]);
        (j["state"] != "queued").then_some(j)
    });
    assert_eq!(shown["state"], "succeeded", "{shown}");
    // One push for the job; none for the agent's own result.
    let metrics = wait_for(10, "the push counted", || {
        let m = support::http::request(&central.addr, "GET", "/metrics", None, &[], b"").body;
        m.contains("central_wakes_sent_total 1\n").then_some(m)
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let later = support::http::request(&central.addr, "GET", "/metrics", None, &[], b"").body;
    assert!(later.contains("central_wakes_sent_total 1\n"), "{metrics}\n{later}");
}
}
