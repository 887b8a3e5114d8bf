//! Plesk's panel.ini: the two keys of `[extensions]` the agent owns (`buyUrl`,
//! `catalog.url`), and nothing else.
//!
//! - [`editor`]: the lossless line editor (pure; bytes in, bytes out), which knows how PHP's
//!   INI parser reads the file.
//! - [`validate`]: the checks a value passes before it may go into the file.
//! - [`file`]: reading and writing the real file: lock, backups, atomic replace keeping
//!   mode and owner, symlinks followed, no write when nothing changes.

pub mod editor;
pub mod file;
pub mod validate;

pub use editor::{Desired, Managed, Wish};
pub use file::{reconcile, PanelIniError, Reconciled};

/// The name of `buyUrl` in `[extensions]`.
pub const BUY_URL_KEY: &str = "buyUrl";
/// The name of `catalog.url` in `[extensions]`.
pub const CATALOG_URL_KEY: &str = "catalog.url";
/// The section both keys live in.
pub const SECTION: &str = "extensions";
