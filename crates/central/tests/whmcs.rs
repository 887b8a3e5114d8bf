//! The WHMCS module (integrations/whmcs) end to end: PHPUnit drives the module's functions
//! against the real central (admin TCP listener + admin token), the fake KA and a real agent
//! with the stand-in plesk; callback.php runs under php's built-in server as the central's
//! webhook receiver. Needs Debian's `phpunit` (scripts/test.sh installs it); under CI=true a
//! missing phpunit fails instead of skipping.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use support::agent::Agent;
use support::central::{self, Central};
use support::fake_ka::{self, FakeKa};
use support::wait_for;

const PLESK_ITEM: &str = "PLESK-12-WEB-HOST-1M";
const UPGRADE_ITEM: &str = "PLESK-12-WEB-PRO-1M";
const EXT_ITEM: &str = "ADD-SEO-TOOLKIT-1M";
const KN: &str = "PLSK.12345678.0001";
const ADMIN_TOKEN: &str = "whmcs-admin-token-0123456789abcdef";
/// The Standard Webhooks spec's example secret: the central signs with it, callback.php checks.
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `phpunit` on PATH, or None (skipped, and said so) unless CI=true.
fn phpunit() -> Option<()> {
    let found = Command::new("phpunit")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    match found {
        true => Some(()),
        false if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but phpunit is not installed (apt-get install phpunit php-cli)")
        }
        false => {
            eprintln!("phpunit is not installed: the WHMCS module test is skipped (scripts/test.sh installs it)");
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn secret_file(path: &Path, content: &str) {
    std::fs::write(path, format!("{content}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// callback.php under `php -S`, killed with the test.
struct PhpServer(Child);

impl Drop for PhpServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_whmcs_module_sells_and_manages_licenses_through_the_central() {
    if phpunit().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ka: FakeKa = rt.block_on(FakeKa::start(&[PLESK_ITEM, UPGRADE_ITEM, EXT_ITEM]));
    ka.add_key(KN);

    // The store: callback.php on a port the central's [webhooks] url names.
    let cb_port = free_port();
    let state_dir = root.join("whmcs-state");
    let php_config = root.join("whmcs-config.php");
    std::fs::write(
        &php_config,
        format!(
            "<?php return ['webhook_secret' => '{WEBHOOK_SECRET}', 'state_dir' => '{}'];\n",
            state_dir.display()
        ),
    )
    .unwrap();
    let journal = root.join("whmcs-journal.log");
    let whmcs = workspace().join("integrations/whmcs");
    let _callback = PhpServer(
        Command::new("php")
            .args(["-S", &format!("127.0.0.1:{cb_port}")])
            .arg(whmcs.join("tests/callback-router.php"))
            .env("PLESKRESELLER_CONFIG", &php_config)
            .env("PLESKRESELLER_TEST_JOURNAL", &journal)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let pw = root.join("ka.password");
    secret_file(&pw, fake_ka::PASSWORD);
    let wh = root.join("webhook.secret");
    secret_file(&wh, WEBHOOK_SECRET);
    let (admin, admin_port) = central::admin_listen(root, ADMIN_TOKEN);
    let config = format!(
        "{admin}[ka]\nurl = {}\nusername = {}\npassword_file = {}\nowner_id = {}\nplesk_item = {PLESK_ITEM}\ntimeout = 5\n\
         [webhooks]\nurl = http://127.0.0.1:{cb_port}/callback.php\nsecret_file = {}\n\
         [sell]\nseo-toolkit = {EXT_ITEM}\nnot-at-ka = ADD-UNKNOWN-1M\n",
        ka.base_url(),
        fake_ka::USER,
        pw.display(),
        fake_ka::OWNER,
        wh.display(),
    );
    let mut central = Central::new(&root.join("central"), &config);
    central.start();
    let token = central.add_host("web-1", &[])["token"].as_str().unwrap().to_string();
    let mut agent = Agent::new(&root.join("agent"), &central.url(), "web-1", &token, 25, "");
    agent.set_key("PLSK123456780001");
    // The stand-in installs the key number KA gives the second key (the extension is first).
    std::fs::write(agent.plesk_dir.join("new_key_id"), "PLSK120000020000").unwrap();
    agent.start();
    wait_for(30, "the host's key number", || {
        (central.json(&["hosts", "show", "web-1"])["key_number"] == KN).then_some(())
    });

    let out_file = root.join("phpunit-out.txt");
    let out = Command::new("phpunit")
        .args(["--verbose", "--configuration"])
        .arg(whmcs.join("phpunit.xml"))
        .current_dir(&whmcs)
        .env("PLESKRESELLER_TEST_ADMIN_URL", format!("http://127.0.0.1:{admin_port}"))
        .env("PLESKRESELLER_TEST_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("PLESKRESELLER_TEST_AGENTS_URL", central.url())
        .env("PLESKRESELLER_TEST_HOST", "web-1")
        .env("PLESKRESELLER_TEST_KN", KN)
        .env("PLESKRESELLER_TEST_EXTENSION", "seo-toolkit")
        .env("PLESKRESELLER_TEST_ITEMS", UPGRADE_ITEM)
        .env("PLESKRESELLER_TEST_OUT", &out_file)
        .env("PLESKRESELLER_TEST_JOURNAL", &journal)
        .env("PLESKRESELLER_CONFIG", &php_config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    if !out.status.success() {
        let log = central.log_text();
        let tail: Vec<_> = log.lines().filter(|l| !l.contains("DEBUG")).collect();
        panic!(
            "phpunit failed:\n{text}\n{}\nthe central's log, less DEBUG lines:\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail.join("\n")
        );
    }

    // What PHPUnit did, seen from KA and the server: each order bought once, retries included.
    let recorded = std::fs::read_to_string(&out_file).unwrap_or_default();
    assert!(recorded.contains("plesk_order=whmcs-1001-create-1"), "{recorded}");
    assert!(recorded.contains("extension_order=whmcs-2001-create-1"), "{recorded}");
    assert_eq!(ka.creates_for("whmcs-1001-create-1"), 1);
    assert_eq!(ka.creates_for("whmcs-2001-create-1"), 1);
    assert!(recorded.contains("refused_order=whmcs-3001-create-1"), "{recorded}");
    assert_eq!(ka.creates_for("whmcs-3001-create-1"), 2, "refused, then Create again");
    let plesk_key = ka.keys_named("whmcs-1001-create-1").remove(0);
    // Made as .0000 (the stand-in's new_key_id); ChangePackage's items change bumped it once.
    assert_eq!(
        plesk_key.key_number, "PLSK.12000002.0001",
        "the stand-in's new_key_id, changed once"
    );
    let calls = agent.license_calls();
    assert!(
        calls.contains(&format!("bin license -i {}", plesk_key.activation_code)),
        "{calls:?}"
    );
    assert!(calls.contains(&"bin license --retrieve".to_string()), "{calls:?}");

    // Section 9's operations: once each at KA although PHPUnit called each twice.
    let key_path = format!("keys/{}", plesk_key.key_id);
    let ka_calls = ka.calls();
    let on_key = |m: &str| {
        ka_calls
            .iter()
            .filter(|c| c.method == m && c.path.contains(&key_path))
            .count()
    };
    assert_eq!(on_key("PUT"), 3, "suspend, resume, change: {ka_calls:?}");
    assert_eq!(on_key("DELETE"), 1, "terminate: {ka_calls:?}");
    let retrieves = || {
        agent
            .license_calls()
            .iter()
            .filter(|c| *c == "bin license --retrieve")
            .count()
    };
    // The last operation's job may still be on its way to the server.
    wait_for(30, "the terminate's retrieve on the server", || {
        (retrieves() >= 5).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(retrieves(), 5, "the extension and each operation once");
}
