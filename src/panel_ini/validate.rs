//! Checks on values before they go into panel.ini (contract section 4): `buy_url` an
//! absolute `https://` URL, `catalog_url` an absolute `http://` or `https://` URL; no `"`,
//! `$`, `\` or control characters; at most 2048 bytes.
//!
//! Why those bytes: the agent writes `key = "value"`, and inside PHP's double quotes a `"`
//! ends the value, `\` escapes, `${..}` is expanded, and a line ending continues the value on
//! the next line. Spaces are refused too: a URL never holds one unencoded.

/// Longest value accepted, in bytes.
pub const MAX_LEN: usize = 2048;

/// How much of a value an error message shows.
const SHOWN_CHARS: usize = 100;

/// Checks a `buy_url`; the error is one sentence naming the value.
pub fn buy_url(value: &str) -> Result<(), String> {
    check("buy_url", value, &["https://"])
}

/// Checks a `catalog_url`; the error is one sentence naming the value.
pub fn catalog_url(value: &str) -> Result<(), String> {
    check("catalog_url", value, &["http://", "https://"])
}

fn check(name: &str, value: &str, schemes: &[&str]) -> Result<(), String> {
    let shown = show(value);
    holdable(name, &shown, value)?;
    url(name, &shown, value, schemes)
}

/// The value fits in `key = "value"` as PHP reads it back: its length and its characters.
fn holdable(name: &str, shown: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_LEN {
        return Err(format!(
            "{name} {shown} is {} bytes long, more than the {MAX_LEN} allowed",
            value.len()
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{name} {shown} contains the control character U+{:04X}, which panel.ini cannot hold",
            c as u32
        ));
    }
    if value.contains('"') {
        return Err(format!(
            "{name} {shown} contains a double quote, which would end the quoted value in panel.ini"
        ));
    }
    if value.contains('$') {
        return Err(format!(
            "{name} {shown} contains \"$\", which PHP's INI parser may expand as a variable"
        ));
    }
    if value.contains('\\') {
        return Err(format!(
            "{name} {shown} contains a backslash, which PHP's INI parser reads as an escape"
        ));
    }
    if value.chars().any(char::is_whitespace) {
        return Err(format!("{name} {shown} contains a space; percent-encode it as %20"));
    }
    Ok(())
}

/// The value is an absolute URL with one of `schemes`, a host and, if any, a valid port.
fn url(name: &str, shown: &str, value: &str, schemes: &[&str]) -> Result<(), String> {
    let wanted = schemes.join(" or ");
    let rest = schemes
        .iter()
        .find_map(|s| {
            value
                .get(..s.len())
                .filter(|p| p.eq_ignore_ascii_case(s))
                .map(|_| &value[s.len()..])
        })
        .ok_or_else(|| format!("{name} {shown} is not an absolute {wanted} URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let parsed = v6.split_once(']').and_then(|(h, p)| {
            let port = if p.is_empty() { None } else { Some(p.strip_prefix(':')?) };
            let ok = !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
            ok.then_some((h, port))
        });
        parsed.ok_or_else(|| format!("{name} {shown} has an invalid IPv6 host"))?
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(format!(
            "{name} {shown} is not an absolute {wanted} URL: it has no host"
        ));
    }
    let host_ok = host_port.starts_with('[')
        || host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '%'));
    if !host_ok {
        return Err(format!("{name} {shown} has an invalid host \"{}\"", truncate(host)));
    }
    if let Some(p) = port {
        let ok = !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n));
        if !ok {
            return Err(format!("{name} {shown} has an invalid port \"{}\"", truncate(p)));
        }
    }
    Ok(())
}

/// The value in quotes for a message: control characters escaped, long values cut.
fn show(value: &str) -> String {
    format!("\"{}\"", truncate(value))
}

fn truncate(value: &str) -> String {
    let escaped: String = value.chars().flat_map(char::escape_default).collect();
    if escaped.chars().count() > SHOWN_CHARS {
        let cut: String = escaped.chars().take(SHOWN_CHARS).collect();
        format!("{cut}…")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_typical_urls() {
        for v in [
            "https://shop.example.com",
            "https://shop.example.com/buy?x=1&y=2",
            "https://shop.example.com:8443/a%20b~c/?q=a=b#frag",
            "https://user@shop.example.com/",
            "https://[2001:db8::1]:8443/x",
            "HTTPS://Shop.Example.com",
        ] {
            assert_eq!(buy_url(v), Ok(()), "{v}");
        }
        assert_eq!(catalog_url("http://proxy.example.com:8080"), Ok(()));
        assert_eq!(catalog_url("https://proxy.example.com"), Ok(()));
    }

    #[test]
    fn refuses_each_class_with_a_sentence_naming_the_value() {
        let cases: &[(&str, &str)] = &[
            ("http://x.example", "is not an absolute https:// URL"),
            ("/relative/path", "is not an absolute https:// URL"),
            ("shop.example.com", "is not an absolute https:// URL"),
            ("", "is not an absolute https:// URL"),
            ("https://", "no host"),
            ("https:///path", "no host"),
            ("https://:443/", "no host"),
            ("https://a.example/\"x", "double quote"),
            ("https://a.example/${HOME}", "\"$\""),
            ("https://a.example/a\\b", "backslash"),
            ("https://a.example/\nx", "U+000A"),
            ("https://a.example/\rx", "U+000D"),
            ("https://a.example/\tx", "U+0009"),
            ("https://a.example/\0x", "U+0000"),
            ("https://a.example/\u{7f}x", "U+007F"),
            ("https://a.example/\u{1b}x", "U+001B"),
            ("https://a.example/a b", "space"),
            ("https://a.example:99999/", "invalid port"),
            ("https://a.example:x/", "invalid port"),
            ("https://a!b.example/", "invalid host"),
        ];
        for (v, want) in cases {
            let err = buy_url(v).expect_err(v);
            assert!(err.starts_with("buy_url \""), "{err}");
            assert!(err.contains(want), "{v:?}: {err}");
            assert!(!err.contains('\n') && !err.contains('\r'), "{err}");
        }
        assert!(catalog_url("ftp://x.example")
            .unwrap_err()
            .contains("http:// or https://"));
    }

    #[test]
    fn length_limit_is_2048_bytes_and_long_values_are_cut_in_messages() {
        let base = "https://a.example/";
        let ok = format!("{base}{}", "x".repeat(MAX_LEN - base.len()));
        assert_eq!(buy_url(&ok), Ok(()));
        let long = format!("{ok}x");
        let err = buy_url(&long).unwrap_err();
        assert!(err.contains("2049 bytes"), "{err}");
        assert!(err.len() < 300, "{err}");
    }
}
