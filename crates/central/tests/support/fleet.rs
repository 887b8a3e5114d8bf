//! A fleet in the database before the central starts: hosts in every state the page tells
//! apart, their reports, jobs with results, and orders. Written through the library's Store
//! (as the API would) with times set in the past where a state needs it.

use plesk_reseller_central::db;
use plesk_reseller_central::fleet::store::{system_clock, Store};
use serde_json::json;

use super::CODE;

/// What an agent can put in a problem; the page must show it as text.
pub const HOSTILE: &str = "<script>document.title='owned'</script> & <b>bold</b>";

/// How many hosts of each kind [`seed`] made, for the assertions.
#[derive(Debug, Default)]
pub struct Seeded {
    pub ok: usize,
    pub out_of_sync: usize,
    pub degraded: usize,
    pub no_report: usize,
    /// Hosts last seen two hours ago (their reports are fine).
    pub not_seen: usize,
    /// The host whose problem is [`HOSTILE`].
    pub hostile: String,
    /// The host with jobs and orders of every kind.
    pub busy: String,
}

pub fn host_id(i: usize) -> String {
    format!("web-{i:05}")
}

pub fn key_number(i: usize) -> String {
    format!("PLSK.{:08}.0001", 10_000_000 + i)
}

fn report(i: usize, in_sync: bool, problems: &[&str]) -> String {
    json!({
        "agent_version": "0.1.0",
        "plesk_key_number": key_number(i),
        "plesk_version": "18.0.64",
        "panel_ini": { "path": "/usr/local/psa/admin/conf/panel.ini",
                       "buy_url": "https://store.example.com/buy", "catalog_url": null,
                       "in_sync": in_sync, "repairs": i % 3 },
        "problems": problems,
    })
    .to_string()
}

/// `n` hosts (n ≥ 20): by `i % 10`, 0–5 OK, 6 out of sync, 7 degraded, 8 no report yet,
/// 9 OK but silent for two hours; host 3 is degraded with [`HOSTILE`]; host 0 is busy.
pub async fn seed(url: &str, n: usize) -> Seeded {
    let db = db::connect(url).await.unwrap();
    db.migrate().await.unwrap();
    let store = Store::new(db, system_clock(), None);
    let now = store.now();
    let mut s = Seeded {
        hostile: host_id(3),
        busy: host_id(0),
        ..Seeded::default()
    };
    let mut seen = Vec::new();
    for i in 0..n {
        let id = host_id(i);
        store
            .add_host(&id, &format!("{:064x}", i), None, "secret")
            .await
            .unwrap();
        let body = match (i, i % 10) {
            (3, _) => {
                s.degraded += 1;
                Some(report(i, true, &[HOSTILE]))
            }
            (_, 6) => {
                s.out_of_sync += 1;
                Some(report(i, false, &[]))
            }
            (_, 7) => {
                s.degraded += 1;
                Some(report(
                    i,
                    false,
                    &["panel.ini cannot be written: Permission denied (os error 13)"],
                ))
            }
            (_, 8) => {
                s.no_report += 1;
                None
            }
            _ => {
                s.ok += 1;
                Some(report(i, true, &[]))
            }
        };
        if let Some(b) = body {
            store
                .put_report(&id, &b, Some(&key_number(i)), Some("0.1.0"))
                .await
                .unwrap();
        }
        let ago = if i % 10 == 9 {
            s.not_seen += 1;
            2 * 3600 * 1000
        } else {
            30 * 1000
        };
        seen.push((id, now - ago));
    }
    store.flush_last_seen(&seen).await.unwrap();
    busy_host(&store, &s.busy, now).await;
    store.db.close().await;
    s
}

fn result(status: &str, exit_code: i64, output: &str) -> serde_json::Value {
    json!({"status": status, "exit_code": exit_code, "output": output, "attempts": 1,
           "started_at": "2026-12-01T12:00:00Z", "finished_at": "2026-12-01T12:00:03Z"})
}

/// Jobs in every state, one result holding a whole activation code (an agent that forgot to
/// mask), and orders in four states, one failed with HTML in KA's answer.
async fn busy_host(store: &Store, host: &str, now: i64) {
    let (done, _) = store.add_job(host, "retrieve_keys", None, None).await.unwrap();
    let out = "The license key was retrieved.\nKey PLSK.10000000.0001 updated";
    store
        .put_result(host, &done.id, "succeeded", &result("succeeded", 0, out))
        .await
        .unwrap();
    let (bad, _) = store.add_job(host, "install_key", Some(CODE), None).await.unwrap();
    let out = format!("Error: the activation code {CODE} is not valid");
    store
        .put_result(host, &bad.id, "failed", &result("failed", 1, &out))
        .await
        .unwrap();
    let (waiting, _) = store.add_job(host, "install_key", Some(CODE), None).await.unwrap();
    let (gone, _) = store.add_job(host, "retrieve_keys", None, None).await.unwrap();
    store.cancel_job(&gone.id).await.unwrap();
    let orders = [
        ("o-1001", "done", None),
        ("o-1002", "failed", Some("<img src=x onerror=alert(1)> key not found")),
        ("o-1003", "pending", Some("KA answered 503")),
        ("o-1004", "queued", None),
    ];
    for (i, (id, state, error)) in orders.into_iter().enumerate() {
        // A queued order waits for its job (the central's order drivers would queue one for
        // a queued order without a job).
        let job = (state == "queued").then_some(waiting.id.as_str());
        sqlx::query(
            "INSERT INTO orders (id, kind, host_id, key_number, extension_id, ka_item, state, ka_attempts, \
             error, job_id, created_at, updated_at) \
             VALUES ($1, 'extension', $2, $3, 'wp-toolkit', 'EXT-WPTK', $4, 1, $5, $7, $6, $6)",
        )
        .bind(id)
        .bind(host)
        .bind(key_number(0))
        .bind(state)
        .bind(error)
        .bind(now - 60_000 * (4 - i as i64))
        .bind(job)
        .execute(&store.db.pool)
        .await
        .unwrap();
    }
    // Licenses: the host's main key with drift in which KA's text holds HTML, an extension
    // of it, and one suspend operation in flight on the extension.
    for (id, kn, kind, parent, drift) in [
        (10_000_000_i64, key_number(0), "plesk", None, Some(LICENSE_DRIFT)),
        (
            20_000_001_i64,
            "EXT.20000001.0001".to_string(),
            "extension",
            Some(10_000_000_i64),
            None,
        ),
    ] {
        sqlx::query(
            "INSERT INTO licenses (id, key_number, kind, items, parent_id, host_id, state, ka_status, drift, \
             drift_at, checked_at, created_at, updated_at) VALUES ($1, $2, $3, '[\"PLESK-12-WEB-HOST-1M\"]', $4, $5, \
             'active', 'ACTIVE', $6, $7, $7, $7, $7)",
        )
        .bind(id)
        .bind(kn)
        .bind(kind)
        .bind(parent)
        .bind(host)
        .bind(drift)
        .bind(now - 60_000)
        .execute(&store.db.pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO license_operations (id, license_id, kind, retrieve, state, created_at, updated_at) \
         VALUES ('op-seeded', 20000001, 'suspend', 1, 'pending', $1, $1)",
    )
    .bind(now - 30_000)
    .execute(&store.db.pool)
    .await
    .unwrap();
}

/// Drift as reconcile would write it, with HTML from KA in it: the page shows it as text.
pub const LICENSE_DRIFT: &str = "KA has the items <img src=y onerror=alert(2)>, the central expected PLESK";
