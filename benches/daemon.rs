//! Daemon benchmark: starts the real release binary against a loopback store (FakeStore),
//! a spool directory and the stand-in `plesk`, and prints latency, memory, CPU, start-up
//! and size figures with PASS/FAIL against the project's targets. Not a test: it asserts
//! nothing, it measures. `cargo bench --bench daemon`; see benches/README-figures.md.
//!
//! Knobs (environment): BENCH_JOBS (jobs per transport, default 50), BENCH_EDITS (drift
//! edits, default 50), BENCH_IDLE_SECS (idle window, default 60), BENCH_STARTS (start-ups,
//! default 10), BENCH_EDITOR_EDITS (edits of the concurrent editor, default 10000),
//! BENCH_ONLY (comma list of longpoll, idle, push, quietpush, wake, spool, drift, editor,
//! ready; default all), BENCH_WAKES (daemons for the wake figures, default 20), BENCH_AGENT_BIN (the agent binary; default the one cargo built).
//!
//! "The command starts" is taken by a wrapper: `[plesk] command` points at a symlink named
//! `plesk` to THIS bench executable. Run under that name, `main` reads CLOCK_REALTIME as its
//! very first action, appends `<ns> <args>` to `starts.log` beside the link and execs the
//! stand-in (copied beside the link, so its state directory is the same). So the figure
//! includes the daemon's fork/exec and the wrapper's process start-up (dynamic loading,
//! measured and printed as "wrapper overhead"), but no shell start-up.

#[path = "../tests/support/net.rs"]
mod net;
#[path = "../tests/support/store.rs"]
mod store;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use store::FakeStore;

/// The agent under test; `BENCH_AGENT_BIN` may name another build (e.g. a copy kept apart).
fn bin() -> String {
    std::env::var("BENCH_AGENT_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_plesk-reseller-agent").to_string())
}
const WRAPPER_NAME: &str = "plesk";
const STARTS_LOG: &str = "starts.log";
const TOKEN: &str = "bench-t0ken-value";
const SECRET: &str = "bench-push-secret";
const BUY_URL: &str = "https://shop.example.com";
/// Pause between jobs, so the poll rate ceiling (one per second on average) is never what is measured.
const JOB_SPACING: Duration = Duration::from_millis(1100);
/// Upper bound for any single wait; a bench that hangs is worse than one that fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

type R<T> = Result<T, String>;

fn main() {
    // Wrapper mode first of all, so the timestamp is taken before anything else runs.
    let now = SystemTime::now();
    let mut args = std::env::args_os();
    let argv0 = PathBuf::from(args.next().unwrap_or_default());
    if argv0.file_name() == Some(OsStr::new(WRAPPER_NAME)) {
        wrapper(now, &argv0, args.collect());
    }
    let code = match bench() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bench failed: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// Records when the command started and becomes the stand-in.
fn wrapper(now: SystemTime, argv0: &Path, args: Vec<OsString>) -> ! {
    let dir = argv0.parent().unwrap_or(Path::new("."));
    let ns = now.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let joined: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let line = format!("{ns} {}\n", joined.join(" "));
    // One append write, so concurrent lines never interleave.
    if let Ok(mut f) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(STARTS_LOG))
    {
        let _ = f.write_all(line.as_bytes());
    }
    let err = Command::new(dir.join("plesk-standin")).args(&args).exec();
    eprintln!(
        "bench wrapper: cannot run {}: {err}",
        dir.join("plesk-standin").display()
    );
    std::process::exit(127);
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn bench() -> R<()> {
    let jobs = env_num("BENCH_JOBS", 50).max(1) as usize;
    let edits = env_num("BENCH_EDITS", 50).max(1) as usize;
    let idle_secs = env_num("BENCH_IDLE_SECS", 60).max(1);
    let starts = env_num("BENCH_STARTS", 10).max(1) as usize;
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let want = |what: &str| only.is_empty() || only.split(',').any(|w| w.trim() == what);
    let mut report = Report::default();

    println!("plesk-reseller-agent daemon bench: {}", bin());
    println!(
        "load average at start: {}",
        fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    println!("jobs per transport {jobs}, drift edits {edits}, idle window {idle_secs} s, start-ups {starts}\n");

    let overhead = wrapper_overhead()?;
    println!(
        "wrapper overhead (spawn by the bench -> wrapper's first instruction): median {}, p99 {}",
        ms(percentile(&overhead, 50.0)),
        ms(percentile(&overhead, 99.0))
    );

    // (a) long-poll; the same daemon then idles for the idle figures.
    if want("longpoll") || want("idle") {
        let (lp, idle) = long_poll_jobs(if want("longpoll") { jobs } else { 0 }, idle_secs)?;
        if want("longpoll") {
            report.latency("job latency, long-poll", &lp);
        }
        let rss_mib = idle.rss_kib as f64 / 1024.0;
        report.row(
            "idle RSS (VmRSS)",
            format!("{rss_mib:.2} MiB (VmHWM {:.2} MiB)", idle.hwm_kib as f64 / 1024.0),
            "<= 10 MiB",
            rss_mib <= 10.0,
        );
        report.row(
            &format!("idle CPU over {idle_secs} s"),
            format!(
                "{:.1} ms/min (ticks: {:.0} ms/min)",
                idle.cpu_ms_per_min_schedstat, idle.cpu_ms_per_min_ticks
            ),
            "<= 30 ms/min",
            idle.cpu_ms_per_min_schedstat.max(idle.cpu_ms_per_min_ticks) <= 30.0,
        );
    }
    // (b) push.
    if want("push") {
        let (push, wake_rtt) = push_jobs(jobs)?;
        report.latency("job latency, push", &push);
        println!(
            "push: signed POST /v1/wake -> 202 round trip: median {}, p99 {}",
            ms(percentile(&wake_rtt, 50.0)),
            ms(percentile(&wake_rtt, 99.0))
        );
    }
    // (b2) push to a quiet daemon: no long-poll, the wake ~1 s after its last request.
    if want("quietpush") {
        let quiet = quiet_push_jobs(jobs)?;
        report.latency("job latency, push to a quiet daemon (202 -> start)", &quiet);
    }
    // (b3) how soon the poll a wake starts begins (contract 5.4 version 2: within 20 ms
    // whenever the rate rule allows one at once): right after start-up, after a burst of
    // five `poll-now`s, and rested.
    if want("wake") {
        let n = env_num("BENCH_WAKES", 20).max(1) as usize;
        let w = wake_to_poll(n)?;
        for (what, v) in [
            ("right after start-up", &w.after_start),
            ("after a burst of 5 poll-now", &w.after_burst),
            ("rested", &w.rested),
        ] {
            report.row(
                &format!("wake -> poll at the store, {what} (n={})", v.len()),
                format!(
                    "median {} p95 {} (max {})",
                    ms(percentile(v, 50.0)),
                    ms(percentile(v, 95.0)),
                    ms(percentile(v, 100.0))
                ),
                "median <= 20 ms",
                percentile(v, 50.0) <= Duration::from_millis(20),
            );
        }
    }
    // (c) spool.
    if want("spool") {
        let spool = spool_jobs(jobs)?;
        report.latency("job latency, spool", &spool);
    }

    if want("drift") {
        let drift = drift_repairs(edits)?;
        report.row(
            &format!("drift repair (n={})", drift.len()),
            format!(
                "median {} p99 {}",
                ms(percentile(&drift, 50.0)),
                ms(percentile(&drift, 99.0))
            ),
            "median <= 200 ms",
            percentile(&drift, 50.0) <= Duration::from_millis(200),
        );
        slowest(&drift);
    }

    if want("editor") {
        let n = env_num("BENCH_EDITOR_EDITS", 10_000).max(1) as usize;
        let e = concurrent_editor(n)?;
        let per_10k = e.lost as f64 * 10_000.0 / e.edits as f64;
        report.row(
            &format!(
                "external edits lost under a concurrent editor (n={}, {} drifts)",
                e.edits, e.drifts
            ),
            format!("{per_10k:.1} per 10 000 ({} lost)", e.lost),
            "0 per 10 000",
            e.lost == 0,
        );
    }

    if want("ready") {
        let ready = start_to_ready(starts)?;
        report.row(
            &format!("start to READY=1 (n={})", ready.len()),
            format!(
                "median {} max {}",
                ms(percentile(&ready, 50.0)),
                ms(percentile(&ready, 100.0))
            ),
            "median <= 100 ms",
            percentile(&ready, 50.0) <= Duration::from_millis(100),
        );
    }

    let size = fs::metadata(bin())
        .map_err(|e| format!("cannot stat {}: {e}", bin()))?
        .len();
    println!(
        "\nrelease binary: {size} bytes ({:.2} MB, {:.2} MiB)",
        size as f64 / 1e6,
        size as f64 / 1048576.0
    );
    println!(
        "load average at end: {}\n",
        fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    report.print();
    Ok(())
}

// ---------------------------------------------------------------- scenarios

/// What it costs to start the wrapper at all: spawned by the bench, until its timestamp.
fn wrapper_overhead() -> R<Vec<Duration>> {
    let s = Setup::new("", "", "")?;
    let mut v = Vec::new();
    for i in 0..20 {
        let t0 = SystemTime::now();
        let st = Command::new(s.plesk_dir.join(WRAPPER_NAME))
            .arg("version")
            .env_clear()
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run the wrapper: {e}"))?;
        if !st.success() {
            return Err(format!("the wrapper failed: {st}"));
        }
        let ts = s
            .starts()?
            .get(i)
            .map(|(t, _)| *t)
            .ok_or("the wrapper wrote no timestamp")?;
        v.push(since(t0, ts));
    }
    Ok(v)
}

struct Idle {
    rss_kib: u64,
    hwm_kib: u64,
    cpu_ms_per_min_ticks: f64,
    cpu_ms_per_min_schedstat: f64,
}

fn job_instructions(id: &str) -> serde_json::Value {
    json!({"jobs": [{"id": id, "type": "retrieve_keys"}]})
}

fn long_poll_jobs(n: usize, idle_secs: u64) -> R<(Vec<Duration>, Idle)> {
    println!("(a) long-poll: {n} jobs ...");
    let store = FakeStore::start();
    store.expect_token(TOKEN);
    let s = Setup::new(&store.url(), "poll_interval = 60\nlong_poll = 25\n", "")?;
    let mut d = Daemon::start(&s, None)?;
    wait_until(STEP_TIMEOUT, || store.held_polls() == 1).map_err(|_| d.failed("no long-poll was held"))?;
    let mut lat = Vec::new();
    for i in 0..n {
        let id = format!("lp-{i:04}");
        let t0 = SystemTime::now();
        store.set_instructions(job_instructions(&id));
        lat.push(s.wait_license_start(i, t0).map_err(|e| d.failed(&e))?);
        wait_until(STEP_TIMEOUT, || store.results().iter().any(|(j, _)| *j == id))
            .map_err(|_| d.failed(&format!("no result for {id}")))?;
        // The next poll is held again before the next job is added.
        wait_until(STEP_TIMEOUT, || store.held_polls() == 1).map_err(|_| d.failed("no long-poll was held"))?;
        std::thread::sleep(JOB_SPACING);
    }

    println!("    idle for {idle_secs} s with the store holding long-polls ...");
    std::thread::sleep(Duration::from_secs(2));
    let pid = d.pid();
    let (t0_ticks, t0_ns) = (cpu_ticks(pid)?, cpu_schedstat_ns(pid)?);
    let w0 = Instant::now();
    std::thread::sleep(Duration::from_secs(idle_secs));
    let (t1_ticks, t1_ns) = (cpu_ticks(pid)?, cpu_schedstat_ns(pid)?);
    let window_min = w0.elapsed().as_secs_f64() / 60.0;
    let tick_ms = 1000.0 / clock_ticks_per_sec();
    let (rss_kib, hwm_kib) = (status_kib(pid, "VmRSS")?, status_kib(pid, "VmHWM")?);
    if store.held_polls() != 1 {
        println!(
            "    note: the store held {} polls at the end of the idle window",
            store.held_polls()
        );
    }
    let idle = Idle {
        rss_kib,
        hwm_kib,
        cpu_ms_per_min_ticks: (t1_ticks - t0_ticks) as f64 * tick_ms / window_min,
        cpu_ms_per_min_schedstat: (t1_ns.saturating_sub(t0_ns)) as f64 / 1e6 / window_min,
    };
    d.stop();
    Ok((lat, idle))
}

/// A store, and a daemon without long-poll listening for pushes that has made its first
/// poll; the push listener's port.
fn push_daemon() -> R<(FakeStore, Setup, Daemon, u16)> {
    let store = FakeStore::start();
    store.expect_token(TOKEN);
    let port = free_port()?;
    let s = Setup::new(
        &store.url(),
        "poll_interval = 3600\nlong_poll = 0\n",
        &format!("[push]\nlisten = 127.0.0.1:{port}\nsecret_file = {{secret}}\n"),
    )?;
    let d = Daemon::start(&s, None)?;
    // Started: its first poll arrived and the listener answers.
    wait_until(STEP_TIMEOUT, || {
        store.poll_count() >= 1 && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .map_err(|_| d.failed("the daemon did not poll or listen"))?;
    Ok((store, s, d, port))
}

fn push_jobs(n: usize) -> R<(Vec<Duration>, Vec<Duration>)> {
    println!("(b) push: {n} jobs ...");
    let (store, s, mut d, port) = push_daemon()?;
    std::thread::sleep(JOB_SPACING);
    let mut lat = Vec::new();
    let mut rtt = Vec::new();
    for i in 0..n {
        let id = format!("push-{i:04}");
        let t0 = SystemTime::now();
        store.set_instructions(job_instructions(&id));
        let w = Instant::now();
        let status = wake(port, SECRET.as_bytes()).map_err(|e| d.failed(&e))?;
        rtt.push(w.elapsed());
        if status != 202 {
            return Err(d.failed(&format!("the wake-up was answered {status}, not 202")));
        }
        lat.push(s.wait_license_start(i, t0).map_err(|e| d.failed(&e))?);
        wait_until(STEP_TIMEOUT, || store.results().iter().any(|(j, _)| *j == id))
            .map_err(|_| d.failed(&format!("no result for {id}")))?;
        std::thread::sleep(JOB_SPACING);
    }
    d.stop();
    Ok((lat, rtt))
}

/// A daemon without long-poll that has been quiet for about a second (its last request to
/// the store, poll or result, that long ago) is woken; measured from the wake's 202 to the
/// license command's start, as an operator's store sees it.
fn quiet_push_jobs(n: usize) -> R<Vec<Duration>> {
    println!("(b2) push to a quiet daemon: {n} jobs ...");
    let (store, s, mut d, port) = push_daemon()?;
    let mut lat = Vec::new();
    for i in 0..n {
        let id = format!("quiet-{i:04}");
        // Quiet: nothing sent to the store for a second.
        let last = store.requests().last().map(|r| r.at).unwrap_or_else(Instant::now);
        std::thread::sleep((last + Duration::from_secs(1)).saturating_duration_since(Instant::now()));
        store.set_instructions(job_instructions(&id));
        let status = wake(port, SECRET.as_bytes()).map_err(|e| d.failed(&e))?;
        let t0 = SystemTime::now();
        if status != 202 {
            return Err(d.failed(&format!("the wake-up was answered {status}, not 202")));
        }
        lat.push(s.wait_license_start(i, t0).map_err(|e| d.failed(&e))?);
        wait_until(STEP_TIMEOUT, || store.results().iter().any(|(j, _)| *j == id))
            .map_err(|_| d.failed(&format!("no result for {id}")))?;
    }
    d.stop();
    Ok(lat)
}

struct WakeFigures {
    after_start: Vec<Duration>,
    after_burst: Vec<Duration>,
    rested: Vec<Duration>,
}

/// Sends a signed wake and returns how long after the send the store saw the poll it started.
fn timed_wake(store: &FakeStore, d: &Daemon, port: u16) -> R<Duration> {
    let before = store.poll_count();
    let t0 = Instant::now();
    let status = wake(port, SECRET.as_bytes()).map_err(|e| d.failed(&e))?;
    if status != 202 {
        return Err(d.failed(&format!("the wake-up was answered {status}, not 202")));
    }
    wait_until(STEP_TIMEOUT, || store.poll_count() > before).map_err(|_| d.failed("the wake started no poll"))?;
    let at = store
        .requests()
        .iter()
        .filter(|r| r.is_poll())
        .nth(before)
        .map(|r| r.at)
        .ok_or_else(|| d.failed("the wake's poll was not recorded"))?;
    Ok(at.saturating_duration_since(t0))
}

/// Each sample: a fresh daemon against a store with long_poll = 0 (so no held poll is in
/// the way) is woken right after its first poll, then again after five `poll-now`s in a
/// row, then again after resting 1.5 s: 9 polls per daemon, within the burst of 10.
fn wake_to_poll(n: usize) -> R<WakeFigures> {
    println!("(b3) wake -> poll: {n} daemons, 3 wakes each ...");
    let mut w = WakeFigures {
        after_start: Vec::new(),
        after_burst: Vec::new(),
        rested: Vec::new(),
    };
    for _ in 0..n {
        let (store, s, mut d, port) = push_daemon()?;
        w.after_start.push(timed_wake(&store, &d, port)?);
        let base = store.poll_count();
        for _ in 0..5 {
            let out = Command::new(bin())
                .arg("--config")
                .arg(&s.config)
                .arg("poll-now")
                .env_remove("PLESK_RESELLER_AGENT_CONFIG")
                .output()
                .map_err(|e| format!("cannot run poll-now: {e}"))?;
            if !out.status.success() {
                return Err(d.failed("poll-now failed"));
            }
        }
        // Coalesced poll-nows may make fewer than five polls; wait for them to settle.
        let _ = wait_until(Duration::from_secs(2), || store.poll_count() >= base + 5);
        std::thread::sleep(Duration::from_millis(20));
        w.after_burst.push(timed_wake(&store, &d, port)?);
        std::thread::sleep(Duration::from_millis(1500));
        w.rested.push(timed_wake(&store, &d, port)?);
        d.stop();
    }
    Ok(w)
}

fn spool_jobs(n: usize) -> R<Vec<Duration>> {
    println!("(c) spool: {n} jobs ...");
    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let spool = dir.path().join("spool");
    fs::create_dir_all(&spool).map_err(|e| format!("cannot create {}: {e}", spool.display()))?;
    let s = Setup::new(&format!("file://{}", spool.display()), "poll_interval = 3600\n", "")?;
    let mut d = Daemon::start(&s, None)?;
    wait_until(STEP_TIMEOUT, || spool.join("report.json").exists())
        .map_err(|_| d.failed("the daemon wrote no report.json"))?;
    std::thread::sleep(JOB_SPACING);
    let tmp = spool.join(".instructions.json.tmp");
    let target = spool.join("instructions.json");
    let mut lat = Vec::new();
    for i in 0..n {
        let id = format!("spool-{i:04}");
        fs::write(&tmp, job_instructions(&id).to_string())
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        let t0 = SystemTime::now();
        fs::rename(&tmp, &target).map_err(|e| format!("cannot rename onto {}: {e}", target.display()))?;
        lat.push(s.wait_license_start(i, t0).map_err(|e| d.failed(&e))?);
        let result = spool.join("results").join(format!("{id}.json"));
        wait_until(STEP_TIMEOUT, || result.exists()).map_err(|_| d.failed(&format!("no result for {id}")))?;
        std::thread::sleep(JOB_SPACING);
    }
    d.stop();
    Ok(lat)
}

/// Rename-replaces panel.ini with another buyUrl and polls the file until the daemon has
/// put the value back. Poll step 200 µs: a read costs ~10-20 µs, so the figure is at most
/// ~0.25 ms late.
fn drift_repairs(n: usize) -> R<Vec<Duration>> {
    println!("drift: {n} rename-replace edits of panel.ini ...");
    let s = Setup::new("", "", "")?;
    let mut d = Daemon::start(&s, None)?;
    let fixed = |c: &str| c.contains(&format!("buyUrl = \"{BUY_URL}\""));
    wait_until(STEP_TIMEOUT, || {
        fixed(&fs::read_to_string(&s.panel_ini).unwrap_or_default())
    })
    .map_err(|_| d.failed("panel.ini never got the configured buyUrl"))?;
    std::thread::sleep(Duration::from_millis(300));
    let tmp = s.panel_ini.with_file_name(".panel.ini.bench");
    let mut lat = Vec::new();
    for i in 0..n {
        let body = format!("; edited by the bench\n[extensions]\nbuyUrl = \"https://other-{i}.example.com\"\n");
        fs::write(&tmp, body).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        let t0 = Instant::now();
        fs::rename(&tmp, &s.panel_ini).map_err(|e| format!("cannot rename onto {}: {e}", s.panel_ini.display()))?;
        let deadline = t0 + STEP_TIMEOUT;
        loop {
            if fs::read_to_string(&s.panel_ini).is_ok_and(|c| fixed(&c)) {
                lat.push(t0.elapsed());
                break;
            }
            if Instant::now() > deadline {
                return Err(d.failed(&format!("edit {i} was not repaired within {STEP_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        // Let the event of the daemon's own write pass before the next edit.
        std::thread::sleep(Duration::from_millis(300));
    }
    d.stop();
    Ok(lat)
}

struct EditorRun {
    edits: usize,
    drifts: usize,
    lost: usize,
}

/// An external program rewriting panel.ini by temp file + rename while the daemon repairs:
/// each edit reads the file and adds one key of its own section; every fourth also sets a
/// wrong buyUrl and is followed 1-3 ms later by the next edit (into the daemon's repair),
/// the others 2-8 ms apart. In rounds of 500 edits from a fresh file, so the file stays
/// small; after each round the daemon settles and the round's keys are counted.
fn concurrent_editor(n: usize) -> R<EditorRun> {
    const ROUND: usize = 500;
    const EVIL: &str = "buyUrl = \"https://evil.example.com\"";
    println!("editor: {n} edits by a concurrent editor ...");
    let s = Setup::new("", "", "")?;
    let good = format!("buyUrl = \"{BUY_URL}\"");
    let base = format!("; edited by the bench\n[editor]\n[extensions]\n{good}\n");
    fs::write(&s.panel_ini, &base).map_err(|e| format!("cannot write {}: {e}", s.panel_ini.display()))?;
    let d = Daemon::start(&s, None)?;
    std::thread::sleep(Duration::from_millis(300));
    let tmp = s.panel_ini.with_file_name(".panel.ini.editor");
    let pause = |lo: u64, hi: u64| std::thread::sleep(Duration::from_micros(fastrand::u64(lo * 1000..hi * 1000)));
    let read = || fs::read_to_string(&s.panel_ini).unwrap_or_default();
    let mut run = EditorRun {
        edits: 0,
        drifts: 0,
        lost: 0,
    };
    let mut round = 0;
    while run.edits < n {
        let count = ROUND.min(n - run.edits);
        let rename_in = |text: &str| -> R<()> {
            fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
            fs::rename(&tmp, &s.panel_ini).map_err(|e| format!("cannot rename onto {}: {e}", s.panel_ini.display()))
        };
        rename_in(&base)?;
        std::thread::sleep(Duration::from_millis(100));
        for i in 0..count {
            let mut next = read().replacen("[editor]\n", &format!("[editor]\nk{round}_{i} = 1\n"), 1);
            let drift = i % 4 == 0;
            if drift {
                next = next.replace(&good, EVIL);
                run.drifts += 1;
            }
            rename_in(&next)?;
            if drift {
                pause(1, 3);
            } else {
                pause(2, 8);
            }
        }
        // Settled: repaired, and still so a moment later.
        wait_until(STEP_TIMEOUT, || {
            read().contains(&good) && {
                std::thread::sleep(Duration::from_millis(200));
                read().contains(&good)
            }
        })
        .map_err(|_| d.failed(&format!("round {round} was never repaired")))?;
        let text = read();
        run.lost += (0..count)
            .filter(|i| !text.contains(&format!("\nk{round}_{i} = 1\n")))
            .count();
        run.edits += count;
        round += 1;
    }
    drop(d);
    println!("    {} edits, {} lost", run.edits, run.lost);
    Ok(run)
}

/// Spawn -> `READY=1` on a NOTIFY_SOCKET the bench binds.
fn start_to_ready(n: usize) -> R<Vec<Duration>> {
    println!("start to ready: {n} start-ups ...");
    let store = FakeStore::start();
    store.expect_token(TOKEN);
    let s = Setup::new(&store.url(), "poll_interval = 60\nlong_poll = 25\n", "")?;
    let sock_path = s.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).map_err(|e| format!("cannot bind {}: {e}", sock_path.display()))?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| format!("socket timeout: {e}"))?;
    let mut v = Vec::new();
    let mut buf = [0u8; 4096];
    for i in 0..n {
        while sock.recv(&mut buf).is_ok() {} // leftovers of the previous run
        let t0 = Instant::now();
        let mut d = Daemon::start(&s, Some(&sock_path))?;
        let deadline = t0 + STEP_TIMEOUT;
        loop {
            match sock.recv(&mut buf) {
                Ok(len) if String::from_utf8_lossy(&buf[..len]).lines().any(|l| l == "READY=1") => {
                    v.push(t0.elapsed());
                    break;
                }
                _ if Instant::now() > deadline => return Err(d.failed(&format!("start {i}: no READY=1"))),
                _ => {}
            }
        }
        d.stop();
    }
    Ok(v)
}

// ---------------------------------------------------------------- the sandbox

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    panel_ini: PathBuf,
    plesk_dir: PathBuf,
}

impl Setup {
    /// `central` goes into `[central]`, `extra` after everything (`{secret}` is replaced by
    /// the push secret file's path).
    fn new(url: &str, central: &str, extra: &str) -> R<Setup> {
        let io = |what: &str, p: &Path, e: std::io::Error| format!("cannot {what} {}: {e}", p.display());
        let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let root = dir.path().to_path_buf();
        let plesk_dir = root.join("plesk");
        fs::create_dir_all(&plesk_dir).map_err(|e| io("create", &plesk_dir, e))?;
        let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plesk-standin");
        let copy = plesk_dir.join("plesk-standin");
        fs::copy(&standin, &copy).map_err(|e| io("copy", &standin, e))?;
        let me = std::env::current_exe().map_err(|e| format!("cannot find the bench executable: {e}"))?;
        std::os::unix::fs::symlink(&me, plesk_dir.join(WRAPPER_NAME)).map_err(|e| io("link", &me, e))?;
        let conf = root.join("conf");
        fs::create_dir_all(&conf).map_err(|e| io("create", &conf, e))?;
        let panel_ini = conf.join("panel.ini");
        fs::write(&panel_ini, "[extensions]\n").map_err(|e| io("write", &panel_ini, e))?;
        let token = root.join("token");
        fs::write(&token, format!("{TOKEN}\n")).map_err(|e| io("write", &token, e))?;
        fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).map_err(|e| io("chmod", &token, e))?;
        let secret = root.join("push.secret");
        fs::write(&secret, format!("{SECRET}\n")).map_err(|e| io("write", &secret, e))?;
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).map_err(|e| io("chmod", &secret, e))?;
        let config = root.join("agent.ini");
        let text = format!(
            "[central]\nurl = {url}\nhost_id = web-042\ntoken_file = {}\n{central}\
             [panel]\nini_path = {}\nbuy_url = {BUY_URL}\n\
             [plesk]\ncommand = {}\ntimeout = 20\n\
             [agent]\nstate_dir = {}\nsocket = {}\n{}",
            token.display(),
            panel_ini.display(),
            plesk_dir.join(WRAPPER_NAME).display(),
            root.join("state").display(),
            root.join("run/agent.sock").display(),
            extra.replace("{secret}", &secret.display().to_string()),
        );
        fs::write(&config, text).map_err(|e| io("write", &config, e))?;
        Ok(Setup {
            dir,
            config,
            panel_ini,
            plesk_dir,
        })
    }

    /// Every wrapper start so far: (unix ns, args).
    fn starts(&self) -> R<Vec<(u128, String)>> {
        let p = self.plesk_dir.join(STARTS_LOG);
        let text = match fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", p.display())),
        };
        Ok(text
            .lines()
            .filter_map(|l| {
                let (ns, args) = l.split_once(' ')?;
                Some((ns.parse().ok()?, args.to_string()))
            })
            .collect())
    }

    /// Waits for the `k`-th (0-based) license command and returns its start minus `t0`.
    fn wait_license_start(&self, k: usize, t0: SystemTime) -> R<Duration> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let starts = self.starts()?;
            if let Some((ns, _)) = starts.iter().filter(|(_, a)| a.starts_with("bin license")).nth(k) {
                return Ok(since(t0, *ns));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "license command #{} did not start within {STEP_TIMEOUT:?}",
                    k + 1
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A daemon the bench started; stopped (SIGTERM, then SIGKILL) when dropped.
struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn start(s: &Setup, notify: Option<&Path>) -> R<Daemon> {
        let log = s.dir.path().join("daemon.log");
        let err = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let mut c = Command::new(bin());
        c.arg("--config")
            .arg(&s.config)
            .arg("run")
            .env_remove("PLESK_RESELLER_AGENT_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err);
        if let Some(p) = notify {
            c.env("NOTIFY_SOCKET", p);
        }
        let child = c.spawn().map_err(|e| format!("cannot start {}: {e}", bin()))?;
        Ok(Daemon {
            child: Some(child),
            log,
        })
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// An error message with the tail of the daemon's log.
    fn failed(&self, what: &str) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("{what}; daemon log tail:\n{}", tail.join("\n"))
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + STEP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        eprintln!("daemon {pid} ignored SIGTERM for {STEP_TIMEOUT:?}; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------- helpers

/// Sends a signed, empty `POST /v1/wake`; returns the HTTP status.
fn wake(port: u16, secret: &[u8]) -> R<u16> {
    let sig = net::sign(secret, net::unix_now(), b"");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let answer = net::exchange(addr, &net::request("POST", "/v1/wake", Some(&sig), b""));
    if answer.is_empty() {
        return Err(format!("the push listener on {addr} closed the connection unanswered"));
    }
    Ok(net::status(&answer))
}

fn free_port() -> R<u16> {
    Ok(net::free_port())
}

fn wait_until(timeout: Duration, mut pred: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + timeout;
    while !pred() {
        if Instant::now() > deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn since(t0: SystemTime, ns: u128) -> Duration {
    let t0 = t0.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    Duration::from_nanos(ns.saturating_sub(t0) as u64)
}

/// Nearest-rank percentile (p 100 = max; with 50 samples p99 is the largest).
fn percentile(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let mut s = v.to_vec();
    s.sort();
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank.min(s.len()) - 1]
}

/// The three slowest samples with their index, to tell one stall from a trend.
fn slowest(v: &[Duration]) {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by_key(|&i| std::cmp::Reverse(v[i]));
    let top: Vec<String> = idx.iter().take(3).map(|&i| format!("#{i} {}", ms(v[i]))).collect();
    println!("    slowest: {}", top.join(", "));
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// utime + stime of the whole process (all threads, dead ones included), in clock ticks.
fn cpu_ticks(pid: i32) -> R<u64> {
    let p = format!("/proc/{pid}/stat");
    let s = fs::read_to_string(&p).map_err(|e| format!("cannot read {p}: {e}"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = s.rsplit_once(')').map(|(_, r)| r).ok_or(format!("{p} is malformed"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(format!("{p} is malformed"))
    };
    Ok(num(11)? + num(12)?)
}

/// CPU time in ns summed over the live threads (schedstat: nanosecond resolution).
fn cpu_schedstat_ns(pid: i32) -> R<u64> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0;
    for e in fs::read_dir(&dir)
        .map_err(|e| format!("cannot read {dir}: {e}"))?
        .flatten()
    {
        if let Ok(s) = fs::read_to_string(e.path().join("schedstat")) {
            total += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(total)
}

fn status_kib(pid: i32, field: &str) -> R<u64> {
    let p = format!("/proc/{pid}/status");
    let s = fs::read_to_string(&p).map_err(|e| format!("cannot read {p}: {e}"))?;
    s.lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .strip_prefix(':')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or(format!("{p} has no {field}"))
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

#[derive(Default)]
struct Report {
    rows: Vec<(String, String, String, bool)>,
}

impl Report {
    fn row(&mut self, what: &str, value: String, target: &str, pass: bool) {
        println!("{what}: {value}  [{target}: {}]", if pass { "PASS" } else { "FAIL" });
        self.rows.push((what.to_string(), value, target.to_string(), pass));
    }

    fn latency(&mut self, what: &str, v: &[Duration]) {
        let (p50, p99) = (percentile(v, 50.0), percentile(v, 99.0));
        self.row(
            &format!("{what} (n={})", v.len()),
            format!(
                "median {} p99 {} (min {} max {})",
                ms(p50),
                ms(p99),
                ms(percentile(v, 0.0)),
                ms(percentile(v, 100.0))
            ),
            "median <= 20 ms, p99 <= 100 ms",
            p50 <= Duration::from_millis(20) && p99 <= Duration::from_millis(100),
        );
        slowest(v);
    }

    fn print(&self) {
        println!("| figure | value | target | verdict |");
        println!("|---|---|---|---|");
        for (what, value, target, pass) in &self.rows {
            println!(
                "| {what} | {value} | {target} | {} |",
                if *pass { "PASS" } else { "FAIL" }
            );
        }
    }
}
