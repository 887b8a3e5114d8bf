//! Headless Chromium (Debian's `chromium`) driven over the DevTools protocol: load a page,
//! ask its DOM, submit a form, take a screenshot. The real browser, not an HTML parser, so a
//! test sees what a person would: whether `<script>` became an element or stayed text.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

const CHROMIUM: &str = "/usr/bin/chromium";

pub struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

/// None (and the test says it is skipped) when Chromium is not installed; with `CI=true` it
/// must be, so CI cannot skip the page's tests silently.
pub fn launch() -> Option<Browser> {
    if !Path::new(CHROMIUM).exists() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but Chromium is not installed (apt-get install chromium)");
        }
        eprintln!("{CHROMIUM} is missing: the fleet page's browser test is skipped");
        return None;
    }
    Some(Browser::start())
}

impl Browser {
    fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        // The flags this machine needs: without the background-networking ones Chromium
        // keeps trying hosts a closed network refuses.
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" on stderr.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split_whitespace().find(|w| w.starts_with("ws://")) {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("chromium's DevTools address");
        let host = url.trim_start_matches("ws://").split('/').next().unwrap().to_string();
        let stream = TcpStream::connect(&host).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("DevTools handshake");
        let mut b = Browser {
            child,
            ws,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = b.call("Target.createTarget", json!({ "url": "about:blank" }));
        let attached = b.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        b.call("Page.enable", json!({}));
        b.call("Network.enable", json!({}));
        // The pages must work without JavaScript: the page's own scripts are off (DevTools'
        // evaluations below still run, as a person's clicks and typing would).
        b.call("Emulation.setScriptExecutionDisabled", json!({ "value": true }));
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
        );
        b
    }

    fn send(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let mut msg = json!({ "id": self.next_id, "method": method, "params": params });
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(Message::text(msg.to_string())).unwrap();
        self.next_id
    }

    /// Reads until `stop` holds for a message (answers and events both arrive here).
    fn read_until(&mut self, what: &str, mut stop: impl FnMut(&Value) -> bool) -> Value {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < end, "chromium: gave up waiting for {what}");
            let Message::Text(t) = self.ws.read().unwrap() else {
                continue;
            };
            let v: Value = serde_json::from_str(&t).unwrap();
            if stop(&v) {
                return v;
            }
        }
    }

    /// A DevTools command and its result; an error answer fails the test with it.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params);
        let v = self.read_until(method, |v| v["id"] == id);
        assert!(v.get("error").is_none(), "{method}: {}", v["error"]);
        v["result"].clone()
    }

    /// Sends every request with this header (HTTP Basic for the fleet page).
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.call("Network.setExtraHTTPHeaders", json!({ "headers": { name: value } }));
    }

    pub fn basic_auth(&mut self, user: &str, password: &str) {
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.set_header("Authorization", &format!("Basic {creds}"));
    }

    /// Loads `url` and waits for its load event; returns the HTTP status of the document.
    pub fn goto(&mut self, url: &str) -> i64 {
        self.send("Page.navigate", json!({ "url": url }));
        self.wait_loaded()
    }

    /// Waits for the current navigation's document response and its load event.
    fn wait_loaded(&mut self) -> i64 {
        let mut status = 0;
        self.read_until("the page's load event", |v| {
            if v["method"] == "Network.responseReceived" && v["params"]["type"] == "Document" {
                status = v["params"]["response"]["status"].as_i64().unwrap_or(0);
            }
            v["method"] == "Page.loadEventFired"
        });
        status
    }

    /// Evaluates a JavaScript expression in the page (DevTools, not the page's own scripts:
    /// the page has none) and returns its value.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({ "expression": expr, "returnByValue": true }));
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {}", r["exceptionDetails"]);
        r["result"]["value"].clone()
    }

    pub fn text(&mut self, selector: &str) -> String {
        let v = self.eval(&format!(
            "(document.querySelector({}) || {{}}).textContent ?? null",
            json!(selector)
        ));
        v.as_str()
            .unwrap_or_else(|| panic!("no element {selector}"))
            .to_string()
    }

    pub fn count(&mut self, selector: &str) -> u64 {
        self.eval(&format!("document.querySelectorAll({}).length", json!(selector)))
            .as_u64()
            .unwrap()
    }

    /// Types into a form's field and submits it the way Enter would, then waits for the
    /// page it leads to.
    pub fn submit(&mut self, field: &str, value: &str) {
        self.send(
            "Runtime.evaluate",
            json!({ "expression": format!(
                "(() => {{ const f = document.querySelector({}); f.value = {}; f.form.requestSubmit(); }})()",
                json!(field), json!(value)
            ) }),
        );
        self.wait_loaded();
    }

    /// The whole page as PNG, written to `path`.
    pub fn screenshot(&mut self, path: &Path) -> PathBuf {
        let r = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": false }),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
        path.into()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.session.clear();
        let _ = self.send("Browser.close", json!({}));
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
