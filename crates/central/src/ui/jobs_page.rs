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
use super::Params;
use crate::app::App;
use crate::store::{JobRow, JOB_STATES as STATES};

const PER_PAGE: usize = 200;

pub async fn get(State(app): State<App>, Query(p): Query<Params>) -> Response {
    let now = app.store.now();
    let parsed = (|| Ok::<_, String>((p.one_of("state", STATES)?, p.host()?, p.paging(PER_PAGE)?)))();
    let (state, host, paging) = match parsed {
        Ok(v) => v,
        Err(e) => return layout::problem(StatusCode::BAD_REQUEST, Section::Jobs, now, &e),
    };
    let found = app
        .store
        .recent_jobs(
            host.as_deref(),
            state.as_deref(),
            paging.per as i64,
            paging.offset() as i64,
        )
        .await;
    let (jobs, total) = match found {
        Ok(v) => v,
        Err(e) => return super::store_down(now, Section::Jobs, e),
    };
    let link = |state: Option<&str>, page: usize| super::list_link("/ui/jobs", state, host.as_deref(), page);
    let body = html! {
        h1 { "Jobs" @if let Some(h) = &host { " of " a.mono href={ "/ui/hosts/" (h) } { (h) } } }
        nav.filters aria-label="states" {
            a href=(link(None, 1)) aria-current=[state.is_none().then_some("true")] { "all" }
            @for s in STATES {
                a href=(link(Some(s), 1)) aria-current=[(state.as_deref() == Some(*s)).then_some("true")] { (s) }
            }
        }
        (table(&jobs, now, true))
        (paging.nav(total as usize, |n| link(state.as_deref(), n)))
    };
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
