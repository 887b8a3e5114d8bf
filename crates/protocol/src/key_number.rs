//! The Plesk key number's normal form (contract section 7): `PLSK.12345678.0001`.

fn all_zero(s: &str) -> bool {
    s.bytes().all(|b| b == b'0')
}

/// `PREFIX.12345678.0001` or `PREFIX123456780001` → (prefix, number, version).
fn split(raw: &str) -> Option<(&str, &str, &str)> {
    let prefix_len = raw.bytes().take_while(u8::is_ascii_alphabetic).count();
    if !(2..=8).contains(&prefix_len) {
        return None;
    }
    let (prefix, rest) = raw.split_at(prefix_len);
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(dotted) = rest.strip_prefix('.') {
        let (number, version) = dotted.split_once('.')?;
        (digits(number, 8) && digits(version, 4)).then_some((prefix, number, version))
    } else {
        digits(rest, 12).then(|| (prefix, &rest[..8], &rest[8..]))
    }
}

/// `PLSK123456780001` / `plsk.12345678.0001` → `PLSK.12345678.0001`; `0`, all zeros or
/// any other form → None.
pub fn normalize_key_number(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (prefix, number, version) = split(raw)?;
    if all_zero(number) && all_zero(version) {
        return None;
    }
    Some(format!("{}.{number}.{version}", prefix.to_ascii_uppercase()))
}

/// The values Plesk uses for "no key": `0` or a key number whose digits are all zero.
/// (Anything else [`normalize_key_number`] refuses is a form nobody expected.)
pub fn is_no_key(raw: &str) -> bool {
    let raw = raw.trim();
    raw == "0" || split(raw).is_some_and(|(_, n, v)| all_zero(n) && all_zero(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        for (raw, want) in [
            ("PLSK123456780001", Some("PLSK.12345678.0001")),
            ("plsk.12345678.0001", Some("PLSK.12345678.0001")),
            ("PLSK.12345678.0001", Some("PLSK.12345678.0001")),
            (" PLSK111385020006 ", Some("PLSK.11138502.0006")),
            ("0", None),
            ("plsk000000000000", None),
            ("plsk.00000000.0000", None),
            ("PLSK.1234567.0001", None),
            ("PLSK1234567800012", None),
            ("PLSK.12345678-0001", None),
            ("12345678.0001", None),
            ("", None),
            ("PLSK.１２３４５６７８.0001", None),
        ] {
            assert_eq!(normalize_key_number(raw).as_deref(), want, "{raw:?}");
        }
    }

    #[test]
    fn no_key_values() {
        for raw in ["0", " 0 ", "plsk000000000000", "PLSK.00000000.0000"] {
            assert!(is_no_key(raw), "{raw:?}");
        }
        for raw in ["PLSK.12345678.0001", "garbage", "", "PLSK.0000000.0000"] {
            assert!(!is_no_key(raw), "{raw:?}");
        }
    }
}
