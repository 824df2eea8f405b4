//! Authkey secrets encrypted at rest. The broker must recover each secret (it computes
//! sha1(nonce ‖ secret)), so secrets cannot be hashed like passwords; with a server key
//! configured (`secret_key_file`), each is sealed with ChaCha20-Poly1305 under that key,
//! bound to its ident (as associated data, so a sealed secret moved to another key's row
//! does not open). A copy of the database alone then opens no feed.
//!
//! Stored form: `enc1:` + base64(12-byte nonce ‖ ciphertext ‖ tag). Rows without the prefix
//! are plaintext (written before a key was configured) and are sealed at the next start.

use std::path::Path;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use super::StoreError;

/// Prefix of a sealed secret.
pub const PREFIX: &str = "enc1:";

/// The server key, ready to seal and open secrets.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

fn sealing(message: impl Into<String>) -> StoreError {
    StoreError::Sealing(message.into())
}

/// A new random server key, as the 64 hex characters a key file holds.
pub fn new_key() -> Result<String, StoreError> {
    let mut k = [0u8; 32];
    getrandom::getrandom(&mut k).map_err(|e| sealing(format!("no randomness: {e}")))?;
    Ok(hex::encode(k))
}

/// Whether a stored secret is sealed.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

impl Sealer {
    /// Reads a key file: 64 hex characters (surrounding white space ignored).
    pub fn from_file(path: &Path) -> Result<Sealer, StoreError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| sealing(format!("cannot read secret_key_file {}: {e}", path.display())))?;
        let bytes = hex::decode(text.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                sealing(format!(
                    "secret_key_file {} must hold 64 hex characters (make one with `hpfriends secret-key new PATH`)",
                    path.display()
                ))
            })?;
        Ok(Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)),
        })
    }

    /// The stored form of `secret` for the key `ident`.
    pub fn seal(&self, ident: &str, secret: &str) -> Result<String, StoreError> {
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut nonce).map_err(|e| sealing(format!("no randomness: {e}")))?;
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: ident.as_bytes(),
                },
            )
            .map_err(|_| sealing("cannot seal a secret"))?;
        let mut all = nonce.to_vec();
        all.extend(ct);
        Ok(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(all)
        ))
    }

    /// The secret a stored value holds for `ident` (plaintext is returned as it is).
    pub fn open(&self, ident: &str, stored: &str) -> Result<String, StoreError> {
        let Some(b64) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let wrong = || {
            sealing(format!(
                "the secret of authkey {ident} does not open with this secret_key_file (another key?)"
            ))
        };
        let all = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| wrong())?;
        if all.len() < 12 + 16 {
            return Err(wrong());
        }
        let (nonce, ct) = all.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: ident.as_bytes(),
                },
            )
            .map_err(|_| wrong())?;
        String::from_utf8(plain).map_err(|_| wrong())
    }
}

/// The secret a stored value holds, with or without a sealer.
pub fn open(sealer: Option<&Sealer>, ident: &str, stored: &str) -> Result<String, StoreError> {
    match sealer {
        Some(s) => s.open(ident, stored),
        None if is_sealed(stored) => Err(sealing(format!(
            "the secret of authkey {ident} is encrypted: configure secret_key_file (HPFRIENDS_SECRET_KEY_FILE)"
        ))),
        None => Ok(stored.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(dir: &Path, name: &str) -> Sealer {
        let p = dir.join(name);
        std::fs::write(&p, format!("{}\n", new_key().unwrap())).unwrap();
        Sealer::from_file(&p).unwrap()
    }

    #[test]
    fn seals_open_only_with_the_key_and_the_ident() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (sealer(dir.path(), "a"), sealer(dir.path(), "b"));
        let stored = a.seal("k1", "top secret").unwrap();
        assert!(is_sealed(&stored) && !stored.contains("top secret"));
        assert_ne!(
            stored,
            a.seal("k1", "top secret").unwrap(),
            "fresh nonce each time"
        );
        assert_eq!(a.open("k1", &stored).unwrap(), "top secret");
        assert!(a.open("k2", &stored).is_err(), "bound to its ident");
        assert!(b.open("k1", &stored).is_err(), "another key");
        assert!(
            open(None, "k1", &stored)
                .unwrap_err()
                .to_string()
                .contains("secret_key_file")
        );
        assert_eq!(open(None, "k1", "plain").unwrap(), "plain");
        assert_eq!(a.open("k1", "plain").unwrap(), "plain");
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "xyz").unwrap();
        assert!(
            Sealer::from_file(&bad)
                .unwrap_err()
                .to_string()
                .contains("64 hex")
        );
    }
}
