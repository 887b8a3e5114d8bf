//! The agent on Windows, black-box, under Wine in CI (issue 24): the daemon in console mode
//! (`run`) against a loopback store keeps panel.ini's buyUrl in a CRLF file with its comments,
//! runs an install_key job through a stand-in `plesk.cmd`, delivers the result, answers
//! `status` over the named pipe and repairs drift quickly.
#![cfg(windows)]

#[path = "support/store.rs"]
mod store;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

const TOKEN: &str = "t0ken-s3cret-value";
const CODE: &str = "A00000-K6QK03-KSG046-H6BK67-1GE201";
const BUY: &str = "https://shop.example.com/buy";
/// Generous: Wine on a busy CI machine is slow; the repair itself takes well under a second.
const T: Duration = Duration::from_secs(20);

struct Agent {
    dir: tempfile::TempDir,
    config: PathBuf,
    panel_ini: PathBuf,
    child: Option<Child>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn eventually(t: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + t;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Agent {
    fn new(url: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let plesk = root.join("plesk");
        fs::create_dir_all(&plesk).unwrap();
        let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plesk-standin.cmd");
        fs::copy(&standin, plesk.join("plesk.cmd")).unwrap();
        let conf = root.join("admin").join("conf");
        fs::create_dir_all(&conf).unwrap();
        let token = root.join("token");
        fs::write(&token, format!("{TOKEN}\r\n")).unwrap();
        plesk_reseller_agent::platform::windows::acl::restrict_to_admins(&token).unwrap();
        let pipe = format!(r"\\.\pipe\plesk-reseller-agent-test-{}", std::process::id());
        let config = root.join("agent.ini");
        fs::write(
            &config,
            format!(
                "[central]\r\nurl = {url}\r\nhost_id = win-042\r\ntoken_file = {}\r\npoll_interval = 60\r\nlong_poll = 0\r\n\
                 [panel]\r\nini_path = {}\r\nbuy_url = {BUY}\r\n[plesk]\r\ncommand = {}\r\ntimeout = 30\r\n\
                 [agent]\r\nstate_dir = {}\r\nsocket = {pipe}\r\n",
                token.display(),
                conf.join("panel.ini").display(),
                plesk.join("plesk.cmd").display(),
                root.join("state").display(),
            ),
        )
        .unwrap();
        Agent {
            panel_ini: conf.join("panel.ini"),
            config,
            dir,
            child: None,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_plesk-reseller-agent"));
        c.arg("--config").arg(&self.config).args(args);
        c.env_remove("PLESK_RESELLER_AGENT_CONFIG");
        c
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn start(&mut self) {
        let log = fs::File::create(self.dir.path().join("daemon.log")).unwrap();
        let child = self
            .command(&["run"])
            .env("PLESK_RESELLER_AGENT_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let ready = eventually(T, || self.status().is_some_and(|s| s["daemon"]["running"] == true));
        assert!(ready, "no status over the pipe; log:\n{}", self.log());
    }

    /// `status --json`, through the named pipe.
    fn status(&self) -> Option<serde_json::Value> {
        let out = self.command(&["status", "--json"]).output().unwrap();
        serde_json::from_slice(&out.stdout).ok()
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("plesk").join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect()
    }
}

#[test]
fn the_daemon_keeps_panel_ini_runs_a_job_delivers_and_answers_over_the_pipe() {
    let store = store::FakeStore::start();
    store.expect_token(TOKEN);
    store.set_instructions(json!({"jobs": [{"id": "ord-1", "type": "install_key", "activation_code": CODE}]}));
    let mut a = Agent::new(&store.url());
    let original = "; Plesk panel.ini, edited on Windows\r\n[debug]\r\nenabled = on\r\n\r\n[extensions]\r\n; the reseller's shop\r\nbuyUrl = \"https://old.example.com\"\r\n";
    fs::write(&a.panel_ini, original).unwrap();
    a.start();

    // panel.ini: buyUrl set, CRLF and comments kept, no BOM added.
    let good = original.replace("https://old.example.com", BUY);
    assert!(
        eventually(T, || fs::read_to_string(&a.panel_ini).unwrap_or_default() == good),
        "{:?}; log:\n{}",
        fs::read_to_string(&a.panel_ini),
        a.log()
    );

    // The job ran through plesk.cmd with the Windows argv, and its result reached the store.
    assert!(
        store.wait_for(|s| !s.results().is_empty(), T),
        "no result; calls {:?}; log:\n{}",
        a.calls(),
        a.log()
    );
    let (id, result) = store.results()[0].clone();
    assert_eq!(id, "ord-1");
    assert_eq!(result["status"], "succeeded", "{result}");
    assert!(
        a.calls().contains(&format!("bin license.exe -i {CODE}")),
        "{:?}",
        a.calls()
    );
    assert!(!a.log().contains(&CODE[7..13]), "the activation code reached the log");

    // status over the pipe shows the delivered job.
    let s = a.status().expect("status");
    assert_eq!(s["jobs"]["undelivered_results"], 0, "{s}");

    // Drift: another program writes its own buyUrl; the agent puts ours back.
    let evil = good.replace(BUY, "https://evil.example.com");
    let t0 = Instant::now();
    fs::write(&a.panel_ini, &evil).unwrap();
    assert!(
        eventually(T, || fs::read_to_string(&a.panel_ini).unwrap_or_default() == good),
        "not repaired; log:\n{}",
        a.log()
    );
    eprintln!("drift repaired after {:?}", t0.elapsed());
}
