//! The desired state of panel.ini's two keys and its enforcement: the store's value when it
//! sent one (an empty string: the key must be absent), else the local config value, else
//! the key is left alone. A refused value stops every write until it is fixed, so the file
//! is never half-changed. Shared by the pass and the daemon's file watcher, which repairs
//! drift while a long job holds the engine.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::central::PanelIniValues;
use crate::clock::rfc3339;
use crate::panel_ini::{self, validate, Desired, Managed, Wish};
use crate::status::{KeyStatus, PanelIni};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Central,
    Local,
    None,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Central => "central",
            Source::Local => "local",
            Source::None => "none",
        }
    }
}

/// One key's wish and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyPlan {
    wish: Wish,
    source: Source,
    refused: Option<String>,
}

pub struct PanelKeeper {
    path: PathBuf,
    state_dir: PathBuf,
    local: PanelIniValues,
    central: Option<PanelIniValues>,
    actual: Option<Managed>,
    /// The resolved file (symlink target) after the last reconcile.
    resolved: Option<PathBuf>,
    error: Option<String>,
    last_applied: Option<Desired>,
    pub repairs: u64,
    pub last_repair_at: Option<SystemTime>,
}

/// What one reconcile did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconcile {
    /// The file already was as desired.
    InSync,
    /// The file was written; `repair` when the desired state had not changed since the
    /// last write (someone or something changed the file).
    Written { repair: bool },
    /// A value was refused; nothing was written.
    Refused,
    /// The file could not be read or written.
    Failed,
    /// The file kept changing under the write; left as the other writer made it.
    Contended,
}

impl PanelKeeper {
    pub fn new(path: PathBuf, state_dir: PathBuf, local_buy: Option<String>, local_catalog: Option<String>) -> Self {
        PanelKeeper {
            path,
            state_dir,
            local: PanelIniValues {
                buy_url: local_buy,
                catalog_url: local_catalog,
            },
            central: None,
            actual: None,
            resolved: None,
            error: None,
            last_applied: None,
            repairs: 0,
            last_repair_at: None,
        }
    }

    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    /// The store's values (None: the store sent no `panel_ini`).
    pub fn set_central(&mut self, values: Option<PanelIniValues>) {
        self.central = values;
    }

    /// New local values (after a config reload).
    pub fn set_local(&mut self, path: PathBuf, buy: Option<String>, catalog: Option<String>) {
        self.path = path;
        self.local = PanelIniValues {
            buy_url: buy,
            catalog_url: catalog,
        };
    }

    fn plan(&self) -> (KeyPlan, KeyPlan) {
        let central = self.central.clone().unwrap_or_default();
        let one = |c: &Option<String>, l: &Option<String>, name: &str, check: fn(&str) -> Result<(), String>| {
            let (value, source) = match (c, l) {
                (Some(v), _) => (Some(v.clone()), Source::Central),
                (None, Some(v)) => (Some(v.clone()), Source::Local),
                (None, None) => (None, Source::None),
            };
            match value {
                None => KeyPlan {
                    wish: Wish::Leave,
                    source,
                    refused: None,
                },
                Some(v) if v.is_empty() && source == Source::Central => KeyPlan {
                    wish: Wish::Remove,
                    source,
                    refused: None,
                },
                Some(v) => match check(&v) {
                    Ok(()) => KeyPlan {
                        wish: Wish::Set(v),
                        source,
                        refused: None,
                    },
                    Err(why) => {
                        let from = if source == Source::Central {
                            "from the store"
                        } else {
                            "from the local config"
                        };
                        KeyPlan {
                            wish: Wish::Leave,
                            source,
                            refused: Some(format!("{name} {from} was refused, panel.ini left untouched: {why}")),
                        }
                    }
                },
            }
        };
        (
            one(&central.buy_url, &self.local.buy_url, "buy_url", validate::buy_url),
            one(
                &central.catalog_url,
                &self.local.catalog_url,
                "catalog_url",
                validate::catalog_url,
            ),
        )
    }

    /// Sentences for `status` and the report: refused values, file errors.
    pub fn problems(&self) -> Vec<String> {
        let (b, c) = self.plan();
        let mut v: Vec<String> = [b.refused, c.refused].into_iter().flatten().collect();
        v.extend(self.error.clone());
        v
    }

    /// Brings panel.ini to the desired state (no write when it already is).
    pub fn reconcile(&mut self, now: SystemTime) -> Reconcile {
        let (b, c) = self.plan();
        if let Some(why) = b.refused.as_ref().or(c.refused.as_ref()) {
            tracing::warn!(path = %self.path.display(), "{why}");
            self.actual = panel_ini::file::read(&self.path).ok();
            return Reconcile::Refused;
        }
        let desired = Desired {
            buy_url: b.wish,
            catalog_url: c.wish,
        };
        match panel_ini::reconcile(&self.path, &desired, &self.state_dir) {
            Ok(r) => {
                self.error = None;
                self.actual = Some(r.actual);
                self.resolved = Some(r.path.clone());
                if !r.changed {
                    self.last_applied = Some(desired);
                    return Reconcile::InSync;
                }
                let repair = self.last_applied.as_ref() == Some(&desired);
                if repair {
                    self.repairs += 1;
                    self.last_repair_at = Some(now);
                    tracing::info!(path = %r.path.display(), repairs = self.repairs, "panel.ini had drifted; repaired");
                } else {
                    tracing::info!(path = %r.path.display(), "panel.ini updated to the desired values");
                }
                self.last_applied = Some(desired);
                Reconcile::Written { repair }
            }
            // Another program keeps rewriting the file: not a fault of ours or theirs, and
            // its next write brings the next try; nothing to show as a problem.
            Err(e @ panel_ini::file::PanelIniError::Contended { .. }) => {
                tracing::warn!("{e}");
                Reconcile::Contended
            }
            Err(e) => {
                let msg = e.to_string();
                if self.error.as_deref() != Some(msg.as_str()) {
                    tracing::error!(path = %self.path.display(), "{msg}");
                }
                self.error = Some(msg);
                Reconcile::Failed
            }
        }
    }

    /// True when the last reconcile left both keys as desired.
    pub fn in_sync(&self) -> bool {
        let (b, c) = self.plan();
        if b.refused.is_some() || c.refused.is_some() || self.error.is_some() {
            return false;
        }
        let Some(actual) = &self.actual else {
            return false;
        };
        let ok = |w: &Wish, a: &Option<String>| match w {
            Wish::Leave => true,
            Wish::Set(v) => a.as_deref() == Some(v.as_str()),
            Wish::Remove => a.is_none(),
        };
        ok(&b.wish, &actual.buy_url) && ok(&c.wish, &actual.catalog_url)
    }

    /// The path shown to people: the file actually edited when known.
    pub fn shown_path(&self) -> String {
        self.resolved.as_ref().unwrap_or(&self.path).display().to_string()
    }

    pub fn actual(&self) -> Managed {
        self.actual.clone().unwrap_or_default()
    }

    pub fn status(&self) -> PanelIni {
        let (b, c) = self.plan();
        let actual = self.actual();
        let key = |p: KeyPlan, a: Option<String>| KeyStatus {
            desired: match p.wish {
                Wish::Set(v) => Some(v),
                _ => None,
            },
            actual: a,
            source: p.source.as_str().to_string(),
        };
        PanelIni {
            path: self.shown_path(),
            in_sync: self.in_sync(),
            repairs: self.repairs,
            last_repair_at: self.last_repair_at.map(rfc3339),
            buy_url: key(b, actual.buy_url),
            catalog_url: key(c, actual.catalog_url),
        }
    }
}
