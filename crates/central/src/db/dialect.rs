//! Everything that differs between SQLite and PostgreSQL: connection set-up, how a write
//! transaction begins, what follows erasing a secret. No other module holds database-specific
//! SQL. PostgreSQL's NOTIFY, which tells the other replicas, is here too.

/// The kind of database behind `[database] url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn of_url(url: &str) -> Option<Dialect> {
        if url.starts_with("sqlite:") {
            Some(Dialect::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Dialect::Postgres)
        } else {
            None
        }
    }

    /// Run on every new connection.
    pub fn connect_statements(self) -> &'static [&'static str] {
        match self {
            // WAL: readers never block the writer; NORMAL is durable across a process crash
            // in WAL mode; secure_delete zeroes freed bytes so an erased activation code
            // leaves no trace in the file.
            Dialect::Sqlite => &[
                "PRAGMA journal_mode = WAL",
                "PRAGMA busy_timeout = 10000",
                "PRAGMA synchronous = NORMAL",
                "PRAGMA foreign_keys = ON",
                "PRAGMA secure_delete = ON",
            ],
            Dialect::Postgres => &[],
        }
    }

    /// How a transaction that will write begins. SQLite: IMMEDIATE takes the write lock at
    /// once, so concurrent writers queue on busy_timeout instead of failing with "database is
    /// locked" when a deferred transaction upgrades (313 of 400 failed that way in the design
    /// notes' measurement, none with IMMEDIATE).
    pub fn begin_write(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }

    /// Run after a secret was erased so that no copy stays in the files (SQLite: the old page
    /// images in the write-ahead log).
    pub fn after_erase(self) -> Option<&'static str> {
        match self {
            Dialect::Sqlite => Some("PRAGMA wal_checkpoint(TRUNCATE)"),
            Dialect::Postgres => None,
        }
    }

    /// Tells every replica's listener that `$1` (a host id) changed; run inside the bumping
    /// transaction, so the notification is delivered with the commit and never without it.
    /// SQLite has no replicas: one process owns the file.
    pub fn notify_statement(self) -> Option<&'static str> {
        match self {
            Dialect::Sqlite => None,
            // The outer SELECT keeps pg_notify's `void` out of the row the Any driver decodes.
            Dialect::Postgres => Some("SELECT 1 FROM (SELECT pg_notify('central_host', $1)) AS n"),
        }
    }

    /// Connections in the pool: SQLite has one writer anyway.
    pub fn pool_size(self) -> u32 {
        match self {
            Dialect::Sqlite => 8,
            Dialect::Postgres => 16,
        }
    }
}
