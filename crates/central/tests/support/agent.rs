//! The real agent (the root package's binary) against a central, with the stand-in plesk
//! (tests/fixtures/plesk-standin, whose state lives beside the symlink).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::SystemTime;

pub struct Agent {
    pub root: PathBuf,
    pub config: PathBuf,
    pub panel_ini: PathBuf,
    pub plesk_dir: PathBuf,
    pub log: PathBuf,
    /// More environment for the agent process (e.g. SSL_CERT_FILE).
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn newest(dir: &Path, acc: &mut SystemTime) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            newest(&p, acc);
        } else if let Ok(m) = e.metadata().and_then(|m| m.modified()) {
            *acc = (*acc).max(m);
        }
    }
}

/// The agent binary beside this test's own target dir, built once through `$CARGO` when it
/// is missing or older than its sources.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().unwrap().parent().unwrap();
        let bin = dir.join("plesk-reseller-agent");
        let ws = workspace();
        let mut src = SystemTime::UNIX_EPOCH;
        for d in ["src", "crates/protocol/src"] {
            newest(&ws.join(d), &mut src);
        }
        let built = fs::metadata(&bin).and_then(|m| m.modified()).ok();
        if built.is_none_or(|b| b < src) {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut args = vec!["build", "-p", "plesk-reseller-agent", "--bin", "plesk-reseller-agent"];
            // Benches run from target/release: build the same profile.
            if dir.ends_with("release") {
                args.push("--release");
            }
            let ok = Command::new(cargo)
                .args(&args)
                .current_dir(&ws)
                .status()
                .unwrap()
                .success();
            assert!(ok, "building the agent failed");
        }
        bin
    })
}

impl Agent {
    /// `url` is the central's; `extra` is appended to the config.
    pub fn new(root: &Path, url: &str, host: &str, token: &str, long_poll: u64, extra: &str) -> Agent {
        let plesk_dir = root.join("plesk");
        fs::create_dir_all(&plesk_dir).unwrap();
        let standin = workspace().join("tests/fixtures/plesk-standin");
        std::os::unix::fs::symlink(&standin, plesk_dir.join("plesk")).unwrap();
        let conf = root.join("conf");
        fs::create_dir_all(&conf).unwrap();
        let panel_ini = conf.join("panel.ini");
        fs::write(&panel_ini, "[extensions]\n").unwrap();
        let token_file = root.join("token");
        fs::write(&token_file, format!("{token}\n")).unwrap();
        fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
        let config = root.join("agent.ini");
        fs::write(
            &config,
            format!(
                "[central]\nurl = {url}\nhost_id = {host}\ntoken_file = {}\npoll_interval = 60\nlong_poll = {long_poll}\n\
                 [panel]\nini_path = {}\n[plesk]\ncommand = {}\ntimeout = 20\n\
                 [agent]\nstate_dir = {}\nsocket = {}\n{extra}\n",
                token_file.display(),
                panel_ini.display(),
                plesk_dir.join("plesk").display(),
                root.join("state").display(),
                root.join("run/agent.sock").display(),
            ),
        )
        .unwrap();
        Agent {
            root: root.into(),
            config,
            panel_ini,
            plesk_dir,
            log: root.join("agent.log"),
            env: Vec::new(),
            child: None,
        }
    }

    /// An agent with no token, only `url`, its host id and an enroll key in a 0600 file
    /// (contract 5.5); its push secret goes beside it.
    pub fn enrolling(root: &Path, url: &str, host: &str, key: &str) -> Agent {
        let push = format!("[push]\nsecret_file = {}\n", root.join("push.secret").display());
        let a = Agent::new(root, url, host, "", 25, &push);
        fs::remove_file(root.join("token")).unwrap();
        let key_file = root.join("enroll.key");
        fs::write(&key_file, format!("{key}\n")).unwrap();
        fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();
        let conf = fs::read_to_string(&a.config).unwrap();
        let token_line = format!("token_file = {}\n", root.join("token").display());
        let conf = conf.replace(
            &token_line,
            &format!("{token_line}enroll_key_file = {}\n", key_file.display()),
        );
        fs::write(&a.config, conf).unwrap();
        a
    }

    /// `status --json` (the daemon's, or the last persisted one).
    pub fn status(&self) -> serde_json::Value {
        let out = Command::new(bin())
            .arg("--config")
            .arg(&self.config)
            .args(["status", "--json"])
            .env_remove("PLESK_RESELLER_AGENT_CONFIG")
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Sets the key the stand-in reports (`keyinfo --list`).
    pub fn set_key(&self, raw: &str) {
        fs::write(self.plesk_dir.join("key_id"), raw).unwrap();
    }

    pub fn start(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(bin())
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("PLESK_RESELLER_AGENT_CONFIG")
            .env("PLESK_RESELLER_AGENT_LOG", "debug")
            .envs(self.env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn panel_ini(&self) -> String {
        fs::read_to_string(&self.panel_ini).unwrap_or_default()
    }

    pub fn license_calls(&self) -> Vec<String> {
        fs::read_to_string(self.plesk_dir.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("bin license"))
            .map(str::to_string)
            .collect()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
