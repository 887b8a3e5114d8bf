//! Licenses end to end (contract section 9) with real processes: the central binary, the
//! real agent with the stand-in plesk, and the fake KA in this test process (on its own
//! runtime), on SQLite and PostgreSQL.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::agent::Agent;
use support::central::Central;
use support::fake_ka::{self, FakeKa};
use support::wait_for;

const PLESK_ITEM: &str = "PLESK-12-WEB-HOST-1M";
const PLESK_PRO: &str = "PLESK-12-WEB-PRO-1M";
const PLESK_ADMIN: &str = "PLESK-12-WEB-ADMIN-1M";
const EXT_ITEM: &str = "ADD-SEO-TOOLKIT-1M";
const KN: &str = "PLSK.12345678.0001";
const KEY: &str = "12345678";

struct Ka {
    ka: FakeKa,
    _rt: tokio::runtime::Runtime,
}

fn fake_ka() -> Ka {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ka = rt.block_on(FakeKa::start(&[PLESK_ITEM, PLESK_PRO, PLESK_ADMIN, EXT_ITEM]));
    ka.add_key(KN);
    Ka { ka, _rt: rt }
}

fn config(root: &Path, ka: &FakeKa, ka_extra: &str) -> String {
    let pw = root.join("ka.password");
    std::fs::write(&pw, format!("{}\n", fake_ka::PASSWORD)).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "[ka]\nurl = {}\nusername = {}\npassword_file = {}\nowner_id = {}\nplesk_item = {PLESK_ITEM}\ntimeout = 5\n{ka_extra}\n\
         [sell]\nseo-toolkit = {EXT_ITEM}\n",
        ka.base_url(),
        fake_ka::USER,
        pw.display(),
        fake_ka::OWNER
    )
}

/// A central with host `web-1` (agent running, key [`KN`] reported) and the main key
/// adopted as a license.
fn fleet(dir: &Path, ka: &FakeKa, db: &support::TestDb, ka_extra: &str) -> (Central, Agent) {
    let root = dir.join("central");
    let mut central = Central::on(&root, &config(dir, ka, ka_extra), &db.url(&root));
    central.start();
    central.pin_port();
    let token = central.add_host("web-1", &[])["token"].as_str().unwrap().to_string();
    let mut agent = Agent::new(&dir.join("agent"), &central.url(), "web-1", &token, 25, "");
    agent.set_key("PLSK123456780001");
    agent.start();
    wait_for(30, "the host's key number", || {
        (central.json(&["hosts", "show", "web-1"])["key_number"] == KN).then_some(())
    });
    let adopted = central.json(&["licenses", "adopt", "--key-number", KN]);
    assert_eq!(adopted["id"], 12345678, "{adopted}");
    assert_eq!(adopted["host"], "web-1", "{adopted}");
    assert_eq!(adopted["kind"], "plesk");
    assert_eq!(adopted["state"], "active");
    (central, agent)
}

fn wait_op(central: &Central, license: &str, op: &str, state: &str) -> Value {
    wait_for(60, &format!("operation {op} {state}"), || {
        let l = central.json(&["licenses", "show", license]);
        let o = l["operations"].as_array()?.iter().find(|o| o["id"] == op)?.clone();
        (o["state"] == state).then_some(o)
    })
}

/// The stand-in ran `license --retrieve` this many times in all.
fn wait_retrieves(agent: &Agent, n: usize) {
    wait_for(30, &format!("{n} retrieves on web-1"), || {
        let calls = agent.license_calls();
        let r = calls.iter().filter(|c| *c == "bin license --retrieve").count();
        assert!(r <= n, "more retrieves than operations: {calls:?}");
        (r == n).then_some(())
    });
}

fn puts(ka: &FakeKa) -> usize {
    ka.count("PUT", &format!("/keys/{KEY}"))
}

on_both! {
#[test]
fn each_operation_changes_ka_and_the_server_retrieves_its_keys(db) {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    let (central, agent) = fleet(dir.path(), &ka.ka, &db, "");

    // Suspend: KA's key suspended, then `license --retrieve` on web-1 with the op id as the
    // job's idempotency key.
    let op = central.json(&["licenses", "suspend", KEY, "--op-id", "s-1"]);
    assert_eq!(op["state"], "pending", "{op}");
    wait_op(&central, KEY, "s-1", "done");
    assert!(ka.ka.key(12345678).suspended);
    // The job is queued just after the operation is done.
    let done = wait_for(30, "the job of s-1", || {
        let o = central.json(&["licenses", "show", KEY])["operations"][0].clone();
        o["job_id"].is_string().then_some(o)
    });
    wait_retrieves(&agent, 1);
    let job = central.json(&["jobs", "show", done["job_id"].as_str().unwrap()]);
    assert_eq!(job["host"], "web-1");
    assert_eq!(job["type"], "retrieve_keys");
    assert_eq!(job["idempotency_key"], "s-1");
    assert_eq!(central.json(&["licenses", "show", KEY])["state"], "suspended");

    // Resume.
    central.json(&["licenses", "resume", KN, "--op-id", "r-1"]);
    wait_op(&central, KEY, "r-1", "done");
    assert!(!ka.ka.key(12345678).suspended);
    wait_retrieves(&agent, 2);

    // Change: the whole target list; KA bumps the revision, the central shows it. The
    // stand-in's key becomes .0002 as Plesk's would once it retrieved the changed key; the
    // agent reads it again after the job and reports it.
    agent.set_key("PLSK123456780002");
    central.json(&["licenses", "change", KEY, "--items", &format!("{PLESK_PRO},{EXT_ITEM}"), "--op-id", "c-1"]);
    wait_op(&central, KEY, "c-1", "done");
    let k = ka.ka.key(12345678);
    assert_eq!(k.items, vec![PLESK_PRO.to_string(), EXT_ITEM.to_string()]);
    assert_eq!(k.key_number, "PLSK.12345678.0002");
    wait_retrieves(&agent, 3);
    let l = central.json(&["licenses", "show", KEY]);
    assert_eq!(l["key_number"], "PLSK.12345678.0002", "{l}");
    assert_eq!(l["items"], serde_json::json!([PLESK_PRO, EXT_ITEM]));
    let text = wait_for(30, "the server's .0002 reported", || {
        let text = String::from_utf8_lossy(&central.cli(&["licenses", "show", KEY]).stdout).into_owned();
        text.contains("the server has PLSK.12345678.0002").then_some(text)
    });
    assert!(
        text.contains("key revision: KA has PLSK.12345678.0002, the server has PLSK.12345678.0002"),
        "{text}"
    );

    // A downgrade KA refuses: failed with KA's message verbatim, no host job.
    ka.ka.refuse_downgrade_to(Some(PLESK_ADMIN));
    central.json(&["licenses", "change", KEY, "--items", PLESK_ADMIN, "--op-id", "c-2"]);
    let failed = wait_op(&central, KEY, "c-2", "failed");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("Downgrade of the license key is not allowed"), "{error}");
    assert!(failed["job_id"].is_null(), "{failed}");
    std::thread::sleep(Duration::from_millis(500));
    wait_retrieves(&agent, 3);
    assert_eq!(ka.ka.key(12345678).items, vec![PLESK_PRO.to_string(), EXT_ITEM.to_string()]);
    let shown = String::from_utf8_lossy(&central.cli(&["licenses", "show", KEY]).stdout).into_owned();
    assert!(shown.contains("Downgrade of the license key is not allowed"), "{shown}");

    // --no-retrieve: KA changes, the host is not told.
    central.json(&["licenses", "suspend", KEY, "--op-id", "s-2", "--no-retrieve"]);
    let quiet = wait_op(&central, KEY, "s-2", "done");
    assert!(quiet["job_id"].is_null());
    assert!(ka.ka.key(12345678).suspended);

    // Refresh reads only.
    let gets = ka.ka.count("GET", &format!("/keys/{KEY}"));
    central.json(&["licenses", "refresh", KEY, "--op-id", "f-1"]);
    wait_op(&central, KEY, "f-1", "done");
    assert_eq!(ka.ka.count("GET", &format!("/keys/{KEY}")), gets + 1);
    let mutations = ka.ka.calls().iter().filter(|c| c.method == "PUT" || c.method == "DELETE").count();
    assert_eq!(mutations, 5, "{:?}", ka.ka.calls());

    // The store hears of each change once, in order, as events (contract section 11); the
    // refresh changed nothing and makes none.
    let events = central.json(&["events", "list"]);
    let license_events: Vec<(String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("license."))
        .map(|e| (e["type"].as_str().unwrap().to_string(), e["data"]["operation"].as_str().unwrap().to_string()))
        .collect();
    let expected: Vec<(String, String)> = [
        ("license.suspended", "s-1"),
        ("license.resumed", "r-1"),
        ("license.changed", "c-1"),
        ("license.operation_failed", "c-2"),
        ("license.suspended", "s-2"),
    ]
    .iter()
    .map(|(t, o)| (t.to_string(), o.to_string()))
    .collect();
    assert_eq!(license_events, expected, "{events}");
    let changed = events.as_array().unwrap().iter().find(|e| e["type"] == "license.changed").unwrap();
    assert_eq!(changed["data"]["license"], 12345678, "{changed}");
    assert_eq!(changed["data"]["key_number"], "PLSK.12345678.0002", "{changed}");
}
}

on_both! {
#[test]
fn terminate_refuses_a_main_license_with_extensions_unless_asked_then_children_first(db) {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    let child = ka.ka.add_child(12345678, EXT_ITEM);
    let (central, agent) = fleet(dir.path(), &ka.ka, &db, "");
    let adopted = central.json(&["licenses", "adopt", "--key-id", &child.to_string()]);
    assert_eq!(adopted["kind"], "extension");
    assert_eq!(adopted["parent"], 12345678);
    assert_eq!(adopted["host"], "web-1", "the parent's host: {adopted}");

    let out = central.cli(&["licenses", "terminate", KEY, "--op-id", "t-1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("license 12345678 has active extension licenses {child}")) && err.contains("--with-extensions"),
        "{err}"
    );
    assert_eq!(ka.ka.calls().iter().filter(|c| c.method == "DELETE").count(), 0);

    central.json(&["licenses", "terminate", KEY, "--op-id", "t-2", "--with-extensions"]);
    wait_op(&central, KEY, "t-2", "done");
    let deletes: Vec<String> = ka.ka.calls().into_iter().filter(|c| c.method == "DELETE").map(|c| c.path).collect();
    assert_eq!(deletes, vec![format!("/keys/{child}"), format!("/keys/{KEY}")], "children first");
    assert!(ka.ka.key(child).terminated && ka.ka.key(12345678).terminated);
    let c = central.json(&["licenses", "show", &child.to_string()]);
    assert_eq!(c["state"], "terminated");
    assert_eq!(c["operations"][0]["id"], format!("t-2.x{child}"));
    // Each operation its own host job: both retrieve on web-1.
    wait_retrieves(&agent, 2);

    // Terminated: everything but refresh is refused with a sentence.
    let out = central.cli(&["licenses", "resume", KEY]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("license 12345678 is terminated: only refresh is possible"), "{err}");
    central.json(&["licenses", "refresh", KEY, "--op-id", "f-9"]);
    wait_op(&central, KEY, "f-9", "done");
}
}

on_both! {
#[test]
fn the_same_operation_id_five_times_and_concurrently_makes_one_ka_call(db) {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    ka.ka.set_delay(Duration::from_millis(200));
    let (central, agent) = fleet(dir.path(), &ka.ka, &db, "");

    let first = central.json(&["licenses", "suspend", KEY, "--op-id", "same-1"]);
    for _ in 0..4 {
        let again = central.json(&["licenses", "suspend", KEY, "--op-id", "same-1"]);
        assert_eq!(again["id"], first["id"]);
    }
    wait_op(&central, KEY, "same-1", "done");
    assert_eq!(puts(&ka.ka), 1, "{:?}", ka.ka.calls());

    // Five at once with a new id: one operation, one KA call.
    let answers: Vec<Value> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..5)
            .map(|_| s.spawn(|| central.json(&["licenses", "resume", KEY, "--op-id", "same-2"])))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|a| a["id"] == "same-2"), "{answers:?}");
    wait_op(&central, KEY, "same-2", "done");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(puts(&ka.ka), 2, "{:?}", ka.ka.calls());
    wait_retrieves(&agent, 2);
    let ops = central.json(&["licenses", "show", KEY])["operations"].as_array().unwrap().len();
    assert_eq!(ops, 2);

    // The same id for another operation is refused, and so is a second one meanwhile.
    let out = central.cli(&["licenses", "suspend", KEY, "--op-id", "same-2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("operation same-2 exists already"));
    ka.ka.hold_puts(true);
    central.json(&["licenses", "suspend", KEY, "--op-id", "slow-1"]);
    let out = central.cli(&["licenses", "change", KEY, "--items", PLESK_PRO]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("license 12345678 has operation slow-1 (suspend) pending"), "{err}");
    ka.ka.hold_puts(false);
    wait_op(&central, KEY, "slow-1", "done");
}
}

on_both! {
#[test]
fn a_central_killed_while_ka_holds_the_answer_ends_done_after_restart(db) {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    let (mut central, agent) = fleet(dir.path(), &ka.ka, &db, "");

    ka.ka.hold_puts(true);
    central.json(&["licenses", "suspend", KEY, "--op-id", "k-1"]);
    wait_for(30, "KA to have suspended the key", || ka.ka.key(12345678).suspended.then_some(()));
    central.kill();
    ka.ka.hold_puts(false);
    central.start();

    let done = wait_op(&central, KEY, "k-1", "done");
    assert_eq!(done["ka_attempts"], 1, "settled by reading back, not a second PUT: {done}");
    assert_eq!(puts(&ka.ka), 1, "{:?}", ka.ka.calls());
    assert!(ka.ka.key(12345678).suspended);
    assert_eq!(central.json(&["licenses", "show", KEY])["state"], "suspended");
    wait_retrieves(&agent, 1);
}
}

on_both! {
#[test]
fn reconcile_finds_a_key_suspended_in_ka_by_hand_as_drift(db) {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    let (central, _agent) = fleet(dir.path(), &ka.ka, &db, "reconcile_interval = 2\n");

    ka.ka.change_by_hand(12345678, |k| k.suspended = true);
    let l = wait_for(30, "the drift recorded", || {
        let l = central.json(&["licenses", "show", KEY]);
        l["drift"].is_string().then_some(l)
    });
    assert_eq!(l["state"], "suspended", "{l}");
    assert!(l["drift"].as_str().unwrap().contains("KA has the key suspended, the central expected active"), "{l}");
    assert_eq!(l["ka"]["suspended"], true);
    let metrics = support::http::request(&central.addr, "GET", "/metrics", None, &[], b"").body;
    assert!(metrics.contains("central_license_drift 1"), "{metrics}");
    assert!(metrics.contains("central_licenses{state=\"suspended\"} 1"), "{metrics}");
    // Reconcile reads; it never answers with a change of its own.
    assert!(ka.ka.calls().iter().all(|c| c.method == "GET"), "{:?}", ka.ka.calls());
    let drift = central.json(&["events", "list", "--type", "license.drift"]);
    assert_eq!(drift.as_array().unwrap().len(), 1, "{drift}");
    assert_eq!(drift[0]["data"]["license"], 12345678, "{drift}");
    assert_eq!(drift[0]["data"]["state"], "suspended", "{drift}");
}
}

on_both! {
#[test]
fn an_order_that_ka_answered_makes_a_license(db) {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    let (central, agent) = fleet(dir.path(), &ka.ka, &db, "");
    central.json(&["orders", "add", "--order-id", "ord-7", "--key-number", KN, "--extension", "seo-toolkit"]);
    let o = wait_for(60, "the order done", || {
        let o = central.json(&["orders", "show", "ord-7"]);
        (o["state"] == "done").then_some(o)
    });
    let id = o["ka_key_id"].to_string();
    let l = central.json(&["licenses", "show", &id]);
    assert_eq!(l["kind"], "extension");
    assert_eq!(l["order"], "ord-7");
    assert_eq!(l["parent"], 12345678);
    assert_eq!(l["host"], "web-1");
    assert_eq!(l["items"], serde_json::json!([EXT_ITEM]));
    let main = central.json(&["licenses", "show", KEY]);
    assert_eq!(main["children"], serde_json::json!([o["ka_key_id"]]));
    let list = central.json(&["licenses", "list", "--host", "web-1"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    wait_retrieves(&agent, 1);
}
}

on_both! {
#[tokio::test]
async fn the_migration_makes_a_license_of_every_order_that_ka_answered(db) {
    let dir = tempfile::tempdir().unwrap();
    let url = db.url(dir.path());
    // The schema as it was before licenses: migrations 0001-0004 only.
    let old = dir.path().join("old-migrations");
    std::fs::create_dir_all(&old).unwrap();
    let all = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for e in std::fs::read_dir(&all).unwrap().flatten() {
        let name = e.file_name().into_string().unwrap();
        if name.as_str() < "0005" {
            std::fs::copy(e.path(), old.join(&name)).unwrap();
        }
    }
    let d = plesk_reseller_central::db::connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(old.as_path()).await.unwrap().run(&d.pool).await.unwrap();
    type OldOrder<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, Option<i64>, Option<&'a str>);
    let orders: [OldOrder; 4] = [
        ("ord-a", "plesk", None, "done", Some(12_000_001), Some("PLSK.12000001.0000")),
        ("ord-b", "extension", Some(KN), "queued", Some(12_000_002), Some("EXT.12000002.0000")),
        ("ord-c", "plesk", None, "pending", None, None),
        ("ord-d", "extension", Some(KN), "failed", None, None),
    ];
    for (id, kind, kn, state, key_id, key_number) in orders {
        sqlx::query(
            "INSERT INTO orders (id, kind, host_id, key_number, ka_item, state, ka_attempts, ka_key_id, ka_key_number, \
             created_at, updated_at) VALUES ($1, $2, 'web-1', $3, $4, $5, 1, $6, $7, 1000, 2000)",
        )
        .bind(id)
        .bind(kind)
        .bind(kn)
        .bind(if kind == "plesk" { PLESK_ITEM } else { EXT_ITEM })
        .bind(state)
        .bind(key_id)
        .bind(key_number)
        .execute(&d.pool)
        .await
        .unwrap();
    }
    d.migrate().await.unwrap();
    type Row = (i64, String, String, String, Option<i64>, Option<String>, String, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, key_number, kind, items, parent_id, host_id, state, order_id FROM licenses ORDER BY id",
    )
    .fetch_all(&d.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            (12_000_001, "PLSK.12000001.0000".into(), "plesk".into(), format!("[\"{PLESK_ITEM}\"]"), None,
             Some("web-1".into()), "active".into(), Some("ord-a".into())),
            (12_000_002, "EXT.12000002.0000".into(), "extension".into(), format!("[\"{EXT_ITEM}\"]"), Some(12_345_678),
             Some("web-1".into()), "active".into(), Some("ord-b".into())),
        ]
    );
    d.close().await;
}
}
