//! The agent binary's `catalog-proxy` command: the same proxy as crates/catalog-proxy's
//! tests, started from a config file as its unit starts it. It needs the agent binary, so it
//! lives here; the fake upstream is the proxy crate's test helper, read through `#[path]`.
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

use std::time::{Duration, Instant};

mod support;
use support::net::free_port;

#[path = "../crates/catalog-proxy/tests/support/upstream.rs"]
mod upstream;
use upstream::{client, codes, fixture_codes, sold, Fake};

#[tokio::test]
async fn the_binary_serves_from_its_config() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let allow_file = dir.path().join("allow.txt");
    let sold = sold();
    std::fs::write(&allow_file, format!("{}\n", sold[2])).unwrap();
    let port = free_port();
    let cfg = dir.path().join("agent.ini");
    std::fs::write(
        &cfg,
        format!(
            "[central]\nurl = https://store.example.com\n[catalog_proxy]\nlisten = 127.0.0.1:{port}\n\
             upstream = {} ; the fake\nallow = {}\nallow_file = {}\ncache_ttl = 60\nmystery = 1\n",
            fake.url(),
            sold[5],
            allow_file.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_plesk-reseller-agent"))
        .args(["catalog-proxy", "--config"])
        .arg(&cfg)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client().get(format!("{base}/healthz")).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("the proxy exited ({status}): {stderr}");
        }
        assert!(Instant::now() < deadline, "the proxy did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = client().get(format!("{base}/api/v4/packages")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let shown = codes(&r.bytes().await.unwrap());
    assert!(shown.contains(&sold[2]) && shown.contains(&sold[5]) && !shown.contains(&sold[4]));
    assert_eq!(shown.len(), fixture_codes().len() - sold.len() + 2);

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::SIGTERM).unwrap();
    let out = wait_with_deadline(&mut child, Duration::from_secs(10));
    assert!(out.success(), "{out:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("unknown key [catalog_proxy] mystery"), "{stderr}");
    assert!(
        !stderr.contains("[central]"),
        "the agent's sections are not the proxy's business: {stderr}"
    );
}

fn wait_with_deadline(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the proxy did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
