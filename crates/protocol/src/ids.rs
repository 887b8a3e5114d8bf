//! The grammar of job ids and host ids (contract sections 3 and 7): both are safe as one
//! URL path segment and as a file name.

/// Longest job id or host id.
pub const MAX_ID_LEN: usize = 128;

/// True for `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$` (so never `.` or `..`).
pub fn is_valid_job_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    match bytes.first() {
        Some(first) if first.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    bytes.len() <= MAX_ID_LEN
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A host id has the job id's grammar: letters, digits, `. _ -`, first a letter or digit.
pub fn is_valid_host_id(id: &str) -> bool {
    is_valid_job_id(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_grammar() {
        for good in ["a", "ord-1001", "A.b_c-9", "0", "web-042", &"x".repeat(128)] {
            assert!(is_valid_job_id(good), "{good:?} should be valid");
            assert!(is_valid_host_id(good), "{good:?} should be valid");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../etc",
            "-a",
            ".a",
            "_a",
            "a b",
            "ä",
            "a\n",
            &"x".repeat(129),
        ] {
            assert!(!is_valid_job_id(bad), "{bad:?} should be invalid");
            assert!(!is_valid_host_id(bad), "{bad:?} should be invalid");
        }
    }
}
