//! The CLI's side of the admin API: HTTP/1.1 over the admin unix socket.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Why an admin call failed. `NoServer` is exit status 3.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no central server is running: nothing answers on the admin socket {0} (start it with `plesk-reseller-central serve`)")]
    NoServer(PathBuf),
    #[error("cannot talk to the central server on {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    /// The server's own sentence.
    #[error("{0}")]
    Api(String),
}

pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: &Path) -> Client {
        Client { socket: socket.into() }
    }

    /// Sends one request; a 2xx answer's JSON, else the server's error sentence.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, ClientError> {
        let io = |e: &dyn std::fmt::Display| ClientError::Io {
            path: self.socket.clone(),
            reason: e.to_string(),
        };
        let stream = match tokio::net::UnixStream::connect(&self.socket).await {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(ClientError::NoServer(self.socket.clone()))
            }
            Err(e) => return Err(io(&e)),
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| io(&e))?;
        tokio::spawn(conn);
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| io(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| io(&e))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(|e| io(&e))?.to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value)
        } else {
            let msg = value
                .get("error")
                .and_then(|e| e.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| format!("the central server answered {status}"));
            Err(ClientError::Api(msg))
        }
    }
}
