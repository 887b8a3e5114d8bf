//! `/ui/licenses`: every license with its state, host, KA's last-read status, last operation
//! and drift, and the operations in flight. `?host=` and `?state=` filter. Everything KA or an
//! agent sent is shown as text (maud escapes it).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::format;
use super::layout::{self, Section};
use crate::commerce::licenses::{License, Operation, STATES};
use crate::http::app::App;

#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    host: Option<String>,
    state: Option<String>,
}

pub async fn get(State(app): State<App>, Query(f): Query<Filter>) -> Response {
    let now = app.store.now();
    let Some(licenses) = &app.licenses else {
        return layout::problem(
            StatusCode::NOT_FOUND,
            Section::Licenses,
            now,
            "Licenses are not served here.",
        );
    };
    if let Some(s) = f.state.as_deref().filter(|s| !STATES.contains(s)) {
        let msg = format!("The state {s:?} is none of {}.", STATES.join(", "));
        return layout::problem(StatusCode::BAD_REQUEST, Section::Licenses, now, &msg);
    }
    let host = f.host.as_deref().filter(|h| !h.is_empty());
    let state = f.state.as_deref().filter(|s| !s.is_empty());
    let (list, last, flight) = match (
        licenses.list(host, state).await,
        licenses.last_operations().await,
        licenses.in_flight(50).await,
    ) {
        (Ok(l), Ok(o), Ok(f)) => (l, o, f),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return super::store_down(now, Section::Licenses, e),
    };
    let drifted = list.iter().filter(|l| l.drift.is_some()).count();
    let body = html! {
        h1 { "Licenses" }
        p {
            (list.len()) " license(s)"
            @if drifted > 0 { ", " span.badge.attention { (drifted) " with drift" } " (changed in KA outside the central)" }
        }
        h2 { "Operations in flight" }
        (operations(&flight, now))
        h2 { "All licenses" }
        (table(&list, &last, now, true))
    };
    layout::respond(StatusCode::OK, layout::page("Licenses", Section::Licenses, now, body))
}

pub fn operations(ops: &[Operation], now: i64) -> Markup {
    html! {
        @if ops.is_empty() { p.muted { "None." } } @else {
            table.operations {
                thead { tr { th { "Operation" } th { "License" } th { "What" } th { "State" } th { "Host job" } th { "Since" } th { "Last error" } } }
                tbody {
                    @for o in ops {
                        tr data-operation=(o.id) {
                            td.mono { (o.id) }
                            td.mono { (o.license) }
                            td { (o.kind) }
                            td { span.badge.(o.state) { (o.state) } }
                            td { (format::opt(o.job_state.as_deref().or(o.job_wait.as_deref()))) }
                            td { (format::when(now, Some(o.created_at))) }
                            td.error { @if let Some(e) = &o.error { (format::first_line(e, 200)) } }
                        }
                    }
                }
            }
        }
    }
}

pub fn table(list: &[License], last: &HashMap<i64, Operation>, now: i64, with_host: bool) -> Markup {
    html! {
        table.licenses {
            thead { tr {
                th { "License" } th { "Key number (KA / server)" } th { "Kind" } th { "State" }
                @if with_host { th { "Host" } } th { "KA status" } th { "Last operation" } th { "Drift" } th { "Checked" }
            } }
            tbody {
                @for l in list {
                    tr data-license=(l.id) data-state=(l.state) {
                        td.mono { (l.id) }
                        td.mono {
                            (l.key_number)
                            @if let Some(h) = &l.host_key_number { " / " (h) }
                        }
                        td { (l.kind) @if let Some(p) = l.parent { " of " span.mono { (p) } } }
                        td { span.badge.(l.state) { (l.state) } }
                        @if with_host { td { @match &l.host { Some(h) => a href={ "/ui/hosts/" (h) } { (h) }, None => span.muted { "unknown" } } } }
                        td { (format::opt(l.ka.status.as_deref())) }
                        td {
                            @if let Some(o) = last.get(&l.id) {
                                (o.kind) " " span.badge.(o.state) { (o.state) }
                                @if let Some(e) = &o.error { " " span.error { (format::first_line(e, 120)) } }
                            } @else { span.muted { "-" } }
                        }
                        td.error { @if let Some(d) = &l.drift { (d) } }
                        td { (format::when(now, l.ka.checked_at)) }
                    }
                }
            }
        }
        @if list.is_empty() { p.muted { "No licenses." } }
    }
}
