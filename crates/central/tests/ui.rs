//! The fleet page in headless Chromium: a seeded fleet of 300 hosts behind the real central
//! on admin_listen, each page loaded and its rendered DOM asserted on. Screenshots land in
//! target/ui-screenshots/.

mod support;

use std::path::PathBuf;

use support::browser::{self, Browser};
use support::central::Central;
use support::fleet::{self, Seeded, HOSTILE, LICENSE_DRIFT};
use support::CODE;

const TOKEN: &str = "the-admin-token-for-the-page";
const HOSTS: usize = 300;

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("ui-screenshots")
}

/// The central with the seeded fleet in `db`, its admin listener at the returned base URL.
fn central(dir: &std::path::Path, db: &support::TestDb) -> (Central, Seeded, String) {
    let (admin, port) = support::central::admin_listen(dir, TOKEN);
    let extra = format!("{admin}[fleet]\nbuy_url = https://store.example.com/buy\n");
    let root = dir.join("central");
    let mut c = Central::on(&root, &extra, &db.url(&root));
    let seeded = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(fleet::seed(&c.db_url, HOSTS));
    c.start();
    (c, seeded, format!("http://127.0.0.1:{port}"))
}

fn rows(b: &mut Browser) -> Vec<String> {
    let v = b.eval("[...document.querySelectorAll('#hosts tbody tr')].map(r => r.dataset.host)");
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect()
}

fn fleet_page(b: &mut Browser, base: &str, s: &Seeded, shot: bool) {
    // What follows runs with the page's scripts off (works without JavaScript): prove they are.
    b.goto("data:text/html,<title>off</title><script>document.title='on'</script>");
    assert_eq!(b.eval("document.title").as_str(), Some("off"));
    assert_eq!(b.goto(&format!("{base}/ui")), 401, "no credentials");
    b.basic_auth("admin", "wrong-token-of-some-length");
    assert_eq!(b.goto(&format!("{base}/ui")), 401, "a wrong token");
    b.basic_auth("admin", TOKEN);
    assert_eq!(b.goto(&format!("{base}/ui")), 200);
    // The counts cover the fleet.
    for (id, n) in [
        ("all", HOSTS),
        ("ok", s.ok),
        ("out_of_sync", s.out_of_sync),
        ("degraded", s.degraded),
        ("no_report", s.no_report),
        ("not_seen", s.not_seen),
    ] {
        assert_eq!(b.text(&format!("#count-{id} .n")), n.to_string(), "count {id}");
    }
    // A page of 200, worst first: the degraded hosts lead, the hostile one among them.
    let listed = rows(b);
    assert_eq!(listed.len(), 200);
    assert!(listed[..s.degraded].contains(&s.hostile), "{listed:?}");
    let first = b.text("#hosts tbody tr:first-child td:nth-child(2)");
    assert_eq!(first, "Degraded");
    // The agent's HTML is text: no element came of it, and it did not run.
    let cell = format!("tr[data-host='{}'] td.problems li", s.hostile);
    assert_eq!(b.text(&cell), HOSTILE);
    assert_eq!(b.count("script"), 0);
    assert_eq!(b.count("td.problems b"), 0);
    assert_eq!(
        b.eval("document.title").as_str(),
        Some("Fleet · plesk-reseller-central")
    );
    // Hosts silent for two hours say so.
    let silent = b.text(&format!("tr[data-host='{}'] td:nth-child(3)", fleet::host_id(9)));
    assert_eq!(silent, "2 h ago");
    if shot {
        b.screenshot(&screenshots().join("fleet.png"));
    }
    // The search box, as a person uses it: by a part of the host id, then a key number.
    b.submit("input[name=q]", "web-0004");
    let found = rows(b);
    assert_eq!(found.len(), 10, "{found:?}");
    assert!(found.iter().all(|h| h.starts_with("web-0004")), "{found:?}");
    assert!(b.eval("location.search").as_str().unwrap().contains("q=web-0004"));
    b.submit("input[name=q]", &fleet::key_number(123).to_lowercase());
    assert_eq!(rows(b), [fleet::host_id(123)]);
    b.submit("input[name=q]", "no-such-host");
    assert_eq!(rows(b).len(), 0);
    assert_eq!(b.text("#no-hosts"), "No host matches.");
    // A health card narrows the table to that health.
    assert_eq!(b.goto(&format!("{base}/ui?health=degraded")), 200);
    let health = b.eval("[...document.querySelectorAll('#hosts tbody tr')].map(r => r.dataset.health)");
    let health = health.as_array().unwrap();
    assert_eq!(health.len(), s.degraded);
    assert!(health.iter().all(|h| h == "degraded"));
    // Page 2 holds the rest.
    assert_eq!(b.goto(&format!("{base}/ui?page=2")), 200);
    assert_eq!(rows(b).len(), HOSTS - 200);
    // A bad filter is one sentence, not a guess.
    assert_eq!(b.goto(&format!("{base}/ui?health=bogus")), 400);
    assert!(b.text("p.error").contains("\"bogus\""), "{}", b.text("p.error"));
}

fn host_page(b: &mut Browser, base: &str, s: &Seeded, shot: bool) {
    assert_eq!(b.goto(&format!("{base}/ui/hosts/{}", s.busy)), 200);
    assert_eq!(b.text("#health"), "OK");
    let states = b.eval("[...document.querySelectorAll('table.jobs tbody tr')].map(r => r.dataset.state)");
    assert_eq!(
        states,
        serde_json::json!(["cancelled", "queued", "failed", "succeeded"])
    );
    // The code an agent failed to mask is masked here; only its ends show.
    let page = b.eval("document.body.innerText").as_str().unwrap().to_string();
    assert!(!page.contains(CODE), "the whole activation code is on the page");
    assert!(page.contains("A00000-******-******-******-1GE201"), "{page}");
    assert_eq!(b.count("table.orders tbody tr"), 4);
    // KA's answer with HTML in it is text too.
    assert_eq!(b.count("img"), 0);
    assert!(page.contains("<img src=x onerror=alert(1)> key not found"), "{page}");
    if shot {
        b.screenshot(&screenshots().join("host.png"));
    }
    assert_eq!(b.goto(&format!("{base}/ui/hosts/{}", s.hostile)), 200);
    assert_eq!(b.text("#problems li"), HOSTILE);
    assert_eq!(b.goto(&format!("{base}/ui/hosts/web-none")), 404);
}

fn jobs_and_orders(b: &mut Browser, base: &str, s: &Seeded, shot: bool) {
    assert_eq!(b.goto(&format!("{base}/ui/jobs")), 200);
    assert_eq!(b.count("table.jobs tbody tr"), 4);
    if shot {
        b.screenshot(&screenshots().join("jobs.png"));
    }
    assert_eq!(b.goto(&format!("{base}/ui/jobs?state=queued")), 200);
    assert_eq!(b.count("table.jobs tbody tr[data-state='queued']"), 1);
    assert_eq!(b.count("table.jobs tbody tr"), 1);
    assert_eq!(b.goto(&format!("{base}/ui/orders")), 200);
    assert_eq!(b.count("table.orders tbody tr"), 4);
    assert_eq!(b.text("#state-failed"), "failed (1)");
    assert_eq!(b.count("img"), 0);
    if shot {
        b.screenshot(&screenshots().join("orders.png"));
    }
    assert_eq!(b.goto(&format!("{base}/ui/orders?state=pending&host={}", s.busy)), 200);
    assert_eq!(b.count("table.orders tbody tr"), 1);
    assert_eq!(b.goto(&format!("{base}/ui/orders?state=paid")), 400);
}

fn licenses(b: &mut Browser, base: &str, s: &Seeded, shot: bool) {
    assert_eq!(b.goto(&format!("{base}/ui/licenses")), 200);
    assert_eq!(b.count("table.licenses tbody tr"), 2);
    // KA's text with HTML in it is text; the drift is counted.
    assert_eq!(b.text("tr[data-license='10000000'] td.error"), LICENSE_DRIFT);
    assert_eq!(b.count("img"), 0);
    assert!(b.text("body").contains("1 with drift"), "{}", b.text("body"));
    // The operation in flight, with its license.
    assert_eq!(b.count("table.operations tbody tr[data-operation='op-seeded']"), 1);
    let last = b.text("tr[data-license='20000001'] td:nth-child(7)");
    assert!(last.contains("suspend") && last.contains("pending"), "{last}");
    if shot {
        b.screenshot(&screenshots().join("licenses.png"));
    }
    // On the host's page too.
    assert_eq!(b.goto(&format!("{base}/ui/hosts/{}", s.busy)), 200);
    assert_eq!(b.count("table.licenses tbody tr"), 2);
    assert_eq!(b.goto(&format!("{base}/ui/licenses?state=gone")), 400);
}

on_both! {
#[test]
fn the_fleet_page_shows_the_fleet_in_a_browser(db) {
    let Some(mut b) = browser::launch() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (c, seeded, base) = central(dir.path(), &db);
    let shot = db.is_sqlite();
    fleet_page(&mut b, &base, &seeded, shot);
    host_page(&mut b, &base, &seeded, shot);
    jobs_and_orders(&mut b, &base, &seeded, shot);
    licenses(&mut b, &base, &seeded, shot);
    // /metrics counts as the page does.
    let m = support::http::request(&c.addr, "GET", "/metrics", None, &[], b"").body;
    assert!(m.contains(&format!("central_hosts{{health=\"degraded\"}} {}\n", seeded.degraded)), "{m}");
    assert!(m.contains(&format!("central_hosts_not_seen {}\n", seeded.not_seen)), "{m}");
}
}

/// Every metric (and label value) the shipped Grafana dashboard asks for is one the central
/// serves, and the dashboard shows what the page shows.
#[test]
fn the_grafana_dashboard_asks_only_for_metrics_the_central_serves() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../packaging/grafana/plesk-reseller-central.json"
    );
    let dash: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = Central::new(&dir.path().join("central"), "");
    c.start();
    c.add_host("web-1", &[]);
    let metrics = support::http::request(&c.addr, "GET", "/metrics", None, &[], b"").body;
    let served: Vec<&str> = metrics.lines().filter(|l| !l.starts_with('#')).collect();
    let mut asked = std::collections::BTreeSet::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("central_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    served
                        .iter()
                        .any(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{"))),
                    "panel {:?} asks for {name}, which /metrics does not serve",
                    p["title"]
                );
                asked.insert(name);
            }
            for (label, value) in [
                ("health", "degraded"),
                ("health", "out_of_sync"),
                ("health", "no_report"),
            ] {
                if expr.contains(&format!("{label}=\"{value}\"")) {
                    assert!(metrics.contains(&format!("{label}=\"{value}\"")), "{expr}");
                }
            }
        }
    }
    for needed in [
        "central_hosts",
        "central_hosts_not_seen",
        "central_jobs",
        "central_orders",
        "central_held_polls",
    ] {
        assert!(asked.contains(needed), "the dashboard does not show {needed}");
    }
}
