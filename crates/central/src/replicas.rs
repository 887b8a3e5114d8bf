//! PostgreSQL with several replicas: each replica LISTENs on `central_host` over its own
//! direct connection (not the pool, not a transaction-pooling bouncer) and wakes the polls it
//! holds for the host named in each notification. Whenever it (re)connects it wakes every held
//! poll, since notifications sent while it was not listening are lost; the held poll's
//! re-read at its deadline stays the last safety net.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::waiters::Waiters;

/// The channel [`crate::db::Dialect::notify_statement`] sends on.
pub const CHANNEL: &str = "central_host";
/// Pause between attempts while the database refuses the listening connection.
const RETRY: Duration = Duration::from_secs(1);

/// Listens until `stop` turns true. `url` may hold a password; only `shown` is logged.
pub async fn run(url: String, shown: String, waiters: Arc<Waiters>, mut stop: watch::Receiver<bool>) {
    let mut failing = false;
    loop {
        let listener = async {
            let mut l = PgListener::connect(&url).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
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
        loop {
            tokio::select! {
                r = l.try_recv() => match r {
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
                _ = stop.changed() => return,
            }
        }
    }
}
