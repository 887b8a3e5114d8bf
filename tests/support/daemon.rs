//! The real daemon (`plesk-reseller-agent run`) as a child process of a test: started on a
//! [`Sandbox`], its stderr captured to a file in the sandbox, stopped by SIGTERM, and
//! killed (SIGKILL) when dropped so no test leaves a daemon behind.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::sandbox::{agent_command, text, Sandbox};

/// How long the daemon gets to answer `status` after it was started.
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a job the daemon picked up may take to start its license command.
pub const JOB_START_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Daemon {
    child: Option<Child>,
    config: PathBuf,
    /// Where the daemon's stderr goes.
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `run` and waits until `status --json` answers from the daemon.
    pub fn start(sb: &Sandbox) -> Daemon {
        let mut d = Daemon::spawn(sb);
        d.wait_ready();
        d
    }

    /// Starts `run` without waiting for it.
    pub fn spawn(sb: &Sandbox) -> Daemon {
        let log = (1..)
            .map(|n| sb.dir.path().join(format!("daemon-{n}.log")))
            .find(|p| !p.exists())
            .unwrap();
        let err = fs::File::create(&log).unwrap();
        let child = sb
            .command(&["run"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .env("PLESK_RESELLER_AGENT_LOG", "debug")
            .spawn()
            .expect("spawn the daemon");
        Daemon {
            child: Some(child),
            config: sb.config.clone(),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon child").id()
    }

    /// Polls `status --json` until the daemon itself answers; panics with its log if it
    /// exits or does not answer within [`READY_TIMEOUT`].
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the daemon exited early ({st}); its log:\n{}", self.log_text());
            }
            let out = self.agent(&["status", "--json"]);
            // Exit 1 is also an error (e.g. a socket left by a killed daemon that never
            // answers): only a status on stdout counts.
            if matches!(out.status.code(), Some(0) | Some(1)) && !out.stdout.is_empty() {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                if v["daemon"]["running"] == true {
                    return;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "the daemon did not answer status within {READY_TIMEOUT:?}; status said {:?} {}; log:\n{}",
                    out.status.code(),
                    text(&out.stderr),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs the agent binary with this daemon's config.
    pub fn agent(&self, args: &[&str]) -> Output {
        agent_with(&self.config, args)
    }

    /// `status --json` from the running daemon (panics unless it answered).
    pub fn status_json(&self) -> serde_json::Value {
        let out = self.agent(&["status", "--json"]);
        assert!(
            matches!(out.status.code(), Some(0) | Some(1)),
            "status exited {:?}: {}; daemon log:\n{}",
            out.status.code(),
            text(&out.stderr),
            self.log_text()
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Re-reads the status every 20 ms until `pred` holds (Some(status)) or `timeout` passes (None).
    pub fn wait_status(
        &self,
        pred: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status_json();
            if pred(&s) {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to [`JOB_START_TIMEOUT`] for the sandbox's license command to start; panics
    /// with the daemon's log if it does not.
    pub fn wait_job_started(&self, sb: &Sandbox) {
        assert!(
            sb.wait_job_started(JOB_START_TIMEOUT),
            "the job did not start; log:\n{}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: Signal) {
        if let Some(c) = &self.child {
            let _ = kill(Pid::from_raw(c.id() as i32), sig);
        }
    }

    /// Waits up to `timeout` for the daemon to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then waits (up to 30 s) for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        match self.wait_exit(Duration::from_secs(30)) {
            Some(st) => st,
            None => panic!(
                "the daemon did not stop within 30 s of SIGTERM; log:\n{}",
                self.log_text()
            ),
        }
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// Starts the daemon, SIGKILLs it while its job's license command runs (the stand-in's
/// `delay` switch, `delay_s` seconds, keeps the command running), then clears the switch and
/// the started mark so that the next run of the job finishes at once.
pub fn kill_mid_job(sb: &Sandbox, delay_s: &str) {
    sb.plesk_switch("delay", delay_s);
    let d = Daemon::start(sb);
    d.wait_job_started(sb);
    d.kill();
    sb.plesk_unswitch("delay");
    sb.forget_job_started();
}

/// Runs the agent binary with `config`.
pub fn agent_with(config: &Path, args: &[&str]) -> Output {
    agent_command(config).args(args).output().unwrap()
}

/// Replaces `key = …` in `[section]` of the sandbox config (appending it when missing).
pub fn set_config(sb: &Sandbox, section: &str, key: &str, value: &str) {
    let old = fs::read_to_string(&sb.config).unwrap();
    let mut out = Vec::new();
    let mut in_section = false;
    let mut done = false;
    let header = format!("[{section}]");
    for line in old.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            if in_section && !done {
                out.push(format!("{key} = {value}"));
                done = true;
            }
            in_section = t == header;
        } else if in_section && t.split('=').next().map(str::trim) == Some(key) {
            if !done {
                out.push(format!("{key} = {value}"));
                done = true;
            }
            continue;
        }
        out.push(line.to_string());
    }
    if !done {
        if !in_section {
            out.push(header);
        }
        out.push(format!("{key} = {value}"));
    }
    fs::write(&sb.config, out.join("\n") + "\n").unwrap();
}

/// Polls `pred` every 20 ms until it holds (true) or `timeout` passes (false).
pub fn eventually(timeout: Duration, pred: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
