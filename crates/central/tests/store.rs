//! The store on a real SQLite file and on PostgreSQL: queue order, idempotency, first-wins
//! results, erased codes, concurrent writers without "database is locked".

mod support;

use plesk_reseller_central::db;
use plesk_reseller_central::fleet::store::{system_clock, ResultOutcome, Store, StoreError};
use serde_json::json;

const CODE: &str = "A00000-K6QK03-KSG046-H6BK67-1GE201";

async fn store(dir: &tempfile::TempDir, test_db: &support::TestDb) -> Store {
    let url = test_db.url(dir.path());
    let db = db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    Store::new(db, system_clock(), None)
}

fn result(status: &str) -> serde_json::Value {
    json!({"status": status, "exit_code": 0, "output": "", "attempts": 1,
           "started_at": "2026-11-26T12:00:00Z", "finished_at": "2026-11-26T12:00:03Z"})
}

on_both! {
#[tokio::test]
async fn jobs_keep_queue_order_and_idempotency_keys_return_the_first_job(db) {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, &db).await;
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
}

on_both! {
#[tokio::test]
async fn the_first_result_wins_and_the_code_leaves_every_file(db) {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, &db).await;
    s.add_host("web-1", "h1", None, "sec").await.unwrap();
    s.add_host("web-2", "h2", None, "sec").await.unwrap();
    let (job, _) = s.add_job("web-1", "install_key", Some(CODE), None).await.unwrap();
    // The check below can fail: the code is in the files while the job is queued.
    // SQLite only: PostgreSQL's files are its cluster's, not this test's.
    assert_eq!(files_hold(&dir, CODE), db.is_sqlite(), "the queued code should be on disk");
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
    }
    // On either backend: no code is left in the table once its job has ended.
    let left: Vec<(Option<String>,)> =
        sqlx::query_as("SELECT activation_code FROM jobs WHERE activation_code IS NOT NULL")
            .fetch_all(&s.db.pool)
            .await
            .unwrap();
    assert!(left.is_empty(), "{left:?} is still in the jobs table");
}
}

fn files_hold(dir: &tempfile::TempDir, needle: &str) -> bool {
    ["db/central.db", "db/central.db-wal", "db/central.db-shm"]
        .iter()
        .any(|f| {
            let bytes = std::fs::read(dir.path().join(f)).unwrap_or_default();
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
}

on_both! {
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_see_database_is_locked(db) {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, &db).await;
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
}

on_both! {
#[tokio::test]
async fn key_numbers_from_reports_find_hosts(db) {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, &db).await;
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
}

/// A clock that always says `ms`: a central started with its clock set there.
fn clock_at(ms: i64) -> plesk_reseller_central::fleet::store::Clock {
    std::sync::Arc::new(move || ms)
}

fn ids(jobs: &[plesk_reseller_central::fleet::store::JobRow]) -> Vec<String> {
    jobs.iter().map(|j| j.id.clone()).collect()
}

on_both! {
#[tokio::test]
async fn jobs_keep_queue_order_when_the_clock_steps_back(db) {
    let dir = tempfile::tempdir().unwrap();
    let url = db.url(dir.path());
    let d = db::connect(&url).await.unwrap();
    d.migrate().await.unwrap();
    let now = system_clock()();
    let right = Store::new(d.clone(), clock_at(now), None);
    right.add_host("web-1", "h1", None, "sec").await.unwrap();
    let a = right.add_job("web-1", "install_key", Some(CODE), None).await.unwrap().0.id;
    // A restart with a clock an hour behind (or a replica whose clock lags): a new store.
    let behind = Store::new(d.clone(), clock_at(now - 3_600_000), None);
    let b = behind.add_job("web-1", "retrieve_keys", None, None).await.unwrap().0.id;
    let c = right.add_job("web-1", "retrieve_keys", None, None).await.unwrap().0.id;
    let queued = vec![a, b, c];
    let (_, _, polled) = right.poll_inputs("web-1").await.unwrap();
    assert_eq!(ids(&polled), queued, "the poll's jobs");
    assert_eq!(ids(&behind.jobs(None, None).await.unwrap()), queued, "jobs list");
    assert_eq!(
        ids(&right.jobs(Some("web-1"), Some("queued")).await.unwrap()),
        queued,
        "jobs list --host --state"
    );
    let (newest, _) = right.recent_jobs(None, None, 10, 0).await.unwrap();
    assert_eq!(ids(&newest), queued.iter().rev().cloned().collect::<Vec<_>>(), "the fleet page");
}
}

on_both! {
#[tokio::test]
async fn jobs_queued_before_the_sequence_keep_their_order_after_the_migration(db) {
    let dir = tempfile::tempdir().unwrap();
    let url = db.url(dir.path());
    let d = db::connect(&url).await.unwrap();
    d.migrate().await.unwrap();
    // Back to the schema before 0004: rows whose seq came from the clock (ms << 20 | n).
    for sql in [
        "DROP TABLE job_sequence",
        "DELETE FROM _sqlx_migrations WHERE version = 4",
        "INSERT INTO hosts (id, token_sha256, push_secret, rev, created_at) VALUES ('web-1', 'h1', 's', 1, 0)",
    ] {
        sqlx::query(sql).execute(&d.pool).await.unwrap();
    }
    let old_seq = |ms: i64, n: i64| (ms << 20) | n;
    let now = system_clock()();
    let mut queued = Vec::new();
    for (i, seq) in [old_seq(now - 2000, 0), old_seq(now - 1000, 0), old_seq(now - 1000, 1)]
        .into_iter()
        .enumerate()
    {
        let id = format!("j-{:016x}{i:04x}", seq);
        sqlx::query(
            "INSERT INTO jobs (id, host_id, seq, type, state, created_at) VALUES ($1, 'web-1', $2, 'retrieve_keys', 'queued', 0)",
        )
        .bind(&id)
        .bind(seq)
        .execute(&d.pool)
        .await
        .unwrap();
        queued.push(id);
    }
    d.migrate().await.unwrap();
    // Then a central whose clock is a day behind the old rows queues one more.
    let s = Store::new(d.clone(), clock_at(now - 86_400_000), None);
    queued.push(s.add_job("web-1", "retrieve_keys", None, None).await.unwrap().0.id);
    let (_, _, polled) = s.poll_inputs("web-1").await.unwrap();
    assert_eq!(ids(&polled), queued);
    assert_eq!(ids(&s.jobs(None, None).await.unwrap()), queued);
}
}
