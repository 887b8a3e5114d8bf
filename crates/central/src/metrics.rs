//! Counters for `/metrics` (Prometheus text format) and `/healthz`.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    pub held_polls: AtomicI64,
    pub polls: AtomicU64,
    pub polls_304: AtomicU64,
    pub results: AtomicU64,
    pub reports: AtomicU64,
    pub wakes_sent: AtomicU64,
    pub wakes_failed: AtomicU64,
    pub rejected_connections: AtomicU64,
    /// TLS handshakes that failed or took longer than the header timeout.
    pub tls_failures: AtomicU64,
    /// KA Partner API calls made by orders, and those that failed.
    pub ka_calls: AtomicU64,
    pub ka_errors: AtomicU64,
}

/// Decrements the held-polls gauge however the poll ends (answer, error, client gone).
pub struct HeldGuard<'a>(&'a Metrics);

impl<'a> HeldGuard<'a> {
    pub fn new(m: &'a Metrics) -> Self {
        m.held_polls.fetch_add(1, Ordering::Relaxed);
        HeldGuard(m)
    }
}

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        self.0.held_polls.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Prometheus text; `job_states` is every job state, so each gets a line, zeros too (the
    /// caller passes the store's list: metrics sits below the domain and does not import it).
    pub fn render(&self, job_states: &[&str], jobs_by_state: &[(String, i64)]) -> String {
        let mut out = String::new();
        let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let rows: [(&str, &str, &str, String); 9] = [
            (
                "central_held_polls",
                "gauge",
                "Polls held open right now.",
                self.held_polls.load(Ordering::Relaxed).to_string(),
            ),
            (
                "central_polls_total",
                "counter",
                "Polls answered.",
                g(&self.polls).to_string(),
            ),
            (
                "central_polls_not_modified_total",
                "counter",
                "Polls answered 304.",
                g(&self.polls_304).to_string(),
            ),
            (
                "central_results_total",
                "counter",
                "Job results received.",
                g(&self.results).to_string(),
            ),
            (
                "central_reports_total",
                "counter",
                "Reports received.",
                g(&self.reports).to_string(),
            ),
            (
                "central_wakes_sent_total",
                "counter",
                "Wake pushes a host accepted.",
                g(&self.wakes_sent).to_string(),
            ),
            (
                "central_wakes_failed_total",
                "counter",
                "Wake pushes that failed.",
                g(&self.wakes_failed).to_string(),
            ),
            (
                "central_rejected_connections_total",
                "counter",
                "Connections refused with 503 at the cap.",
                g(&self.rejected_connections).to_string(),
            ),
            (
                "central_tls_handshake_failures_total",
                "counter",
                "TLS handshakes that failed or timed out.",
                g(&self.tls_failures).to_string(),
            ),
        ];
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        let _ = writeln!(out, "# HELP central_ka_calls_total KA Partner API calls.\n# TYPE central_ka_calls_total counter\ncentral_ka_calls_total {}", g(&self.ka_calls));
        let _ = writeln!(out, "# HELP central_ka_errors_total KA Partner API errors.\n# TYPE central_ka_errors_total counter\ncentral_ka_errors_total {}", g(&self.ka_errors));
        let _ = writeln!(out, "# HELP central_jobs Jobs by state.\n# TYPE central_jobs gauge");
        // Every state, zeros too: a dashboard's series should not appear and vanish.
        for state in job_states {
            let n = jobs_by_state.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "central_jobs{{state=\"{state}\"}} {n}");
        }
        out
    }
}
