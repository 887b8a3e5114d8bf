//! The file watcher against a real directory: in-place writes, editor-style
//! rename-replace, delete + recreate, and unrelated files.
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use plesk_reseller_agent::watch::watch;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// Waits (generously) for an event naming `want`, then swallows the burst that follows.
async fn expect_event(rx: &mut UnboundedReceiver<PathBuf>, want: &Path, what: &str) {
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: no event within 5 s"))
        .expect("watcher channel closed");
    assert_eq!(got, want, "{what}");
    drain(rx).await;
}

/// Swallows events until the watcher has been quiet for a moment.
async fn drain(rx: &mut UnboundedReceiver<PathBuf>) {
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(150), rx.recv()).await {}
}

async fn expect_quiet(rx: &mut UnboundedReceiver<PathBuf>, what: &str) {
    if let Ok(Some(p)) = tokio::time::timeout(Duration::from_millis(400), rx.recv()).await {
        panic!("{what}: unexpected event for {}", p.display());
    }
}

fn replace_by_rename(dir: &Path, target: &Path, content: &str) {
    let tmp = dir.join(".panel.ini.swp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, target).unwrap();
}

#[tokio::test]
async fn sees_in_place_writes_renames_and_recreation() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("panel.ini");
    std::fs::write(&ini, "[extensions]\n").unwrap();
    let (tx, mut rx) = unbounded_channel();
    let w = watch(vec![ini.clone()], tx).unwrap();
    assert_eq!(w.dirs(), [dir.path().to_path_buf()]);

    std::fs::write(&ini, "[extensions]\nbuyUrl = \"https://x\"\n").unwrap();
    expect_event(&mut rx, &ini, "in-place write").await;

    replace_by_rename(dir.path(), &ini, "[extensions]\n");
    expect_event(&mut rx, &ini, "rename-replace").await;

    std::fs::write(dir.path().join("other.ini"), "x").unwrap();
    std::fs::write(dir.path().join("panel.ini.bak"), "x").unwrap();
    expect_quiet(&mut rx, "unrelated files").await;

    std::fs::remove_file(&ini).unwrap();
    expect_event(&mut rx, &ini, "delete").await;
    std::fs::write(&ini, "[extensions]\n").unwrap();
    expect_event(&mut rx, &ini, "recreate").await;
}

#[tokio::test]
async fn the_watch_survives_repeated_rename_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("panel.ini");
    std::fs::write(&ini, "a\n").unwrap();
    let (tx, mut rx) = unbounded_channel();
    let _w = watch(vec![ini.clone()], tx).unwrap();
    for i in 0..3 {
        replace_by_rename(dir.path(), &ini, &format!("v{i}\n"));
        expect_event(&mut rx, &ini, &format!("replacement {i}")).await;
    }
    // And a plain write after all that still arrives.
    std::fs::write(&ini, "last\n").unwrap();
    expect_event(&mut rx, &ini, "write after replacements").await;
}

#[tokio::test]
async fn a_file_that_does_not_exist_yet_is_seen_when_created() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("instructions.json");
    let (tx, mut rx) = unbounded_channel();
    let _w = watch(vec![spool.clone()], tx).unwrap();
    replace_by_rename(dir.path(), &spool, "{}");
    expect_event(&mut rx, &spool, "created by rename").await;
}

#[tokio::test]
async fn several_files_in_one_directory_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.ini");
    let b = dir.path().join("b.ini");
    let (tx, mut rx) = unbounded_channel();
    let w = watch(vec![a.clone(), b.clone()], tx).unwrap();
    assert_eq!(w.dirs().len(), 1, "one directory, watched once");
    std::fs::write(&b, "x").unwrap();
    expect_event(&mut rx, &b, "b written").await;
    std::fs::write(&a, "x").unwrap();
    expect_event(&mut rx, &a, "a written").await;
}

#[tokio::test]
async fn a_symlinked_file_is_watched_at_its_target_too() {
    let conf = tempfile::tempdir().unwrap();
    let real = tempfile::tempdir().unwrap();
    let target = real.path().join("panel.ini");
    std::fs::write(&target, "a\n").unwrap();
    let link = conf.path().join("panel.ini");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let (tx, mut rx) = unbounded_channel();
    let w = watch(vec![link.clone()], tx).unwrap();
    assert_eq!(w.dirs().len(), 2);

    std::fs::write(&target, "b\n").unwrap();
    expect_event(&mut rx, &link, "write to the link target").await;
    replace_by_rename(real.path(), &target, "c\n");
    expect_event(&mut rx, &link, "rename-replace of the link target").await;
}

#[tokio::test]
async fn dropping_the_watch_stops_events() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("panel.ini");
    let (tx, mut rx) = unbounded_channel();
    let w = watch(vec![ini.clone()], tx).unwrap();
    drop(w);
    std::fs::write(&ini, "x").unwrap();
    // The sender lived in the watcher, so the channel ends (an event already in flight
    // while the watcher's thread shut down may still come first).
    tokio::time::timeout(Duration::from_secs(5), async { while rx.recv().await.is_some() {} })
        .await
        .expect("channel should close once the watch is dropped");
}
