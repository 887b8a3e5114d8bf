//! `/ui/jobs`: the queue and what became of each job, newest first. `?state=`, `?host=`,
//! `?page=`. Results are shown with every activation code masked, whatever the agent sent.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use plesk_reseller_protocol as proto;
use serde_json::Value;

use super::format;
use super::layout::{self, Section};
use super::{ListQuery, Params};
use crate::fleet::store::{JobRow, JOB_STATES as STATES};
use crate::http::app::App;

const PER_PAGE: usize = 200;

pub async fn get(State(app): State<App>, Query(p): Query<Params>) -> Response {
    let now = app.store.now();
    let q = match ListQuery::parse(&p, "/ui/jobs", STATES, PER_PAGE) {
        Ok(q) => q,
        Err(e) => return layout::problem(StatusCode::BAD_REQUEST, Section::Jobs, now, &e),
    };
    let (per, offset) = (q.paging.per as i64, q.paging.offset() as i64);
    let (jobs, total) = match app
        .store
        .recent_jobs(q.host.as_deref(), q.state.as_deref(), per, offset)
        .await
    {
        Ok(v) => v,
        Err(e) => return super::store_down(now, Section::Jobs, e),
    };
    let body = q.page("Jobs", STATES, |s| html! { (s) }, table(&jobs, now, true), total);
    layout::respond(StatusCode::OK, layout::page("Jobs", Section::Jobs, now, body))
}

/// Jobs as rows; `with_host` adds the host column (not on a host's own page).
pub fn table(jobs: &[JobRow], now: i64, with_host: bool) -> Markup {
    html! {
        table.jobs {
            thead { tr {
                th { "Job" } @if with_host { th { "Host" } } th { "Type" } th { "State" }
                th { "Queued" } th { "Ended" } th { "Result" }
            } }
            tbody {
                @for j in jobs {
                    tr data-job=(j.id) data-state=(j.state) {
                        td.mono { (j.id) }
                        @if with_host { td { a href={ "/ui/hosts/" (j.host) } { (j.host) } } }
                        td { (j.kind) }
                        td { span.badge.(j.state) { (j.state) } }
                        td { (format::when(now, Some(j.created_at))) }
                        td { @if j.ended_at.is_some() { (format::when(now, j.ended_at)) } @else { span.muted { "—" } } }
                        td.result { (result(j.result.as_ref())) }
                    }
                }
            }
        }
        @if jobs.is_empty() { p.muted { "No jobs." } }
    }
}

/// The agent's status and exit code, and its output (masked) folded under its first line.
fn result(r: Option<&Value>) -> Markup {
    let Some(r) = r else {
        return html! { span.muted { "—" } };
    };
    let status = r.get("status").and_then(Value::as_str).unwrap_or("?");
    let output = proto::mask::activation_codes(r.get("output").and_then(Value::as_str).unwrap_or(""));
    let attempts = r.get("attempts").and_then(Value::as_u64).unwrap_or(1);
    html! {
        span { (status) }
        @if let Some(code) = r.get("exit_code").and_then(Value::as_i64) { " (exit " (code) ")" }
        @if attempts > 1 { span.muted { ", " (attempts) " attempts" } }
        @if !output.trim().is_empty() {
            details {
                summary { (format::first_line(&output, 120)) }
                pre { (output) }
            }
        }
    }
}
