//! PHP itself as the oracle: whatever the editor writes must read back through
//! `parse_ini_file(..., true, INI_SCANNER_NORMAL)` with the managed keys at the desired values
//! and every other section and key exactly as before.
//!
//! Needs `php` (Debian's php-cli). Without it the test fails, unless SKIP_PHP_ORACLE=1.
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

use std::path::Path;
use std::process::Command;

use plesk_reseller_agent::panel_ini::editor::{apply, Desired, Wish};
use proptest::prelude::*;
use serde_json::{Map, Value};

const URLS: &[&str] = &[
    "https://shop.example.com",
    "https://shop.example.com/buy?x=1&y=2&z=a=b",
    "http://proxy.example.com:8080",
    "https://store.example.net:8443/a%20b/~user/?q=(1)&r=!{x}|^",
    "https://[2001:db8::1]:8080/#frag;not-a-comment",
];

fn php_available() -> bool {
    let found = Command::new("php").arg("-v").output().is_ok_and(|o| o.status.success());
    if !found && std::env::var("SKIP_PHP_ORACLE").as_deref() != Ok("1") {
        panic!("`php` (php-cli) is not installed: the PHP oracle test needs it; set SKIP_PHP_ORACLE=1 to skip");
    }
    found
}

/// What PHP reads, or `None` when `parse_ini_file` refuses the file.
fn php_parse(path: &Path) -> Option<Map<String, Value>> {
    let out = Command::new("php")
        .args(["-d", "display_errors=stderr", "-r"])
        .arg("echo json_encode(parse_ini_file($argv[1], true, INI_SCANNER_NORMAL));")
        .arg(path)
        .output()
        .expect("run php");
    assert!(
        out.status.success(),
        "php failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match normalize(serde_json::from_slice::<Value>(&out.stdout).expect("php printed JSON")) {
        Value::Object(m) => Some(m),
        Value::Bool(false) => None,
        other => panic!("unexpected php output {other}"),
    }
}

/// json_encode prints an empty array (a file or section without keys) as `[]`.
fn normalize(v: Value) -> Value {
    match v {
        Value::Array(a) if a.is_empty() => Value::Object(Map::new()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, normalize(v))).collect()),
        other => other,
    }
}

/// Checks one file and wishes against PHP; `false` when PHP cannot read the input at all.
fn oracle(input: &[u8], d: &Desired) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("panel.ini");
    std::fs::write(&path, input).unwrap();
    let Some(before) = php_parse(&path) else {
        return false;
    };
    let output = apply(input, d);
    std::fs::write(&path, &output).unwrap();
    let shown = String::from_utf8_lossy(&output).into_owned();
    let mut after = php_parse(&path).unwrap_or_else(|| panic!("PHP cannot read the output:\n{shown}"));

    let mut before_rest = before.clone();
    for (key, wish) in [("buyUrl", &d.buy_url), ("catalog.url", &d.catalog_url)] {
        let got = after.get("extensions").and_then(|s| s.get(key)).cloned();
        let was = before.get("extensions").and_then(|s| s.get(key)).cloned();
        match wish {
            Wish::Set(v) => assert_eq!(got, Some(Value::String(v.clone())), "{key} in\n{shown}"),
            Wish::Remove => assert_eq!(got, None, "{key} in\n{shown}"),
            Wish::Leave => assert_eq!(got, was, "{key} in\n{shown}"),
        }
        for m in [&mut after, &mut before_rest] {
            if let Some(Value::Object(s)) = m.get_mut("extensions") {
                s.remove(key);
            }
        }
    }
    // The appended section is the only new one, and it holds only managed keys.
    if !before_rest.contains_key("extensions") && after.get("extensions") == Some(&Value::Object(Map::new())) {
        after.remove("extensions");
    }
    assert_eq!(after, before_rest, "everything else as before, in\n{shown}");
    true
}

fn set(b: &str, c: &str) -> Desired {
    Desired {
        buy_url: Wish::Set(b.into()),
        catalog_url: Wish::Set(c.into()),
    }
}

const CORPUS: &[&str] = &[
    "",
    "\n",
    "; Use \";\" for comments\n;[debug]\n;enabled = on\n",
    "[extensions]\n",
    "[extensions]\nblacklist = id1,id2\ncatalog.enabled = off\n",
    "[extensions]\nbuyUrl = \"https://old.example\"\ncatalog.url = \"http://old.example:8080\"\n",
    "[extensions]\nbuyUrl = https://bare.example/x\n",
    "[extensions]\r\nbuyUrl = \"https://old.example\"\r\n[debug]\r\nenabled = on\r\n",
    "\u{feff}[extensions]\nbuyUrl = \"https://old.example\"\n",
    "\u{feff}; bom first\n[license]\nfileUpload = true\n",
    "[extensions]\nbuyUrl = \"https://a.example\"\n[debug]\nx = 1\n[extensions]\nbuyUrl = \"https://b.example\"\n",
    "[extensions]\nbuyUrl = \"https://a.example\"\nbuyUrl = \"https://b.example\"\ncatalog.url = x\ncatalog.url = y",
    "[ extensions ]\nbuyUrl = \"https://lookalike.example\"\n",
    "[Extensions]\nbuyUrl = \"https://case.example\"\n",
    "[extensions] ; the reseller's keys\nbuyUrl = \"https://old.example\" ; old\n",
    "top = 1\nbuyUrl = \"https://outside.example\"\n[extensions]\n",
    "[extensions]\n# buyUrl = \"https://hash.example\"\nbuyurl = \"https://lower.example\"\n",
    "[paths]\nwin = \"C:\\dir\\file\"\nbare = C:\\dir\\\nesc = \"a\\\\b\"\n",
    "[extensions]\nbuyUrl[] = one\nbuyUrl[] = two\n",
    "[extensions]\nbuyUrl = on\ncatalog.url = null\n",
    "[other]\nlong = \"first line\n[extensions]\nbuyUrl = inside a string\"\n",
    "[extensions]\nbuyUrl = \"https://old.example\"\n\n\n[debug]\nenabled = on\n\n",
    "[extensions]\ncatalog.enabled = on\n\n; trailing comment\n",
    "[debug]\nenabled = on",
    "[extensions]",
    "a=1\rb=2\r[extensions]\rc=3\r",
    "[extensions]\n\tbuyUrl\t=\t\"https://tab.example\"\t\n",
    "[webserver]\nnginxHttpsPort = 443\n[extensions]\nblacklist = \"a,b\"\n[product]\nname = \"Plesk\"\n",
    "[extensions]\nbuyUrl = \"https://old.example\"\n[ext\"ensions\"]\ncatalog.url = \"http://quoted.example\"\n",
    "[extensions]\nbuyUrl = \"\"\ncatalog.url =\n",
];

#[test]
fn php_reads_the_desired_values_from_a_corpus_of_real_shapes() {
    if !php_available() {
        return;
    }
    let wishes = [
        set(URLS[1], URLS[2]),
        set(URLS[3], URLS[4]),
        set("https://old.example", "http://old.example:8080"),
        Desired {
            buy_url: Wish::Remove,
            catalog_url: Wish::Set(URLS[0].into()),
        },
        Desired {
            buy_url: Wish::Set(URLS[0].into()),
            catalog_url: Wish::Leave,
        },
        Desired {
            buy_url: Wish::Remove,
            catalog_url: Wish::Remove,
        },
        Desired {
            buy_url: Wish::Leave,
            catalog_url: Wish::Leave,
        },
    ];
    let mut read = 0;
    for input in CORPUS {
        for d in &wishes {
            if oracle(input.as_bytes(), d) {
                read += 1;
            }
        }
    }
    assert!(
        read >= 7 * (CORPUS.len() - 2),
        "PHP refused too much of the corpus: {read} cases read"
    );
}

fn line() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "buyUrl",
        "catalog.url",
        "buyurl",
        "blacklist",
        "catalog.enabled",
        "k",
    ]);
    let value = prop::sample::select(vec![
        "\"https://old.example/?a=1\"",
        "https://bare.example/x",
        "on",
        "\"C:\\dir\\x\"",
        "C:\\dir\\",
        "1 ; note",
        "",
    ]);
    prop_oneof![
        3 => (key, prop::sample::select(vec![" = ", "=", "\t= "]), value).prop_map(|(k, s, v)| format!("{k}{s}{v}")),
        1 => Just(String::new()),
        1 => Just("; comment with \"quotes\" and (parens)".to_string()),
        1 => Just("# hash line".to_string()),
        1 => prop::sample::select(vec!["[extensions]", "[extensions] ; x", "[ extensions ]", "[debug]", "[Extensions]"])
            .prop_map(str::to_string),
    ]
}

prop_compose! {
    fn file()(bom in any::<bool>(), crlf in any::<bool>(), lines in prop::collection::vec(line(), 0..16), eol_at_end in any::<bool>()) -> Vec<u8> {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut s = if bom { "\u{feff}".to_string() } else { String::new() };
        s.push_str(&lines.join(eol));
        if eol_at_end && !lines.is_empty() {
            s.push_str(eol);
        }
        s.into_bytes()
    }
}

fn wish() -> impl Strategy<Value = Wish> {
    prop_oneof![
        1 => Just(Wish::Leave),
        1 => Just(Wish::Remove),
        3 => prop::sample::select(URLS).prop_map(|u| Wish::Set(u.to_string())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn php_reads_the_desired_values_from_generated_files(input in file(), b in wish(), c in wish()) {
        if php_available() {
            let d = Desired { buy_url: b, catalog_url: c };
            prop_assume!(oracle(&input, &d), "PHP refuses the input itself");
        }
    }
}
