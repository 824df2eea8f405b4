//! TLS for the broker's second listener and the website: one rustls server configuration
//! (ring, TLS 1.2 and 1.3) built from a PEM certificate chain and private key.
//!
//! Loaded once at start; a missing, unreadable or mismatched file is a one-line error that
//! says which file, before anything listens.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only one of the two files is configured.
    #[error("TLS needs both tls_cert and tls_key (only one is set)")]
    Incomplete,
    /// The certificate file cannot be read or holds no certificate.
    #[error("cannot read the TLS certificate {path}: {message}")]
    Cert {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The key file cannot be read or holds no private key.
    #[error("cannot read the TLS private key {path}: {message}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("unusable TLS certificate and key: {0}")]
    Config(String),
}

/// Every certificate of a PEM file, at least one, or an error naming the file.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let cert_err = |message: String| TlsError::Cert {
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_err("no certificate in the file".into()));
    }
    Ok(certs)
}

/// The server configuration for `cert` (PEM chain, leaf first) and `key` (PEM, PKCS#8,
/// PKCS#1 or SEC1), offering `alpn` protocols (e.g. `h2`, `http/1.1`) when given.
pub fn server_config(cert: &Path, key: &Path, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client configuration for `hpfriends pub`/`sub` over TLS: the broker's certificate is
/// checked against `ca` (a PEM file: a private CA or a self-signed certificate) or, without
/// it, the Mozilla roots every browser trusts.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            for c in certificates(path)? {
                roots.add(c).map_err(|e| TlsError::Cert {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The configured pair, if TLS is on: both set, or neither (off); one alone is an error.
pub fn configured<'a>(cert: &'a str, key: &'a str) -> Result<Option<(&'a Path, &'a Path)>, TlsError> {
    match (cert.is_empty(), key.is_empty()) {
        (true, true) => Ok(None),
        (false, false) => Ok(Some((Path::new(cert), Path::new(key)))),
        _ => Err(TlsError::Incomplete),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_say_which() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = server_config(&missing, &missing, &[]).unwrap_err().to_string();
        assert!(e.contains("certificate") && e.contains("missing.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = server_config(&empty, &empty, &[]).unwrap_err().to_string();
        assert!(e.contains("no certificate"), "{e}");
        assert!(matches!(configured("a", ""), Err(TlsError::Incomplete)));
        assert!(configured("", "").unwrap().is_none());
    }
}
