//! The database: one `AnyPool` on SQLite or PostgreSQL, the embedded migrations, and the
//! SQLite file's creation with root-only permissions.

pub mod dialect;

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

pub use dialect::Dialect;

/// A database that cannot be used; names the URL without its password.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the database URL {url} is neither sqlite:///PATH nor postgres://…")]
    Url { url: String },
    #[error("cannot create the database file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("cannot open the database {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot migrate the database {url}: {reason}")]
    Migrate { url: String, reason: String },
    #[error("the database {url} is not migrated: {reason}")]
    NotMigrated { url: String, reason: String },
}

/// The pool and what kind of database is behind it.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub dialect: Dialect,
    /// For messages: the URL with any password removed.
    pub url: String,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// `postgres://user:secret@h/db` → `postgres://user@h/db`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The path of a `sqlite:///PATH` URL.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or(rest);
    Some(PathBuf::from(path))
}

/// Creates the SQLite file (0600, in a 0700 directory if it creates one) so that SQLite's own
/// -wal and -shm files inherit root-only permissions.
fn create_sqlite_file(url: &str) -> Result<(), DbError> {
    let Some(path) = sqlite_path(url) else { return Ok(()) };
    let err = |e: std::io::Error| DbError::File {
        path: path.clone(),
        reason: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(err)?;
        }
    }
    if !path.exists() {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(err)?;
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(err)
}

/// Opens the pool (creating an SQLite file) without touching the schema.
pub async fn connect(url: &str) -> Result<Db, DbError> {
    sqlx::any::install_default_drivers();
    let shown = redact(url);
    let dialect = Dialect::of_url(url).ok_or_else(|| DbError::Url { url: shown.clone() })?;
    if dialect == Dialect::Sqlite {
        create_sqlite_file(url)?;
    }
    let pool = AnyPoolOptions::new()
        .max_connections(dialect.pool_size())
        .acquire_timeout(Duration::from_secs(15))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                for stmt in dialect.connect_statements() {
                    conn.execute(*stmt).await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(|e| DbError::Connect {
            url: shown.clone(),
            reason: e.to_string(),
        })?;
    Ok(Db {
        pool,
        dialect,
        url: shown,
    })
}

impl Db {
    /// Brings the schema up to date (PostgreSQL: under the migrator's advisory lock, so
    /// replicas starting together are safe).
    pub async fn migrate(&self) -> Result<(), DbError> {
        MIGRATOR.run(&self.pool).await.map_err(|e| DbError::Migrate {
            url: self.url.clone(),
            reason: e.to_string(),
        })
    }

    /// Ok when every embedded migration has been applied.
    pub async fn check_migrated(&self) -> Result<(), DbError> {
        let applied: Vec<(i64,)> = sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| DbError::NotMigrated {
                url: self.url.clone(),
                reason: e.to_string(),
            })?;
        for m in MIGRATOR.iter() {
            if !applied.iter().any(|(v,)| *v == m.version) {
                return Err(DbError::NotMigrated {
                    url: self.url.clone(),
                    reason: format!(
                        "migration {} ({}) is missing; run `plesk-reseller-central migrate`",
                        m.version, m.description
                    ),
                });
            }
        }
        Ok(())
    }

    /// Runs the dialect's clean-up after a secret was erased; failures only cost time (the
    /// next checkpoint catches up), so they are logged, not returned.
    pub async fn after_erase(&self) {
        if let Some(stmt) = self.dialect.after_erase() {
            if let Err(e) = self.pool.execute(stmt).await {
                tracing::warn!(
                    "checkpoint after erasing an activation code failed on {}: {e}",
                    self.url
                );
            }
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
