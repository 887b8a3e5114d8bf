//! panel.ini is shared with Plesk and its admins. Against the real daemon: an external
//! editor rewriting the file by rename while the agent repairs it never loses an edit, and
//! SIGKILLs during repairs leave no temp file behind and never a partial panel.ini.
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::daemon::{eventually, Daemon};
use support::sandbox::Sandbox;

const BUY: &str = "https://shop.example.com/buy";
const EVIL: &str = "buyUrl = \"https://evil.example.com\"";
const T: Duration = Duration::from_secs(10);

fn good_line() -> String {
    format!("buyUrl = \"{BUY}\"")
}

/// What an editor does: write a temp file beside panel.ini, rename it into place.
fn rename_in(panel_ini: &Path, content: &str, n: usize) {
    let tmp = panel_ini.with_file_name(format!("panel.ini.editor-{n}"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, panel_ini).unwrap();
}

fn sleep_ms(lo: u64, hi: u64) {
    std::thread::sleep(Duration::from_micros(fastrand::u64(lo * 1000..hi * 1000)));
}

/// Names in `dir` that look like a temp file of an atomic write (`.<name>.tmp.<pid>.<n>`).
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.') && n.contains(".tmp."))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_editor_renaming_files_in_while_the_agent_repairs_never_loses_an_edit() {
    let sb = Sandbox::new("", &format!("buy_url = {BUY}"), "");
    sb.write_panel_ini(&format!("; Plesk panel.ini\n[editor]\n[extensions]\n{}\n", good_line()));
    let d = Daemon::start(&sb);

    // Each edit reads the file and adds one key to [editor]. Every fourth one also sets a
    // wrong buyUrl, and the next edit follows within 1-3 ms: while the agent repairs, in the
    // window between its read of the file and its rename.
    const EDITS: usize = 160;
    let mut drifts = 0;
    for i in 0..EDITS {
        let now = sb.read_panel_ini();
        let mut next = now.replacen("[editor]\n", &format!("[editor]\nk{i} = {i}\n"), 1);
        let drift = i % 4 == 0;
        if drift {
            next = next.replace(&good_line(), EVIL);
            drifts += 1;
        }
        rename_in(&sb.panel_ini, &next, i);
        if drift {
            sleep_ms(1, 3);
        } else {
            sleep_ms(5, 25);
        }
    }

    let settled = eventually(T, || {
        let s = d.status_json();
        s["panel_ini"]["in_sync"] == true && sb.read_panel_ini().contains(&good_line())
    });
    let text = sb.read_panel_ini();
    assert!(
        settled,
        "not repaired after the editor stopped: {text}\nlog:\n{}",
        d.log_text()
    );
    let lost: Vec<usize> = (0..EDITS)
        .filter(|i| !text.contains(&format!("\nk{i} = {i}\n")))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of the editor's {EDITS} edits were lost ({drifts} drifts): {lost:?}\n{text}",
        lost.len()
    );
    assert_eq!(text.matches("buyUrl").count(), 1, "{text}");
    assert!(d.status_json()["panel_ini"]["repairs"].as_u64().unwrap() >= 1);
    assert_eq!(d.stop().code(), Some(0));
    assert_eq!(temp_files(sb.panel_ini.parent().unwrap()), Vec::<String>::new());
}

#[test]
fn sigkills_during_repairs_leave_no_temp_file_and_never_a_partial_panel_ini() {
    let sb = Sandbox::new("", &format!("buy_url = {BUY}"), "");
    // Big enough that a torn write would show: about 64 KiB of other settings.
    let filler: String = (0..2000).map(|i| format!("setting{i} = value {i}\n")).collect();
    let base = format!("; Plesk panel.ini\n[other]\n{filler}[extensions]\n{}\n", good_line());
    sb.write_panel_ini(&base);

    // Every content panel.ini may have: the base, each drift, and each drift repaired.
    let allowed = Arc::new(Mutex::new(HashSet::from([base.clone()])));
    let stop = Arc::new(AtomicBool::new(false));
    let drifter = {
        let (allowed, stop, ini) = (allowed.clone(), stop.clone(), sb.panel_ini.clone());
        let base = base.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let drifted = format!("{}; drift {n}\n", base.replace(&good_line(), EVIL));
                {
                    let mut a = allowed.lock().unwrap();
                    a.insert(drifted.replace(EVIL, &good_line()));
                    a.insert(drifted.clone());
                }
                rename_in(&ini, &drifted, n);
                n += 1;
                sleep_ms(2, 8);
            }
            n
        })
    };
    let checker = {
        let (allowed, stop, ini) = (allowed.clone(), stop.clone(), sb.panel_ini.clone());
        std::thread::spawn(move || {
            let (mut reads, mut bad) = (0u64, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                let text = std::fs::read_to_string(&ini).unwrap();
                reads += 1;
                if !allowed.lock().unwrap().contains(&text) && bad.len() < 3 {
                    bad.push(text.len());
                }
            }
            (reads, bad)
        })
    };

    const KILLS: usize = 30;
    for _ in 0..KILLS {
        let d = Daemon::start(&sb);
        sleep_ms(20, 120);
        d.kill();
    }
    stop.store(true, Ordering::SeqCst);
    let drifts = drifter.join().unwrap();
    let (reads, bad) = checker.join().unwrap();
    assert!(
        bad.is_empty(),
        "panel.ini was read partial or unknown (lengths {bad:?})"
    );
    assert!(drifts > 100 && reads > 100, "{drifts} drifts, {reads} reads");

    // A clean start and stop after the crashes: the file repaired, no debris anywhere.
    let d = Daemon::start(&sb);
    assert!(
        eventually(T, || sb.read_panel_ini().contains(&good_line())),
        "not repaired: {}",
        d.log_text()
    );
    assert_eq!(d.stop().code(), Some(0));
    for dir in [
        sb.panel_ini.parent().unwrap().to_path_buf(),
        sb.state_dir.clone(),
        sb.state_dir.join("backup"),
        sb.state_dir.join("jobs"),
    ] {
        assert_eq!(temp_files(&dir), Vec::<String>::new(), "in {}", dir.display());
    }
    let backups = std::fs::read_dir(sb.state_dir.join("backup")).unwrap().count();
    assert_eq!(backups, 2, "only panel.ini.orig and panel.ini.prev");
}
