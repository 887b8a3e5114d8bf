//! The shell every page shares, and the headers that keep it inert: no script may run, no
//! other origin may be loaded or frame it, nothing is cached.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

/// No JavaScript at all: the pages work without it, and a value that slipped past escaping
/// could still not run.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   base-uri 'none'; frame-ancestors 'none'";

pub const STYLE: &str = include_str!("style.css");

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Fleet,
    Jobs,
    Orders,
    Licenses,
}

pub fn page(title: &str, section: Section, now_ms: i64, body: Markup) -> Markup {
    let nav = [
        (Section::Fleet, "/ui", "Fleet"),
        (Section::Jobs, "/ui/jobs", "Jobs"),
        (Section::Orders, "/ui/orders", "Orders"),
        (Section::Licenses, "/ui/licenses", "Licenses"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · plesk-reseller-central" }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                header {
                    span.brand { "plesk-reseller-central" }
                    nav {
                        @for (s, href, label) in nav {
                            a href=(href) aria-current=[(s == section).then_some("page")] { (label) }
                        }
                    }
                    span.muted.now { "as of " time datetime=(crate::times::rfc3339(now_ms)) { (crate::times::rfc3339(now_ms)) } }
                }
                main { (body) }
            }
        }
    }
}

pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A page that says what is wrong in one sentence (bad filter, unknown host, database down).
pub fn problem(status: StatusCode, section: Section, now_ms: i64, sentence: &str) -> Response {
    let mut chars = sentence.chars();
    let mut text: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    if !text.ends_with('.') {
        text.push('.');
    }
    let body = html! { h1 { (status.canonical_reason().unwrap_or("Error")) } p.error { (text) } };
    respond(status, page("Error", section, now_ms, body))
}
