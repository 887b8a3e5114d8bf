//! `check`: the config parses (unknown keys reported), the TLS certificate and key load, the
//! database is reachable and migrated, KA credentials are safe when `[ka]` is filled (and,
//! with `--online`, accepted by KA), the listen addresses are free or held by the running
//! server, the admin socket can be created by this user. One line per check; exit 0 when all
//! pass.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::config::Config;

struct Line {
    name: &'static str,
    ok: bool,
    detail: String,
}

pub async fn run(config: &Config, json_out: bool, online: bool) -> i32 {
    let mut lines = vec![Line {
        name: "config",
        ok: true,
        detail: if config.unknown.is_empty() {
            format!("{} parses", config.path.display())
        } else {
            format!(
                "{} parses; unknown keys (ignored): {}",
                config.path.display(),
                config.unknown.join(", ")
            )
        },
    }];
    if let (Some(cert), Some(key)) = (&config.server.tls_cert, &config.server.tls_key) {
        lines.push(match crate::http::tls::load(cert, key) {
            Ok(k) => Line {
                name: "tls",
                ok: true,
                detail: format!(
                    "{} ({} certificates) and its key {} load and belong together",
                    cert.display(),
                    k.cert.len(),
                    key.display()
                ),
            },
            Err(e) => Line {
                name: "tls",
                ok: false,
                detail: e.to_string(),
            },
        });
    }
    lines.push(database(config).await);
    if let Some(l) = ka(config) {
        let usable = l.ok;
        lines.push(l);
        if online && usable {
            lines.push(ka_online(config).await);
        }
    }
    if let Some(l) = webhooks(config) {
        lines.push(l);
    }
    let running = tokio::net::UnixStream::connect(&config.server.admin_socket)
        .await
        .is_ok();
    lines.push(listen("listen", config.server.listen, running).await);
    if let Some(a) = config.server.admin_listen {
        lines.push(listen("admin_listen", a, running).await);
    }
    lines.push(admin_socket(&config.server.admin_socket, running));
    let all_ok = lines.iter().all(|l| l.ok);
    if json_out {
        let v: Vec<_> = lines
            .iter()
            .map(|l| json!({"check": l.name, "ok": l.ok, "detail": l.detail}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        for l in &lines {
            println!("{} {}: {}", if l.ok { "ok  " } else { "FAIL" }, l.name, l.detail);
        }
    }
    if all_ok {
        0
    } else {
        1
    }
}

async fn database(config: &Config) -> Line {
    let name = "database";
    if let Some(p) = crate::db::sqlite_path(&config.database_url) {
        if !p.exists() {
            return Line {
                name,
                ok: false,
                detail: format!("{} does not exist; run `plesk-reseller-central migrate`", p.display()),
            };
        }
    }
    let result = async {
        let db = crate::db::connect(&config.database_url).await?;
        let r = db.check_migrated().await;
        db.close().await;
        r.map(|()| db.url)
    }
    .await;
    match result {
        Ok(url) => Line {
            name,
            ok: true,
            detail: format!("{url} is reachable and migrated"),
        },
        Err(e) => Line {
            name,
            ok: false,
            detail: e.to_string(),
        },
    }
}

fn ka(config: &Config) -> Option<Line> {
    let name = "ka";
    let ka = &config.ka;
    if ka.username.is_empty() && ka.password_file.is_none() {
        return None;
    }
    let Some(p) = &ka.password_file else {
        return Some(Line {
            name,
            ok: false,
            detail: "[ka] username is set but password_file is empty".into(),
        });
    };
    Some(match std::fs::metadata(p) {
        Err(e) => Line {
            name,
            ok: false,
            detail: format!("cannot read [ka] password_file {}: {e}", p.display()),
        },
        Ok(m) if m.permissions().mode() & 0o077 != 0 => Line {
            name,
            ok: false,
            detail: format!(
                "[ka] password_file {} is readable by group or others; chmod 600 it",
                p.display()
            ),
        },
        Ok(_) => Line {
            name,
            ok: true,
            detail: format!("[ka] password_file {} is present and root-only", p.display()),
        },
    })
}

/// `[webhooks]`: the secret file root-only and `whsec_<base64>`, the event list known types
/// (the URL's scheme and host were checked with the config).
fn webhooks(config: &Config) -> Option<Line> {
    let w = &config.webhooks;
    if w.url.is_none() && w.events.is_none() {
        return None;
    }
    Some(match crate::commerce::webhooks::check(w) {
        Ok(()) => Line {
            name: "webhooks",
            ok: true,
            detail: match &w.url {
                Some(u) => format!("events are sent to {u}, signed with a root-only secret"),
                None => "[webhooks] url is empty: no webhooks are sent".into(),
            },
        },
        Err(e) => Line {
            name: "webhooks",
            ok: false,
            detail: e.to_string(),
        },
    })
}

/// One read-only request (the keys of a nickname no order has) under the real credentials.
async fn ka_online(config: &Config) -> Line {
    let name = "ka-online";
    let asked = async {
        match crate::ka::KaSettings::from_config(&config.ka)? {
            Some(settings) => {
                let client = crate::ka::KaClient::new(settings)?;
                client.find_by_nickname("plesk-reseller-central-check").await.map(Some)
            }
            None => Ok(None),
        }
    }
    .await;
    match asked {
        Ok(None) => Line {
            name,
            ok: false,
            detail: "[ka] has no username or password_file: nothing to ask KA".into(),
        },
        Ok(Some(_)) => Line {
            name,
            ok: true,
            detail: format!("KA at {} accepts the user {}", config.ka.url, config.ka.username),
        },
        Err(e) => Line {
            name,
            ok: false,
            detail: e.to_string(),
        },
    }
}

async fn listen(name: &'static str, addr: std::net::SocketAddr, running: bool) -> Line {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(_) => Line {
            name,
            ok: true,
            detail: format!("{addr} is free"),
        },
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && running => Line {
            name,
            ok: true,
            detail: format!("{addr} is held by the running server"),
        },
        Err(e) => Line {
            name,
            ok: false,
            detail: format!("cannot listen on {addr}: {e}"),
        },
    }
}

/// Whether `serve`, run as this user, can create the admin socket: its directory exists and
/// is writable, or the nearest existing one above it is (serve creates the rest).
fn admin_socket(path: &std::path::Path, running: bool) -> Line {
    let name = "admin_socket";
    let fail = |why: String| Line {
        name,
        ok: false,
        detail: format!(
            "[server] admin_socket {} cannot be created by this user: {why}",
            path.display()
        ),
    };
    if running {
        return Line {
            name,
            ok: true,
            detail: format!("{} is the running server's", path.display()),
        };
    }
    let Some(dir) = path.parent() else {
        return fail("it has no directory".into());
    };
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent() {
            Some(up) => existing = up,
            None => return fail(format!("no directory above {} exists", dir.display())),
        }
    }
    if !existing.is_dir() {
        return fail(format!("{} is not a directory", existing.display()));
    }
    if let Err(e) = writable(existing) {
        return fail(format!("{} is not writable: {e}", existing.display()));
    }
    Line {
        name,
        ok: true,
        detail: if existing == dir {
            format!("{} can be created in {}", path.display(), dir.display())
        } else {
            format!("{} can be created ({} will be made)", path.display(), dir.display())
        },
    }
}

/// access(2) for writing and entering, as the kernel would decide it for this process.
fn writable(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
