//! `sync` with the spool transport (contract section 6), and the commands' outside
//! (section 2): `check`, `--version`, `--config` placement and the environment variable.
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

mod support;

use serde_json::json;
use support::sandbox::{bin, text, Sandbox, CODE};

#[test]
fn spool_sync_applies_instructions_and_writes_results_and_report() {
    let sb = Sandbox::with_spool("");
    std::fs::write(
        sb.spool.join("instructions.json"),
        json!({
            "panel_ini": {"buy_url": "https://shop.example.com/?a=1&b=2", "catalog_url": "https://cat.example.com"},
            "jobs": [
                {"id": "s-1", "type": "install_key", "activation_code": CODE},
                {"id": "s-2", "type": "bogus"}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let out = sb.agent(&["sync"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a rejected job makes the pass fail: {}",
        text(&out.stderr)
    );
    assert_eq!(
        sb.read_panel_ini(),
        "[extensions]\nbuyUrl = \"https://shop.example.com/?a=1&b=2\"\ncatalog.url = \"https://cat.example.com\"\n"
    );
    let r1: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sb.spool.join("results/s-1.json")).unwrap()).unwrap();
    assert_eq!(r1["status"], "succeeded");
    assert!(!r1["output"].as_str().unwrap().contains("K6QK03"));
    let r2: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sb.spool.join("results/s-2.json")).unwrap()).unwrap();
    assert_eq!(r2["status"], "rejected");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sb.spool.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["panel_ini"]["in_sync"], true);
    assert_eq!(report["agent_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(sb.license_calls(), vec![format!("bin license -i {CODE}")]);
}

#[test]
fn spool_without_instructions_enforces_local_values() {
    let sb = Sandbox::with_spool("catalog_url = http://proxy.example.com:8080");
    sb.write_panel_ini("[extensions]\r\ncatalog.url = \"http://old:8080\"\r\n");
    let out = sb.agent(&["sync"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        sb.read_panel_ini(),
        "[extensions]\r\ncatalog.url = \"http://proxy.example.com:8080\"\r\n"
    );
    let backup = sb.state_dir.join("backup/panel.ini.orig");
    assert_eq!(
        std::fs::read_to_string(backup).unwrap(),
        "[extensions]\r\ncatalog.url = \"http://old:8080\"\r\n"
    );
}

#[test]
fn no_store_configured_still_enforces_local_values() {
    let sb = Sandbox::new("", "buy_url = https://shop.example.com", "");
    let out = sb.agent(&["sync"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(sb.read_panel_ini().contains("buyUrl = \"https://shop.example.com\""));
    assert!(sb.license_calls().is_empty());
}

#[test]
fn check_reports_one_line_per_check_and_fails_on_a_readable_token() {
    let sb = Sandbox::new("http://127.0.0.1:9/x", "", "");
    let out = sb.agent(&["check"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "central is unreachable: {stdout}");
    for what in [
        "config:",
        "state directory:",
        "token file:",
        "panel.ini:",
        "plesk command:",
        "central:",
    ] {
        assert!(stdout.lines().any(|l| l.contains(what)), "no {what} line in {stdout}");
    }
    assert!(stdout.lines().any(|l| l.starts_with("FAIL central:")), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("ok   token file:")), "{stdout}");

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(sb.dir.path().join("token"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let stdout = text(&sb.agent(&["check"]).stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("FAIL token file:") && l.contains("chmod 600")),
        "{stdout}"
    );
}

#[test]
fn check_passes_on_a_good_spool_setup_and_reports_unknown_keys() {
    let sb = Sandbox::with_spool("");
    let cfg = std::fs::read_to_string(&sb.config).unwrap() + "[mystery]\nx = 1\n";
    std::fs::write(&sb.config, cfg).unwrap();
    let out = sb.agent(&["check"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("unknown section [mystery]"), "{stdout}");
}

#[test]
fn config_errors_are_one_sentence_naming_file_section_and_key() {
    let sb = Sandbox::new("", "", "");
    let cfg = std::fs::read_to_string(&sb.config)
        .unwrap()
        .replace("timeout = 20", "timeout = forever");
    std::fs::write(&sb.config, cfg).unwrap();
    for cmd in ["sync", "check"] {
        let out = sb.agent(&[cmd]);
        assert_eq!(out.status.code(), Some(1));
        let all = text(&out.stderr) + &text(&out.stdout);
        assert!(all.contains("[plesk] timeout") && all.contains("forever"), "{all}");
        assert!(!all.contains("panicked") && !all.contains("RUST_BACKTRACE"), "{all}");
    }
}

#[test]
fn config_comes_from_the_flag_before_or_after_the_command_or_the_environment() {
    let sb = Sandbox::new("", "buy_url = https://shop.example.com", "");
    let after = std::process::Command::new(bin())
        .args(["sync", "--config"])
        .arg(&sb.config)
        .output()
        .unwrap();
    assert_eq!(after.status.code(), Some(0), "{}", text(&after.stderr));
    let env = std::process::Command::new(bin())
        .arg("check")
        .env("PLESK_RESELLER_AGENT_CONFIG", &sb.config)
        .output()
        .unwrap();
    assert!(
        text(&env.stdout).contains(&sb.config.display().to_string()),
        "{}",
        text(&env.stdout)
    );
    let version = std::process::Command::new(bin()).arg("--version").output().unwrap();
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(
        text(&version.stdout).trim(),
        format!("plesk-reseller-agent {}", env!("CARGO_PKG_VERSION"))
    );
}
