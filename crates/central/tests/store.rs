//! The store on a real SQLite file: queue order, idempotency, first-wins results, erased
//! codes, concurrent writers without "database is locked".

use plesk_reseller_central::db;
use plesk_reseller_central::store::{system_clock, ResultOutcome, Store, StoreError};
use serde_json::json;

const CODE: &str = "A00000-K6QK03-KSG046-H6BK67-1GE201";

/// SQLite in `dir`; or, with `CENTRAL_TEST_PG_URL=postgres://user@host:port` (a server the
/// user may create databases on), a fresh PostgreSQL database per test.
async fn store(dir: &tempfile::TempDir) -> Store {
    let url = match std::env::var("CENTRAL_TEST_PG_URL") {
        Ok(base) if !base.is_empty() => {
            let base = base.trim_end_matches('/');
            let name = format!("central_test_{:016x}", fastrand::u64(..));
            let admin = db::connect(&format!("{base}/postgres")).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin.pool)
                .await
                .unwrap();
            format!("{base}/{name}")
        }
        _ => format!("sqlite://{}/central.db", dir.path().display()),
    };
    let db = db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    Store::new(db, system_clock(), None)
}

fn result(status: &str) -> serde_json::Value {
    json!({"status": status, "exit_code": 0, "output": "", "attempts": 1,
           "started_at": "2026-11-26T12:00:00Z", "finished_at": "2026-11-26T12:00:03Z"})
}

#[tokio::test]
async fn jobs_keep_queue_order_and_idempotency_keys_return_the_first_job() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    s.add_host("web-1", "h1", None, "sec").await.unwrap();
    assert!(matches!(
        s.add_host("web-1", "h2", None, "sec").await,
        Err(StoreError::HostExists(_))
    ));
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(s.add_job("web-1", "retrieve_keys", None, None).await.unwrap().0.id);
    }
    let (_, _, queued) = s.poll_inputs("web-1").await.unwrap();
    assert_eq!(queued.iter().map(|j| j.id.clone()).collect::<Vec<_>>(), ids);
    assert!(ids.iter().all(|id| plesk_reseller_protocol::is_valid_job_id(id)));
    let (a, new_a) = s
        .add_job("web-1", "install_key", Some(CODE), Some("order-7"))
        .await
        .unwrap();
    let (b, new_b) = s
        .add_job("web-1", "install_key", Some(CODE), Some("order-7"))
        .await
        .unwrap();
    assert!(new_a && !new_b);
    assert_eq!(a.id, b.id);
    assert!(matches!(
        s.add_job("nope", "retrieve_keys", None, None).await,
        Err(StoreError::NoHost(_))
    ));
}

#[tokio::test]
async fn the_first_result_wins_and_the_code_leaves_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    s.add_host("web-1", "h1", None, "sec").await.unwrap();
    s.add_host("web-2", "h2", None, "sec").await.unwrap();
    let (job, _) = s.add_job("web-1", "install_key", Some(CODE), None).await.unwrap();
    let sqlite = s.db.dialect == db::Dialect::Sqlite;
    // The check below can fail: the code is in the files while the job is queued.
    assert!(!sqlite || files_hold(&dir, CODE), "the queued code should be on disk");
    assert_eq!(
        s.put_result("web-2", &job.id, "succeeded", &result("succeeded"))
            .await
            .unwrap(),
        ResultOutcome::NotFound
    );
    assert_eq!(
        s.put_result("web-1", &job.id, "succeeded", &result("succeeded"))
            .await
            .unwrap(),
        ResultOutcome::Stored
    );
    assert_eq!(
        s.put_result("web-1", &job.id, "succeeded", &result("succeeded"))
            .await
            .unwrap(),
        ResultOutcome::SameAgain
    );
    assert_eq!(
        s.put_result("web-1", &job.id, "failed", &result("failed"))
            .await
            .unwrap(),
        ResultOutcome::Different
    );
    let shown = s.job(&job.id).await.unwrap();
    assert_eq!(shown.state, "succeeded");
    assert_eq!(shown.result.unwrap()["status"], "succeeded");
    let (cancelled, _) = s
        .add_job("web-1", "install_key", Some("B11111-K6QK03-KSG046-H6BK67-1GE202"), None)
        .await
        .unwrap();
    s.cancel_job(&cancelled.id).await.unwrap();
    assert_eq!(
        s.put_result("web-1", &cancelled.id, "succeeded", &result("succeeded"))
            .await
            .unwrap(),
        ResultOutcome::Cancelled
    );
    assert!(matches!(
        s.cancel_job(&cancelled.id).await,
        Err(StoreError::NotQueued { .. })
    ));
    for code in [CODE, "B11111-K6QK03-KSG046-H6BK67-1GE202"] {
        assert!(!files_hold(&dir, code), "{code} is still in the database files");
        let left: Vec<(Option<String>,)> =
            sqlx::query_as("SELECT activation_code FROM jobs WHERE activation_code IS NOT NULL")
                .fetch_all(&s.db.pool)
                .await
                .unwrap();
        assert!(left.is_empty(), "{code} is still in the jobs table");
    }
}

fn files_hold(dir: &tempfile::TempDir, needle: &str) -> bool {
    ["central.db", "central.db-wal", "central.db-shm"].iter().any(|f| {
        let bytes = std::fs::read(dir.path().join(f)).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_see_database_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    s.add_host("web-1", "h1", None, "sec").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                s.add_job("web-1", "retrieve_keys", None, Some(&format!("k{i}")))
                    .await
                    .map(|_| ())
            } else {
                s.put_report("web-1", &format!("{{\"n\":{i}}}"), None, None)
                    .await
                    .map(|_| ())
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.jobs(Some("web-1"), Some("queued")).await.unwrap().len(), 100);
}

#[tokio::test]
async fn key_numbers_from_reports_find_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    for h in ["a", "b", "c"] {
        s.add_host(h, &format!("t{h}"), None, "sec").await.unwrap();
    }
    s.put_report("a", "{}", Some("PLSK.12345678.0001"), Some("0.1.0"))
        .await
        .unwrap();
    assert_eq!(s.host_by_key_number("PLSK.12345678.0001").await.unwrap(), "a");
    assert!(matches!(
        s.host_by_key_number("PLSK.00000000.0002").await,
        Err(StoreError::NoKeyNumber(_))
    ));
    s.put_report("b", "{}", Some("PLSK.12345678.0001"), None).await.unwrap();
    let e = s
        .host_by_key_number("PLSK.12345678.0001")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("a, b"), "{e}");
}
