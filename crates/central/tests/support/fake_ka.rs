//! A fake KA Partner API v3 server on loopback, faithful to the documented shapes
//! (`../shared/reference/ka-partner-api.md` section 12): Basic auth, `POST keys` → 201 +
//! `Location` (body only with `return-key-state`), `GET keys/<id|code>`, `GET keys?nickname=`,
//! parents on create, the `{code,type,message,details}` error body, both path prefixes.
//! Knobs: fail the next calls with a status, answer slowly, commit a create but answer it only
//! after a delay or never (the "answer lost" case), a share of creates whose answer is lost,
//! creates that take long before they commit, an outage, a rotated password, a search that
//! answers garbage, and keys seeded with any nickname, parent and termination.
//! Lifecycle (section 2, 4.3, 12): `PUT keys/<id>` with `suspended` (JSON booleans and the
//! strings "true"/"false" Plesk's modules send) or `items` (the whole target list; an items
//! change bumps the key number's revision .0001 -> .0002), the documented conflict of
//! suspend/resume with other changes, `DELETE keys/<id>` (a second one, or any PUT after it:
//! 400 type 24204). Knobs: refuse a downgrade with a KA error body, change a key "in Partner
//! Central" behind the central's back, hold PUT answers (committed, answered later), and the
//! peak of requests in flight at once.
#![allow(dead_code)]
// Handlers return a ready error Response, as in the central.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use serde_json::{json, Value};

pub const USER: &str = "reseller-api";
pub const PASSWORD: &str = "s3cret-ka-password";
pub const OWNER: &str = "987654321";

#[derive(Debug, Clone)]
pub struct FakeKey {
    pub key_id: u64,
    pub key_number: String,
    pub activation_code: String,
    pub parent: Option<u64>,
    pub nickname: Option<String>,
    pub items: Vec<String>,
    pub terminated: bool,
    pub suspended: bool,
    pub expiration_date: String,
}

impl FakeKey {
    fn new(key_id: u64, key_number: String, parent: Option<u64>, nickname: Option<String>, items: Vec<String>) -> Self {
        FakeKey {
            key_id,
            key_number,
            activation_code: activation_code(key_id),
            parent,
            nickname,
            items,
            terminated: false,
            suspended: false,
            expiration_date: "2027-01-01T00:00:00.000Z".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub body: String,
}

#[derive(Default)]
struct Knobs {
    fail_next: Vec<u16>,
    delay: Duration,
    answer_create_after: Option<Duration>,
    /// The next create makes the key but answers 201 with a body no client can read.
    garble_next_create: bool,
    /// The next this many creates make their key and never answer (the client times out).
    lose_next_answers: usize,
    /// Percent of creates that make their key and never answer.
    lose_rate: u32,
    /// A create waits this long before it makes its key (KA slow on its side).
    commit_after: Duration,
    /// Every call answers 503 and changes nothing.
    down: bool,
    /// The search answers 200 with something that is not a list.
    garble_search: bool,
    /// How many creates made their key and lost their answer.
    lost: usize,
    /// A PUT of items containing this item is refused as a downgrade (KA's body below).
    refuse_downgrade_to: Option<String>,
    /// PUTs commit at once but are answered only when this turns false (or never).
    hold_puts: bool,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: usize,
    peak: usize,
}

struct Inner {
    /// The password KA accepts now (rotated by the reseller: the central's is then wrong).
    password: String,
    keys: Vec<FakeKey>,
    next_id: u64,
    items: BTreeSet<String>,
    calls: Vec<Call>,
    knobs: Knobs,
}

/// The running fake; dropped = stopped.
pub struct FakeKa {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

type Shared = Arc<Mutex<Inner>>;

impl FakeKa {
    /// Starts on 127.0.0.1:0 selling `items`; existing main keys can be added with [`add_key`].
    pub async fn start(items: &[&str]) -> FakeKa {
        let inner = Arc::new(Mutex::new(Inner {
            password: PASSWORD.to_string(),
            keys: Vec::new(),
            next_id: 12_000_001,
            items: items.iter().map(|s| s.to_string()).collect(),
            calls: Vec::new(),
            knobs: Knobs::default(),
        }));
        let api = Router::new()
            .route("/keys", get(search).post(create))
            .route("/keys/{id}", get(read).put(modify).delete(terminate));
        let app = Router::new()
            .nest("/30", api.clone())
            .nest("/jsonrest/business-partner/30", api)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        FakeKa {
            addr,
            inner,
            stop: Some(tx),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/30/", self.addr)
    }

    /// A main key that exists already (the customer's server), e.g. `PLSK.12345678.0001`.
    pub fn add_key(&self, key_number: &str) {
        let key_id = key_number[5..13].parse().unwrap();
        let mut inner = self.inner.lock().unwrap();
        inner.keys.push(FakeKey::new(
            key_id,
            key_number.to_string(),
            None,
            None,
            vec!["PLESK-12-WEB-HOST-1M".to_string()],
        ));
    }

    /// An extension key attached to `parent` (a key id), e.g. bought before; returns its id.
    pub fn add_child(&self, parent: u64, item: &str) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        let key_id = inner.next_id;
        inner.next_id += 1;
        inner.keys.push(FakeKey::new(
            key_id,
            format!("EXT.{key_id:08}.0001"),
            Some(parent),
            None,
            vec![item.to_string()],
        ));
        key_id
    }

    /// Changes a key "in Partner Central", behind the central's back (KA's fraud team
    /// suspending it, someone editing items there).
    pub fn change_by_hand(&self, key_id: u64, f: impl FnOnce(&mut FakeKey)) {
        let mut inner = self.inner.lock().unwrap();
        let k = inner.keys.iter_mut().find(|k| k.key_id == key_id).expect("no such key");
        f(k);
    }

    pub fn key(&self, key_id: u64) -> FakeKey {
        self.keys()
            .into_iter()
            .find(|k| k.key_id == key_id)
            .expect("no such key")
    }

    /// A PUT of items that contains `item` is refused as a downgrade; None: accepted.
    pub fn refuse_downgrade_to(&self, item: Option<&str>) {
        self.inner.lock().unwrap().knobs.refuse_downgrade_to = item.map(str::to_string);
    }

    /// PUTs commit at once but their answer waits while this is on.
    pub fn hold_puts(&self, on: bool) {
        self.inner.lock().unwrap().knobs.hold_puts = on;
    }

    /// The most requests that were ever being answered at once.
    pub fn peak_concurrency(&self) -> usize {
        self.inner.lock().unwrap().knobs.peak
    }

    /// Calls of this method to a path starting with `path` (e.g. "/keys/12345678").
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.method == method && (c.path == path || c.path.starts_with(&format!("{path}?"))))
            .count()
    }

    /// A key made earlier by someone (a decoy for the lookup): any nickname, parent and
    /// termination. Returns its key id.
    pub fn seed_key(&self, nickname: &str, parent: Option<u64>, terminated: bool) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        let key_id = inner.next_id;
        inner.next_id += 1;
        let mut key = FakeKey::new(
            key_id,
            format!("PLSK.{key_id:08}.0000"),
            parent,
            Some(nickname.to_string()),
            vec!["PLESK-12-WEB-HOST-1M".to_string()],
        );
        key.terminated = terminated;
        inner.keys.push(key);
        key_id
    }

    /// The password KA accepts from now on (the reseller rotated it; [`PASSWORD`] again: fixed).
    pub fn set_password(&self, password: &str) {
        self.inner.lock().unwrap().password = password.to_string();
    }

    /// The next `n` creates make their key and never answer.
    pub fn lose_next_answers(&self, n: usize) {
        self.inner.lock().unwrap().knobs.lose_next_answers = n;
    }

    /// This percentage of creates make their key and never answer.
    pub fn lose_answers_percent(&self, percent: u32) {
        self.inner.lock().unwrap().knobs.lose_rate = percent;
    }

    /// Creates take this long before the key is made (and answered).
    pub fn commit_creates_after(&self, after: Duration) {
        self.inner.lock().unwrap().knobs.commit_after = after;
    }

    /// How many creates made their key and never answered.
    pub fn lost_answers(&self) -> usize {
        self.inner.lock().unwrap().knobs.lost
    }

    /// KA down (every call 503) or back.
    pub fn set_down(&self, down: bool) {
        self.inner.lock().unwrap().knobs.down = down;
    }

    /// The search answers 200 with a body that is not a list of keys.
    pub fn garble_search(&self, on: bool) {
        self.inner.lock().unwrap().knobs.garble_search = on;
    }

    /// How many creates asked for this nickname (exactly), answered or not.
    pub fn creates_for(&self, nickname: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.method == "POST")
            .filter(|c| {
                serde_json::from_str::<Value>(&c.body)
                    .ok()
                    .and_then(|v| v["nickname"].as_str().map(str::to_string))
                    == Some(nickname.to_string())
            })
            .count()
    }

    /// The keys KA holds with this nickname exactly, terminated or not.
    pub fn keys_named(&self, nickname: &str) -> Vec<FakeKey> {
        self.keys()
            .into_iter()
            .filter(|k| k.nickname.as_deref() == Some(nickname))
            .collect()
    }

    pub fn keys(&self) -> Vec<FakeKey> {
        self.inner.lock().unwrap().keys.clone()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// The next `statuses.len()` calls answer these statuses (with an error body) and change nothing.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.inner.lock().unwrap().knobs.fail_next = statuses.iter().rev().copied().collect();
    }

    /// Every answer waits this long (a real KA takes ~200 ms).
    /// The next create makes its key but answers with a body that is not a key.
    pub fn garble_next_create(&self) {
        self.inner.lock().unwrap().knobs.garble_next_create = true;
    }

    pub fn set_delay(&self, delay: Duration) {
        self.inner.lock().unwrap().knobs.delay = delay;
    }

    /// Creates commit at once but are answered only after `after` (None: at once).
    pub fn answer_creates_after(&self, after: Option<Duration>) {
        self.inner.lock().unwrap().knobs.answer_create_after = after;
    }
}

impl Drop for FakeKa {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A code of the documented grammar, different for every key.
fn activation_code(key_id: u64) -> String {
    format!(
        "A{:05}-K{:05}-KSG046-H6BK67-1GE201",
        key_id % 100_000,
        (key_id / 7) % 100_000
    )
}

fn error(status: u16, kind: &str, message: &str, details: &str) -> Response {
    let body = json!({"code": status.to_string(), "type": kind, "message": message, "details": details});
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

fn key_json(k: &FakeKey, all: &[FakeKey]) -> Value {
    let ids = |k: &FakeKey| {
        json!({"keyId": k.key_id, "keyNumber": k.key_number, "activationCode": k.activation_code,
               "activationLink": format!("https://ka.example/activate/{}", k.activation_code)})
    };
    let parent = k.parent.and_then(|p| all.iter().find(|x| x.key_id == p)).map(ids);
    let children: Vec<Value> = all.iter().filter(|c| c.parent == Some(k.key_id)).map(ids).collect();
    json!({
        "ownerId": OWNER, "keyIdentifiers": ids(k), "parentKeyIdentifiers": parent,
        "childKeyIdentifiers": children, "activationInfo": {"activated": false, "uid": ""},
        "ipAddressBinding": null, "restrictIPBinding": false, "nickname": k.nickname,
        "productConfigurationId": null,
        "items": k.items.iter().map(|i| json!({"item": i, "externalId": null})).collect::<Vec<_>>(),
        "creationDate": "2026-12-01T00:00:00.000Z", "lastModificationDate": "2026-12-01T00:00:00.000Z",
        "updateDate": "2026-12-01T00:00:00.000Z", "expirationDate": k.expiration_date,
        "susExpirationDate": null, "susStatus": null, "status": status_of(k), "terminated": k.terminated,
        "suspended": k.suspended, "ownerSuspended": false, "autoRenew": true
    })
}

/// Records the call, checks Basic auth, applies the delay and `fail_next`; `Err` is the answer.
async fn prologue(
    state: &Shared,
    method: &str,
    path: String,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Response> {
    let delay = {
        let mut inner = state.lock().unwrap();
        inner.calls.push(Call {
            method: method.to_string(),
            path,
            body: String::from_utf8_lossy(body).into_owned(),
        });
        inner.knobs.in_flight += 1;
        inner.knobs.peak = inner.knobs.peak.max(inner.knobs.in_flight);
        inner.knobs.delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    // Counted while the answer is being made (the delay is most of it).
    state.lock().unwrap().knobs.in_flight -= 1;
    let (password, down) = {
        let inner = state.lock().unwrap();
        (inner.password.clone(), inner.knobs.down)
    };
    if down {
        return Err(error(
            503,
            "300",
            "Service temporarily unavailable",
            "KA is down (the fake's outage)",
        ));
    }
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return Err(error(401, "401", "Authentication failed", ""));
    }
    if let Some(status) = state.lock().unwrap().knobs.fail_next.pop() {
        return Err(error(status, "300", "Internal error", "injected by the fake"));
    }
    Ok(())
}

async fn create(
    State(state): State<Shared>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = prologue(&state, "POST", "/keys".into(), &headers, &body).await {
        return r;
    }
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(400, "100", "Malformed request", &e.to_string()),
    };
    let commit_after = state.lock().unwrap().knobs.commit_after;
    if !commit_after.is_zero() {
        tokio::time::sleep(commit_after).await;
    }
    let (answer, after, lose) = {
        let mut inner = state.lock().unwrap();
        match create_locked(&mut inner, &req) {
            Err(r) => return r,
            Ok(key) => {
                let all = inner.keys.clone();
                let k = &mut inner.knobs;
                let lose = if k.lose_next_answers > 0 {
                    k.lose_next_answers -= 1;
                    true
                } else {
                    fastrand::u32(0..100) < k.lose_rate
                };
                k.lost += lose as usize;
                (key_json(&key, &all), k.answer_create_after, lose)
            }
        }
    };
    if lose {
        // Committed, and the answer never comes: the client's timeout ends the call.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if let Some(after) = after {
        tokio::time::sleep(after).await;
    }
    if std::mem::take(&mut state.lock().unwrap().knobs.garble_next_create) {
        return (StatusCode::CREATED, "<html><body>502 Bad Gateway</body></html>").into_response();
    }
    let location = format!(
        "https://api.central.plesk.com/30/keys/{}",
        answer["keyIdentifiers"]["keyId"]
    );
    let with_body = matches!(q.get("return-key-state").map(String::as_str), Some("yes" | "true"));
    let mut response = if with_body {
        (StatusCode::CREATED, axum::Json(answer)).into_response()
    } else {
        StatusCode::CREATED.into_response()
    };
    response.headers_mut().insert("location", location.parse().unwrap());
    response
}

fn create_locked(inner: &mut Inner, req: &Value) -> Result<FakeKey, Response> {
    if req.get("ownerId").and_then(Value::as_str) != Some(OWNER) {
        return Err(error(400, "201", "ownerId is mandatory for a reseller account", ""));
    }
    if let Some(ids) = req.get("keyIdentifiers") {
        if ids.as_object().is_none_or(|o| !o.is_empty()) {
            return Err(error(400, "100", "keyIdentifiers must be omitted on create", ""));
        }
    }
    let items: Vec<String> = req
        .get("items")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| i.get("item")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if items.is_empty() {
        return Err(error(400, "100", "items are mandatory", ""));
    }
    if let Some(unknown) = items.iter().find(|i| !inner.items.contains(*i)) {
        return Err(error(400, "233", "Unknown item", &format!("item = {unknown}")));
    }
    let parent = match req.get("parentKeyIdentifiers") {
        None | Some(Value::Null) => None,
        Some(p) => {
            let found = inner.keys.iter().find(|k| {
                p.get("keyId").and_then(Value::as_u64) == Some(k.key_id)
                    || p.get("keyNumber").and_then(Value::as_str) == Some(k.key_number.as_str())
            });
            match found {
                None => return Err(error(400, "220", "Parent key not found", &p.to_string())),
                Some(k) if k.terminated => return Err(error(
                    400,
                    "24204",
                    "The license key is detected as terminated. No further actions with this license key are allowed",
                    &format!("Key number = {}.", k.key_number),
                )),
                Some(k) => Some(k.key_id),
            }
        }
    };
    let key_id = inner.next_id;
    inner.next_id += 1;
    let prefix = if parent.is_some() { "EXT" } else { "PLSK" };
    let key = FakeKey::new(
        key_id,
        format!("{prefix}.{key_id:08}.0000"),
        parent,
        req.get("nickname").and_then(Value::as_str).map(str::to_string),
        items,
    );
    inner.keys.push(key.clone());
    Ok(key)
}

/// KA's `status` value set is not documented [guess: the search filter's values, upper case].
fn status_of(k: &FakeKey) -> &'static str {
    if k.terminated {
        "TERMINATED"
    } else if k.suspended {
        "SUSPENDED"
    } else {
        "ACTIVE"
    }
}

fn terminated_error(k: &FakeKey) -> Response {
    error(
        400,
        "24204",
        "The license key is detected as terminated. No further actions with this license key are allowed",
        &format!("Key number = {}.", k.key_number),
    )
}

/// `.0001` -> `.0002`: the revision changes on upgrades while the 8-digit number stays.
fn bump_revision(key_number: &str) -> String {
    match key_number.rsplit_once('.') {
        Some((head, rev)) if rev.len() == 4 => {
            let n: u32 = rev.parse().unwrap_or(0);
            format!("{head}.{:04}", n + 1)
        }
        _ => key_number.to_string(),
    }
}

async fn modify(State(state): State<Shared>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = prologue(&state, "PUT", format!("/keys/{id}"), &headers, &body).await {
        return r;
    }
    let req: Value = match serde_json::from_slice(&body) {
        Ok(Value::Object(o)) => Value::Object(o),
        Ok(_) => return error(400, "100", "Malformed request", "not a license key structure"),
        Err(e) => return error(400, "100", "Malformed request", &e.to_string()),
    };
    let (answer, hold) = {
        let mut inner = state.lock().unwrap();
        let refuse = inner.knobs.refuse_downgrade_to.clone();
        let Some(idx) = inner
            .keys
            .iter()
            .position(|k| k.key_id.to_string() == id || k.activation_code == id)
        else {
            return error(404, "220", "License key not found", &format!("Key = {id}."));
        };
        if inner.keys[idx].terminated {
            return terminated_error(&inner.keys[idx]);
        }
        // Documented: keyIdentifiers, when sent, are checked against the stored key.
        if let Some(ids) = req.get("keyIdentifiers") {
            let k = &inner.keys[idx];
            let wrong = ids.get("keyId").and_then(Value::as_u64).is_some_and(|v| v != k.key_id)
                || ids
                    .get("keyNumber")
                    .and_then(Value::as_str)
                    .is_some_and(|v| v != k.key_number);
            if wrong {
                return error(
                    400,
                    "100",
                    "keyIdentifiers do not match the key",
                    &format!("Key = {id}."),
                );
            }
        }
        // Documented: `suspended` as a boolean; Plesk's own modules send "true"/"false".
        let suspended = match req.get("suspended") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if s == "true" => Some(true),
            Some(Value::String(s)) if s == "false" => Some(false),
            Some(other) => return error(400, "100", "Malformed request", &format!("suspended = {other}")),
        };
        let items: Option<Vec<String>> = match req.get("items") {
            None => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .filter_map(|i| i.get("item")?.as_str().map(str::to_string))
                    .collect(),
            ),
            Some(other) => return error(400, "100", "Malformed request", &format!("items = {other}")),
        };
        // Documented conflict: suspend/resume cannot share a PUT with other changes except
        // nickname / autoRenew [doc 77846]; the error body's type is a guess.
        if suspended.is_some() && (items.is_some() || req.get("parentKeyIdentifiers").is_some()) {
            return error(
                400,
                "100",
                "Conflicting operations in one request",
                "suspend/resume with other changes",
            );
        }
        if let Some(items) = &items {
            if items.is_empty() {
                return error(400, "100", "items are mandatory", "");
            }
            if let Some(unknown) = items.iter().find(|i| !inner.items.contains(*i)) {
                return error(400, "233", "Unknown item", &format!("item = {unknown}"));
            }
            // [guess] The downgrade refusal's wording and type are not documented; Plesk's
            // READMEs say only that KA restricts downgrades.
            if refuse.as_ref().is_some_and(|r| items.contains(r)) {
                return error(
                    400,
                    "24310",
                    "Downgrade of the license key is not allowed",
                    &format!("Key number = {}.", inner.keys[idx].key_number),
                );
            }
        }
        let k = &mut inner.keys[idx];
        if let Some(s) = suspended {
            k.suspended = s;
        }
        if let Some(items) = items {
            if items != k.items {
                k.items = items;
                k.key_number = bump_revision(&k.key_number);
            }
        }
        let k = k.clone();
        (key_json(&k, &inner.keys), inner.knobs.hold_puts)
    };
    if hold {
        // Committed; the answer waits until the knob is off (or the client gives up).
        while state.lock().unwrap().knobs.hold_puts {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    axum::Json(answer).into_response()
}

async fn terminate(State(state): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(r) = prologue(&state, "DELETE", format!("/keys/{id}"), &headers, b"").await {
        return r;
    }
    let mut inner = state.lock().unwrap();
    let Some(idx) = inner
        .keys
        .iter()
        .position(|k| k.key_id.to_string() == id || k.activation_code == id)
    else {
        return error(404, "220", "License key not found", &format!("Key = {id}."));
    };
    if inner.keys[idx].terminated {
        return terminated_error(&inner.keys[idx]);
    }
    // Documented: terminate does not cascade to attached keys.
    inner.keys[idx].terminated = true;
    let k = inner.keys[idx].clone();
    axum::Json(key_json(&k, &inner.keys)).into_response()
}

async fn read(State(state): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(r) = prologue(&state, "GET", format!("/keys/{id}"), &headers, b"").await {
        return r;
    }
    let inner = state.lock().unwrap();
    let found = inner
        .keys
        .iter()
        .find(|k| k.key_id.to_string() == id || k.activation_code == id);
    match found {
        Some(k) => axum::Json(key_json(k, &inner.keys)).into_response(),
        None => error(404, "220", "License key not found", &format!("Key = {id}.")),
    }
}

async fn search(
    State(state): State<Shared>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!(
        "/keys?{}",
        q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
    );
    if let Err(r) = prologue(&state, "GET", path, &headers, b"").await {
        return r;
    }
    let inner = state.lock().unwrap();
    if inner.knobs.garble_search {
        return (StatusCode::OK, axum::Json(json!({"keys": "a proxy's idea of a list"}))).into_response();
    }
    // KA's docs do not say how the nickname filter matches [guess]: the fake matches
    // substrings and ignores case, the loosest reading, so only the central's own exact
    // comparison keeps an order from adopting another order's key.
    let matches = |k: &FakeKey, n: &str| {
        k.nickname
            .as_deref()
            .is_some_and(|nick| nick.to_lowercase().contains(&n.to_lowercase()))
    };
    let list: Vec<Value> = inner
        .keys
        .iter()
        .filter(|k| q.get("nickname").is_none_or(|n| matches(k, n)))
        .map(|k| json!({"ownerId": OWNER, "keyId": k.key_id, "parentKeyId": k.parent, "isEls": false, "lastReportingOs": null}))
        .collect();
    axum::Json(Value::Array(list)).into_response()
}
