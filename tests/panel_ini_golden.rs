//! Realistic panel.ini files and the exact bytes the editor must produce for them.

use plesk_reseller_agent::panel_ini::editor::{apply, read_managed, Desired, Wish};

const BUY: &str = "https://shop.example.com/buy?x=1&y=2";
const CAT: &str = "http://proxy.example.com:8080";

fn both() -> Desired {
    Desired {
        buy_url: Wish::Set(BUY.into()),
        catalog_url: Wish::Set(CAT.into()),
    }
}

fn golden(input: &[u8], d: &Desired, expected: &[u8]) {
    let out = apply(input, d);
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(expected),
        "output differs from the golden file"
    );
    assert_eq!(apply(&out, d), out, "golden output is stable");
}

const SAMPLE: &str = "\
; This is a sample of panel.ini, Plesk's configuration file.
; Use \";\" for comments.
; To change the settings, copy this file to panel.ini and uncomment the lines.

;[debug]
;enabled = on

[log]
; filter = 7
filter.priority = 7
";

#[test]
fn plesk_sample_header_gets_a_new_section_at_the_end() {
    let expected = format!("{SAMPLE}\n[extensions]\nbuyUrl = \"{BUY}\"\ncatalog.url = \"{CAT}\"\n");
    golden(SAMPLE.as_bytes(), &both(), expected.as_bytes());
}

#[test]
fn existing_section_with_blacklist_and_catalog_enabled() {
    let input = "\
[extensions]
blacklist = id1,id2
catalog.enabled = off
buyUrl = https://old.example.com  ; set by hand

[debug]
enabled = on
";
    let expected = format!(
        "\
[extensions]
blacklist = id1,id2
catalog.enabled = off
buyUrl = \"{BUY}\"
catalog.url = \"{CAT}\"

[debug]
enabled = on
"
    );
    golden(input.as_bytes(), &both(), expected.as_bytes());
}

#[test]
fn crlf_file_stays_crlf() {
    let input = "; Plesk\r\n[extensions]\r\ncatalog.url = \"http://old:8080\"\r\n\r\n[debug]\r\nenabled = on\r\n";
    let expected = format!(
        "; Plesk\r\n[extensions]\r\ncatalog.url = \"{CAT}\"\r\nbuyUrl = \"{BUY}\"\r\n\r\n[debug]\r\nenabled = on\r\n"
    );
    golden(input.as_bytes(), &both(), expected.as_bytes());
}

#[test]
fn bom_is_kept_and_the_first_header_still_counts() {
    let input = b"\xEF\xBB\xBF[extensions]\nbuyUrl = \"https://old.example\"\n";
    let mut expected = b"\xEF\xBB\xBF[extensions]\n".to_vec();
    expected.extend_from_slice(format!("buyUrl = \"{BUY}\"\ncatalog.url = \"{CAT}\"\n").as_bytes());
    golden(input, &both(), &expected);
}

#[test]
fn file_without_trailing_newline_gets_one_before_the_new_keys() {
    let input = "[extensions]\nblacklist = a";
    let expected = format!("[extensions]\nblacklist = a\nbuyUrl = \"{BUY}\"\n");
    let d = Desired {
        buy_url: Wish::Set(BUY.into()),
        catalog_url: Wish::Remove,
    };
    golden(input.as_bytes(), &d, expected.as_bytes());
    // Rewriting the last line in place does not add a line ending.
    let input = "[extensions]\nbuyUrl = old";
    golden(
        input.as_bytes(),
        &d,
        format!("[extensions]\nbuyUrl = \"{BUY}\"").as_bytes(),
    );
}

#[test]
fn duplicate_buy_url_in_two_extensions_sections_leaves_one_in_the_last() {
    let input = "\
[extensions]
buyUrl = \"https://first.example\"
catalog.url = \"http://a:8080\"

[debug]
enabled = on

[extensions] ; added later by someone
buyUrl = \"https://second.example\"
buyUrl = \"https://third.example\"
";
    let expected = format!(
        "\
[extensions]

[debug]
enabled = on

[extensions] ; added later by someone
buyUrl = \"{BUY}\"
catalog.url = \"{CAT}\"
"
    );
    golden(input.as_bytes(), &both(), expected.as_bytes());
}

#[test]
fn remove_and_leave_touch_nothing_else() {
    let input = "[extensions]\n; reseller\nbuyUrl = \"https://old.example\"\ncatalog.url = x ; keep\n# note\n";
    let d = Desired {
        buy_url: Wish::Remove,
        catalog_url: Wish::Leave,
    };
    golden(
        input.as_bytes(),
        &d,
        b"[extensions]\n; reseller\ncatalog.url = x ; keep\n# note\n",
    );
}

#[test]
fn in_sync_file_is_returned_byte_for_byte() {
    let input = format!("[extensions]\r\n  buyUrl   =   \"{BUY}\"   ; ours\r\ncatalog.url={CAT}\r\n");
    assert_eq!(apply(input.as_bytes(), &both()), input.as_bytes());
    let m = read_managed(input.as_bytes());
    assert_eq!((m.buy_url.as_deref(), m.catalog_url.as_deref()), (Some(BUY), Some(CAT)));
}

#[test]
fn lookalike_headers_and_keys_are_not_ours() {
    let input = "[ extensions ]\nbuyUrl = \"https://a\"\n[Extensions]\nbuyurl = b\n[extensions.x]\ncatalog.url = c\n";
    assert_eq!(read_managed(input.as_bytes()), Default::default());
    let expected = format!("{input}\n[extensions]\nbuyUrl = \"{BUY}\"\ncatalog.url = \"{CAT}\"\n");
    golden(input.as_bytes(), &both(), expected.as_bytes());
}

#[test]
fn backslashes_elsewhere_survive() {
    let input = "[paths]\nwin = \"C:\\Plesk\\x\"\nbare = C:\\dir\\\n[extensions]\n";
    let expected = format!("{input}buyUrl = \"{BUY}\"\ncatalog.url = \"{CAT}\"\n");
    golden(input.as_bytes(), &both(), expected.as_bytes());
}
