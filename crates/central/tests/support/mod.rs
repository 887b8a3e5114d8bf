//! Black-box helpers for the central's tests: the real `plesk-reseller-central` binary on
//! port 0 with SQLite in a temp dir or a throw-away PostgreSQL cluster, the real agent binary
//! with the stand-in plesk, and a small raw HTTP/1.1 client.

#![allow(dead_code)]

pub mod agent;
pub mod blackhole;
pub mod browser;
pub mod central;
pub mod fake_ka;
pub mod fleet;
pub mod held;
pub mod http;
pub mod pg;
pub mod receiver;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const CODE: &str = "A00000-K6QK03-KSG046-H6BK67-1GE201";

/// Waits up to `secs` for `f` to return Some; panics with `what` otherwise. A deadline for
/// something that must happen, not a timing measurement.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > end {
            panic!("gave up waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True when any of the files contains `needle`.
pub fn files_hold(paths: &[std::path::PathBuf], needle: &str) -> bool {
    paths.iter().any(|p| {
        let bytes = std::fs::read(p).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    })
}

/// The database a test body runs on: SQLite in the test's directory, or a database in a
/// throw-away PostgreSQL cluster owned by this value (stopped when it is dropped).
pub struct TestDb {
    pg: Option<pg::PgCluster>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        TestDb { pg: None }
    }

    /// None (the PostgreSQL half is skipped, and says so) when PostgreSQL is not installed;
    /// with `CI=true` it must be, so CI cannot skip it silently.
    pub fn postgres() -> Option<TestDb> {
        match pg::PgCluster::start() {
            Some(c) => Some(TestDb { pg: Some(c) }),
            None if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true but PostgreSQL is not installed (apt-get install postgresql)")
            }
            None => {
                eprintln!("PostgreSQL is not installed: the postgres half of this test is skipped");
                None
            }
        }
    }

    pub fn pg(&self) -> Option<&pg::PgCluster> {
        self.pg.as_ref()
    }

    pub fn is_sqlite(&self) -> bool {
        self.pg.is_none()
    }

    /// A fresh database: the SQLite file under `root`, or a new PostgreSQL database.
    pub fn url(&self, root: &Path) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        match &self.pg {
            None => format!("sqlite://{}/db/central.db", root.display()),
            Some(c) => c.database(&format!("central{}", N.fetch_add(1, Ordering::Relaxed))),
        }
    }
}

/// Runs a test body once per backend: `mod NAME { fn sqlite(); fn postgres() }`, the
/// body seeing the backend as `$db: TestDb`; attributes after the first (e.g. `#[ignore]`)
/// go on both.
#[macro_export]
macro_rules! on_both {
    (#[$m:meta] $(#[$more:meta])* async fn $name:ident($db:ident) $body:block) => {
        mod $name {
            use super::*;
            #[$m]
            $(#[$more])*
            async fn sqlite() {
                let $db = support::TestDb::sqlite();
                $body
            }
            #[$m]
            $(#[$more])*
            async fn postgres() {
                let Some($db) = support::TestDb::postgres() else {
                    return;
                };
                $body
            }
        }
    };
    (#[$m:meta] $(#[$more:meta])* fn $name:ident($db:ident) $body:block) => {
        mod $name {
            use super::*;
            #[$m]
            $(#[$more])*
            fn sqlite() {
                let $db = support::TestDb::sqlite();
                $body
            }
            #[$m]
            $(#[$more])*
            fn postgres() {
                let Some($db) = support::TestDb::postgres() else {
                    return;
                };
                $body
            }
        }
    };
}
