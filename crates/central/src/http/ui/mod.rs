//! The fleet page for people: `/ui` on `admin_listen`, behind HTTP Basic with the admin token
//! as the password (contract, section 8). Server-rendered and read-only; no JavaScript. maud
//! escapes every interpolated value, so whatever an agent or KA sent shows as text.

mod fleet_page;
mod format;
mod host_page;
mod jobs_page;
mod layout;
mod licenses_page;
mod orders_page;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use maud::{html, Markup};
use serde::Deserialize;

pub use fleet_page::{render as render_fleet, Filter as FleetFilter, PER_PAGE};
pub use format::Paging;

use crate::fleet::tokens;
use crate::http::app::App;
use layout::Section;

/// The largest page a URL may ask for (`per_page`): the whole of a 10 000-host fleet.
pub const MAX_PER_PAGE: usize = 10_000;

pub fn router(app: App) -> Router {
    let token = app.admin_token.clone();
    Router::new()
        .route("/ui", get(fleet_page::get))
        .route("/ui/hosts/{id}", get(host_page::get))
        .route("/ui/jobs", get(jobs_page::get))
        .route("/ui/orders", get(orders_page::get))
        .route("/ui/licenses", get(licenses_page::get))
        .route_layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            let token = token.clone();
            async move { basic_auth(token, req, next).await }
        }))
        // After the layer, so without it: the stylesheet is public and the same for everyone.
        .route("/ui/style.css", get(style))
        .with_state(app)
}

/// Any user name; the password must be the admin token.
async fn basic_auth(token: Option<Arc<str>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let password = given.as_deref().and_then(|up| up.split_once(':')).map(|(_, p)| p);
    match (token.as_deref(), password) {
        (Some(t), Some(p)) if tokens::same(t, p) => next.run(req).await,
        _ => {
            let mut r = (
                StatusCode::UNAUTHORIZED,
                "The fleet page needs the admin token as the password.\n",
            )
                .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"plesk-reseller-central\", charset=\"UTF-8\""),
            );
            r
        }
    }
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        layout::STYLE,
    )
        .into_response()
}

/// A page whose data cannot be read: the sentence for people, the reason in the log.
fn store_down(now: i64, section: Section, e: impl std::fmt::Display) -> Response {
    tracing::error!("{e}");
    layout::problem(
        StatusCode::SERVICE_UNAVAILABLE,
        section,
        now,
        "The database cannot be read; see the central's log.",
    )
}

/// A page's query string, checked by the page: a bad value gets one sentence, not a guess.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn new(pairs: &[(&str, &str)]) -> Params {
        Params(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    /// At most `max` characters.
    fn text(&self, name: &str, max: usize) -> Result<Option<String>, String> {
        match self.0.get(name) {
            Some(v) if v.chars().count() > max => Err(format!("the {} is longer than {max} characters", label(name))),
            v => Ok(v.cloned()),
        }
    }

    /// One of `allowed`, or absent (empty = absent).
    fn one_of(&self, name: &str, allowed: &[&str]) -> Result<Option<String>, String> {
        match self.text(name, 40)? {
            Some(v) if v.is_empty() => Ok(None),
            Some(v) if allowed.contains(&v.as_str()) => Ok(Some(v)),
            Some(v) => Err(format!("the {name} {v:?} is none of {}", allowed.join(", "))),
            None => Ok(None),
        }
    }

    /// `host=`: a host id in the contract's grammar (it goes into links).
    fn host(&self) -> Result<Option<String>, String> {
        match self.text("host", 128)? {
            Some(h) if h.is_empty() => Ok(None),
            Some(h) if plesk_reseller_protocol::is_valid_host_id(&h) => Ok(Some(h)),
            Some(h) => Err(format!("the host id {h:?} is not letters, digits and . _ -")),
            None => Ok(None),
        }
    }

    /// `page=` (from 1) and `per_page=` (1 to [`MAX_PER_PAGE`], default `per`).
    pub fn paging(&self, per: usize) -> Result<Paging, String> {
        let number = |name: &str, default: usize, max: usize| match self.text(name, 12)? {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(format!("the {} {v:?} is not a number from 1 to {max}", label(name))),
            },
        };
        Ok(Paging {
            page: number("page", 1, 1_000_000)?,
            per: number("per_page", per, MAX_PER_PAGE)?,
        })
    }
}

/// How a parameter is called in a sentence.
fn label(name: &str) -> &str {
    match name {
        "q" => "search",
        "per_page" => "page size",
        other => other,
    }
}

/// What a list page (jobs, orders) is asked for: `?state=`, `?host=`, `?page=`.
pub struct ListQuery {
    pub state: Option<String>,
    pub host: Option<String>,
    pub paging: Paging,
    base: &'static str,
}

impl ListQuery {
    pub fn parse(p: &Params, base: &'static str, states: &[&str], per: usize) -> Result<ListQuery, String> {
        Ok(ListQuery {
            state: p.one_of("state", states)?,
            host: p.host()?,
            paging: p.paging(per)?,
            base,
        })
    }

    /// This list's URL for a state filter and a page (the host filter kept).
    pub fn link(&self, state: Option<&str>, page: usize) -> String {
        let mut u = format!("{}?page={page}", self.base);
        if let Some(s) = state {
            u.push_str(&format!("&state={s}"));
        }
        if let Some(h) = &self.host {
            u.push_str(&format!("&host={h}"));
        }
        u
    }

    /// "Jobs" or "Jobs of web-1", the state filters as links, the rows and the pages.
    pub fn page(
        &self,
        title: &str,
        states: &[&str],
        label: impl Fn(&str) -> Markup,
        rows: Markup,
        total: i64,
    ) -> Markup {
        let current = self.state.as_deref();
        html! {
            h1 { (title) @if let Some(h) = &self.host { " of " a.mono href={ "/ui/hosts/" (h) } { (h) } } }
            nav.filters aria-label="states" {
                a href=(self.link(None, 1)) aria-current=[current.is_none().then_some("true")] { "all" }
                @for s in states {
                    a id={ "state-" (s) } href=(self.link(Some(s), 1)) aria-current=[(current == Some(*s)).then_some("true")] {
                        (label(s))
                    }
                }
            }
            (rows)
            (self.paging.nav(total.max(0) as usize, |n| self.link(current, n)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_parameter_is_named_in_one_sentence() {
        let p = Params::new(&[
            ("page", "0"),
            ("state", "paid"),
            ("host", "a b"),
            ("q", &"x".repeat(201)),
        ]);
        assert_eq!(
            p.paging(200).unwrap_err(),
            "the page \"0\" is not a number from 1 to 1000000"
        );
        assert!(p
            .one_of("state", &["queued"])
            .unwrap_err()
            .contains("\"paid\" is none of queued"));
        assert!(p.host().unwrap_err().contains("\"a b\""));
        assert_eq!(
            p.text("q", 200).unwrap_err(),
            "the search is longer than 200 characters"
        );
        let ok = Params::new(&[("page", "3"), ("per_page", "10000"), ("state", "")]);
        assert_eq!(ok.paging(200).unwrap(), Paging { page: 3, per: 10_000 });
        assert_eq!(ok.one_of("state", &["queued"]).unwrap(), None);
        assert!(Params::new(&[("per_page", "10001")]).paging(200).is_err());
    }
}
