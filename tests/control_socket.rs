//! The control socket end to end: bind rules, the request/response protocol, limits and
//! the peer check.
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use plesk_reseller_agent::daemon::control::{self, ControlError, ControlRequest, ControlResponse, Handler};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::oneshot;

const T: Duration = Duration::from_secs(10);

struct Daemon {
    path: PathBuf,
    calls: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

fn handler(calls: Arc<AtomicUsize>) -> Handler {
    Arc::new(move |req: ControlRequest| {
        calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            match req {
                ControlRequest::Status => {
                    ControlResponse::ok(json!({"schema_version": 1, "daemon": {"running": true}}))
                }
                ControlRequest::PollNow => ControlResponse::ok(json!("poll started")),
                ControlRequest::Sync => ControlResponse::error("sync failed: central unreachable"),
            }
        })
    })
}

async fn start() -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run").join("agent.sock");
    let listener = control::bind(&path).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(control::serve(listener, handler(calls.clone()), async move {
        let _ = stopped.await;
    }));
    Daemon {
        path,
        calls,
        stop: Some(stop),
        task,
        _dir: dir,
    }
}

/// Sends raw bytes and returns whatever comes back before the server closes.
async fn raw(path: &Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(path).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut out))
        .await
        .expect("server neither answered nor closed");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn socket_and_created_directory_have_the_right_modes() {
    let d = start().await;
    let mode = std::fs::metadata(&d.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(d.path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o755);
}

#[tokio::test]
async fn requests_get_the_handlers_answers() {
    let d = start().await;
    let r = control::request(&d.path, &ControlRequest::Status, T).await.unwrap();
    assert!(r.ok);
    assert_eq!(r.body["schema_version"], 1);
    assert_eq!(r.body["daemon"]["running"], true);

    let r = control::request(&d.path, &ControlRequest::PollNow, T).await.unwrap();
    assert_eq!((r.ok, r.body), (true, json!("poll started")));

    let r = control::request(&d.path, &ControlRequest::Sync, T).await.unwrap();
    assert!(!r.ok);
    assert_eq!(r.error.as_deref(), Some("sync failed: central unreachable"));
    assert_eq!(d.calls.load(Ordering::SeqCst), 3);

    // The wire format is one JSON line each way.
    let reply = raw(&d.path, b"{\"cmd\":\"poll-now\"}\n").await;
    assert_eq!(reply, "{\"ok\":true,\"body\":\"poll started\",\"error\":null}\n");
}

#[tokio::test]
async fn a_second_bind_while_serving_is_refused() {
    let d = start().await;
    match control::bind(&d.path) {
        Err(ControlError::InUse { path }) => assert_eq!(path, d.path),
        other => panic!("expected InUse, got {other:?}"),
    }
    // And the first one still answers.
    let r = control::request(&d.path, &ControlRequest::Status, T).await.unwrap();
    assert!(r.ok);
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    drop(control::bind(&path).unwrap());
    assert!(path.exists(), "dropping a listener leaves its file behind");
    let listener = control::bind(&path).expect("a socket nobody answers on is stale");
    let calls = Arc::new(AtomicUsize::new(0));
    tokio::spawn(control::serve(listener, handler(calls), std::future::pending()));
    let r = control::request(&path, &ControlRequest::Status, T).await.unwrap();
    assert!(r.ok);
}

#[tokio::test]
async fn a_regular_file_in_the_way_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    std::fs::write(&path, "precious").unwrap();
    let err = control::bind(&path).unwrap_err();
    assert!(matches!(err, ControlError::NotASocket { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[tokio::test]
async fn client_reports_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("agent.sock");
    let err = control::request(&missing, &ControlRequest::Status, T)
        .await
        .unwrap_err();
    assert!(matches!(err, ControlError::NotRunning { .. }), "{err}");
    assert!(err.to_string().contains(&missing.display().to_string()));

    // A stale socket file: present, but nobody listening.
    drop(control::bind(&missing).unwrap());
    let err = control::request(&missing, &ControlRequest::PollNow, T)
        .await
        .unwrap_err();
    assert!(matches!(err, ControlError::NotRunning { .. }), "{err}");
}

#[tokio::test]
async fn client_times_out_on_a_daemon_that_never_answers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let _listener = control::bind(&path).unwrap(); // bound, never accepted
    let err = control::request(&path, &ControlRequest::Status, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, ControlError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn garbage_and_unknown_commands_get_ok_false() {
    let d = start().await;
    for line in [
        &b"hello\n"[..],
        b"{\"cmd\":\"reboot\"}\n",
        b"{\"cmd\":\"poll_now\"}\n",
        b"\n",
    ] {
        let reply = raw(&d.path, line).await;
        let r: ControlResponse = serde_json::from_str(reply.trim_end()).unwrap();
        assert!(!r.ok, "{reply}");
        assert_eq!(r.error.as_deref(), Some("unknown request"));
    }
    assert_eq!(d.calls.load(Ordering::SeqCst), 0, "the handler never saw them");
}

#[tokio::test]
async fn an_oversized_request_is_refused_and_the_server_keeps_serving() {
    let d = start().await;
    let mut big = b"{\"cmd\":\"status\",\"pad\":\"".to_vec();
    big.resize(5000, b'x');
    big.extend_from_slice(b"\"}\n");
    let reply = raw(&d.path, &big).await;
    if !reply.is_empty() {
        let r: ControlResponse = serde_json::from_str(reply.trim_end()).unwrap();
        assert!(!r.ok, "{reply}");
    }
    assert_eq!(d.calls.load(Ordering::SeqCst), 0);
    let r = control::request(&d.path, &ControlRequest::Status, T).await.unwrap();
    assert!(r.ok);
}

#[tokio::test]
async fn a_silent_client_does_not_block_others() {
    let d = start().await;
    let _silent = UnixStream::connect(&d.path).await.unwrap();
    let r = control::request(&d.path, &ControlRequest::Status, T).await.unwrap();
    assert!(r.ok);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let mut d = start().await;
    d.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(T, &mut d.task)
        .await
        .expect("serve must return after shutdown")
        .unwrap();
    let err = control::request(&d.path, &ControlRequest::Status, T).await.unwrap_err();
    assert!(matches!(err, ControlError::NotRunning { .. }), "{err}");
}

/// Runs a python3 client as uid/gid 65534 against `path`; returns what it printed.
fn connect_as_nobody(path: &Path) -> Option<String> {
    use std::os::unix::process::CommandExt;
    let python = ["/usr/bin/python3", "/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect-error", e.errno)
    sys.exit(0)
s.sendall(b'{"cmd":"status"}\n')
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print("reply", data.decode().strip())
"#;
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(path)
        .uid(65534)
        .gid(65534)
        .env_clear()
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if stdout.is_empty() {
        // Show why the client said nothing instead of a bare mismatch.
        return Some(format!("stderr: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Some(stdout)
}

#[tokio::test]
async fn other_users_get_no_status() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the other-user check needs root to run a client as another uid");
        return;
    }
    let d = start().await;
    // Let uid 65534 reach the socket file itself, so only its mode stands in the way.
    for dir in [d.path.parent().unwrap(), d.path.parent().unwrap().parent().unwrap()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let Some(out) = tokio::task::spawn_blocking({
        let p = d.path.clone();
        move || connect_as_nobody(&p)
    })
    .await
    .unwrap() else {
        eprintln!("skipped: no python3 to act as the other user's client");
        return;
    };
    assert_eq!(out, "connect-error 13", "mode 0600 must refuse uid 65534");

    // Even if the mode were loosened, the server's own uid check refuses.
    std::fs::set_permissions(&d.path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = tokio::task::spawn_blocking({
        let p = d.path.clone();
        move || connect_as_nobody(&p)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out, r#"reply {"ok":false,"body":null,"error":"permission denied"}"#);
    assert_eq!(d.calls.load(Ordering::SeqCst), 0, "the handler never ran");

    // Root itself is still served.
    let r = control::request(&d.path, &ControlRequest::Status, T).await.unwrap();
    assert!(r.ok);
}
