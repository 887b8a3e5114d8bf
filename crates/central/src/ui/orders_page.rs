//! `/ui/orders`: orders and where each stands between the payment and the installed
//! license, newest first. `?state=`, `?host=`, `?page=`. Activation codes never reach here.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::format;
use super::layout::{self, Section};
use super::Params;
use crate::app::App;
use crate::orders::{Order, STATES};

const PER_PAGE: usize = 200;

pub async fn get(State(app): State<App>, Query(p): Query<Params>) -> Response {
    let now = app.store.now();
    let parsed = (|| Ok::<_, String>((p.one_of("state", STATES)?, p.host()?, p.paging(PER_PAGE)?)))();
    let (state, host, paging) = match parsed {
        Ok(v) => v,
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
    let found = orders
        .recent(
            host.as_deref(),
            state.as_deref(),
            paging.per as i64,
            paging.offset() as i64,
        )
        .await;
    let (list, total) = match found {
        Ok(v) => v,
        Err(e) => {
            tracing::error!("{e}");
            return layout::problem(
                StatusCode::SERVICE_UNAVAILABLE,
                Section::Orders,
                now,
                "The database cannot be read; see the central's log.",
            );
        }
    };
    let counts = orders.counts().await;
    let link = |state: Option<&str>, page: usize| super::list_link("/ui/orders", state, host.as_deref(), page);
    let count = |s: &str| counts.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    let body = html! {
        h1 { "Orders" @if let Some(h) = &host { " of " a.mono href={ "/ui/hosts/" (h) } { (h) } } }
        nav.filters aria-label="states" {
            a href=(link(None, 1)) aria-current=[state.is_none().then_some("true")] { "all" }
            @for s in STATES {
                a id={ "orders-" (s) } href=(link(Some(s), 1)) aria-current=[(state.as_deref() == Some(*s)).then_some("true")] {
                    (s) " (" (count(s)) ")"
                }
            }
        }
        (table(&list, now, true))
        (paging.nav(total as usize, |n| link(state.as_deref(), n)))
    };
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
