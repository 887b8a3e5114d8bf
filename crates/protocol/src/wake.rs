//! The wake push's signature (contract section 5.4):
//! `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, accepted
//! within [`TOLERANCE_SECS`] of the receiver's clock. The time is an argument: no clock here.

use hmac::{KeyInit, Mac};

use crate::ProtocolError;

/// How far `t` may be from the receiver's clock, either way.
pub const TOLERANCE_SECS: u64 = 300;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn mac(secret: &[u8], t: u64, body: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(secret).ok()?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The `X-Signature` value for `body` signed at unix time `t`.
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length, so `mac` cannot fail.
    let digest = mac(secret, t, body)
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default();
    format!("t={t},v1={}", hex::encode(digest))
}

/// Checks an `X-Signature` header against `body` at unix time `now`.
///
/// Parts may come in any order; several `v1=` are allowed (key rotation) and the push is
/// accepted if any matches; unknown parts are ignored. An empty secret accepts nothing:
/// anyone could sign with it.
pub fn verify(header: Option<&str>, body: &[u8], secret: &[u8], now: u64) -> Result<(), ProtocolError> {
    let header = match header.map(str::trim) {
        None | Some("") => return Err(ProtocolError::SignatureMissing),
        Some(h) => h,
    };
    let (t, sigs) = parse_header(header)?;
    if t.abs_diff(now) > TOLERANCE_SECS {
        return Err(ProtocolError::SignatureStale { t, now });
    }
    if secret.is_empty() {
        return Err(ProtocolError::SignatureMismatch);
    }
    let mac = mac(secret, t, body).ok_or(ProtocolError::SignatureMismatch)?;
    // verify_slice compares in constant time; each candidate needs its own clone.
    if sigs.iter().any(|sig| mac.clone().verify_slice(sig).is_ok()) {
        Ok(())
    } else {
        Err(ProtocolError::SignatureMismatch)
    }
}

/// `t` and the well-formed `v1` digests of a header.
fn parse_header(header: &str) -> Result<(u64, Vec<Vec<u8>>), ProtocolError> {
    let mut t: Option<u64> = None;
    let mut sigs: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return Err(ProtocolError::SignatureMalformed);
        };
        let value = value.trim();
        match key.trim() {
            "t" => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ProtocolError::SignatureMalformed);
                }
                let parsed = value.parse::<u64>().map_err(|_| ProtocolError::SignatureMalformed)?;
                // Two different timestamps leave it unclear what was signed.
                if t.is_some_and(|old| old != parsed) {
                    return Err(ProtocolError::SignatureMalformed);
                }
                t = Some(parsed);
            }
            "v1" => match hex::decode(value) {
                Ok(sig) if sig.len() == 32 => sigs.push(sig),
                _ => {}
            },
            _ => {}
        }
    }
    let t = t.ok_or(ProtocolError::SignatureMalformed)?;
    // A v1 that is not 64 hex digits cannot match anything: the sender is broken.
    if sigs.is_empty() {
        return Err(ProtocolError::SignatureMalformed);
    }
    Ok((t, sigs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProtocolError::*;

    const NOW: u64 = 1_700_000_000;

    /// Only the hex digest of [`sign`].
    fn digest(secret: &[u8], t: u64, body: &[u8]) -> String {
        sign(secret, t, body).rsplit_once("v1=").unwrap().1.to_string()
    }

    #[test]
    fn sign_matches_a_known_vector() {
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac k
        assert_eq!(
            sign(b"k", NOW, b"{}"),
            "t=1700000000,v1=c6ef4734033cee2367414a0939385eca0397754aa7a59716da7463a9298b5146"
        );
        assert_eq!(verify(Some(&sign(b"k", NOW, b"{}")), b"{}", b"k", NOW), Ok(()));
    }

    #[test]
    fn accepts_a_valid_signature_in_any_part_order() {
        let sig = digest(b"k", NOW, b"{}");
        let a = format!("t={NOW},v1={sig}");
        let b = format!("v1={sig}, t={NOW}, v0=whatever");
        assert_eq!(verify(Some(&a), b"{}", b"k", NOW), Ok(()));
        assert_eq!(verify(Some(&b), b"{}", b"k", NOW), Ok(()));
    }

    #[test]
    fn accepts_when_any_of_several_v1_matches() {
        let good = digest(b"new", NOW, b"");
        let old = digest(b"old", NOW, b"");
        let h = format!("t={NOW},v1={old},v1={good}");
        assert_eq!(verify(Some(&h), b"", b"new", NOW), Ok(()));
        let h = format!("t={NOW},v1={old}");
        assert_eq!(verify(Some(&h), b"", b"new", NOW), Err(SignatureMismatch));
    }

    #[test]
    fn missing_and_malformed_headers() {
        assert_eq!(verify(None, b"", b"k", NOW), Err(SignatureMissing));
        assert_eq!(verify(Some("  "), b"", b"k", NOW), Err(SignatureMissing));
        let sig = digest(b"k", NOW, b"");
        for h in [
            format!("v1={sig}"),
            format!("t=,v1={sig}"),
            format!("t=-5,v1={sig}"),
            format!("t=12x,v1={sig}"),
            format!("t={NOW}"),
            format!("t={NOW},v1=zz"),
            format!("t={NOW},v1={}", &sig[..10]),
            format!("t={NOW};v1={sig}"),
            format!("t={NOW},t={},v1={sig}", NOW + 1),
            "garbage".to_string(),
        ] {
            assert_eq!(verify(Some(&h), b"", b"k", NOW), Err(SignatureMalformed), "{h}");
        }
    }

    #[test]
    fn window_is_300_seconds_either_way() {
        for t in [NOW - 300, NOW + 300] {
            assert_eq!(verify(Some(&sign(b"k", t, b"x")), b"x", b"k", NOW), Ok(()));
        }
        for t in [NOW - 301, NOW + 301, 0] {
            assert_eq!(
                verify(Some(&sign(b"k", t, b"x")), b"x", b"k", NOW),
                Err(SignatureStale { t, now: NOW })
            );
        }
    }

    #[test]
    fn signature_covers_timestamp_and_body() {
        let sig = digest(b"k", NOW, b"body");
        let h = format!("t={},v1={sig}", NOW + 1);
        assert_eq!(verify(Some(&h), b"body", b"k", NOW), Err(SignatureMismatch));
        let h = format!("t={NOW},v1={sig}");
        assert_eq!(verify(Some(&h), b"bodY", b"k", NOW), Err(SignatureMismatch));
        assert_eq!(verify(Some(&h), b"body", b"K", NOW), Err(SignatureMismatch));
        // Upper-case hex is still the same signature.
        let h = format!("t={NOW},v1={}", sig.to_uppercase());
        assert_eq!(verify(Some(&h), b"body", b"k", NOW), Ok(()));
    }

    #[test]
    fn empty_secret_accepts_nothing() {
        assert_eq!(
            verify(Some(&sign(b"", NOW, b"")), b"", b"", NOW),
            Err(SignatureMismatch)
        );
    }

    #[test]
    fn error_messages_never_carry_the_secret() {
        let e = verify(Some(&sign(b"topsecret", NOW, b"")), b"", b"othersecret", NOW).unwrap_err();
        assert!(!e.to_string().contains("topsecret") && !e.to_string().contains("othersecret"));
        let e = SignatureStale { t: 1, now: NOW };
        assert!(e.to_string().contains("1700000000"));
    }
}
