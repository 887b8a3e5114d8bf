//! TLS on the central's TCP listeners (`[server] tls_cert` / `tls_key`, PEM): read at start,
//! and read again when either file changes, so a renewed certificate needs no restart. A
//! renewal that does not load (half-written, key and certificate not matching) keeps the
//! certificate in use and says why in the log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// How often a handshake may look at the files' modification times.
const RECHECK: Duration = Duration::from_secs(5);

/// Why the certificate or key cannot be used; names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("the TLS certificate file {0} holds no PEM certificate")]
    NoCert(PathBuf),
    #[error("cannot read the TLS key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the TLS key {key} does not belong to the certificate {cert}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificate chain and key in the two files, checked to belong together.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: cert.into(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCert(cert.into()));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.into(),
        reason: e.to_string(),
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::Key {
            path: key.into(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| TlsError::Mismatch {
        cert: cert.into(),
        key: key.into(),
        reason: e.to_string(),
    })?;
    Ok(Arc::new(certified))
}

/// What changes when a file is replaced: its modification time and size.
fn stamp(paths: [&Path; 2]) -> Option<[(SystemTime, u64); 2]> {
    let one = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    };
    Some([one(paths[0])?, one(paths[1])?])
}

struct Current {
    key: Arc<CertifiedKey>,
    stamp: Option<[(SystemTime, u64); 2]>,
    checked: Instant,
}

/// Hands out the loaded certificate; a handshake at most every [`RECHECK`] looks whether
/// the files changed and loads them again.
#[derive(Debug)]
struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<Current>,
}

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Current").field("stamp", &self.stamp).finish()
    }
}

impl Reloading {
    fn get(&self) -> Arc<CertifiedKey> {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if cur.checked.elapsed() < RECHECK {
            return cur.key.clone();
        }
        cur.checked = Instant::now();
        let now = stamp([&self.cert, &self.key]);
        if now.is_some() && now != cur.stamp {
            cur.stamp = now;
            match load(&self.cert, &self.key) {
                Ok(k) => {
                    tracing::info!("loaded the renewed TLS certificate {}", self.cert.display());
                    cur.key = k;
                }
                Err(e) => tracing::warn!("{e}; still serving the certificate loaded before"),
            }
        }
        cur.key.clone()
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// The acceptor for both TCP listeners: HTTP/1.1 over TLS 1.2 or 1.3.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let resolver = Reloading {
        cert: cert.into(),
        key: key.into(),
        current: Mutex::new(Current {
            key: load(cert, key)?,
            stamp: stamp([cert, key]),
            checked: Instant::now(),
        }),
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, k1) = pair(dir.path(), "one");
        let (_, k2) = pair(dir.path(), "two");
        assert!(load(&c1, &k1).is_ok());
        let e = load(&c1, &k2).unwrap_err().to_string();
        assert!(
            e.contains("two.key") && e.contains("one.crt") && e.contains("does not belong"),
            "{e}"
        );
    }

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = pair(dir.path(), "one");
        let e = load(&dir.path().join("none.crt"), &k).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot read the TLS certificate") && e.contains("none.crt"),
            "{e}"
        );
        std::fs::write(dir.path().join("empty.crt"), "").unwrap();
        let e = load(&dir.path().join("empty.crt"), &k).unwrap_err().to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        std::fs::write(&k, "garbage").unwrap();
        let e = load(&c, &k).unwrap_err().to_string();
        assert!(e.starts_with("cannot read the TLS key") && e.contains("one.key"), "{e}");
    }
}
