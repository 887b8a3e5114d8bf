//! `/ui/hosts/{id}`: one host's report, its jobs with their results, and its orders.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde_json::Value;

use super::format;
use super::layout::{self, Section};
use super::{jobs_page, licenses_page, orders_page};
use crate::fleet::host_health;
use crate::fleet::store::{Host, StoreError};
use crate::http::app::App;

/// The newest jobs and orders shown; the jobs and orders pages have them all.
const RECENT: i64 = 50;

pub async fn get(State(app): State<App>, Path(id): Path<String>) -> Response {
    let now = app.store.now();
    let host = match app.store.host(&id).await {
        Ok(h) => h,
        Err(StoreError::NoHost(_)) => {
            return layout::problem(
                StatusCode::NOT_FOUND,
                Section::Fleet,
                now,
                &format!("There is no host {id:?}."),
            )
        }
        Err(e) => return super::store_down(now, Section::Fleet, e),
    };
    let jobs = match app.store.recent_jobs(Some(&id), None, RECENT, 0).await {
        Ok(j) => j,
        Err(e) => return super::store_down(now, Section::Fleet, e),
    };
    let orders = match &app.orders {
        Some(o) => o.recent(Some(&id), None, RECENT, 0).await.ok(),
        None => None,
    };
    let licenses = match &app.licenses {
        Some(l) => match (l.list(Some(&id), None).await, l.last_operations().await) {
            (Ok(list), Ok(last)) => Some((list, last)),
            _ => None,
        },
        None => None,
    };
    let fleet = (
        app.config.fleet_buy_url.as_deref(),
        app.config.fleet_catalog_url.as_deref(),
    );
    let body = html! {
        h1 { "Host " span.mono { (host.id) } }
        (facts(&host, fleet, now))
        (panel_ini(host.report.as_ref()))
        h2 { "Jobs" }
        (jobs_page::table(&jobs.0, now, false))
        @if jobs.1 > RECENT { p { a href={ "/ui/jobs?host=" (host.id) } { "all " (jobs.1) " jobs" } } }
        h2 { "Licenses" }
        @match &licenses {
            Some((list, last)) => (licenses_page::table(list, last, now, false)),
            None => p.muted { "Licenses cannot be read here." },
        }
        h2 { "Orders" }
        @match &orders {
            Some((list, total)) => {
                (orders_page::table(list, now, false))
                @if *total > RECENT { p { a href={ "/ui/orders?host=" (host.id) } { "all " (total) " orders" } } }
            }
            None => p.muted { "Orders are not served here." },
        }
    };
    layout::respond(StatusCode::OK, layout::page(&host.id, Section::Fleet, now, body))
}

/// A per-host value or the fleet's, saying which.
fn effective(own: Option<&str>, fleet: Option<&str>) -> Markup {
    match (own, fleet) {
        (Some(""), _) => html! { span.muted { "absent (this host)" } },
        (Some(v), _) => html! { (v) " " span.muted { "(this host)" } },
        (None, Some(v)) if !v.is_empty() => html! { (v) " " span.muted { "(fleet)" } },
        (None, _) => html! { span.muted { "absent (fleet)" } },
    }
}

fn facts(h: &Host, fleet: (Option<&str>, Option<&str>), now: i64) -> Markup {
    let health = host_health::of(h);
    let report = h.report.as_ref();
    let plesk = report.and_then(|r| r.get("plesk_version")).and_then(Value::as_str);
    let problems = host_health::problems(report);
    html! {
        dl.facts #facts {
            dt { "Health" } dd { span.badge.(health.name()) #health { (health.label()) } }
            dt { "Last seen" } dd.stale[host_health::not_seen(h, now)] { (format::when(now, h.last_seen_at)) }
            dt { "Key number" } dd.mono { (format::opt(h.key_number.as_deref())) }
            dt { "Agent" } dd { (format::opt(h.agent_version.as_deref())) }
            dt { "Plesk" } dd { (format::opt(plesk)) }
            dt { "Last report" } dd { (format::when(now, h.report_at)) }
            dt { "Registered" } dd { (format::when(now, Some(h.created_at))) }
            dt { "buyUrl" } dd { (effective(h.buy_url.as_deref(), fleet.0)) }
            dt { "catalog.url" } dd { (effective(h.catalog_url.as_deref(), fleet.1)) }
            dt { "Wake pushes" } dd { (format::opt(h.push_url.as_deref())) }
            dt { "Problems" }
            dd #problems {
                @if problems.is_empty() { span.muted { "none" } }
                @else { ul { @for p in problems { li { (p) } } } }
            }
        }
    }
}

fn panel_ini(report: Option<&Value>) -> Markup {
    let Some(p) = report.and_then(|r| r.get("panel_ini")) else {
        return html! {};
    };
    let s = |k: &str| p.get(k).and_then(Value::as_str);
    html! {
        h2 { "panel.ini as reported" }
        dl.facts {
            dt { "Path" } dd.mono { (format::opt(s("path"))) }
            dt { "buyUrl" } dd { (format::opt(s("buy_url"))) }
            dt { "catalog.url" } dd { (format::opt(s("catalog_url"))) }
            dt { "State" } dd { (super::fleet_page::sync_text(p.get("in_sync").and_then(Value::as_bool))) }
            dt { "Repairs" } dd { (p.get("repairs").and_then(Value::as_u64).unwrap_or(0)) }
        }
    }
}
