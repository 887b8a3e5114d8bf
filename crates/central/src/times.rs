//! Times: unix milliseconds in the database, RFC 3339 (UTC, seconds) on the outside.

use std::time::{Duration, UNIX_EPOCH};

pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `serialize_with` for an optional millisecond time.
pub fn opt<S: serde::Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(ms) => s.serialize_str(&rfc3339(*ms)),
        None => s.serialize_none(),
    }
}

/// `serialize_with` for a millisecond time.
pub fn req<S: serde::Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*v))
}
