//! `check`: validates config and environment, one line per check; exit 0 when all pass.

#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[cfg(unix)]
use nix::unistd::{access, AccessFlags};

use super::{runtime, Outcome};
use crate::central::PollRequest;
use crate::config::{self, CentralUrl, Config, HostFacts};

struct Report {
    failed: bool,
}

impl Report {
    fn line(&mut self, ok: bool, what: &str, detail: impl std::fmt::Display) {
        if !ok {
            self.failed = true;
        }
        println!("{} {what}: {detail}", if ok { "ok  " } else { "FAIL" });
    }
}

pub fn run(config_path: &Path) -> Outcome {
    let mut r = Report { failed: false };
    let cfg = match config::load(config_path, &HostFacts::real()) {
        Ok(c) => {
            r.line(true, "config", format!("{} parses", config_path.display()));
            c
        }
        Err(e) => {
            r.line(false, "config", e);
            return Outcome::Failure(Vec::new());
        }
    };
    for w in &cfg.warnings {
        println!("warn config: {w}");
    }

    state_dir(&mut r, &cfg);
    if let CentralUrl::Http(_) = cfg.central.url {
        token_file(&mut r, &cfg);
    }
    panel_ini(&mut r, &cfg);
    panel_values(&mut r, &cfg);
    plesk_command(&mut r, &cfg);
    if cfg.push.listen.is_some() {
        push_secret(&mut r, &cfg);
    }
    central(&mut r, &cfg);
    // Every check already printed its line on stdout.
    if r.failed {
        Outcome::Failure(Vec::new())
    } else {
        Outcome::Success
    }
}

/// The state directory, or the ancestor it would be created in, is writable.
fn state_dir(r: &mut Report, cfg: &Config) {
    let state = &cfg.agent.state_dir;
    match nearest_existing(state) {
        Some(p) if can_write_in(&p) => r.line(true, "state directory", format!("{} is writable", state.display())),
        Some(p) => r.line(false, "state directory", format!("{} is not writable", p.display())),
        None => r.line(
            false,
            "state directory",
            format!("{} has no existing parent", state.display()),
        ),
    }
}

/// The store's token file exists and only its owner can read it.
fn token_file(r: &mut Report, cfg: &Config) {
    let tf = &cfg.central.token_file;
    if crate::central::enroll::token_missing(tf) {
        return r.line(false, "token file", not_enrolled(cfg));
    }
    match std::fs::metadata(tf) {
        Err(e) => r.line(false, "token file", format!("cannot read {}: {e}", tf.display())),
        #[cfg(unix)]
        Ok(m) if m.permissions().mode() & 0o044 != 0 => r.line(
            false,
            "token file",
            format!(
                "{} is readable by group or others (mode {:o}); chmod 600 it",
                tf.display(),
                m.permissions().mode() & 0o777
            ),
        ),
        #[cfg(windows)]
        Ok(m) if crate::platform::secret_file_problem(tf, &m).is_some() => r.line(
            false,
            "token file",
            format!(
                "{}: {}",
                tf.display(),
                crate::platform::secret_file_problem(tf, &m).unwrap_or_default()
            ),
        ),
        Ok(_) => r.line(true, "token file", format!("{} is private", tf.display())),
    }
}

/// panel.ini (through a link, its target) and its directory are writable: the atomic
/// write replaces the file from a temporary beside it.
fn panel_ini(r: &mut Report, cfg: &Config) {
    let ini = &cfg.panel.ini_path;
    // A FIFO, an unsafe or dangling link: the same refusal the daemon shows in `status`.
    let ini_target = match crate::panel_ini::file::inspect(ini) {
        Ok(t) => t,
        Err(e) => return r.line(false, "panel.ini", e),
    };
    let writable = if ini_target.exists() {
        can_write(&ini_target) && can_write(&crate::fsutil::parent_dir(&ini_target))
    } else {
        can_write(&crate::fsutil::parent_dir(&ini_target))
    };
    if writable {
        r.line(true, "panel.ini", format!("{} is writable", ini.display()));
    } else {
        r.line(
            false,
            "panel.ini",
            format!("{} (or its directory) is not writable", ini.display()),
        );
    }
}

/// The configured buy_url and catalog_url pass the checks panel.ini values get.
fn panel_values(r: &mut Report, cfg: &Config) {
    for (name, v, check) in [
        (
            "buy_url",
            &cfg.panel.buy_url,
            crate::panel_ini::validate::buy_url as fn(&str) -> Result<(), String>,
        ),
        (
            "catalog_url",
            &cfg.panel.catalog_url,
            crate::panel_ini::validate::catalog_url,
        ),
    ] {
        if let Some(v) = v {
            match check(v) {
                Ok(()) => r.line(true, name, "valid"),
                Err(e) => r.line(false, name, e),
            }
        }
    }
}

fn plesk_command(r: &mut Report, cfg: &Config) {
    let cmd = &cfg.plesk.command;
    if cmd.is_file() && can_run(cmd) {
        r.line(true, "plesk command", format!("{} is executable", cmd.display()));
    } else {
        r.line(
            false,
            "plesk command",
            format!("{} is missing or not executable", cmd.display()),
        );
    }
}

/// The push secret is readable, not empty, and private to its owner.
fn push_secret(r: &mut Report, cfg: &Config) {
    let sf = &cfg.push.secret_file;
    match std::fs::read(sf) {
        Err(e) => r.line(false, "push secret", format!("cannot read {}: {e}", sf.display())),
        Ok(b) if b.trim_ascii_end().is_empty() => r.line(false, "push secret", format!("{} is empty", sf.display())),
        Ok(_) => match std::fs::metadata(sf) {
            #[cfg(unix)]
            Ok(m) if m.permissions().mode() & 0o044 != 0 => r.line(
                false,
                "push secret",
                format!("{} is readable by group or others; chmod 600 it", sf.display()),
            ),
            #[cfg(windows)]
            Ok(m) if crate::platform::secret_file_problem(sf, &m).is_some() => r.line(
                false,
                "push secret",
                format!(
                    "{}: {}",
                    sf.display(),
                    crate::platform::secret_file_problem(sf, &m).unwrap_or_default()
                ),
            ),
            _ => r.line(true, "push secret", format!("{} is private", sf.display())),
        },
    }
}

/// Why there is no token yet (contract 5.5): the daemon's last sentence, else the key file's.
fn not_enrolled(cfg: &Config) -> String {
    let last = crate::status::load_persisted(&cfg.agent.state_dir)
        .filter(|s| s.central.state == "enrolling")
        .and_then(|s| s.central.last_error);
    match last {
        Some(e) if e.starts_with("not enrolled yet") => e,
        Some(e) => format!("not enrolled yet: {e}"),
        None => match crate::central::enroll::read_key_file(&cfg.central.enroll_key_file) {
            Ok(_) => format!(
                "not enrolled yet: {} is missing or empty; the enroll key in {} is exchanged at the daemon's next poll",
                cfg.central.token_file.display(),
                cfg.central.enroll_key_file.display()
            ),
            Err(e) => e.to_string(),
        },
    }
}

/// The configured store answers one poll.
fn central(r: &mut Report, cfg: &Config) {
    // `check` must not spend the enroll key: it only says that enrolling is still due.
    if matches!(cfg.central.url, CentralUrl::Http(_)) && crate::central::enroll::token_missing(&cfg.central.token_file)
    {
        return r.line(false, "central", "not enrolled yet, so not asked");
    }
    match &cfg.central.url {
        CentralUrl::None => r.line(true, "central", "no store configured: local settings only"),
        _ => match crate::engine::transport_for(cfg) {
            Err(e) => r.line(false, "central", e),
            Ok(None) => {}
            Ok(Some(t)) => {
                let outcome = match runtime() {
                    Ok(rt) => rt.block_on(t.poll(PollRequest::default())).map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(_) => r.line(true, "central", format!("{} answers", t.url())),
                    Err(e) => r.line(false, "central", e),
                }
            }
        },
    }
}

/// `p` or its nearest existing ancestor.
fn nearest_existing(p: &Path) -> Option<std::path::PathBuf> {
    p.ancestors().find(|a| a.exists()).map(Path::to_path_buf)
}

/// `access(2)` on unix; on Windows what the platform layer can tell (ACLs are not evaluated).
#[cfg(unix)]
fn can_write_in(dir: &Path) -> bool {
    access(dir, AccessFlags::W_OK | AccessFlags::X_OK).is_ok()
}

#[cfg(unix)]
fn can_write(p: &Path) -> bool {
    access(p, AccessFlags::W_OK).is_ok()
}

#[cfg(unix)]
fn can_run(p: &Path) -> bool {
    access(p, AccessFlags::X_OK).is_ok()
}

#[cfg(windows)]
fn can_write_in(dir: &Path) -> bool {
    crate::platform::is_writable(dir)
}

#[cfg(windows)]
fn can_write(p: &Path) -> bool {
    crate::platform::is_writable(p)
}

#[cfg(windows)]
fn can_run(p: &Path) -> bool {
    crate::platform::is_executable(p)
}
