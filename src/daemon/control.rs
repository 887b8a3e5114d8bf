//! The local control socket (contract 8): `status`, `poll-now` and `sync` talk to the
//! running daemon through it.
//!
//! Protocol: newline-delimited JSON over a unix stream socket; one request line, one
//! response line, then the server closes. The socket is mode 0600 and the server also
//! checks the peer's uid, so only root or the daemon's own user get an answer.
//!
//! On Windows the channel is a named pipe (`\\.\pipe\plesk-reseller-agent`) whose DACL lets
//! only SYSTEM and Administrators open it (`platform::windows::pipe`); same lines, same answers.

use std::future::Future;
use std::io::ErrorKind;
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[cfg(windows)]
pub use crate::platform::windows::pipe::PipeListener as UnixListener;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
#[cfg(unix)]
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use crate::BoxFuture;

/// Longest request line accepted (without its newline).
pub const MAX_REQUEST: usize = 4096;
/// Longest response line the client reads; a status with many recent jobs stays far below.
pub const MAX_RESPONSE: usize = 8 * 1024 * 1024;
/// Connections served at once; more are closed unanswered.
pub const MAX_CONNECTIONS: usize = 16;
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A request line: `{"cmd":"status"}`, `{"cmd":"poll-now"}`, `{"cmd":"sync"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum ControlRequest {
    Status,
    PollNow,
    Sync,
}

/// A response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlResponse {
    pub ok: bool,
    #[serde(default)]
    pub body: serde_json::Value,
    #[serde(default)]
    pub error: Option<String>,
}

impl ControlResponse {
    pub fn ok(body: serde_json::Value) -> Self {
        Self {
            ok: true,
            body,
            error: None,
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            body: serde_json::Value::Null,
            error: Some(message.into()),
        }
    }
}

/// The daemon's answer to a request, typed on both ends; [`ControlResponse`] is its line
/// on the wire (`{"ok":…,"body":…,"error":…}`).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Status(Box<crate::status::Status>),
    /// The poll was started (or one more was queued behind the one under way).
    PollNow,
    Sync(SyncReply),
    /// The daemon could not do it; the sentence says why.
    Refused(String),
}

/// The body of a `sync` reply: the pass's failures (none: it succeeded) and jobs run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReply {
    pub failures: Vec<String>,
    pub jobs_run: usize,
}

impl From<Reply> for ControlResponse {
    fn from(reply: Reply) -> Self {
        match reply {
            Reply::Status(s) => ControlResponse::ok(serde_json::to_value(*s).unwrap_or_default()),
            Reply::PollNow => ControlResponse::ok(serde_json::json!({"accepted": true})),
            Reply::Sync(r) => ControlResponse {
                ok: r.failures.is_empty(),
                body: serde_json::to_value(&r).unwrap_or_default(),
                error: None,
            },
            Reply::Refused(why) => ControlResponse::error(why),
        }
    }
}

impl ControlResponse {
    /// The typed reply to `req`, or why this line is not one.
    pub fn into_reply(self, req: ControlRequest) -> Result<Reply, String> {
        if !self.ok && self.body.is_null() {
            return Ok(Reply::Refused(
                self.error.unwrap_or_else(|| "the daemon refused the request".into()),
            ));
        }
        Ok(match req {
            ControlRequest::Status => Reply::Status(Box::new(
                serde_json::from_value(self.body).map_err(|e| format!("not a status: {e}"))?,
            )),
            ControlRequest::PollNow => Reply::PollNow,
            ControlRequest::Sync => {
                Reply::Sync(serde_json::from_value(self.body).map_err(|e| format!("not a sync reply: {e}"))?)
            }
        })
    }
}

/// What the daemon does with a request; no timeout is put on it (a `sync` lasts as long
/// as its jobs).
pub type Handler = Arc<dyn Fn(ControlRequest) -> BoxFuture<'static, ControlResponse> + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No socket file, or nothing listening on it: exit status 3 in the CLI.
    #[error("the daemon is not running (nothing answers on {})", path.display())]
    NotRunning { path: PathBuf },
    #[error("another daemon already answers on {}", path.display())]
    InUse { path: PathBuf },
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket { path: PathBuf },
    #[error("cannot create the socket directory {}: {source}", dir.display())]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bind the control socket {}: {source}", path.display())]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot talk to the daemon on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the daemon did not answer on {} within {}", path.display(), humantime::format_duration(*timeout))]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("the daemon's answer on {} is not valid: {reason}", path.display())]
    BadResponse { path: PathBuf, reason: String },
}

/// How long a socket of a killed daemon may keep accepting connections.
#[cfg(unix)]
const STALE_SOCKET_GRACE: Duration = Duration::from_secs(1);

#[cfg(unix)]
/// Connects to `path`; a connection that the other end closes within
/// [`STALE_SOCKET_GRACE`] without a word is followed by a second connect, whose outcome is
/// returned. A daemon SIGKILLed while spawning a child leaves a copy of its listening socket
/// in that child until the child's exec closes it (close-on-exec): connections are queued
/// for a moment, though nobody will answer, and are reset when the copy goes. A live daemon
/// keeps the connection open waiting for a request. One connection only, so nothing piles
/// up in a live daemon's backlog.
fn connect_for_a_while(path: &Path) -> std::io::Result<std::os::unix::net::UnixStream> {
    use std::io::Read;
    let stream = std::os::unix::net::UnixStream::connect(path)?;
    stream.set_read_timeout(Some(STALE_SOCKET_GRACE))?;
    match (&stream).read(&mut [0u8; 1]) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(stream),
        _ => {
            drop(stream);
            std::os::unix::net::UnixStream::connect(path)
        }
    }
}

#[cfg(unix)]
/// Binds the control socket at `path`: creates its directory (0755) if missing, replaces
/// a stale socket file nobody answers on, and makes the socket 0600.
///
/// Must be called inside a tokio runtime.
pub fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|source| ControlError::Dir {
                    dir: dir.to_path_buf(),
                    source,
                })?;
            // The umask may have narrowed the mode; clients of other users need to traverse.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(|source| {
                ControlError::Dir {
                    dir: dir.to_path_buf(),
                    source,
                }
            })?;
        }
    }

    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match connect_for_a_while(path) {
            Ok(_) => {
                return Err(ControlError::InUse {
                    path: path.to_path_buf(),
                })
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "removing a stale control socket");
                std::fs::remove_file(path).map_err(|source| ControlError::Bind {
                    path: path.to_path_buf(),
                    source,
                })?;
            }
            Err(source) => {
                return Err(ControlError::Bind {
                    path: path.to_path_buf(),
                    source,
                })
            }
        },
        Ok(_) => {
            return Err(ControlError::NotASocket {
                path: path.to_path_buf(),
            })
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ControlError::Bind {
                path: path.to_path_buf(),
                source,
            })
        }
    }

    let bind_err = |source| ControlError::Bind {
        path: path.to_path_buf(),
        source,
    };
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    // Between bind and chmod the umask's mode applies; the peer uid check covers that moment.
    if let Err(source) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        let _ = std::fs::remove_file(path);
        return Err(bind_err(source));
    }
    Ok(listener)
}

#[cfg(unix)]
/// Serves requests on `listener` until `shutdown` completes. Connections already being
/// answered finish in their own tasks.
pub async fn serve(listener: UnixListener, handler: Handler, shutdown: impl Future<Output = ()> + Send) {
    let own_uid = nix::unistd::geteuid().as_raw();
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let mut stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!("control socket is at {MAX_CONNECTIONS} connections; closing a new one");
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let peer = match stream.peer_cred() {
                Ok(cred) if cred.uid() == 0 || cred.uid() == own_uid => Peer::Allowed(Some(cred.uid())),
                Ok(cred) => Peer::Refused(Some(cred.uid())),
                Err(e) => {
                    tracing::warn!(error = %e, "control socket cannot tell who connected; refusing");
                    Peer::Refused(None)
                }
            };
            answer(&mut stream, handler, peer).await;
            drop(permit);
        });
    }
    tracing::debug!("control socket stopped");
}

/// Who connected, as the channel tells: allowed (with the uid where there is one), or refused.
/// On Windows the pipe's DACL has already turned away everyone but SYSTEM and Administrators.
pub(crate) enum Peer {
    Allowed(Option<u32>),
    #[cfg_attr(windows, allow(dead_code))]
    Refused(Option<u32>),
}

pub(crate) async fn answer<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, handler: Handler, peer: Peer) {
    // The request is read even from a refused peer: closing a unix socket with unread
    // data resets it, and the client would lose the "permission denied" answer.
    let line = match tokio::time::timeout(READ_TIMEOUT, read_line(stream)).await {
        Ok(Ok(Some(line))) => Some(line),
        Ok(Ok(None)) => None,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "control connection failed while reading");
            return;
        }
        Err(_) => {
            respond(stream, &ControlResponse::error("no request within 5 seconds")).await;
            return;
        }
    };
    let uid = match peer {
        Peer::Allowed(uid) => uid,
        Peer::Refused(uid) => {
            if let Some(uid) = uid {
                tracing::warn!(uid, "control socket refused a connection from another user");
            }
            respond(stream, &ControlResponse::error("permission denied")).await;
            return;
        }
    };
    let Some(line) = line else {
        respond(
            stream,
            &ControlResponse::error(format!("request longer than {MAX_REQUEST} bytes")),
        )
        .await;
        return;
    };
    let response = match serde_json::from_slice::<ControlRequest>(line.trim_ascii()) {
        Ok(req) => {
            match uid {
                Some(uid) => tracing::debug!(?req, uid, "control request"),
                None => tracing::debug!(?req, "control request"),
            }
            handler(req).await
        }
        Err(_) => ControlResponse::error("unknown request"),
    };
    respond(stream, &response).await;
}

/// One line without its newline; `None` when it is longer than [`MAX_REQUEST`]. A client
/// that closes its side without a newline still gets its line read.
async fn read_line<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Option<Vec<u8>>> {
    let mut reader = BufReader::new(stream).take(MAX_REQUEST as u64 + 1);
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).await?;
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > MAX_REQUEST {
        return Ok(None);
    }
    Ok(Some(line))
}

async fn respond<S: AsyncWrite + Unpin>(stream: &mut S, response: &ControlResponse) {
    let mut line = match serde_json::to_vec(response) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "control response could not be encoded");
            return;
        }
    };
    line.push(b'\n');
    let write = async {
        stream.write_all(&line).await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "control response not delivered"),
        Err(_) => tracing::debug!("control client did not take its response within 5 seconds"),
    }
}

/// Sends `req` to the daemon on `path` and waits up to `timeout` for the answer.
/// Sends `req` and returns the daemon's typed reply.
pub async fn ask(path: &Path, req: ControlRequest, timeout: Duration) -> Result<Reply, ControlError> {
    let response = request(path, &req, timeout).await?;
    response.into_reply(req).map_err(|reason| ControlError::BadResponse {
        path: path.to_path_buf(),
        reason,
    })
}

pub async fn request(path: &Path, req: &ControlRequest, timeout: Duration) -> Result<ControlResponse, ControlError> {
    match tokio::time::timeout(timeout, exchange(path, req)).await {
        Ok(result) => result,
        Err(_) => Err(ControlError::Timeout {
            path: path.to_path_buf(),
            timeout,
        }),
    }
}

async fn exchange(path: &Path, req: &ControlRequest) -> Result<ControlResponse, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    #[cfg(unix)]
    let connected = UnixStream::connect(path).await;
    #[cfg(windows)]
    let connected = crate::platform::windows::pipe::connect(path).await;
    let mut stream = match connected {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            return Err(ControlError::NotRunning {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(io(e)),
    };
    let mut line = serde_json::to_vec(req).map_err(|e| ControlError::BadResponse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    line.push(b'\n');
    stream.write_all(&line).await.map_err(io)?;

    let mut answer = Vec::new();
    BufReader::new(&mut stream)
        .take(MAX_RESPONSE as u64 + 1)
        .read_until(b'\n', &mut answer)
        .await
        .map_err(io)?;
    let bad = |reason: String| ControlError::BadResponse {
        path: path.to_path_buf(),
        reason,
    };
    if answer.is_empty() {
        return Err(bad("the connection closed without an answer".into()));
    }
    if answer.len() > MAX_RESPONSE {
        return Err(bad(format!("the answer is longer than {MAX_RESPONSE} bytes")));
    }
    serde_json::from_slice(answer.trim_ascii()).map_err(|e| bad(e.to_string()))
}

/// Windows: the named pipe at `path`; another daemon answering there is [`ControlError::InUse`].
#[cfg(windows)]
pub fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    UnixListener::bind(path).map_err(|source| {
        if source.raw_os_error() == Some(5) {
            // ERROR_ACCESS_DENIED for the first instance: someone else created the pipe.
            ControlError::InUse {
                path: path.to_path_buf(),
            }
        } else {
            ControlError::Bind {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Windows: serves the pipe until `shutdown` completes; who may connect at all was decided by
/// the pipe's DACL when it was created.
#[cfg(windows)]
pub async fn serve(mut listener: UnixListener, handler: Handler, shutdown: impl Future<Output = ()> + Send) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let mut stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "control pipe cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!("control pipe is at {MAX_CONNECTIONS} connections; closing a new one");
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            answer(&mut stream, handler, Peer::Allowed(None)).await;
            // Closing a pipe may discard what the client has not read yet: wait for its close.
            let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.read(&mut [0u8; 1])).await;
            drop(permit);
        });
    }
    tracing::debug!("control pipe stopped");
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// The line the daemon writes is read back as the reply it meant, failures included.
    #[test]
    fn replies_survive_the_wire() {
        let wire = |r: Reply| -> ControlResponse {
            let line = serde_json::to_string(&ControlResponse::from(r)).unwrap();
            serde_json::from_str(&line).unwrap()
        };
        let failed = Reply::Sync(SyncReply {
            failures: vec!["cannot reach https://store".into()],
            jobs_run: 2,
        });
        let line = wire(failed.clone());
        assert!(!line.ok, "a pass with failures is not ok");
        assert_eq!(line.into_reply(ControlRequest::Sync), Ok(failed));
        let clean = Reply::Sync(SyncReply::default());
        assert!(wire(clean.clone()).ok);
        assert_eq!(wire(clean.clone()).into_reply(ControlRequest::Sync), Ok(clean));
        assert_eq!(
            wire(Reply::PollNow).into_reply(ControlRequest::PollNow),
            Ok(Reply::PollNow)
        );
        let refused = Reply::Refused("the daemon is stopping".into());
        assert_eq!(wire(refused.clone()).into_reply(ControlRequest::Sync), Ok(refused));
        let not_a_status = ControlResponse::ok(serde_json::json!({"accepted": true}));
        assert!(not_a_status.into_reply(ControlRequest::Status).is_err());
    }

    #[test]
    fn requests_use_kebab_case_cmd_tags() {
        for (req, json) in [
            (ControlRequest::Status, r#"{"cmd":"status"}"#),
            (ControlRequest::PollNow, r#"{"cmd":"poll-now"}"#),
            (ControlRequest::Sync, r#"{"cmd":"sync"}"#),
        ] {
            assert_eq!(serde_json::to_string(&req).unwrap(), json);
            assert_eq!(serde_json::from_str::<ControlRequest>(json).unwrap(), req);
        }
        assert!(serde_json::from_str::<ControlRequest>(r#"{"cmd":"reboot"}"#).is_err());
        assert!(serde_json::from_str::<ControlRequest>(r#"{"cmd":"poll_now"}"#).is_err());
    }

    #[test]
    fn responses_round_trip() {
        let r = ControlResponse::ok(serde_json::json!({"schema_version": 1}));
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(s, r#"{"ok":true,"body":{"schema_version":1},"error":null}"#);
        assert_eq!(serde_json::from_str::<ControlResponse>(&s).unwrap(), r);
        let e = ControlResponse::error("unknown request");
        assert_eq!(
            serde_json::from_str::<ControlResponse>(r#"{"ok":false,"error":"unknown request"}"#).unwrap(),
            e
        );
    }

    #[test]
    fn errors_name_the_socket() {
        let p = PathBuf::from("/run/plesk-reseller-agent/agent.sock");
        let e = ControlError::NotRunning { path: p.clone() };
        assert!(e.to_string().contains("/run/plesk-reseller-agent/agent.sock"));
        let e = ControlError::Timeout {
            path: p,
            timeout: Duration::from_secs(30),
        };
        assert!(e.to_string().ends_with("within 30s"), "{e}");
    }
}
