//! The URL paths of protocol version 1, relative to the store's base URL, and the agent's
//! wake path. Builders percent-encode each segment; [`Route::parse`] is their inverse for a
//! server.

use crate::ids::{is_valid_host_id, is_valid_job_id};

/// The path the agent's push listener serves (section 5.4).
pub const WAKE: &str = "/v1/wake";

/// `/v1/hosts/{host}`.
pub fn host(host_id: &str) -> String {
    format!("/v1/hosts/{}", encode_segment(host_id))
}

/// `/v1/hosts/{host}/instructions` (GET, section 5.1; `?wait=` is added by the caller).
pub fn instructions(host_id: &str) -> String {
    format!("{}/instructions", host(host_id))
}

/// `/v1/hosts/{host}/jobs/{job_id}/result` (POST, section 5.2).
pub fn result(host_id: &str, job_id: &str) -> String {
    format!("{}/jobs/{}/result", host(host_id), encode_segment(job_id))
}

/// `/v1/hosts/{host}/report` (PUT, section 5.3).
pub fn report(host_id: &str) -> String {
    format!("{}/report", host(host_id))
}

/// Percent-encodes everything but the unreserved characters. Valid ids never need it; an
/// invalid one still cannot leave its segment.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // `.` and `..` would be resolved as dot-segments.
    match out.as_str() {
        "." => "%2E".to_string(),
        ".." => "%2E%2E".to_string(),
        _ => out,
    }
}

/// A protocol path a store serves, with its ids checked against their grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Instructions { host_id: String },
    Result { host_id: String, job_id: String },
    Report { host_id: String },
}

impl Route {
    /// Parses a request path (no query, base already stripped). `None` for any other path,
    /// including ids that break the grammar (which never need percent-encoding).
    pub fn parse(path: &str) -> Option<Route> {
        let rest = path.strip_prefix("/v1/hosts/")?;
        let parts: Vec<&str> = rest.split('/').collect();
        let route = match parts.as_slice() {
            [h, "instructions"] => Route::Instructions { host_id: h.to_string() },
            [h, "report"] => Route::Report { host_id: h.to_string() },
            [h, "jobs", j, "result"] if is_valid_job_id(j) => Route::Result {
                host_id: h.to_string(),
                job_id: j.to_string(),
            },
            _ => return None,
        };
        is_valid_host_id(route.host_id()).then_some(route)
    }

    pub fn host_id(&self) -> &str {
        match self {
            Route::Instructions { host_id } | Route::Result { host_id, .. } | Route::Report { host_id } => host_id,
        }
    }

    /// The path again (`Route::parse(&r.path()) == Some(r)`).
    pub fn path(&self) -> String {
        match self {
            Route::Instructions { host_id } => instructions(host_id),
            Route::Result { host_id, job_id } => result(host_id, job_id),
            Route::Report { host_id } => report(host_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("web-042.a_b~"), "web-042.a_b~");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(encode_segment(".."), "%2E%2E");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn builders() {
        assert_eq!(instructions("web-042"), "/v1/hosts/web-042/instructions");
        assert_eq!(result("web-042", "ord-1001"), "/v1/hosts/web-042/jobs/ord-1001/result");
        assert_eq!(report("web-042"), "/v1/hosts/web-042/report");
        assert_eq!(result("a b", "x/y"), "/v1/hosts/a%20b/jobs/x%2Fy/result");
        assert_eq!(host(".."), "/v1/hosts/%2E%2E");
    }

    #[test]
    fn routes_round_trip_and_refuse_bad_ids() {
        for r in [
            Route::Instructions {
                host_id: "web-1".into(),
            },
            Route::Result {
                host_id: "web-1".into(),
                job_id: "ord.1_x-2".into(),
            },
            Route::Report { host_id: "h".into() },
        ] {
            assert_eq!(Route::parse(&r.path()), Some(r));
        }
        for bad in [
            "/v1/hosts/../instructions",
            "/v1/hosts/web-1/jobs/../result",
            "/v1/hosts/web%201/instructions",
            "/v1/hosts//report",
            "/v1/hosts/web-1/instructions/",
            "/v1/hosts/web-1/jobs/j/result/x",
            "/v2/hosts/web-1/report",
            "/v1/wake",
        ] {
            assert_eq!(Route::parse(bad), None, "{bad}");
        }
    }
}
