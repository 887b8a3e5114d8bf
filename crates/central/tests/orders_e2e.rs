//! Orders end to end with real processes: the central binary, the real agent with the
//! stand-in plesk, and the fake KA in this test process (on its own runtime).

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
const EXT_ITEM: &str = "ADD-SEO-TOOLKIT-1M";
const KN: &str = "PLSK.12345678.0001";

/// The fake KA on a runtime of its own, so the test itself stays plain threads.
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
    let ka = rt.block_on(FakeKa::start(&[PLESK_ITEM, EXT_ITEM]));
    Ka { ka, _rt: rt }
}

fn config(root: &Path, ka: &FakeKa) -> String {
    config_timeout(root, ka, 5)
}

/// The config with KA's per-request timeout set to `timeout` seconds.
fn config_timeout(root: &Path, ka: &FakeKa, timeout: u64) -> String {
    let pw = root.join("ka.password");
    std::fs::write(&pw, format!("{}\n", fake_ka::PASSWORD)).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "[ka]\nurl = {}\nusername = {}\npassword_file = {}\nowner_id = {}\nplesk_item = {PLESK_ITEM}\ntimeout = {timeout}\n\
         [store]\nbuy_redirect = https://shop.example.com/cart?ext={{extension-id}}&kn={{kn}}&host={{host}}\n\
         [sell]\nseo-toolkit = {EXT_ITEM}\nnot-at-ka = ADD-UNKNOWN-1M\n",
        ka.base_url(),
        fake_ka::USER,
        pw.display(),
        fake_ka::OWNER
    )
}

/// A central with one host `web-1` whose agent runs and has reported key number [`KN`].
fn fleet(dir: &Path, ka: &FakeKa, db: &support::TestDb) -> (Central, Agent) {
    fleet_with(dir, &config(dir, ka), db)
}

fn fleet_with(dir: &Path, config: &str, db: &support::TestDb) -> (Central, Agent) {
    let root = dir.join("central");
    let mut central = Central::on(&root, config, &db.url(&root));
    central.start();
    central.pin_port();
    let token = central.add_host("web-1", &[])["token"].as_str().unwrap().to_string();
    let mut agent = Agent::new(&dir.join("agent"), &central.url(), "web-1", &token, 25, "");
    agent.set_key("PLSK123456780001");
    agent.start();
    wait_for(30, "the host's key number", || {
        (central.json(&["hosts", "show", "web-1"])["key_number"] == KN).then_some(())
    });
    (central, agent)
}

fn wait_order(central: &Central, id: &str, state: &str) -> Value {
    wait_for(60, &format!("order {id} {state}"), || {
        let o = central.json(&["orders", "show", id]);
        (o["state"] == state).then_some(o)
    })
}

fn creates(ka: &FakeKa) -> usize {
    ka.calls().iter().filter(|c| c.method == "POST").count()
}

on_both! {
#[test]
fn a_plesk_order_installs_the_code_ka_returned_and_a_repeat_buys_nothing(db) {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    let (central, agent) = fleet(dir.path(), &ka.ka, &db);

    let added = central.json(&["orders", "add", "--order-id", "ord-1", "--host", "web-1", "--plesk"]);
    assert_eq!(added["state"], "pending", "{added}");
    let done = wait_order(&central, "ord-1", "done");
    let keys = ka.ka.keys();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].nickname.as_deref(), Some("ord-1"));
    assert_eq!(keys[0].items, vec![PLESK_ITEM.to_string()]);
    assert_eq!(done["ka_key_number"], keys[0].key_number.as_str());
    assert_eq!(
        agent.license_calls(),
        vec![format!("bin license -i {}", keys[0].activation_code)]
    );
    let job = central.json(&["jobs", "show", done["job_id"].as_str().unwrap()]);
    assert_eq!(job["host"], "web-1");
    assert_eq!(job["idempotency_key"], "ord-1");
    assert_eq!(job["state"], "succeeded");

    // The same order again: the same order, no second key, no second job.
    let again = central.json(&["orders", "add", "--order-id", "ord-1", "--host", "web-1", "--plesk"]);
    assert_eq!(again["state"], "done");
    assert_eq!(again["job_id"], done["job_id"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(creates(&ka.ka), 1);
    assert_eq!(central.json(&["jobs", "list"]).as_array().unwrap().len(), 1);
    // The same id with other parameters is refused, naming the order.
    let out = central.cli(&[
        "orders",
        "add",
        "--order-id",
        "ord-1",
        "--key-number",
        KN,
        "--extension",
        "seo-toolkit",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("order ord-1 exists already with other parameters"),
        "{err}"
    );
    // The code KA gave leaves the database once the job has ended.
    let code = keys[0].activation_code.clone();
    wait_for(10, "the code erased from the database files", || {
        (!support::files_hold(&central.db_files(), &code)).then_some(())
    });
    let text = String::from_utf8_lossy(&central.cli(&["orders", "list"]).stdout).into_owned();
    assert!(text.contains("ord-1\tdone\tplesk\tweb-1"), "{text}");
}
}

on_both! {
#[test]
fn an_extension_order_attaches_to_the_main_key_and_the_agent_retrieves_it(db) {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    ka.ka.add_key(KN);
    let (central, agent) = fleet(dir.path(), &ka.ka, &db);

    // Not in [sell]: refused before any KA call.
    let out = central.cli(&[
        "orders",
        "add",
        "--order-id",
        "ord-x",
        "--key-number",
        KN,
        "--extension",
        "other-ext",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"other-ext\" is not in the [sell] list"), "{err}");
    assert!(ka.ka.calls().is_empty(), "{:?}", ka.ka.calls());

    // KA down once (503): the order stays pending with the error shown, then succeeds.
    ka.ka.fail_next(&[503]);
    central.json(&[
        "orders",
        "add",
        "--order-id",
        "ord-2",
        "--key-number",
        "plsk123456780001",
        "--extension",
        "seo-toolkit",
    ]);
    let done = wait_order(&central, "ord-2", "done");
    assert_eq!(done["ka_attempts"], 2, "{done}");
    assert_eq!(done["host"], "web-1");
    let ext: Vec<_> = ka.ka.keys().into_iter().filter(|k| k.parent.is_some()).collect();
    assert_eq!(ext.len(), 1);
    assert_eq!(ext[0].parent, Some(12345678));
    assert_eq!(ext[0].items, vec![EXT_ITEM.to_string()]);
    assert_eq!(agent.license_calls(), vec!["bin license --retrieve".to_string()]);

    // KA's final word (an item it does not know) fails the order with KA's body verbatim.
    central.json(&[
        "orders",
        "add",
        "--order-id",
        "ord-3",
        "--key-number",
        KN,
        "--extension",
        "not-at-ka",
    ]);
    let failed = wait_order(&central, "ord-3", "failed");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("\"type\":\"233\"") && error.contains("ADD-UNKNOWN-1M"),
        "{error}"
    );
    assert!(failed["job_id"].is_null());
    let shown = String::from_utf8_lossy(&central.cli(&["orders", "show", "ord-3"]).stdout).into_owned();
    assert!(
        shown.contains("order ord-3: failed") && shown.contains("Unknown item"),
        "{shown}"
    );
    let metrics = support::http::request(&central.addr, "GET", "/metrics", None, &[], b"").body;
    assert!(metrics.contains("central_orders{state=\"done\"} 1"), "{metrics}");
    assert!(metrics.contains("central_orders{state=\"failed\"} 1"), "{metrics}");
    assert!(metrics.contains("central_ka_errors_total 2"), "{metrics}");
    let calls = format!("central_ka_calls_total {}", ka.ka.calls().len());
    assert!(metrics.contains(&calls), "{calls}: {metrics}");
    assert_eq!(metrics.matches("# TYPE central_ka_calls_total").count(), 1, "{metrics}");
}
}

on_both! {
#[test]
fn a_central_killed_while_ka_answers_resumes_and_queues_the_job_once(db) {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    let (mut central, agent) = fleet(dir.path(), &ka.ka, &db);

    // KA makes the key at once but its answer comes only after the central is gone.
    ka.ka.answer_creates_after(Some(Duration::from_secs(30)));
    central.json(&["orders", "add", "--order-id", "ord-9", "--host", "web-1", "--plesk"]);
    wait_for(30, "KA to have made the key", || {
        (ka.ka.keys().len() == 1).then_some(())
    });
    central.kill();
    ka.ka.answer_creates_after(None);
    central.start();

    let done = wait_order(&central, "ord-9", "done");
    assert_eq!(ka.ka.keys().len(), 1, "a second key was bought");
    assert_eq!(creates(&ka.ka), 1, "{:?}", ka.ka.calls());
    assert_eq!(done["ka_attempts"], 1);
    assert_eq!(central.json(&["jobs", "list"]).as_array().unwrap().len(), 1);
    assert_eq!(
        agent.license_calls(),
        vec![format!("bin license -i {}", ka.ka.keys()[0].activation_code)]
    );
}
}

#[test]
fn buy_now_redirects_to_the_store_for_what_is_sold_and_explains_the_rest() {
    let db = support::TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    let (central, _agent) = fleet(dir.path(), &ka.ka, &db);
    let get = |q: &str| support::http::request(&central.addr, "GET", &format!("/buy?{q}"), None, &[], b"");

    let r = get("extension-id=seo-toolkit&kn=plsk123456780001&token=t%20x&product-id=9");
    assert_eq!(r.status, 302, "{}", r.body);
    assert_eq!(
        r.header("location"),
        Some("https://shop.example.com/cart?ext=seo-toolkit&kn=PLSK.12345678.0001&host=web-1")
    );
    for q in [
        "extension-id=%3Cscript%3E&kn=plsk123456780001",
        "extension-id=seo-toolkit&kn=PLSK.99999999.0001",
    ] {
        let r = get(q);
        assert_eq!(r.status, 404, "{q}");
        assert!(r.body.contains("not sold by this store"), "{}", r.body);
        assert!(!r.body.contains("<script>"), "{}", r.body);
    }
    assert_eq!(get("kn=1").status, 400);
    assert!(ka.ka.calls().is_empty(), "Buy Now bought something");
}

#[test]
fn serve_refuses_a_ka_password_file_that_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    let central = Central::new(&dir.path().join("central"), &config(dir.path(), &ka.ka));
    let pw = dir.path().join("ka.password");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = central.cli(&["serve"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot use the KA password file {}", pw.display())) && err.contains("chmod 600"),
        "{err}"
    );
    assert!(!err.contains(fake_ka::PASSWORD), "{err}");
}

#[test]
fn check_online_asks_ka_whether_it_accepts_the_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    let central = Central::new(&dir.path().join("central"), &config(dir.path(), &ka.ka));
    assert_eq!(central.cli(&["migrate"]).status.code(), Some(0));
    let out = central.cli(&["check", "--online"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "ok   ka-online: KA at {} accepts the user {}",
            ka.ka.base_url(),
            fake_ka::USER
        )),
        "{text}"
    );
    let asked = ka.ka.calls();
    assert_eq!(asked.len(), 1, "one request: {asked:?}");
    assert_eq!(asked[0].method, "GET");
    // Without --online, KA is not asked.
    assert_eq!(central.cli(&["check"]).status.code(), Some(0));
    assert_eq!(ka.ka.calls().len(), 1);
    // A wrong password: KA's 401, in one line, without the password.
    std::fs::write(dir.path().join("ka.password"), "not-the-password\n").unwrap();
    let out = central.cli(&["check", "--online"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = text.lines().find(|l| l.contains("ka-online")).unwrap();
    assert!(line.starts_with("FAIL ka-online:") && line.contains("401"), "{line}");
    assert!(!text.contains("not-the-password"), "{text}");
}

on_both! {
#[test]
fn an_order_whose_host_is_removed_waits_for_it_and_buys_nothing_twice(db) {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    let (central, agent) = fleet(dir.path(), &ka.ka, &db);
    // The agent is gone: the order's job stays queued.
    drop(agent);
    central.json(&["orders", "add", "--order-id", "ord-9", "--host", "web-1", "--plesk"]);
    let queued = wait_order(&central, "ord-9", "queued");
    assert!(queued["job_id"].is_string());
    // Removing the host takes the job; the bought license waits for the host, not retried in a loop.
    central.json(&["hosts", "rm", "web-1"]);
    let waiting = wait_for(30, "the order waiting for its host", || {
        let o = central.json(&["orders", "show", "ord-9"]);
        (o["state"] == "licensed" && o["error"].as_str().is_some_and(|e| e.contains("hosts add web-1"))).then_some(o)
    });
    assert!(waiting["job_id"].is_null(), "{waiting}");
    let calls = ka.ka.calls().len();
    // The host comes back under the same id with a new token: the order goes on to done.
    let token = central.add_host("web-1", &[])["token"].as_str().unwrap().to_string();
    let mut agent = Agent::new(&dir.path().join("agent2"), &central.url(), "web-1", &token, 25, "");
    agent.set_key("PLSK123456780001");
    agent.start();
    let done = wait_order(&central, "ord-9", "done");
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(creates(&ka.ka), 1, "one purchase");
    assert_eq!(ka.ka.calls().len(), calls, "KA not asked again");
    let code = &ka.ka.keys()[0].activation_code;
    assert_eq!(agent.license_calls(), vec![format!("bin license -i {code}")]);
}
}

#[test]
fn a_create_whose_answer_cannot_be_read_is_looked_up_not_bought_again() {
    let db = support::TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    let (central, agent) = fleet(dir.path(), &ka.ka, &db);
    // KA makes the key, but a proxy in between mangles the 201's body.
    ka.ka.garble_next_create();
    central.json(&["orders", "add", "--order-id", "ord-7", "--host", "web-1", "--plesk"]);
    let done = wait_order(&central, "ord-7", "done");
    assert_eq!(creates(&ka.ka), 1, "bought once: {:?}", ka.ka.calls());
    let keys = ka.ka.keys();
    assert_eq!(done["ka_key_number"], keys[0].key_number.as_str());
    assert!(ka
        .ka
        .calls()
        .iter()
        .any(|c| c.method == "GET" && c.path.contains("nickname")));
    assert_eq!(
        agent.license_calls(),
        vec![format!("bin license -i {}", keys[0].activation_code)]
    );
}

// ---- exactly once (contract version 2, section 6; issue 17) ----

/// The database name of a PostgreSQL URL.
fn dbname(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// Order work never blocks the agents' API: a poll and /healthz each answer within 1 s.
fn answers_at_once(central: &Central, token: &str) {
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let polled = support::http::poll(&central.addr, "web-1", token, 0, None);
        assert_eq!(polled.status, 200, "{}", polled.body);
        let health = support::http::request(&central.addr, "GET", "/healthz", None, &[], b"");
        assert_eq!(health.status, 200, "{}", health.body);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "a poll and /healthz took {:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn add_plesk_orders(central: &Central, ids: std::ops::Range<usize>) {
    for i in ids {
        let id = format!("ord-{i}");
        central.json(&["orders", "add", "--order-id", &id, "--host", "web-1", "--plesk"]);
    }
}

fn count_in(central: &Central, state: &str) -> usize {
    central
        .json(&["orders", "list", "--state", state])
        .as_array()
        .unwrap()
        .len()
}

on_both! {
#[test]
fn forty_open_orders_across_a_restart_and_a_ka_outage_keep_the_api_answering_and_all_end_done(db) {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    let root = dir.path().join("central");
    let mut central = Central::on(&root, &config(dir.path(), &ka.ka), &db.url(&root));
    central.start();
    central.pin_port();
    let token = central.add_host("web-1", &[])["token"].as_str().unwrap().to_string();

    // KA healthy, no agent yet: 40 orders end queued; the central restarts with all open.
    add_plesk_orders(&central, 0..40);
    wait_for(120, "40 orders queued", || (count_in(&central, "queued") == 40).then_some(()));
    assert_eq!(central.stop(), Some(0));
    central.start();
    answers_at_once(&central, &token);

    // KA down: 40 more orders stay pending while the API keeps answering.
    ka.ka.set_down(true);
    add_plesk_orders(&central, 40..80);
    wait_for(60, "every new order tried at KA", || {
        let tried = central.json(&["orders", "list", "--state", "pending"]).as_array().unwrap().iter()
            .filter(|o| o["error"].as_str().is_some_and(|e| e.contains("503"))).count();
        (tried == 40).then_some(())
    });
    answers_at_once(&central, &token);
    assert_eq!(central.stop(), Some(0));
    central.start();
    answers_at_once(&central, &token);

    // KA back and the agent running: every order ends done, one key each.
    ka.ka.set_down(false);
    let mut agent = Agent::new(&dir.path().join("agent"), &central.url(), "web-1", &token, 25, "");
    agent.start();
    wait_for(300, "80 orders done", || (count_in(&central, "done") == 80).then_some(()));
    for i in 0..80 {
        assert_eq!(ka.ka.keys_named(&format!("ord-{i}")).len(), 1, "ord-{i}");
    }
    assert_eq!(ka.ka.keys().len(), 80);
    assert_eq!(agent.license_calls().len(), 80);
}
}

#[test]
fn two_replicas_whose_driving_sessions_die_mid_create_buy_once() {
    let Some(db) = support::TestDb::postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    // KA takes 8 s to make the key; the request timeout is longer.
    let config = config_timeout(dir.path(), &ka.ka, 20);
    let (a, _agent) = fleet_with(dir.path(), &config, &db);
    let mut b = Central::on(&dir.path().join("b"), &config, &a.db_url);
    b.start();
    ka.ka.commit_creates_after(Duration::from_secs(8));
    a.json(&["orders", "add", "--order-id", "ord-1", "--host", "web-1", "--plesk"]);
    wait_for(30, "the create to be under way", || {
        (creates(&ka.ka) == 1).then_some(())
    });
    // The store sends the order again, to the other replica.
    b.json(&["orders", "add", "--order-id", "ord-1", "--host", "web-1", "--plesk"]);
    std::thread::sleep(Duration::from_millis(500));
    // Every session of both replicas dies (failover, idle_session_timeout, a NAT...).
    let pg = db.pg().unwrap();
    let killed: i64 = pg
        .sql(
            dbname(&a.db_url),
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .parse()
        .unwrap();
    assert!(killed >= 2, "{killed} sessions killed");
    let done = wait_order(&b, "ord-1", "done");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ka.ka.creates_for("ord-1"), 1, "{:?}", ka.ka.calls());
    assert_eq!(ka.ka.keys_named("ord-1").len(), 1);
    assert_eq!(done["ka_attempts"], 1);
}

on_both! {
#[test]
fn a_lost_answer_then_a_refused_or_unreadable_lookup_needs_attention_and_retry_buys_nothing_twice(db) {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    let (admin, port) = support::central::admin_listen(dir.path(), "admin-token-for-the-fleet-page");
    let (central, agent) = fleet_with(dir.path(), &format!("{}{admin}", config(dir.path(), &ka.ka)), &db);

    // KA makes the key, its answer is lost; then the reseller rotates KA's password.
    ka.ka.lose_next_answers(1);
    central.json(&["orders", "add", "--order-id", "ord-1", "--host", "web-1", "--plesk"]);
    wait_for(30, "KA to have made the key", || (ka.ka.keys_named("ord-1").len() == 1).then_some(()));
    ka.ka.set_password("rotated-at-ka");
    let o = wait_order(&central, "ord-1", "attention");
    let why = o["error"].as_str().unwrap();
    assert!(why.contains("401") && why.contains("Authentication failed"), "{why}");
    let metrics = support::http::request(&central.addr, "GET", "/metrics", None, &[], b"").body;
    assert!(metrics.contains("central_orders{state=\"attention\"} 1"), "{metrics}");
    // The fleet page shows it with its reason.
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin:admin-token-for-the-fleet-page")
    );
    let page = support::http::request(&format!("127.0.0.1:{port}"), "GET", "/ui", None, &[("Authorization", &basic)], b"");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("1 order(s) need attention"), "{}", page.body);
    assert!(page.body.contains("data-order=\"ord-1\"") && page.body.contains("Authentication failed"), "{}", page.body);
    // Never bought again by itself.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(central.json(&["orders", "show", "ord-1"])["state"], "attention");
    assert_eq!(ka.ka.creates_for("ord-1"), 1);

    // The password fixed, the operator retries: the lookup finds the key, nothing is bought.
    ka.ka.set_password(fake_ka::PASSWORD);
    let retried = central.json(&["orders", "retry", "ord-1"]);
    assert_eq!(retried["state"], "pending");
    let done = wait_order(&central, "ord-1", "done");
    let keys = ka.ka.keys_named("ord-1");
    assert_eq!(keys.len(), 1);
    assert_eq!(ka.ka.creates_for("ord-1"), 1);
    assert_eq!(done["ka_key_number"], keys[0].key_number.as_str());
    assert_eq!(agent.license_calls(), vec![format!("bin license -i {}", keys[0].activation_code)]);
    // Only attention and failed orders are retried.
    let out = central.cli(&["orders", "retry", "ord-1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("order ord-1 is done; only an order in attention or failed can be retried"), "{err}");

    // A lookup answered with something that is not a list: attention too, then retry.
    ka.ka.lose_next_answers(1);
    ka.ka.garble_search(true);
    central.json(&["orders", "add", "--order-id", "ord-2", "--host", "web-1", "--plesk"]);
    let o = wait_order(&central, "ord-2", "attention");
    assert!(o["error"].as_str().unwrap().contains("not a list of keys"), "{o}");
    ka.ka.garble_search(false);
    central.json(&["orders", "retry", "ord-2"]);
    wait_order(&central, "ord-2", "done");
    assert_eq!(ka.ka.creates_for("ord-2"), 1);
    assert_eq!(ka.ka.keys_named("ord-2").len(), 1);
}
}

on_both! {
#[test]
fn the_lookup_adopts_only_a_key_of_this_very_order(db) {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    ka.ka.add_key(KN);
    let other_main = ka.ka.seed_key("another-server", None, false);
    // Keys KA's loose nickname filter also returns for ord-1 and ext-1.
    let decoys = [
        ka.ka.seed_key("ord-10", None, false),
        ka.ka.seed_key("ORD-1", None, false),
        ka.ka.seed_key("ord-1", None, true),
        ka.ka.seed_key("ext-1", Some(other_main), false),
    ];
    let (central, agent) = fleet(dir.path(), &ka.ka, &db);

    // First the extension (installing ord-1's key changes the host's key number).
    // ext-1's first create is answered 503 (nothing made): the lookup finds only a key with
    // another parent, so it is bought, attached to KN.
    ka.ka.fail_next(&[503]);
    central.json(&["orders", "add", "--order-id", "ext-1", "--key-number", KN, "--extension", "seo-toolkit"]);
    let done = wait_order(&central, "ext-1", "done");
    let mine: Vec<_> = ka.ka.keys_named("ext-1").into_iter().filter(|k| k.parent == Some(12345678)).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(done["ka_key_number"], mine[0].key_number.as_str());
    assert_eq!(ka.ka.creates_for("ext-1"), 2, "the 503 and the purchase");
    // ord-1's answer is lost: the lookup sees ord-10, ORD-1, a terminated ord-1 and its own.
    ka.ka.lose_next_answers(1);
    central.json(&["orders", "add", "--order-id", "ord-1", "--host", "web-1", "--plesk"]);
    let done = wait_order(&central, "ord-1", "done");
    let made: Vec<_> = ka.ka.keys_named("ord-1").into_iter().filter(|k| !k.terminated).collect();
    assert_eq!(made.len(), 1);
    assert!(!decoys.contains(&made[0].key_id));
    assert_eq!(done["ka_key_number"], made[0].key_number.as_str());
    assert_eq!(ka.ka.creates_for("ord-1"), 1);

    assert_eq!(
        agent.license_calls(),
        vec!["bin license --retrieve".to_string(), format!("bin license -i {}", made[0].activation_code)]
    );
}
}

on_both! {
#[test]
fn a_cancelled_install_job_fails_its_order_and_leaves_no_code_in_the_database(db) {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    let (central, agent) = fleet(dir.path(), &ka.ka, &db);
    drop(agent);
    central.json(&["orders", "add", "--order-id", "ord-1", "--host", "web-1", "--plesk"]);
    let queued = wait_order(&central, "ord-1", "queued");
    let code = ka.ka.keys()[0].activation_code.clone();
    central.json(&["jobs", "cancel", queued["job_id"].as_str().unwrap()]);
    let failed = wait_order(&central, "ord-1", "failed");
    assert_eq!(failed["error"], "install job cancelled");
    match db.pg() {
        None => wait_for(10, "the code erased from the database files", || {
            (!support::files_hold(&central.db_files(), &code)).then_some(())
        }),
        Some(pg) => {
            let held = pg.sql(
                dbname(&central.db_url),
                "SELECT (SELECT count(*) FROM orders WHERE activation_code IS NOT NULL) + \
                 (SELECT count(*) FROM jobs WHERE activation_code IS NOT NULL)",
            );
            assert_eq!(held, "0");
        }
    }
    assert_eq!(creates(&ka.ka), 1);
}
}

on_both! {
#[test]
fn sigterm_with_a_create_in_flight_stops_within_10_s_and_the_order_is_bought_once(db) {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    // KA makes the key at once but answers after a minute; the central would wait 30 s.
    let (mut central, _agent) = fleet_with(dir.path(), &config_timeout(dir.path(), &ka.ka, 30), &db);
    ka.ka.answer_creates_after(Some(Duration::from_secs(60)));
    central.json(&["orders", "add", "--order-id", "ord-1", "--host", "web-1", "--plesk"]);
    wait_for(30, "the create under way", || (creates(&ka.ka) == 1).then_some(()));
    let t = std::time::Instant::now();
    assert_eq!(central.stop_within(15), Some(0), "no clean exit within 15 s of SIGTERM");
    assert!(t.elapsed() < Duration::from_secs(10), "stopped after {:?}", t.elapsed());
    ka.ka.answer_creates_after(None);
    central.start();
    // The lookup waits out the abandoned create's timeout (30 s) and margin first.
    let done = wait_for(120, "order ord-1 done", || {
        let o = central.json(&["orders", "show", "ord-1"]);
        (o["state"] == "done").then_some(o)
    });
    assert_eq!(creates(&ka.ka), 1);
    assert_eq!(done["ka_attempts"], 1);
}
}

on_both! {
#[test]
fn hosts_rm_and_add_in_quick_succession_drive_the_order_on(db) {
    let dir = tempfile::tempdir().unwrap();
    let ka = fake_ka();
    let (central, agent) = fleet(dir.path(), &ka.ka, &db);
    drop(agent);
    central.json(&["orders", "add", "--order-id", "ord-1", "--host", "web-1", "--plesk"]);
    wait_order(&central, "ord-1", "queued");
    central.json(&["hosts", "rm", "web-1"]);
    let token = central.add_host("web-1", &[])["token"].as_str().unwrap().to_string();
    let mut agent = Agent::new(&dir.path().join("agent2"), &central.url(), "web-1", &token, 25, "");
    agent.start();
    wait_order(&central, "ord-1", "done");
    assert_eq!(creates(&ka.ka), 1);
    assert_eq!(agent.license_calls().len(), 1);
}
}
