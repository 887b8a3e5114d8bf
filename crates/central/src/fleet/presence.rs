//! host.offline / host.back (contract section 11): a host not seen for `[fleet]
//! offline_after` goes offline once; its next poll or report brings it back (that half is in
//! [`Store::flush_last_seen`]). Each replica sweeps; the conditional UPDATE in
//! [`Store::mark_offline`] makes each transition one event whichever replica sees it.

use std::time::Duration;

use tokio::sync::watch;

use crate::fleet::store::Store;

/// How often the sweep runs: a quarter of `offline_after`, between 1 s and 30 s.
fn period(offline_after_s: u64) -> Duration {
    Duration::from_secs((offline_after_s / 4).clamp(1, 30))
}

/// Sweeps until `stop`. A host's absence is judged only once this process has been up for
/// `offline_after`: after the central itself was down, its hosts get the time to come back.
pub async fn run(store: Store, offline_after_s: u64, mut stop: watch::Receiver<bool>) {
    let after_ms = offline_after_s as i64 * 1000;
    let started = store.now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period(offline_after_s)) => {}
            _ = stop.changed() => return,
        }
        let now = store.now();
        if now - started < after_ms {
            continue;
        }
        match store.mark_offline(now - after_ms).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("{n} host(s) not seen for {offline_after_s} s: host.offline"),
            Err(e) => tracing::warn!("cannot look for offline hosts: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sweep_runs_often_enough_and_not_too_often() {
        assert_eq!(super::period(600).as_secs(), 30);
        assert_eq!(super::period(8).as_secs(), 2);
        assert_eq!(super::period(1).as_secs(), 1);
    }
}
