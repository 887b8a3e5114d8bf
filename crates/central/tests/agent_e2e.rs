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

/// A throw-away CA and a certificate for 127.0.0.1 signed by it, as PEM.
struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, "test CA");
        Pki {
            ca: p.self_signed(&ca_key).unwrap(),
            ca_key,
        }
    }

    /// Writes the server's chain and key; returns the certificate's DER.
    fn issue(&self, cn: &str, cert: &std::path::Path, key: &std::path::Path) -> Vec<u8> {
        let k = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let c = p.signed_by(&k, &self.ca, &self.ca_key).unwrap();
        std::fs::write(cert, format!("{}{}", c.pem(), self.ca.pem())).unwrap();
        std::fs::write(key, k.serialize_pem()).unwrap();
        c.der().to_vec()
    }
}

/// The certificate a new TLS connection to `url` is served (and the /healthz status).
fn served_cert(rt: &tokio::runtime::Runtime, ca_pem: &str, url: &str) -> (u16, Vec<u8>) {
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
            .tls_info(true)
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let r = client.get(format!("{url}/healthz")).send().await.unwrap();
        let der = r
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|i| i.peer_certificate())
            .unwrap()
            .to_vec();
        (r.status().as_u16(), der)
    })
}

#[test]
fn an_agent_polls_a_central_that_serves_tls_and_a_renewed_certificate_needs_no_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (cert, key, ca) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    let first = pki.issue("central one", &cert, &key);
    std::fs::write(&ca, pki.ca.pem()).unwrap();
    let extra = format!(
        "[server]\ntls_cert = {}\ntls_key = {}\n{}",
        cert.display(),
        key.display(),
        fleet("https://shop.example.com/tls")
    );
    let mut central = Central::new(&dir.path().join("central"), &extra);
    central.start();
    let url = format!("https://{}", central.addr);
    let check = central.cli(&["check"]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("ok   tls:") && text.contains("belong together"), "{text}");

    // The agent trusts the test CA through SSL_CERT_FILE, as it would a system CA.
    let token = central.add_host("web-1", &[])["token"].as_str().unwrap().to_string();
    let mut agent = Agent::new(&dir.path().join("agent"), &url, "web-1", &token, 25, "");
    agent.env.push(("SSL_CERT_FILE".into(), ca.display().to_string()));
    agent.start();
    wait_for(30, "the fleet buy_url in panel.ini over TLS", || {
        agent.panel_ini().contains("https://shop.example.com/tls").then_some(())
    });
    let job = central.json(&["jobs", "add", "--host", "web-1", "retrieve-keys"]);
    let id = job["id"].as_str().unwrap().to_string();
    let done = wait_for(30, "the job's result over TLS", || {
        let j = central.json(&["jobs", "show", &id]);
        (j["state"] != "queued").then_some(j)
    });
    assert_eq!(done["state"], "succeeded", "{done}");

    // Plain HTTP to the TLS port gets no answer.
    let plain = support::http::request(&central.addr, "GET", "/healthz", None, &[], b"");
    assert_eq!(
        plain.status, 0,
        "plain HTTP was answered on the TLS port: {}",
        plain.body
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let ca_pem = pki.ca.pem();
    assert_eq!(served_cert(&rt, &ca_pem, &url), (200, first.clone()));
    // A renewal that does not load (the key file half-written) keeps the old certificate.
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nnot a key\n").unwrap();
    // (The files are looked at by handshakes, at most every 5 s: keep connecting.)
    wait_for(30, "the refused renewal in the log", || {
        assert_eq!(served_cert(&rt, &ca_pem, &url), (200, first.clone()));
        central
            .log_text()
            .contains("still serving the certificate loaded before")
            .then_some(())
    });
    // The renewal once both files are whole: served without a restart.
    let second = pki.issue("central two", &cert, &key);
    let pid = central.pid();
    wait_for(30, "the renewed certificate served", || {
        (served_cert(&rt, &ca_pem, &url).1 == second).then_some(())
    });
    assert_eq!(central.pid(), pid);
    assert!(central.log_text().contains("loaded the renewed TLS certificate"));
}

/// Waits until the job `id` has ended, for at most `secs`.
fn ended(central: &Central, id: &str, secs: u64, what: &str) -> serde_json::Value {
    wait_for(secs, what, || {
        let j = central.json(&["jobs", "show", id]);
        (j["state"] != "queued").then_some(j)
    })
}

on_both! {
#[test]
fn a_job_queued_a_second_after_a_sigterm_restart_runs_within_3_s(db) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("central");
    let mut central = Central::on(&root, "", &db.url(&root));
    central.start();
    central.pin_port();
    let token = central.add_host("web-1", &[])["token"].as_str().unwrap().to_string();
    let mut agent = Agent::new(&dir.path().join("agent"), &central.url(), "web-1", &token, 25, "");
    agent.start();
    wait_for(30, "the agent's held poll", || {
        (support::held::held_polls(&central) == Some(1)).then_some(())
    });
    // `systemctl restart`: SIGTERM, then a new process on the same port.
    assert_eq!(central.stop(), Some(0));
    central.start();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let job = central.json(&["jobs", "add", "--host", "web-1", "retrieve-keys"]);
    let done = ended(&central, job["id"].as_str().unwrap(), 3, "the job run within 3 s of jobs add");
    assert_eq!(done["state"], "succeeded", "{done}");
}
}

on_both! {
#[test]
fn a_central_capping_waits_at_5_s_still_gets_a_job_to_a_25_s_agent_within_1_s(db) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("central");
    let mut central = Central::on(&root, "[server]\nmax_wait = 5\n", &db.url(&root));
    central.start();
    let token = central.add_host("web-1", &[])["token"].as_str().unwrap().to_string();
    let mut agent = Agent::new(&dir.path().join("agent"), &central.url(), "web-1", &token, 25, "");
    agent.start();
    // Two polls cut short at max_wait (about 5 s each) before the job.
    wait_for(30, "two polls answered 304 at max_wait", || {
        let m = support::http::request(&central.addr, "GET", "/metrics", None, &[], b"").body;
        let n: u64 = m
            .lines()
            .find_map(|l| l.strip_prefix("central_polls_not_modified_total "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        (n >= 2 && support::held::held_polls(&central) == Some(1)).then_some(())
    });
    let job = central.json(&["jobs", "add", "--host", "web-1", "retrieve-keys"]);
    let done = ended(&central, job["id"].as_str().unwrap(), 1, "the job run within 1 s of jobs add");
    assert_eq!(done["state"], "succeeded", "{done}");
}
}
