//! The lossless panel.ini editor. PHP's INI rules (INI_SCANNER_NORMAL): `;` comments only,
//! `[section]` headers read without trimming inside the brackets and optionally followed by a
//! `;` comment, `key = value`, last assignment wins, case-sensitive names, several sections of
//! one name merge. Every byte outside the managed lines is kept: comments, blank lines,
//! order, spacing, CRLF or LF, a BOM, backslashes.

/// What the agent wants for one managed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wish {
    /// Not managed this time: whatever is in the file stays.
    Leave,
    /// Exactly one `key = "value"` in `[extensions]`. The value has passed [`super::validate`].
    Set(String),
    /// No assignment of the key in `[extensions]`.
    Remove,
}

/// The desired state of both managed keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub buy_url: Wish,
    pub catalog_url: Wish,
}

/// The managed keys' values as PHP reads the file (last assignment in `[extensions]` wins;
/// quotes removed), `None` when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Managed {
    pub buy_url: Option<String>,
    pub catalog_url: Option<String>,
}

/// Returns the file content with `desired` applied. Equal to `original` when the file
/// already is in the desired state (the caller then does not write).
pub fn apply(original: &[u8], desired: &Desired) -> Vec<u8> {
    let _ = desired;
    todo!("panel_ini::editor::apply {}", original.len())
}

/// Reads the managed keys' current values.
pub fn read_managed(content: &[u8]) -> Managed {
    todo!("panel_ini::editor::read_managed {}", content.len())
}
