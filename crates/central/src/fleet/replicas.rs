//! PostgreSQL with several replicas: each replica LISTENs on `central_host` over its own
//! direct connection (not the pool, not a transaction-pooling bouncer) and wakes the polls it
//! holds for the host named in each notification. Whenever it (re)connects it wakes every held
//! poll, since notifications sent while it was not listening are lost; the held poll's
//! re-read at its deadline stays the last safety net. An idle connection is asked a question
//! every [`PING_EVERY`]: one a NAT or firewall dropped without a word never ends by itself,
//! and the question also keeps such state alive.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::watch;

use crate::fleet::waiters::Waiters;

/// The channel [`crate::db::Dialect::notify_statement`] sends on.
pub const CHANNEL: &str = "central_host";
/// Pause between attempts while the database refuses the listening connection.
const RETRY: Duration = Duration::from_secs(1);
/// After this long without a notification, the connection must answer `SELECT 1` ...
const PING_EVERY: Duration = Duration::from_secs(15);
/// ... within this, and a new connection must be made within it too.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How the listening connection shows in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "plesk-reseller-central listener";

async fn listen(url: &str) -> Result<PgListener, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(PING_TIMEOUT)
        .connect_with(options.application_name(APPLICATION_NAME))
        .await?;
    let mut l = PgListener::connect_with(&pool).await?;
    l.listen_all([CHANNEL, crate::events::CHANNEL]).await?;
    Ok(l)
}

/// Listens until `stop` turns true. `url` may hold a password; only `shown` is logged.
pub async fn run(url: String, shown: String, waiters: Arc<Waiters>, mut stop: watch::Receiver<bool>) {
    let mut failing = false;
    loop {
        let listener = async {
            match tokio::time::timeout(PING_TIMEOUT * 2, listen(&url)).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no connection within {} s", (PING_TIMEOUT * 2).as_secs())),
            }
        };
        let mut l = tokio::select! {
            r = listener => match r {
                Ok(l) => l,
                Err(e) => {
                    // One line per outage, not one per second.
                    if !failing {
                        tracing::warn!("cannot listen for other replicas' changes on {shown}: {e}; retrying");
                        failing = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY) => continue,
                        _ = stop.changed() => return,
                    }
                }
            },
            _ = stop.changed() => return,
        };
        if failing {
            tracing::info!("listening for other replicas' changes on {shown} again");
            failing = false;
        }
        // Whatever changed while nobody listened: every held poll re-reads.
        waiters.notify_all();
        crate::events::wake();
        loop {
            tokio::select! {
                r = l.try_recv() => match r {
                    // An event committed somewhere: this replica's webhook worker looks.
                    Ok(Some(n)) if n.channel() == crate::events::CHANNEL => crate::events::wake(),
                    Ok(Some(n)) => waiters.notify(n.payload()),
                    Ok(None) => {
                        tracing::warn!("lost the listening connection to {shown}; reconnecting");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!("listening on {shown} failed: {e}; reconnecting");
                        break;
                    }
                },
                // Only when idle: any notification proves the connection alive.
                _ = tokio::time::sleep(PING_EVERY) => {
                    let ping = sqlx::query("SELECT 1").execute(&mut l);
                    if !matches!(tokio::time::timeout(PING_TIMEOUT, ping).await, Ok(Ok(_))) {
                        tracing::warn!("the listening connection to {shown} does not answer; reconnecting");
                        break;
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }
}
