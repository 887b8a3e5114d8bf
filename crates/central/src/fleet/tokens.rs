//! Secrets handed to hosts: bearer tokens (kept as SHA-256 only) and wake-push secrets (kept
//! readable: they are HMAC keys).

use sha2::{Digest, Sha256};

/// The OS random generator failed; nothing can be issued without it.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random generator failed: {0}")]
pub struct TokenError(String);

/// 32 bytes from the OS CSPRNG, hex: a bearer token or a push secret.
pub fn generate() -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// What the database keeps of a token. A random 256-bit token needs no slow hash: nobody can
/// guess its preimage, and a poll must stay cheap.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality, for the admin token.
pub fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// `Authorization: Bearer <token>` → the token.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let v = header?.trim();
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = generate().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, generate().unwrap());
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), a);
        assert!(same(&a, &a.clone()) && !same(&a, "x"));
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(None), None);
    }
}
