//! Property tests of the panel.ini editor over generated files that mix everything a real
//! panel.ini may hold: comments of both kinds, blank lines, LF/CRLF/mixed endings, a BOM,
//! backslashes, duplicates, keys outside sections, look-alike headers.

use plesk_reseller_agent::panel_ini::editor::{apply, read_managed, Desired, Wish};
use proptest::prelude::*;

const BOM: &[u8] = b"\xEF\xBB\xBF";
const URLS: &[&str] = &[
    "https://shop.example.com",
    "https://shop.example.com/buy?x=1&y=2",
    "http://proxy.example.com:8080",
    "https://store.example.net/a%20b~c/?q=a=b&r=!",
];
const MANAGED: &[&str] = &["buyUrl", "catalog.url"];

fn ending() -> impl Strategy<Value = &'static str> {
    prop_oneof![4 => Just("\n"), 2 => Just("\r\n"), 1 => Just("\r")]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1".to_string()),
        Just("off".to_string()),
        Just("id1,id2".to_string()),
        Just("\"C:\\dir\\file\"".to_string()),
        Just("C:\\dir\\".to_string()),
        Just("\"a ; b\" ; trailing".to_string()),
        Just("".to_string()),
        Just("\"\"".to_string()),
        prop::sample::select(URLS).prop_map(|u| format!("\"{u}\"")),
        Just("https://bare.example.com/x".to_string()),
    ]
}

fn line() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "buyUrl",
        "catalog.url",
        "buyUrl",
        "catalog.url",
        "buyurl",
        "BuyUrl",
        "catalog.enabled",
        "blacklist",
        "buyUrlx",
        "catalog",
        "# buyUrl",
        "other.key",
    ]);
    let spacing = prop::sample::select(vec![("", ""), (" ", " "), ("  ", "\t"), ("\t", "")]);
    let lead = prop::sample::select(vec!["", " ", "\t"]);
    prop_oneof![
        2 => (key, spacing, lead, value()).prop_map(|(k, (a, b), l, v)| format!("{l}{k}{a}={b}{v}")),
        1 => Just(String::new()),
        1 => Just("   ".to_string()),
        1 => Just("; Use \";\" for comments".to_string()),
        1 => Just(";buyUrl = \"https://commented.example\"".to_string()),
        1 => Just("# hash line, kept as is".to_string()),
        1 => prop::sample::select(vec![
            "[extensions]", "[extensions]", "[extensions] ; mine", "[extensions]\t;x", "[ extensions ]",
            "[Extensions]", "[debug]", "[other]", "[extensions.x]",
        ])
        .prop_map(str::to_string),
    ]
}

prop_compose! {
    fn file()(
        bom in any::<bool>(),
        lines in prop::collection::vec((line(), ending()), 0..24),
        lf_only in any::<bool>(),
        crlf_only in any::<bool>(),
        no_final_eol in any::<bool>(),
    ) -> Vec<u8> {
        let mut out = Vec::new();
        if bom {
            out.extend_from_slice(BOM);
        }
        let n = lines.len();
        for (i, (l, e)) in lines.into_iter().enumerate() {
            out.extend_from_slice(l.as_bytes());
            if i + 1 == n && no_final_eol {
                break;
            }
            let e = if lf_only { "\n" } else if crlf_only { "\r\n" } else { e };
            out.extend_from_slice(e.as_bytes());
        }
        out
    }
}

fn wish() -> impl Strategy<Value = Wish> {
    prop_oneof![
        1 => Just(Wish::Leave),
        1 => Just(Wish::Remove),
        2 => prop::sample::select(URLS).prop_map(|u| Wish::Set(u.to_string())),
    ]
}

/// One physical line of the independent re-parse, with its ending.
#[derive(Debug, Clone, PartialEq)]
struct L {
    bytes: Vec<u8>,
    /// `Some(key)` for a managed-key assignment inside [extensions].
    managed: Option<String>,
    value: Option<String>,
}

/// A deliberately simple reader, independent of the editor, good for the generated shapes.
fn reparse(content: &[u8]) -> (bool, Vec<L>) {
    let bom = content.starts_with(BOM);
    let body = if bom { &content[3..] } else { content };
    let mut raw = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\n' || body[i] == b'\r' {
            let end = if body[i] == b'\r' && body.get(i + 1) == Some(&b'\n') {
                i + 2
            } else {
                i + 1
            };
            raw.push(body[start..end].to_vec());
            start = end;
            i = end;
        } else {
            i += 1;
        }
    }
    if start < body.len() {
        raw.push(body[start..].to_vec());
    }
    let mut in_ext = false;
    let lines = raw
        .into_iter()
        .map(|bytes| {
            let text = String::from_utf8(bytes.clone()).unwrap();
            let text = text.trim_end_matches(['\r', '\n']);
            let mut managed = None;
            let mut value = None;
            if let Some(rest) = text.strip_prefix('[') {
                let (name, after) = rest.split_once(']').unwrap();
                let after = after.trim_start_matches([' ', '\t']);
                assert!(after.is_empty() || after.starts_with(';'), "generator made {text:?}");
                in_ext = name == "extensions";
            } else if let Some((k, v)) = text.split_once('=') {
                let k = k.trim_matches([' ', '\t']);
                if in_ext && MANAGED.contains(&k) {
                    managed = Some(k.to_string());
                    let v = v.trim_start_matches([' ', '\t']);
                    value = Some(match v.strip_prefix('"') {
                        Some(q) => q.split('"').next().unwrap().to_string(),
                        None => v.split(';').next().unwrap().trim_end_matches([' ', '\t']).to_string(),
                    });
                }
            }
            L { bytes, managed, value }
        })
        .collect();
    (bom, lines)
}

fn assignments(lines: &[L], key: &str) -> Vec<L> {
    lines
        .iter()
        .filter(|l| l.managed.as_deref() == Some(key))
        .cloned()
        .collect()
}

fn keep_rest_exactly(before: &[u8], after: &[u8]) -> Result<(), TestCaseError> {
    let (bom_b, lb) = reparse(before);
    let (bom_a, la) = reparse(after);
    prop_assert_eq!(bom_b, bom_a, "BOM kept");
    let others = |ls: &[L]| {
        ls.iter()
            .filter(|l| l.managed.is_none())
            .map(|l| l.bytes.clone())
            .collect::<Vec<_>>()
    };
    let (ob, mut oa) = (others(&lb), others(&la));
    let had_section = lb.iter().any(|l| l.bytes.starts_with(b"[extensions]"));
    if !had_section && oa.len() > ob.len() {
        // The appended section: optional blank line, then the header (the keys are managed lines).
        let header = oa.pop().unwrap();
        prop_assert!(
            header.starts_with(b"[extensions]") && header.len() <= 14,
            "{:?}",
            header
        );
        if oa.len() > ob.len() {
            let blank = oa.pop().unwrap();
            prop_assert!(blank == b"\n" || blank == b"\r\n" || blank == b"\r", "{:?}", blank);
        }
    }
    // A lone CR before a removed line can join the next line's LF into one CRLF when
    // re-split: the bytes are still exactly the untouched ones, in order.
    if ob.concat() == oa.concat() {
        return Ok(());
    }
    prop_assert_eq!(ob.len(), oa.len(), "same number of untouched lines");
    for (i, (b, a)) in ob.iter().zip(oa.iter()).enumerate() {
        let last_without_eol = i + 1 == ob.len() && !b.ends_with(b"\n") && !b.ends_with(b"\r");
        if last_without_eol && a != b {
            prop_assert!(
                a.starts_with(b) && a.len() - b.len() <= 2,
                "only a line ending added: {:?} -> {:?}",
                b,
                a
            );
        } else {
            prop_assert_eq!(b, a, "line {} unchanged", i);
        }
    }
    Ok(())
}

/// The line endings a file uses: LF, CRLF, CR.
fn endings(content: &[u8]) -> [bool; 3] {
    let (_, lines) = reparse(content);
    let mut seen = [false; 3];
    for l in lines {
        if l.bytes.ends_with(b"\r\n") {
            seen[1] = true;
        } else if l.bytes.ends_with(b"\n") {
            seen[0] = true;
        } else if l.bytes.ends_with(b"\r") {
            seen[2] = true;
        }
    }
    seen
}

fn check(before: &[u8], d: &Desired) -> Result<(), TestCaseError> {
    let after = apply(before, d);
    keep_rest_exactly(before, &after)?;
    let (eb, ea) = (endings(before), endings(&after));
    if eb.iter().filter(|x| **x).count() == 1 {
        prop_assert_eq!(eb, ea, "a file with one kind of line ending keeps it");
    } else if eb == [false; 3] {
        prop_assert!(!ea[1] && !ea[2], "LF for a file without line endings");
    }

    let (_, lb) = reparse(before);
    let (_, la) = reparse(&after);
    let got = read_managed(&after);
    for (key, wish, mine) in [
        ("buyUrl", &d.buy_url, &got.buy_url),
        ("catalog.url", &d.catalog_url, &got.catalog_url),
    ] {
        let found = assignments(&la, key);
        match wish {
            Wish::Set(v) => {
                prop_assert_eq!(found.len(), 1, "{} once", key);
                prop_assert_eq!(found[0].value.as_deref(), Some(v.as_str()));
                prop_assert_eq!(mine.as_deref(), Some(v.as_str()));
            }
            Wish::Remove => {
                prop_assert!(found.is_empty(), "{} removed", key);
                prop_assert_eq!(mine, &None);
            }
            Wish::Leave => {
                let was = assignments(&lb, key);
                prop_assert_eq!(found.len(), was.len());
                for (a, b) in found.iter().zip(&was) {
                    prop_assert_eq!(a.bytes.trim_ascii_end(), b.bytes.trim_ascii_end());
                }
                let before_val = read_managed(before);
                let before_val = if key == "buyUrl" {
                    before_val.buy_url
                } else {
                    before_val.catalog_url
                };
                prop_assert_eq!(mine, &before_val);
            }
        }
    }
    prop_assert_eq!(apply(&after, d), after.clone(), "second apply changes nothing");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn apply_touches_only_managed_lines_and_is_idempotent(before in file(), b in wish(), c in wish()) {
        let d = Desired { buy_url: b, catalog_url: c };
        check(&before, &d)?;
    }

    #[test]
    fn apply_of_own_output_with_same_wishes_is_exact_identity(before in file(), b in wish(), c in wish()) {
        let d = Desired { buy_url: b, catalog_url: c };
        let once = apply(&before, &d);
        let all_leave = d.buy_url == Wish::Leave && d.catalog_url == Wish::Leave;
        if all_leave {
            prop_assert_eq!(&once, &before);
        }
        prop_assert_eq!(apply(&once, &d), once);
    }
}

#[test]
fn duplicates_across_two_sections_leave_exactly_one() {
    let before =
        b"[extensions]\nbuyUrl = \"https://a.example\"\n[debug]\nx = 1\n[extensions]\nbuyUrl = \"https://b.example\"\n";
    let d = Desired {
        buy_url: Wish::Set("https://shop.example.com".into()),
        catalog_url: Wish::Leave,
    };
    check(before, &d).unwrap();
    assert_eq!(
        String::from_utf8(apply(before, &d)).unwrap(),
        "[extensions]\n[debug]\nx = 1\n[extensions]\nbuyUrl = \"https://shop.example.com\"\n"
    );
}
