//! Running a child process the way the license commands need: argv only (never a shell),
//! its own process group, a small environment, stdout and stderr in one pipe (the tail of
//! 16 KiB kept), and a timeout after which the group gets SIGTERM and, 10 s later, SIGKILL.
//! Whatever the child leaves behind in its group is killed once it exits.
//!
//! The [`Runner`] trait is the seam tests use to replace process execution.

use std::collections::VecDeque;
use std::ffi::OsString;
#[cfg(unix)]
use std::os::fd::OwnedFd;
#[cfg(unix)]
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
#[cfg(unix)]
use std::process::ExitStatus;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

#[cfg(unix)]
use nix::errno::Errno;
#[cfg(unix)]
use nix::fcntl::OFlag;
#[cfg(unix)]
use nix::sys::signal::{killpg, Signal};
#[cfg(unix)]
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
#[cfg(unix)]
use tokio::net::unix::pipe;
use tokio::time::Instant;

use crate::BoxFuture;

/// Bytes of output kept (the tail).
pub const OUTPUT_TAIL: usize = 16 * 1024;

/// The only environment a child gets (besides `HOME`).
#[cfg(unix)]
const CHILD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long we keep reading after the child's group is gone; bounds a stray writer
/// (something that left the group but kept the pipe) so it cannot hang us.
const DRAIN_BOUND: Duration = Duration::from_secs(2);

/// A command to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// After this the process group gets SIGTERM, then SIGKILL after `kill_grace`.
    pub timeout: Duration,
    pub kill_grace: Duration,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit code; `None` when killed by a signal, timed out or never started.
    pub exit_code: Option<i32>,
    /// stdout and stderr interleaved as written, lossy UTF-8, the last [`OUTPUT_TAIL`] bytes.
    pub output: String,
    pub timed_out: bool,
    /// Set when the program could not be started (the sentence says why).
    pub spawn_error: Option<String>,
    pub started_at: SystemTime,
    pub finished_at: SystemTime,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && self.spawn_error.is_none()
    }
}

/// Runs commands. The real one is [`ProcessRunner`].
pub trait Runner: Send + Sync {
    fn run(&self, spec: CommandSpec) -> BoxFuture<'_, CommandOutput>;
}

/// Runs real processes.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessRunner;

impl Runner for ProcessRunner {
    fn run(&self, spec: CommandSpec) -> BoxFuture<'_, CommandOutput> {
        Box::pin(run_process(spec))
    }
}

/// Keeps the last `cap` bytes pushed into it.
struct Tail {
    buf: VecDeque<u8>,
    cap: usize,
}

impl Tail {
    fn new(cap: usize) -> Self {
        Tail {
            buf: VecDeque::with_capacity(cap),
            cap,
        }
    }

    fn push(&mut self, data: &[u8]) {
        if data.len() >= self.cap {
            self.buf.clear();
            self.buf.extend(&data[data.len() - self.cap..]);
            return;
        }
        let overflow = (self.buf.len() + data.len()).saturating_sub(self.cap);
        self.buf.drain(..overflow);
        self.buf.extend(data);
    }

    /// The kept bytes as text; a character cut in half at the front is dropped.
    fn into_string(self) -> String {
        let bytes: Vec<u8> = self.buf.into();
        // At most 3 continuation bytes can belong to a character whose start was cut off.
        let skip = bytes.iter().take(3).take_while(|b| (**b & 0xC0) == 0x80).count();
        String::from_utf8_lossy(&bytes[skip..]).into_owned()
    }
}

#[cfg(unix)]
/// Kills the child's whole process group when dropped: after the child exits (so whatever
/// it left behind goes too and the pipe closes), and when the run is cancelled.
struct GroupKiller(Pid);

#[cfg(unix)]
impl Drop for GroupKiller {
    fn drop(&mut self) {
        signal_group(self.0, Signal::SIGKILL);
    }
}

#[cfg(unix)]
fn signal_group(pgid: Pid, signal: Signal) {
    // 0 would be our own group and 1 init's: never a child's group, whatever went wrong.
    if pgid.as_raw() <= 1 {
        return;
    }
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => {
            tracing::warn!(pgid = pgid.as_raw(), %signal, "cannot signal process group: {}", e.desc())
        }
    }
}

#[cfg(unix)]
fn io_reason(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}

/// `base + d`, saturating at roughly a century so an absurd timeout cannot overflow.
fn deadline(base: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    base.checked_add(d.min(FAR))
        .unwrap_or(base + Duration::from_secs(24 * 3600))
}

fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(unix)]
fn child_env() -> Vec<(&'static str, OsString)> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| OsString::from("/root"));
    vec![
        ("PATH", OsString::from(CHILD_PATH)),
        ("LC_ALL", OsString::from("C")),
        ("LANG", OsString::from("C")),
        ("HOME", home),
    ]
}

#[cfg(unix)]
/// One pipe for both stdout and stderr; close-on-exec so children other runs spawn at the
/// same time do not inherit our write end (which would keep our pipe open).
fn output_pipe() -> std::io::Result<(OwnedFd, OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    let write2 = write.try_clone()?;
    Ok((read, write, write2))
}

#[cfg(unix)]
/// The read end of the child's output pipe and what has been kept of it.
struct Output {
    reader: pipe::Receiver,
    buf: Vec<u8>,
    tail: Tail,
    eof: bool,
}

#[cfg(unix)]
impl Output {
    fn new(reader: pipe::Receiver) -> Self {
        Output {
            reader,
            buf: vec![0u8; 8192],
            tail: Tail::new(OUTPUT_TAIL),
            eof: false,
        }
    }

    /// Keeps what one read returned; end of file or a read error ends the reading.
    fn take(&mut self, read: std::io::Result<usize>, program: &str) {
        match read {
            Ok(0) => self.eof = true,
            Ok(n) => self.tail.push(&self.buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(program = %program, "reading the output failed: {}", io_reason(&e));
                self.eof = true;
            }
        }
    }

    /// Reads what is left once the group is gone, for at most [`DRAIN_BOUND`].
    async fn drain(&mut self, program: &str) {
        if self.eof {
            return;
        }
        let drain = async {
            loop {
                match self.reader.read(&mut self.buf).await {
                    Ok(0) => break,
                    Ok(n) => self.tail.push(&self.buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        };
        if tokio::time::timeout(DRAIN_BOUND, drain).await.is_err() {
            tracing::warn!(program = %program, "output pipe still open after the process group was killed; output may be incomplete");
        }
    }

    /// Ends the output with a line that says why the command ended, if it did not exit.
    fn append_note(&mut self, note: &str) {
        let needs_newline = self.tail.buf.back().is_some_and(|b| *b != b'\n');
        if needs_newline {
            self.tail.push(b"\n");
        }
        self.tail.push(note.as_bytes());
        self.tail.push(b"\n");
    }
}

#[cfg(unix)]
/// Starts the program with the output pipe as stdout and stderr; the error is the reason.
fn spawn(spec: &CommandSpec) -> Result<(tokio::process::Child, pipe::Receiver), String> {
    let (read_end, write_out, write_err) =
        output_pipe().map_err(|e| format!("cannot create the output pipe: {}", io_reason(&e)))?;
    let reader = pipe::Receiver::from_owned_fd(read_end)
        .map_err(|e| format!("cannot watch the output pipe: {}", io_reason(&e)))?;

    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(child_env())
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_out))
        .stderr(Stdio::from(write_err))
        .process_group(0)
        .kill_on_drop(true);
    let spawned = cmd.spawn();
    // The command holds our copies of the write end; only the child may keep the pipe open.
    drop(cmd);
    let child = spawned.map_err(|e| io_reason(&e))?;
    Ok((child, reader))
}

#[cfg(unix)]
/// Reads the output until the child exits, sending SIGTERM to the group at the timeout and
/// SIGKILL `kill_grace` later. Returns the exit status (`None` if waiting failed) and
/// whether the timeout struck.
async fn supervise(
    child: &mut tokio::process::Child,
    output: &mut Output,
    pgid: Pid,
    spec: &CommandSpec,
    program: &str,
) -> (Option<ExitStatus>, bool) {
    let mut timed_out = false;
    let mut killed = false;
    let term_at = deadline(Instant::now(), spec.timeout);
    let mut kill_at = deadline(term_at, spec.kill_grace);

    let status = loop {
        tokio::select! {
            read = output.reader.read(&mut output.buf), if !output.eof => output.take(read, program),
            waited = child.wait() => match waited {
                Ok(st) => break Some(st),
                Err(e) => {
                    tracing::warn!(program = %program, "waiting for the command failed: {}", io_reason(&e));
                    break None;
                }
            },
            _ = tokio::time::sleep_until(term_at), if !timed_out => {
                timed_out = true;
                kill_at = deadline(Instant::now(), spec.kill_grace);
                signal_group(pgid, Signal::SIGTERM);
            },
            _ = tokio::time::sleep_until(kill_at), if timed_out && !killed => {
                killed = true;
                signal_group(pgid, Signal::SIGKILL);
            },
        }
    };
    (status, timed_out)
}

#[cfg(unix)]
/// The line that says why a command that did not exit on its own ended.
fn end_note(status: Option<ExitStatus>, timed_out: bool, timeout: Duration) -> Option<String> {
    if timed_out {
        return Some(format!("timed out after {}", seconds(timeout)));
    }
    status.and_then(|s| s.signal()).map(|sig| match Signal::try_from(sig) {
        Ok(s) => format!("killed by signal {s}"),
        Err(_) => format!("killed by signal {sig}"),
    })
}

#[cfg(unix)]
async fn run_process(spec: CommandSpec) -> CommandOutput {
    let started_at = SystemTime::now();
    let program = spec.program.display().to_string();
    let failed = |reason: String| CommandOutput {
        exit_code: None,
        output: String::new(),
        timed_out: false,
        spawn_error: Some(format!("cannot run {program}: {reason}")),
        started_at,
        finished_at: SystemTime::now(),
    };

    let (mut child, reader) = match spawn(&spec) {
        Ok(spawned) => spawned,
        Err(reason) => return failed(reason),
    };
    let Some(pid) = child.id() else {
        return failed("it exited before its process id could be read".to_string());
    };
    let pgid = Pid::from_raw(pid as i32);
    let group = GroupKiller(pgid);
    let mut output = Output::new(reader);

    let (status, timed_out) = supervise(&mut child, &mut output, pgid, &spec, &program).await;
    drop(group);
    output.drain(&program).await;

    let exit_code = if timed_out { None } else { status.and_then(|s| s.code()) };
    if let Some(note) = end_note(status, timed_out, spec.timeout) {
        output.append_note(&note);
    }
    CommandOutput {
        exit_code,
        output: output.tail.into_string(),
        timed_out,
        spawn_error: None,
        started_at,
        finished_at: SystemTime::now(),
    }
}

/// Windows: stdout and stderr in two pipes read side by side (no shared pipe in tokio's
/// Windows process API), the process tree in a Job object killed at the timeout and after
/// the command exits.
#[cfg(windows)]
async fn run_process(spec: CommandSpec) -> CommandOutput {
    use tokio::io::AsyncRead;

    let started_at = SystemTime::now();
    let program = spec.program.display().to_string();
    let failed = |reason: String| CommandOutput {
        exit_code: None,
        output: String::new(),
        timed_out: false,
        spawn_error: Some(format!("cannot run {program}: {reason}")),
        started_at,
        finished_at: SystemTime::now(),
    };
    let job = match crate::platform::windows::job::Job::new() {
        Ok(j) => j,
        Err(e) => return failed(format!("cannot create a Job object: {e}")),
    };
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(child_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(e.to_string()),
    };
    if let Some(h) = child.raw_handle() {
        // SAFETY: the handle belongs to `child`, which lives past this call.
        let h = unsafe { std::os::windows::io::BorrowedHandle::borrow_raw(h) };
        if let Err(e) = job.assign(h) {
            tracing::warn!(program = %program, "cannot put the command in a Job object: {e}");
        }
    }
    let mut out = child
        .stdout
        .take()
        .map(|s| Box::pin(s) as std::pin::Pin<Box<dyn AsyncRead + Send>>);
    let mut err = child
        .stderr
        .take()
        .map(|s| Box::pin(s) as std::pin::Pin<Box<dyn AsyncRead + Send>>);
    let mut tail = Tail::new(OUTPUT_TAIL);
    let (mut b1, mut b2) = (vec![0u8; 8192], vec![0u8; 8192]);
    let term_at = deadline(Instant::now(), spec.timeout);
    let mut timed_out = false;
    let status = loop {
        tokio::select! {
            r = async { out.as_mut().unwrap().read(&mut b1).await }, if out.is_some() => match r {
                Ok(n) if n > 0 => tail.push(&b1[..n]),
                _ => out = None,
            },
            r = async { err.as_mut().unwrap().read(&mut b2).await }, if err.is_some() => match r {
                Ok(n) if n > 0 => tail.push(&b2[..n]),
                _ => err = None,
            },
            waited = child.wait() => break waited.ok(),
            _ = tokio::time::sleep_until(term_at), if !timed_out => {
                timed_out = true;
                job.terminate();
            },
        }
    };
    // Whatever the command left running goes now, so the pipes close.
    job.terminate();
    let drain = async {
        for (r, b) in [(&mut out, &mut b1), (&mut err, &mut b2)] {
            while let Some(s) = r.as_mut() {
                match s.read(b).await {
                    Ok(n) if n > 0 => tail.push(&b[..n]),
                    _ => *r = None,
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_BOUND, drain).await;
    let exit_code = if timed_out { None } else { status.and_then(|s| s.code()) };
    if timed_out {
        if tail.buf.back().is_some_and(|b| *b != b'\n') {
            tail.push(b"\n");
        }
        tail.push(format!("timed out after {}\n", seconds(spec.timeout)).as_bytes());
    }
    CommandOutput {
        exit_code,
        output: tail.into_string(),
        timed_out,
        spawn_error: None,
        started_at,
        finished_at: SystemTime::now(),
    }
}

/// The environment a child gets on Windows: what Windows programs need to start
/// (SystemRoot, the system PATH, temp directories), nothing of ours.
#[cfg(windows)]
fn child_env() -> Vec<(&'static str, OsString)> {
    [
        "SystemRoot",
        "SystemDrive",
        "windir",
        "PATH",
        "PATHEXT",
        "TEMP",
        "TMP",
        "ProgramData",
        "ComSpec",
        "plesk_dir",
        "plesk_cli",
    ]
    .into_iter()
    .filter_map(|k| std::env::var_os(k).map(|v| (k, v)))
    .collect()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_bytes() {
        let mut t = Tail::new(8);
        t.push(b"abc");
        t.push(b"defgh");
        assert_eq!(t.buf.iter().copied().collect::<Vec<_>>(), b"abcdefgh");
        t.push(b"ij");
        assert_eq!(t.buf.iter().copied().collect::<Vec<_>>(), b"cdefghij");
        t.push(b"0123456789");
        assert_eq!(t.into_string(), "23456789");
    }

    #[test]
    fn tail_drops_cut_character_at_front() {
        let mut t = Tail::new(5);
        // "é" is two bytes; keeping 5 of "xé1234" cuts it in half.
        t.push("xé1234".as_bytes());
        assert_eq!(t.into_string(), "1234");
    }

    #[test]
    fn seconds_formats_whole_and_fractional() {
        assert_eq!(seconds(Duration::from_secs(600)), "600 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
    }

    fn spec(program: &str, args: &[&str], timeout: Duration) -> CommandSpec {
        CommandSpec {
            program: program.into(),
            args: args.iter().map(OsString::from).collect(),
            timeout,
            kill_grace: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn runs_argv_without_shell_and_interleaves_output() {
        let out = ProcessRunner
            .run(spec(
                "/bin/sh",
                &["-c", "echo one; echo two >&2; echo three; exit 3", "$(not-expanded)"],
                Duration::from_secs(30),
            ))
            .await;
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.output, "one\ntwo\nthree\n");
        assert!(!out.timed_out);
        assert!(!out.success());
        assert!(out.finished_at >= out.started_at);
    }

    #[tokio::test]
    async fn argument_is_passed_verbatim() {
        let out = ProcessRunner
            .run(spec("/bin/echo", &["a b", "$HOME", ";", "*"], Duration::from_secs(30)))
            .await;
        assert!(out.success(), "{out:?}");
        assert_eq!(out.output, "a b $HOME ; *\n");
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let out = ProcessRunner
            .run(spec("/nonexistent/plesk", &["version"], Duration::from_secs(5)))
            .await;
        assert_eq!(out.exit_code, None);
        assert_eq!(
            out.spawn_error.as_deref(),
            Some("cannot run /nonexistent/plesk: No such file or directory")
        );
        assert!(!out.success());
    }

    #[tokio::test]
    async fn stdin_is_empty() {
        let out = ProcessRunner.run(spec("/bin/cat", &[], Duration::from_secs(5))).await;
        assert!(out.success(), "{out:?}");
        assert_eq!(out.output, "");
    }

    #[tokio::test]
    async fn killed_by_signal_has_no_exit_code() {
        let out = ProcessRunner
            .run(spec("/bin/sh", &["-c", "echo hi; kill -9 $$"], Duration::from_secs(30)))
            .await;
        assert_eq!(out.exit_code, None);
        assert!(!out.timed_out);
        assert_eq!(out.output, "hi\nkilled by signal SIGKILL\n");
    }

    #[tokio::test]
    async fn timeout_terminates_group() {
        let out = ProcessRunner
            .run(spec(
                "/bin/sh",
                &["-c", "echo begin; sleep 1000"],
                Duration::from_millis(300),
            ))
            .await;
        assert!(out.timed_out);
        assert_eq!(out.exit_code, None);
        assert!(out.output.starts_with("begin\n"), "{}", out.output);
        assert!(out.output.ends_with("timed out after 0.3 s\n"), "{}", out.output);
        assert!(out.finished_at.duration_since(out.started_at).unwrap() < Duration::from_secs(20));
    }
}

#[cfg(all(test, windows))]
mod windows_tests {
    use super::*;

    fn cmd_spec(script: &std::path::Path, timeout: Duration) -> CommandSpec {
        CommandSpec {
            program: script.into(),
            args: vec![],
            timeout,
            kill_grace: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn output_and_exit_code_of_a_cmd_script() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("plesk.cmd");
        std::fs::write(&s, "@echo off\r\necho one\r\necho two 1>&2\r\nexit /b 3\r\n").unwrap();
        let out = ProcessRunner.run(cmd_spec(&s, Duration::from_secs(60))).await;
        assert_eq!(out.exit_code, Some(3), "{out:?}");
        assert!(out.output.contains("one") && out.output.contains("two"), "{out:?}");
        assert!(!out.timed_out);
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let out = ProcessRunner
            .run(cmd_spec(
                std::path::Path::new(r"C:\nonexistent\plesk.exe"),
                Duration::from_secs(5),
            ))
            .await;
        assert_eq!(out.exit_code, None);
        assert!(out.spawn_error.is_some(), "{out:?}");
    }

    /// The script starts a grandchild that appends to ticks.log every second, then loops
    /// itself. At the timeout the Job object must end both: ticks.log stops growing.
    #[tokio::test]
    async fn the_timeout_kills_the_whole_process_tree() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("inner.cmd");
        let ticks = dir.path().join("ticks.log");
        std::fs::write(
            &inner,
            "@echo off\r\n:loop\r\necho tick>>\"%~dp0ticks.log\"\r\nping -n 2 127.0.0.1 >nul\r\ngoto loop\r\n",
        )
        .unwrap();
        let outer = dir.path().join("outer.cmd");
        std::fs::write(
            &outer,
            "@echo off\r\nstart /b \"\" cmd /c \"%~dp0inner.cmd\"\r\necho begin\r\n:loop\r\nping -n 2 127.0.0.1 >nul\r\ngoto loop\r\n",
        )
        .unwrap();
        let out = ProcessRunner.run(cmd_spec(&outer, Duration::from_secs(4))).await;
        assert!(out.timed_out, "{out:?}");
        assert_eq!(out.exit_code, None);
        assert!(out.output.contains("begin"), "{out:?}");
        assert!(out.output.ends_with("timed out after 4 s\n"), "{out:?}");
        let before = std::fs::read_to_string(&ticks).unwrap_or_default();
        assert!(before.contains("tick"), "the grandchild never ran");
        tokio::time::sleep(Duration::from_secs(4)).await;
        let after = std::fs::read_to_string(&ticks).unwrap_or_default();
        assert_eq!(before, after, "the grandchild still runs after the timeout");
    }
}
