//! The real daemon keeps panel.ini: drift repair after an editor's rename-replace and after
//! an in-place edit, and SIGHUP reloading the local values.
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

mod support;

use std::io::Write;
use std::time::Duration;

use nix::sys::signal::Signal;
use support::daemon::{eventually, set_config, Daemon};
use support::sandbox::Sandbox;

const BUY: &str = "https://shop.example.com/buy";
const T: Duration = Duration::from_secs(5);

fn repairs(d: &Daemon) -> u64 {
    d.status_json()["panel_ini"]["repairs"].as_u64().unwrap()
}

#[test]
fn drift_is_repaired_after_rename_replace_and_in_place_edit_keeping_other_lines() {
    let sb = Sandbox::new("", &format!("buy_url = {BUY}"), "");
    sb.write_panel_ini("; Plesk panel.ini\n[debug]\nenabled = on\n");
    let d = Daemon::start(&sb);
    let good_line = format!("buyUrl = \"{BUY}\"");
    assert!(
        eventually(T, || sb.read_panel_ini().contains(&good_line)),
        "{}",
        sb.read_panel_ini()
    );
    let good = sb.read_panel_ini();
    let before = repairs(&d);

    // An editor: temporary file, then rename over panel.ini, with a changed value and a new section.
    let evil_line = "buyUrl = \"https://evil.example.com\"";
    let intruder = good.replace(&good_line, evil_line) + "[foo]\nbar = 1\n";
    let tmp = sb.panel_ini.with_file_name("panel.ini.swp");
    std::fs::write(&tmp, &intruder).unwrap();
    std::fs::rename(&tmp, &sb.panel_ini).unwrap();
    let want = intruder.replace(evil_line, &good_line);
    assert!(
        eventually(T, || sb.read_panel_ini() == want),
        "not repaired within {T:?}: {:?}; log:\n{}",
        sb.read_panel_ini(),
        d.log_text()
    );
    assert!(
        d.wait_status(|s| s["panel_ini"]["repairs"].as_u64().unwrap() > before, T)
            .is_some(),
        "the repair is not counted"
    );
    let after_rename = repairs(&d);

    // An in-place edit: truncate and write the same inode.
    let intruder2 = want.replace(&good_line, evil_line) + "; edited in place\n";
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&sb.panel_ini)
            .unwrap();
        f.write_all(intruder2.as_bytes()).unwrap();
    }
    let want2 = intruder2.replace(evil_line, &good_line);
    assert!(
        eventually(T, || sb.read_panel_ini() == want2),
        "not repaired within {T:?}: {:?}; log:\n{}",
        sb.read_panel_ini(),
        d.log_text()
    );
    let s = d
        .wait_status(|s| s["panel_ini"]["repairs"].as_u64().unwrap() > after_rename, T)
        .expect("the in-place repair is not counted");
    assert_eq!(s["panel_ini"]["in_sync"], true);
    assert_eq!(s["panel_ini"]["buy_url"]["actual"], BUY);
    assert!(s["panel_ini"]["last_repair_at"].is_string());
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn sighup_reloads_the_local_buy_url() {
    let sb = Sandbox::new("", &format!("buy_url = {BUY}"), "");
    let d = Daemon::start(&sb);
    assert!(eventually(T, || sb.read_panel_ini().contains(BUY)));

    let other = "https://other-shop.example.com/plesk";
    set_config(&sb, "panel", "buy_url", other);
    d.signal(Signal::SIGHUP);
    assert!(
        eventually(T, || sb.read_panel_ini().contains(&format!("buyUrl = \"{other}\""))),
        "panel.ini did not follow the reloaded config: {:?}; log:\n{}",
        sb.read_panel_ini(),
        d.log_text()
    );
    let s = d.wait_status(|s| s["panel_ini"]["buy_url"]["desired"] == other, T);
    assert!(s.is_some(), "status does not show the reloaded value");
    assert_eq!(d.stop().code(), Some(0));
}
