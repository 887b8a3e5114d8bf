//! The admin API's OpenAPI document (contract section 11): the real central serves it at
//! `GET /admin/v1/openapi.json` behind the same admin auth as the other admin routes; it is
//! byte for byte `docs/openapi.json`; it validates as OpenAPI 3.1 with an independent
//! validator; and every route served under `/admin/v1` is in it, with exactly its methods.
//!
//! When the document changed on purpose (a route added or changed), regenerate the file:
//! `UPDATE_OPENAPI=1 cargo test -p plesk-reseller-central --test openapi` (docs/openapi.md).

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::central::Central;
use support::http::{parse, request, Resp};

const TOKEN: &str = "an-admin-token-of-some-length";
const METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "PATCH"];

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

/// One request over the admin socket (local trust, no token).
fn over_socket(sock: &Path, method: &str, path: &str, body: &[u8]) -> Resp {
    let mut s = UnixStream::connect(sock).unwrap_or_else(|e| panic!("cannot connect to {}: {e}", sock.display()));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // The server may answer (405, 404) and close before it reads the body.
    let _ = s.write_all(head.as_bytes()).and_then(|()| s.write_all(body));
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse(&raw)
}

/// A central with the TCP admin listener; returns it and the listener's address.
fn start(dir: &Path) -> (Central, String) {
    let (extra, port) = support::central::admin_listen(dir, TOKEN);
    let mut c = Central::new(&dir.join("central"), &extra);
    c.start();
    (c, format!("127.0.0.1:{port}"))
}

/// The first line where `a` and `b` differ, for the failure message.
fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}: committed {x:?}, served {y:?}", i + 1);
        }
    }
    format!("{} lines committed, {} served", a.lines().count(), b.lines().count())
}

#[test]
fn the_served_document_is_docs_openapi_json_behind_the_admin_auth() {
    let dir = tempfile::tempdir().unwrap();
    let (c, admin) = start(dir.path());

    // The same admin auth as every admin route on admin_listen.
    assert_eq!(
        request(&admin, "GET", "/admin/v1/openapi.json", None, &[], b"").status,
        401
    );
    assert_eq!(
        request(&admin, "GET", "/admin/v1/openapi.json", Some("wrong-token"), &[], b"").status,
        401
    );
    let tcp = request(&admin, "GET", "/admin/v1/openapi.json", Some(TOKEN), &[], b"");
    assert_eq!(tcp.status, 200, "{}", tcp.body);
    assert_eq!(tcp.header("content-type"), Some("application/json"));
    let sock = over_socket(&c.root.join("run/admin.sock"), "GET", "/admin/v1/openapi.json", b"");
    assert_eq!(sock.status, 200);
    assert_eq!(sock.body, tcp.body, "the socket and admin_listen serve one document");
    // Not on the agents' listener.
    assert_eq!(
        request(&c.addr, "GET", "/admin/v1/openapi.json", Some(TOKEN), &[], b"").status,
        404
    );

    let served = tcp.body;
    let doc: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["components"]["securitySchemes"]["admin_token"]["scheme"], "bearer");

    let path = committed();
    if std::env::var("UPDATE_OPENAPI").as_deref() == Ok("1") {
        std::fs::write(&path, &served).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == served,
        "docs/openapi.json is not the document the central serves ({}). If the admin API changed \
         on purpose, regenerate it with\n    UPDATE_OPENAPI=1 cargo test -p plesk-reseller-central --test openapi\n\
         and commit docs/openapi.json (docs/openapi.md).",
        first_difference(&on_disk, &served)
    );
}

/// openapi-spec-validator (PyPI; scripts/test.sh installs it), as a module or a command.
fn validator() -> Option<Vec<String>> {
    let works = |argv: &[&str]| {
        std::process::Command::new(argv[0])
            .args(&argv[1..])
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    [
        &["python3", "-m", "openapi_spec_validator"][..],
        &["openapi-spec-validator"][..],
    ]
    .into_iter()
    .find(|argv| works(argv))
    .map(|argv| argv.iter().map(|s| s.to_string()).collect())
}

#[test]
fn docs_openapi_json_is_valid_openapi_3_1() {
    let Some(argv) = validator() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openapi-spec-validator is missing: scripts/test.sh installs it (pip install openapi-spec-validator)"
        );
        eprintln!("skipped: openapi-spec-validator is missing (scripts/test.sh installs it)");
        return;
    };
    // The committed file, which the test above holds equal to the served document.
    let out = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .args(["--schema", "3.1"])
        .arg(committed())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docs/openapi.json is not valid OpenAPI 3.1:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The paths the admin router serves, read from the router itself (axum's Debug lists each
/// route's path; there is no other public way to enumerate an axum Router).
fn served_paths() -> BTreeSet<String> {
    let (router, _) = plesk_reseller_central::http::admin::routes().split_for_parts();
    let debug = format!("{router:?}");
    // The routes come first; the fallback router after them has its own catch-all paths.
    let routes = debug.split("fallback_router").next().unwrap_or_default();
    let paths: BTreeSet<String> = routes
        .split('"')
        .filter(|s| s.starts_with('/'))
        .map(str::to_string)
        .collect();
    assert!(
        !paths.is_empty(),
        "no path found in the admin router's Debug output (did axum change it?): {debug}"
    );
    paths
}

#[test]
fn every_admin_route_served_is_in_the_document_with_exactly_its_methods() {
    let doc: Value = serde_json::from_str(plesk_reseller_central::http::openapi::json()).unwrap();
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();

    // Paths: what the router serves is what the document lists.
    let served = served_paths();
    assert_eq!(
        served, documented,
        "a route is served but not in the OpenAPI document (or the reverse): register it with \
         routes!(…) and a #[utoipa::path] annotation, not Router::route (docs/openapi.md)"
    );
    assert!(served.iter().all(|p| p.starts_with("/admin/v1/")), "{served:?}");

    // Methods: on the real central, each documented operation is routed (never 405, never
    // axum's empty 404 for an unknown path), and each other method answers 405.
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = start(dir.path());
    let sock = c.root.join("run/admin.sock");
    for path in &documented {
        let concrete = path.replace("{id}", "no-such-thing");
        assert!(
            !concrete.contains('{'),
            "a path parameter other than id in {path}: extend this test"
        );
        for method in METHODS {
            let has = doc["paths"][path].get(method.to_lowercase()).is_some();
            let r = over_socket(&sock, method, &concrete, b"{}");
            if has {
                assert!(
                    r.status != 405 && !(r.status == 404 && r.body.is_empty()),
                    "{method} {path} is documented but not routed: {} {:?}",
                    r.status,
                    r.body
                );
                if r.status >= 400 {
                    let status = r.status.to_string();
                    assert!(
                        doc["paths"][path][method.to_lowercase()]["responses"]
                            .get(&status)
                            .is_some(),
                        "{method} {path} answered {status}, which its responses do not list: {}",
                        r.body
                    );
                }
            } else {
                assert_eq!(r.status, 405, "{method} {path} is served but not documented");
            }
        }
    }
}
