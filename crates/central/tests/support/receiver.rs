//! A webhook receiver on loopback (std threads, one request per connection): records every
//! POST with its headers and body, and answers as told — a status per delivery from a
//! script, or hanging (reads the request, never answers) to stand for a stuck store.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub at: Instant,
    /// The status this delivery was answered with (0: none, it hung).
    pub answered: u16,
}

impl Delivery {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct State {
    got: Vec<Delivery>,
    /// Statuses for the next deliveries, first first; when empty, `then`.
    script: Vec<u16>,
    then: u16,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: String,
    state: Arc<Mutex<State>>,
    hang: Arc<AtomicBool>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Receiver {
    /// Answers `then` to every delivery after the statuses of `script`.
    pub fn start(script: &[u16], then: u16) -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let r = Receiver {
            addr: l.local_addr().unwrap().to_string(),
            state: Arc::new(Mutex::new(State {
                got: Vec::new(),
                script: script.to_vec(),
                then,
            })),
            hang: Arc::new(AtomicBool::new(false)),
        };
        let me = r.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut s) = conn else { continue };
                let me = me.clone();
                std::thread::spawn(move || me.serve(&mut s));
            }
        });
        r
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// Reads requests and never answers them while on.
    pub fn set_hang(&self, on: bool) {
        self.hang.store(on, Ordering::SeqCst);
    }

    fn serve(&self, s: &mut std::net::TcpStream) {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 16384];
        let (head_end, len) = loop {
            let Ok(n) = s.read(&mut buf) else { return };
            if n == 0 {
                return;
            }
            raw.extend_from_slice(&buf[..n]);
            if let Some(i) = find(&raw, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..i]).to_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (i + 4, len);
            }
        };
        while raw.len() < head_end + len {
            let Ok(n) = s.read(&mut buf) else { return };
            if n == 0 {
                return;
            }
            raw.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
        let header = |name: &str| {
            head.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let mut d = Delivery {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            body: String::from_utf8_lossy(&raw[head_end..head_end + len]).into_owned(),
            at: Instant::now(),
            answered: 0,
        };
        if self.hang.load(Ordering::SeqCst) {
            self.state.lock().unwrap().got.push(d);
            // Hold the connection open, silent, until the client gives up.
            let _ = s.read(&mut buf);
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        let status = {
            let mut st = self.state.lock().unwrap();
            let status = if st.script.is_empty() {
                st.then
            } else {
                st.script.remove(0)
            };
            d.answered = status;
            st.got.push(d);
            status
        };
        let _ =
            s.write_all(format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
    }

    /// How many deliveries arrived (without copying them).
    pub fn count(&self) -> usize {
        self.state.lock().unwrap().got.len()
    }

    pub fn got(&self) -> Vec<Delivery> {
        self.state.lock().unwrap().got.clone()
    }

    /// Deliveries of events of `kind` (the body's `type`).
    pub fn of_type(&self, kind: &str) -> Vec<Delivery> {
        self.got().into_iter().filter(|d| d.json()["type"] == kind).collect()
    }
}

/// A `whsec_` secret in a 0600 file under `dir`: the config lines for `[webhooks]` and the
/// secret.
pub fn webhooks_config(dir: &std::path::Path, url: &str) -> (String, String) {
    use std::os::unix::fs::PermissionsExt;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string();
    let path = dir.join("webhook.secret");
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (
        format!("[webhooks]\nurl = {url}\nsecret_file = {}\n", path.display()),
        secret,
    )
}
