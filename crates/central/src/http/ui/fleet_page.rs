//! `/ui`: every host, worst first, with the counts by health on top and a search by host or
//! key number. `?q=` searches, `?health=` or `?not_seen=1` narrows, `?page=` pages.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::format::{self, Paging};
use super::layout::{self, Section};
use super::Params;
use crate::fleet::enroll::KeyRow;
use crate::fleet::host_health::{self, Census, Health};
use crate::fleet::store::Host;
use crate::http::app::App;

pub const PER_PAGE: usize = 200;

/// What the page is asked to show.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Lowercased; matches a part of the host id or the key number.
    pub search: String,
    pub health: Option<Health>,
    pub not_seen: bool,
}

impl Filter {
    pub fn from(p: &Params) -> Result<Filter, String> {
        let search = p.text("q", 200)?.unwrap_or_default().trim().to_lowercase();
        let health = match p.text("health", 20)? {
            None => None,
            Some(h) if h.is_empty() => None,
            Some(h) => Some(
                Health::parse(&h)
                    .ok_or_else(|| format!("the health {h:?} is none of ok, out_of_sync, degraded, no_report"))?,
            ),
        };
        let not_seen = p.text("not_seen", 1)?.is_some_and(|v| v == "1");
        Ok(Filter {
            search,
            health,
            not_seen,
        })
    }

    fn keeps(&self, h: &Host, now: i64) -> bool {
        let found = self.search.is_empty()
            || h.id.to_lowercase().contains(&self.search)
            || h.key_number
                .as_deref()
                .is_some_and(|k| k.to_lowercase().contains(&self.search));
        found
            && self.health.is_none_or(|want| host_health::of(h) == want)
            && (!self.not_seen || host_health::not_seen(h, now))
    }

    /// This page's URL with `page`.
    fn link(&self, page: usize) -> String {
        let mut u = format!("/ui?page={page}");
        if !self.search.is_empty() {
            u.push_str(&format!("&q={}", format::q(&self.search)));
        }
        if let Some(h) = self.health {
            u.push_str(&format!("&health={}", h.name()));
        }
        if self.not_seen {
            u.push_str("&not_seen=1");
        }
        u
    }
}

pub async fn get(State(app): State<App>, Query(p): Query<Params>) -> Response {
    let now = app.store.now();
    let (filter, paging) = match (Filter::from(&p), p.paging(PER_PAGE)) {
        (Ok(f), Ok(pg)) => (f, pg),
        (Err(e), _) | (_, Err(e)) => return layout::problem(StatusCode::BAD_REQUEST, Section::Fleet, now, &e),
    };
    // Orders KA's answers could not settle: an operator must look (docs/orders.md).
    let attention = match &app.orders {
        Some(o) => o.recent(None, Some("attention"), 20, 0).await.unwrap_or_default(),
        None => (Vec::new(), 0),
    };
    // Webhooks given up after 3 days: the store missed these (docs/webhooks.md).
    let undeliverable = match &app.webhooks {
        Some(w) => w.feed.undeliverable(20).await.unwrap_or_default(),
        None => (Vec::new(), 0),
    };
    // Enroll keys: never their secret (the database has only its hash).
    let keys = app.store.enroll_keys().await.unwrap_or_default();
    match app.store.hosts().await {
        Ok(hosts) => layout::respond(
            StatusCode::OK,
            render_with_keys(&hosts, &filter, paging, now, &attention, &undeliverable, &keys),
        ),
        Err(e) => super::store_down(now, Section::Fleet, e),
    }
}

/// Worst first: degraded, out of sync, no report, then OK; within each, the unseen first.
fn rank(h: &Host, now: i64) -> (u8, bool) {
    let health = match host_health::of(h) {
        Health::Degraded => 0,
        Health::OutOfSync => 1,
        Health::NoReport => 2,
        Health::Ok => 3,
    };
    (health, !host_health::not_seen(h, now))
}

/// The whole page for `hosts` (all of them: the counts cover the fleet, the table the filter).
pub fn render(
    hosts: &[Host],
    filter: &Filter,
    paging: Paging,
    now: i64,
    attention: &(Vec<crate::commerce::orders::Order>, i64),
    undeliverable: &(Vec<crate::events::Event>, i64),
) -> Markup {
    render_with_keys(hosts, filter, paging, now, attention, undeliverable, &[])
}

/// [`render`], with the enroll keys below the hosts.
pub fn render_with_keys(
    hosts: &[Host],
    filter: &Filter,
    paging: Paging,
    now: i64,
    attention: &(Vec<crate::commerce::orders::Order>, i64),
    undeliverable: &(Vec<crate::events::Event>, i64),
    keys: &[KeyRow],
) -> Markup {
    let census = Census::of(hosts, now);
    let mut shown: Vec<((u8, bool), &Host)> = hosts
        .iter()
        .filter(|h| filter.keeps(h, now))
        .map(|h| (rank(h, now), h))
        .collect();
    // hosts() is ordered by id, and the sort is stable: ties stay alphabetical.
    shown.sort_by_key(|(r, _)| *r);
    let total = shown.len();
    let rows = shown.iter().skip(paging.offset()).take(paging.per).map(|(_, h)| *h);
    let body = html! {
        h1 { "Fleet" }
        (attention_orders(attention))
        (undeliverable_webhooks(undeliverable, now))
        (cards(&census, filter))
        form.search method="get" action="/ui" role="search" {
            input type="search" name="q" value=(filter.search) placeholder="host or key number"
                aria-label="search by host or key number" maxlength="200";
            @if let Some(h) = filter.health { input type="hidden" name="health" value=(h.name()); }
            @if filter.not_seen { input type="hidden" name="not_seen" value="1"; }
            button type="submit" { "Search" }
            @if *filter != Filter::default() { a href="/ui" { "clear" } }
        }
        table #hosts {
            thead { tr {
                th { "Host" } th { "Health" } th { "Last seen" } th { "Key number" }
                th { "Agent" } th { "Plesk" } th { "panel.ini" } th { "Problems" } th { "Joined" }
            } }
            tbody {
                @for h in rows { (row(h, now)) }
            }
        }
        @if total == 0 { p.muted #no-hosts { "No host matches." } }
        (paging.nav(total, |n| filter.link(n)))
        (enroll_keys(keys, now))
    };
    layout::page("Fleet", Section::Fleet, now, body)
}

/// Orders in `attention`, with their reason: never bought again until an operator retries.
fn attention_orders((list, total): &(Vec<crate::commerce::orders::Order>, i64)) -> Markup {
    html! {
        @if *total > 0 {
            section.attention #orders-attention {
                h2 { a href="/ui/orders?state=attention" { (total) " order(s) need attention" } }
                ul { @for o in list {
                    li data-order=(o.id) {
                        span.mono { (o.id) } ": " (format::first_line(o.error.as_deref().unwrap_or(""), 300))
                    }
                } }
                p.muted { "Fix the cause, then " code { "orders retry ID" } " (docs/orders.md)." }
            }
        }
    }
}

/// Events whose webhook was given up (3 days of failures), newest first, with the last error.
fn undeliverable_webhooks((list, total): &(Vec<crate::events::Event>, i64), now: i64) -> Markup {
    html! {
        @if *total > 0 {
            section.attention #webhooks-undeliverable {
                h2 { (total) " webhook(s) undeliverable" }
                ul { @for e in list {
                    li data-event=(e.id) {
                        span.mono { (e.id) " " (e.kind) } " " (format::when(now, Some(e.timestamp)))
                        ": " (format::first_line(e.delivery.last_error.as_deref().unwrap_or(""), 300))
                    }
                } }
                p.muted { "The store can fetch them with " code { "events list --undelivered" } " (docs/webhooks.md)." }
            }
        }
    }
}

fn cards(c: &Census, filter: &Filter) -> Markup {
    let all = filter.health.is_none() && !filter.not_seen;
    html! {
        div.cards {
            a.card.all #count-all href="/ui" aria-current=[all.then_some("true")] {
                span.n { (c.total) } "Hosts"
            }
            @for h in Health::ALL {
                a.card.(h.name()) id={ "count-" (h.name()) } href={ "/ui?health=" (h.name()) }
                    aria-current=[(filter.health == Some(h)).then_some("true")] {
                    span.n { (c.count(h)) } (h.label())
                }
            }
            a.card.not_seen #count-not_seen href="/ui?not_seen=1" aria-current=[filter.not_seen.then_some("true")] {
                span.n { (c.not_seen) } "Not seen for 10 min"
            }
        }
    }
}

/// The enroll keys (contract section 10): what each may still enroll and what it did.
fn enroll_keys(keys: &[KeyRow], now: i64) -> Markup {
    html! {
        @if !keys.is_empty() {
            section #enroll-keys {
                h2 { "Enroll keys" }
                table {
                    thead { tr {
                        th { "Key" } th { "Note" } th { "Uses left" } th { "Expires" } th { "For" }
                        th { "Last used" } th { "Hosts" } th { "State" }
                    } }
                    tbody { @for k in keys {
                        @let state = if k.revoked { "revoked" } else if k.expires_at <= now { "expired" }
                            else if k.uses_left <= 0 { "used up" } else { "usable" };
                        tr data-key=(k.id) {
                            td.mono { (k.id) }
                            td { (format::opt(k.note.as_deref())) }
                            td { (k.uses_left) " / " (k.uses) }
                            td { (format::when(now, Some(k.expires_at))) }
                            td.mono {
                                @if let Some(h) = &k.host { "host " (h) }
                                @else if let Some(p) = &k.host_pattern { "pattern " (p) }
                                @else { "any host" }
                            }
                            td { (format::when(now, k.last_used_at)) }
                            td { @for (i, h) in k.hosts.iter().enumerate() {
                                @if i > 0 { ", " }
                                a href={ "/ui/hosts/" (h) } { (h) }
                            } }
                            td { (state) }
                        }
                    } }
                }
            }
        }
    }
}

fn row(h: &Host, now: i64) -> Markup {
    let health = host_health::of(h);
    let report = h.report.as_ref();
    let plesk = report.and_then(|r| r.get("plesk_version")).and_then(|v| v.as_str());
    html! {
        tr data-host=(h.id) data-health=(health.name()) {
            td { a href={ "/ui/hosts/" (h.id) } { (h.id) } }
            td { span.badge.(health.name()) { (health.label()) } }
            td.stale[host_health::not_seen(h, now)] { (format::when(now, h.last_seen_at)) }
            td.mono { (format::opt(h.key_number.as_deref())) }
            td { (format::opt(h.agent_version.as_deref())) }
            td { (format::opt(plesk)) }
            td { (sync_text(host_health::in_sync(report))) }
            td.problems {
                @let problems = host_health::problems(report);
                @if !problems.is_empty() { ul { @for p in problems { li { (p) } } } }
            }
            td.mono {
                @if let Some(k) = &h.enrolled_by { "enroll key " (k) } @else { "hosts add" }
            }
        }
    }
}

pub fn sync_text(in_sync: Option<bool>) -> Markup {
    match in_sync {
        Some(true) => html! { "in sync" },
        Some(false) => html! { span.error { "out of sync" } },
        None => html! { span.muted { "—" } },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Delivery, Event};

    #[test]
    fn undeliverable_webhooks_are_counted_and_listed_with_their_last_error() {
        let ev = Event {
            id: 42,
            kind: "order.done".into(),
            timestamp: 1_000,
            data: serde_json::json!({"order": "o-1"}),
            delivery: Delivery {
                state: "undeliverable".into(),
                attempts: 80,
                next_attempt_at: None,
                last_error: Some("http://127.0.0.1:9/h answered 500 <b>".into()),
                delivered_at: None,
            },
        };
        let paging = Paging { page: 1, per: PER_PAGE };
        let none = (Vec::new(), 0);
        let page = render(&[], &Filter::default(), paging, 5_000, &none, &(vec![ev], 3)).into_string();
        assert!(page.contains("3 webhook(s) undeliverable"), "{page}");
        assert!(
            page.contains("data-event=\"42\"") && page.contains("order.done"),
            "{page}"
        );
        assert!(page.contains("answered 500 &lt;b&gt;"), "escaped: {page}");
        let quiet = render(&[], &Filter::default(), paging, 5_000, &none, &(Vec::new(), 0)).into_string();
        assert!(!quiet.contains("webhooks-undeliverable"));
    }
}
