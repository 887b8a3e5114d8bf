//! How times, pages and outputs read on the page.

use maud::{html, Markup};

use crate::times::rfc3339;

/// "3 min ago" (or "in 2 min" for a clock ahead of ours).
pub fn ago(now_ms: i64, then_ms: i64) -> String {
    let d = (now_ms - then_ms) / 1000;
    let (n, future) = (d.unsigned_abs(), d < 0);
    if n < 10 {
        return "just now".into();
    }
    let span = match n {
        0..60 => format!("{n} s"),
        60..3600 => format!("{} min", n / 60),
        3600..86400 => format!("{} h", n / 3600),
        _ => format!("{} d", n / 86400),
    };
    if future {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// A relative time with the absolute one (UTC) on hover; "never" when there is none.
pub fn when(now_ms: i64, t: Option<i64>) -> Markup {
    match t {
        Some(t) => html! { time datetime=(rfc3339(t)) title=(rfc3339(t)) { (ago(now_ms, t)) } },
        None => html! { span.muted { "never" } },
    }
}

/// An optional value, or a muted dash.
pub fn opt(v: Option<&str>) -> Markup {
    match v {
        Some(v) if !v.is_empty() => html! { (v) },
        _ => html! { span.muted { "—" } },
    }
}

/// The first line of a long text, at most `max` characters (the whole text is on the job's host page).
pub fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

/// Pages of `per` rows: which page is asked for, clamped to the rows there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: usize,
    pub per: usize,
}

impl Paging {
    pub fn offset(self) -> usize {
        (self.page - 1) * self.per
    }

    pub fn pages(self, total: usize) -> usize {
        total.div_ceil(self.per).max(1)
    }

    /// "Showing 201–400 of 10000" and links to the pages around; `link(n)` is page n's URL.
    pub fn nav(self, total: usize, link: impl Fn(usize) -> String) -> Markup {
        let first = if total == 0 { 0 } else { self.offset() + 1 };
        let last = (self.offset() + self.per).min(total);
        let pages = self.pages(total);
        html! {
            nav.pages aria-label="pages" {
                span.showing { "Showing " (first) "–" (last) " of " (total) }
                @if self.page > 1 { a rel="prev" href=(link(self.page - 1)) { "← previous" } }
                @if pages > 1 { span { " page " (self.page) " of " (pages) " " } }
                @if self.page < pages { a rel="next" href=(link(self.page + 1)) { "next →" } }
            }
        }
    }
}

/// Percent-encodes a query value (a search may hold anything).
pub fn q(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_like_a_person_says_them() {
        let now = 1_000_000_000;
        assert_eq!(ago(now, now - 3_000), "just now");
        assert_eq!(ago(now, now - 42_000), "42 s ago");
        assert_eq!(ago(now, now - 3 * 60_000 - 5_000), "3 min ago");
        assert_eq!(ago(now, now - 5 * 3_600_000), "5 h ago");
        assert_eq!(ago(now, now - 4 * 86_400_000), "4 d ago");
        assert_eq!(ago(now, now + 120_000), "in 2 min");
    }

    #[test]
    fn pages_are_clamped_and_counted() {
        let p = Paging { page: 2, per: 200 };
        assert_eq!((p.offset(), p.pages(401), p.pages(0)), (200, 3, 1));
        let nav = p.nav(401, |n| format!("/ui?page={n}")).into_string();
        assert!(
            nav.contains("Showing 201–400 of 401") && nav.contains("/ui?page=3"),
            "{nav}"
        );
    }

    #[test]
    fn long_outputs_are_cut_at_a_character() {
        assert_eq!(first_line("\n  ok: done\nmore", 20), "ok: done");
        assert_eq!(first_line("ééééé", 3), "ééé…");
        assert_eq!(q("a b&c=<é>"), "a%20b%26c%3D%3C%C3%A9%3E");
    }
}
