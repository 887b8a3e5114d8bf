//! The real central server in a temp dir: config, database (SQLite there or a PostgreSQL
//! URL), admin socket, log file.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

pub struct Central {
    pub root: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub addr: String,
    child: Option<Child>,
    extra: String,
    listen: String,
    pub db_url: String,
}

/// `[server] admin_listen` on a free loopback port, with `token` in a 0600 file in `dir`: the
/// config lines to pass as `extra`, and the port.
pub fn admin_listen(dir: &Path, token: &str) -> (String, u16) {
    use std::os::unix::fs::PermissionsExt;
    let token_file = dir.join("admin.token");
    fs::write(&token_file, format!("{token}\n")).unwrap();
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let extra = format!(
        "[server]\nadmin_listen = 127.0.0.1:{port}\nadmin_token_file = {}\n",
        token_file.display()
    );
    (extra, port)
}

/// `jobs add` for host `web-1` with idempotency keys k0, k1, … through the CLI until one
/// fails (the server was killed) or 400 are done: the (key, job id) pairs acknowledged.
pub fn jobs_add_burst(config: PathBuf) -> std::thread::JoinHandle<Vec<(String, String)>> {
    std::thread::spawn(move || {
        let mut acked = Vec::new();
        for i in 0..400 {
            let out = Command::new(bin())
                .arg("--config")
                .arg(&config)
                .args(["jobs", "add", "--host", "web-1", "retrieve-keys", "--idempotency-key"])
                .arg(format!("k{i}"))
                .arg("--json")
                .output()
                .unwrap();
            if !out.status.success() {
                break;
            }
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            acked.push((format!("k{i}"), v["id"].as_str().unwrap().to_string()));
        }
        acked
    })
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_plesk-reseller-central")
}

impl Central {
    /// Writes the config (`extra` is appended: more sections or keys) without starting.
    pub fn new(root: &Path, extra: &str) -> Central {
        let url = format!("sqlite://{}/db/central.db", root.display());
        Central::on(root, extra, &url)
    }

    /// The same on the database at `url` (e.g. [`super::TestDb::url`]; replicas share one).
    pub fn on(root: &Path, extra: &str, url: &str) -> Central {
        fs::create_dir_all(root).unwrap();
        let c = Central {
            root: root.into(),
            config: root.join("central.ini"),
            log: root.join("central.log"),
            addr: String::new(),
            child: None,
            extra: extra.into(),
            listen: "127.0.0.1:0".into(),
            db_url: url.into(),
        };
        c.write_config();
        c
    }

    fn write_config(&self) {
        let r = self.root.display();
        fs::write(
            &self.config,
            format!(
                "[server]\nlisten = {}\nadmin_socket = {r}/run/admin.sock\nmax_wait = 30\n\
                 [database]\nurl = {}\n{}\n",
                self.listen, self.db_url, self.extra
            ),
        )
        .unwrap();
    }

    /// SQLite's files; none for PostgreSQL (its cluster is not this test's to read).
    pub fn db_files(&self) -> Vec<PathBuf> {
        if !self.db_url.starts_with("sqlite:") {
            return Vec::new();
        }
        ["central.db", "central.db-wal", "central.db-shm"]
            .iter()
            .map(|f| self.root.join("db").join(f))
            .collect()
    }

    /// Starts `serve` and waits until it has written its bound address.
    pub fn start(&mut self) {
        let addr_file = self.root.join("addr");
        let _ = fs::remove_file(&addr_file);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(bin())
            .arg("--config")
            .arg(&self.config)
            .args(["serve", "--address-file"])
            .arg(&addr_file)
            .env_remove("NOTIFY_SOCKET")
            .env("PLESK_RESELLER_CENTRAL_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.addr = super::wait_for(30, "the central's address file", || {
            let t = fs::read_to_string(&addr_file).ok()?;
            t.ends_with('\n').then(|| t.trim().to_string())
        });
    }

    /// Keeps the current port across restarts (the agent's config names it).
    pub fn pin_port(&mut self) {
        self.listen = self.addr.clone();
        self.write_config();
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERM and wait: the clean stop. Returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap().code()
    }

    /// SIGTERM, then up to `secs` for the exit: the exit status code, or None when it had
    /// to be killed (a stop that hangs fails its test instead of hanging it).
    pub fn stop_within(&mut self, secs: u64) -> Option<i32> {
        let mut child = self.child.take()?;
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < end {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("PLESK_RESELLER_CENTRAL_CONFIG")
            .output()
            .unwrap()
    }

    /// Runs a `--json` command that must succeed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `hosts add` → the token.
    pub fn add_host(&self, id: &str, extra: &[&str]) -> Value {
        let mut args = vec!["hosts", "add", id];
        args.extend_from_slice(extra);
        self.json(&args)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        self.kill();
    }
}
