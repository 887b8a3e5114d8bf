//! Counters for `/metrics` (Prometheus text format).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The `kind` label of `catalog_proxy_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Packages,
    Categories,
    Passthrough,
    Other,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Packages => "packages",
            Kind::Categories => "categories",
            Kind::Passthrough => "passthrough",
            Kind::Other => "other",
        }
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(Kind, u16), u64>>,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub upstream_fetches: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub stale_served: AtomicU64,
    pub hidden_items: AtomicU64,
}

impl Metrics {
    pub fn request(&self, kind: Kind, status: u16) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((kind, status))
            .or_default() += 1;
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str("# HELP catalog_proxy_requests_total Requests answered, by kind and status.\n");
        out.push_str("# TYPE catalog_proxy_requests_total counter\n");
        for ((kind, code), n) in self.requests.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "catalog_proxy_requests_total{{kind=\"{}\",code=\"{code}\"}} {n}",
                kind.label()
            );
        }
        let counters: [(&str, &str, &AtomicU64); 6] = [
            (
                "cache_hits_total",
                "Answers found fresh in the cache.",
                &self.cache_hits,
            ),
            (
                "cache_misses_total",
                "Lookups that needed an upstream fetch (their own or one in flight).",
                &self.cache_misses,
            ),
            (
                "upstream_fetches_total",
                "Requests sent upstream.",
                &self.upstream_fetches,
            ),
            (
                "upstream_errors_total",
                "Upstream fetches that failed (network, timeout, 5xx, bad shape, too large).",
                &self.upstream_errors,
            ),
            (
                "stale_served_total",
                "Responses served stale because upstream failed.",
                &self.stale_served,
            ),
            (
                "hidden_items_total",
                "Packages items removed from responses sent.",
                &self.hidden_items,
            ),
        ];
        for (name, help, v) in counters {
            let _ = write!(
                out,
                "# HELP catalog_proxy_{name} {help}\n# TYPE catalog_proxy_{name} counter\ncatalog_proxy_{name} {}\n",
                v.load(Ordering::Relaxed)
            );
        }
        out
    }
}
