//! A throw-away agent installation for black-box tests of the real binary: config, token,
//! panel.ini, state directory and the stand-in `plesk` (a symlink to
//! tests/fixtures/plesk-standin, whose state lives beside the link), and a fake store that
//! expects its token.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::store::FakeStore;

pub const TOKEN: &str = "t0ken-s3cret-value";
pub const CODE: &str = "A00000-K6QK03-KSG046-H6BK67-1GE201";
pub const CODE_MASKED: &str = "A00000-******-******-******-1GE201";

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub panel_ini: PathBuf,
    /// The stand-in's state directory (calls.log, switches).
    pub plesk_dir: PathBuf,
    pub state_dir: PathBuf,
    pub spool: PathBuf,
    pub socket: PathBuf,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_plesk-reseller-agent")
}

/// The agent binary with `--config config`, the outside environment's config and notify
/// socket removed so a developer's shell or a systemd unit cannot leak in.
pub fn agent_command(config: &Path) -> Command {
    let mut c = Command::new(bin());
    c.arg("--config").arg(config);
    c.env_remove("PLESK_RESELLER_AGENT_CONFIG").env_remove("NOTIFY_SOCKET");
    c
}

/// A fake store that expects the sandbox's [`TOKEN`].
pub fn store() -> FakeStore {
    let s = FakeStore::start();
    s.expect_token(TOKEN);
    s
}

/// [`store`] with one `retrieve_keys` job `id` in its instructions.
pub fn store_with_job(id: &str) -> FakeStore {
    let s = store();
    s.set_instructions(serde_json::json!({"jobs": [{"id": id, "type": "retrieve_keys"}]}));
    s
}

impl Sandbox {
    /// `url` is `[central] url`; `extra` is appended to the config (more sections).
    pub fn new(url: &str, panel_extra: &str, extra: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let plesk_dir = root.join("plesk");
        fs::create_dir_all(&plesk_dir).unwrap();
        let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plesk-standin");
        std::os::unix::fs::symlink(&standin, plesk_dir.join("plesk")).unwrap();
        let conf_dir = root.join("conf");
        fs::create_dir_all(&conf_dir).unwrap();
        let panel_ini = conf_dir.join("panel.ini");
        let token = root.join("token");
        fs::write(&token, format!("{TOKEN}\n")).unwrap();
        fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
        let spool = root.join("spool");
        fs::create_dir_all(&spool).unwrap();
        let state_dir = root.join("state");
        let socket = root.join("run/agent.sock");
        let config = root.join("agent.ini");
        fs::write(
            &config,
            format!(
                "[central]\nurl = {url}\nhost_id = web-042\ntoken_file = {}\npoll_interval = 60\nlong_poll = 0\n\
                 [panel]\nini_path = {}\n{panel_extra}\n[plesk]\ncommand = {}\ntimeout = 20\n\
                 [agent]\nstate_dir = {}\nsocket = {}\n{extra}\n",
                token.display(),
                panel_ini.display(),
                plesk_dir.join("plesk").display(),
                state_dir.display(),
                socket.display(),
            ),
        )
        .unwrap();
        Sandbox {
            dir,
            config,
            panel_ini,
            plesk_dir,
            state_dir,
            spool,
            socket,
        }
    }

    /// A sandbox whose `[central] url` is its own spool directory.
    pub fn with_spool(panel_extra: &str) -> Sandbox {
        // The spool directory is only known once the sandbox exists.
        const PLACEHOLDER: &str = "file:///spool-placeholder";
        let sb = Sandbox::new(PLACEHOLDER, panel_extra, "");
        let cfg = fs::read_to_string(&sb.config)
            .unwrap()
            .replace(PLACEHOLDER, &sb.spool_url());
        fs::write(&sb.config, cfg).unwrap();
        sb
    }

    pub fn spool_url(&self) -> String {
        format!("file://{}", self.spool.display())
    }

    /// Runs the agent with `--config` and waits for it.
    pub fn agent(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = agent_command(&self.config);
        c.args(args);
        c
    }

    /// The stand-in's recorded invocations.
    pub fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.plesk_dir.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Only the license commands.
    pub fn license_calls(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.starts_with("bin license"))
            .collect()
    }

    /// Sets a stand-in switch (see tests/fixtures/plesk-standin).
    pub fn plesk_switch(&self, name: &str, content: &str) {
        fs::write(self.plesk_dir.join(name), content).unwrap();
    }

    pub fn plesk_unswitch(&self, name: &str) {
        let _ = fs::remove_file(self.plesk_dir.join(name));
    }

    /// A license command has started: the stand-in's `started` file exists.
    pub fn job_started(&self) -> bool {
        self.plesk_dir.join("started").exists()
    }

    /// Polls [`Sandbox::job_started`] every 20 ms for up to `timeout`.
    pub fn wait_job_started(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.job_started() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Removes the `started` file, so the next start can be seen.
    pub fn forget_job_started(&self) {
        let _ = fs::remove_file(self.plesk_dir.join("started"));
    }

    /// SIGKILLs the process group of the license command that last started (an orphan of a
    /// killed agent), so it cannot finish later.
    pub fn kill_job_group(&self) {
        let started = fs::read_to_string(self.plesk_dir.join("started")).unwrap();
        let pgid: i32 = started.trim().parse().unwrap();
        // Signalled directly: procps' `kill -9 -PGID` can turn into kill(-1), every process.
        assert!(pgid > 1, "pgid {pgid}");
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
    }

    pub fn write_panel_ini(&self, content: &str) {
        fs::write(&self.panel_ini, content).unwrap();
    }

    pub fn read_panel_ini(&self) -> String {
        fs::read_to_string(&self.panel_ini).unwrap_or_default()
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
