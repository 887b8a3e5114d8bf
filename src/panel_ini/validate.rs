//! Checks on values before they go into panel.ini (contract section 4): `buy_url` an
//! absolute `https://` URL, `catalog_url` an absolute `http://` or `https://` URL; no `"`,
//! `$`, `\` or control characters; at most 2048 bytes.

/// Longest value accepted, in bytes.
pub const MAX_LEN: usize = 2048;

/// Checks a `buy_url`; the error is one sentence naming the value.
pub fn buy_url(value: &str) -> Result<(), String> {
    todo!("validate::buy_url {value}")
}

/// Checks a `catalog_url`; the error is one sentence naming the value.
pub fn catalog_url(value: &str) -> Result<(), String> {
    todo!("validate::catalog_url {value}")
}
