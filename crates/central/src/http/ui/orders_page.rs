//! `/ui/orders`: orders and where each stands between the payment and the installed
//! license, newest first. `?state=`, `?host=`, `?page=`. Activation codes never reach here.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::format;
use super::layout::{self, Section};
use super::{ListQuery, Params};
use crate::commerce::orders::{Order, STATES};
use crate::http::app::App;

const PER_PAGE: usize = 200;

pub async fn get(State(app): State<App>, Query(p): Query<Params>) -> Response {
    let now = app.store.now();
    let q = match ListQuery::parse(&p, "/ui/orders", STATES, PER_PAGE) {
        Ok(q) => q,
        Err(e) => return layout::problem(StatusCode::BAD_REQUEST, Section::Orders, now, &e),
    };
    let Some(orders) = &app.orders else {
        return layout::problem(
            StatusCode::NOT_FOUND,
            Section::Orders,
            now,
            "Orders are not served here.",
        );
    };
    let (per, offset) = (q.paging.per as i64, q.paging.offset() as i64);
    let (list, total) = match orders.recent(q.host.as_deref(), q.state.as_deref(), per, offset).await {
        Ok(v) => v,
        Err(e) => return super::store_down(now, Section::Orders, e),
    };
    let counts = orders.counts().await;
    let count = |s: &str| counts.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    let label = |s: &str| html! { (s) " (" (count(s)) ")" };
    let body = q.page("Orders", STATES, label, table(&list, now, true), total);
    layout::respond(StatusCode::OK, layout::page("Orders", Section::Orders, now, body))
}

pub fn table(orders: &[Order], now: i64, with_host: bool) -> Markup {
    html! {
        table.orders {
            thead { tr {
                th { "Order" } @if with_host { th { "Host" } } th { "What" } th { "State" }
                th { "KA key" } th { "Job" } th { "Placed" } th { "Updated" } th { "Last error" }
            } }
            tbody {
                @for o in orders {
                    tr data-order=(o.id) data-state=(o.state) {
                        td.mono { (o.id) }
                        @if with_host { td { a href={ "/ui/hosts/" (o.host) } { (o.host) } } }
                        td { @if o.kind == "plesk" { "Plesk license" } @else { "extension " (format::opt(o.extension_id.as_deref())) } }
                        td { span.badge.(o.state) { (o.state) } }
                        td.mono { (format::opt(o.ka_key_number.as_deref())) }
                        td.mono { (format::opt(o.job_id.as_deref())) }
                        td { (format::when(now, Some(o.created_at))) }
                        td { (format::when(now, Some(o.updated_at))) }
                        td.error { @if let Some(e) = &o.error { (format::first_line(e, 200)) } }
                    }
                }
            }
        }
        @if orders.is_empty() { p.muted { "No orders." } }
    }
}
