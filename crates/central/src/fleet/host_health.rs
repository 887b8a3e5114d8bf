//! A host's health as an operator reads it, from its last report and its last poll. The fleet
//! page and `/metrics` count with this one definition, so the page and a dashboard agree.

use serde_json::Value;

use crate::fleet::store::Host;

/// A host that has not polled for this long is "not seen" (an agent polls at least every
/// poll interval, 60 s by default, or holds a poll for up to `max_wait`).
pub const NOT_SEEN_AFTER_MS: i64 = 10 * 60 * 1000;

/// From the agent's last report; the worst that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Ok,
    /// panel.ini differs from the fleet's values and the agent names no problem (yet).
    OutOfSync,
    /// The agent reports at least one problem (agent contract, section 8).
    Degraded,
    /// Registered, but no report has arrived.
    NoReport,
}

impl Health {
    pub const ALL: [Health; 4] = [Health::Ok, Health::OutOfSync, Health::Degraded, Health::NoReport];

    /// The label value in `/metrics` and the `health=` filter of the page.
    pub fn name(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::OutOfSync => "out_of_sync",
            Health::Degraded => "degraded",
            Health::NoReport => "no_report",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Health::Ok => "OK",
            Health::OutOfSync => "Out of sync",
            Health::Degraded => "Degraded",
            Health::NoReport => "No report",
        }
    }

    pub fn parse(s: &str) -> Option<Health> {
        Health::ALL.into_iter().find(|h| h.name() == s)
    }
}

/// The problems a report lists (sentences from the agent, shown escaped).
pub fn problems(report: Option<&Value>) -> Vec<&str> {
    report
        .and_then(|r| r.get("problems"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// panel.ini's state as reported: None before the first report.
pub fn in_sync(report: Option<&Value>) -> Option<bool> {
    report?.get("panel_ini")?.get("in_sync")?.as_bool()
}

pub fn of(host: &Host) -> Health {
    of_report(host.report.as_ref())
}

/// The health a report (or none) says.
pub fn of_report(report: Option<&Value>) -> Health {
    if report.is_none() {
        Health::NoReport
    } else if !problems(report).is_empty() {
        Health::Degraded
    } else if in_sync(report) == Some(false) {
        Health::OutOfSync
    } else {
        Health::Ok
    }
}

/// Never polled, or not for [`NOT_SEEN_AFTER_MS`].
pub fn not_seen(host: &Host, now_ms: i64) -> bool {
    not_seen_since(host.last_seen_at, now_ms)
}

pub fn not_seen_since(last_seen_at: Option<i64>, now_ms: i64) -> bool {
    last_seen_at.is_none_or(|t| now_ms - t > NOT_SEEN_AFTER_MS)
}

/// Hosts counted by health, and how many have not been seen.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Census {
    pub total: usize,
    pub by_health: [usize; 4],
    pub not_seen: usize,
}

impl Census {
    pub fn of(hosts: &[Host], now_ms: i64) -> Census {
        Census::of_parts(hosts.iter().map(|h| (h.last_seen_at, h.report.as_ref())), now_ms)
    }

    /// From each host's last poll time and report (what [`crate::fleet::store::Store::health_rows`] reads).
    pub fn of_parts<'a>(hosts: impl Iterator<Item = (Option<i64>, Option<&'a Value>)>, now_ms: i64) -> Census {
        let mut c = Census::default();
        for (last_seen_at, report) in hosts {
            c.total += 1;
            c.by_health[of_report(report) as usize] += 1;
            c.not_seen += usize::from(not_seen_since(last_seen_at, now_ms));
        }
        c
    }

    pub fn count(&self, h: Health) -> usize {
        self.by_health[h as usize]
    }

    /// Prometheus lines for `/metrics`.
    pub fn render_metrics(&self) -> String {
        let mut out = String::from(
            "# HELP central_hosts Hosts by health (from their last report).\n# TYPE central_hosts gauge\n",
        );
        for h in Health::ALL {
            out.push_str(&format!("central_hosts{{health=\"{}\"}} {}\n", h.name(), self.count(h)));
        }
        out.push_str(&format!(
            "# HELP central_hosts_not_seen Hosts that have not polled for 10 minutes, or never.\n\
             # TYPE central_hosts_not_seen gauge\ncentral_hosts_not_seen {}\n",
            self.not_seen
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(report: Option<Value>, last_seen_at: Option<i64>) -> Host {
        Host {
            id: "h".into(),
            push_url: None,
            buy_url: None,
            catalog_url: None,
            created_at: 0,
            last_seen_at,
            key_number: None,
            agent_version: None,
            report,
            report_at: None,
            push_secret: String::new(),
            enrolled_by: None,
            enrolled_at: None,
        }
    }

    #[test]
    fn the_worst_that_applies_wins() {
        let r = |in_sync: bool, problems: Value| json!({"panel_ini": {"in_sync": in_sync}, "problems": problems});
        assert_eq!(of(&host(None, Some(1))), Health::NoReport);
        assert_eq!(of(&host(Some(r(true, json!([]))), None)), Health::Ok);
        assert_eq!(of(&host(Some(r(false, json!([]))), None)), Health::OutOfSync);
        assert_eq!(
            of(&host(Some(r(false, json!(["panel.ini is read-only"]))), None)),
            Health::Degraded
        );
    }

    #[test]
    fn not_seen_means_ten_minutes_or_never() {
        let now = 100 * 60 * 1000;
        assert!(not_seen(&host(None, None), now));
        assert!(not_seen(&host(None, Some(now - NOT_SEEN_AFTER_MS - 1)), now));
        assert!(!not_seen(&host(None, Some(now - NOT_SEEN_AFTER_MS)), now));
        let c = Census::of(&[host(None, None), host(Some(json!({"problems": []})), Some(now))], now);
        assert_eq!(
            (c.total, c.count(Health::NoReport), c.count(Health::Ok), c.not_seen),
            (2, 1, 1, 1)
        );
        assert!(c.render_metrics().contains("central_hosts{health=\"degraded\"} 0\n"));
    }
}
